"""Searched networks (and the architecture GPT) on the Hugging Face Hub.

* :func:`export_run` turns a search run directory into a ``transformers`` model directory:
  ``config.json`` (a :class:`~gptnas_hf.modeling_searched.SearchedNetConfig`),
  ``model.safetensors``, ``preprocessor_config.json`` (a
  :class:`~gptnas_hf.image_processing_searched.SearchedNetImageProcessor` with the search's
  input size, channels and normalisation), the code ``auto_map`` points at, the search's
  ``progress.png`` and a generated model card ``README.md`` (YAML metadata with a
  ``model-index``).
* :func:`push_run` exports to a temporary directory and uploads it in one commit, the way
  ``timm`` pushes (``HfApi.create_repo(..., exist_ok=True)`` then ``HfApi.upload_folder``).
* :func:`export_architecture_model` / :func:`push_architecture_model` do the same for an
  architecture GPT checkpoint: weights, config (with ``auto_map`` and ``custom_pipelines``, so
  ``pipeline("nas-reconstruction", model=repo, trust_remote_code=True)`` works without this
  package), tokenizer files, the code (flattened: the Hub's remote-code loader only follows
  ``from .module import`` between files of one folder) and the model card as ``README.md``.

Nothing here writes or logs a token: it goes to ``HfApi(token=...)`` and nowhere else.
Weights are safetensors only; nothing is pickled.

Cards tell the truth: the ``model-index`` holds only accuracies measured on the exported
weights (the test accuracy of ``gptnas retrain``); an export with untrained weights has no
``model-index`` at all (the search's validation accuracy of the architecture stays in the
card's text, labelled as such). A run whose search has not finished (killed, or still
running) is exported with a warning in the card that says so, and at which generation.
Records made under other settings than the run's (``evaluations.jsonl`` lines with another
``key``) are never counted.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_COMMIT_MESSAGE",
    "DEFAULT_MODEL_COMMIT_MESSAGE",
    "export_run",
    "push_run",
    "export_architecture_model",
    "push_architecture_model",
    "validate_repo_id",
]

logger = logging.getLogger(__name__)

DEFAULT_COMMIT_MESSAGE = "Upload a network found by gptnas-hf"
DEFAULT_MODEL_COMMIT_MESSAGE = "Upload the gptnas-hf architecture GPT"
WEIGHTS = ("auto", "retrained", "init")
PROCESSOR_REF = "image_processing_searched.SearchedNetImageProcessor"

#: the code files transformers' remote-code loader looks for first in an architecture GPT folder
_GPT_ENTRY_MODULES = ("configuration_gptnas", "modeling_gptnas", "pipeline_nas_reconstruction")


# ----------------------------------------------------------------------------------------
# repo ids and the API


def validate_repo_id(repo_id: str) -> str:
    """``repo_id`` if it is a valid Hub model id (``name`` or ``namespace/name``), else a
    ``ValueError`` that says what is wrong (huggingface_hub's own validator)."""
    from huggingface_hub.utils import HFValidationError
    from huggingface_hub.utils import validate_repo_id as _validate

    if not isinstance(repo_id, str):
        raise ValueError(f"invalid repo id {repo_id!r}: expected a string such as 'your-name/my-model'")
    try:
        _validate(repo_id)
    except HFValidationError as err:
        raise ValueError(f"invalid repo id {repo_id!r}: {err} (expected 'name' or 'namespace/name', "
                         "e.g. 'your-name/gptnas-digits')") from None
    return repo_id


def _api(api, token):
    if api is not None:
        return api
    from importlib.metadata import version

    from huggingface_hub import HfApi

    return HfApi(token=token, library_name="gptnas-hf", library_version=version("gptnas-hf"))


def _upload(staged: Path, repo_id: str, *, private: bool, token, commit_message: str, api, revision, create_pr,
            after_create=None):
    api = _api(api, token)
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    full_id = getattr(url, "repo_id", None) or repo_id
    if after_create is not None:
        after_create(full_id)
    files = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file())
    logger.info("uploading %d files to %s in one commit: %s", len(files), full_id, ", ".join(files))
    return api.upload_folder(repo_id=full_id, folder_path=str(staged), commit_message=commit_message,
                             revision=revision, create_pr=create_pr)


