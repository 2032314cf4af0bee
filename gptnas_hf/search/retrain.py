"""Final training of a run's best genome (paper section 4.3) on the full training set.

Contract: the final training uses the **full** training split (train + validation) and the
full test split of the run's dataset, whatever subsets the search used
(``max_train_per_class``, ``train_subset_fraction``, ``max_test``), at the image size,
channels and normalisation the search used (so the exported image processor matches), unless
the ``retrain`` section says otherwise: its ``data`` key holds data settings for this training
(:func:`~gptnas_hf.recipe_config.retrain_data_settings`). The ``retrain`` section is the run's
(recorded in ``state.json``), or a recipe's given with ``recipe=`` (``gptnas retrain
--recipe``): a corrected section is used without discarding the search. ``retrain.json`` and
``report.md`` record the settings and the data actually used.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..recipe_config import RecipeError, read_recipe, retrain_config, retrain_data_settings
from ..search_space import count_parameters
from .run_directory import RunDirectory


def retrain_run(run_dir: str | Path, dataset=None, recipe: str | Path | None = None, pick: str = "best",
                **overrides) -> dict:
    """Retrain the best genome of ``run_dir`` (or the one ``pick`` chooses: :mod:`.pareto`) with
    the ``retrain`` settings (the run's, or ``recipe``'s, plus ``overrides``); writes
    ``retrained.safetensors`` and ``retrain.json`` there and a "Final training" section into
    ``report.md``. ``dataset``: where the run's data is, when it is not where the search found it."""
    from ..data import load_image_data
    from ..evaluation import retrain_network

    from .config import make_space

    run = RunDirectory(run_dir)
    config, genome, state = run.load()
    space = make_space(config)
    if pick != "best":
        from .pareto import pick_genome

        genome = pick_genome(genome, run.read_records(state.get("evaluation_key")), pick, space)
    if recipe is not None:
        section, where = read_recipe(recipe).get("retrain") or {}, f"recipe {str(recipe)!r}"
    else:
        section, where = config.retrain, f"{run.state_path} (the run's recipe)"
    try:
        retrain_config_ = retrain_config({**section, **overrides})
        data_settings = retrain_data_settings(config.data, section)
    except RecipeError as err:
        raise RecipeError(f"{where}: {err}. Correct the recipe's retrain section and run `gptnas retrain --run "
                          f"{run.path} --recipe RECIPE`: the search is kept") from None
    searched = run.read_data() or {}
    if data_settings.get("image_size") is None and searched.get("image_size"):
        data_settings["image_size"] = int(searched["image_size"])  # the size the genome was searched at
    source = dataset or config.dataset
    data = load_image_data(source, seed=config.seed, progress=config.progress, **data_settings)
    for key, have in (("channels", data.channels), ("num_classes", data.num_classes)):
        if key in searched and searched[key] != have:
            raise ValueError(f"the retraining data {str(source)!r} has {have} {key.replace('num_', '')}, the search's "
                             f"had {searched[key]} ({run.data_path}): retrain on the data the run searched")
    if searched.get("mean") and searched.get("std"):  # normalise as the search did: the exported processor does
        data = dataclasses.replace(data, mean=torch.tensor(searched["mean"], dtype=torch.float32),
                                   std=torch.tensor(searched["std"], dtype=torch.float32))
    torch.manual_seed(config.seed)
    network = space.build_network(genome, in_channels=data.channels, num_classes=data.num_classes)
    result = retrain_network(network, data, retrain_config_)
    save_file({k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}, str(run.retrained_weights_path))
    train_images = len(data.train_y) + (len(data.val_y) if retrain_config_.use_val else 0)
    summary = {
        "genome_hash": space.hash(genome), "pick": pick, "test_top1": result.test_top1, "test_top5": result.test_top5,
        "parameters": count_parameters(network), "epochs": retrain_config_.epochs, "dataset": str(config.dataset),
        "use_val": retrain_config_.use_val, "settings_from": where,
        "settings": {k: v for k, v in dataclasses.asdict(retrain_config_).items() if k != "progress"},
        "data": {"source": str(source), "settings": data_settings, "train_images": train_images,
                 "test_images": len(data.test_y), "image_size": data.image_size, "channels": data.channels,
                 "num_classes": data.num_classes, "size_note": data.size_note},
        "history": result.history,
    }
    run.write_retrain(summary)
    from .report import write_final_training

    write_final_training(run.path, summary)
    return summary

