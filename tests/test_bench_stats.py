"""The benchmarks' paired analysis and multiple-comparison correction, on inputs with known answers."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root holds bench/

from bench.common import commit, holm, paired_t


def test_paired_t_matches_scipy_and_its_interval_agrees_with_its_p():
    from scipy import stats

    a = [0.61, 0.58, 0.66, 0.70, 0.59, 0.64, 0.68, 0.63]
    b = [0.60, 0.55, 0.62, 0.69, 0.60, 0.60, 0.64, 0.61]
    row = paired_t(a, b)
    diffs = [x - y for x, y in zip(a, b)]
    assert row["mean"] == pytest.approx(sum(diffs) / 8) and row["n"] == 8
    assert row["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert (row["ci95"][0] > 0) == (row["p_value"] < 0.05)
    assert (row["wins"], row["ties"], row["losses"]) == (7, 0, 1)
    # the detectable difference: (t_.975 + t_.8) sd / sqrt(n)
    expected = (stats.t.ppf(0.975, 7) + stats.t.ppf(0.8, 7)) * stats.tstd(diffs) / 8 ** 0.5
    assert row["mde80"] == pytest.approx(expected)


def test_paired_t_on_constant_differences():
    assert paired_t([1, 2, 3], [1, 2, 3])["p_value"] == 1.0
    assert paired_t([2, 3, 4], [1, 2, 3])["p_value"] == 0.0


def test_holm_adjusts_step_down_and_keeps_the_order():
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5})
    assert adjusted == pytest.approx({"a": 0.04, "c": 0.09, "b": 0.09, "d": 0.5})
    assert holm({"only": 0.02}) == {"only": 0.02}
    assert holm({"x": 0.4, "y": 0.6}) == pytest.approx({"x": 0.8, "y": 0.8})


def test_results_record_the_commit_they_ran_at():
    state = commit()
    assert set(state) == {"sha", "dirty"}
    assert state["sha"] is None or (len(state["sha"]) == 40 and isinstance(state["dirty"], bool))


def test_the_results_table_keeps_sections_written_below_it(tmp_path, monkeypatch):
    from bench import common

    monkeypatch.setenv(common.RESULTS_ENV, str(tmp_path))
    common._update_table("one", "2026-01-01", "cpu", "first")
    with open(tmp_path / "RESULTS.md", "a") as f:
        f.write("\n## Anchors\n\n| method | value |\n| --- | --- |\n| random | 93.70 |\n")
    common._update_table("two", "2026-01-02", "cpu", "second")
    common._update_table("one", "2026-01-03", "cpu", "again")
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| one | 2026-01-03 | not recorded | cpu | again |" in text and "| two |" in text and "first" not in text
    assert text.index("| two |") < text.index("## Anchors") and text.count("| random | 93.70 |") == 1


def test_results_table_rows_carry_the_commit_and_old_rows_get_theirs_from_the_json(tmp_path, monkeypatch):
    import json

    from bench import common

    monkeypatch.setenv(common.RESULTS_ENV, str(tmp_path))
    (tmp_path / "RESULTS.md").write_text("# t\n\n| benchmark | date | machine | headline |\n| --- | --- | --- | --- |\n"
                                         "| old | 2026-01-01 | cpu | before |\n| lost | 2026-01-01 | cpu | x |\n")
    (tmp_path / "old.json").write_text(json.dumps({"commit": {"sha": "0123456789abcdef", "dirty": False}}))
    common._update_table("new", "2026-01-02", "cpu", "after", sha="fedcba9+")
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| benchmark | date | commit | machine | headline |" in text
    assert "| old | 2026-01-01 | 0123456 | cpu | before |" in text
    assert "| lost | 2026-01-01 | not recorded | cpu | x |" in text
    assert "| new | 2026-01-02 | fedcba9+ | cpu | after |" in text


# -- fidelity against NAS-Bench-201 ----------------------------------------------------------------
def test_rank_stats_bootstrap_interval_and_nan_last():
    from bench.fidelity_nas_bench_201 import rank_stats

    truth = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    perfect = rank_stats([10, 20, 30, 40, 50, 60], truth, resamples=200)
    assert perfect["spearman"] == pytest.approx(1.0) and perfect["kendall"] == pytest.approx(1.0)
    assert perfect["ci95"] == pytest.approx([1.0, 1.0]) and perfect["n"] == 6
    # a NaN score ranks last: here that is the worst cell, so the ranking stays perfect
    assert rank_stats([float("nan"), 2, 3, 4, 5, 6], truth, resamples=50)["spearman"] == pytest.approx(1.0)
    # ... and at the best cell it costs a rank
    assert rank_stats([1, 2, 3, 4, 5, float("nan")], truth, resamples=50)["spearman"] < 0.5
    noisy = rank_stats([1, 3, 2, 5, 4, 6], truth, resamples=500)
    low, high = noisy["ci95"]
    assert low < noisy["spearman"] <= high <= 1.0
    assert rank_stats([1, 1, 1], [1, 2, 3])["spearman"] is None  # nothing to rank


def test_variant_choice_respects_the_cost_of_the_default_and_samples_are_disjoint():
    from bench.fidelity_nas_bench_201 import choose, samples

    rows = {"recipe": {"spearman": 0.5, "seconds_per_candidate": 10.0},
            "cheap": {"spearman": 0.6, "seconds_per_candidate": 2.0},
            "dear": {"spearman": 0.9, "seconds_per_candidate": 40.0},
            "broken": {"spearman": None, "seconds_per_candidate": 1.0}}
    assert choose(rows) == "cheap"  # the dearer one is better but costs more than the default
    assert choose({"recipe": {"spearman": None, "seconds_per_candidate": 1.0}}) == "recipe"
    keys = [f"k{i}" for i in range(50)]
    first = samples(keys, 10, 5, 20)
    assert first == samples(list(reversed(keys)), 10, 5, 20)  # seeded, independent of input order
    assert len(first["A"]) == 10 and len(first["B"]) == 5 and not set(first["A"]) & set(first["B"])
    assert len(set(first["zero_cost"])) == 20


def test_paired_family_is_paired_t_with_holm_across_the_comparisons():
    from bench.common import paired_family

    a = [1.0, 2.0, 3.0, 4.0, 5.0]
    family = paired_family({"big": ([x + 1.0 + 0.1 * i for i, x in enumerate(a)], a),
                            "none": ([x + (-0.1) ** i for i, x in enumerate(a)], a)})
    for name, (x, y) in {"big": ([x + 1.0 + 0.1 * i for i, x in enumerate(a)], a)}.items():
        assert family[name]["p_value"] == pytest.approx(paired_t(x, y)["p_value"])
    ps = {k: v["p_value"] for k, v in family.items()}
    expected = holm(ps)
    assert family["big"]["p_holm"] == pytest.approx(expected["big"]) and family["big"]["p_holm"] == pytest.approx(2 * ps["big"])
    assert family["none"]["p_holm"] == pytest.approx(max(expected["none"], expected["big"]))
    assert family["big"]["family"] == 2 and family["big"]["test"] == "paired t"


def test_result_paths_are_written_relative_or_symbolically():
    import tempfile

    from bench.common import ROOT, shown_path_text

    assert shown_path_text(f"{ROOT}/bench/results/x.json") == "bench/results/x.json"
    assert shown_path_text(f"{ROOT.parent}/shared/data/cifar10") == "../shared/data/cifar10"
    assert shown_path_text(f"no table at {ROOT}.") == "no table at .."
    assert shown_path_text(f"{Path.home()}/.cache/gptnas_hf") == "~/.cache/gptnas_hf"
    tmp = Path(tempfile.gettempdir()).resolve()
    # a repository cloned straight into the temporary folder: its own prefixes win
    assert shown_path_text(f"{tmp}/run-1/x") == ("../run-1/x" if tmp == ROOT.parent else "<tmp>/run-1/x")
    assert shown_path_text(f"{ROOT}-other") == f"{ROOT}-other".replace(str(ROOT.parent), "..")


def test_the_repositorys_parent_wins_over_the_temporary_and_home_folders(monkeypatch):
    """A clone directly in /tmp or in the home: ``../shared`` stays ``../shared``."""
    import tempfile

    from bench.common import ROOT, shown_path_text

    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(ROOT.parent))
    assert shown_path_text(f"{ROOT.parent}/shared/data/cifar10") == "../shared/data/cifar10"
    assert shown_path_text(f"{ROOT}/bench/results/x.json") == "bench/results/x.json"
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: ROOT.parent))
    assert shown_path_text(f"{ROOT.parent}/shared/data/cifar10") == "../shared/data/cifar10"


def test_trainings_by_other_training_code_are_refused_unless_reuse_is_asked(tmp_path, capsys):
    import json

    from bench.common import CandidateCache, code_fingerprint

    path = tmp_path / "candidates.jsonl"
    old = {"key": "made-by-old-code", "loose": "same-everything-else", "code": "0000", "fitness": 0.5}
    current = {"key": "k2", "loose": "l2", "code": code_fingerprint(), "fitness": 0.7}
    path.write_text(json.dumps(old) + "\n" + json.dumps(current) + "\n")
    strict = CandidateCache(path, reuse_stale=False)
    assert strict.stale == 1 and "1 cached trainings" in capsys.readouterr().out
    assert strict.get("key-under-new-code", "same-everything-else") is None
    assert strict.get("k2", "l2") == current
    lenient = CandidateCache(path, reuse_stale=True)
    assert lenient.get("key-under-new-code", "same-everything-else") == old and lenient.stale_hits == 1
    assert lenient.get("key-under-new-code", "another") is None


def test_zero_cost_networks_have_the_datas_classes_even_when_the_batch_holds_one(tmp_path, monkeypatch):
    """A batch of one class once built 1-class networks, whose loss has no gradient (snip and
    grad_norm all 0): the networks take the data's class count."""
    import torch

    from bench import common
    from bench.fidelity_nas_bench_201 import zero_cost
    from gptnas_hf.search_space_protocol import create_space

    monkeypatch.setenv(common.RESULTS_ENV, str(tmp_path))
    space = create_space("nas-bench-201")
    arch = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_3x3~0|skip_connect~1|avg_pool_3x3~2|"
    images = torch.randn(4, 3, 8, 8)
    scores, _ = zero_cost(space, [arch], images, torch.zeros(4, dtype=torch.int64), 10, {"test": 1}, 0)
    assert scores["grad_norm"][0] > 0 and scores["snip"][0] > 0
    assert scores["params"][0] == space.parameters(space.load(arch), 3, 10)


