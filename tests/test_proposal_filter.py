"""The proposal filter: the strategy proposes pool x, a zero-cost scorer rates, the best are
evaluated (search/proposal_filter.py), through the real searcher on a synthetic NAS-Bench-201
table."""

import json
import statistics
import sys
from pathlib import Path

import pytest

from gptnas_hf.recipe_config import RecipeError
from gptnas_hf.search.proposal_filter import average_ranks, filter_proposals, lexicographic_ranks
from gptnas_hf.search.searcher import NASSearcher, SearchConfig
from gptnas_hf.search_space_protocol import create_space

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root holds bench/
from bench.nas_bench_201 import synthetic_table  # noqa: E402


def test_filter_keeps_the_best_rated_distinct_new_proposals():
    pool = ["a", "b", "a", "c", "d", "e"]
    score = {"a": 5.0, "b": 1.0, "c": 3.0, "d": 3.0, "e": 9.0}
    rated = lambda items: [score[i] for i in items]  # noqa: E731
    assert filter_proposals(pool, 3, rated, str) == [("e", 9.0), ("a", 5.0), ("c", 3.0)]  # c before d: drawn first
    # architectures the run evaluated already are passed over while enough new ones remain
    assert filter_proposals(pool, 2, rated, str, evaluated={"e", "a"}) == [("c", 3.0), ("d", 3.0)]
    # ... and come back when too few new ones remain (a repeat costs no query)
    assert [p for p, _ in filter_proposals(pool, 3, rated, str, evaluated={"e", "a", "c"})] == ["e", "a", "c"]
    assert len(filter_proposals(["x", "x"], 2, lambda items: [0.0] * len(items), str)) == 1
    with pytest.raises(ValueError, match="keep"):
        filter_proposals(pool, 0, rated, str)
    with pytest.raises(ValueError, match="rated 1 of"):
        filter_proposals(pool, 2, lambda items: [1.0], str)


def test_average_ranks_of_two_scores():
    assert average_ranks([10, 20, 30], [3, 2, 1]) == [2.0, 2.0, 2.0]
    assert average_ranks([1, 2, 2], [1, 2, 3]) == [1.0, 2.25, 2.75]
    assert average_ranks() == []


def test_lexicographic_ranks_order_by_the_first_score_and_break_its_ties_by_the_second():
    assert lexicographic_ranks([2, 1, 2, 1], [0.1, 0.9, 0.5, 0.2]) == [3.0, 2.0, 4.0, 1.0]
    assert lexicographic_ranks([5, 5, 1], [0.3, 0.3, 9.0]) == [2.5, 2.5, 1.0]
    assert lexicographic_ranks([], []) == []
    with pytest.raises(ValueError, match="primary"):
        lexicographic_ranks([1, 2], [1])


def _accuracy(cell) -> float:
    ops = cell.ops
    return round(40 + 8 * ops.count("nor_conv_3x3") + 3 * ops.count("nor_conv_1x1") + (sum(map(ord, str(cell))) % 7) / 10, 4)


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    return synthetic_table(tmp_path_factory.mktemp("table") / "synthetic.csv", _accuracy)


def _run(table, out: Path, **overrides) -> list[dict]:
    config = SearchConfig.from_dict({"space": "nas-bench-201", "strategy": "ga", "population_size": 6,
                                     "generations": 100, "max_queries": 36, "use_gpt": False,
                                     "fitness": {"table": str(table)}, "output_dir": str(out), "progress": False,
                                     "seed": 3, **overrides})
    NASSearcher(config).run()
    return [json.loads(line) for line in (out / "evaluations.jsonl").read_text().splitlines()]


def test_a_size_filter_queries_larger_cells_than_the_plain_ga_from_the_same_start(table, tmp_path):
    plain = _run(table, tmp_path / "plain")
    filtered = _run(table, tmp_path / "filtered", proposal_filter="parameters", proposal_pool=6)
    assert len(filtered) == len(plain) == 36
    assert [r["hash"] for r in filtered if r["generation"] == 0] == [r["hash"] for r in plain if r["generation"] == 0]
    later = lambda records: [r["parameters"] for r in records if r["generation"] > 0]  # noqa: E731
    assert statistics.fmean(later(filtered)) > statistics.fmean(later(plain))
    assert max(r["metric"] for r in filtered) >= max(r["metric"] for r in plain)
    # deterministic for the seed
    assert [r["hash"] for r in _run(table, tmp_path / "again", proposal_filter="parameters", proposal_pool=6)] == \
        [r["hash"] for r in filtered]


