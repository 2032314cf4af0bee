"""One seeded-RNG helper for the package: ``with seeded(seed, device): ...`` runs the block with
torch's global RNG (and the device's CUDA RNG) seeded, and gives the caller's RNG state back
afterwards, so a seeded computation neither depends on nor disturbs the caller's random state.

A flat model-side module: it imports torch and the standard library only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Seed torch for the block (``device``: the CUDA device whose RNG is forked too; a CUDA
    device without an index means the current one) and restore every forked state on exit."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        fork = torch.random.fork_rng(devices=[index])
    else:
        fork = torch.random.fork_rng(devices=[])
    with fork:
        torch.manual_seed(int(seed))
        yield
