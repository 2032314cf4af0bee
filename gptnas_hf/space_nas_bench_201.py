"""The NAS-Bench-201 search space (Dong and Yang, "NAS-Bench-201: Extending the Scope of
Reproducible Neural Architecture Search", ICLR 2020; the topology space "tss" of NATS-Bench,
Dong et al., TPAMI 2021) as a :class:`~gptnas_hf.search_space_protocol.SearchSpace` plug-in,
registered as ``"nas-bench-201"``.

The architecture (a :class:`Cell`). A cell is a DAG of 4 nodes: node 0 is the cell's input,
node ``j`` the sum over ``i < j`` of ``op_{i->j}(node i)``, and node 3 the cell's output. Each
of the 6 edges (:data:`EDGES`, in the benchmark's order ``0->1, 0->2, 1->2, 0->3, 1->3, 2->3``)
carries one of the 5 ops of :data:`OPS`, so the space has 5**6 = 15,625 cells. The benchmark
writes a cell as ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``: the ``+``-joined groups are nodes
1, 2, 3 and node ``j``'s group lists its incoming edges ``op~i``. That string is the record's
JSON value (:meth:`NASBench201Space.dump`); :meth:`Cell.from_json` also reads a list of 6 op
names in :data:`EDGES` order. Anything else raises
:class:`~gptnas_hf.search_space_protocol.InvalidArchitectureError` naming the problem.

The network (:class:`NASBench201Network`), the benchmark's macro skeleton, written from the
paper (section 2.1 and figure 1) and its reference code (``TinyNetwork``, ``InferCell``,
``ResNetBasicblock`` and ``OPS`` in ``lib/models/cell_infers/`` and
``lib/models/cell_operations.py`` of github.com/D-X-Y/AutoDL-Projects, the code NAS-Bench-201
and NATS-Bench were trained with):

* a stem ``Conv2d(in_channels, 16, 3, padding=1, bias=False)`` + ``BatchNorm2d(16)``;
* three stages of 5 cells with 16, 32 and 64 channels; between two stages a residual
  reduction block (:class:`ResNetBasicblock`): ReLU-Conv3x3(stride 2)-BN, ReLU-Conv3x3-BN,
  plus a shortcut AvgPool2d(2, 2) -> Conv1x1 (no bias);
* BatchNorm + ReLU (``lastact``), global average pooling and a Linear classifier (``head``).

Ops: ``nor_conv_kxk`` is ReLU -> Conv(k, padding k//2, no bias) -> BatchNorm; ``avg_pool_3x3``
is AvgPool2d(3, stride 1, padding 1, count_include_pad=False); ``skip_connect`` is
``nn.Identity``; ``none`` is zero. A ``none`` edge is an absent edge: the cell keeps a
:class:`Zero` module at its index (``cell.edges[i]`` is edge ``i``) but never calls it, and a
node whose incoming edges are all ``none`` is ``input * 0``. A cell whose node 3 gets only
``none`` edges therefore outputs zeros, as in the benchmark (such cells are in its table).

``network.blocks`` (an ``nn.ModuleList``) is, in execution order, the stem, the 15 cells and
the 2 reduction blocks (18 blocks); ``network.head`` is the Linear. With 10 classes the network
has 0.07 M (all ``none``) to 1.53 M (all ``nor_conv_3x3``) parameters, the paper's range.
Two departures from the reference, neither of which changes a 32 x 32 network: the shortcut's
AvgPool2d uses ``ceil_mode=True``, so that both branches of a reduction block agree on odd
sizes and the network runs on any input of at least 4 pixels (on even sizes the two are the
same computation); and weights are initialised as the block space's networks are
(:func:`~gptnas_hf.genome_network.init_module_weights`: kaiming fan-out convs, unit BatchNorm,
small normal Linear) rather than with PyTorch's defaults. The classifier returns logits only
(the reference returns ``(features, logits)``).

What the GPT reads (:meth:`NASBench201Space.network_layers`): the Table-1 records that
:func:`~gptnas_hf.encoding.trace` gives for the network, composed from cached pieces (per op,
channel count and size; the stem, the reduction blocks and the tail) instead of building and
tracing a network, so scoring all 15,625 cells is cheap. ``skip_connect`` (``nn.Identity``,
which the tracer skips) and ``none`` (never called) add no record; a convolution adds ReLU,
Conv and BatchNorm records and a pooling edge one pooling record, in the edges' order.
:meth:`NASBench201Space.network_block_index` gives each record's block index as the tracer
numbers them (the GPT's location ids come from it), from the same pieces.

Evolution (:meth:`~NASBench201Space.mutate`, :meth:`~NASBench201Space.crossover`): a mutation
is the reference's (``mutate_topology_func`` in AutoDL-Projects'
``exps/NAS-Bench-201-algos/R_EA.py`` and ``exps/NATS-algos/regularized_ea.py``): a node drawn
first, then one of its incoming edges, which gets a different op (uniform among the other 4),
so the edge ``0->1`` is picked with probability 1/3 and each edge into node 3 with 1/9, as in the
published runs.
Crossover is one-point over the 6-edge list (the cut uniform in 1..5). Every method is pure:
randomness comes only from the ``random.Random`` passed in.

A flat model-side module: it imports torch, the standard library and flat modules of
``gptnas_hf`` only.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import operator
import random
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from .encoding import LayerRecord, trace
from .genome_network import init_module_weights
from .search_space_protocol import InvalidArchitectureError, SearchSpace, register_space
from .value_checks import is_int

__all__ = [
    "OPS",
    "EDGES",
    "NUM_EDGES",
    "STAGE_CHANNELS",
    "CELLS_PER_STAGE",
    "Cell",
    "all_cells",
    "Zero",
    "ReLUConvBN",
    "make_op",
    "ResNetBasicblock",
    "NASBench201Cell",
    "NASBench201Network",
    "NASBench201Space",
]

#: the benchmark's ops, in its order
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: the cell's edges ``(i, j)`` (``i -> j``) in the benchmark's order: grouped by target node
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
NUM_EDGES = len(EDGES)
NUM_NODES = 4
#: channels of the three stages (the benchmark's C=16, doubled at each reduction)
STAGE_CHANNELS: tuple[int, ...] = (16, 32, 64)
#: cells per stage (the benchmark's N=5)
CELLS_PER_STAGE = 5

_KNOWN_OPS = ", ".join(OPS)
_OP_SET = frozenset(OPS)


# ------------------------------------------------------------------------------------------
# the architecture


def _check_op(op: Any, where: str) -> str:
    if not isinstance(op, str):
        raise InvalidArchitectureError(f"{where}: expected an op name, got {type(op).__name__} {op!r}; "
                                       f"known ops: {_KNOWN_OPS}")
    if op not in _OP_SET:
        raise InvalidArchitectureError(f"{where}: unknown op {op!r}; known ops: {_KNOWN_OPS}")
    return op


@dataclass(frozen=True)
class Cell:
    """A NAS-Bench-201 cell: the op of each edge of :data:`EDGES`, in that order. Immutable
    and hashable; ``str(cell)`` is the benchmark's string (module doc)."""

    ops: tuple[str, ...]

    def __post_init__(self):
        ops = self.ops
        if isinstance(ops, str) or not isinstance(ops, (tuple, list)):
            raise InvalidArchitectureError(f"a cell's ops must be a list of {NUM_EDGES} op names, got "
                                           f"{type(ops).__name__} {ops!r}")
        if len(ops) != NUM_EDGES:
            raise InvalidArchitectureError(f"a cell has {NUM_EDGES} edges, got {len(ops)} ops: {list(ops)!r}")
        for k, op in enumerate(ops):
            i, j = EDGES[k]
            _check_op(op, f"edge {k} ({i}->{j})")
        object.__setattr__(self, "ops", tuple(ops))

    # -- text ---------------------------------------------------------------------------
    def to_string(self) -> str:
        """The benchmark's string, ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        groups = []
        for j in range(1, NUM_NODES):
            groups.append("|" + "|".join(f"{self.ops[k]}~{i}" for k, (i, jj) in enumerate(EDGES) if jj == j) + "|")
        return "+".join(groups)

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"Cell({self.to_string()!r})"

    @classmethod
    def from_string(cls, text: Any) -> "Cell":
        """A cell from the benchmark's string; :class:`InvalidArchitectureError` naming the
        problem (not a string, wrong number of nodes or edges, a ``~i`` that does not match its
        position, an unknown op, ...)."""
        if not isinstance(text, str):
            raise InvalidArchitectureError(f"a NAS-Bench-201 cell string must be a str, got "
                                           f"{type(text).__name__} {text!r}")
        s = text.strip()
        if not s:
            raise InvalidArchitectureError("empty NAS-Bench-201 cell string")
        groups = s.split("+")
        if len(groups) != NUM_NODES - 1:
            raise InvalidArchitectureError(
                f"expected {NUM_NODES - 1} nodes (groups joined by '+', for nodes 1..{NUM_NODES - 1}), got "
                f"{len(groups)} in {text!r}")
        ops: list[str] = []
        for j, group in enumerate(groups, start=1):
            if len(group) < 2 or not group.startswith("|") or not group.endswith("|"):
                raise InvalidArchitectureError(f"node {j}'s group {group!r} must be written '|op~0|...|' "
                                               f"(starting and ending with '|') in {text!r}")
            entries = group[1:-1].split("|")
            if len(entries) != j:
                raise InvalidArchitectureError(f"node {j} must have {j} incoming edge{'s' * (j > 1)}, got "
                                               f"{len(entries)} in group {group!r} of {text!r}")
            for i, entry in enumerate(entries):
                if entry.count("~") != 1:
                    raise InvalidArchitectureError(f"edge {entry!r} of node {j} must be written 'op~{i}' "
                                                   f"(one '~' then the source node) in {text!r}")
                op, source = entry.split("~")
                if source != str(i):
                    raise InvalidArchitectureError(
                        f"edge {entry!r} at position {i} of node {j} has source index ~{source}, expected ~{i} "
                        f"(node {j}'s group lists its edges from nodes 0..{j - 1} in order) in {text!r}")
                _check_op(op, f"edge {i}->{j} of {text!r}")
                ops.append(op)
        # the string lists edges grouped by target, which is EDGES' order
        return cls(tuple(ops))

    @classmethod
    def from_json(cls, data: Any) -> "Cell":
        """A cell from a :class:`Cell`, the benchmark's string, a list or tuple of 6 op names
        (in :data:`EDGES` order), or the JSON text of either of the latter two."""
        if isinstance(data, Cell):
            return data
        if isinstance(data, str):
            s = data.strip()
            if s[:1] in ('"', "["):
                try:
                    value = json.loads(s)
                except json.JSONDecodeError as error:
                    raise InvalidArchitectureError(
                        f"malformed JSON for a NAS-Bench-201 cell ({error}): {data!r}") from None
                if isinstance(value, str):
                    return cls.from_string(value)
                return cls.from_json(value)
            return cls.from_string(data)
        if isinstance(data, (list, tuple)):
            return cls(tuple(data))
        raise InvalidArchitectureError(
            f"a NAS-Bench-201 cell is its string ('|op~0|+|op~0|op~1|+|op~0|op~1|op~2|') or a list of "
            f"{NUM_EDGES} op names, got {type(data).__name__} {data!r}")

    # -- sequence helpers ---------------------------------------------------------------
    def __iter__(self) -> Iterator[str]:
        return iter(self.ops)

    def __len__(self) -> int:
        return NUM_EDGES

    def __getitem__(self, index):
        return self.ops[index]

    def with_op(self, index: int, op: str) -> "Cell":
        """This cell with edge ``index`` (in :data:`EDGES` order) carrying ``op``."""
        index = _edge_index(index)
        _check_op(op, f"edge {index}")
        return Cell(self.ops[:index] + (op,) + self.ops[index + 1:])


def _edge_index(index: Any) -> int:
    try:
        value = operator.index(index)
    except TypeError:
        value = None
    if isinstance(index, bool) or value is None or not 0 <= value < NUM_EDGES:
        raise IndexError(f"edge index must be an int in 0..{NUM_EDGES - 1}, got {index!r}")
    return value


def all_cells() -> Iterator[Cell]:
    """The 15,625 cells, in a fixed order (``itertools.product`` of :data:`OPS` over the
    edges: the first edge varies slowest)."""
    for ops in itertools.product(OPS, repeat=NUM_EDGES):
        yield Cell(ops)


# ------------------------------------------------------------------------------------------
# the network


class Zero(nn.Module):
    """The ``none`` op: ``x * 0``. A cell keeps it at its edge's index but never calls it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv2d(k, stride, padding k//2, no bias) -> BatchNorm2d (the reference's
    ``ReLUConvBN``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
        )


