"""What every architecture corpus shares: one row per network, traced without computing."""

from __future__ import annotations

from typing import Callable, Sequence

import datasets
from accelerate import init_empty_weights
from torch import nn

from ..encoding import TracedLayer, trace

ARCHITECTURE_FEATURES = datasets.Features(
    {
        "name": datasets.Value("string"),
        "source": datasets.Value("string"),
        "layers": datasets.Sequence(datasets.Value("string")),
        "types": datasets.Sequence(datasets.Value("string")),
        "blocks": datasets.Sequence(datasets.Value("string")),
        "block_index": datasets.Sequence(datasets.Value("int32")),
    }
)


def _shape_only(x):
    return x


def trace_factory(factory: Callable[[], nn.Module], input_shape: Sequence[int]) -> list[TracedLayer]:
    """Build ``factory()`` with its weights on the ``meta`` device and trace it: shapes only, no
    memory for weights and no arithmetic, so the largest zoo networks trace in well under a
    second.

    Every BatchNorm2d of the throw-away copy forwards its input unchanged: batch norm keeps
    the shape, so the trace is identical, but on ``meta`` tensors PyTorch runs batch norm
    through Python decompositions that take most of the tracing time."""
    with init_empty_weights(include_buffers=False):
        module = factory()
    for sub in module.modules():
        if isinstance(sub, nn.BatchNorm2d):
            sub.forward = _shape_only
    return trace(module.to("meta"), input_shape)


def architecture_row(name: str, source: str, layers: Sequence[TracedLayer]) -> dict:
    """One corpus row: the Table-1 texts, types and block labels of a traced network."""
    return {
        "name": name,
        "source": source,
        "layers": [layer.text for layer in layers],
        "types": [layer.type for layer in layers],
        "blocks": [layer.block for layer in layers],
        "block_index": [layer.block_index for layer in layers],
    }
