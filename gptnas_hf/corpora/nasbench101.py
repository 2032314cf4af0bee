"""The pre-training corpus: NAS-Bench-101 networks (paper, section 4.1).

NAS-Bench-101 (Ying et al., 2019; https://github.com/google-research/nasbench) is a space of
cells: DAGs of at most 7 vertices and 9 edges whose interior vertices are a 3x3 or 1x1
conv-bn-relu or a 3x3 max-pool. Every cell is stacked into the same skeleton network (a stem,
3 stacks of 3 cells with max-pool down-sampling in between, global average pooling and a
classifier) and was trained 3 times on CIFAR-10. The paper pre-trains its GPT on the 295,889
of the 423,624 unique cells whose mean validation accuracy is at least 90%.

This module holds, without TensorFlow or protobuf:

* :class:`CellSpec`: a cell, validated and pruned as ``model_spec.py`` does, with the
  reference's isomorphism-invariant :meth:`CellSpec.hash` (``graph_util.hash_module``);
* :func:`sample_cells`: a seeded sampler of unique valid cells, for offline use;
* :class:`NASBench101Network`: the skeleton of ``model_builder.py`` in PyTorch, every
  conv-bn-relu a ``torchvision.ops.Conv2dNormActivation``;
* a reader (and writer) of the official ``nasbench_only108.tfrecord``: TFRecord framing with
  CRC-32C checks and the ``ModelMetrics`` protobuf decoded by hand;
* :func:`nasbench101_corpus`: one traced network per cell as a ``datasets.Dataset``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import datasets
import torch
from torch import nn
from torchvision.ops import Conv2dNormActivation
from tqdm.auto import tqdm

from ..encoding import trace_factory
from .common import ARCHITECTURE_FEATURES, architecture_row

__all__ = [
    "INPUT",
    "OUTPUT",
    "CONV3X3",
    "CONV1X1",
    "MAXPOOL3X3",
    "AVAILABLE_OPS",
    "MAX_VERTICES",
    "MAX_EDGES",
    "NUM_UNIQUE_CELLS",
    "SOURCE",
    "CellSpec",
    "hash_module",
    "is_valid_cell",
    "sample_cells",
    "compute_vertex_channels",
    "NASBench101Cell",
    "NASBench101Network",
    "trace_cell",
    "crc32c",
    "masked_crc32c",
    "CorruptRecordError",
    "read_tfrecords",
    "write_tfrecords",
    "EvaluationData",
    "ModelMetrics",
    "NASBenchRecord",
    "read_nasbench_records",
    "write_nasbench_records",
    "read_nasbench101",
    "nasbench101_corpus",
]

# -- the cell space (config.py) -------------------------------------------------------------
INPUT = "input"
OUTPUT = "output"
CONV3X3 = "conv3x3-bn-relu"
CONV1X1 = "conv1x1-bn-relu"
MAXPOOL3X3 = "maxpool3x3"
#: canonical order of config['available_ops']: the hash labels a vertex with its index here
AVAILABLE_OPS = (CONV3X3, CONV1X1, MAXPOOL3X3)
MAX_VERTICES = 7
MAX_EDGES = 9
#: unique cells (up to isomorphism) in the space, as the NAS-Bench-101 paper counts them
NUM_UNIQUE_CELLS = 423_624
SOURCE = "nasbench101"

Matrix = tuple[tuple[int, ...], ...]


def _as_matrix(matrix) -> Matrix:
    """Nested sequence / numpy array / tensor -> tuple of tuples of 0/1 ints, checked square."""
    if hasattr(matrix, "tolist"):
        matrix = matrix.tolist()
    try:
        rows = [list(row) for row in matrix]
    except TypeError as error:
        raise ValueError(f"cell matrix must be a square 0/1 nested sequence, got {matrix!r}") from error
    size = len(rows)
    if size == 0:
        raise ValueError("cell matrix is empty; a cell needs at least the input and output vertices")
    for i, row in enumerate(rows):
        if len(row) != size:
            raise ValueError(f"cell matrix must be square: it has {size} rows but row {i} has {len(row)} entries")
    out = []
    for i, row in enumerate(rows):
        values = []
        for j, value in enumerate(row):
            if isinstance(value, bool) or value in (0, 1):
                values.append(int(value))
            else:
                raise ValueError(f"cell matrix entries must be 0 or 1, got {value!r} at [{i}][{j}]")
        out.append(tuple(values))
    return tuple(out)


def _prune(matrix: Matrix, ops: tuple[str, ...]) -> tuple[Matrix, tuple[str, ...]] | None:
    """``ModelSpec._prune``: drop every vertex not on an input->output path (None when the
    input does not reach the output)."""
    n = len(matrix)
    from_input, frontier = {0}, [0]
    while frontier:
        top = frontier.pop()
        for v in range(top + 1, n):
            if matrix[top][v] and v not in from_input:
                from_input.add(v)
                frontier.append(v)
    to_output, frontier = {n - 1}, [n - 1]
    while frontier:
        top = frontier.pop()
        for v in range(0, top):
            if matrix[v][top] and v not in to_output:
                to_output.add(v)
                frontier.append(v)
    keep = sorted(from_input & to_output)
    if len(keep) < 2:  # the reference's ``len(extraneous) > num_vertices - 2``
        return None
    pruned = tuple(tuple(matrix[i][j] for j in keep) for i in keep)
    return pruned, tuple(ops[i] for i in keep)


def hash_module(matrix: Sequence[Sequence[int]], labeling: Sequence[int]) -> str:
    """``graph_util.hash_module``: the isomorphism-invariant MD5 fingerprint of a labelled
    DAG, computed exactly as the reference does (same strings fed to MD5), so it equals the
    ``module_hash`` of the official dataset for the same pruned cell."""
    n = len(matrix)
    if len(labeling) != n:
        raise ValueError(f"labeling has {len(labeling)} labels for a {n}-vertex matrix")
    in_edges = [int(sum(int(matrix[w][v]) for w in range(n))) for v in range(n)]
    out_edges = [int(sum(int(x) for x in matrix[v])) for v in range(n)]
    hashes = [
        hashlib.md5(str((out_edges[v], in_edges[v], int(labeling[v]))).encode("utf-8")).hexdigest()
        for v in range(n)
    ]
    for _ in range(n):
        hashes = [
            hashlib.md5(
                (
                    "".join(sorted(hashes[w] for w in range(n) if matrix[w][v]))
                    + "|"
                    + "".join(sorted(hashes[w] for w in range(n) if matrix[v][w]))
                    + "|"
                    + hashes[v]
                ).encode("utf-8")
            ).hexdigest()
            for v in range(n)
        ]
    return hashlib.md5(str(sorted(hashes)).encode("utf-8")).hexdigest()


class CellSpec:
    """A NAS-Bench-101 cell: an upper-triangular 0/1 adjacency ``matrix`` and one op per
    vertex (``ops[0] == "input"``, ``ops[-1] == "output"``, the others from
    :data:`AVAILABLE_OPS`).

    Like the reference ``ModelSpec``, the cell is pruned on construction: vertices not on an
    input->output path are dropped. ``original_matrix``/``original_ops`` keep what was given,
    ``matrix``/``ops`` the pruned cell (what is built, hashed and traced). The pruned cell must
    lie in the space (at most :data:`MAX_VERTICES` vertices and :data:`MAX_EDGES` edges);
    anything else raises ``ValueError`` saying what is wrong.

    Equality is structural (same pruned matrix and ops); isomorphic cells compare unequal but
    share :meth:`hash`.
    """

    __slots__ = ("original_matrix", "original_ops", "matrix", "ops", "_hash")

    def __init__(self, matrix, ops: Sequence[str]):
        matrix = _as_matrix(matrix)
        if isinstance(ops, str):
            raise ValueError(f"ops must be a sequence of op names, got the string {ops!r}")
        ops = tuple(ops)
        for i, op in enumerate(ops):
            if not isinstance(op, str):
                raise ValueError(f"op {i} must be an op name (str), got {op!r}")
        ops = tuple(str(op) for op in ops)
        n = len(matrix)
        if len(ops) != n:
            raise ValueError(f"the cell matrix has {n} vertices but {len(ops)} ops were given: {list(ops)}")
        if n < 2:
            raise ValueError(f"a cell needs at least the input and output vertices, got {n} vertex")
        for i in range(n):
            for j in range(i + 1):
                if matrix[i][j]:
                    raise ValueError(
                        f"cell matrix must be upper-triangular (0 on and below the diagonal), "
                        f"but entry [{i}][{j}] is 1"
                    )
        if ops[0] != INPUT:
            raise ValueError(f"the first op must be {INPUT!r}, got {ops[0]!r}")
        if ops[-1] != OUTPUT:
            raise ValueError(f"the last op must be {OUTPUT!r}, got {ops[-1]!r}")
        for i, op in enumerate(ops[1:-1], start=1):
            if op not in AVAILABLE_OPS:
                raise ValueError(f"op {i} is {op!r}; interior ops must be one of {list(AVAILABLE_OPS)}")
        pruned = _prune(matrix, ops)
        if pruned is None:
            raise ValueError("the cell has no path from the input to the output vertex")
        pruned_matrix, pruned_ops = pruned
        vertices = len(pruned_matrix)
        edges = sum(map(sum, pruned_matrix))
        if vertices > MAX_VERTICES:
            raise ValueError(
                f"the cell has {vertices} vertices after pruning; NAS-Bench-101 allows at most {MAX_VERTICES}"
            )
        if edges > MAX_EDGES:
            raise ValueError(f"the cell has {edges} edges after pruning; NAS-Bench-101 allows at most {MAX_EDGES}")
        self.original_matrix: Matrix = matrix
        self.original_ops: tuple[str, ...] = ops
        self.matrix: Matrix = pruned_matrix
        self.ops: tuple[str, ...] = pruned_ops
        self._hash: str | None = None

    # -- properties ----------------------------------------------------------------------
    @property
    def num_vertices(self) -> int:
        return len(self.matrix)

    @property
    def num_edges(self) -> int:
        return sum(map(sum, self.matrix))

    @property
    def was_pruned(self) -> bool:
        return self.matrix != self.original_matrix

    def labeling(self) -> list[int]:
        """``ModelSpec.hash_spec``'s integer labels: -1 input, -2 output, else the op's index
        in :data:`AVAILABLE_OPS`."""
        return [-1] + [AVAILABLE_OPS.index(op) for op in self.ops[1:-1]] + [-2]

    def hash(self) -> str:
        """The NAS-Bench-101 module hash of the pruned cell (the dataset's key)."""
        if self._hash is None:
            self._hash = hash_module(self.matrix, self.labeling())
        return self._hash

    # -- the dataset's raw form ----------------------------------------------------------
    def to_raw(self) -> tuple[str, str]:
        """``(raw_adjacency, raw_operations)`` as the tfrecord stores them: the pruned matrix
        row-major as a string of 0/1 digits and the ops joined by commas."""
        return "".join(str(x) for row in self.matrix for x in row), ",".join(self.ops)

    @classmethod
    def from_raw(cls, raw_adjacency: str, raw_operations: str) -> "CellSpec":
        """Inverse of :meth:`to_raw` (the decoding of ``api.py``)."""
        dim = int(round(len(raw_adjacency) ** 0.5))
        if dim * dim != len(raw_adjacency) or set(raw_adjacency) - {"0", "1"}:
            raise ValueError(f"raw adjacency must be a square number of 0/1 digits, got {raw_adjacency!r}")
        matrix = [[int(raw_adjacency[i * dim + j]) for j in range(dim)] for i in range(dim)]
        return cls(matrix, raw_operations.split(","))

    # -- python protocol -----------------------------------------------------------------
    def __eq__(self, other) -> bool:
        if not isinstance(other, CellSpec):
            return NotImplemented
        return self.matrix == other.matrix and self.ops == other.ops

    def __hash__(self) -> int:
        return hash((self.matrix, self.ops))

    def __repr__(self) -> str:
        return f"CellSpec(matrix={[list(r) for r in self.matrix]}, ops={list(self.ops)})"

    def __getstate__(self):
        return (self.original_matrix, self.original_ops, self.matrix, self.ops, self._hash)

    def __setstate__(self, state):
        self.original_matrix, self.original_ops, self.matrix, self.ops, self._hash = state


def is_valid_cell(matrix, ops: Sequence[str]) -> bool:
    """Whether ``CellSpec(matrix, ops)`` would be accepted."""
    try:
        CellSpec(matrix, ops)
    except ValueError:
        return False
    return True


def sample_cells(n: int, seed: int = 0, *, max_vertices: int = MAX_VERTICES) -> list[CellSpec]:
    """``n`` valid cells, unique by :meth:`CellSpec.hash`, drawn with ``random.Random(seed)``
    the way the NAS-Bench-101 colab's ``random_spec`` draws them (every upper-triangular edge
    with probability 1/2, every interior op uniformly; invalid cells rejected). Each cell is
    returned in its pruned form. Works offline; the same ``(n, seed)`` gives the same list.

    The draw is uniform over labelled matrices, not over the 423,624 unique cells: cells with
    many labelled forms are more likely.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if n > NUM_UNIQUE_CELLS:
        raise ValueError(f"NAS-Bench-101 holds {NUM_UNIQUE_CELLS} unique cells; cannot sample {n}")
    if not 2 <= max_vertices <= MAX_VERTICES:
        raise ValueError(f"max_vertices must lie in [2, {MAX_VERTICES}], got {max_vertices}")
    rng = random.Random(seed)
    seen: set[str] = set()
    cells: list[CellSpec] = []
    v = max_vertices
    attempts, max_attempts = 0, 1000 * n + 10_000
    while len(cells) < n:
        attempts += 1
        if attempts > max_attempts:
            raise RuntimeError(f"found only {len(cells)} unique cells in {max_attempts} draws (seed {seed})")
        matrix = [[0] * v for _ in range(v)]
        for i in range(v):
            for j in range(i + 1, v):
                matrix[i][j] = rng.getrandbits(1)
        ops = [INPUT] + [AVAILABLE_OPS[rng.randrange(len(AVAILABLE_OPS))] for _ in range(v - 2)] + [OUTPUT]
        try:
            spec = CellSpec(matrix, ops)
        except ValueError:
            continue
        key = spec.hash()
        if key in seen:
            continue
        seen.add(key)
        cells.append(CellSpec(spec.matrix, spec.ops))
        cells[-1]._hash = key
    return cells


# -- the network (model_builder.py) ---------------------------------------------------------
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


# -- TFRecord framing -------------------------------------------------------------------------
def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def _crc32c_python(data: bytes, crc: int = 0) -> int:
    table = _CRC32C_TABLE
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _fast_crc32c():
    """A C implementation of CRC-32C when one happens to be installed (optional)."""
    try:  # pragma: no cover - depends on the environment
        import google_crc32c

        if getattr(google_crc32c, "implementation", "c") == "c":
            return lambda data: google_crc32c.value(bytes(data))
    except ImportError:
        pass
    try:  # pragma: no cover - depends on the environment
        import crc32c as _crc32c_module

        return lambda data: _crc32c_module.crc32c(data)
    except ImportError:
        pass
    return None


_CRC32C_FAST = _fast_crc32c()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven in pure Python
    (a C implementation is used instead if ``google-crc32c`` or ``crc32c`` is installed)."""
    if _CRC32C_FAST is not None:
        return _CRC32C_FAST(data)
    return _crc32c_python(data)


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits and add 0xa282ead8."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class CorruptRecordError(ValueError):
    """A TFRecord (or its payload) that cannot be read: names the file and the record."""


def read_tfrecords(path: str | os.PathLike, *, verify_checksums: bool = True) -> Iterator[bytes]:
    """The payloads of a TFRecord file: each record is a little-endian uint64 length, the
    masked CRC-32C of those 8 bytes, the data and the masked CRC-32C of the data. With
    ``verify_checksums`` both CRCs are checked (pure Python CRC: about a minute for the 500 MB
    official file); a bad or truncated record raises :class:`CorruptRecordError`."""
    path = Path(path)
    with open(path, "rb") as f:
        index, offset = 0, 0
        while True:
            header = f.read(12)
            if not header:
                return
            if len(header) < 12:
                raise CorruptRecordError(
                    f"{path}: record {index} (byte offset {offset}) is truncated: "
                    f"{len(header)} of the 12 header bytes"
                )
            length_bytes = header[:8]
            (length,) = struct.unpack("<Q", length_bytes)
            (length_crc,) = struct.unpack("<I", header[8:])
            if verify_checksums and masked_crc32c(length_bytes) != length_crc:
                raise CorruptRecordError(
                    f"{path}: record {index} (byte offset {offset}) is corrupt: the CRC-32C of its length "
                    f"field does not match (stored {length_crc:#010x}, computed {masked_crc32c(length_bytes):#010x})"
                )
            data = f.read(length)
            footer = f.read(4)
            if len(data) < length or len(footer) < 4:
                raise CorruptRecordError(
                    f"{path}: record {index} (byte offset {offset}) is truncated: expected {length} data bytes "
                    f"and a 4-byte CRC, the file ends after {len(data) + len(footer)}"
                )
            if verify_checksums:
                (data_crc,) = struct.unpack("<I", footer)
                computed = masked_crc32c(data)
                if computed != data_crc:
                    raise CorruptRecordError(
                        f"{path}: record {index} (byte offset {offset}) is corrupt: the CRC-32C of its "
                        f"{length} data bytes does not match (stored {data_crc:#010x}, computed {computed:#010x})"
                    )
            yield data
            index += 1
            offset += 16 + length


def _frame(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


def write_tfrecords(path: str | os.PathLike, payloads: Iterable[bytes]) -> int:
    """Write ``payloads`` as a TFRecord file (the inverse of :func:`read_tfrecords`); returns
    the number of records."""
    count = 0
    with open(path, "wb") as f:
        for data in payloads:
            f.write(_frame(bytes(data)))
            count += 1
    return count


# -- protobuf wire format (model_metrics.proto) -------------------------------------------------
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated protobuf: a varint runs past the end of the message")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ValueError("malformed protobuf: a varint is longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    """``(field_number, wire_type, value)`` for every field of a message: ints for varints,
    raw 8/4 bytes for fixed64/fixed32, a bytes slice for length-delimited fields."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("malformed protobuf: field number 0")
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire == _FIXED64:
            if pos + 8 > end:
                raise ValueError(f"truncated protobuf: field {number} needs 8 bytes")
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == _LENGTH_DELIMITED:
            size, pos = _read_varint(buf, pos)
            if pos + size > end:
                raise ValueError(f"truncated protobuf: field {number} needs {size} bytes, {end - pos} left")
            value, pos = buf[pos : pos + size], pos + size
        elif wire == _FIXED32:
            if pos + 4 > end:
                raise ValueError(f"truncated protobuf: field {number} needs 4 bytes")
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {number})")
        yield number, wire, value


def _expect(number: int, wire: int, expected: int, message: str) -> None:
    if wire != expected:
        raise ValueError(f"{message} field {number} has wire type {wire}, expected {expected}")


def _double(number: int, wire: int, value, message: str) -> float:
    _expect(number, wire, _FIXED64, message)
    return struct.unpack("<d", value)[0]


def _write_varint(out: bytearray, value: int) -> None:
    if value < 0:
        value += 1 << 64  # two's complement, 10 bytes, as protobuf encodes negative int32/int64
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _write_key(out: bytearray, number: int, wire: int) -> None:
    _write_varint(out, (number << 3) | wire)


def _write_double(out: bytearray, number: int, value: float | None) -> None:
    if value is not None:
        _write_key(out, number, _FIXED64)
        out += struct.pack("<d", float(value))


def _write_bytes(out: bytearray, number: int, value: bytes) -> None:
    _write_key(out, number, _LENGTH_DELIMITED)
    _write_varint(out, len(value))
    out += value


@dataclass
class EvaluationData:
    """``nasbench.EvaluationData`` (model_metrics.proto): one evaluation during training.
    ``None`` is an unset optional field."""

    current_epoch: float | None = None  # 1: double
    training_time: float | None = None  # 2: double
    train_accuracy: float | None = None  # 3: double
    validation_accuracy: float | None = None  # 4: double
    test_accuracy: float | None = None  # 5: double
    checkpoint_path: str | None = None  # 6: string

    _DOUBLES = {1: "current_epoch", 2: "training_time", 3: "train_accuracy", 4: "validation_accuracy", 5: "test_accuracy"}

    @classmethod
    def from_bytes(cls, buf: bytes) -> "EvaluationData":
        values: dict = {}
        for number, wire, value in _fields(bytes(buf)):
            if number in cls._DOUBLES:
                values[cls._DOUBLES[number]] = _double(number, wire, value, "EvaluationData")
            elif number == 6:
                _expect(number, wire, _LENGTH_DELIMITED, "EvaluationData")
                values["checkpoint_path"] = bytes(value).decode("utf-8")
            # unknown fields are skipped, as protobuf does
        return cls(**values)

    def to_bytes(self) -> bytes:
        out = bytearray()
        for number, name in self._DOUBLES.items():
            _write_double(out, number, getattr(self, name))
        if self.checkpoint_path is not None:
            _write_bytes(out, 6, self.checkpoint_path.encode("utf-8"))
        return bytes(out)


@dataclass
class ModelMetrics:
    """``nasbench.ModelMetrics`` (model_metrics.proto): every evaluation of one training run
    (``evaluation_data[0]`` at initialisation, ``[1]`` halfway, ``[-1]`` at the end), the
    trainable parameter count and the total time."""

    evaluation_data: list[EvaluationData] = field(default_factory=list)  # 1: repeated message
    trainable_parameters: int | None = None  # 2: int32
    total_time: float | None = None  # 3: double

    @classmethod
    def from_bytes(cls, buf: bytes) -> "ModelMetrics":
        metrics = cls()
        for number, wire, value in _fields(bytes(buf)):
            if number == 1:
                _expect(number, wire, _LENGTH_DELIMITED, "ModelMetrics")
                metrics.evaluation_data.append(EvaluationData.from_bytes(value))
            elif number == 2:
                _expect(number, wire, _VARINT, "ModelMetrics")
                value &= 0xFFFFFFFF  # int32: the low 32 bits, signed
                metrics.trainable_parameters = value - (1 << 32) if value >= 1 << 31 else value
            elif number == 3:
                metrics.total_time = _double(number, wire, value, "ModelMetrics")
        return metrics

    def to_bytes(self) -> bytes:
        out = bytearray()
        for evaluation in self.evaluation_data:
            _write_bytes(out, 1, evaluation.to_bytes())
        if self.trainable_parameters is not None:
            _write_key(out, 2, _VARINT)
            _write_varint(out, int(self.trainable_parameters))
        _write_double(out, 3, self.total_time)
        return bytes(out)

    @property
    def final_validation_accuracy(self) -> float | None:
        return self.evaluation_data[-1].validation_accuracy if self.evaluation_data else None


# -- the NAS-Bench-101 records (api.py) -----------------------------------------------------
@dataclass
class NASBenchRecord:
    """One training run of one cell, as a record of the official tfrecord holds it: the JSON
    list ``[module_hash, epochs, raw_adjacency, raw_operations, raw_metrics]``."""

    module_hash: str
    epochs: int
    raw_adjacency: str
    raw_operations: str
    metrics: ModelMetrics

    @property
    def spec(self) -> CellSpec:
        return CellSpec.from_raw(self.raw_adjacency, self.raw_operations)

    @property
    def final_validation_accuracy(self) -> float | None:
        return self.metrics.final_validation_accuracy

    @classmethod
    def from_spec(
        cls, spec: CellSpec, metrics: ModelMetrics, epochs: int = 108, module_hash: str | None = None
    ) -> "NASBenchRecord":
        adjacency, operations = spec.to_raw()
        return cls(module_hash or spec.hash(), int(epochs), adjacency, operations, metrics)

    @classmethod
    def from_json(cls, payload: bytes) -> "NASBenchRecord":
        row = json.loads(payload.decode("utf-8"))
        if not isinstance(row, list) or len(row) != 5:
            raise ValueError("expected a JSON list [module_hash, epochs, raw_adjacency, raw_operations, raw_metrics]")
        module_hash, epochs, adjacency, operations, raw_metrics = row
        metrics = ModelMetrics.from_bytes(base64.b64decode(raw_metrics, validate=True))
        return cls(str(module_hash), int(epochs), str(adjacency), str(operations), metrics)

    def to_json(self) -> bytes:
        raw_metrics = base64.b64encode(self.metrics.to_bytes()).decode("ascii")
        row = [self.module_hash, int(self.epochs), self.raw_adjacency, self.raw_operations, raw_metrics]
        return json.dumps(row).encode("utf-8")


def read_nasbench_records(path: str | os.PathLike, *, verify_checksums: bool = True) -> Iterator[NASBenchRecord]:
    """Every record of a NAS-Bench-101 tfrecord (``nasbench_only108.tfrecord`` or
    ``nasbench_full.tfrecord``), decoded as ``api.py`` decodes it but without TensorFlow."""
    for index, payload in enumerate(read_tfrecords(path, verify_checksums=verify_checksums)):
        try:
            yield NASBenchRecord.from_json(payload)
        except (ValueError, TypeError, UnicodeDecodeError) as error:
            raise CorruptRecordError(f"{path}: record {index} is not a NAS-Bench-101 row: {error}") from error


def write_nasbench_records(path: str | os.PathLike, rows: Iterable[NASBenchRecord | Sequence]) -> int:
    """Write rows in the official tfrecord format; each row a :class:`NASBenchRecord` or a
    ``(module_hash, epochs, raw_adjacency, raw_operations, metrics)`` sequence (``metrics`` a
    :class:`ModelMetrics` or its serialized bytes). Returns the number of records."""

    def payloads():
        for row in rows:
            if not isinstance(row, NASBenchRecord):
                module_hash, epochs, adjacency, operations, metrics = row
                if isinstance(metrics, (bytes, bytearray)):
                    metrics = ModelMetrics.from_bytes(metrics)
                row = NASBenchRecord(module_hash, int(epochs), adjacency, operations, metrics)
            yield row.to_json()

    return write_tfrecords(path, payloads())


def read_nasbench101(
    path: str | os.PathLike,
    min_validation_accuracy: float | None = 0.90,
    epochs: int = 108,
    *,
    verify_checksums: bool = True,
    verify_hashes: bool = False,
    progress: bool = False,
) -> Iterator[tuple[CellSpec, float, str]]:
    """``(spec, mean_validation_accuracy, module_hash)`` for every module of the file whose
    runs at ``epochs`` epochs have a mean final validation accuracy ``>= min_validation_accuracy``
    (``None`` keeps all), in the order the modules first appear. The paper keeps 295,889 of the
    423,624 modules at 0.90. The whole file is read before the first module is yielded (the
    repeats of a module need not be adjacent). With ``verify_hashes`` every module's hash is
    recomputed from its cell and compared with the file's."""
    modules: dict[str, list] = {}  # hash -> [raw_adjacency, raw_operations, sum, count]
    records = read_nasbench_records(path, verify_checksums=verify_checksums)
    for index, record in enumerate(tqdm(records, desc="reading NAS-Bench-101", unit=" records", disable=not progress)):
        if record.epochs != epochs:
            continue
        accuracy = record.final_validation_accuracy
        if accuracy is None:
            raise CorruptRecordError(f"{path}: record {index} (module {record.module_hash}) has no final validation accuracy")
        entry = modules.get(record.module_hash)
        if entry is None:
            modules[record.module_hash] = [record.raw_adjacency, record.raw_operations, accuracy, 1]
        else:
            entry[2] += accuracy
            entry[3] += 1
    for module_hash, (adjacency, operations, total, count) in modules.items():
        mean = total / count
        if min_validation_accuracy is not None and mean < min_validation_accuracy:
            continue
        try:
            spec = CellSpec.from_raw(adjacency, operations)
        except ValueError as error:
            raise CorruptRecordError(f"{path}: module {module_hash} has an invalid cell: {error}") from error
        if verify_hashes and spec.hash() != module_hash:
            raise CorruptRecordError(f"{path}: module {module_hash} hashes to {spec.hash()} from its cell")
        yield spec, mean, module_hash


# -- the corpus ---------------------------------------------------------------------------------
def _generate_rows(shards, input_shape, network_kwargs, progress):
    """``datasets`` generator. ``shards`` is a list of tuples of ``(name, matrix, ops)``;
    ``datasets`` calls this once per shard (one shard per process with ``num_proc``)."""
    cells = [cell for shard in shards for cell in shard]
    for name, matrix, ops in tqdm(cells, desc="tracing NAS-Bench-101", unit=" cells", disable=not progress):
        spec = CellSpec(matrix, ops)
        yield architecture_row(name, SOURCE, trace_cell(spec, input_shape, **network_kwargs))


def _fingerprint(cells, input_shape, network_kwargs) -> str:
    """What the rows depend on: the cells, the input shape, the network and the tracer."""
    digest = hashlib.md5()
    here = Path(__file__).resolve()
    for source in (here, here.parent / "common.py", here.parent.parent / "encoding.py"):
        digest.update(source.read_bytes() if source.exists() else b"")
    digest.update(repr((tuple(input_shape), sorted(network_kwargs.items()))).encode())
    for cell in cells:
        digest.update(repr(cell).encode())
    return "nasbench101-" + digest.hexdigest()


def nasbench101_corpus(
    specs: Iterable[CellSpec] | None = None,
    *,
    tfrecord: str | os.PathLike | None = None,
    num_cells: int = 1000,
    seed: int = 0,
    min_validation_accuracy: float | None = 0.90,
    input_shape: Sequence[int] = (3, 32, 32),
    limit: int | None = None,
    progress: bool = True,
    cache_dir: str | None = None,
    num_proc: int | None = None,
    **network_kwargs,
) -> datasets.Dataset:
    """The pre-training corpus: one row per NAS-Bench-101 network, with the columns of
    :data:`~gptnas_hf.corpora.common.ARCHITECTURE_FEATURES` (``name`` is the cell's module
    hash, ``source`` is ``"nasbench101"``).

    The cells come from ``specs`` if given, else from the official ``tfrecord`` (modules with
    mean validation accuracy ``>= min_validation_accuracy``), else from
    :func:`sample_cells` (``num_cells`` cells drawn with ``seed``). ``limit`` keeps the first
    ``limit`` cells. Every network (``NASBench101Network(spec, **network_kwargs)``) is traced on
    the ``meta`` device at ``input_shape``. Rows are written to an Arrow file under
    ``cache_dir`` (the ``datasets`` cache by default) as they are traced, so the full corpus
    does not have to fit in memory; the same cells, shape and code reuse that file.
    ``num_proc`` traces in that many processes.
    """
    if specs is not None and tfrecord is not None:
        raise ValueError("give either specs or tfrecord, not both")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be non-negative, got {limit}")
    if specs is not None:
        chosen = [spec if isinstance(spec, CellSpec) else CellSpec(*spec) for spec in specs]
        named = [(spec.hash(), spec) for spec in chosen]
    elif tfrecord is not None:
        named = [
            (module_hash, spec)
            for spec, _, module_hash in read_nasbench101(tfrecord, min_validation_accuracy, progress=progress)
        ]
    else:
        count = num_cells if limit is None else min(num_cells, limit)
        named = [(spec.hash(), spec) for spec in sample_cells(count, seed)]
    if limit is not None:
        named = named[:limit]
    cells = [(name, [list(row) for row in spec.matrix], list(spec.ops)) for name, spec in named]
    if not cells:
        return datasets.Dataset.from_dict({k: [] for k in ARCHITECTURE_FEATURES}, features=ARCHITECTURE_FEATURES)
    input_shape = tuple(int(s) for s in input_shape)
    # ``datasets`` makes one shard of every element of a list in gen_kwargs (and one job of a
    # run of shards per process): one contiguous shard per process keeps one bar per process
    jobs = max(1, min(num_proc or 1, len(cells)))
    bounds = [len(cells) * i // jobs for i in range(jobs + 1)]
    shards = [tuple(cells[bounds[i] : bounds[i + 1]]) for i in range(jobs)]
    # our own bar counts traced cells; the ``datasets`` one would only repeat it
    bars_were_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        return datasets.Dataset.from_generator(
            _generate_rows,
            features=ARCHITECTURE_FEATURES,
            cache_dir=cache_dir,
            gen_kwargs={
                "shards": shards,
                "input_shape": input_shape,
                "network_kwargs": network_kwargs,
                "progress": progress,
            },
            num_proc=num_proc,
            fingerprint=_fingerprint(cells, input_shape, network_kwargs),
        )
    finally:
        if bars_were_enabled:
            datasets.enable_progress_bars()
