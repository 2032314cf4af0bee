"""Export (and push) of a NAS-Bench-201 search run: a table search through the real searcher, a
tiny final training on digits, then the run as a transformers image classifier with its model
card, loaded with and without the package (HfApi patched: nothing reaches the network). One torch
thread: tests/conftest.py."""

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard, RepoUrl
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

from gptnas_hf import SearchedNetConfig, SearchedNetForImageClassification, SearchedNetImageProcessor
from gptnas_hf.cli import main
from gptnas_hf.data import load_image_data, normalize
from gptnas_hf.genome_budget import GenomeBudgetError
from gptnas_hf.hub import export_run, push_run
from gptnas_hf.search.retrain import retrain_run
from gptnas_hf.search.searcher import NASSearcher, SearchConfig
from gptnas_hf.space_nas_bench_201 import Cell, NASBench201Network, NASBench201Space

from conftest import SEARCH_DIGITS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root holds bench/
from bench.nas_bench_201 import synthetic_table  # noqa: E402

TOKEN = "hf_gptnasTESTtoken_0b5d2e8c7a1f4963"
SPACE = NASBench201Space()
#: the code an export carries: modeling_searched.py and every flat module it imports (space_nas_bench_201.py
#: among them), and the image processor's
CODE = {"modeling_searched.py", "space_nas_bench_201.py", "search_space_protocol.py", "encoding.py",
        "genome_network.py", "genome_schema.py", "genome_budget.py", "block_labels.py", "image_processing_searched.py",
        "kind_registry.py", "builtin_kinds.py", "value_checks.py"}
QUERIES = 12
CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def synthetic_accuracy(cell: Cell) -> float:
    """A known landscape in percent: 3x3 convolutions help, plus a small deterministic noise."""
    return round(40 + 9 * cell.ops.count("nor_conv_3x3") + (sum(map(ord, str(cell))) % 7) / 10, 4)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("export-nb201")


@pytest.fixture(scope="module")
def table(workdir) -> Path:
    return synthetic_table(workdir / "synthetic.csv", synthetic_accuracy)


@pytest.fixture(scope="module")
def searched_run(workdir, table) -> Path:
    """A finished GA search of the synthetic table (12 queries), not retrained."""
    config = SearchConfig.from_dict({
        "space": "nas-bench-201", "strategy": "ga", "population_size": 4, "generations": 50, "max_queries": QUERIES,
        "use_gpt": False, "fitness": {"table": str(table)}, "dataset": "digits", "seed": 0,
        "data": {**SEARCH_DIGITS, "cache_dir": str(workdir / "cache")},
        "retrain": {"epochs": 1, "batch_size": 64, "max_batches_per_epoch": 2, "lr": 0.05, "augment": False,
                    "progress": False},
        "output_dir": str(workdir / "search"), "progress": False,
    })
    result = NASSearcher(config).run()
    assert result.evaluations == QUERIES
    return workdir / "search"


@pytest.fixture(scope="module")
def retrained_run(workdir, searched_run) -> Path:
    run = workdir / "retrained"
    shutil.copytree(searched_run, run)
    retrain_run(run, dataset="digits", epochs=1)
    return run


@pytest.fixture(scope="module")
def exported(workdir, retrained_run):
    files = export_run(retrained_run, workdir / "model")
    return workdir / "model", files


def best_cell(run: Path) -> Cell:
    return Cell.from_json(json.loads((run / "best_genome.json").read_text()))


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "evaluations.jsonl").read_text().splitlines()]


def retrained_network(run: Path, channels: int = 1) -> NASBench201Network:
    network = NASBench201Network(best_cell(run), in_channels=channels, num_classes=10)
    network.load_state_dict(load_file(str(run / "retrained.safetensors")))
    return network.eval()


# ---------------------------------------------------------------------------------------------
# the config and the model class