class _OutDir:
    """A new or empty output directory that is emptied again (or removed) if writing fails."""

    def __init__(self, out_dir: str | Path):
        self.path = Path(out_dir)
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise FileExistsError(f"output directory {str(self.path)!r} exists and is not empty; choose a new one")
        self.existed = self.path.is_dir()

    def __enter__(self) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path

    def __exit__(self, kind, value, tb):
        if kind is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            if self.existed:
                self.path.mkdir(parents=True, exist_ok=True)
        return False


# ----------------------------------------------------------------------------------------
# what a run holds


@dataclasses.dataclass
class _RunInfo:
    run_dir: Path
    config: Any  # SearchConfig
    genome: Any  # Genome
    state: dict
    records: list[dict]
    best_record: dict
    retrain: dict | None
    weights: str  # "retrained" | "init"
    retrained_available: bool
    channels: int
    image_size: int
    class_names: list[str]
    mean: list[float]
    std: list[float]
    wall_seconds: float | None
    pick: str = "best"  # which network of the run (search/pareto.py)


def _collect(run_dir, weights: str, dataset, pick: str = "best") -> _RunInfo:
    from .data import ImageData, load_image_data
    from .search.pareto import pick_genome
    from .search.run_directory import RunDirectory

    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    run = RunDirectory(run_dir)
    run_dir = run.path
    config, genome, state = run.load()  # FileNotFoundError / ValueError naming the problem
    records = run.read_records(state.get("evaluation_key"))
    genome = pick_genome(genome, records, pick)
    retrain = run.read_retrain()  # ValueError when corrupt
    has_weights = run.has_retrained_weights()
    if weights == "retrained" and not has_weights:
        raise FileNotFoundError(f"run {str(run_dir)!r} has no {run.RETRAINED_WEIGHTS}: run `gptnas retrain --run "
                                f"{run_dir}` first, or export with weights='init'")
    chosen = "retrained" if weights in ("auto", "retrained") and has_weights else "init"
    other_genome = retrain is not None and retrain.get("genome_hash") not in (None, genome.hash())
    if chosen == "retrained" and other_genome and weights == "auto" and pick != "best":
        chosen = "init"  # the retrained weights belong to another point of the front
    if chosen == "retrained" and other_genome:
        raise ValueError(f"{run.retrained_weights_path} was trained for genome {retrain['genome_hash'][:12]}, but "
                         f"the run's best genome is now {genome.hash()[:12]}: retrain the run again")
    if chosen == "init":
        retrain = None  # its accuracy belongs to weights we do not export

    if isinstance(dataset, ImageData):
        data = dataset.describe()
    elif dataset is None and run.read_data() is not None:
        data = run.read_data()
    else:
        data = load_image_data(dataset or config.dataset, seed=config.seed, progress=False, **config.data).describe()

    best_record = next((r for r in records if r.get("hash") == genome.hash()), None)
    if best_record is None:
        best = max(state.get("population", []), key=lambda ind: ind.get("fitness", 0.0), default={})
        best_record = {"fitness": best.get("fitness"), "hash": genome.hash()}
    wall = run.wall_seconds(state)
    return _RunInfo(
        run_dir=run_dir, config=config, genome=genome, state=state, records=records, best_record=best_record,
        retrain=retrain, weights=chosen, retrained_available=has_weights, channels=data["channels"],
        image_size=data["image_size"], class_names=data["class_names"], mean=data["mean"], std=data["std"],
        wall_seconds=wall, pick=pick,
    )


