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
  package), tokenizer files, the code as transformers saves it (``Pipeline.save_pretrained``:
  ``custom_object_save``) and the model card as ``README.md``.

The cards themselves come from templates (:mod:`gptnas_hf.model_cards`); the run's files from
:class:`~gptnas_hf.search.run_directory.RunDirectory`.

Nothing here writes or logs a token: it goes to ``HfApi(token=...)`` and nowhere else.
Weights are safetensors only; nothing is pickled.

Cards tell the truth: the ``model-index`` holds only accuracies measured on the exported
weights (the test accuracy of ``gptnas retrain``); an export with untrained weights has no
``model-index`` at all (the search's validation accuracy of the architecture stays in the
card's text, labelled as such). A run whose search has not finished (killed, or still
running) is exported with a warning in the card that says so, and at which generation.
Records made under other settings than the run's (``evaluations.jsonl`` lines with another
``key``) are never counted.

Any registered search space is exported (the run's ``config["space"]``, through
:func:`~gptnas_hf.search.searcher.make_space`: its ``hash`` and ``dump``): the model's
``config.json`` says which (``search_space``: ``"blocks"`` or ``"nas-bench-201"``). A run whose
fitness was looked up in a table (``fitness: {table: ...}``, NAS-Bench-201's) searched no images:
the input the classifier is for (channels, size, class names, normalisation) is then the data
``gptnas retrain`` trained it on (``retrain.json``'s ``data`` section; the class names and the
normalisation, which that section may not hold, are read from the same data loaded again with
the same settings), or, before a final training, the table's ``in_channels`` / ``image_size`` /
``num_classes`` with generic labels (``LABEL_0``, ...) and mean = std = 0.5.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .model_cards import adapted_gpt_card, public_name, write_searched_network_card
from .search.run_directory import RunDirectory

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
    genome: Any  # the architecture, of `space` (a Genome for the block space, a Cell for NAS-Bench-201)
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
    space: Any = None  # the run's SearchSpace (searcher.make_space)
    dataset: str | None = None  # the classifier's data as it may appear in public (None: a table's unnamed data)
    dataset_source: str | None = None  # the same, as given (for the Hub dataset id)
    table: dict | None = None  # a table run: data.json's description of the table (table_fitness.FitnessTable.describe)
    generic_input: bool = False  # a table run never retrained: the table's shape, generic labels, mean = std = 0.5


def _collect(run_dir, weights: str, dataset, pick: str = "best") -> _RunInfo:
    from .data import ImageData, load_image_data
    from .search.pareto import pick_genome
    from .search.config import make_space

    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    run = RunDirectory(run_dir)
    run_dir = run.path
    config, genome, state = run.load()  # FileNotFoundError / ValueError naming the problem
    space = make_space(config)
    records = run.read_records(state.get("evaluation_key"))
    genome = pick_genome(genome, records, pick, None if config.space == "blocks" else space)
    genome_hash = space.hash(genome)
    summary = retrain = run.read_retrain()  # ValueError when corrupt
    has_weights = run.has_retrained_weights()
    if weights == "retrained" and not has_weights:
        raise FileNotFoundError(f"run {str(run_dir)!r} has no {run.RETRAINED_WEIGHTS}: run `gptnas retrain --run "
                                f"{run_dir}` first, or export with weights='init'")
    chosen = "retrained" if weights in ("auto", "retrained") and has_weights else "init"
    other_genome = retrain is not None and retrain.get("genome_hash") not in (None, genome_hash)
    if chosen == "retrained" and other_genome and weights == "auto" and pick != "best":
        chosen = "init"  # the retrained weights belong to another point of the front
    if chosen == "retrained" and other_genome:
        raise ValueError(f"{run.retrained_weights_path} was trained for genome {retrain['genome_hash'][:12]}, but "
                         f"the run's best genome is now {genome_hash[:12]}: retrain the run again")
    if chosen == "init":
        retrain = None  # its accuracy belongs to weights we do not export

    table, generic, source = None, False, config.dataset
    if config.fitness is not None:  # a table run: no images were searched (module doc)
        data, generic = _table_run_data(run, config, summary, dataset)
        source = None if generic else data.get("source")
        try:
            table = (run.read_data() or {}).get("table")  # for the card; the recipe's fitness section otherwise
        except ValueError:
            table = None
        table = table if isinstance(table, dict) else None
    elif isinstance(dataset, ImageData):
        data = dataset.describe()
    elif dataset is None and (searched := run.read_data()) is not None:
        data = searched
    else:
        data = load_image_data(dataset or config.dataset, seed=config.seed, progress=False, **config.data).describe()

    best_record = next((r for r in records if r.get("hash") == genome_hash), None)
    if best_record is None:
        best = max(state.get("population", []), key=lambda ind: ind.get("fitness", 0.0), default={})
        best_record = {"fitness": best.get("fitness"), "hash": genome_hash}
    wall = run.wall_seconds(state)
    return _RunInfo(
        run_dir=run_dir, config=config, genome=genome, state=state, records=records, best_record=best_record,
        retrain=retrain, weights=chosen, retrained_available=has_weights, channels=data["channels"],
        image_size=data["image_size"], class_names=data["class_names"], mean=data["mean"], std=data["std"],
        wall_seconds=wall, pick=pick, space=space, dataset=public_name(source),
        dataset_source=None if source is None else str(source), table=table, generic_input=generic,
    )


def _table_run_data(run: RunDirectory, config, summary: dict | None, dataset) -> tuple[dict, bool]:
    """The input of a table run's classifier (module doc): ``(description, generic)``, the
    description with ``source``, ``channels``, ``image_size``, ``class_names``, ``mean`` and
    ``std``; ``generic`` when it is only the table's shape (no final training, no data given)."""
    from .data import ImageData, load_image_data

    if isinstance(dataset, ImageData):
        return dataset.describe(), False
    used = (summary or {}).get("data") or {}
    if used:  # retrained: the data gptnas retrain trained (and tested) on
        source = str(dataset) if dataset is not None else used.get("source") or (summary or {}).get("dataset")
        described = {"source": source, **{k: used[k] for k in ("channels", "image_size", "num_classes") if k in used}}
        if all(used.get(k) is not None for k in ("class_names", "mean", "std")):
            described.update({k: used[k] for k in ("class_names", "mean", "std")})
            return described, False
        # retrain.json names the data and its settings, not its labels and normalisation: load it again, as
        # retrain did (same source, settings and seed), for them
        settings = dict(used.get("settings") or {})
        try:
            loaded = load_image_data(source, seed=config.seed, progress=False, **settings).describe()
        except Exception as err:  # noqa: BLE001 - any loader failure: say what to pass instead
            raise ValueError(f"{run.retrain_path}: the data the best cell was retrained on ({public_name(source)!r}) "
                             f"could not be loaded again for its class names and normalisation ({err}); pass its "
                             "location as dataset= (`gptnas export --dataset ...`)") from None
        for key in ("channels", "image_size", "num_classes"):
            if key in described and loaded[key] != described[key]:
                raise ValueError(f"{run.retrain_path}: the best cell was retrained on data with {key} "
                                 f"{described[key]}, but {public_name(source)!r} has {loaded[key]}: pass the data it "
                                 "was retrained on as dataset=")
        return {**loaded, "source": source}, False
    if dataset is not None:
        return load_image_data(dataset, seed=config.seed, progress=False, **config.data).describe(), False
    table = config.table_config()
    channels, classes = table.in_channels, table.num_classes
    return {"source": None, "channels": channels, "image_size": table.image_size, "num_classes": classes,
            "class_names": [f"LABEL_{i}" for i in range(classes)], "mean": [0.5] * channels,
            "std": [0.5] * channels}, True


# ----------------------------------------------------------------------------------------
# export of a run


def _build_model(info: _RunInfo):
    import torch
    from safetensors.torch import load_file

    from .modeling_searched import SearchedNetConfig, SearchedNetForImageClassification

    config = SearchedNetConfig(
        genome=info.space.dump(info.genome), num_channels=info.channels, image_size=info.image_size,
        image_mean=info.mean, image_std=info.std, strategy=info.config.strategy, use_gpt=bool(info.config.use_gpt),
        dataset=info.dataset, id2label=dict(enumerate(info.class_names)),
        label2id={name: i for i, name in enumerate(info.class_names)}, search_space=info.space.name,
    )
    torch.manual_seed(info.config.seed)
    model = SearchedNetForImageClassification(config)
    if info.weights == "retrained":
        path = RunDirectory(info.run_dir).retrained_weights_path
        state = load_file(str(path))
        try:
            model.network.load_state_dict(state, strict=True)
        except RuntimeError as err:
            what = "genome" if info.space.name == "blocks" else "architecture"
            raise ValueError(f"{path} does not fit the best {what} built for {info.channels}-channel input and "
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

    model = _build_model(info)
    # The processor's auto_map goes into config.json, not preprocessor_config.json: a
    # preprocessor_config with an auto_map makes transformers' image pipelines probe for a
    # remote *video* processor and ask, on a terminal, whether to run custom code.
    model.config.auto_map = {"AutoImageProcessor": PROCESSOR_REF}
    model.save_pretrained(out)
    processor = SearchedNetImageProcessor.for_input(info.image_size, info.channels, info.mean, info.std)
    processor.save_pretrained(out)  # with its code, image_processing_searched.py (custom_object_save)
    pre = out / "preprocessor_config.json"
    values = json.loads(pre.read_text())
    values.pop("auto_map", None)
    values.pop("image_processor_type", None)  # resolved through config.json (model_type / auto_map)
    pre.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    progress = RunDirectory(info.run_dir).progress_plot_path
    if progress.is_file():
        shutil.copyfile(progress, out / progress.name)
    return model


def export_run(run_dir: str | Path, out_dir: str | Path, *, weights: str = "auto", dataset=None,
               repo_id: str | None = None, pick: str = "best") -> list[str]:
    """Write a search run's best network as a ``transformers`` model directory.

    ``weights``: ``"retrained"`` (the run's ``retrained.safetensors``; an error if missing),
    ``"init"`` (freshly initialised, untrained: the architecture only; a warning, and the card
    says so in bold), or ``"auto"`` (retrained if the run was retrained, else init).
    ``dataset``: the run's data, as an :class:`~gptnas_hf.data.ImageData` or a source, when it
    is not where the search found it (channels, size, labels and normalisation come from it); for
    a table run (NAS-Bench-201), where the final training's data is when it is not where
    ``gptnas retrain`` found it.
    The run may be of any search space the model knows (``SearchedNetConfig.search_space``: the
    block genome or NAS-Bench-201; module doc).
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
        write_searched_network_card(info, model, out, repo_id)
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
        write_searched_network_card(info, model, staged, repo_id)

        def rewrite_card(full_id):  # "name" -> "user/name" once the Hub has said whose it is
            if full_id != repo_id:
                write_searched_network_card(info, model, staged, full_id)

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
    adapted on (``templates/adapted_gpt_card.md``). Returns the names of the files written."""
    run_dir = Path(run_dir)
    run = RunDirectory(run_dir)
    config, _, state = run.load()
    adapted = run.adapted_gpt_path
    if not (adapted / run.ADAPTATION).is_file():
        raise FileNotFoundError(f"run {str(run_dir)!r} has no adapted GPT ({run.ADAPTED_GPT}/): it was searched without "
                                "gpt_adaptation, or no generation has finished")
    info = json.loads((adapted / run.ADAPTATION).read_text())
    card = adapted_gpt_card(config, info)
    with tempfile.TemporaryDirectory(prefix="gptnas-card-") as tmp:
        path = Path(tmp) / "README.md"
        card.save(path)
        return export_architecture_model(adapted, out_dir, model_card=path)
