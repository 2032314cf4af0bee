"""Every benchmark in sequence (one at a time: several of them time things):
``python -m bench.all --budget small``. The reference ranking comes before fidelity, which
scores every proxy against it (trainings are cached in ``bench/results/runs/``). Options are passed on to each benchmark."""

from __future__ import annotations

import importlib
import sys
import time

from .common import BUDGETS, progress

BENCHMARKS = ("reconstruction", "search_time", "eval_speed", "gpt_quality", "reference_ranking", "fidelity",
              "fidelity_nas_bench_201",
              "reconstruction_effect", "mask_rate", "with_without_gpt", "prefilter", "search_wall", "nas_bench_201",
              "proposal_filter_blocks")


def main(argv=None) -> dict:
    import argparse

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--budget", choices=BUDGETS, default="small")
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, default=None, help="run only these")
    args, rest = p.parse_known_args(argv)
    seconds = {}
    for name in args.only or BENCHMARKS:
        progress(f"=== bench.{name} --budget {args.budget} {' '.join(rest)}")
        start = time.perf_counter()
        importlib.import_module(f"bench.{name}").main(["--budget", args.budget, *rest])
        seconds[name] = round(time.perf_counter() - start, 1)
        progress(f"=== bench.{name}: {seconds[name]:.0f} s")
    progress("wall seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items())
             + f"; total {sum(seconds.values()):.0f}")
    return seconds


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
