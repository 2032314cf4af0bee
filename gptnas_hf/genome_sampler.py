"""Drawing genomes: :func:`make_block` (a block of a kind with its parameters filled in, from
hints or at random), :func:`changes_width` (which kinds map channels by themselves) and
:func:`sample_genome` (a random genome within the search's limits, whose defaults are defined
here: :data:`DEFAULT_MIN_BLOCKS` and the rest)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from .block_labels import BLOCK_LABELS
from .genome_schema import (_BOTTLENECK_CONFIGS, _KERNELS, KIND_PARAMS, MAX_WIDTH, STRIDE_NATIVE_KINDS,
                            WIDTH_PRESERVING_KINDS, Genome, InvalidGenomeError, _bottleneck_inner, _is_int,
                            _is_number, _normalize_block, _res_bottleneck_width)

def _as_rng(seed_or_rng) -> random.Random:
    if isinstance(seed_or_rng, random.Random):
        return seed_or_rng
    if seed_or_rng is None or _is_int(seed_or_rng):
        return random.Random(seed_or_rng)
    raise TypeError(f"expected an int seed, a random.Random or None, got {type(seed_or_rng).__name__}")


def _fix_width(kind: str, width: int) -> int:
    width = min(max(int(width), 1), MAX_WIDTH)
    if kind == "Bottleneck":
        return min(max(4, int(width / 4 + 0.5) * 4), MAX_WIDTH)
    if kind == "InvertedResidual":
        return min(max(2, int(width / 2 + 0.5) * 2), MAX_WIDTH)
    if kind == "Inception":
        return max(4, width)
    return width


def make_block(kind: str, width: int, stride: int, rng=None, **hints) -> dict:
    """A valid, normalized block dict of ``kind`` with (about) that width and stride.

    * ``width`` is clamped to 1..4096 and moved to the nearest value the kind accepts
      (Bottleneck: multiple of 4; InvertedResidual: even; Inception: >= 4);
      ``stride`` >= 2 becomes 2, anything else 1.
    * Kind parameters come from ``hints`` (keyword arguments named like the parameters,
      e.g. ``kernel=5``) where the hinted value gives a valid block; hints that are not
      parameters of ``kind``, or whose value is invalid, are ignored (the reconstruction
      pipeline can pass the same hints whatever kind it predicted). A ``kernel`` hint outside
      {1, 3, 5} snaps to the nearest of them.
    * Remaining parameters are the defaults when ``rng`` is ``None``, else sampled from
      ``rng`` (a ``random.Random`` or an int seed) among sensible values.
    """
    if kind not in KIND_PARAMS:
        raise ValueError(f"unknown block kind {kind!r}; valid kinds: {', '.join(BLOCK_LABELS)}")
    rng = None if rng is None else _as_rng(rng)
    block: dict[str, Any] = {"kind": kind, "width": _fix_width(kind, width), "stride": 2 if int(stride) >= 2 else 1}
    specs = KIND_PARAMS[kind]
    if "kernel" in specs and _is_number(hints.get("kernel")):
        hints = dict(hints, kernel=min(_KERNELS, key=lambda k: (abs(k - hints["kernel"]), k)))
    for name, value in hints.items():
        if name in specs:
            trial = dict(block, **{name: specs[name].canon(value)})
            try:
                _normalize_block(0, trial)
            except InvalidGenomeError:
                continue
            block[name] = trial[name]
    if rng is not None:
        _sample_params(block, rng)
    return _normalize_block(0, block)


def _sample_params(block: dict, rng: random.Random) -> None:
    """Fill the block's missing parameters with sampled values that keep it valid."""
    kind, width = block["kind"], block["width"]
    specs = KIND_PARAMS[kind]
    if kind == "Bottleneck" and not {"groups", "base_width"} & set(block):
        options = [c for c in _BOTTLENECK_CONFIGS if 1 <= _bottleneck_inner(width, *c) <= 4 * MAX_WIDTH]
        block["groups"], block["base_width"] = rng.choice(options) if options else (1, 64)
        return
    if kind == "ResBottleneckBlock":
        if "bottleneck_multiplier" not in block:
            options = [m for m in specs["bottleneck_multiplier"].sample if _res_bottleneck_width(width, m) >= 1]
            block["bottleneck_multiplier"] = rng.choice(options) if options else 1.0
        if "se_ratio" not in block:
            block["se_ratio"] = rng.choice(specs["se_ratio"].sample)
        if "group_width" not in block:
            w_b = _res_bottleneck_width(width, block["bottleneck_multiplier"])
            options = [g for g in specs["group_width"].sample if w_b % g == 0]
            block["group_width"] = rng.choice(options) if options else 1
        return
    for name in sorted(specs):
        if name not in block:
            trial = dict(block, **{name: rng.choice(specs[name].sample)})
            try:
                _normalize_block(0, trial)
            except InvalidGenomeError:
                continue
            block[name] = trial[name]


