"""The GPT that adapts during the search: fine-tuned on the best genomes after each
generation, from the pretrained weights each time, saved in the run, resumed exactly."""

import json

import pytest
import torch

from gptnas_hf.recipe_config import RecipeError
from gptnas_hf.search.adaptation import top_genomes
from gptnas_hf.search.run_directory import RunDirectory
from gptnas_hf.search.searcher import NASSearcher, SearchConfig

from conftest import tiny_search

TINY = tiny_search(min_blocks=6, max_blocks=8, max_downsamples=2,
                   gpt_adaptation={"top_fraction": 0.5, "steps": 3, "lr": 1e-3, "replay": 0.5, "batch_size": 4})


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "evaluations.jsonl").read_text().splitlines()]


def test_top_genomes_takes_the_best_trained_share():
    rows = [{"hash": h, "fitness": f, "status": s, "genome": [h]}
            for h, f, s in (("a", 0.1, "ok"), ("b", 0.9, "ok"), ("c", 0.5, "ok"), ("d", 0.99, "budget"))]
    assert top_genomes(rows, 0.5) == [["b"], ["c"]] and top_genomes(rows, 0.01) == [["b"], ["c"]]


def test_the_adapted_gpt_is_saved_leaves_the_pretrained_one_alone_and_resumes_exactly(tmp_path, digits):
    from transformers import pipeline

    from gptnas_hf import DEFAULT_MODEL

    pipe = pipeline("nas-reconstruction", model=DEFAULT_MODEL)
    before = {k: v.clone() for k, v in pipe.model.state_dict().items()}
    straight = NASSearcher(SearchConfig.from_dict({**TINY, "output_dir": str(tmp_path / "straight")}), dataset=digits,
                           model=pipe)
    result = straight.run()
    assert all(torch.equal(v, pipe.model.state_dict()[k]) for k, v in before.items())  # the caller's model
    adapted = RunDirectory(tmp_path / "straight").adapted_gpt_path
    info = json.loads((adapted / "adaptation.json").read_text())
    assert (adapted / "model.safetensors").is_file() and info["generation"] == 1 and info["genomes"] >= 2
    assert info["windows"] > 0 and info["replay_windows"] > 0 and info["steps"] == 3
    loaded = pipeline("nas-reconstruction", model=str(adapted))  # a usable checkpoint
    assert any(not torch.equal(v, before[k]) for k, v in loaded.model.state_dict().items() if k in before)
    state = json.loads((tmp_path / "straight" / "state.json").read_text())
    assert [("adaptation_seconds" in h) for h in state["history"]] == [True, True, False]

    # the same search stopped after generation 1, then resumed: the same records and best genome
    stopped = NASSearcher(SearchConfig.from_dict({**TINY, "output_dir": str(tmp_path / "stopped")}), dataset=digits,
                          model=pipe)
    real = stopped._save_state

    def stop_after_generation_1(state):
        real(state)
        if state["generation"] == 2 and state["phase"] != "done":
            raise KeyboardInterrupt("stopped")

    stopped._save_state = stop_after_generation_1
    with pytest.raises(KeyboardInterrupt):
        stopped.run()
    resumed = NASSearcher(SearchConfig.from_dict({**TINY, "output_dir": str(tmp_path / "stopped")}), dataset=digits,
                          model=pipe).run(resume=True)
    key = lambda rows: sorted((r["hash"], r["fitness"], r["reconstructed"]) for r in rows)
    assert key(records(tmp_path / "straight")) == key(records(tmp_path / "stopped"))
    assert resumed.best_genome == result.best_genome


def test_adaptation_settings_are_checked():
    with pytest.raises(RecipeError, match="gpt_adaptation"):
        SearchConfig.from_dict({"gpt_adaptation": {"top_fraction": 0}})
    with pytest.raises(RecipeError, match="gpt_adaptation.*stepz"):
        SearchConfig.from_dict({"gpt_adaptation": {"stepz": 3}})


def test_the_adapted_arm_from_the_cli_and_its_export(tmp_path):
    import yaml
    from transformers import pipeline

    from gptnas_hf.cli import main

    recipe = tmp_path / "adapt.yaml"
    recipe.write_text(yaml.safe_dump({**TINY, "generations": 1, "population_size": 3,
                                      "data": {**TINY["data"], "cache_dir": str(tmp_path / "cache")},
                                      "gpt_adaptation": {**TINY["gpt_adaptation"], "replay": 0.0}}))
    run = tmp_path / "run"
    assert main(["search", "--recipe", str(recipe), "--output-dir", str(run)]) == 0
    assert main(["export", "--run", str(run), "--gpt", "--out", str(tmp_path / "gpt")]) == 0
    card = (tmp_path / "gpt" / "README.md").read_text()
    assert "adapted during a search" in card and "after\ngeneration 0 of 1" in card
    reconstruct = pipeline("nas-reconstruction", model=str(tmp_path / "gpt"), trust_remote_code=True)
    out = reconstruct([{"kind": "Stem", "width": 8, "stride": 1}, {"kind": "BasicBlock", "width": 8, "stride": 1}],
                      mask_rate=1.0, seed=0, image_size=32, in_channels=1)
    assert out["predicted_blocks"] == [0, 1]
    import shutil

    shutil.rmtree(RunDirectory(run).adapted_gpt_path)  # a run searched without gpt_adaptation has none: a clear error
    assert main(["export", "--run", str(run), "--gpt", "--out", str(tmp_path / "again")]) != 0