def test_the_gpt_filter_rates_proposals_by_the_gpts_likelihood(table, tmp_path):
    from transformers import pipeline

    import gptnas_hf

    gpt = pipeline("nas-reconstruction", model=gptnas_hf.DEFAULT_MODEL)
    records = _run(table, tmp_path / "gpt", proposal_filter="gpt", proposal_pool=3, max_queries=18)
    assert len(records) == 18
    # each queried offspring is the GPT's favourite among the proposals drawn with it: the offspring
    # score higher under the GPT than those of the plain GA from the same start
    plain = _run(table, tmp_path / "plain", max_queries=18)
    space = create_space("nas-bench-201")
    score = lambda rs: statistics.fmean(gpt.score([space.load(r["genome"]) for r in rs if r["generation"] > 0],  # noqa: E731
                                                  space=space))
    assert score(records) > score(plain)
    combined = _run(table, tmp_path / "both", proposal_filter="gpt+parameters", proposal_pool=3, max_queries=18)
    assert len(combined) == 18 and [r["hash"] for r in combined] != [r["hash"] for r in records]


def test_size_then_gpt_keeps_the_largest_proposals_and_lets_the_gpt_choose_among_equals(table, tmp_path, monkeypatch):
    from transformers import pipeline

    import gptnas_hf

    gpt = pipeline("nas-reconstruction", model=gptnas_hf.DEFAULT_MODEL)
    space = create_space("nas-bench-201")
    seen = []  # every pool the filter rated, with the ratings it gave
    original = NASSearcher._proposal_scores

    def spy(self, proposals):
        ratings = original(self, proposals)
        seen.append(([space.load(p.genome) for p in proposals], ratings))
        return ratings

    monkeypatch.setattr(NASSearcher, "_proposal_scores", spy)
    records = _run(table, tmp_path / "lex", proposal_filter="parameters>gpt", proposal_pool=3, max_queries=18)
    assert len(records) == 18 and seen
    ties_broken = 0
    for cells, ratings in seen:
        sizes = [space.parameters(c) for c in cells]
        likelihood = gpt.score(cells, space=space)
        for i in range(len(cells)):
            for j in range(len(cells)):
                if sizes[i] > sizes[j]:
                    assert ratings[i] > ratings[j]  # size decides first
                elif sizes[i] == sizes[j] and likelihood[i] > likelihood[j] + 1e-9:
                    assert ratings[i] > ratings[j]  # the GPT only among equals
                    ties_broken += 1
    assert ties_broken > 0


def test_recipe_checks_name_the_filter_settings(table, tmp_path):
    with pytest.raises(RecipeError, match="proposal_filter"):
        SearchConfig.from_dict({"space": "nas-bench-201", "proposal_filter": "synflow", "fitness": {"table": str(table)}})
    with pytest.raises(RecipeError, match="proposal_pool"):
        SearchConfig.from_dict({"space": "nas-bench-201", "proposal_filter": "gpt", "proposal_pool": 0,
                                "fitness": {"table": str(table)}})


@pytest.mark.parametrize("settings, said", [
    ({"use_gpt": False, "gpt_adaptation": {}}, "gpt_adaptation has no effect with use_gpt: false"),
    ({"prefilter_keep": 0.3}, "prefilter_keep has no effect without prefilter"),
    ({"proposal_pool": 8}, "proposal_pool has no effect without proposal_filter"),
    ({"use_gpt": False, "reconstruction_scorer": "parameters"}, "reconstruction_scorer has no effect"),
])
def test_settings_without_effect_are_said(table, settings, said):
    with pytest.warns(UserWarning, match=said):
        SearchConfig.from_dict({"space": "nas-bench-201", "fitness": {"table": str(table)}, **settings})


def test_settings_that_act_are_not_warned_about(table, recwarn):
    SearchConfig.from_dict({"space": "nas-bench-201", "fitness": {"table": str(table)}, "proposal_filter": "gpt",
                            "proposal_pool": 8, "use_gpt": True, "gpt_adaptation": {}})
    assert not [w for w in recwarn if "no effect" in str(w.message)]
