"""A user's mistakes give one clear line and exit status 2, before anything trains and with
nothing lost (issue 10, cases 7, 8 and 12): bad recipes (search and GPT training), a cut or
empty ``state.json``, an unreachable Hub, ``package-model`` into a used directory."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import gptnas_hf
from gptnas_hf.cli import main
from gptnas_hf.recipe_config import RecipeError, check_training_arguments
from gptnas_hf.search.searcher import SearchConfig
from test_trust_runs import TINY  # the tiny search settings of the trust tests

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hf_gptnasTESTtoken_0a1b2c3d4e5f6789"


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gptnas ") and ": error: " in lines[0], err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    recipe = root / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({**TINY, "data": {**TINY["data"], "cache_dir": str(root / "cache")}}))
    assert main(["search", "--recipe", str(recipe), "--output-dir", str(root / "run")]) == 0
    return recipe, root / "run"


# -- 7 and 8: search recipes ----------------------------------------------------------------------
BAD_SEARCH_RECIPES = {
    "invalid YAML": ("population_size: [4\nseed: 0\n", ["not valid YAML", "line 2"]),
    "quoted int": ({"population_size": "4"}, ["population_size: expected an integer, got '4' (str)"]),
    "zero batch": ({"evaluation": {"batch_size": 0}}, ["evaluation.batch_size: must be at least 1, got 0"]),
    "nested typo": ({"evaluation": {"train_scop": "full"}},
                    ["evaluation.train_scop: unknown setting", "did you mean 'evaluation.train_scope'", "lr_schedule"]),
    "bad choice": ({"evaluation": {"train_scope": "most"}}, ["evaluation: train_scope must be one of"]),
    "quoted float": ({"evaluation": {"lr": "1e-3"}}, ["evaluation.lr: expected a number", "write 1.0e-3"]),
    "retrain typo": ({"retrain": {"lr_stepp": 10}}, ["retrain.lr_stepp", "did you mean 'retrain.lr_step'"]),
    "retrain data typo": ({"retrain": {"data": {"max_train": 5}}}, ["retrain.data.max_train: unknown setting"]),
    "data type": ({"data": {"val_fraction": "0.1"}}, ["data.val_fraction: expected a number"]),
    "data range": ({"data": {"val_fraction": 1.5}}, ["data.val_fraction: must be in [0, 1)"]),
    "top-level typo": ({"generatons": 3}, ["generatons: unknown setting", "did you mean 'generations'"]),
    "width list": ({"widths": [8, "16"]}, ["widths[1]: expected an integer"]),
    "unknown strategy": ({"strategy": "evolution"}, ["strategy: must be a registered strategy"]),
    "bool as string": ({"use_gpt": "yes"}, ["use_gpt: expected true or false"]),
    "section not a mapping": ({"evaluation": [1, 2]}, ["evaluation: expected a mapping"]),
    "not a mapping": ("- a\n- b\n", ["not a YAML mapping"]),
    "budget": ({"max_params": 0}, ["max_params: must be at least 1"]),
}


@pytest.mark.parametrize("case", sorted(BAD_SEARCH_RECIPES))
def test_a_bad_search_recipe_is_one_clear_line_before_anything_runs(tmp_path, capsys, case):
    change, fragments = BAD_SEARCH_RECIPES[case]
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(change if isinstance(change, str) else yaml.safe_dump({**TINY, **change}))
    code, _, err = cli(capsys, "search", "--recipe", recipe, "--output-dir", tmp_path / "run")
    assert code == 2
    one_error_line(err, str(recipe), *fragments)
    assert not (tmp_path / "run").exists()  # nothing ran


def test_typed_sections_through_the_python_api():
    with pytest.raises(RecipeError, match=r"evaluation\.train_scop: unknown setting.*known keys of 'evaluation'"):
        SearchConfig(evaluation={"train_scop": "full"})
    with pytest.raises(RecipeError, match="population_size: must be at least 2"):
        SearchConfig(population_size=1)
    with pytest.raises(RecipeError, match="max_blocks: must be at least min_blocks"):
        SearchConfig(min_blocks=12, max_blocks=10)
    config = SearchConfig(widths=[8, 16], evaluation={"lr": 1})  # an int where a number is expected is fine
    assert config.widths == (8, 16)
    assert SearchConfig.from_dict(config.to_dict()) == config


# -- 8: state.json cut or emptied ------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["cut", "empty"])
def test_a_cut_or_empty_state_names_the_file_and_the_way_out(tmp_path, capsys, finished_run, damage):
    recipe, original = finished_run
    run = tmp_path / "run"
    shutil.copytree(original, run)
    before = (run / "evaluations.jsonl").read_text()
    text = (run / "state.json").read_text()
    (run / "state.json").write_text(text[: len(text) // 2] if damage == "cut" else "")
    for argv in (["search", "--recipe", recipe, "--output-dir", run, "--resume"], ["retrain", "--run", run],
                 ["export", "--run", run, "--out", tmp_path / "model"]):
        code, _, err = cli(capsys, *argv)
        assert code == 2
        one_error_line(err, str(run / "state.json"), "empty" if damage == "empty" else "cut or corrupt",
                       "evaluations.jsonl", "mv ")
    assert not (tmp_path / "model").exists()
    # the way out: move it aside, run the same command again; nothing is trained again
    (run / "state.json").rename(run / "state.json.bad")
    code, out, _ = cli(capsys, "search", "--recipe", recipe, "--output-dir", run)
    assert code == 0 and (run / "evaluations.jsonl").read_text() == before
    rebuilt, lost = json.loads((run / "state.json").read_text()), json.loads((original / "state.json").read_text())
    assert (rebuilt["population"], rebuilt["history"], rebuilt["phase"]) == (lost["population"], lost["history"], "done")


# -- 7: GPT training recipes ------------------------------------------------------------------------------
BAD_GPT_RECIPES = {
    "top-level typo": ({"eval_fracton": 0.1}, ["eval_fracton: unknown setting", "did you mean 'eval_fraction'"]),
    "training typo": ({"training": {"learnig_rate": 1.0e-3}},
                      ["training.learnig_rate: unknown TrainingArguments setting", "'training.learning_rate'"]),
    "model typo": ({"model": {"n_layers": 2}}, ["model.n_layers: unknown setting", "did you mean 'model.n_layer'"]),
    "ill-typed": ({"seed": "0"}, ["seed: expected an integer"]),
    "no corpus": ({"corpus": None}, ["corpus"]),
}


@pytest.mark.parametrize("case", sorted(BAD_GPT_RECIPES))
def test_a_bad_gpt_training_recipe_is_one_clear_line(tmp_path, capsys, case):
    change, fragments = BAD_GPT_RECIPES[case]
    recipe = yaml.safe_load((REPO / "recipes" / "finetune-cpu.yaml").read_text())
    recipe["training"]["output_dir"] = str(tmp_path / "out")
    recipe.update(change)
    if change.get("corpus", 0) is None:
        recipe.pop("corpus")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe))
    code, _, err = cli(capsys, "train", "--recipe", path)
    assert code == 2
    one_error_line(err, str(path), *fragments)
    assert not (tmp_path / "out").exists()


def test_the_final_training_drops_the_search_subsets():
    from gptnas_hf.recipe_config import retrain_data_settings

    search = yaml.safe_load((REPO / "recipes" / "search-imagenet.yaml").read_text())["data"]
    assert retrain_data_settings(search, {}) == {"image_size": 224, "train_subset_fraction": 1.0}  # not the 10%
    assert retrain_data_settings({"max_train_per_class": 250, "max_test": 2000, "val_fraction": 0.2},
                                 {"data": {"max_test": 500}}) == {"val_fraction": 0.2, "train_subset_fraction": 1.0,
                                                                  "max_test": 500}
    with pytest.raises(RecipeError, match="retrain.data.image_size: must be at least 1"):
        retrain_data_settings({}, {"data": {"image_size": 0}})


def test_training_arguments_errors_name_the_section(tmp_path):
    with pytest.raises(RecipeError, match="training: .*lr_scheduler_type|training: .*bogus"):
        check_training_arguments({"output_dir": str(tmp_path), "lr_scheduler_type": "bogus"})


def test_every_shipped_recipe_passes_the_checks():
    from gptnas_hf.training import load_recipe

    for path in sorted((REPO / "recipes").glob("*.yaml")):
        recipe = yaml.safe_load(path.read_text())
        if "corpus" in recipe:
            load_recipe(path)
        else:
            SearchConfig.from_yaml(path)


# -- 8: the Hub cannot be reached ---------------------------------------------------------------------------
@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}, {"HF_HUB_OFFLINE": "1"}],
                         ids=["connection-refused", "offline"])
def test_push_without_the_hub_is_one_line_and_never_shows_the_token(tmp_path, finished_run, env):
    _, run = finished_run
    done = subprocess.run([sys.executable, "-m", "gptnas_hf.cli", "push", "--run", str(run), "--repo-id",
                           "someone/gptnas-digits", "--token", TOKEN, "--weights", "init"],
                          env={**os.environ, "OMP_NUM_THREADS": "1", **env}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    error = [line for line in done.stderr.splitlines() if line.startswith("gptnas push: error:")]
    assert len(error) == 1 and "the Hub could not be reached or refused the request" in error[0]
    assert "Traceback" not in done.stderr and TOKEN not in done.stderr + done.stdout


# -- 12: package-model writes all or nothing ---------------------------------------------------------------
def test_package_model_refuses_a_used_directory_and_writes_nothing_partial(tmp_path, capsys):
    model = gptnas_hf.DEFAULT_MODEL
    card = tmp_path / "card.md"
    card.write_text("# a card\n")
    out = tmp_path / "out"
    code, _, err = cli(capsys, "package-model", "--model", model, "--out", out, "--model-card", tmp_path / "missing.md")
    assert code == 2
    one_error_line(err, "missing.md", "does not exist")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["card.md"]  # nothing partial

    untokenized = tmp_path / "no-tokenizer"
    shutil.copytree(model, untokenized)
    (untokenized / "tokenizer.json").unlink()
    code, _, err = cli(capsys, "package-model", "--model", untokenized, "--out", out, "--model-card", card)
    assert code == 2
    one_error_line(err, "has no tokenizer", "tokenizer.json")
    assert not out.exists()
    shutil.rmtree(untokenized)

    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code, _, err = cli(capsys, "package-model", "--model", model, "--out", out, "--model-card", card)
    assert code == 2
    one_error_line(err, "is not empty", "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]

    code, out_text, _ = cli(capsys, "package-model", "--model", model, "--out", out, "--model-card", card, "--overwrite")
    assert code == 0 and "model.safetensors" in out_text
    assert "mine.txt" not in [p.name for p in out.iterdir()] and (out / "README.md").read_text() == "# a card\n"
    config = json.loads((out / "config.json").read_text())  # served through remote code (test_hub loads it)
    assert config["custom_pipelines"]["nas-reconstruction"]["impl"] == "pipeline_nas_reconstruction.NASReconstructionPipeline"
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_gptnas.GPTNASForArchitectureModeling"
    assert (out / "pipeline_nas_reconstruction.py").is_file() and (out / "modeling_gptnas.py").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.md", "out"]  # no staging left behind


def test_a_bad_value_from_the_command_line_is_blamed_on_its_option_not_the_recipe(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "gptnas_hf.cli", "search", "--recipe", "recipes/quickstart.yaml",
                           "--max-params", "0", "--output-dir", str(tmp_path / "run")],
                          capture_output=True, text=True, cwd=repo, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2
    assert done.stderr.strip() == ("gptnas search: error: --max-params (over recipe 'recipes/quickstart.yaml'): "
                                   "must be at least 1, got 0")
    bad = tmp_path / "bad.yaml"  # the same mistake in the file is blamed on the file
    bad.write_text(yaml.safe_dump({**yaml.safe_load((repo / "recipes" / "quickstart.yaml").read_text()), "max_params": 0}))
    from gptnas_hf.recipe_config import RecipeError
    from gptnas_hf.search.searcher import SearchConfig

    with pytest.raises(RecipeError, match=r"^recipe '.*bad.yaml': max_params: must be at least 1"):
        SearchConfig.from_yaml(bad)
