"""Searched networks as transformers models, their export and the Hub uploads (HfApi patched:
nothing here reaches the network). One torch thread: tests/conftest.py."""

import json
import logging
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import HfApi, ModelCard, RepoUrl
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification, pipeline

import gptnas_hf
from gptnas_hf import SearchedNetConfig, SearchedNetForImageClassification, SearchedNetImageProcessor
from gptnas_hf.cli import main
from gptnas_hf.data import normalize
from gptnas_hf.encoding import trace
from gptnas_hf.hub import export_architecture_model, export_run, push_architecture_model, push_run
from gptnas_hf.search.retrain import retrain_run
from gptnas_hf.search.searcher import NASSearcher, SearchConfig
from gptnas_hf.search_space import Genome, build_network, sample_genome

from conftest import tiny_search

TOKEN = "hf_gptnasTESTtoken_9f3a1c7e5b2d4086"
REPO_ROOT = Path(__file__).resolve().parents[1]

TINY = tiny_search(generations=1, use_gpt=False, data=None,
                   retrain={"epochs": 1, "batch_size": 32, "max_batches_per_epoch": 2, "augment": False,
                            "progress": False})
RUN_FILES = ["README.md", "block_labels.py", "builtin_kinds.py", "config.json", "encoding.py", "genome_budget.py",
             "genome_network.py", "genome_schema.py", "image_processing_searched.py", "kind_registry.py",
             "model.safetensors", "modeling_searched.py", "preprocessor_config.json", "progress.png",
             "search_space_protocol.py", "space_nas_bench_201.py", "value_checks.py"]
GPT_FILES = ["README.md", "architecture_score.py", "block_labels.py", "builtin_kinds.py", "config.json",
             "configuration_gptnas.py", "default_model.py", "encoding.py", "generation_config.json", "genome_network.py",
             "genome_sampler.py", "genome_schema.py", "kind_registry.py", "mask_schedule.py", "model.safetensors",
             "modeling_gptnas.py", "pipeline_nas_reconstruction.py", "search_space_protocol.py", "space_blocks.py",
             "space_nas_bench_201.py", "tokenization_gptnas.py", "tokenizer.json", "tokenizer_config.json",
             "unit_reconstruction.py", "value_checks.py"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("hub")


@pytest.fixture(scope="module")
def data(digits):
    return digits  # conftest's, shared by the search tests


@pytest.fixture(scope="module")
def searched_run(workdir, data):
    """A finished tiny GA search on digits (1 channel, 32x32), not retrained."""
    settings = {**TINY, "data": {"max_train_per_class": 20, "val_fraction": 0.25, "cache_dir": str(workdir / "cache")},
                "output_dir": str(workdir / "search")}
    NASSearcher(SearchConfig.from_dict(settings), dataset=data).run()
    return workdir / "search"


@pytest.fixture(scope="module")
def retrained_run(workdir, searched_run):
    run = workdir / "retrained"
    shutil.copytree(searched_run, run)
    retrain_run(run)
    return run


@pytest.fixture(scope="module")
def exported(workdir, retrained_run):
    files = export_run(retrained_run, workdir / "model")
    return workdir / "model", files


class FakeHub:
    """HfApi.create_repo / upload_folder stand-ins that record what would have been sent."""

    def __init__(self, monkeypatch, owner="someone"):
        self.created, self.uploads = [], []
        hub = self

        def create_repo(api, repo_id, **kwargs):
            hub.created.append((repo_id, kwargs))
            return RepoUrl(f"https://huggingface.co/{repo_id if '/' in repo_id else owner + '/' + repo_id}")

        def upload_folder(api, *, repo_id, folder_path, **kwargs):
            folder = Path(folder_path)
            files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
            hub.uploads.append({"repo_id": repo_id, "files": files, **kwargs})
            return types.SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/0000000")

        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setattr(HfApi, "create_repo", create_repo)
        monkeypatch.setattr(HfApi, "upload_folder", upload_folder)


def pil_rgb(size=(40, 50), seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8), "RGB")


