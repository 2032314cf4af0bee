"""Every benchmark runs end to end with the hidden ``smoke`` budget (digits, tiny networks,
seconds) into a temporary results directory: bench/results and bench/RESULTS.md stay untouched."""

import importlib
import json
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root holds bench/

from bench import all as bench_all
from bench import common

EXPECTED = {
    "reconstruction": ("warm_median_s", "cold_median_s"),
    "search_time": ("GA", "GA+GPT", "Random", "Random+GPT", "training_estimate"),
    "eval_speed": ("scopes", "reconstruction_batch_30", "device", "peak", "optimisations", "reference_network"),
    "gpt_quality": ("variants", "families"),
    "mask_rate": ("rows", "best_rate"),
    "reference_ranking": ("networks", "at_chance_fraction", "hand_designed_mean"),
    "fidelity": ("variants", "default_proxy", "reference"),
    "fidelity_nas_bench_201": ("proxy", "variants", "chosen", "confirmation", "zero_cost", "zero_cost_pytorch_init",
                               "table"),
    "reconstruction_effect": ("gpt_minus_original", "gpt_minus_control", "at_chance_fraction", "kept_kind_fraction"),
    "with_without_gpt": ("settings", "pairs", "ga_gpt_minus_ga", "random_gpt_minus_random", "adapted_minus_ga",
                         "adapted_minus_pretrained"),
    "prefilter": ("arms", "prefilter_minus_plain", "cost_ratio"),
    "search_wall": ("quickstart", "under_load", "cores"),
    "nas_bench_201": ("seeds", "arms", "pairs", "proxy", "seconds_per_run", "optimum", "confirmation",
                      "diversity"),
    "proposal_filter_blocks": ("arms", "test_accuracy", "proxy_fitness", "design", "runs"),
}


@pytest.fixture
def results(tmp_path, monkeypatch):
    out = tmp_path / "results"
    monkeypatch.setenv(common.RESULTS_ENV, str(out))
    return out


def test_every_benchmark_module_is_in_bench_all_and_checked_here():
    """A benchmark is a module of bench/ with a NAME and a main(); each one is run by bench.all
    and has its figures checked below."""
    found = set()
    for path in sorted((Path(__file__).resolve().parents[1] / "bench").glob("*.py")):
        module = importlib.import_module(f"bench.{path.stem}")
        if hasattr(module, "NAME") and callable(getattr(module, "main", None)):
            assert module.NAME == path.stem, path.name
            found.add(path.stem)
    assert found and set(bench_all.BENCHMARKS) == found and set(EXPECTED) == found


def test_every_benchmark_module_is_listed_in_the_bench_package_doc():
    import bench

    listed = re.findall(r"^\* ``(\w+)``", bench.__doc__, flags=re.MULTILINE)
    assert len(listed) == len(set(listed)) and set(listed) == set(bench_all.BENCHMARKS)


@pytest.mark.parametrize("name", bench_all.BENCHMARKS)
def test_benchmark_smoke(name, results):
    before = common.DEFAULT_TABLE.read_text() if common.DEFAULT_TABLE.is_file() else None
    importlib.import_module(f"bench.{name}").main(["--budget", "smoke"])
    record = json.loads((results / f"{name}.json").read_text())
    assert record["benchmark"] == name and record["settings"]["budget"] == "smoke"
    for key in EXPECTED[name]:
        assert key in record["figures"], key
    assert "cpu_count" in record["machine"] and record["date"]
    # provenance: the commit, the library versions and the shipped GPT's hash; no absolute path
    assert set(record["commit"]) == {"sha", "dirty"}
    assert {"torch", "transformers", "gpt_checkpoint"} <= set(record["provenance"])
    assert record["provenance"]["gpt_checkpoint"]["sha256"]
    text = (results / f"{name}.json").read_text()
    assert str(common.ROOT) not in text and str(Path.home()) + "/" not in text and str(results) not in text
    assert not re.search(r'"/(work|tmp|home|root|dev/shm)\b', text), re.search(r'"/[^"]*"', text)
    assert (results / f"{name}.png").stat().st_size > 1000
    table = (results / "RESULTS.md").read_text()
    assert f"| {name} |" in table and "smoke budget" in table
    after = common.DEFAULT_TABLE.read_text() if common.DEFAULT_TABLE.is_file() else None
    assert before == after, "bench/RESULTS.md was touched"


