"""The size budget of a genome, measured before anything is allocated.

Contract: :func:`measure_genome` builds the genome's network on the ``meta`` device (shapes
only: no memory for weights, no arithmetic) and runs one image through it there, so a genome
of 60 blocks of width 4096 is measured without allocating its gigabytes. It returns the number of parameters, of activation elements (the outputs of
every leaf module, for one image at the given size: what training keeps for the backward pass,
per image) and of multiply-accumulates for one image (``macs``: half the FLOPs that torch's own
:class:`~torch.utils.flop_counter.FlopCounterMode` counts for the forward pass, which works on
meta tensors). :func:`check_genome_budget` raises :class:`GenomeBudgetError` (a ``ValueError``)
when one is past its limit, naming the numbers and the setting that raises the limit.

Used by the search (a candidate past the budget is recorded with status ``"budget"`` and never
trained) and by :class:`~gptnas_hf.modeling_searched.SearchedNetForImageClassification` (checked
before the network is built, so ``from_pretrained`` of an enormous ``config.json`` fails fast).

This module imports nothing from ``gptnas_hf`` but the genome's network (flat, ``from .genome_network``):
it is copied beside saved searched networks for ``trust_remote_code=True`` users.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .genome_network import GenomeNetwork

__all__ = ["DEFAULT_MAX_PARAMETERS", "DEFAULT_MAX_ACTIVATIONS", "GenomeBudgetError", "GenomeSize",
           "measure_genome", "check_genome_budget", "over_budget"]

#: parameters: above every network of the torchvision zoo (wide_resnet101_2 has 127M)
DEFAULT_MAX_PARAMETERS = 200_000_000
#: activation elements for one image: above every zoo network at 224x224 (about 10x ResNet-50's)
DEFAULT_MAX_ACTIVATIONS = 500_000_000


class GenomeBudgetError(ValueError):
    """A genome whose network is past the parameter or activation budget."""


@dataclass(frozen=True)
class GenomeSize:
    parameters: int
    activations: int  # elements of every leaf module's output, for one image
    image_size: int
    macs: int = 0  # multiply-accumulates of one forward pass of one image (torch's FLOP counter / 2)


def measure_genome(genome, in_channels: int = 3, num_classes: int = 10, image_size: int = 32,
                   build=None) -> GenomeSize:
    """Parameters, activation elements and MACs of ``genome``'s network for one image, measured
    on the meta device. ``build(genome, in_channels, num_classes)`` makes the network of another
    search space (default: the block genome's)."""
    with torch.device("meta"):
        if build is None:
            network = GenomeNetwork(genome, in_channels=in_channels, num_classes=num_classes, init_weights=False)
        else:
            network = build(genome, in_channels, num_classes)
    network.eval()  # the same shapes and counts as training, faster on meta (no batch statistics)
    parameters = sum(p.numel() for p in network.parameters())
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel()

    leaves = [m for m in network.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves if isinstance(m, nn.Module)]
    flops = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), flops:
            network(torch.empty(1, in_channels, image_size, image_size, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return GenomeSize(parameters=int(parameters), activations=int(total), image_size=int(image_size),
                      macs=int(flops.get_total_flops()) // 2)


def check_genome_budget(genome, in_channels: int = 3, num_classes: int = 10, image_size: int = 32, *,
                        max_parameters: int | None = DEFAULT_MAX_PARAMETERS,
                        max_activations: int | None = DEFAULT_MAX_ACTIVATIONS, max_macs: int | None = None,
                        setting: str = "max_parameters / max_activations") -> GenomeSize:
    """:func:`measure_genome`, then a :class:`GenomeBudgetError` past either limit (``None``: no
    limit). ``setting`` names where the user raises the limits, for the message."""
    size = measure_genome(genome, in_channels, num_classes, image_size)
    problem = over_budget(size, max_parameters, max_activations, setting, max_macs=max_macs)
    if problem:
        raise GenomeBudgetError(problem)
    return size


def over_budget(size: GenomeSize, max_parameters: int | None, max_activations: int | None,
                setting: str = "max_parameters / max_activations", *, max_macs: int | None = None) -> str:
    """Why ``size`` is past the budget ("" when it is not)."""
    over = []
    if max_parameters is not None and size.parameters > max_parameters:
        over.append(f"{size.parameters:,} parameters (budget {max_parameters:,})")
    if max_macs is not None and size.macs > max_macs:
        over.append(f"{size.macs:,} MACs per {size.image_size}x{size.image_size} image (budget {max_macs:,})")
    if max_activations is not None and size.activations > max_activations:
        over.append(f"{size.activations:,} activation elements per {size.image_size}x{size.image_size} image "
                    f"(budget {max_activations:,})")
    if not over:
        return ""
    return f"the genome's network is too large: {' and '.join(over)}; raise {setting} to allow it"
