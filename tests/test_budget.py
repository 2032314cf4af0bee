"""The search's budget: MACs from torch's FLOP counter, latency, the repair towards a cheaper
genome, and a GPT reconstruction that has to respect the budget too."""

import random

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from gptnas_hf.genome_budget import measure_genome
from gptnas_hf.search.budget import SearchBudget, measure_latency_ms, repair
from gptnas_hf.search.searcher import NASSearcher, SearchConfig
from gptnas_hf.search_space import Genome, build_network, make_block, sample_genome

GENOME = sample_genome(3, min_blocks=8, max_blocks=8, widths=(16, 32), max_downsamples=2)


def test_macs_are_half_the_flops_torch_counts_on_a_real_network():
    size = measure_genome(GENOME, 3, 10, 32)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        build_network(GENOME, 3, 10)(torch.randn(1, 3, 32, 32))
    assert size.macs == counter.get_total_flops() // 2 > 0
    assert measure_genome(GENOME, 3, 10, 16).macs < size.macs  # MACs at the data's input size


def test_latency_is_measured_and_judged_only_when_asked():
    assert "latency_ms" not in SearchBudget().measure(GENOME)
    budget = SearchBudget(max_latency_ms=1e-6, image_size=16)
    measured, why = budget.check(GENOME)
    assert measured["latency_ms"] > 0 and "too slow" in why and "max_latency_ms" in why
    assert measure_latency_ms(GENOME, 3, 10, 16) > 0


@pytest.mark.parametrize("limit", ["max_params", "max_macs"])
def test_repair_narrows_or_drops_blocks_until_the_genome_fits(limit):
    size = measure_genome(GENOME, 3, 10, 32)
    cap = (size.parameters if limit == "max_params" else size.macs) // 3
    budget = SearchBudget(**{limit: cap})
    assert budget.check(GENOME)[1]
    fixed = repair(GENOME, budget, random.Random(0), widths=(16, 32), min_blocks=6, protected=[0, 7])
    assert fixed.genome is not None and fixed.steps > 0
    assert not budget.check(fixed.genome)[1]
    assert fixed.measured["parameters" if limit == "max_params" else "macs"] <= cap
    assert len(fixed.genome) >= 6 and fixed.genome.num_downsamples == GENOME.num_downsamples
    assert fixed.index_map[0] is not None and fixed.index_map[7] is not None  # protected blocks stay
    for old, new in enumerate(fixed.index_map):
        if new is not None:
            assert fixed.genome[new]["kind"] == GENOME[old]["kind"]
    # the same rng gives the same repair
    again = repair(GENOME, budget, random.Random(0), widths=(16, 32), min_blocks=6, protected=[0, 7])
    assert again.genome == fixed.genome


def test_repair_gives_up_on_a_budget_nothing_fits():
    fixed = repair(GENOME, SearchBudget(max_params=10), random.Random(0), widths=(16, 32), min_blocks=8)
    assert fixed.genome is None and fixed.steps > 0


def _searcher(digits, tmp_path, **budget):
    config = SearchConfig.from_dict({
        "strategy": "ga", "population_size": 2, "generations": 0, "min_blocks": 6, "max_blocks": 6,
        "widths": [8], "max_downsamples": 2, "use_gpt": False, "dataset": "digits", "seed": 0, "progress": False,
        "output_dir": str(tmp_path / "run"), **budget})
    return NASSearcher(config, dataset=digits)


class WideningGPT:
    """A stand-in reconstructor that rebuilds block 1 far wider than the budget allows."""

    def __init__(self, width):
        self.width = width

    def __call__(self, genomes, **kwargs):
        out = []
        for g in genomes:
            g = Genome.from_json(g)
            rebuilt = g.with_block(1, make_block("ConvNormActivation", self.width, 1, kernel=3))
            out.append({"genome": rebuilt.to_list(), "predicted_blocks": [1]})
        return out


def test_a_gpt_reconstruction_over_budget_is_repaired_around_its_predicted_blocks(digits, tmp_path):
    proposals = [sample_genome(s, 6, 6, (8,), 2) for s in (1, 2)]
    cap = max(measure_genome(g, 1, 10, digits.image_size).parameters for g in proposals) * 2
    searcher = _searcher(digits, tmp_path, max_params=cap)
    searcher.reconstructor = WideningGPT(256)
    pending = searcher._prepare([(g, "init") for g in proposals], 0)
    for candidate in pending:
        genome = Genome.from_json(candidate["genome"])
        assert candidate["reconstructed"] and candidate["gpt_budget_repair"]["fitted"]
        assert measure_genome(genome, 1, 10, digits.image_size).parameters <= cap
        assert candidate["predicted_blocks"] == [1] and genome[1]["kind"] == "ConvNormActivation"


def test_a_gpt_reconstruction_that_cannot_fit_falls_back_to_the_proposal(digits, tmp_path, monkeypatch):
    proposals = [sample_genome(s, 6, 6, (8,), 2) for s in (1, 2)]
    cap = max(measure_genome(g, 1, 10, digits.image_size).parameters for g in proposals)
    searcher = _searcher(digits, tmp_path, max_params=cap, min_blocks=6)
    searcher.reconstructor = WideningGPT(4096)
    import gptnas_hf.search.searcher as searcher_module

    # no room to repair: the GPT's rebuilt genome cannot be brought within the budget
    monkeypatch.setattr(searcher_module, "repair", lambda *a, **k: repair(*a, **{**k, "max_steps": 0}))
    pending = searcher._prepare([(g, "init") for g in proposals], 0)
    for candidate, proposal in zip(pending, proposals):
        assert not candidate["reconstructed"] and "too large" in candidate["gpt_over_budget"]
        assert Genome.from_json(candidate["genome"]) == proposal