def _public_name(source: str | None) -> str | None:
    """A data source or checkpoint as it may appear in public: a local path becomes its name."""
    if source is None:
        return None
    source = str(source)
    if source.startswith(("/", ".", "~")) or Path(source).expanduser().exists():
        return Path(source).expanduser().name or source
    return source


def _hub_dataset_id(source: str) -> str | None:
    from .data import HUB_PRESETS

    if source in HUB_PRESETS:
        return HUB_PRESETS[source]["path"]
    if re.fullmatch(r"[\w.-]+/[\w.-]+", source) and not Path(source).expanduser().exists():
        return source
    return None


# ----------------------------------------------------------------------------------------
# export of a run


def _build_model(info: _RunInfo):
    import torch
    from safetensors.torch import load_file

    from .modeling_searched import SearchedNetConfig, SearchedNetForImageClassification
    from .search.run_directory import RunDirectory

    config = SearchedNetConfig(
        genome=info.genome.to_list(), num_channels=info.channels, image_size=info.image_size,
        image_mean=info.mean, image_std=info.std, strategy=info.config.strategy, use_gpt=bool(info.config.use_gpt),
        dataset=_public_name(info.config.dataset), id2label=dict(enumerate(info.class_names)),
        label2id={name: i for i, name in enumerate(info.class_names)},
    )
    torch.manual_seed(info.config.seed)
    model = SearchedNetForImageClassification(config)
    if info.weights == "retrained":
        path = RunDirectory(info.run_dir).retrained_weights_path
        state = load_file(str(path))
        try:
            model.network.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(f"{path} does not fit the best genome built for {info.channels}-channel input and "
                             f"{len(info.class_names)} classes (was it retrained on other data?): {err}") from None
    else:
        why = ("weights='init' was asked for" if info.retrained_available
               else f"run {str(info.run_dir)!r} has not been retrained")
        warnings.warn(
            f"{why}: exporting the best architecture with FRESHLY INITIALISED, UNTRAINED weights "
            "(run `gptnas retrain --run DIR` and export with the retrained weights for a usable classifier)",
            UserWarning, stacklevel=3,
        )
    return model.eval()


def _save_model_dir(info: _RunInfo, out: Path) -> Any:
    """config.json, model.safetensors, the code, preprocessor_config.json and progress.png."""
    from .image_processing_searched import SearchedNetImageProcessor
    from .search.run_directory import RunDirectory

    model = _build_model(info)
    # The processor's auto_map goes into config.json, not preprocessor_config.json: a
    # preprocessor_config with an auto_map makes transformers' image pipelines probe for a
    # remote *video* processor and ask, on a terminal, whether to run custom code.
    model.config.auto_map = {"AutoImageProcessor": PROCESSOR_REF}
    model.save_pretrained(out)
    processor = SearchedNetImageProcessor.for_input(info.image_size, info.channels, info.mean, info.std)
    processor.save_pretrained(out)
    pre = out / "preprocessor_config.json"
    values = json.loads(pre.read_text())
    values.pop("auto_map", None)
    values.pop("image_processor_type", None)  # resolved through config.json (model_type / auto_map)
    pre.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    shutil.copyfile(Path(__file__).with_name("image_processing_searched.py"), out / "image_processing_searched.py")
    progress = RunDirectory(info.run_dir).progress_plot_path
    if progress.is_file():
        shutil.copyfile(progress, out / progress.name)
    return model


def _layer_listing(model, info: _RunInfo) -> list[str]:
    import torch

    from .encoding import trace

    with torch.no_grad():
        layers = trace(model.network, (info.channels, info.image_size, info.image_size))
    return [f"{layer.block}\t{layer.text}" for layer in layers]


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _epochs(n) -> str:
    return f"{n} epoch{'' if n == 1 else 's'}" if n is not None else "? epochs"