# ---------------------------------------------------------------------------------------------
# the model class


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_save_and_load_give_identical_logits_for_random_genomes(tmp_path, seed):
    genome = sample_genome(seed, widths=(8, 16))
    channels = 1 if seed % 2 else 3
    config = SearchedNetConfig(genome=genome, num_channels=channels, image_size=32, image_mean=[0.4] * channels,
                               image_std=[0.2] * channels, id2label={i: f"class {i}" for i in range(5)},
                               label2id={f"class {i}": i for i in range(5)}, strategy="ga", use_gpt=True,
                               dataset="digits")
    torch.manual_seed(seed)
    model = SearchedNetForImageClassification(config).eval()
    x = torch.randn(2, channels, 32, 32)
    labels = torch.tensor([0, 4])
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["block_labels.py", "builtin_kinds.py", "config.json",
                                                         "encoding.py", "genome_budget.py", "genome_network.py",
                                                         "genome_schema.py", "kind_registry.py", "model.safetensors",
                                                         "modeling_searched.py", "search_space_protocol.py",
                                                         "space_nas_bench_201.py", "value_checks.py"]
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "gptnas-searched" and saved["genome_hash"] == genome.hash()
    assert saved["auto_map"] == {"AutoConfig": "modeling_searched.SearchedNetConfig",
                                 "AutoModelForImageClassification": "modeling_searched.SearchedNetForImageClassification"}
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is SearchedNetForImageClassification
    assert Genome(loaded.config.genome) == genome and loaded.config.num_labels == 5
    with torch.no_grad():
        before, after = model(x, labels=labels), loaded(x, labels=labels)
    assert torch.equal(before.logits, after.logits) and before.logits.shape == (2, 5)
    assert torch.equal(before.loss, torch.nn.functional.cross_entropy(before.logits, labels))
    assert torch.equal(before.loss, after.loss)


def test_config_and_model_reject_what_they_cannot_build():
    with pytest.raises(ValueError, match="num_channels"):
        SearchedNetConfig(genome=sample_genome(0), num_channels=2)
    with pytest.raises(ValueError, match="image_mean"):
        SearchedNetConfig(genome=sample_genome(0), num_channels=1, image_mean=[0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="no genome"):
        SearchedNetForImageClassification(SearchedNetConfig())
    model = SearchedNetForImageClassification(SearchedNetConfig(genome=sample_genome(0, widths=(8,)), num_channels=1))
    with pytest.raises(ValueError, match="N x 1 x H x W"):
        model(torch.zeros(1, 3, 32, 32))
    assert AutoConfig.for_model("gptnas-searched").__class__ is SearchedNetConfig


def test_processor_brings_any_input_to_the_networks_channels():
    gray = SearchedNetImageProcessor.for_input(16, 1, [0.5], [0.25])
    rgb = SearchedNetImageProcessor.for_input(16, 3, [0.5, 0.4, 0.3], [0.2, 0.2, 0.2])
    image = pil_rgb((16, 16))
    expected = (np.asarray(image.convert("L"), dtype=np.float32) / 255.0 - 0.5) / 0.25
    out = gray(image, return_tensors="pt").pixel_values
    assert out.shape == (1, 1, 16, 16)
    np.testing.assert_allclose(out[0, 0].numpy(), expected, atol=1e-5)
    assert gray(np.asarray(image), return_tensors="pt").pixel_values.shape == (1, 1, 16, 16)  # H x W x 3 array
    assert gray(torch.zeros(4, 20, 30, dtype=torch.uint8), return_tensors="pt").pixel_values.shape == (1, 1, 16, 16)
    assert rgb(image.convert("L"), return_tensors="pt").pixel_values.shape == (1, 3, 16, 16)
    assert rgb(torch.zeros(1, 16, 16, dtype=torch.uint8), return_tensors="pt").pixel_values.shape == (1, 3, 16, 16)
    assert rgb(pil_rgb((40, 24)), return_tensors="pt").pixel_values.shape == (1, 3, 16, 16)  # shorter side + crop


# ---------------------------------------------------------------------------------------------
# export


def test_export_of_a_retrained_run(exported, retrained_run, data):
    out, files = exported
    assert files == RUN_FILES
    assert not [p for p in out.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".pickle")]
    genome = Genome.from_json((retrained_run / "best_genome.json").read_text())
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    config = model.config
    assert Genome(config.genome) == genome and config.genome_hash == genome.hash()
    assert (config.num_channels, config.image_size, config.num_labels) == (1, 32, 10)
    assert config.id2label == {i: str(i) for i in range(10)} and config.label2id["7"] == 7
    assert config.image_mean == pytest.approx(data.mean.tolist(), abs=1e-6)
    assert config.image_std == pytest.approx(data.std.tolist(), abs=1e-6)
    assert (config.strategy, config.use_gpt, config.dataset) == ("ga", False, "digits")
    # the weights are the run's retrained.safetensors, bit for bit
    reference = build_network(genome, in_channels=1, num_classes=10)
    reference.load_state_dict(load_file(str(retrained_run / "retrained.safetensors")))
    reference.eval()
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x).logits, reference(x))
    processor = AutoImageProcessor.from_pretrained(out)
    assert type(processor) is SearchedNetImageProcessor and processor.num_channels == 1
    # the processor reproduces the search's preprocessing: PIL test images give retrain.json's test accuracy
    images = [Image.fromarray(x[0].numpy(), "L") for x in data.test_x]
    pixel_values = processor(images, return_tensors="pt").pixel_values
    torch.testing.assert_close(pixel_values, normalize(data.test_x, data.mean, data.std), atol=1e-5, rtol=0)
    with torch.no_grad():
        accuracy = (model(pixel_values=pixel_values).logits.argmax(-1) == data.test_y).double().mean().item()
    assert accuracy == pytest.approx(json.loads((retrained_run / "retrain.json").read_text())["test_top1"], abs=1e-6)
    assert (out / "progress.png").read_bytes() == (retrained_run / "progress.png").read_bytes()


