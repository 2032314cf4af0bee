"""The genome's schema: how a block is normalised and checked against its kind
(:func:`normalize_block`, :func:`normalize`, :func:`validate_genome`,
:class:`InvalidGenomeError`) and the immutable, hashable :class:`Genome` itself. The kinds,
their parameters and checks are read from :mod:`gptnas_hf.kind_registry` (the Table-2 kinds:
:mod:`gptnas_hf.builtin_kinds`); the format is described in :mod:`gptnas_hf.search_space`."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .builtin_kinds import BUILTIN_KINDS
from .kind_registry import BASE_KEYS, BLOCK_KINDS, KIND_PARAMS, MAX_WIDTH, KindParam, block_kind
from .value_checks import is_int

__all__ = ["MAX_WIDTH", "KIND_PARAMS", "KindParam", "WIDTH_PRESERVING_KINDS", "STRIDE_NATIVE_KINDS", "is_int",
           "InvalidGenomeError", "normalize_block", "normalize", "validate_genome", "Genome"]

#: The built-in kinds whose native module keeps the channel count (they need an adapter to
#: change it); any registered kind says so itself (``BlockKind.preserves_width``).
WIDTH_PRESERVING_KINDS = tuple(kind.name for kind in BUILTIN_KINDS if kind.preserves_width)
#: The built-in kinds whose native module can downsample (stride 2) without an adapter; any
#: registered kind says so itself (``BlockKind.downsamples``).
STRIDE_NATIVE_KINDS = tuple(kind.name for kind in BUILTIN_KINDS if kind.downsamples)


class InvalidGenomeError(ValueError):
    """A genome (or one of its blocks) is not valid. ``index`` and ``kind`` name the offending
    block (``None`` for errors about the genome as a whole); ``reason`` says what is wrong."""

    def __init__(self, reason: str, index: int | None = None, kind: Any = None):
        self.reason, self.index, self.kind = reason, index, kind
        if index is None:
            message = f"invalid genome: {reason}"
        else:
            message = f"invalid genome: block {index} ({kind if isinstance(kind, str) else repr(kind)}): {reason}"
        super().__init__(message)


def normalize_block(index: int, block) -> dict:
    """The canonical form of one block (block ``index`` of its genome, for the error): its
    kind's parameters with their defaults filled in and canonical types, keys ordered kind,
    width, stride, then sorted parameters. Raises :class:`InvalidGenomeError` naming what is
    wrong: an unknown kind or key, a width, stride or parameter out of range, a width the kind
    does not accept or parameters that do not go together (the kind's own check)."""
    if not isinstance(block, Mapping):
        raise InvalidGenomeError(f"expected a dict with 'kind', 'width', 'stride', got {type(block).__name__}", index, None)
    kind_name = block.get("kind")
    if not isinstance(kind_name, str) or kind_name not in BLOCK_KINDS:
        what = "missing 'kind'" if "kind" not in block else f"unknown kind {kind_name!r}"
        raise InvalidGenomeError(f"{what}; valid kinds: {', '.join(BLOCK_KINDS)}", index, kind_name)

    def bad(reason: str):
        return InvalidGenomeError(reason, index, kind_name)

    kind = block_kind(kind_name)
    specs = kind.params
    extra = [k for k in block if k not in BASE_KEYS and k not in specs]
    if extra:
        allowed = list(BASE_KEYS) + list(specs)
        raise bad(f"unknown key {extra[0]!r}; {kind_name} takes {allowed}")
    if "width" not in block:
        raise bad("missing 'width'")
    width = block["width"]
    if not is_int(width) or not 1 <= width <= MAX_WIDTH:
        raise bad(f"width must be a positive int <= {MAX_WIDTH}, got {width!r}")
    if "stride" not in block:
        raise bad("missing 'stride'")
    stride = block["stride"]
    if not is_int(stride) or stride not in (1, 2):
        raise bad(f"stride must be 1 or 2, got {stride!r}")
    out = {"kind": kind_name, "width": width, "stride": stride}
    for name in sorted(specs, key=lambda n: specs[n].default_depends_on_block):  # such defaults read the others
        spec = specs[name]
        value = spec.canon(block[name]) if name in block else spec.default_for(out)
        problem = spec.check(value)
        if problem:
            raise bad(f"{name} {block.get(name, value)!r} {problem}")
        out[name] = value
    problem = kind.width_problem(width) or (kind.check(out) if kind.check is not None else None)
    if problem:
        raise bad(problem)
    return {k: out[k] for k in (*BASE_KEYS, *sorted(specs))}


def _load(genome) -> list:
    if isinstance(genome, Genome):
        return genome.to_list()
    if isinstance(genome, (str, bytes, bytearray)):
        try:
            genome = json.loads(genome)
        except ValueError as err:
            raise InvalidGenomeError(f"not valid JSON ({err})") from None
    if isinstance(genome, Mapping) and "blocks" in genome and len(genome) == 1:
        genome = genome["blocks"]
    if not isinstance(genome, (list, tuple)):
        raise InvalidGenomeError(f"expected a list of blocks, got {type(genome).__name__}")
    return list(genome)


def normalize(genome) -> list[dict]:
    """The canonical form of a genome (a JSON string, list of dicts or :class:`Genome`): every
    block with all its kind's parameters (defaults filled in), canonical value types (floats
    for float parameters, ``se_ratio`` null -> 0.0) and keys ordered kind, width, stride, then
    sorted parameters. Equivalent genomes normalize (and hash) the same. Raises
    :class:`InvalidGenomeError` on anything invalid."""
    blocks = _load(genome)
    if not blocks:
        raise InvalidGenomeError("empty genome (a network needs at least one block)")
    return [normalize_block(i, b) for i, b in enumerate(blocks)]


def validate_genome(genome, in_channels: int = 3, *, min_blocks: int = 1, max_blocks: int | None = None) -> "Genome":
    """Check ``genome`` and return it as a normalized :class:`Genome`; raises
    :class:`InvalidGenomeError` naming the offending block. ``in_channels`` (any positive int)
    never makes a valid genome invalid (closure rule); it is checked for range only."""
    if not is_int(in_channels) or not 1 <= in_channels <= MAX_WIDTH:
        raise ValueError(f"in_channels must be a positive int <= {MAX_WIDTH}, got {in_channels!r}")
    result = Genome(genome)
    if len(result) < min_blocks:
        raise InvalidGenomeError(f"{len(result)} blocks, fewer than min_blocks={min_blocks}")
    if max_blocks is not None and len(result) > max_blocks:
        raise InvalidGenomeError(f"{len(result)} blocks, more than max_blocks={max_blocks}")
    return result


class Genome(Sequence):
    """An immutable, validated, normalized list of blocks (see the module docstring).

    ``Genome(blocks)`` accepts a list of dicts, a JSON string or another ``Genome`` and
    raises :class:`InvalidGenomeError` if it is invalid. Indexing returns copies of the
    block dicts, so a genome cannot be changed in place: edit ``to_list()`` and build a new one.
    """

    __slots__ = ("_blocks", "_json")

    def __init__(self, blocks):
        self._blocks = normalize(blocks)
        self._json = json.dumps(self._blocks, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, data) -> "Genome":
        """From a JSON string, a list of block dicts or a ``Genome``."""
        return data if type(data) is cls else cls(data)

    def to_json(self, indent: int | None = None) -> str:
        """JSON of the normalized blocks, keys in the normalized order (kind, width, stride,
        then sorted parameters); compact unless ``indent`` is given. Deterministic, so it is
        as stable as the sorted-keys form that :meth:`hash` uses."""
        separators = (",", ":") if indent is None else None
        return json.dumps(self._blocks, indent=indent, separators=separators)

    def to_list(self) -> list[dict]:
        return copy.deepcopy(self._blocks)

    def hash(self) -> str:
        """Stable sha1 (hex) of the canonical JSON; the same across processes and runs."""
        return hashlib.sha1(self._json.encode("utf-8")).hexdigest()

    def with_block(self, index: int, block: Mapping) -> "Genome":
        """A new genome with block ``index`` replaced by ``block`` (e.g. from :func:`make_block`)."""
        blocks = self.to_list()
        blocks[index] = dict(block)
        return Genome(blocks)

    @property
    def kinds(self) -> list[str]:
        return [b["kind"] for b in self._blocks]

    @property
    def widths(self) -> list[int]:
        return [b["width"] for b in self._blocks]

    @property
    def num_downsamples(self) -> int:
        return sum(b["stride"] == 2 for b in self._blocks)

    def __len__(self) -> int:
        return len(self._blocks)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [dict(b) for b in self._blocks[index]]
        return dict(self._blocks[index])

    def __iter__(self) -> Iterator[dict]:
        return (dict(b) for b in self._blocks)

    def __eq__(self, other) -> bool:
        if isinstance(other, Genome):
            return self._json == other._json
        if isinstance(other, (list, tuple, str)):
            try:
                return self._json == Genome(other)._json
            except InvalidGenomeError:
                return False
        return NotImplemented

    def __hash__(self) -> int:
        return int(self.hash()[:16], 16)

    def __repr__(self) -> str:
        return f"Genome({self._json})"

    def __reduce__(self):
        return (Genome, (self.to_json(),))