def _card(info: _RunInfo, model, repo_id: str | None):
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    from .search_space import count_parameters

    cfg = info.config
    dataset = _public_name(cfg.dataset)
    hub_dataset = _hub_dataset_id(str(cfg.dataset))
    strategy = cfg.strategy.upper() if cfg.strategy == "ga" else cfg.strategy.capitalize()
    setting = f"{strategy}{'+GPT' if cfg.use_gpt else ''}"
    genome_hash = info.genome.hash()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset)
    name = repo_id.split("/")[-1] if repo_id else f"gptnas-{slug}-{genome_hash[:8]}"
    parameters = count_parameters(model.network)
    val = info.best_record.get("fitness")
    eval_kwargs = dict(task_type="image-classification", task_name="Image Classification",
                       dataset_type=hub_dataset or dataset, dataset_name=dataset, metric_type="accuracy")
    results = []  # only accuracies of the exported weights (module doc)
    if info.retrain is not None and info.retrain.get("test_top1") is not None:
        accuracy_line = f"test top-1 **{info.retrain['test_top1']:.4f}**"
        results.append(EvalResult(**eval_kwargs, dataset_split="test", metric_name="test top-1 accuracy",
                                  metric_value=round(float(info.retrain["test_top1"]), 4)))
        if info.retrain.get("test_top5") is not None:
            accuracy_line += f", top-5 {info.retrain['test_top5']:.4f}"
            results.append(EvalResult(**eval_kwargs, dataset_split="test", metric_name="test top-5 accuracy",
                                      metric_value=round(float(info.retrain["test_top5"]), 4)))
        accuracy_line += f" after {_epochs(info.retrain.get('epochs'))} of final training"
    elif val is not None:
        accuracy_line = (f"validation top-1 {val:.4f} during the search (short proxy training); "
                         "**not** an accuracy of the exported weights")
    else:
        accuracy_line = "not measured"

    data = ModelCardData(
        library_name="transformers", license="apache-2.0", pipeline_tag="image-classification",
        tags=["neural-architecture-search", "gpt-nas", "image-classification", "gptnas-hf", "custom_code"],
        datasets=[hub_dataset] if hub_dataset else None, metrics=["accuracy"] if results else None,
        model_name=name, eval_results=results or None,
    )

    records = info.records
    rebuilt = sum(bool(r.get("reconstructed")) for r in records)
    failed = sum(r.get("status", "ok") != "ok" for r in records)
    train_seconds = sum(float(r.get("seconds") or 0.0) for r in records)
    generation = info.best_record.get("generation")
    channels_word = "grayscale" if info.channels == 1 else "RGB"
    where = repo_id or "path/to/this/directory"
    kinds = ", ".join(dict.fromkeys(info.genome.kinds))

    if info.weights == "retrained":
        weights_line = "trained (`model.safetensors` = the run's `retrained.safetensors`)"
        warning = ""
    else:
        why = ("the run was exported with `weights=\"init\"`" if info.retrained_available
               else "the search run was exported before `gptnas retrain`")
        weights_line = f"**untrained**: freshly initialised, {why} (`model.safetensors`)"
        warning = (f"> **Warning: these weights are untrained.** {why[0].upper() + why[1:]}, so this repository "
                   "holds the architecture with freshly initialised weights; its predictions are meaningless "
                   "until it is trained. The accuracy below is the search's validation accuracy of the architecture, not of "
                   "these weights.\n\n")

    if info.state.get("phase") != "done":
        done = len(info.state.get("history", []))
        warning += (f"> **Warning: this search did not finish.** It was exported at generation "
                    f"{info.state.get('generation', '?')} of {cfg.generations} ({done} generation{'' if done == 1 else 's'}"
                    " evaluated, the search killed or still running): the architecture is the best found so far, "
                    "not the search's result. Resume it (`gptnas search ... --resume`) and export again.\n\n")

    if cfg.use_gpt:
        gpt_model = _public_name(cfg.model) or "the architecture GPT shipped with gptnas-hf (`gptnas_hf.DEFAULT_MODEL`)"
        gpt_line = (f"on: {gpt_model} rewrote the masked blocks of the proposed candidates (paper Algorithm 1), "
                    f"initial mask rate {cfg.initial_mask_rate} decaying linearly to 0 at the last generation "
                    f"(Eq. 3){'' if cfg.window_size is None else f', a context of {cfg.window_size} layers'}")
    else:
        gpt_line = "off (plain " + ("genetic algorithm" if cfg.strategy == "ga" else f"{cfg.strategy} search") + ")"
    ga_line = (f", crossover rate {cfg.crossover_rate}, mutation rate {cfg.mutation_rate}"
               if cfg.strategy == "ga" else "")
    evaluation = ", ".join(f"{k} {v}" for k, v in sorted(cfg.evaluation.items()) if k != "progress") or "defaults"
    subset = ", ".join(f"{k} {v}" for k, v in sorted(cfg.data.items()) if k != "cache_dir") or "whole dataset"
    progress = ("\n![search progress: fitness per generation and accuracy against evaluations](progress.png)\n"
                if (info.run_dir / "progress.png").is_file() else "")
    if info.retrain is not None:
        used = info.retrain.get("data") or {}
        use_val = info.retrain.get("use_val", cfg.retrain.get("use_val", True))
        images = ((f"{used['train_images']:,} " if "train_images" in used else "")
                  + ("training + validation" if use_val else "training"))
        final = (f"The best genome was then trained from scratch on the {images} images for "
                 f"{_epochs(info.retrain.get('epochs'))} and tested once on the held-out test split: "
                 f"test top-1 {info.retrain.get('test_top1', float('nan')):.4f}"
                 + (f", top-5 {info.retrain['test_top5']:.4f}" if info.retrain.get("test_top5") is not None else "")
                 + f" ({info.retrain.get('parameters', parameters):,} parameters).")
    else:
        final = ("Not exported: the weights here are freshly initialised (exported with `weights=\"init\"`)."
                 if info.retrained_available else
                 "Not done: the run was exported without `gptnas retrain`; the weights here are untrained.")

    found_line = "validation top-1 " + ("unknown" if val is None else f"{val:.4f}") + " during the search"
    if generation is not None:
        found_line += f", found in generation {generation}"
    origin = info.best_record.get("origin")
    if origin:
        found_line += f" ({origin}{', rebuilt by the GPT' if info.best_record.get('reconstructed') else ''})"
    if info.best_record.get("macs") is not None:
        found_line += f"; {info.best_record['macs']:,} MACs per image"
    if info.pick != "best":
        found_line += (f"; chosen with `--pick {info.pick}` from the run's accuracy/cost front, not the most "
                       "accurate network of the search")
    layers = _layer_listing(model, info)
    genome_json = "[\n" + ",\n".join("  " + json.dumps(block) for block in info.genome.to_list()) + "\n]"
    usage = f'''```python
import gptnas_hf  # registers the searched-network classes with transformers' Auto classes
from PIL import Image
from transformers import pipeline

classify = pipeline("image-classification", model="{where}")
classify(Image.open("image.png"))  # [{{"label": ..., "score": ...}}, ...]
```

or, with the model and processor themselves:

```python
import torch
import gptnas_hf
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification

processor = AutoImageProcessor.from_pretrained("{where}")
model = AutoModelForImageClassification.from_pretrained("{where}").eval()
with torch.no_grad():
    logits = model(**processor(Image.open("image.png"), return_tensors="pt")).logits
model.config.id2label[int(logits.argmax(-1))]
```

Without the package, add `trust_remote_code=True` to `from_pretrained` / `pipeline`: the code
(`modeling_searched.py`, `search_space.py`, `encoding.py`, `image_processing_searched.py`) is
in this repository; it needs `torch`, `torchvision` and `transformers` >= 5.'''

    body = f"""
# {name}

{warning}A convolutional image classifier for **{dataset}** ({len(info.class_names)} classes, {channels_word}
{info.image_size}x{info.image_size} input) whose architecture was found by neural architecture search with
gptnas-hf ({setting}): {"a" if cfg.use_gpt else "a plain"} {"genetic algorithm" if cfg.strategy == "ga" else f"{cfg.strategy} search"} proposed networks of
Table-2 blocks (ResNet, RegNet, ShuffleNetV2, GoogLeNet and EfficientNet blocks built from torchvision's own
classes){", a small GPT trained on the layer sequences of real CNNs rewrote them" if cfg.use_gpt else ""}, each candidate
was trained briefly and scored on a validation split, and the best architecture was kept.

| | |
| --- | --- |
| accuracy | {accuracy_line} |
| parameters | {parameters:,} |
| architecture | {len(info.genome)} blocks: {kinds} |
| input | {info.channels} x {info.image_size} x {info.image_size} ({channels_word}), normalised with mean {info.mean} and std {info.std} |
| labels | {", ".join(info.class_names[:20])}{" ..." if len(info.class_names) > 20 else ""} |
| weights | {weights_line} |
| genome hash | `{genome_hash}` |

## Use

{usage}

The image processor (`preprocessor_config.json`) does what the search's data loading did:
converts to {channels_word} ({"a colour image is turned into gray" if info.channels == 1 else "a gray image is repeated over three channels"}),
resizes the shorter side to {info.image_size} (bilinear, antialiased), centre-crops to
{info.image_size}x{info.image_size}, scales to [0, 1] and normalises per channel.

## How it was found

- search: {setting} on {dataset} ({subset}), seed {cfg.seed}
- strategy: {cfg.strategy}, population {cfg.population_size}, {cfg.generations} generation{"" if cfg.generations == 1 else "s"} after the initial population{ga_line};
  {cfg.min_blocks}-{cfg.max_blocks} blocks, widths {list(cfg.widths)}, at most {cfg.max_downsamples} downsamplings
- GPT reconstruction: {gpt_line}
- candidate training (fitness = validation top-1): {evaluation}
- evaluations: {len(records)} ({rebuilt} rebuilt by the GPT, {failed} failed), {_fmt_seconds(train_seconds)} of candidate training, {_fmt_seconds(info.wall_seconds)} wall
- this architecture: {found_line}
{progress}
## Final training

{final}

## Architecture

The genome (the block list `gptnas_hf.search_space.build_network` builds; also in `config.json`):

```json
{genome_json}
```

<details>
<summary>The {len(layers)} layers in the paper's Table-1 encoding (block, then layer), traced at {info.channels}x{info.image_size}x{info.image_size}</summary>

```
{chr(10).join(layers)}
```

</details>

## Limitations

- The accuracy was measured on the {dataset} test split at {info.image_size}x{info.image_size} input; other data needs
  fine-tuning, and images far from the training distribution get confident but meaningless labels.
- The search's fitness is the accuracy after a short proxy training, a noisy estimate of how well an
  architecture trains in full.
"""
    content = f"---\n{data.to_yaml()}\n---\n{body}"
    return ModelCard(content)