def test_pipeline_classifies_pil_images_with_labels_from_id2label(exported, monkeypatch):
    out, _ = exported
    prompts = []

    def no_prompt(*args):  # transformers asks on a terminal when it finds remote code it may not run
        prompts.append(args)
        raise EOFError

    monkeypatch.setattr("builtins.input", no_prompt)
    classify = pipeline("image-classification", model=str(out))
    assert prompts == []
    assert type(classify.model) is SearchedNetForImageClassification
    labels = set(classify.model.config.id2label.values())
    for image in (pil_rgb(), pil_rgb(seed=1).convert("L"), pil_rgb((32, 32), seed=2).convert("RGBA")):
        result = classify(image, top_k=3)
        assert len(result) == 3 and {r["label"] for r in result} <= labels
        assert result[0]["score"] >= result[1]["score"] >= result[2]["score"]
        with torch.no_grad():
            logits = classify.model(**classify.image_processor(image, return_tensors="pt")).logits
        assert result[0]["label"] == classify.model.config.id2label[int(logits.argmax(-1))]


def test_model_card_parses_back_with_the_eval_results(exported, retrained_run):
    out, _ = exported
    card = ModelCard.load(out / "README.md")
    retrain = json.loads((retrained_run / "retrain.json").read_text())
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "image-classification"
    assert {"neural-architecture-search", "gpt-nas", "image-classification"} <= set(card.data.tags)
    assert card.data.metrics == ["accuracy"]
    top1, top5 = card.data.eval_results
    assert (top1.task_type, top1.dataset_name, top1.dataset_split, top1.metric_type) == (
        "image-classification", "digits", "test", "accuracy")
    assert top1.metric_value == pytest.approx(retrain["test_top1"], abs=1e-4)
    assert top5.metric_value == pytest.approx(retrain["test_top5"], abs=1e-4)
    text = card.text
    genome = Genome.from_json((retrained_run / "best_genome.json").read_text())
    for block in genome.to_list():
        assert json.dumps(block) in text
    assert "![search progress" in text and "(progress.png)" in text
    assert 'pipeline("image-classification"' in text and "import gptnas_hf" in text
    assert "population 4, 1 generation after" in text and "GPT reconstruction: off" in text
    assert f"{sum(p.numel() for p in build_network(genome, 1, 10).parameters()):,}" in text
    listing = text.split("<details>")[1].split("```")[1].strip().splitlines()
    layers = trace(build_network(genome, 1, 10), (1, 32, 32))
    assert listing == [f"{layer.block}\t{layer.text}" for layer in layers]
    assert listing[0].startswith(f"{genome[0]['kind']}\tid:1;in_size:32-32-1;")
    assert "untrained" not in text.lower()


def test_export_without_retraining_warns_and_says_so(tmp_path, searched_run):
    with pytest.raises(FileNotFoundError, match="retrained.safetensors"):
        export_run(searched_run, tmp_path / "strict", weights="retrained")
    with pytest.warns(UserWarning, match="UNTRAINED"):
        files = export_run(searched_run, tmp_path / "init")
    assert files == RUN_FILES
    card = ModelCard.load(tmp_path / "init" / "README.md")
    assert "**Warning: these weights are untrained.**" in card.text
    assert "did not finish" not in card.text  # the search did finish
    # no accuracy in model-index: none was measured on these weights
    assert not card.data.eval_results and "model-index" not in card.content
    best = max(json.loads(line)["fitness"] for line in (searched_run / "evaluations.jsonl").read_text().splitlines())
    assert f"validation top-1 {best:.4f} during the search" in card.text and "**not** an accuracy" in card.text
    with pytest.raises(FileExistsError, match="not empty"):
        export_run(searched_run, tmp_path / "init")


