"""What a block kind is, and where the kinds are kept.

A kind is one :class:`BlockKind`: its parameters (:class:`KindParam`: default, check, the
values the sampler draws), the widths it accepts, how it is built into torch modules, how the
sampler draws it and which settings the reconstruction tries for it. Kinds are registered by
name (:func:`register_kind`, in :data:`BLOCK_KINDS`); the genome's schema
(:mod:`gptnas_hf.genome_schema`), sampler (:mod:`gptnas_hf.genome_sampler`), network
(:mod:`gptnas_hf.genome_network`) and the block space's mutation
(:mod:`gptnas_hf.space_blocks`) read every kind from here and know no kind by name. The
package's kinds (the paper's Table-2 ones first) are defined in :mod:`gptnas_hf.builtin_kinds`;
a new kind is one more :class:`BlockKind` there (or registered by the code that uses it).

A kind is not a class of the architecture GPT's block head (:data:`~gptnas_hf.block_labels.BLOCK_LABELS`,
fixed by the trained model): the GPT rewrites masked blocks into the kinds it was trained on only.

A flat model-side module: it imports the standard library and :mod:`gptnas_hf.value_checks`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .value_checks import is_int, is_number

__all__ = ["MAX_WIDTH", "BASE_KEYS", "KindParam", "choice", "int_range", "float_range", "flag", "BlockKind",
           "BLOCK_KINDS", "KIND_PARAMS", "register_kind", "block_kind", "kind_names", "block_params"]

#: the widest block (output channels) a genome may have
MAX_WIDTH = 4096
#: the keys every block has; the others are its kind's parameters
BASE_KEYS = ("kind", "width", "stride")


def block_params(block: Mapping) -> dict:
    """A block's kind parameters: its keys other than :data:`BASE_KEYS`."""
    return {k: v for k, v in block.items() if k not in BASE_KEYS}


# -- parameters ----------------------------------------------------------------------------
class KindParam:
    """One kind parameter: ``default`` (a value, or a function of the block, resolved after
    the parameters with plain defaults), ``sample`` (the values the sampler draws from, repeats
    weight them), ``check(value)`` (``None`` or what is wrong), ``canon(value)`` (canonical
    type), ``snap`` (allowed numbers a numeric hint is moved to the nearest of; empty: hints are
    taken as they are) and ``doc``."""

    def __init__(self, default, sample: Sequence, check, canon=lambda v: v, doc: str = "", snap: Sequence = ()):
        self.default, self.sample, self.check, self.canon, self.doc = default, tuple(sample), check, canon, doc
        self.snap = tuple(snap)

    def default_for(self, block: Mapping) -> Any:
        """The default of this parameter in ``block`` (the other parameters already set)."""
        return self.default(block) if callable(self.default) else self.default

    @property
    def default_depends_on_block(self) -> bool:
        return callable(self.default)

    def hinted(self, value) -> Any:
        """A hint for this parameter as the sampler tries it: canonical, a number snapped to the
        nearest of ``snap`` (the smaller of two as near)."""
        if self.snap and is_number(value):
            value = min(self.snap, key=lambda allowed: (abs(allowed - value), allowed))
        return self.canon(value)


def choice(values: Sequence, default, *, doc: str = "", snap: bool = False) -> KindParam:
    """One of ``values`` (of the default's type); ``snap``: a numeric hint moves to the nearest."""
    def check(v):
        return None if (v in values and type(v) is type(default)) else f"must be one of {list(values)}"
    return KindParam(default, values, check, doc=doc, snap=values if snap else ())


def int_range(lo: int, hi: int, default, sample: Sequence, *, doc: str = "") -> KindParam:
    """An int in ``lo..hi``; the sampler draws from ``sample``."""
    def check(v):
        return None if is_int(v) and lo <= v <= hi else f"must be an int in {lo}..{hi}"
    return KindParam(default, sample, check, doc=doc)


def float_range(lo: float, hi: float, default: float, sample: Sequence, *, lo_open: bool, doc: str = "") -> KindParam:
    """A number in ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``), stored as a float."""
    def check(v):
        ok = is_number(v) and (v > lo if lo_open else v >= lo) and v <= hi
        return None if ok else f"must be a number in {'(' if lo_open else '['}{lo}, {hi}]"
    return KindParam(default, sample, check, canon=lambda v: float(v) if is_number(v) else v, doc=doc)


def flag(default: bool, *, doc: str = "") -> KindParam:
    """True or false."""
    def check(v):
        return None if isinstance(v, bool) else "must be true or false"
    return KindParam(default, (False, True), check, doc=doc)


# -- kinds ---------------------------------------------------------------------------------
#: ``build(spec, in_channels) -> (pre, op, post)``: torch modules (``pre`` / ``post`` may be None)
Builder = Callable[[Mapping, int], tuple]