def _write_card(info: _RunInfo, model, out: Path, repo_id: str | None) -> None:
    _card(info, model, repo_id).save(out / "README.md")


def export_run(run_dir: str | Path, out_dir: str | Path, *, weights: str = "auto", dataset=None,
               repo_id: str | None = None, pick: str = "best") -> list[str]:
    """Write a search run's best network as a ``transformers`` model directory.

    ``weights``: ``"retrained"`` (the run's ``retrained.safetensors``; an error if missing),
    ``"init"`` (freshly initialised, untrained: the architecture only; a warning, and the card
    says so in bold), or ``"auto"`` (retrained if the run was retrained, else init).
    ``dataset``: the run's data, as an :class:`~gptnas_hf.data.ImageData` or a source, when it
    is not where the search found it (channels, size, labels and normalisation come from it).
    ``repo_id``: used in the card's usage snippet. ``out_dir`` must be new or empty.
    ``pick``: which network of the run: ``"best"`` (the most accurate), ``"smallest-within:0.01"``,
    ``"max-params:N"`` or ``"max-macs:N"`` (:mod:`gptnas_hf.search.pareto`); with ``weights="auto"``
    a picked network uses the retrained weights only if ``gptnas retrain --pick`` trained it.

    Returns the names of the files written (sorted).
    """
    if repo_id is not None:
        validate_repo_id(repo_id)
    target = _OutDir(out_dir)
    info = _collect(run_dir, weights, dataset, pick)
    with target as out:
        model = _save_model_dir(info, out)
        _write_card(info, model, out, repo_id)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    logger.info("exported run %s (%s weights) to %s: %s", info.run_dir, info.weights, out, ", ".join(files))
    return files


