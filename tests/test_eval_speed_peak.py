"""bench.eval_speed's peak is the fastest repeat: a busy core slows repeats, never speeds them."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import eval_speed


def test_the_peak_takes_the_fastest_repeat_and_the_throughput_the_median():
    delays = iter([0.05, 0.03, 0.002, 0.03, 0.04, 0.03, 0.05, 0.03] * 2)  # the first call of each is the warm-up

    def work():
        time.sleep(next(delays))

    best = eval_speed._best_seconds(work, repeats=7)
    assert 0.002 <= best < 0.02
    median = eval_speed._median_seconds(work, repeats=7)
    assert median >= 0.03


def test_machine_peak_reports_what_it_measured():
    peak = eval_speed.machine_peak()
    assert peak["conv_gflops"] == max(peak["conv_gflops_by_shape"].values()) > 0 and peak["matmul_gflops"] > 0
