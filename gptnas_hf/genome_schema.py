"""The genome's schema: the block kinds and their parameters (:data:`KIND_PARAMS`), how a block
is normalised and checked (:func:`normalize`, :func:`validate_genome`, :class:`InvalidGenomeError`)
and the immutable, hashable :class:`Genome` itself. The format is described in
:mod:`gptnas_hf.search_space`."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any


from .block_labels import BLOCK_LABELS

MAX_WIDTH = 4096
_BASE_KEYS = ("kind", "width", "stride")

#: Kinds whose native module keeps the channel count (they need an adapter to change it).
WIDTH_PRESERVING_KINDS = ("SqueezeExcitation", "AvgPool", "MaxPool", "BatchNorm", "ReLU")
#: Kinds whose native module can downsample (stride 2) without an adapter.
STRIDE_NATIVE_KINDS = (
    "ConvNormActivation", "AvgPool", "ResBottleneckBlock", "Stem", "Bottleneck",
    "BasicBlock", "InvertedResidual", "MaxPool", "Conv",
)


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


# -- kind parameters -----------------------------------------------------------------------
def is_int(value) -> bool:
    """An int that is not a bool (the package's one integer check)."""
    return isinstance(value, int) and not isinstance(value, bool)


_is_int = is_int  # the name the genome modules use


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _res_bottleneck_width(width: int, multiplier: float) -> int:
    # exactly torchvision's BottleneckTransform: w_b = int(round(width_out * bottleneck_multiplier))
    return int(round(width * multiplier))


def _bottleneck_inner(width: int, groups: int, base_width: int) -> int:
    # exactly torchvision's Bottleneck: width = int(planes * (base_width / 64.0)) * groups
    return int((width // 4) * (base_width / 64.0)) * groups


class KindParam:
    """One kind parameter: ``default`` (a value, or a function of the block), ``sample`` (the
    values :func:`make_block` draws from, repeats weight them), ``check(value)`` (``None`` or
    what is wrong), ``canon(value)`` (canonical type) and ``doc``."""

    def __init__(self, default, sample: Sequence, check, canon=lambda v: v, doc: str = ""):
        self.default, self.sample, self.check, self.canon, self.doc = default, tuple(sample), check, canon, doc

    def default_for(self, block: Mapping) -> Any:
        return self.default(block) if callable(self.default) else self.default


def _choice(values: Sequence, default, *, doc: str = "") -> KindParam:
    def check(v):
        return None if (v in values and type(v) is type(default)) else f"must be one of {list(values)}"
    return KindParam(default, values, check, doc=doc)


def _int_range(lo: int, hi: int, default, sample: Sequence, *, doc: str = "") -> KindParam:
    def check(v):
        return None if _is_int(v) and lo <= v <= hi else f"must be an int in {lo}..{hi}"
    return KindParam(default, sample, check, doc=doc)


def _float_range(lo: float, hi: float, default: float, sample: Sequence, *, lo_open: bool, doc: str = "") -> KindParam:
    def check(v):
        ok = _is_number(v) and (v > lo if lo_open else v >= lo) and v <= hi
        return None if ok else f"must be a number in {'(' if lo_open else '['}{lo}, {hi}]"
    return KindParam(default, sample, check, canon=lambda v: float(v) if _is_number(v) else v, doc=doc)


def _bool(default: bool, *, doc: str = "") -> KindParam:
    return KindParam(default, (False, True), lambda v: None if isinstance(v, bool) else "must be true or false", doc=doc)


def _default_group_width(block: Mapping) -> int:
    w_b = _res_bottleneck_width(block["width"], block.get("bottleneck_multiplier", 1.0))
    return math.gcd(max(w_b, 1), 8)


def _se_ratio_canon(value):
    if value is None:
        return 0.0
    return float(value) if _is_number(value) else value


_KERNELS = (1, 3, 5)

#: kind -> {param name -> KindParam}. Parameter order here is not significant (JSON keys are sorted).
KIND_PARAMS: dict[str, dict[str, KindParam]] = {
    "ConvNormActivation": {
        "kernel": _choice(_KERNELS, 3, doc="square kernel size"),
        "activation": _choice(("ReLU", "SiLU"), "ReLU", doc="activation after the BatchNorm"),
    },
    "SqueezeExcitation": {
        "squeeze_factor": _int_range(1, 1024, 4, (4, 4, 8, 16), doc="squeeze channels = max(1, width // factor)"),
    },
    "Inception": {},
    "AvgPool": {},
    "ResBottleneckBlock": {
        "bottleneck_multiplier": _float_range(0.0, 4.0, 1.0, (1.0, 1.0, 0.5), lo_open=True,
                                              doc="bottleneck width w_b = round(width * multiplier)"),
        "group_width": _int_range(1, 4 * MAX_WIDTH, _default_group_width, (8, 8, 16, 4, 2, 1),
                                  doc="channels per group of the 3x3 conv; must divide w_b"),
        "se_ratio": KindParam(0.0, (0.0, 0.0, 0.25), lambda v: None if _is_number(v) and 0.0 <= v <= 1.0
                           else "must be a number in [0, 1] (0 = no SE)", canon=_se_ratio_canon,
                           doc="SE squeeze channels = round(se_ratio * input channels); 0 = no SE"),
    },
    "Stem": {},
    "Bottleneck": {
        "groups": _int_range(1, 1024, 1, (1, 1, 32, 32, 8, 64), doc="3x3 conv groups (ResNeXt cardinality)"),
        "base_width": _int_range(1, 1024, 64, (64, 64, 128, 4, 8, 16), doc="ResNet base width (64; 128 = Wide-ResNet)"),
    },
    "BasicBlock": {},
    "InvertedResidual": {},
    "MaxPool": {},
    "BatchNorm": {},
    "ReLU": {},
    "Conv": {
        "kernel": _choice(_KERNELS, 3, doc="square kernel size"),
        "bias": _bool(False, doc="conv bias"),
    },
}
assert tuple(KIND_PARAMS) == BLOCK_LABELS

# Bottleneck (groups, base_width) pairs the sampler draws from: ResNet, Wide-ResNet, ResNeXt.
_BOTTLENECK_CONFIGS = ((1, 64), (1, 64), (1, 128), (32, 4), (32, 8), (8, 16), (64, 4))


def _kind_constraint(block: Mapping) -> str | None:
    """What is wrong with a block whose keys and individual values are fine, or ``None``."""
    kind, width = block["kind"], block["width"]
    if kind == "Bottleneck":
        if width % 4:
            return f"width {width} is not a multiple of 4 (Bottleneck output = planes * 4)"
        inner = _bottleneck_inner(width, block["groups"], block["base_width"])
        if inner < 1:
            return (f"inner width int(planes * base_width / 64) * groups = {inner} with planes={width // 4}, "
                    f"groups={block['groups']}, base_width={block['base_width']}; it must be >= 1")
        if inner > 4 * MAX_WIDTH:
            return f"inner width {inner} exceeds {4 * MAX_WIDTH}"
    elif kind == "InvertedResidual":
        if width % 2:
            return f"width {width} is odd (InvertedResidual splits its output into two equal branches)"
    elif kind == "Inception":
        if width < 4:
            return f"width {width} < 4 (Inception splits its output over four branches)"
    elif kind == "ResBottleneckBlock":
        w_b = _res_bottleneck_width(width, block["bottleneck_multiplier"])
        if w_b < 1:
            return f"bottleneck width round({width} * {block['bottleneck_multiplier']}) = {w_b} < 1"
        if w_b > 4 * MAX_WIDTH:
            return f"bottleneck width {w_b} exceeds {4 * MAX_WIDTH}"
        if w_b % block["group_width"]:
            return (f"group_width {block['group_width']} does not divide the bottleneck width "
                    f"{w_b} (= round(width {width} * bottleneck_multiplier {block['bottleneck_multiplier']}))")
    return None


def _normalize_block(index: int, block) -> dict:
    if not isinstance(block, Mapping):
        raise InvalidGenomeError(f"expected a dict with 'kind', 'width', 'stride', got {type(block).__name__}", index, None)
    kind = block.get("kind")
    if not isinstance(kind, str) or kind not in KIND_PARAMS:
        what = "missing 'kind'" if "kind" not in block else f"unknown kind {kind!r}"
        raise InvalidGenomeError(f"{what}; valid kinds: {', '.join(BLOCK_LABELS)}", index, kind)

    def bad(reason: str):
        return InvalidGenomeError(reason, index, kind)

    specs = KIND_PARAMS[kind]
    extra = [k for k in block if k not in _BASE_KEYS and k not in specs]
    if extra:
        allowed = list(_BASE_KEYS) + list(specs)
        raise bad(f"unknown key {extra[0]!r}; {kind} takes {allowed}")
    if "width" not in block:
        raise bad("missing 'width'")
    width = block["width"]
    if not _is_int(width) or not 1 <= width <= MAX_WIDTH:
        raise bad(f"width must be a positive int <= {MAX_WIDTH}, got {width!r}")
    if "stride" not in block:
        raise bad("missing 'stride'")
    stride = block["stride"]
    if not _is_int(stride) or stride not in (1, 2):
        raise bad(f"stride must be 1 or 2, got {stride!r}")
    out = {"kind": kind, "width": width, "stride": stride}
    for name in sorted(specs, key=lambda n: n == "group_width"):  # group_width's default needs the multiplier
        spec = specs[name]
        value = spec.canon(block[name]) if name in block else spec.default_for(out)
        problem = spec.check(value)
        if problem:
            raise bad(f"{name} {block.get(name, value)!r} {problem}")
        out[name] = value
    problem = _kind_constraint(out)
    if problem:
        raise bad(problem)
    return {k: out[k] for k in (*_BASE_KEYS, *sorted(specs))}


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
    return [_normalize_block(i, b) for i, b in enumerate(blocks)]


def validate_genome(genome, in_channels: int = 3, *, min_blocks: int = 1, max_blocks: int | None = None) -> "Genome":
    """Check ``genome`` and return it as a normalized :class:`Genome`; raises
    :class:`InvalidGenomeError` naming the offending block. ``in_channels`` (any positive int)
    never makes a valid genome invalid (closure rule); it is checked for range only."""
    if not _is_int(in_channels) or not 1 <= in_channels <= MAX_WIDTH:
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


# -- modules -------------------------------------------------------------------------------
