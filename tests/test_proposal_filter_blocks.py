"""bench.proposal_filter_blocks trains nothing twice: the filter arms start from the GA run's
generation-0 evaluations, and arms of a seed that found the same best genome share its retrain."""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from bench import proposal_filter_blocks as pfb


def test_filter_arms_reuse_the_gas_generation_zero_and_share_equal_retrains(tmp_path, monkeypatch):
    monkeypatch.setenv(common.RESULTS_ENV, str(tmp_path / "results"))
    figures = pfb.main(["--budget", "smoke", "--seeds", "1"])
    root = next((tmp_path / "results" / "runs" / pfb.NAME).iterdir())
    ga = [json.loads(line) for line in (root / "ga-seed0" / "evaluations.jsonl").read_text().splitlines()]
    first = [r for r in ga if r["generation"] == 0]
    assert first
    for label, _ in pfb.ARMS[1:]:
        rows = [json.loads(line) for line in (root / f"{pfb._slug(label)}-seed0" / "evaluations.jsonl").read_text().splitlines()]
        assert rows[:len(first)] == first  # copied, not trained again (the records, timings included)
        assert len(rows) == len(ga)  # and the arm carried on with its own offspring
    runs = figures["runs"]
    by_hash = {}
    for label, _ in pfb.ARMS:
        run = runs[label]["0"]
        by_hash.setdefault(run["best_hash"], []).append((label, run))
    for group in by_hash.values():  # one retrain per distinct best genome; the others copy it
        assert sum(run["retrain_shared_from"] is None for _, run in group) == 1
        assert len({run["test_top1"] for _, run in group}) == 1


def test_a_retrain_is_shared_only_for_the_same_genome_and_epochs(tmp_path, monkeypatch):
    class Genome:
        def __init__(self, h):
            self.h = h

        def hash(self):
            return self.h

    root = tmp_path / "runs"
    (root / "ga-seed3").mkdir(parents=True)
    (root / "ga-seed3" / "retrain_short.json").write_text(json.dumps({"hash": "abc", "epochs": 10, "test_top1": 0.5}))
    (root / "ga-seed13").mkdir()
    (root / "ga-seed13" / "retrain_short.json").write_text(json.dumps({"hash": "zzz", "epochs": 10, "test_top1": 0.9}))
    mine = root / "ga_size_filter-seed3"
    mine.mkdir()
    shared = pfb.shared_retrain(root, mine, Genome("abc"), None, 10, 3)
    assert shared["test_top1"] == 0.5 and shared["shared_from"] == "ga-seed3"
    assert json.loads((mine / "retrain_short.json").read_text())["shared_from"] == "ga-seed3"
    # a rerun reads each run's own retrain first: the one that trained is never relabelled a copy
    again = pfb.shared_retrain(root, root / "ga-seed3", Genome("abc"), None, 10, 3)
    assert "shared_from" not in again and "shared_from" not in json.loads((root / "ga-seed3" / "retrain_short.json").read_text())
    assert pfb.shared_retrain(root, mine, Genome("abc"), None, 10, 3)["shared_from"] == "ga-seed3"
    calls = []
    monkeypatch.setattr(pfb, "_short_retrain", lambda *a: calls.append(a) or {"hash": "zzz", "test_top1": 0.1})
    pfb.shared_retrain(root, root / "ga_size_filter-seed13", Genome("zzz"), None, 5, 13)  # other epochs
    pfb.shared_retrain(root, root / "ga_size_filter-seed3", Genome("zzz"), None, 10, 3)  # other seed's genome
    assert len(calls) == 2