def make_op(op: str, channels: int) -> nn.Module:
    """The module of ``op`` on ``channels`` channels (stride 1, as inside a cell)."""
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if op == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise InvalidArchitectureError(f"unknown op {op!r}; known ops: {_KNOWN_OPS}")


class NASBench201Cell(nn.Module):
    """One cell (the reference's ``InferCell`` at stride 1): ``edges[k]`` is the op of edge
    ``EDGES[k]``; node ``j`` sums its incoming non-``none`` edges (``input * 0`` when all are
    ``none``); the output is node 3."""

    def __init__(self, cell: Cell, channels: int):
        super().__init__()
        self.cell = cell
        self.channels = channels
        self.edges = nn.ModuleList(make_op(op, channels) for op in cell.ops)
        self._live = tuple((k, i, j) for k, (i, j) in enumerate(EDGES) if cell.ops[k] != "none")

    def extra_repr(self) -> str:
        return f"{self.cell.to_string()}, channels={self.channels}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, NUM_NODES):
            total = None
            for k, i, jj in self._live:
                if jj != j:
                    continue
                y = self.edges[k](nodes[i])
                total = y if total is None else total + y
            nodes.append(x.mul(0.0) if total is None else total)
        return nodes[-1]


class ResNetBasicblock(nn.Module):
    """The reduction block between stages (the reference's ``ResNetBasicblock`` at stride 2):
    ``conv_b(conv_a(x)) + downsample(x)`` with ``conv_a`` = ReLU-Conv3x3(stride 2)-BN, ``conv_b``
    = ReLU-Conv3x3-BN and ``downsample`` = AvgPool2d(2, 2) -> Conv1x1 (no bias). The pooling
    rounds up (``ceil_mode``) so that both branches agree on odd sizes (module doc)."""

    gptnas_block_label = "BasicBlock"

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv_a = ReLUConvBN(in_channels, out_channels, 3, stride=2)
        self.conv_b = ReLUConvBN(out_channels, out_channels, 3)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0, ceil_mode=True),
            nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, padding=0, bias=False),
        )
        self.in_channels, self.out_channels = in_channels, out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_b(self.conv_a(x))
        return self.downsample(x) + out