def push_run(run_dir: str | Path, repo_id: str, *, private: bool = False, token: str | None = None,
             commit_message: str = DEFAULT_COMMIT_MESSAGE, weights: str = "auto", dataset=None,
             revision: str | None = None, create_pr: bool = False, api=None, pick: str = "best"):
    """Export ``run_dir`` (see :func:`export_run`) to a temporary directory and upload it to the
    model repo ``repo_id`` in one commit (``create_repo(exist_ok=True)`` then ``upload_folder``).
    ``token``: a Hub token (default: the logged-in one / ``HF_TOKEN``); used for the API calls
    only, never written or logged. ``api``: an ``HfApi`` to use instead of a new one.
    Returns ``upload_folder``'s ``CommitInfo``."""
    validate_repo_id(repo_id)
    info = _collect(run_dir, weights, dataset, pick)
    with tempfile.TemporaryDirectory(prefix="gptnas-push-") as tmp:
        staged = Path(tmp)
        model = _save_model_dir(info, staged)
        _write_card(info, model, staged, repo_id)

        def rewrite_card(full_id):  # "name" -> "user/name" once the Hub has said whose it is
            if full_id != repo_id:
                _write_card(info, model, staged, full_id)

        return _upload(staged, repo_id, private=private, token=token, commit_message=commit_message, api=api,
                       revision=revision, create_pr=create_pr, after_create=rewrite_card)


