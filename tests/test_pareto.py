"""The accuracy/cost front and the picks of export, retrain and push."""

import pytest

from gptnas_hf.search.pareto import parse_pick, pareto_front, pick_record, plot_pareto


def rec(h, fitness, parameters, macs=None, status="ok"):
    return {"hash": h, "fitness": fitness, "parameters": parameters, "macs": macs, "status": status,
            "genome": [{"kind": "ReLU", "width": 1, "stride": 1}]}


RECORDS = [rec("a", 0.50, 1000, 10), rec("b", 0.60, 5000, 80), rec("c", 0.55, 6000, 40), rec("d", 0.595, 3000, 90),
           rec("e", 0.70, 90000, 900), rec("f", 0.99, 10, 1, status="budget"), rec("g", 0.99, 10, 1, status="prefiltered")]


def test_the_front_holds_exactly_the_undominated_trained_candidates():
    assert [r["hash"] for r in pareto_front(RECORDS, "parameters")] == ["a", "d", "b", "e"]
    assert [r["hash"] for r in pareto_front(RECORDS, "macs")] == ["a", "c", "b", "e"]


@pytest.mark.parametrize("spec, expected", [
    ("best", "e"), ("smallest-within:0.01", "e"), ("smallest-within:0.15", "d"), ("smallest-within:0.2", "a"),
    ("max-params:5000", "b"), ("max-params:5k", "b"), ("max-params:4999", "d"), ("max-macs:50", "c"),
])
def test_picks(spec, expected):
    assert pick_record(RECORDS, spec)["hash"] == expected


@pytest.mark.parametrize("spec, message", [
    ("smallest", "expected one of"), ("max-params:lots", "not a number"), ("smallest-within:5", "fraction"),
    ("max-params:", "expected one of"),
])
def test_bad_picks_are_named(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_pick(spec)


def test_a_pick_nothing_satisfies_says_what_the_smallest_is():
    with pytest.raises(ValueError, match=r"at most 10 parameters \(the smallest has 1,000\)"):
        pick_record(RECORDS, "max-params:10")
    with pytest.raises(ValueError, match="carry no MACs"):
        pick_record([rec("a", 0.5, 100)], "max-macs:10")


def test_the_plot_is_written(tmp_path):
    plot_pareto(RECORDS, tmp_path / "pareto.png", "test", {"parameters": 50000, "macs": None})
    assert (tmp_path / "pareto.png").stat().st_size > 1000


def test_population_diversity():
    from gptnas_hf.search.diversity import edit_distance, population_diversity

    assert edit_distance(list("kitten"), list("sitting")) == 3 and edit_distance([], ["a"]) == 1
    same = [[{"kind": "ReLU", "width": 1, "stride": 1}, {"kind": "BatchNorm", "width": 1, "stride": 1}]] * 3
    assert population_diversity(same) == {"edit_distance": 0.0, "kinds_per_position": 1.0}
    other = same[:2] + [[{"kind": "MaxPool", "width": 1, "stride": 1}]]
    d = population_diversity(other)
    assert d["edit_distance"] == (0 + 2 + 2) / 3 and d["kinds_per_position"] == 2.0
