"""NAS-Bench-101 cells and their hashing, without TensorFlow or protobuf (the module itself
imports only the standard library).

NAS-Bench-101 (Ying et al., 2019; https://github.com/google-research/nasbench) is a space of
cells: DAGs of at most 7 vertices and 9 edges whose interior vertices are a 3x3 or 1x1
conv-bn-relu or a 3x3 max-pool (``config.py``: :data:`AVAILABLE_OPS`, :data:`MAX_VERTICES`,
:data:`MAX_EDGES`; :data:`NUM_UNIQUE_CELLS` unique cells up to isomorphism).

This module holds:

* :class:`CellSpec`: a cell, validated and pruned as ``model_spec.py`` does, with the
  reference's isomorphism-invariant :meth:`CellSpec.hash` (``graph_util.hash_module``), and
  the raw ``(adjacency, operations)`` strings the official tfrecord stores;
* :func:`hash_module`: that hash for any labelled DAG; :func:`is_valid_cell`;
* :func:`sample_cells`: a seeded sampler of unique valid cells, for offline use.

The network built from a cell is :mod:`.nasbench101_network`; the official file is read by
:mod:`.nasbench101_tfrecord`.
"""

from __future__ import annotations

import hashlib
import random
from typing import Sequence

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
    "CellSpec",
    "hash_module",
    "is_valid_cell",
    "sample_cells",
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

