"""The model cards of what ``gptnas_hf.hub`` exports: the text lives in Jinja templates
(``templates/searched_network_card.md``, ``templates/adapted_gpt_card.md``), rendered with
``huggingface_hub.ModelCard.from_template``; this module computes the values and the YAML
metadata.

Cards tell the truth: the ``model-index`` holds only accuracies measured on the exported
weights (the test accuracy of ``gptnas retrain``); an export with untrained weights has no
``model-index`` at all. A local path never appears in a card: :func:`public_name` keeps its
last part.

The searched network's card has one text per search space (the template branches on
``search_space``): the block genome's (unchanged since before there were other spaces) and
NAS-Bench-201's, which says what was searched (the space, the fitness table and its metric, the
best cell and its table value, the queries made), that the table's value is the benchmark's and
not an accuracy of the exported weights, and that the architecture GPT was never trained on
NAS-Bench-201 cells or their accuracies.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .search.run_directory import RunDirectory

__all__ = ["adapted_gpt_card", "hub_dataset_id", "public_name", "searched_network_card", "write_searched_network_card"]

#: the Jinja templates of the model cards (ModelCard.from_template)
TEMPLATES = Path(__file__).with_name("templates")


def public_name(source: str | None) -> str | None:
    """A data source or checkpoint as it may appear in public: a local path becomes its name."""
    if source is None:
        return None
    source = str(source)
    if source.startswith(("/", ".", "~")) or Path(source).expanduser().exists():
        return Path(source).expanduser().name or source
    return source


def hub_dataset_id(source: str) -> str | None:
    from .data import HUB_PRESETS

    if source in HUB_PRESETS:
        return HUB_PRESETS[source]["path"]
    if re.fullmatch(r"[\w.-]+/[\w.-]+", source) and not Path(source).expanduser().exists():
        return source
    return None


def _layer_listing(model, info) -> list[str]:
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


def _card_data(info, name: str, dataset: str | None, source: str | None = None, extra_tags: tuple[str, ...] = ()):
    """The card's YAML metadata; its ``model-index`` holds only accuracies of the exported weights.
    ``source``: the data as given, for its Hub id (default the run's ``dataset``)."""
    from huggingface_hub import EvalResult, ModelCardData

    hub_dataset = hub_dataset_id(str(info.config.dataset if source is None else source))
    eval_kwargs = dict(task_type="image-classification", task_name="Image Classification",
                       dataset_type=hub_dataset or dataset, dataset_name=dataset, metric_type="accuracy",
                       dataset_split="test")
    results = []  # only accuracies of the exported weights (module doc)
    if info.retrain is not None and info.retrain.get("test_top1") is not None:
        for k in (1, 5):
            if info.retrain.get(f"test_top{k}") is not None:
                results.append(EvalResult(**eval_kwargs, metric_name=f"test top-{k} accuracy",
                                          metric_value=round(float(info.retrain[f"test_top{k}"]), 4)))
    return ModelCardData(
        library_name="transformers", license="apache-2.0", pipeline_tag="image-classification",
        tags=["neural-architecture-search", "gpt-nas", "image-classification", "gptnas-hf", "custom_code",
              *extra_tags],
        datasets=[hub_dataset] if hub_dataset else None, metrics=["accuracy"] if results else None,
        model_name=name, eval_results=results or None,
    )


def _fmt_accuracy(value) -> str | None:
    return None if value is None else f"{value:.4f}"


def searched_network_card(info, model, repo_id: str | None):
    """The model card of an exported run: the values computed here, the text in
    ``templates/searched_network_card.md``."""
    from huggingface_hub import ModelCard

    from .search_space import count_parameters

    space = getattr(info, "space", None)
    if space is not None and space.name != "blocks":
        return _cell_card(info, model, repo_id)
    cfg = info.config
    dataset = public_name(cfg.dataset)
    genome_hash = info.genome.hash()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset)
    name = repo_id.split("/")[-1] if repo_id else f"gptnas-{slug}-{genome_hash[:8]}"
    parameters = count_parameters(model.network)
    strategy = cfg.strategy.upper() if cfg.strategy == "ga" else cfg.strategy.capitalize()
    retrain = info.retrain or {}
    used = retrain.get("data") or {}
    records, best = info.records, info.best_record
    layers = _layer_listing(model, info)
    values = dict(
        # the network and its data
        name=name, repo_id=repo_id, dataset=dataset, classes=len(info.class_names), channels=info.channels,
        image_size=info.image_size, mean=info.mean, std=info.std,
        labels=", ".join(info.class_names[:20]) + (" ..." if len(info.class_names) > 20 else ""),
        parameters=f"{parameters:,}", blocks=len(info.genome), kinds=", ".join(dict.fromkeys(info.genome.kinds)),
        genome_hash=genome_hash,
        genome_json="[\n" + ",\n".join("  " + json.dumps(block) for block in info.genome.to_list()) + "\n]",
        layer_count=len(layers), layers="\n".join(layers), code_files=_code_files(),
        # the weights and their accuracy
        trained=info.weights == "retrained", retrained_available=info.retrained_available,
        final_training=info.retrain is not None, test_top1=_fmt_accuracy(retrain.get("test_top1")),
        test_top5=_fmt_accuracy(retrain.get("test_top5")), retrain_epochs=_epochs(retrain.get("epochs")),
        retrain_parameters=f"{retrain.get('parameters', parameters):,}",
        train_images=f"{used['train_images']:,}" if "train_images" in used else None,
        use_val=(retrain.get("use_val", cfg.retrain.get("use_val", True)) if info.retrain is not None
                 else None),
        # the search
        setting=f"{strategy}{'+GPT' if cfg.use_gpt else ''}", strategy=cfg.strategy, use_gpt=bool(cfg.use_gpt),
        seed=cfg.seed, population=cfg.population_size, generations=cfg.generations,
        crossover_rate=cfg.crossover_rate, mutation_rate=cfg.mutation_rate, min_blocks=cfg.min_blocks,
        max_blocks=cfg.max_blocks, widths=list(cfg.widths), max_downsamples=cfg.max_downsamples,
        gpt_model=public_name(cfg.model), initial_mask_rate=cfg.initial_mask_rate, window_size=cfg.window_size,
        data_subset=", ".join(f"{k} {v}" for k, v in sorted(cfg.data.items()) if k != "cache_dir"),
        evaluation=", ".join(f"{k} {v}" for k, v in sorted(cfg.evaluation.items()) if k != "progress"),
        evaluations=len(records), rebuilt=sum(bool(r.get("reconstructed")) for r in records),
        failed=sum(r.get("status", "ok") != "ok" for r in records),
        training_time=_fmt_seconds(sum(float(r.get("seconds") or 0.0) for r in records)),
        wall_time=_fmt_seconds(info.wall_seconds),
        finished=info.state.get("phase") == "done", stopped_at=info.state.get("generation", "?"),
        generations_done=len(info.state.get("history", [])),
        progress_plot=RunDirectory(info.run_dir).progress_plot_path.is_file(),
        # this architecture in the search
        val=_fmt_accuracy(best.get("fitness")), generation=best.get("generation"), origin=best.get("origin"),
        reconstructed=bool(best.get("reconstructed")),
        macs=f"{best['macs']:,}" if best.get("macs") is not None else None, pick=info.pick,
        search_space="blocks",
    )
    return ModelCard.from_template(_card_data(info, name, dataset),
                                   template_path=str(TEMPLATES / "searched_network_card.md"), **values)