def test_resumed_search_benchmark_reuses_its_runs(results):
    from bench import with_without_gpt

    first = with_without_gpt.main(["--budget", "smoke", "--seeds", "1"])
    lines = {p: p.read_text() for p in (results / "runs").rglob("evaluations.jsonl")}
    assert first["random_runs_seeded_from_ga"] > 0
    second = with_without_gpt.main(["--budget", "smoke", "--seeds", "1"])
    assert {p: p.read_text() for p in (results / "runs").rglob("evaluations.jsonl")} == lines  # nothing retrained
    assert second["pairs"] == first["pairs"]


def test_missing_cifar10_exits_with_a_clear_message(results, tmp_path):
    from bench import mask_rate

    with pytest.raises(SystemExit) as exit_info:
        mask_rate.main(["--budget", "small", "--dataset", str(tmp_path / "no-cifar")])
    assert "CIFAR-10 not found" in str(exit_info.value)


def test_a_partial_zero_cost_run_writes_under_its_own_name(results):
    from bench import fidelity_nas_bench_201 as fid

    figures = fid.main(["--budget", "smoke", "--parts", "zero_cost", "--zero-cost-inits", "pytorch",
                        "--name", "fidelity_pytorch_init"])
    assert "zero_cost_pytorch_init" in figures and "zero_cost" not in figures and "proxy" not in figures
    assert set(figures["zero_cost_pytorch_init"]) == set(fid.REFERENCE_INIT_PROXIES)
    record = json.loads((results / "fidelity_pytorch_init.json").read_text())
    assert record["settings"]["parts"] == ["zero_cost"] and record["settings"]["zero_cost"]["inits"] == ["pytorch"]
    assert record["settings"]["zero_cost"]["proxies_at_pytorch_init"] == list(fid.REFERENCE_INIT_PROXIES)
    assert "variants" not in record["settings"]  # nothing was trained
    assert record["figures"]["plot"] == "fidelity_pytorch_init.png" and (results / "fidelity_pytorch_init.png").is_file()
    assert not (results / f"{fid.NAME}.json").exists()  # the full run's result is left alone
    with pytest.raises(SystemExit, match="--name"):
        fid.main(["--budget", "smoke", "--parts", "zero_cost", "--name", "../elsewhere"])


def test_with_without_gpt_shards_search_their_seeds_and_the_unsharded_run_writes(results):
    from bench import with_without_gpt

    assert with_without_gpt.main(["--budget", "smoke", "--seeds", "2", "--shard", "1/2"]) is None
    assert not (results / "with_without_gpt.json").exists()
    runs = results / "runs" / "with_without_gpt"
    searched = sorted(p.parent.name for p in runs.rglob("state.json"))
    assert searched and all(name.endswith("-seed1") for name in searched)
    assert with_without_gpt.main(["--budget", "smoke", "--seeds", "2", "--shard", "0/2"]) is None
    lines = {p: p.read_text() for p in runs.rglob("evaluations.jsonl")}
    figures = with_without_gpt.main(["--budget", "smoke", "--seeds", "2"])
    assert {p: p.read_text() for p in runs.rglob("evaluations.jsonl")} == lines  # read back, nothing trained again
    assert figures["random_runs_seeded_from_ga"] == 4  # two Random arms a seed, two seeds, counted on resume too
    assert figures["ga_gpt_minus_ga"]["n"] == 2
    with pytest.raises(SystemExit, match="--fresh"):
        with_without_gpt.main(["--budget", "smoke", "--fresh", "--shard", "0/2"])
