"""The NAS-Bench-201 benchmark's design bookkeeping: the recipe ships the chosen design, the
benchmark's arms do not inherit it, the confirmation runs on fresh seeds only, and the GPT's
score beyond size is what the size fit leaves."""

from __future__ import annotations

import math

import pytest

from bench import nas_bench_201 as nb
from gptnas_hf.recipe_config import read_recipe
from gptnas_hf.search.config import SearchConfig


def test_the_recipe_ships_the_chosen_design():
    recipe = read_recipe(nb.RECIPE)
    for key, value in nb.ARMS[nb.WINNER].items():
        assert recipe.get(key) == value, key
    assert nb.WINNER in nb.CONFIRM_ARMS and all(a in nb.CONFIRM_ARMS and b in nb.CONFIRM_ARMS
                                                 for a, b in nb.CONFIRM_PAIRS.values())


@pytest.mark.parametrize("arm", ["ga", "ga_gpt", "rea", "ga_size_prior", "ga_filter_size"])
def test_arms_start_from_a_neutral_recipe_not_from_its_design(arm, tmp_path):
    config = nb._config(tmp_path / "table.csv", arm, 0, 100, tmp_path / "run")
    expected = {**nb.NEUTRAL, **nb.ARMS[arm]}
    for key in ("use_gpt", "proposal_filter", "reconstruction_scorer", "strategy"):
        if key in expected:
            assert getattr(config, key) == expected[key], key


def test_off_words_turn_the_proposal_filter_off():
    for word in ("none", "None", "off", "null"):
        assert SearchConfig(proposal_filter=word).proposal_filter is None
    with pytest.raises(ValueError, match="proposal_filter"):
        SearchConfig(proposal_filter="sizes")


def test_size_residuals_remove_the_log_size_line():
    params = [10, 100, 1000, 10_000, 100_000]
    on_line = [2.0 * math.log(p) - 3.0 for p in params]
    assert all(abs(r) < 1e-9 for r in nb.size_residuals(on_line, params))
    bumps = [1.0, -1.0, 0.0, -1.0, 1.0]  # centred and orthogonal to log size (equally spaced): all kept
    residuals = nb.size_residuals([y + b for y, b in zip(on_line, bumps)], params)
    assert residuals == pytest.approx(bumps, abs=1e-9)
    tilted = nb.size_residuals([y + 0.1 * math.log(p) for y, p in zip(on_line, params)], params)
    assert all(abs(r) < 1e-9 for r in tilted)  # a steeper size line is still size


def test_confirmation_seeds_must_be_fresh(tmp_path, monkeypatch):
    from bench import common

    monkeypatch.setenv(common.RESULTS_ENV, str(tmp_path / "results"))
    with pytest.raises(SystemExit, match="overlap the design seeds"):
        nb.main(["--budget", "smoke", "--confirm-first-seed", "1"])


def test_diversity_is_the_share_of_distinct_cells_among_the_runs_queries():
    runs = {("a", 0): {"cells": ["x", "y", "z"]}, ("a", 1): {"cells": ["x", "y", "w"]},
            ("b", 0): {"cells": ["x", "y", "z"]}, ("b", 1): {"curve": [1.0, 2.0, 3.0]}}  # an older run: no cells
    out = nb.diversity(runs, ["a", "b"], {"a": [0, 1], "b": [0, 1]}, (2, 3, 4))
    assert out["a"]["2"] == {"distinct_share": 2 / 4, "runs": 2}  # both seeds met x and y first
    assert out["a"]["3"] == {"distinct_share": 4 / 6, "runs": 2}
    assert out["a"]["4"] == {"distinct_share": None, "runs": 0}  # no run went that far
    assert out["b"]["3"] == {"distinct_share": 1.0, "runs": 1}


def test_the_plot_shows_diversity_beside_the_curves_only_where_cells_were_recorded():
    runs = {("a", 0): {"curve": [90.0, 91.0, 92.0], "cells": ["x", "y", "z"]},
            ("a", 1): {"curve": [90.5, 91.0, 91.5], "cells": ["x", "w", "v"]},
            ("b", 0): {"curve": [90.0, 90.2, 90.4]}, ("b", 1): {"curve": [90.1, 90.3, 90.6]}}
    seeds = {"a": [0, 1], "b": [0, 1]}
    spread = nb.diversity(runs, ["a", "b"], seeds, (2, 3))
    fig = nb.plot(runs, ["a", "b"], seeds, 3, 94.37, "t", spread)
    curves, side = fig.axes
    assert [line.get_label() for line in side.get_lines()] == ["a"]  # b recorded no cells
    assert list(side.get_lines()[0].get_ydata()) == [3 / 4, 5 / 6]
    assert len(nb.plot(runs, ["b"], {"b": [0, 1]}, 3, 94.37, "t", nb.diversity(runs, ["b"], seeds, (2, 3))).axes) == 1


def test_output_writes_a_copy_that_names_its_own_figure(tmp_path, monkeypatch):
    import json

    from bench import common

    monkeypatch.setenv(common.RESULTS_ENV, str(tmp_path / "results"))
    out = tmp_path / "elsewhere" / "nb_copy.json"
    nb.main(["--budget", "smoke", "--arms", "random", "ga", "--output", str(out)])
    copy, original = json.loads(out.read_text()), json.loads((tmp_path / "results" / f"{nb.NAME}.json").read_text())
    assert copy["figures"]["plot"] == "nb_copy.png" and (out.parent / "nb_copy.png").is_file()
    assert original["figures"]["plot"] == f"{nb.NAME}.png"
    assert copy["figures"]["arms"] == original["figures"]["arms"] and copy["commit"] == original["commit"]