def _fmt_value(value) -> str | None:
    """A table's value as it reads best: 94.3733, 67.3, 0.673."""
    return None if value is None else f"{float(value):g}"


def _code_files() -> list[str]:
    """The code files an exported searched network carries (what ``save_pretrained`` copies for
    the model and the image processor: every flat module they import, directly or not)."""
    from transformers.dynamic_module_utils import get_relative_import_files

    names = set()
    for module in ("modeling_searched.py", "image_processing_searched.py"):
        names.add(module)
        names.update(Path(p).name for p in get_relative_import_files(str(Path(__file__).with_name(module))))
    first = ["modeling_searched.py", "space_nas_bench_201.py", "image_processing_searched.py"]
    return [n for n in first if n in names] + sorted(names - set(first))


def _cell_card(info, model, repo_id: str | None):
    """The card of a run of the NAS-Bench-201 space (``templates/searched_network_card.md``'s
    ``nas-bench-201`` branch)."""
    from huggingface_hub import ModelCard

    from .search_space import count_parameters
    from .space_nas_bench_201 import EDGES, OPS

    cfg, space = info.config, info.space
    cell = space.load(info.genome)
    genome_hash = space.hash(cell)
    dataset = info.dataset
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset) + "-" if dataset else ""
    name = repo_id.split("/")[-1] if repo_id else f"gptnas-{space.name}-{slug}{genome_hash[:8]}"
    parameters = count_parameters(model.network)
    strategy = cfg.strategy.upper() if cfg.strategy in ("ga", "rea") else cfg.strategy.capitalize()
    retrain = info.retrain or {}
    used = retrain.get("data") or {}
    records, best = info.records, info.best_record
    layers = _layer_listing(model, info)
    table = dict(info.table or {})
    fitness = cfg.table_config()  # None: the candidates were trained (the template's other sentences)
    counts = {op: cell.ops.count(op) for op in OPS if op in cell.ops}
    values = dict(
        search_space=space.name,
        # the network and its data
        name=name, repo_id=repo_id, dataset=dataset, classes=len(info.class_names), channels=info.channels,
        image_size=info.image_size, mean=info.mean, std=info.std, generic_input=info.generic_input,
        labels=", ".join(info.class_names[:20]) + (" ..." if len(info.class_names) > 20 else ""),
        parameters=f"{parameters:,}", genome_hash=genome_hash, cell=space.dump(cell),
        ops=", ".join(f"{n} x {op}" for op, n in counts.items()),
        edges=[{"edge": f"{i} -> {j}", "op": op} for (i, j), op in zip(EDGES, cell.ops)],
        layer_count=len(layers), layers="\n".join(layers), code_files=_code_files(),
        # the weights and their accuracy
        trained=info.weights == "retrained", retrained_available=info.retrained_available,
        final_training=info.retrain is not None, test_top1=_fmt_accuracy(retrain.get("test_top1")),
        test_top5=_fmt_accuracy(retrain.get("test_top5")), retrain_epochs=_epochs(retrain.get("epochs")),
        retrain_parameters=f"{retrain.get('parameters', parameters):,}",
        train_images=f"{used['train_images']:,}" if "train_images" in used else None,
        test_images=f"{used['test_images']:,}" if "test_images" in used else None,
        use_val=(retrain.get("use_val", cfg.retrain.get("use_val", True)) if info.retrain is not None
                 else None),
        # the table (all None when the candidates were trained instead)
        table_name=public_name(table.get("path") or fitness.table) if fitness is not None else None,
        metric=table.get("metric_column", fitness.metric) if fitness is not None else None,
        table_cells=f"{table['architectures']:,}" if table.get("architectures") is not None else None,
        table_min=_fmt_value(table.get("min")), table_max=_fmt_value(table.get("max")), table_scale=table.get("scale"),
        table_shape=f"{fitness.in_channels}x{fitness.image_size}x{fitness.image_size}" if fitness is not None else None,
        table_classes=fitness.num_classes if fitness is not None else None,
        data_subset=", ".join(f"{k} {v}" for k, v in sorted(cfg.data.items()) if k != "cache_dir"),
        evaluation=", ".join(f"{k} {v}" for k, v in sorted(cfg.evaluation.items()) if k != "progress"),
        # the search
        setting=f"{strategy}{'+GPT' if cfg.use_gpt else ''}", strategy=cfg.strategy, use_gpt=bool(cfg.use_gpt),
        seed=cfg.seed, population=cfg.population_size, generations=cfg.generations,
        crossover_rate=cfg.crossover_rate, mutation_rate=cfg.mutation_rate,
        strategy_options=", ".join(f"{k} {v}" for k, v in sorted(cfg.strategy_options.items())),
        gpt_model=public_name(cfg.model), initial_mask_rate=cfg.initial_mask_rate,
        scorer=cfg.reconstruction_scorer, adaptation=cfg.gpt_adaptation is not None,
        adapted=RunDirectory(info.run_dir).adapted_gpt_path.is_dir(),
        queries=len(records), max_queries=cfg.max_queries,
        rebuilt=sum(bool(r.get("reconstructed")) for r in records),
        failed=sum(r.get("status", "ok") != "ok" for r in records),
        wall_time=_fmt_seconds(info.wall_seconds),
        finished=info.state.get("phase") == "done", stopped_at=info.state.get("generation", "?"),
        generations_done=len(info.state.get("history", [])),
        progress_plot=RunDirectory(info.run_dir).progress_plot_path.is_file(),
        # this architecture in the search
        table_value=_fmt_value(best.get("metric")), val=_fmt_accuracy(best.get("fitness")),
        generation=best.get("generation"), origin=best.get("origin"), reconstructed=bool(best.get("reconstructed")),
        pick=info.pick,
    )
    card_data = _card_data(info, name, dataset or "unspecified", source=info.dataset_source or "",
                           extra_tags=(space.name,))
    return ModelCard.from_template(card_data, template_path=str(TEMPLATES / "searched_network_card.md"), **values)


def write_searched_network_card(info, model, out: Path, repo_id: str | None) -> None:
    searched_network_card(info, model, repo_id).save(out / "README.md")


def adapted_gpt_card(config, adaptation: dict):
    """The card of an architecture GPT adapted during a search (``config``: the run's
    ``SearchConfig``; ``adaptation``: its ``adaptation.json``)."""
    from huggingface_hub import ModelCard, ModelCardData

    return ModelCard.from_template(
        ModelCardData(library_name="transformers", tags=["gptnas", "neural-architecture-search", "nas-reconstruction"]),
        template_path=str(TEMPLATES / "adapted_gpt_card.md"), base_checkpoint=public_name(config.model),
        strategy=config.strategy.upper(), dataset=public_name(config.dataset), generation=adaptation["generation"],
        generations=config.generations, genomes=adaptation["genomes"], windows=adaptation["windows"],
        replay_windows=adaptation["replay_windows"],
        settings=", ".join(f"{k} {v}" for k, v in adaptation.get("settings", {}).items()),
    )
