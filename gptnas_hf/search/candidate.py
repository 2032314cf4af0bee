"""One candidate's evaluation, exactly as the search makes it: the one entry point for the
searcher (in its own process or its worker processes) and for the benchmarks.

Contract: a candidate's weights and batches are seeded by :func:`candidate_seed`: the run's
seed and the genome's hash, nothing else, so a genome scores the same whichever generation,
process or benchmark trains it. :func:`evaluate_candidate` builds the network with that seed,
trains and scores it (:func:`~gptnas_hf.evaluation.evaluate_network`) and returns the fields a
record of ``evaluations.jsonl`` takes from the training."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Sequence

import torch

from ..search_space import Genome, build_network, count_parameters


def seed_for(*parts) -> int:
    """A 32-bit seed derived from ``parts`` (stable across processes and runs)."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "little")


def candidate_seed(run_seed: int, genome, space=None) -> int:
    """The seed of ``genome``'s weights and batches in a run seeded ``run_seed`` (``space``: its
    search space, default the block genome)."""
    if space is None:
        return seed_for(run_seed, Genome.from_json(genome).hash())
    return seed_for(run_seed, space.hash(space.load(genome)))


def evaluate_candidate(genome, data, config, *, run_seed: int = 0, predicted_blocks: Sequence[int] = (),
                       seed: int | None = None, accelerator=None, space=None) -> dict:
    """Build ``genome``'s network (of ``space``, default the block genome) seeded by
    :func:`candidate_seed` (or ``seed``, when the caller derived it already) and train and score it on ``data`` with ``config`` (an ``EvalConfig``):
    fitness, top-5, parameters, trainable parameters, the resolved train scope, status and
    reason, images/s, the layout used (``channels_last``), threads and seconds."""
    from ..evaluation import evaluate_network

    started = time.perf_counter()
    genome = Genome.from_json(genome) if space is None else space.load(genome)
    seed = candidate_seed(run_seed, genome, space) if seed is None else int(seed)
    torch.manual_seed(seed)
    build = build_network if space is None else space.build_network
    network = build(genome, in_channels=data.channels, num_classes=data.num_classes)
    result = evaluate_network(network, data, dataclasses.replace(config, seed=seed),
                              predicted_blocks=list(predicted_blocks), accelerator=accelerator)
    return {"fitness": result.fitness, "top5": result.top5, "parameters": count_parameters(network),
            "trainable_parameters": result.trainable_parameters, "train_scope": result.train_scope,
            "status": result.status, "reason": result.reason, "images_per_second": result.images_per_second,
            "channels_last": result.channels_last,
            "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - started, 3)}