class _Stem(nn.Sequential):
    gptnas_block_label = "Stem"

    def __init__(self, in_channels: int, channels: int = STAGE_CHANNELS[0]):
        super().__init__(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))


def _lastact(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class NASBench201Network(nn.Module):
    """The benchmark's network for one cell (module doc): ``blocks`` = stem, 5 cells,
    reduction, 5 cells, reduction, 5 cells; then ``lastact`` (BN + ReLU), ``global_pooling``
    and ``head`` (the Linear). ``forward`` returns the logits."""

    def __init__(self, cell: Cell, in_channels: int = 3, num_classes: int = 10, *, init_weights: bool = True):
        super().__init__()
        _check_positive(in_channels=in_channels, num_classes=num_classes)
        self.cell = Cell.from_json(cell)
        self.in_channels, self.num_classes = in_channels, num_classes
        blocks: list[nn.Module] = [_Stem(in_channels)]
        previous = STAGE_CHANNELS[0]
        for stage, channels in enumerate(STAGE_CHANNELS):
            if stage:
                blocks.append(ResNetBasicblock(previous, channels))
            blocks.extend(NASBench201Cell(self.cell, channels) for _ in range(CELLS_PER_STAGE))
            previous = channels
        self.blocks = nn.ModuleList(blocks)
        self.lastact = _lastact(previous)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(previous, num_classes)
        if init_weights:
            for module in self.modules():
                init_module_weights(module)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.global_pooling(self.lastact(self.forward_features(x)))
        return self.head(torch.flatten(x, 1))


def _check_positive(**values: Any) -> None:
    for name, value in values.items():
        if not is_int(value) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


# ------------------------------------------------------------------------------------------
# the network's layer records, from cached pieces


class _Tail(nn.Sequential):
    """What follows the blocks, as one module for tracing: lastact, pooling, flatten, head."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__(_lastact(channels), nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(channels, num_classes))


@functools.lru_cache(maxsize=4096)
def _piece(key: tuple) -> tuple[LayerRecord, ...]:
    """The records (ids from 1) of one piece of the network on its input shape ``(C, H, W)``:
    ``("op", op, C, H, W)``, ``("stem", C, H, W)``, ``("reduce", C, C_out, H, W)`` or
    ``("tail", C, H, W, num_classes)``."""
    return tuple(layer.record for layer in _piece_traced(key))


@functools.lru_cache(maxsize=4096)
def _piece_blocks(key: tuple) -> tuple[int, ...]:
    """The block index (from 0, within the piece) of each record of :func:`_piece`: a piece's
    blocks are the network's, since each piece is one call of its modules (module doc)."""
    return tuple(layer.block_index for layer in _piece_traced(key))


@functools.lru_cache(maxsize=4096)
def _piece_traced(key: tuple) -> tuple:
    """The traced layers of one piece (:func:`_piece`'s key)."""
    kind = key[0]
    if kind == "op":
        _, op, c, h, w = key
        if op in ("none", "skip_connect"):  # never called / skipped by the tracer
            return ()
        module = make_op(op, c)
    elif kind == "stem":
        _, c, h, w = key
        module = _Stem(c)
    elif kind == "reduce":
        _, c, c_out, h, w = key
        module = ResNetBasicblock(c, c_out)
    elif kind == "tail":
        _, c, h, w, num_classes = key
        module = _Tail(c, num_classes)
    else:  # pragma: no cover - internal keys only
        raise KeyError(key)
    return tuple(trace(module, (c, h, w)))


@functools.lru_cache(maxsize=1 << 16)
def _numbered(key: tuple, start: int) -> tuple[LayerRecord, ...]:
    """:func:`_piece` with ids from ``start`` (cached: the ids a piece gets repeat a lot)."""
    return tuple(dataclasses.replace(r, id=start + n) for n, r in enumerate(_piece(key)))


def _network_layers(ops: tuple[str, ...], in_channels: int, height: int, width: int,
                    num_classes: int) -> list[LayerRecord]:
    layers: list[LayerRecord] = []
    stem = _numbered(("stem", in_channels, height, width), 1)
    layers.extend(stem)
    h, w, c = stem[-1].out_size
    for stage, channels in enumerate(STAGE_CHANNELS):
        if stage:
            reduce = _numbered(("reduce", c, channels, h, w), len(layers) + 1)
            layers.extend(reduce)
            h, w, c = reduce[-1].out_size
        keys = [("op", op, c, h, w) for op in ops]
        for _ in range(CELLS_PER_STAGE):
            for key in keys:
                layers.extend(_numbered(key, len(layers) + 1))
    layers.extend(_numbered(("tail", c, h, w, num_classes), len(layers) + 1))
    return layers


def _network_block_index(ops: tuple[str, ...], in_channels: int, height: int, width: int,
                         num_classes: int) -> list[int]:
    """The block index of each record of :func:`_network_layers` (as :func:`trace` numbers
    them): each piece's own indices, offset by the blocks before it."""
    index: list[int] = []
    offset = 0

    def add(key: tuple) -> None:
        nonlocal offset
        blocks = _piece_blocks(key)
        index.extend(offset + b for b in blocks)
        offset += max(blocks) + 1 if blocks else 0

    add(("stem", in_channels, height, width))
    h, w, c = _piece(("stem", in_channels, height, width))[-1].out_size
    for stage, channels in enumerate(STAGE_CHANNELS):
        if stage:
            key = ("reduce", c, channels, h, w)
            add(key)
            h, w, c = _piece(key)[-1].out_size
        keys = [("op", op, c, h, w) for op in ops]
        for _ in range(CELLS_PER_STAGE):
            for key in keys:
                add(key)
    add(("tail", c, h, w, num_classes))
    return index


# ------------------------------------------------------------------------------------------
# the space


@functools.lru_cache(maxsize=None)
def _op_parameters(op: str, channels: int) -> int:
    return sum(p.numel() for p in make_op(op, channels).parameters())


@functools.lru_cache(maxsize=None)
def _base_parameters(in_channels: int, num_classes: int) -> int:
    network = NASBench201Network(Cell(("none",) * len(EDGES)), in_channels, num_classes, init_weights=False)
    return sum(p.numel() for p in network.parameters())


@register_space("nas-bench-201")
class NASBench201Space(SearchSpace):
    """NAS-Bench-201's cell space (module doc). Architectures are :class:`Cell` s; every
    method takes a cell or anything :meth:`load` reads."""

    name = "nas-bench-201"

    # -- every space --------------------------------------------------------------------
    def load(self, data: Any) -> Cell:
        return Cell.from_json(data)

    def dump(self, arch: Any) -> str:
        return self.load(arch).to_string()

    def hash(self, arch: Any) -> str:
        return hashlib.sha1(self.dump(arch).encode("utf-8")).hexdigest()

    def sample(self, rng: random.Random) -> Cell:
        """A cell with an op drawn uniformly for each edge."""
        return Cell(tuple(rng.choice(OPS) for _ in range(NUM_EDGES)))

    def within_limits(self, arch: Any) -> bool:
        return True

    def build_network(self, arch: Any, in_channels: int = 3, num_classes: int = 10) -> NASBench201Network:
        return NASBench201Network(self.load(arch), in_channels=in_channels, num_classes=num_classes)

    def parameters(self, arch: Any, in_channels: int = 3, num_classes: int = 10) -> int:
        """The network's parameter count without building it: the all-``none`` network's, plus
        each edge's op at each stage's width, once per cell of the stage (cached per op)."""
        cell = self.load(arch)
        return _base_parameters(int(in_channels), int(num_classes)) + sum(
            _op_parameters(op, channels) * CELLS_PER_STAGE for op in cell.ops for channels in STAGE_CHANNELS)

    def tokens(self, arch: Any) -> list[str]:
        return list(self.load(arch).ops)

    def describe(self, arch: Any) -> str:
        return self.dump(arch)

    def config(self) -> dict:
        return {}

    # -- evolvable ----------------------------------------------------------------------
    def mutate(self, arch: Any, rng: random.Random) -> tuple[Cell, str]:
        """NAS-Bench-201's own REA mutation (``mutate_topology_func`` of its released
        ``R_EA.py``): a node chosen uniformly among the 3, one of its incoming edges uniformly,
        and that edge gets a different op (uniform among the other 4). So edge 0->1 mutates
        with probability 1/3 and each edge into node 3 with 1/9, as in the published runs."""
        cell = self.load(arch)
        node = rng.randrange(3) + 1
        incoming = [i for i, (_, j) in enumerate(EDGES) if j == node]
        index = incoming[rng.randrange(len(incoming))]
        op = rng.choice([o for o in OPS if o != cell.ops[index]])
        return cell.with_op(index, op), "alter"

    def crossover(self, a: Any, b: Any, rng: random.Random) -> tuple[Cell, Cell]:
        """One-point crossover of the two edge lists, the cut uniform in 1..5."""
        a, b = self.load(a), self.load(b)
        cut = rng.randint(1, NUM_EDGES - 1)
        return Cell(a.ops[:cut] + b.ops[cut:]), Cell(b.ops[:cut] + a.ops[cut:])

    def repair(self, arch: Any, rng: random.Random) -> Cell:
        return self.load(arch)

    # -- rewritable ---------------------------------------------------------------------
    def units(self, arch: Any) -> int:
        return NUM_EDGES

    def alternatives(self, arch: Any, index: int) -> list[str]:
        """The 5 ops, the current one included, in :data:`OPS` order."""
        _edge_index(index)
        return list(OPS)

    def with_unit(self, arch: Any, index: int, unit: Any) -> Cell:
        return self.load(arch).with_op(index, unit)

    def network_layers(self, arch: Any, in_channels: int = 3, image_size: int = 32,
                       num_classes: int = 10) -> list[LayerRecord]:
        """The records ``trace(build_network(arch, in_channels, num_classes), (in_channels,
        image_size, image_size))`` gives, composed from cached pieces (module doc)."""
        _check_positive(in_channels=in_channels, image_size=image_size, num_classes=num_classes)
        return _network_layers(self.load(arch).ops, in_channels, image_size, image_size, num_classes)

    def network_block_index(self, arch: Any, in_channels: int = 3, image_size: int = 32,
                            num_classes: int = 10) -> list[int]:
        """The block index of each record of :meth:`network_layers`, as ``[t.block_index for t in
        trace(build_network(...), shape)]`` gives it (the stem and each reduction block are one
        block; every other layer, those of the cells' ops and of the tail, is a block of its
        own), from cached pieces: what the GPT's location ids are computed from."""
        _check_positive(in_channels=in_channels, image_size=image_size, num_classes=num_classes)
        return _network_block_index(self.load(arch).ops, in_channels, image_size, image_size, num_classes)

    def unit_label(self, unit: Any) -> str | None:
        return None
