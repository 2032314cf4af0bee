"""The NAS-Bench-101 network of a cell, in PyTorch (the reference's ``model_builder.py``).

Every cell is stacked into the same skeleton: a 3x3 conv-bn-relu stem, 3 stacks of 3 cells
with max-pool down-sampling (and channel doubling) in between, global average pooling and a
linear classifier. This module holds:

* :func:`compute_vertex_channels`: the channels of every vertex of a pruned cell;
* :class:`NASBench101Cell`: one cell as an ``nn.Module``, every conv-bn-relu a
  ``torchvision.ops.Conv2dNormActivation``;
* :class:`NASBench101Network`: the skeleton around a :class:`~.nasbench101_cells.CellSpec`,
  with the reference's parameter counts at the defaults;
* :func:`trace_cell`: the network's traced layers (``encoding.trace``), built on ``meta``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torchvision.ops import Conv2dNormActivation

from ..encoding import trace_factory
from .nasbench101_cells import CONV1X1, CONV3X3, CellSpec

__all__ = [
    "compute_vertex_channels",
    "NASBench101Cell",
    "NASBench101Network",
    "trace_cell",
]


def compute_vertex_channels(input_channels: int, output_channels: int, matrix: Sequence[Sequence[int]]) -> list[int]:
    """``model_builder.compute_vertex_channels``: the output channels of every vertex of a
    pruned cell. The cell's output channels are split evenly among the vertices that feed the
    output (the first ``remainder`` of them get one more); every other interior vertex gets the
    largest count among the vertices it feeds."""
    n = len(matrix)
    channels = [0] * n
    channels[0] = input_channels
    channels[n - 1] = output_channels
    if n == 2:
        return channels
    in_degree_output = sum(matrix[v][n - 1] for v in range(1, n))
    interior, correction = divmod(output_channels, in_degree_output)
    for v in range(1, n - 1):
        if matrix[v][n - 1]:
            channels[v] = interior
            if correction:
                channels[v] += 1
                correction -= 1
    for v in range(n - 3, 0, -1):
        if not matrix[v][n - 1]:
            for dst in range(v + 1, n - 1):
                if matrix[v][dst]:
                    channels[v] = max(channels[v], channels[dst])
        if channels[v] <= 0:
            raise ValueError(f"vertex {v} gets no channels (output_channels={output_channels} too small?)")
    fan_in = sum(channels[v] for v in range(1, n - 1) if matrix[v][n - 1])
    assert fan_in == output_channels, (channels, output_channels)
    return channels


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> Conv2dNormActivation:
    """``base_ops.conv_bn_relu``: stride 1, 'same' padding, no bias, BN, ReLU."""
    return Conv2dNormActivation(
        in_channels, out_channels, kernel_size, norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU, bias=False
    )


class NASBench101Cell(nn.Module):
    """One cell (``model_builder.build_module``). Tensors flowing into an interior vertex are
    summed (the input always through a 1x1 projection, others truncated to the vertex's
    channels), tensors into the output are concatenated, and the input is added to the output
    through a 1x1 projection when the cell has an input->output edge."""

    def __init__(self, spec: CellSpec, in_channels: int, out_channels: int):
        super().__init__()
        self.spec = spec
        self.in_channels, self.out_channels = in_channels, out_channels
        matrix, n = spec.matrix, spec.num_vertices
        self.vertex_channels = compute_vertex_channels(in_channels, out_channels, matrix)
        self.projections = nn.ModuleDict()
        self.vertex_ops = nn.ModuleDict()
        for t in range(1, n - 1):
            c = self.vertex_channels[t]
            if matrix[0][t]:
                self.projections[f"vertex_{t}"] = _conv_bn_relu(in_channels, c, 1)
            op = spec.ops[t]
            if op == CONV3X3:
                self.vertex_ops[f"vertex_{t}"] = _conv_bn_relu(c, c, 3)
            elif op == CONV1X1:
                self.vertex_ops[f"vertex_{t}"] = _conv_bn_relu(c, c, 1)
            else:  # MAXPOOL3X3: 3x3, stride 1, 'same'
                self.vertex_ops[f"vertex_{t}"] = nn.MaxPool2d(3, stride=1, padding=1)
        if matrix[0][n - 1]:
            self.projections["output"] = _conv_bn_relu(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        matrix, n, channels = self.spec.matrix, self.spec.num_vertices, self.vertex_channels
        tensors = [x]
        concat = []
        for t in range(1, n - 1):
            add_in = [tensors[src][:, : channels[t]] for src in range(1, t) if matrix[src][t]]
            if matrix[0][t]:
                add_in.append(self.projections[f"vertex_{t}"](x))
            value = add_in[0]
            for other in add_in[1:]:
                value = value + other
            tensors.append(self.vertex_ops[f"vertex_{t}"](value))
            if matrix[t][n - 1]:
                concat.append(tensors[t])
        if not concat:  # input wired straight to output
            return self.projections["output"](x)
        out = concat[0] if len(concat) == 1 else torch.cat(concat, dim=1)
        if matrix[0][n - 1]:
            out = out + self.projections["output"](x)
        return out

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, vertex_channels={self.vertex_channels}"


class NASBench101Network(nn.Module):
    """The NAS-Bench-101 network of a cell (``model_builder.build_model_fn``): a 3x3
    conv-bn-relu stem, ``num_stacks`` stacks of ``cells_per_stack`` cells, a 2x2 max-pool
    (stride 2) before every stack but the first that also doubles the channels, global average
    pooling and a linear classifier. With the defaults and a 32x32 input it has the reference's
    parameter count (2,694,282 for the colab's Inception-like cell)."""

    def __init__(
        self,
        spec: CellSpec,
        num_classes: int = 10,
        stem_channels: int = 128,
        num_stacks: int = 3,
        cells_per_stack: int = 3,
        in_channels: int = 3,
    ):
        super().__init__()
        if not isinstance(spec, CellSpec):
            raise TypeError(f"spec must be a CellSpec, got {type(spec).__name__}")
        self.spec = spec
        self.stem = _conv_bn_relu(in_channels, stem_channels, 3)
        stacks = []
        channels = stem_channels
        for stack in range(num_stacks):
            layers: list[nn.Module] = []
            cell_in = channels
            if stack > 0:
                # TF 'same' 2x2/2 pooling: ceil_mode gives the same size on odd inputs too
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
                channels *= 2
            for _ in range(cells_per_stack):
                layers.append(NASBench101Cell(spec, cell_in, channels))
                cell_in = channels
            stacks.append(nn.Sequential(*layers))
        self.stacks = nn.ModuleList(stacks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stack in self.stacks:
            x = stack(x)
        return self.classifier(self.flatten(self.pool(x)))


def trace_cell(spec: CellSpec, input_shape: Sequence[int] = (3, 32, 32), **network_kwargs):
    """The traced layers (``encoding.trace``) of ``NASBench101Network(spec, **network_kwargs)``,
    built on the ``meta`` device at ``input_shape``."""
    kwargs = {"in_channels": int(input_shape[-3]), **network_kwargs}
    return trace_factory(lambda: NASBench101Network(spec, **kwargs), input_shape)