@dataclass(frozen=True)
class BlockKind:
    """One block kind, everything the package knows of it.

    * ``name``: the blocks' ``kind``; also the label the tracer gives every layer inside them.
    * ``build(spec, in_channels) -> (pre, op, post)``: the kind's module ``op`` for a
      normalized block fed ``in_channels``, with the 1x1 adapters (``pre`` before it, ``post``
      after it, ``None`` where there is none) that make it output exactly ``width`` channels at
      ``stride`` whatever the input (the closure rule of :mod:`gptnas_hf.search_space`);
      modules are made in execution order.
    * ``params``: name -> :class:`KindParam`, the block's keys besides :data:`BASE_KEYS`.
    * ``maps_channels_at``: the strides at which ``op`` itself maps any input channels to the
      width (``()``: it keeps the channel count, an adapter changes it); a block of a kind
      that does not map channels takes the incoming width where the sampler and the mutation can.
    * ``downsamples``: whether ``op`` does stride 2 itself (the sampler and the mutation put
      such kinds at stride-2 positions).
    * ``width_multiple``, ``min_width``, ``width_rule``: the widths the kind accepts (a multiple
      of, at least) and why (for the error message).
    * ``check(block) -> str | None``: what is wrong with a block whose width and parameters
      are each fine (parameters that constrain each other), or ``None``.
    * ``sample_params(block, rng)``: draws parameters that go together (only where the block
      has none of them yet); the rest are drawn one by one from their ``KindParam.sample``.
    * ``weight``, ``first_weight``, ``stride2_weight``: how often the sampler draws the kind,
      relative to the others (at the first block / at a stride-2 position, where given).
    * ``candidates``: the parameter settings a masked block of this kind is tried with by the
      reconstruction (each with the rest default; empty: the defaults only).
    * ``doc``: the module it is built from and what its parameters mean.
    """

    name: str
    build: Builder
    params: Mapping[str, KindParam] = field(default_factory=dict)
    maps_channels_at: tuple[int, ...] = (1, 2)
    downsamples: bool = True
    width_multiple: int = 1
    min_width: int = 1
    width_rule: str = ""
    check: Callable[[Mapping], str | None] | None = None
    sample_params: Callable[[dict, random.Random], None] | None = None
    weight: float = 1.0
    first_weight: float | None = None
    stride2_weight: float | None = None
    candidates: tuple[dict, ...] = ()
    doc: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a kind's name must be a non-empty string, got {self.name!r}")
        if not callable(self.build):
            raise TypeError(f"kind {self.name!r}: build must be callable")
        clashes = [p for p in self.params if p in BASE_KEYS]
        if clashes:
            raise ValueError(f"kind {self.name!r}: parameter {clashes[0]!r} clashes with a block's keys {BASE_KEYS}")
        if not (is_int(self.width_multiple) and self.width_multiple >= 1 and is_int(self.min_width)
                and 1 <= self.min_width <= MAX_WIDTH):
            raise ValueError(f"kind {self.name!r}: width_multiple and min_width must be positive ints")
        unknown = [k for settings in self.candidates for k in settings if k not in self.params]
        if unknown:
            raise ValueError(f"kind {self.name!r}: candidate setting {unknown[0]!r} is not one of its parameters")

    @property
    def preserves_width(self) -> bool:
        """Whether the kind's own module keeps the channel count at every stride (only an
        adapter changes it)."""
        return not self.maps_channels_at

    def changes_width(self, stride: int) -> bool:
        """Whether the kind's own module maps any input channels to the width at ``stride``."""
        return stride in self.maps_channels_at

    def width_problem(self, width: int) -> str | None:
        """What is wrong with ``width`` (an int in 1..MAX_WIDTH) for this kind, or ``None``."""
        if width % self.width_multiple:
            what = "odd" if self.width_multiple == 2 else f"not a multiple of {self.width_multiple}"
            return f"width {width} is {what} ({self.width_rule})"
        if width < self.min_width:
            return f"width {width} < {self.min_width} ({self.width_rule})"
        return None

    def fit_width(self, width) -> int:
        """``width`` clamped to 1..MAX_WIDTH and moved to the nearest width the kind accepts."""
        width = min(max(int(width), 1), MAX_WIDTH)
        step = self.width_multiple
        if step > 1:
            width = int(width / step + 0.5) * step
        return min(max(self.min_width, width), MAX_WIDTH - MAX_WIDTH % step)

    def weight_at(self, index: int, stride: int) -> float:
        """The sampler's weight of the kind for block ``index`` at ``stride``."""
        if index == 0 and self.first_weight is not None:
            return self.first_weight
        if stride == 2 and self.stride2_weight is not None:
            return self.stride2_weight
        return self.weight


# -- the registry --------------------------------------------------------------------------
#: name -> kind, in registration order (the order the sampler draws from by default)
BLOCK_KINDS: dict[str, BlockKind] = {}


def register_kind(kind: BlockKind, *, overwrite: bool = False) -> BlockKind:
    """Register ``kind`` under its name; another kind of the same name needs ``overwrite=True``."""
    if not isinstance(kind, BlockKind):
        raise TypeError(f"expected a BlockKind, got {type(kind).__name__}")
    if kind.name in BLOCK_KINDS and BLOCK_KINDS[kind.name] is not kind and not overwrite:
        raise ValueError(f"block kind {kind.name!r} is already registered; pass overwrite=True to replace it")
    BLOCK_KINDS[kind.name] = kind
    return kind


def block_kind(name) -> BlockKind:
    """The registered kind called ``name``; a ValueError naming the valid kinds if there is none."""
    kind = BLOCK_KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise ValueError(f"unknown block kind {name!r}; valid kinds: {', '.join(BLOCK_KINDS)}")
    return kind


def kind_names() -> tuple[str, ...]:
    """The registered kinds' names, in registration order."""
    return tuple(BLOCK_KINDS)


class _KindParams(Mapping):
    """kind name -> its parameters (name -> :class:`KindParam`), read from the registry."""

    def __getitem__(self, name: str) -> Mapping[str, KindParam]:
        return BLOCK_KINDS[name].params

    def __iter__(self) -> Iterator[str]:
        return iter(BLOCK_KINDS)

    def __len__(self) -> int:
        return len(BLOCK_KINDS)

    def __repr__(self) -> str:
        return f"KIND_PARAMS({', '.join(BLOCK_KINDS)})"


#: kind -> {param name -> KindParam}, always as registered now. Parameter order is not
#: significant (a block's JSON keys are sorted).
KIND_PARAMS: Mapping[str, Mapping[str, KindParam]] = _KindParams()
