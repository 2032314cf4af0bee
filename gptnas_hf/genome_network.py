"""A genome's network: each block becomes a :class:`GenomeBlock` built by its kind
(``BlockKind.build`` of :mod:`gptnas_hf.kind_registry`: torchvision's own block classes for the
Table-2 kinds, with a 1x1 adapter where a kind cannot change width or stride by itself), and
the genome a :class:`GenomeNetwork` (blocks, then pooling and a linear classifier). The rules
(channel closure, strides, initialisation) are described in :mod:`gptnas_hf.search_space`."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .genome_schema import normalize_block, validate_genome
from .kind_registry import block_kind
from .value_checks import is_int


class GenomeBlock(nn.Module):
    """One genome block: the kind's module (``op``) plus, where the closure rule needs it, an
    ``adapter`` before or after it. ``gptnas_block_label`` (= ``kind``) is what the tracer in
    :mod:`gptnas_hf.encoding` labels every layer inside with."""

    def __init__(self, block: Mapping, in_channels: int):
        super().__init__()
        spec = normalize_block(0, block)
        kind, width, stride = spec["kind"], spec["width"], spec["stride"]
        self.gptnas_block_label = kind
        self.kind, self.spec = kind, spec
        self.in_channels, self.out_channels, self.stride = int(in_channels), width, stride
        pre, op, post = block_kind(kind).build(spec, self.in_channels)
        # register in execution order
        self.adapter_position = "pre" if pre is not None else ("post" if post is not None else None)
        if pre is not None:
            self.adapter = pre
        self.op = op
        if post is not None:
            self.adapter = post

    @property
    def has_adapter(self) -> bool:
        return self.adapter_position is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.adapter_position == "pre":
            x = self.adapter(x)
        x = self.op(x)
        if self.adapter_position == "post":
            x = self.adapter(x)
        return x

    def extra_repr(self) -> str:
        return f"kind={self.kind}, in={self.in_channels}, out={self.out_channels}, stride={self.stride}"


def build_block(block: Mapping, in_channels: int) -> GenomeBlock:
    """The :class:`GenomeBlock` of one block dict (validated and normalized first)."""
    return GenomeBlock(normalize_block(0, block), in_channels)


def init_module_weights(module: nn.Module) -> None:
    """Initialise one module as torchvision's ResNet / RegNet do: kaiming (fan-out) convs,
    unit BatchNorm, small normal Linear."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.01)
        nn.init.zeros_(module.bias)


class GenomeNetwork(nn.Module):
    """A genome's network: ``blocks`` (one :class:`GenomeBlock` per genome block, same index)
    then ``head`` = AdaptiveAvgPool2d(1) -> Flatten -> Linear(last width, num_classes)."""

    def __init__(self, genome, in_channels: int = 3, num_classes: int = 10, *, init_weights: bool = True):
        super().__init__()
        if not is_int(num_classes) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.genome = validate_genome(genome, in_channels)
        self.in_channels, self.num_classes = in_channels, num_classes
        blocks, channels = [], in_channels
        for spec in self.genome:
            blocks.append(GenomeBlock(spec, channels))
            channels = spec["width"]
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(channels, num_classes))
        if init_weights:
            self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            init_module_weights(m)

    @property
    def num_adapters(self) -> int:
        return sum(b.has_adapter for b in self.blocks)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def build_network(genome, in_channels: int = 3, num_classes: int = 10) -> GenomeNetwork:
    """Build the ``nn.Module`` of a genome (a :class:`Genome`, list of dicts or JSON string)."""
    return GenomeNetwork(genome, in_channels=in_channels, num_classes=num_classes)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``module`` (only those with ``requires_grad`` if asked)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
