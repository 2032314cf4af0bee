"""Drawing genomes: :func:`make_block` (a block of a kind with its parameters filled in, from
hints or at random), :func:`changes_width` (which kinds map channels by themselves),
:func:`candidate_blocks` (what a masked block may become) and :func:`sample_genome` (a random
genome within the search's limits, whose defaults are defined here: :data:`DEFAULT_MIN_BLOCKS`
and the rest). Everything a kind contributes (its widths, parameters, joint draws, weights,
candidate settings) is read from its :class:`~gptnas_hf.kind_registry.BlockKind`."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from .genome_schema import Genome, InvalidGenomeError, normalize_block
from .kind_registry import MAX_WIDTH, block_kind, kind_names
from .value_checks import is_int

__all__ = ["make_block", "changes_width", "candidate_blocks", "check_limits", "sample_genome", "DEFAULT_MIN_BLOCKS",
           "DEFAULT_MAX_BLOCKS", "DEFAULT_WIDTHS", "DEFAULT_MAX_DOWNSAMPLES"]


def _as_rng(seed_or_rng) -> random.Random:
    if isinstance(seed_or_rng, random.Random):
        return seed_or_rng
    if seed_or_rng is None or is_int(seed_or_rng):
        return random.Random(seed_or_rng)
    raise TypeError(f"expected an int seed, a random.Random or None, got {type(seed_or_rng).__name__}")


def make_block(kind: str, width: int, stride: int, rng=None, **hints) -> dict:
    """A valid, normalized block dict of ``kind`` with (about) that width and stride.

    * ``width`` is clamped to 1..4096 and moved to the nearest value the kind accepts
      (``BlockKind.fit_width``; e.g. Bottleneck: multiple of 4; InvertedResidual: even;
      Inception: >= 4); ``stride`` >= 2 becomes 2, anything else 1.
    * Kind parameters come from ``hints`` (keyword arguments named like the parameters,
      e.g. ``kernel=5``) where the hinted value gives a valid block; hints that are not
      parameters of ``kind``, or whose value is invalid, are ignored (the reconstruction
      pipeline can pass the same hints whatever kind it predicted). A numeric hint of a
      parameter with allowed values to snap to (a ``kernel`` outside {1, 3, 5}) moves to the
      nearest of them.
    * Remaining parameters are the defaults when ``rng`` is ``None``, else sampled from
      ``rng`` (a ``random.Random`` or an int seed) among sensible values.
    """
    definition = block_kind(kind)
    rng = None if rng is None else _as_rng(rng)
    block: dict[str, Any] = {"kind": kind, "width": definition.fit_width(width), "stride": 2 if int(stride) >= 2 else 1}
    for name, value in hints.items():
        if name in definition.params:
            trial = dict(block, **{name: definition.params[name].hinted(value)})
            try:
                normalize_block(0, trial)
            except InvalidGenomeError:
                continue
            block[name] = trial[name]
    if rng is not None:
        _sample_params(block, rng)
    return normalize_block(0, block)


def _sample_params(block: dict, rng: random.Random) -> None:
    """Fill the block's missing parameters with sampled values that keep it valid: the kind's
    joint draw first (``BlockKind.sample_params``), then one parameter at a time."""
    kind = block_kind(block["kind"])
    if kind.sample_params is not None:
        kind.sample_params(block, rng)
    for name in sorted(kind.params):
        if name not in block:
            trial = dict(block, **{name: rng.choice(kind.params[name].sample)})
            try:
                normalize_block(0, trial)
            except InvalidGenomeError:
                continue
            block[name] = trial[name]


def changes_width(kind: str, stride: int) -> bool:
    """Whether the kind's own module maps any input channels to ``width`` (no adapter); when
    it does not, the block should take the incoming width."""
    return block_kind(kind).changes_width(stride)


def candidate_blocks(width: int, stride: int, kinds: Iterable[str] | None = None) -> list[dict]:
    """The blocks a masked block of this width and stride may become: every kind of ``kinds``
    (default all registered; unknown names are skipped) with each of its candidate settings
    (``BlockKind.candidates``, or its defaults), deduplicated."""
    out: list[dict] = []
    for kind in kinds if kinds is not None else kind_names():
        if kind not in kind_names():
            continue
        for settings in block_kind(kind).candidates or ({},):
            block = make_block(kind, width, stride, None, **settings)
            if block not in out:
                out.append(block)
    return out


#: the search space's defaults (paper section 5.1), the one source of truth for the sampler,
#: the strategies and the search settings
DEFAULT_MIN_BLOCKS = 10
DEFAULT_MAX_BLOCKS = 20
DEFAULT_WIDTHS = (16, 32, 64, 128)
DEFAULT_MAX_DOWNSAMPLES = 4


def check_limits(min_blocks, max_blocks, widths, max_downsamples,
                 kinds=None) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The search's genome limits checked (a ValueError naming the bad one); returns the widths
    and the kinds (without repeats; ``None``: every registered kind) as tuples."""
    if not (is_int(min_blocks) and is_int(max_blocks) and 1 <= min_blocks <= max_blocks):
        raise ValueError(f"need ints 1 <= min_blocks <= max_blocks, got {min_blocks!r}, {max_blocks!r}")
    widths = tuple(widths)
    if not widths or not all(is_int(w) and 1 <= w <= MAX_WIDTH for w in widths):
        raise ValueError(f"widths must be a non-empty list of ints in 1..{MAX_WIDTH}, got {widths!r}")
    if not is_int(max_downsamples) or max_downsamples < 0:
        raise ValueError(f"max_downsamples must be a non-negative int, got {max_downsamples!r}")
    kinds = tuple(dict.fromkeys(kind_names() if kinds is None else kinds))
    unknown = [k for k in kinds if k not in kind_names()]
    if not kinds or unknown:
        raise ValueError(f"kinds must be a non-empty subset of {list(kind_names())}; unknown: {unknown}")
    return widths, kinds


def sample_genome(
    seed_or_rng=None,
    min_blocks: int = DEFAULT_MIN_BLOCKS,
    max_blocks: int = DEFAULT_MAX_BLOCKS,
    widths: Sequence[int] = DEFAULT_WIDTHS,
    max_downsamples: int = DEFAULT_MAX_DOWNSAMPLES,
    kinds: Iterable[str] | None = None,
) -> Genome:
    """A random genome, reproducible from an int seed (or drawn from a ``random.Random``).

    ``min_blocks``..``max_blocks`` blocks, 1..``max_downsamples`` of them stride 2 (0 if
    ``max_downsamples`` is 0), at those positions kinds that downsample natively; widths
    taken from ``widths`` (as a ladder: mostly non-decreasing, a step up is likely at a
    downsampling block). Kinds are drawn from ``kinds`` (default: every registered kind) with
    their weights (``BlockKind.weight_at``: towards conv blocks; Stem favoured first, pools
    favoured at stride 2); width-preserving kinds take the incoming
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
        pool = [k for k in kinds if block_kind(k).downsamples] if stride == 2 else list(kinds)
        pool = pool or list(kinds)
        if current is None:
            pool = [k for k in pool if changes_width(k, stride)] or pool
        weights = [block_kind(k).weight_at(i, stride) for k in pool]
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