def test_config_holds_a_cell_as_its_string_and_refuses_what_it_cannot_build(tmp_path):
    cell = Cell.from_string(CELL)
    config = SearchedNetConfig(genome=list(cell.ops), search_space="nas-bench-201", num_channels=3)
    assert config.genome == CELL and config.genome_hash == SPACE.hash(cell) and config.search_space == "nas-bench-201"
    with pytest.raises(ValueError, match=r"unknown search_space 'nas-bench-101'.*'blocks', 'nas-bench-201'"):
        SearchedNetConfig(genome=CELL, search_space="nas-bench-101")
    with pytest.raises(ValueError, match="conv_7x7"):
        SearchedNetConfig(genome=CELL.replace("nor_conv_1x1", "conv_7x7"), search_space="nas-bench-201")
    with pytest.raises(ValueError, match=r"no genome: pass genome='\|nor_conv_3x3~0\|"):
        SearchedNetForImageClassification(SearchedNetConfig(search_space="nas-bench-201"))
    # the size budget is measured through the cell's network builder before anything is allocated
    with pytest.raises(GenomeBudgetError, match="budget 1,000"):
        SearchedNetForImageClassification(SearchedNetConfig(genome=CELL, search_space="nas-bench-201",
                                                            max_parameters=1000))
    # a config.json written before there was a choice of space holds a block genome
    legacy = SearchedNetConfig(genome=[{"kind": "Conv", "width": 8, "stride": 1}], num_channels=1).to_dict()
    legacy.pop("search_space")
    assert SearchedNetConfig.from_dict(legacy).search_space == "blocks"


def test_save_and_load_give_identical_logits_for_a_cell(tmp_path):
    config = SearchedNetConfig(genome=CELL, search_space="nas-bench-201", num_channels=3, image_size=32,
                               id2label={i: f"class {i}" for i in range(4)},
                               label2id={f"class {i}": i for i in range(4)})
    torch.manual_seed(0)
    model = SearchedNetForImageClassification(config).eval()
    assert type(model.network) is NASBench201Network and str(model.network.cell) == CELL
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert (saved["search_space"], saved["genome"], saved["genome_hash"]) == ("nas-bench-201", CELL, SPACE.hash(CELL))
    assert CODE - {"image_processing_searched.py"} <= {p.name for p in tmp_path.glob("*.py")}
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is SearchedNetForImageClassification and loaded.config.search_space == "nas-bench-201"
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x).logits, loaded(x).logits) and loaded(x).logits.shape == (2, 4)
    assert AutoConfig.from_pretrained(tmp_path).genome == CELL
    with pytest.raises(GenomeBudgetError):
        AutoModelForImageClassification.from_pretrained(tmp_path, max_parameters=1000)


# ---------------------------------------------------------------------------------------------
# export of a retrained run


def test_export_of_a_retrained_run_holds_the_retrained_cell(exported, retrained_run):
    out, files = exported
    other = {"README.md", "config.json", "model.safetensors", "preprocessor_config.json", "progress.png"}
    assert CODE | other <= set(files)
    assert not [p for p in out.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".pickle")]
    cell = best_cell(retrained_run)
    retrain = json.loads((retrained_run / "retrain.json").read_text())
    saved = json.loads((out / "config.json").read_text())
    assert saved["search_space"] == "nas-bench-201" and saved["genome"] == str(cell)
    assert saved["genome_hash"] == SPACE.hash(cell) == retrain["genome_hash"]
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    config = model.config
    assert type(model) is SearchedNetForImageClassification and type(model.network) is NASBench201Network
    # the input is the retraining data's (digits: 1 channel, 10 classes), not the table's (3 x 32 x 32)
    assert (config.num_channels, config.image_size, config.num_labels) == (1, 32, 10)
    assert config.id2label == {i: str(i) for i in range(10)} and config.dataset == "digits"
    assert (config.strategy, config.use_gpt) == ("ga", False)
    # the weights are the run's retrained.safetensors, bit for bit
    state = load_file(str(retrained_run / "retrained.safetensors"))
    exported_state = model.network.state_dict()
    assert set(exported_state) == set(state)
    assert all(torch.equal(exported_state[k], v) for k, v in state.items())
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        logits = model(pixel_values=x).logits
        assert logits.shape == (3, 10) and torch.equal(logits, retrained_network(retrained_run)(x))
    # the processor normalises as the final training did: PIL test images give retrain.json's test accuracy
    data = load_image_data("digits", seed=0, progress=False, **retrain["data"]["settings"])
    assert config.image_mean == pytest.approx(data.mean.tolist(), abs=1e-6)
    assert config.image_std == pytest.approx(data.std.tolist(), abs=1e-6)
    processor = AutoImageProcessor.from_pretrained(out)
    assert type(processor) is SearchedNetImageProcessor and processor.num_channels == 1
    images = [Image.fromarray(x[0].numpy(), "L") for x in data.test_x]
    pixel_values = processor(images, return_tensors="pt").pixel_values
    torch.testing.assert_close(pixel_values, normalize(data.test_x, data.mean, data.std), atol=1e-5, rtol=0)
    with torch.no_grad():
        accuracy = (model(pixel_values=pixel_values).logits.argmax(-1) == data.test_y).double().mean().item()
    assert accuracy == pytest.approx(retrain["test_top1"], abs=1.5 / len(data.test_y))
    assert (out / "progress.png").read_bytes() == (retrained_run / "progress.png").read_bytes()