def test_budget_settings_are_checked_and_the_old_name_still_reads():
    from gptnas_hf.recipe_config import RecipeError

    assert SearchConfig.from_dict({"max_parameters": 123}).max_params == 123
    for key, value in (("max_macs", 0), ("max_latency_ms", -1.0), ("max_params", 0)):
        with pytest.raises(RecipeError, match=key):
            SearchConfig.from_dict({key: value})


def test_a_budgeted_search_from_a_recipe_end_to_end(tmp_path):
    """The recipe's max_params holds for every trained candidate and the best; the run leaves
    pareto.png and TensorBoard event files; export --pick chooses the network it names."""
    import json

    import yaml
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gptnas_hf.cli import main
    from gptnas_hf.search.pareto import pick_record

    recipe = tmp_path / "budget.yaml"
    recipe.write_text(yaml.safe_dump({
        "strategy": "ga", "population_size": 4, "generations": 1, "min_blocks": 4, "max_blocks": 6,
        "widths": [16, 32, 64], "max_downsamples": 2, "use_gpt": False, "dataset": "digits", "seed": 0,
        "max_params": 20000, "log_with": "tensorboard",
        "data": {"max_train_per_class": 10, "val_fraction": 0.25},
        "evaluation": {"epochs": 1, "batch_size": 32, "augment": False, "max_batches_per_epoch": 1},
    }))
    run = tmp_path / "run"
    assert main(["search", "--recipe", str(recipe), "--output-dir", str(run)]) == 0
    rows = [json.loads(line) for line in (run / "evaluations.jsonl").read_text().splitlines()]
    trained = [r for r in rows if r["status"] == "ok"]
    assert trained and all(r["parameters"] <= 20000 and r["macs"] > 0 for r in trained)
    assert any(r.get("budget_repair") for r in rows)  # the budget bound: some proposals were repaired
    best = Genome.from_json((run / "best_genome.json").read_text())
    assert measure_genome(best, 1, 10, 32).parameters <= 20000
    assert (run / "pareto.png").stat().st_size > 1000
    report = (run / "report.md").read_text()
    assert "## Accuracy against cost" in report and "max_params 20,000" in report
    logdirs = [p.parent for p in (run / "trackers").rglob("events.out.tfevents.*")]
    scalars = {}
    for logdir in logdirs:
        events = EventAccumulator(str(logdir), size_guidance={"scalars": 0}).Reload()
        for tag in events.Tags()["scalars"]:
            scalars[tag] = events.Scalars(tag)
    assert len(scalars["candidate/fitness"]) == len(trained) and len(scalars["generation/best"]) == 2
    assert "tensorboard" in json.loads((run / "state.json").read_text())["trackers"]

    expected = pick_record(rows, "smallest-within:0.01")
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "small"), "--pick", "smallest-within:0.01",
                 "--weights", "init"]) == 0
    exported = json.loads((tmp_path / "small" / "config.json").read_text())
    assert Genome.from_json(exported["genome"]) == Genome.from_json(expected["genome"])
    assert "--pick smallest-within:0.01" in (tmp_path / "small" / "README.md").read_text()
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "bad"), "--pick", "max-params:1"]) != 0


def test_an_impossible_latency_budget_is_refused_before_any_proposal_is_measured(digits, tmp_path, monkeypatch):
    import time as clock

    from conftest import tiny_search
    from gptnas_hf.search import budget as budget_module
    from gptnas_hf.search.searcher import NASSearcher, SearchConfig

    measured = []
    original = budget_module.measure_genome
    monkeypatch.setattr(budget_module, "measure_genome", lambda *a, **k: measured.append(1) or original(*a, **k))
    config = SearchConfig.from_dict(tiny_search(use_gpt=False, max_latency_ms=1e-5, output_dir=str(tmp_path / "run")))
    started = clock.perf_counter()
    with pytest.raises(ValueError, match=r"no network can run within max_latency_ms = 1e-05 ms on cpu: .* alone take"):
        NASSearcher(config, dataset=digits)
    assert clock.perf_counter() - started < 10 and not measured
    # a budget that some network can meet passes the floor check
    NASSearcher(SearchConfig.from_dict(tiny_search(use_gpt=False, max_latency_ms=1e4, output_dir=str(tmp_path / "ok"))),
                dataset=digits)


@pytest.mark.parametrize("limit, said", [({"max_params": 50}, r"max_params = 50 parameters: its classifier alone"),
                                         ({"max_macs": 20}, r"max_macs = 20 MACs an image: its classifier alone")])
def test_impossible_size_budgets_are_refused_at_once(digits, tmp_path, limit, said):
    from conftest import tiny_search

    config = SearchConfig.from_dict(tiny_search(use_gpt=False, output_dir=str(tmp_path / "run"), **limit))
    with pytest.raises(ValueError, match=said):
        NASSearcher(config, dataset=digits)
