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
    assert "| one | 2026-01-03 | cpu | again |" in text and "| two |" in text and "first" not in text
    assert text.index("| two |") < text.index("## Anchors") and text.count("| random | 93.70 |") == 1