def test_the_card_says_what_was_searched_and_what_the_gpt_never_saw(exported, retrained_run, workdir):
    out, _ = exported
    card = ModelCard.load(out / "README.md")
    retrain = json.loads((retrained_run / "retrain.json").read_text())
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "image-classification"
    assert {"neural-architecture-search", "nas-bench-201", "custom_code"} <= set(card.data.tags)
    # the model-index holds the final training's accuracies only, never the table's value
    top1, top5 = card.data.eval_results
    assert (top1.dataset_name, top1.dataset_split) == ("digits", "test")
    assert top1.metric_value == pytest.approx(retrain["test_top1"], abs=1e-4)
    assert top5.metric_value == pytest.approx(retrain["test_top5"], abs=1e-4)
    text = card.text
    cell = best_cell(retrained_run)
    best = next(r for r in records(retrained_run) if r["hash"] == SPACE.hash(cell))
    assert best["metric"] == synthetic_accuracy(cell) == max(r["metric"] for r in records(retrained_run))
    assert "**NAS-Bench-201**" in text and f"`{cell}`" in text and "`nas-bench-201`" in text
    assert "`synthetic.csv`" in text and "`test_accuracy`" in text
    assert f"test_accuracy **{best['metric']:g}** in `synthetic.csv`" in text
    assert "**not** an accuracy of the exported weights" in text
    assert f"{QUERIES} distinct cells looked up" in text and f"a budget of {QUERIES} queries" in text
    assert "never trained on NAS-Bench-201 cells or their accuracies" in text
    assert f"test top-1 **{retrain['test_top1']:.4f}**" in text and "on digits after 1 epoch" in text
    for (i, j), op in zip([(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)], cell.ops):
        assert f"| {i} -> {j} | `{op}` |" in text
    assert "untrained" not in text and "did not finish" not in text
    assert str(workdir) not in card.content  # no local path in public
    listing = text.split("<details>")[1].split("```")[1].strip().splitlines()
    assert len(listing) == len(SPACE.network_layers(cell, in_channels=1, image_size=32, num_classes=10))