# ----------------------------------------------------------------------------------------
# the architecture GPT

def _default_model_card() -> Path:
    from .default_model import DEFAULT_MODEL

    for candidate in (Path(__file__).resolve().parents[1] / "model_card.md", Path(DEFAULT_MODEL) / "README.md"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("no model card found: pass model_card= (e.g. the repository's model_card.md)")


def _check_model_dir(model_dir) -> Path:
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model directory {str(model_dir)!r} does not exist")
    if not (model_dir / "model.safetensors").is_file():
        pickled = sorted(p.name for p in model_dir.glob("*.bin"))
        extra = f" ({', '.join(pickled)} is pickled and is not pushed)" if pickled else ""
        raise FileNotFoundError(f"model directory {str(model_dir)!r} has no weights: "
                                f"model.safetensors is missing{extra}")
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"model directory {str(model_dir)!r} has no config.json")
    return model_dir


def export_architecture_model(model_dir: str | Path, out_dir: str | Path,
                              model_card: str | Path | None = None) -> list[str]:
    """Stage an architecture GPT checkpoint for the Hub in ``out_dir`` (new or empty):
    :func:`gptnas_hf.training.package_checkpoint` (config with ``auto_map`` and
    ``custom_pipelines``, ``model.safetensors``, tokenizer files, the code of the model and of
    the ``nas-reconstruction`` pipeline as transformers saves it) with ``model_card`` as
    ``README.md`` (default the repository's ``model_card.md``). Returns the names of the files
    written (sorted)."""
    from .training import package_checkpoint

    model_dir = _check_model_dir(model_dir)
    card = Path(model_card) if model_card is not None else _default_model_card()
    if not card.is_file():
        raise FileNotFoundError(f"model card {str(card)!r} does not exist")
    with _OutDir(out_dir) as out:
        files = package_checkpoint(model_dir, out, card, overwrite=True)
        _check_remote_code(out, _GPT_ENTRY_MODULES)
    logger.info("staged architecture model %s in %s: %s", model_dir, out, ", ".join(files))
    return files