def test_export_of_a_retrained_run_with_init_weights_says_why(tmp_path, retrained_run):
    with pytest.warns(UserWarning, match="weights='init' was asked for"):
        export_run(retrained_run, tmp_path / "init", weights="init")
    card = ModelCard.load(tmp_path / "init" / "README.md")
    assert 'The run was exported with `weights="init"`' in card.text
    assert not card.data.eval_results
    stale = tmp_path / "stale"
    shutil.copytree(retrained_run, stale)
    summary = json.loads((stale / "retrain.json").read_text())
    (stale / "retrain.json").write_text(json.dumps({**summary, "genome_hash": "0" * 40}))
    with pytest.raises(ValueError, match="retrain the run again"):
        export_run(stale, tmp_path / "stale-model")
    assert not (tmp_path / "stale-model").exists()


def test_exports_load_without_the_package(tmp_path, exported):
    """trust_remote_code=True with ``import gptnas_hf`` made impossible: the searched classifier
    and the architecture GPT's nas-reconstruction pipeline run from the files alone."""
    out, _ = exported
    gpt = tmp_path / "gpt"
    assert export_architecture_model(gptnas_hf.DEFAULT_MODEL, gpt) == GPT_FILES
    genome = sample_genome(0)
    (tmp_path / "genome.json").write_text(genome.to_json())
    script = """
import json, sys
sys.modules["gptnas_hf"] = None  # any import of the package fails
import torch
torch.set_num_threads(1)
from transformers import AutoModelForImageClassification, pipeline
gpt, classifier, genome = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
rebuilt = pipeline("nas-reconstruction", model=gpt, trust_remote_code=True)(genome, mask_rate=0.5, seed=0)
model = AutoModelForImageClassification.from_pretrained(classifier, trust_remote_code=True).eval()
torch.manual_seed(0)
with torch.no_grad():
    logits = model(torch.randn(2, 1, 32, 32)).logits
import numpy as np
from PIL import Image
image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8), "RGB")
classify = pipeline("image-classification", model=classifier, trust_remote_code=True)
print(json.dumps({"rebuilt": rebuilt, "logits": logits.tolist(), "model_module": type(model).__module__,
                  "processor_module": type(classify.image_processor).__module__,
                  "pixel_values": list(classify.image_processor(image, return_tensors="pt").pixel_values.shape),
                  "labels": [r["label"] for r in classify(image, top_k=3)]}))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    done = subprocess.run([sys.executable, "-c", script, str(gpt), str(out), str(tmp_path / "genome.json")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    remote = json.loads(done.stdout.strip().splitlines()[-1])
    assert remote["model_module"].startswith("transformers_modules.")
    assert remote["processor_module"].startswith("transformers_modules.")
    assert remote["pixel_values"] == [1, 1, 32, 32] and set(remote["labels"]) <= {str(i) for i in range(10)}
    local = pipeline("nas-reconstruction", model=gptnas_hf.DEFAULT_MODEL)(genome, mask_rate=0.5, seed=0)
    assert remote["rebuilt"]["genome"] == local["genome"]
    assert remote["rebuilt"]["predicted_blocks"] == local["predicted_blocks"]
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        assert model(torch.randn(2, 1, 32, 32)).logits.tolist() == remote["logits"]


# ---------------------------------------------------------------------------------------------
# push


def assert_token_nowhere(hub, capsys, caplog):
    out, err = capsys.readouterr()
    assert TOKEN not in out and TOKEN not in err and TOKEN not in caplog.text
    for upload in hub.uploads:
        for name, content in upload["files"].items():
            assert TOKEN.encode() not in content, name


def test_push_run_uploads_the_export_in_one_commit(monkeypatch, capsys, caplog, retrained_run):
    caplog.set_level(logging.DEBUG)
    hub = FakeHub(monkeypatch)
    commit = push_run(retrained_run, "someone/gptnas-digits", private=True, token=TOKEN)
    assert commit.commit_url.startswith("https://huggingface.co/someone/gptnas-digits")
    assert hub.created == [("someone/gptnas-digits", {"private": True, "exist_ok": True})]
    (upload,) = hub.uploads
    assert upload["repo_id"] == "someone/gptnas-digits" and sorted(upload["files"]) == RUN_FILES
    assert upload["commit_message"] == "Upload a network found by gptnas-hf"
    readme = upload["files"]["README.md"].decode()
    assert 'model="someone/gptnas-digits"' in readme
    assert_token_nowhere(hub, capsys, caplog)


def test_push_run_without_a_namespace_names_the_full_repo_in_the_card(monkeypatch, capsys, caplog, retrained_run):
    caplog.set_level(logging.DEBUG)
    hub = FakeHub(monkeypatch, owner="alice")
    assert main(["push", "--run", str(retrained_run), "--repo-id", "gptnas-digits", "--token", TOKEN]) == 0
    assert hub.created == [("gptnas-digits", {"private": False, "exist_ok": True})]
    (upload,) = hub.uploads
    assert upload["repo_id"] == "alice/gptnas-digits"
    assert 'model="alice/gptnas-digits"' in upload["files"]["README.md"].decode()
    assert_token_nowhere(hub, capsys, caplog)


def test_push_model_uploads_weights_code_pipeline_tokenizer_and_card(monkeypatch, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    hub = FakeHub(monkeypatch)
    code = main(["push-model", "--model", gptnas_hf.DEFAULT_MODEL, "--repo-id", "someone/gptnas-gpt",
                 "--token", TOKEN, "--private"])
    assert code == 0
    assert hub.created == [("someone/gptnas-gpt", {"private": True, "exist_ok": True})]
    (upload,) = hub.uploads
    files = upload["files"]
    assert sorted(files) == GPT_FILES
    assert files["README.md"] == (REPO_ROOT / "model_card.md").read_bytes()
    assert files["model.safetensors"] == (Path(gptnas_hf.DEFAULT_MODEL) / "model.safetensors").read_bytes()
    config = json.loads(files["config.json"])
    assert config["custom_pipelines"] == {"nas-reconstruction": {
        "impl": "pipeline_nas_reconstruction.NASReconstructionPipeline", "pt": ["AutoModelForCausalLM"], "type": "text"}}
    assert config["auto_map"] == {"AutoConfig": "configuration_gptnas.GPTNASConfig",
                                  "AutoModelForCausalLM": "modeling_gptnas.GPTNASForArchitectureModeling"}
    for name, content in files.items():  # flat relative imports only: what the Hub's remote-code loader follows
        if name.endswith(".py"):
            for line in content.decode().splitlines():
                assert not line.lstrip().startswith("from ..") and "from .search." not in line
    assert "https://huggingface.co/someone/gptnas-gpt/commit/" in capsys.readouterr().out
    assert_token_nowhere(hub, capsys, caplog)


# ---------------------------------------------------------------------------------------------
# clear errors


def test_clear_errors(tmp_path, monkeypatch, capsys, searched_run):
    hub = FakeHub(monkeypatch)
    for bad in ("a/b/c", "has space/model", "", "-leading/dash"):
        with pytest.raises(ValueError, match="invalid repo id"):
            push_run(searched_run, bad)
        with pytest.raises(ValueError, match="invalid repo id"):
            push_architecture_model(gptnas_hf.DEFAULT_MODEL, bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        push_run(tmp_path / "missing", "someone/model")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_run(tmp_path / "missing", tmp_path / "out")
    no_best = tmp_path / "no-best"
    shutil.copytree(searched_run, no_best)
    (no_best / "best_genome.json").unlink()
    with pytest.raises(FileNotFoundError, match="no best genome"):
        push_run(no_best, "someone/model")
    no_weights = tmp_path / "no-weights"
    shutil.copytree(gptnas_hf.DEFAULT_MODEL, no_weights)
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no weights"):
        push_architecture_model(no_weights, "someone/model")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        push_architecture_model(tmp_path / "missing", "someone/model")
    assert hub.created == [] and hub.uploads == []  # nothing reached the Hub
    assert not (tmp_path / "out").exists()
    capsys.readouterr()
    assert main(["push", "--run", str(searched_run), "--repo-id", "a/b/c"]) == 2
    assert "invalid repo id 'a/b/c'" in capsys.readouterr().err
    assert main(["push-model", "--model", str(no_weights), "--repo-id", "someone/model"]) == 2
    assert "no weights" in capsys.readouterr().err
