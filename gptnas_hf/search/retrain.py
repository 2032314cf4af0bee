"""Final training of a run's best genome (paper section 4.3) on the full training set."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..search_space import Genome, build_network, count_parameters
from .searcher import STATE_FILE, SearchConfig

RETRAIN_FILE = "retrain.json"
RETRAINED_WEIGHTS = "retrained.safetensors"


def load_run(run_dir: str | Path) -> tuple[SearchConfig, Genome, dict]:
    """The settings, best genome and state of a search run directory, with clear errors."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {str(run_dir)!r} does not exist")
    state_path = run_dir / STATE_FILE
    if not state_path.is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a search run: it has no {STATE_FILE}")
    try:
        state = json.loads(state_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{state_path} is corrupt: {err}") from None
    best_path = run_dir / "best_genome.json"
    if not best_path.is_file():
        raise FileNotFoundError(f"run {str(run_dir)!r} has no best genome yet (no generation has finished)")
    return SearchConfig.from_dict(state["config"]), Genome.from_json(best_path.read_text()), state


def retrain_run(run_dir: str | Path, dataset=None, **overrides) -> dict:
    """Retrain the best genome of ``run_dir`` with its recipe's ``retrain`` settings (plus
    ``overrides``); writes ``retrained.safetensors`` and ``retrain.json`` there."""
    from ..data import load_image_data
    from ..evaluation import RetrainConfig, retrain_network

    run_dir = Path(run_dir)
    config, genome, _ = load_run(run_dir)
    data = load_image_data(dataset or config.dataset, seed=config.seed, progress=config.progress, **config.data)
    torch.manual_seed(config.seed)
    network = build_network(genome, in_channels=data.channels, num_classes=data.num_classes)
    retrain_config = RetrainConfig(**{**config.retrain, **overrides})
    result = retrain_network(network, data, retrain_config)
    save_file({k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}, str(run_dir / RETRAINED_WEIGHTS))
    summary = {
        "genome_hash": genome.hash(), "test_top1": result.test_top1, "test_top5": result.test_top5,
        "parameters": count_parameters(network), "epochs": retrain_config.epochs, "dataset": config.dataset,
        "history": result.history,
    }
    (run_dir / RETRAIN_FILE).write_text(json.dumps(summary, indent=1))
    return summary
