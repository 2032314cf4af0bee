"""Runs you can trust (issue 10): the data a run records, the evaluation cache, the final
training's data, a killed multi-process run and the size budget. Every fault is injected for
real: a CLI override, a deleted state file, a killed process group, an enormous genome."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file
from transformers import AutoModelForImageClassification

from gptnas_hf.cli import main
from gptnas_hf.data import load_image_data
from gptnas_hf.genome_budget import GenomeBudgetError, measure_genome
from gptnas_hf.modeling_searched import SearchedNetConfig, SearchedNetForImageClassification
from gptnas_hf.search.searcher import NASSearcher, SearchConfig
from gptnas_hf.search.strategies import create_strategy

from conftest import tiny_search

TINY = tiny_search(population_size=2, generations=0, max_blocks=10, use_gpt=False,
                   evaluation={"max_batches_per_epoch": 1},
                   retrain={"epochs": 1, "batch_size": 64, "max_batches_per_epoch": 1, "augment": False,
                            "progress": False})
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
#: two processes on the CPU (`accelerate launch --cpu --num_processes 2` starts one: its simple
#: launcher needs mpirun for several CPU processes; torchrun starts both, the searcher joins them)
TWO_PROCESSES = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                 "gptnas_hf.cli"]


def records(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "evaluations.jsonl").read_text().splitlines()]


def write_recipe(path, cache, **changes):
    settings = {**TINY, **changes}
    settings["data"] = {**settings["data"], "cache_dir": str(cache)}
    path.write_text(yaml.safe_dump(settings))
    return path


def colour_folder(root, classes=4, per_class=40, size=12):
    """An RGB image folder: class c is a flat colour with a little noise."""
    rng = torch.Generator().manual_seed(0)
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            base = torch.zeros(size, size, 3, dtype=torch.int64)
            base[..., c % 3] = 200 if c < 3 else 100
            noise = torch.randint(0, 40, (size, size, 3), generator=rng)
            Image.fromarray((base + noise).clamp(0, 255).to(torch.uint8).numpy(), "RGB").save(folder / f"{i}.png")
    return root


# -- 1: --dataset is part of the run -------------------------------------------------------------
def test_a_dataset_override_is_recorded_used_by_retrain_and_export_and_guards_resume(tmp_path, capsys):
    folder = colour_folder(tmp_path / "colours")
    recipe = write_recipe(tmp_path / "tiny.yaml", tmp_path / "cache")  # the recipe says digits
    run = tmp_path / "run"
    assert main(["search", "--recipe", str(recipe), "--dataset", str(folder), "--output-dir", str(run)]) == 0
    state = json.loads((run / "state.json").read_text())
    assert state["config"]["dataset"] == str(folder) and state["data"]["source"] == str(folder)
    assert json.loads((run / "data.json").read_text())["channels"] == 3
    assert f"on {folder}" in (run / "report.md").read_text()
    assert "4 classes, 3x12x12 input" in (run / "report.md").read_text()

    assert main(["retrain", "--run", str(run)]) == 0  # trains and tests on the folder, not on digits
    summary = json.loads((run / "retrain.json").read_text())
    assert summary["data"]["source"] == str(folder) and summary["data"]["channels"] == 3
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "model")]) == 0  # no size mismatch
    capsys.readouterr()

    code = main(["search", "--recipe", str(recipe), "--output-dir", str(run), "--resume"])  # the recipe's digits
    err = capsys.readouterr().err
    assert code == 2 and f"search on {str(folder)!r}" in err and "'digits'" in err and "mix two datasets" in err
    assert len(err.strip().splitlines()) == 1


# -- 3: the evaluation cache is keyed by every setting that decides a fitness ---------------------
def test_records_made_under_other_settings_are_not_reused(tmp_path, capsys):
    data = load_image_data("digits", max_train_per_class=20, val_fraction=0.25, progress=False,
                           cache_dir=tmp_path / "cache")
    run = tmp_path / "run"
    NASSearcher(SearchConfig.from_dict({**TINY, "output_dir": str(run)}), dataset=data).run()
    first = records(run)
    (run / "state.json").unlink()  # e.g. after deleting a corrupt one
    other = {**TINY, "evaluation": {**TINY["evaluation"], "lr": 0.2}, "output_dir": str(run), "progress": True}
    NASSearcher(SearchConfig.from_dict(other), dataset=data).run()
    assert "were made under other settings" in capsys.readouterr().err
    rows = records(run)
    fresh = [r for r in rows if r["key"] != first[0]["key"]]
    assert len(fresh) == len(first) == 2  # every candidate trained again under the new lr
    assert sorted(r["hash"] for r in fresh) == sorted(r["hash"] for r in first)
    state = json.loads((run / "state.json").read_text())
    assert state["evaluation_key"] == fresh[0]["key"] and state["history"][0]["evaluations"] == 2
    # the same settings again (state.json lost): the run replays from the log, trains nothing
    (run / "state.json").unlink()
    NASSearcher(SearchConfig.from_dict({**other, "progress": False}), dataset=data).run()
    assert len(records(run)) == len(rows)


# -- 5: a killed multi-process run keeps what each process finished ----------------------------------
def test_a_killed_two_process_run_keeps_each_process_s_finished_evaluations(tmp_path):
    recipe = write_recipe(tmp_path / "tiny.yaml", tmp_path / "cache", population_size=8,
                          evaluation={**TINY["evaluation"], "max_batches_per_epoch": 3})
    run = tmp_path / "two"
    launch = TWO_PROCESSES + ["search", "--recipe", str(recipe), "--output-dir", str(run)]
    process = subprocess.Popen(launch, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    log, seen = run / "evaluations.jsonl", []
    deadline = time.time() + 400
    try:
        while time.time() < deadline and process.poll() is None:
            if log.is_file():
                seen = [json.loads(line) for line in log.read_text().splitlines() if line.endswith("}")]
                if {r["process"] for r in seen} == {0, 1}:
                    break
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the launcher and both workers
        process.wait()
    assert {r["process"] for r in seen} == {0, 1}, "no evaluation from each process before the kill"
    state = json.loads((run / "state.json").read_text())
    assert state["history"] == [], "the generation was gathered before the kill: nothing tested"
    kept = records(run)  # written before the generation's gather, every line whole
    assert len(kept) >= 2 and {r["process"] for r in kept} == {0, 1}

    done = subprocess.run([sys.executable, "-m", "gptnas_hf.cli", "search", "--recipe", str(recipe), "--output-dir",
                           str(run), "--resume"], env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = records(run)
    assert len(rows) == len({r["hash"] for r in rows}) == 8  # nothing trained twice
    assert [r for r in rows if r["hash"] in {k["hash"] for k in kept}] == kept


# -- 6 and 7: the final training uses the full training split; its section can be corrected ---------
def test_retrain_uses_the_full_training_split_unless_the_recipe_says_otherwise(tmp_path, capsys):
    recipe = write_recipe(tmp_path / "tiny.yaml", tmp_path / "cache")
    run = tmp_path / "run"
    assert main(["search", "--recipe", str(recipe), "--output-dir", str(run)]) == 0
    assert main(["retrain", "--run", str(run)]) == 0
    summary = json.loads((run / "retrain.json").read_text())
    digits_train = 1797 - round(0.2 * 1797)  # every image but the fixed 20% test split
    assert summary["data"]["train_images"] == digits_train and summary["use_val"] is True
    assert "max_train_per_class" not in summary["data"]["settings"]
    report = (run / "report.md").read_text()
    assert "## Final training" in report and f"{digits_train} training images (training + validation split)" in report

    # a typo in the retrain section is caught before the search trains anything
    bad = write_recipe(tmp_path / "bad.yaml", tmp_path / "cache", retrain={"epoch": 3})
    capsys.readouterr()
    assert main(["search", "--recipe", str(bad), "--output-dir", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert "retrain.epoch: unknown setting (did you mean 'retrain.epochs'?)" in err and not (tmp_path / "never").exists()
    # a corrected retrain section: resume accepts it (the search is kept), retrain reads it
    fixed = write_recipe(tmp_path / "fixed.yaml", tmp_path / "cache",
                         retrain={**TINY["retrain"], "data": {"max_train_per_class": 30}})
    assert main(["search", "--recipe", str(fixed), "--output-dir", str(run), "--resume"]) == 0
    assert json.loads((run / "state.json").read_text())["config"]["retrain"]["data"] == {"max_train_per_class": 30}
    assert main(["retrain", "--run", str(run)]) == 0
    summary = json.loads((run / "retrain.json").read_text())
    assert summary["data"]["train_images"] == 300 and summary["data"]["settings"]["max_train_per_class"] == 30
    assert "300 training images" in (run / "report.md").read_text()
    assert (run / "report.md").read_text().count("## Final training") == 1
    # or from another recipe without touching the run
    assert main(["retrain", "--run", str(run), "--recipe", str(recipe)]) == 0
    assert json.loads((run / "retrain.json").read_text())["data"]["train_images"] == digits_train
    capsys.readouterr()
    assert main(["retrain", "--run", str(run), "--recipe", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "retrain.epoch" in err and "the search is kept" in err


# -- 9: the size budget ----------------------------------------------------------------------------
ENORMOUS = [{"kind": "Conv", "width": 4096, "stride": 1}] * 60


def test_an_enormous_genome_is_refused_before_allocation(tmp_path):
    config = SearchedNetConfig(genome=ENORMOUS, num_channels=3, image_size=32)
    started = time.perf_counter()
    with pytest.raises(GenomeBudgetError, match=r"8,90\d,\d+,\d+ parameters .budget 200,000,000.*max_parameters"):
        SearchedNetForImageClassification(config)
    assert time.perf_counter() - started < 10  # measured on the meta device, nothing allocated
    config.save_pretrained(tmp_path / "enormous")  # a config.json someone published, with (empty) weights
    save_file({}, str(tmp_path / "enormous" / "model.safetensors"))
    started = time.perf_counter()
    with pytest.raises(GenomeBudgetError, match="too large"):
        AutoModelForImageClassification.from_pretrained(tmp_path / "enormous")
    assert time.perf_counter() - started < 10
    # the budget is the config's, and can be overridden
    small = [{"kind": "Conv", "width": 64, "stride": 1}] * 2
    with pytest.raises(GenomeBudgetError, match="budget 1,000"):
        SearchedNetForImageClassification(SearchedNetConfig(genome=small, num_channels=1, max_parameters=1000))
    model = SearchedNetForImageClassification(SearchedNetConfig(genome=small, num_channels=1))
    model.config.max_parameters = 1000
    model.save_pretrained(tmp_path / "strict")
    with pytest.raises(GenomeBudgetError):
        AutoModelForImageClassification.from_pretrained(tmp_path / "strict")
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path / "strict", max_parameters=None)
    assert sum(p.numel() for p in loaded.parameters()) == measure_genome(small, 1, 2, 32).parameters
    with pytest.raises(ValueError, match="max_activations must be a positive int"):
        SearchedNetConfig(genome=small, max_activations=0)


def test_the_search_never_trains_a_genome_past_the_budget(tmp_path):
    """Proposals past max_params are repaired (narrower or fewer blocks) before training; the
    record says what the repair did and why, and nothing over the budget is trained."""
    data = load_image_data("digits", max_train_per_class=20, val_fraction=0.25, progress=False,
                           cache_dir=tmp_path / "cache")
    settings = {**TINY, "population_size": 4, "output_dir": str(tmp_path / "run")}
    strategy = create_strategy("ga", population_size=4, min_blocks=10, max_blocks=10, widths=(8,), max_downsamples=3)
    sizes = sorted(measure_genome(g, 1, 10, 32).parameters
                   for g in strategy.initial_population(random.Random(0)))
    budget = sizes[1]  # two of the four fit as proposed
    result = NASSearcher(SearchConfig.from_dict({**settings, "max_parameters": budget}), dataset=data).run()
    rows = records(tmp_path / "run")
    assert len(rows) == 4 and all(r["status"] == "ok" and r["parameters"] <= budget for r in rows)
    repaired = [r for r in rows if r.get("budget_repair")]
    assert len(repaired) == 2
    assert all("max_params" in r["budget_repair"]["reason"] and r["budget_repair"]["fitted"] for r in repaired)
    assert measure_genome(result.best_genome, 1, 10, 32).parameters <= budget


def test_a_budget_nothing_fits_is_refused_with_a_clear_error(tmp_path):
    data = load_image_data("digits", max_train_per_class=20, val_fraction=0.25, progress=False,
                           cache_dir=tmp_path / "cache")
    settings = {**TINY, "population_size": 2, "output_dir": str(tmp_path / "run"), "max_params": 100}  # above the classifier floor, below any network
    with pytest.raises(ValueError, match=r"no genome of generation 0 fits the budget.*max_params"):
        NASSearcher(SearchConfig.from_dict(settings), dataset=data).run()
    rows = records(tmp_path / "run")
    assert rows and all(r["status"] == "budget" and r["trainable_parameters"] == 0 and r["seconds"] < 30
                        and "too large" in r["reason"] for r in rows)