def _check_remote_code(folder: Path, modules: Sequence[str]) -> None:
    """Every file transformers' remote-code loader will look for is there."""
    from transformers.dynamic_module_utils import get_relative_import_files

    for module in modules:
        path = folder / f"{module}.py"
        needed = [path] + [Path(p) for p in get_relative_import_files(str(path))]
        missing = [p.name for p in needed if not p.is_file()]
        if missing:
            raise RuntimeError(f"{module}.py needs {missing}, which are not in {folder}")


def push_architecture_model(model_dir: str | Path, repo_id: str, *, private: bool = False, token: str | None = None,
                            commit_message: str = DEFAULT_MODEL_COMMIT_MESSAGE, model_card: str | Path | None = None,
                            revision: str | None = None, create_pr: bool = False, api=None):
    """Stage ``model_dir`` with :func:`export_architecture_model` in a temporary directory and
    upload it to ``repo_id`` in one commit. Afterwards
    ``pipeline("nas-reconstruction", model=repo_id, trust_remote_code=True)`` works without
    this package. Token handling as in :func:`push_run`. Returns the ``CommitInfo``."""
    validate_repo_id(repo_id)
    _check_model_dir(model_dir)
    with tempfile.TemporaryDirectory(prefix="gptnas-push-model-") as tmp:
        staged = Path(tmp)
        export_architecture_model(model_dir, staged, model_card)
        return _upload(staged, repo_id, private=private, token=token, commit_message=commit_message, api=api,
                       revision=revision, create_pr=create_pr)


def export_adapted_gpt(run_dir: str | Path, out_dir: str | Path) -> list[str]:
    """Stage the architecture GPT a search adapted (``gpt_adaptation``: ``RUN/adapted_gpt``) as
    a model directory (:func:`export_architecture_model`), with a card that says what it was
    adapted on. Returns the names of the files written."""
    from .search.run_directory import RunDirectory

    run_dir = Path(run_dir)
    run = RunDirectory(run_dir)
    config, _, state = run.load()
    adapted = run.adapted_gpt_path
    if not (adapted / run.ADAPTATION).is_file():
        raise FileNotFoundError(f"run {str(run_dir)!r} has no adapted GPT ({run.ADAPTED_GPT}/): it was searched without "
                                "gpt_adaptation, or no generation has finished")
    info = json.loads((adapted / run.ADAPTATION).read_text())
    settings = ", ".join(f"{k} {v}" for k, v in info.get("settings", {}).items())
    card = f"""---
library_name: transformers
tags:
- gptnas
- neural-architecture-search
- nas-reconstruction
---

# Architecture GPT adapted during a search

The gptnas-hf architecture GPT (base checkpoint: `{_public_name(config.model) or 'the shipped default'}`),
fine-tuned during a {config.strategy.upper()}+GPT search on `{_public_name(config.dataset)}` after
generation {info['generation']} of {config.generations}, on the layer sequences of the {info['genomes']} best
genomes evaluated so far ({info['windows']} windows), with {info['replay_windows']} windows of the torchvision
zoo replayed ({settings}). It rebuilt the search's next generation.

It knows what scored well in that search at that proxy (fitness: validation accuracy after a short
training), which may not carry to other data or budgets. Load it like the base model:

```python
from transformers import pipeline
reconstruct = pipeline("nas-reconstruction", model="PATH_OR_REPO", trust_remote_code=True)
```
"""
    with tempfile.TemporaryDirectory(prefix="gptnas-card-") as tmp:
        path = Path(tmp) / "README.md"
        path.write_text(card)
        return export_architecture_model(adapted, out_dir, model_card=path)