def test_a_tree_is_dirty_only_when_code_changed_not_the_benchmarks_own_outputs(tmp_path, monkeypatch):
    import subprocess

    from bench import common

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "bench" / "results").mkdir(parents=True)
    for name in ("code.py", "bench/RESULTS.md", "bench/results/x.json"):
        (tmp_path / name).write_text("1\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    monkeypatch.setattr(common, "ROOT", tmp_path)
    (tmp_path / "bench" / "RESULTS.md").write_text("2\n")
    (tmp_path / "bench" / "results" / "x.json").write_text("2\n")  # a figure written before the JSON
    assert common.commit()["dirty"] is False
    (tmp_path / "code.py").write_text("2\n")
    assert common.commit()["dirty"] is True


def test_search_runs_of_other_search_code_are_reused_only_when_asked(tmp_path, monkeypatch):
    import bench.nas_bench_201 as nb

    monkeypatch.setattr(nb, "runs_dir", lambda: tmp_path)
    old = nb.RunCache({"ga": "key-old-code"}, {"ga": "loose-ga"}, code="old")
    old.put({"arm": "ga", "seed": 3, "curve": [90.0, 91.0], "seconds": 1.0})
    old.put({"arm": "ga", "seed": 4, "curve": [92.0], "seconds": 1.0})
    (tmp_path / nb.NAME / "ga-other-settings.jsonl").write_text(
        '{"arm": "ga", "seed": 5, "curve": [1.0], "loose": "loose-other", "code": "old"}\n{"arm": "ga", "se')
    strict = nb.RunCache({"ga": "key-new-code"}, {"ga": "loose-ga"}, code="new")
    assert strict.runs == {} and strict.stale == {}
    lenient = nb.RunCache({"ga": "key-new-code"}, {"ga": "loose-ga"}, code="new", reuse_stale=True)
    assert sorted(lenient.runs) == [("ga", 3), ("ga", 4)] and lenient.stale == {"ga": {"old": 2}}
    assert lenient.runs[("ga", 3)]["curve"] == [90.0, 91.0] and lenient.runs[("ga", 3)]["code"] == "old"
    lenient.put({"arm": "ga", "seed": 6, "curve": [93.0], "seconds": 1.0})  # new runs go under the new key
    assert nb.RunCache({"ga": "key-new-code"}, {"ga": "loose-ga"}, code="new").runs[("ga", 6)]["code"] == "new"


def test_zero_cost_reference_init_is_pytorchs_default_and_cached_apart(tmp_path, monkeypatch):
    import torch

    import bench.fidelity_nas_bench_201 as fid
    from gptnas_hf.search_space_protocol import create_space

    monkeypatch.setenv("GPTNAS_BENCH_RESULTS", str(tmp_path))
    space = create_space("nas-bench-201")
    cell = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    torch.manual_seed(0)
    network = space.build_network(space.load(cell), 3, 10)
    assert network.head.weight.std() < 0.02  # the package's classifier: std 0.01
    fid.reinitialise_as_pytorch(network)
    assert network.head.weight.std() > 0.05  # PyTorch's default Linear: uniform(+-1/sqrt(64))
    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)
    ours = fid.zero_cost(space, [cell], images, labels, 10, {"data": "t"}, 0, proxies=("grad_norm",))
    theirs = fid.zero_cost(space, [cell], images, labels, 10, {"data": "t"}, 0, init="pytorch", proxies=("grad_norm",))
    assert ours[0]["grad_norm"] != theirs[0]["grad_norm"]
    assert len(list((tmp_path / "runs" / fid.NAME).glob("zero_cost-*.jsonl"))) == 2  # two caches
    with pytest.raises(ValueError, match="init"):
        fid.zero_cost(space, [cell], images, labels, 10, {}, 0, init="xavier")