# sampler weights: conv-like blocks more often than bare layers
_KIND_WEIGHTS = {
    "ConvNormActivation": 3.0, "SqueezeExcitation": 1.0, "Inception": 1.0, "AvgPool": 0.5,
    "ResBottleneckBlock": 2.0, "Stem": 0.5, "Bottleneck": 2.0, "BasicBlock": 3.0,
    "InvertedResidual": 2.0, "MaxPool": 0.5, "BatchNorm": 0.5, "ReLU": 0.5, "Conv": 1.0,
}


def changes_width(kind: str, stride: int) -> bool:
    """Whether the kind's own module maps any input channels to ``width`` (no adapter); when
    it does not, the block should take the incoming width."""
    if kind in WIDTH_PRESERVING_KINDS:
        return False
    if kind == "InvertedResidual":
        return stride == 2
    return True


#: the search space's defaults (paper section 5.1), the one source of truth for the sampler,
#: the strategies and the search settings
DEFAULT_MIN_BLOCKS = 10
DEFAULT_MAX_BLOCKS = 20
DEFAULT_WIDTHS = (16, 32, 64, 128)
DEFAULT_MAX_DOWNSAMPLES = 4


def check_limits(min_blocks, max_blocks, widths, max_downsamples, kinds) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The search's genome limits checked (a ValueError naming the bad one); returns the widths
    and the kinds (without repeats) as tuples."""
    if not (_is_int(min_blocks) and _is_int(max_blocks) and 1 <= min_blocks <= max_blocks):
        raise ValueError(f"need ints 1 <= min_blocks <= max_blocks, got {min_blocks!r}, {max_blocks!r}")
    widths = tuple(widths)
    if not widths or not all(_is_int(w) and 1 <= w <= MAX_WIDTH for w in widths):
        raise ValueError(f"widths must be a non-empty list of ints in 1..{MAX_WIDTH}, got {widths!r}")
    if not _is_int(max_downsamples) or max_downsamples < 0:
        raise ValueError(f"max_downsamples must be a non-negative int, got {max_downsamples!r}")
    kinds = tuple(dict.fromkeys(kinds))
    unknown = [k for k in kinds if k not in KIND_PARAMS]
    if not kinds or unknown:
        raise ValueError(f"kinds must be a non-empty subset of {list(BLOCK_LABELS)}; unknown: {unknown}")
    return widths, kinds


def sample_genome(
    seed_or_rng=None,
    min_blocks: int = DEFAULT_MIN_BLOCKS,
    max_blocks: int = DEFAULT_MAX_BLOCKS,
    widths: Sequence[int] = DEFAULT_WIDTHS,
    max_downsamples: int = DEFAULT_MAX_DOWNSAMPLES,
    kinds: Iterable[str] = BLOCK_LABELS,
) -> Genome:
    """A random genome, reproducible from an int seed (or drawn from a ``random.Random``).

    ``min_blocks``..``max_blocks`` blocks, 1..``max_downsamples`` of them stride 2 (0 if
    ``max_downsamples`` is 0), at those positions kinds that downsample natively; widths
    taken from ``widths`` (as a ladder: mostly non-decreasing, a step up is likely at a
    downsampling block). Kinds are drawn from ``kinds`` (weighted towards conv blocks; Stem
    favoured first, pools favoured at stride 2); width-preserving kinds take the incoming
    width and the first block is one that sets its own width, so adapters are rare. Every
    kind in ``kinds`` is reachable.
    """
    rng = _as_rng(seed_or_rng)
    widths, kinds = check_limits(min_blocks, max_blocks, widths, max_downsamples, kinds)

    n = rng.randint(min_blocks, max_blocks)
    n_down = min(n, rng.randint(min(1, max_downsamples), max_downsamples))
    down = set(rng.sample(range(n), n_down))
    level, current = 0, None
    blocks = []
    for i in range(n):
        stride = 2 if i in down else 1
        pool = [k for k in kinds if k in STRIDE_NATIVE_KINDS] if stride == 2 else list(kinds)
        pool = pool or list(kinds)
        if current is None:
            pool = [k for k in pool if changes_width(k, stride)] or pool
        weights = []
        for k in pool:
            w = _KIND_WEIGHTS[k]
            if k == "Stem":
                w = 6.0 if i == 0 else 0.25
            elif k in ("MaxPool", "AvgPool") and stride == 2:
                w = 2.0
            weights.append(w)
        kind = rng.choices(pool, weights=weights)[0]
        if current is None or changes_width(kind, stride):
            if current is not None:
                u = rng.random()
                if stride == 2 and u < 0.6 or stride == 1 and u < 0.08:
                    level = min(level + 1, len(widths) - 1)
                elif u > 0.97:
                    level = max(level - 1, 0)
            width = widths[level]
        else:
            width = current
        block = make_block(kind, width, stride, rng)
        blocks.append(block)
        current = block["width"]
    return Genome(blocks)