def test_the_command_line_exports_and_the_export_loads_without_the_package(tmp_path, retrained_run, exported):
    """`gptnas export` gives the same directory; trust_remote_code=True with ``import gptnas_hf``
    made impossible loads it from its files alone."""
    out, files = exported
    assert main(["export", "--run", str(retrained_run), "--out", str(tmp_path / "cli")]) == 0
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == files
    for name in files:
        if name != "progress.png":
            assert (tmp_path / "cli" / name).read_bytes() == (out / name).read_bytes(), name
    script = """
import json, sys
sys.modules["gptnas_hf"] = None  # any import of the package fails
import torch
torch.set_num_threads(1)
import numpy as np
from PIL import Image
from transformers import AutoModelForImageClassification, pipeline
model = AutoModelForImageClassification.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
torch.manual_seed(0)
with torch.no_grad():
    logits = model(torch.randn(2, 1, 32, 32)).logits
image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8), "RGB")
classify = pipeline("image-classification", model=sys.argv[1], trust_remote_code=True)
print(json.dumps({"logits": logits.tolist(), "model_module": type(model).__module__,
                  "network": type(model.network).__name__, "network_module": type(model.network).__module__,
                  "search_space": model.config.search_space, "genome": model.config.genome,
                  "labels": [r["label"] for r in classify(image, top_k=3)]}))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    done = subprocess.run([sys.executable, "-c", script, str(out)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    remote = json.loads(done.stdout.strip().splitlines()[-1])
    assert remote["model_module"].startswith("transformers_modules.")
    assert remote["network"] == "NASBench201Network" and remote["network_module"].startswith("transformers_modules.")
    assert remote["network_module"].endswith(".space_nas_bench_201")
    assert (remote["search_space"], remote["genome"]) == ("nas-bench-201", str(best_cell(retrained_run)))
    assert set(remote["labels"]) <= {str(i) for i in range(10)}
    reference = retrained_network(retrained_run)
    torch.manual_seed(0)
    with torch.no_grad():
        assert reference(torch.randn(2, 1, 32, 32)).tolist() == remote["logits"]


# ---------------------------------------------------------------------------------------------
# without a final training, and to the Hub


def test_export_without_retraining_takes_the_tables_shape_and_says_so(tmp_path, searched_run):
    with pytest.raises(FileNotFoundError, match="retrained.safetensors"):
        export_run(searched_run, tmp_path / "strict", weights="retrained")
    with pytest.warns(UserWarning, match="UNTRAINED"):
        export_run(searched_run, tmp_path / "init")
    saved = json.loads((tmp_path / "init" / "config.json").read_text())
    assert saved["search_space"] == "nas-bench-201" and saved["genome"] == str(best_cell(searched_run))
    # the table's in_channels / image_size / num_classes (3, 32, 10), generic labels, mean = std = 0.5
    assert (saved["num_channels"], saved["image_size"], saved["image_mean"], saved["image_std"]) == (
        3, 32, [0.5] * 3, [0.5] * 3)
    assert saved["id2label"] == {str(i): f"LABEL_{i}" for i in range(10)} and saved["dataset"] is None
    model = AutoModelForImageClassification.from_pretrained(tmp_path / "init").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).logits.shape == (1, 10)
    card = ModelCard.load(tmp_path / "init" / "README.md")
    assert "**Warning: these weights are untrained.**" in card.text and "did not finish" not in card.text
    assert not card.data.eval_results and "model-index" not in card.content  # no accuracy of these weights
    assert "placeholders" in card.text and "Not done: the run was exported without `gptnas retrain`" in card.text
    assert "never trained on NAS-Bench-201 cells or their accuracies" in card.text


def test_push_run_uploads_the_export_in_one_commit(monkeypatch, capsys, retrained_run):
    created, uploads = [], []

    def create_repo(api, repo_id, **kwargs):
        created.append((repo_id, kwargs))
        return RepoUrl(f"https://huggingface.co/{repo_id if '/' in repo_id else 'alice/' + repo_id}")

    def upload_folder(api, *, repo_id, folder_path, **kwargs):
        folder = Path(folder_path)
        uploads.append({"repo_id": repo_id, "files": {p.name: p.read_bytes() for p in folder.iterdir()}, **kwargs})
        return types.SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/0000000")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    commit = push_run(retrained_run, "gptnas-nb201", token=TOKEN)
    assert commit.commit_url.startswith("https://huggingface.co/alice/gptnas-nb201")
    assert created == [("gptnas-nb201", {"private": False, "exist_ok": True})]
    (upload,) = uploads
    files = upload["files"]
    assert upload["repo_id"] == "alice/gptnas-nb201" and CODE <= set(files)
    assert json.loads(files["config.json"])["search_space"] == "nas-bench-201"
    readme = files["README.md"].decode()
    assert 'model="alice/gptnas-nb201"' in readme and str(best_cell(retrained_run)) in readme
    out, err = capsys.readouterr()
    assert TOKEN not in out + err and not any(TOKEN.encode() in content for content in files.values())
