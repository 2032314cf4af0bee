"""The block search space as a plug-in (:class:`BlockSpace`, registered as ``"blocks"``): the
paper's space of 10-20 Table-2 blocks (the genome of :mod:`gptnas_hf.search_space`) behind the
:class:`~gptnas_hf.search_space_protocol.SearchSpace` interface.

Its limits are the search's: ``min_blocks``..``max_blocks`` blocks, widths from ``widths``, at
most ``max_downsamples`` stride-2 blocks, kinds from ``kinds``. The evolutionary operators are
AE-CNN's (Sun et al., IEEE TNNLS 2020), as GPT-NAS searches with them:

* **crossover**: one-point with an independent cut point in each parent:
  ``child1 = p1[:c1] + p2[c2:]``, ``child2 = p2[:c2] + p1[c1:]``, ``(c1, c2)`` uniform over the
  pairs (cuts strictly inside each parent) whose children both keep the block count and the
  downsample limit; with no such pair, None (the GA then copies the parents);
* **mutation**: one of add / remove / alter, uniformly among those that keep the limits (another
  is tried if the drawn one cannot change the genome). *add* inserts a block of a random kind at
  a random position (stride 2 with probability :data:`ADD_STRIDE2_PROB` if the downsample limit
  allows, then a kind that downsamples natively) whose width fits its neighbours (the incoming
  width for width-preserving kinds, else one of ``widths`` or the neighbours' widths between the
  two); *remove* drops a random block; *alter* rebuilds a random block with
  :func:`~gptnas_hf.genome_sampler.make_block`, changing its kind, width and/or stride (or, when
  none is drawn, re-sampling its parameters);
* **repair** (for parents that broke the limits, e.g. after reconstruction): random blocks
  removed while too long, random stride-1 blocks added while too short, random stride-2 blocks
  set to stride 1 while over the downsample limit.

The GPT rewrites this space block by block with its own contextual scoring
(:mod:`gptnas_hf.pipeline_nas_reconstruction`); the rewritable tier here (units are blocks, a
unit's alternatives are :func:`~gptnas_hf.genome_sampler.candidate_blocks`) serves
the generic code paths.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence

from .genome_network import build_network
from .genome_sampler import (DEFAULT_MAX_BLOCKS, DEFAULT_MAX_DOWNSAMPLES, DEFAULT_MIN_BLOCKS, DEFAULT_WIDTHS,
                             candidate_blocks, changes_width, check_limits, make_block, sample_genome)
from .genome_schema import Genome, InvalidGenomeError
from .kind_registry import block_kind, block_params
from .search_space_protocol import InvalidArchitectureError, SearchSpace, register_space

__all__ = ["BlockSpace", "ADD_STRIDE2_PROB", "DEDUP_RETRIES"]

#: probability that a block added by mutation is stride 2 (when the downsample limit allows)
ADD_STRIDE2_PROB = 0.2
#: attempts of an alteration before it gives up
DEDUP_RETRIES = 10


@register_space("blocks")
class BlockSpace(SearchSpace):
    """The block genome (module doc) within the search's limits (``kinds``: default every
    registered kind)."""

    name = "blocks"

    def __init__(self, min_blocks: int = DEFAULT_MIN_BLOCKS, max_blocks: int = DEFAULT_MAX_BLOCKS,
                 widths: Sequence[int] = DEFAULT_WIDTHS, max_downsamples: int = DEFAULT_MAX_DOWNSAMPLES,
                 kinds: Iterable[str] | None = None):
        widths, kinds = check_limits(min_blocks, max_blocks, widths, max_downsamples, kinds)
        self.min_blocks, self.max_blocks = min_blocks, max_blocks
        self.widths, self.max_downsamples, self.kinds = widths, max_downsamples, kinds

    # -- every space ----------------------------------------------------------------------------
    def load(self, data) -> Genome:
        try:
            return Genome.from_json(data)
        except InvalidGenomeError:
            raise
        except (TypeError, ValueError) as err:
            raise InvalidArchitectureError(f"not a block genome: {err}") from None

    def dump(self, arch) -> list[dict]:
        return Genome.from_json(arch).to_list()

    def hash(self, arch) -> str:
        return Genome.from_json(arch).hash()

    def sample(self, rng: random.Random) -> Genome:
        return sample_genome(rng, self.min_blocks, self.max_blocks, self.widths, self.max_downsamples, self.kinds)

    def within_limits(self, arch) -> bool:
        genome = Genome.from_json(arch)
        return self.min_blocks <= len(genome) <= self.max_blocks and genome.num_downsamples <= self.max_downsamples

    def build_network(self, arch, in_channels: int = 3, num_classes: int = 10):
        return build_network(Genome.from_json(arch), in_channels=in_channels, num_classes=num_classes)

    def tokens(self, arch) -> list[str]:
        return Genome.from_json(arch).kinds

    def describe(self, arch) -> str:
        return " / ".join(f"{b['kind']}({b['width']}{', s2' if b['stride'] == 2 else ''})"
                          for b in Genome.from_json(arch))

    def config(self) -> dict:
        return {"min_blocks": self.min_blocks, "max_blocks": self.max_blocks, "widths": list(self.widths),
                "max_downsamples": self.max_downsamples, "kinds": list(self.kinds)}

    # -- evolvable: crossover -----------------------------------------------------------------
    def _cut_pairs(self, p1: Genome, p2: Genome) -> list[tuple[int, int]]:
        n1, n2 = len(p1), len(p2)
        s1 = [0]
        for b in p1:
            s1.append(s1[-1] + (b["stride"] == 2))
        s2 = [0]
        for b in p2:
            s2.append(s2[-1] + (b["stride"] == 2))
        cuts1 = range(1, n1) if n1 >= 2 else range(0, n1 + 1)
        cuts2 = range(1, n2) if n2 >= 2 else range(0, n2 + 1)
        lo, hi, dmax = self.min_blocks, self.max_blocks, self.max_downsamples
        pairs = []
        for c1 in cuts1:
            for c2 in cuts2:
                len1, len2 = c1 + n2 - c2, c2 + n1 - c1
                if not (lo <= len1 <= hi and lo <= len2 <= hi):
                    continue
                if s1[c1] + s2[n2] - s2[c2] > dmax or s2[c2] + s1[n1] - s1[c1] > dmax:
                    continue
                pairs.append((c1, c2))
        return pairs

    def crossover(self, a, b, rng: random.Random) -> tuple[Genome, Genome] | None:
        """Two children (module doc), or None when no cut-point pair keeps the limits."""
        p1, p2 = Genome.from_json(a), Genome.from_json(b)
        pairs = self._cut_pairs(p1, p2)
        if not pairs:
            return None
        c1, c2 = rng.choice(pairs)
        b1, b2 = p1.to_list(), p2.to_list()
        return Genome(b1[:c1] + b2[c2:]), Genome(b2[:c2] + b1[c1:])

    # -- evolvable: mutation ------------------------------------------------------------------
    def mutate(self, arch, rng: random.Random) -> tuple[Genome, str | None]:
        """``(mutated genome, "add" | "remove" | "alter")``, or ``(genome, None)`` if no
        operation can change it within the limits."""
        genome = Genome.from_json(arch)
        ops = ["add", "remove", "alter"]
        while ops:
            op = rng.choice(ops)
            ops.remove(op)
            blocks = genome.to_list()
            changed = getattr(self, f"_mutate_{op}")(blocks, rng)
            if changed:
                result = Genome(blocks)
                if result != genome:
                    return result, op
        return genome, None

    def _neighbour_widths(self, blocks: list[dict], position: int) -> tuple[int | None, int | None]:
        """(incoming width, outgoing width) around a block placed at ``position`` whose old
        occupant (if any) is excluded by the caller."""
        prev = blocks[position - 1]["width"] if position > 0 else None
        nxt = blocks[position]["width"] if position < len(blocks) else None
        return prev, nxt

    def _fitting_width(self, kind: str, stride: int, prev: int | None, nxt: int | None,
                       rng: random.Random, exclude: int | None = None) -> int:
        if not changes_width(kind, stride) and prev is not None:
            return prev
        known = [w for w in (prev, nxt) if w is not None]
        if known:
            lo, hi = min(known), max(known)
            options = sorted(set(known) | {w for w in self.widths if lo <= w <= hi})
        else:
            options = sorted(set(self.widths))
        if exclude is not None:
            options = [w for w in options if w != exclude] or sorted(set(self.widths) - {exclude}) or options
        return rng.choice(options)

    def _pick_kind(self, stride: int, rng: random.Random, exclude: str | None = None) -> str:
        pool = [k for k in self.kinds if k != exclude] or list(self.kinds)
        if stride == 2:
            pool = [k for k in pool if block_kind(k).downsamples] or pool
        return rng.choice(pool)

    def _mutate_add(self, blocks: list[dict], rng: random.Random) -> bool:
        if len(blocks) >= self.max_blocks:
            return False
        downsamples = sum(b["stride"] == 2 for b in blocks)
        position = rng.randint(0, len(blocks))
        stride = 2 if downsamples < self.max_downsamples and rng.random() < ADD_STRIDE2_PROB else 1
        kind = self._pick_kind(stride, rng)
        prev, nxt = self._neighbour_widths(blocks, position)
        width = self._fitting_width(kind, stride, prev, nxt, rng)
        blocks.insert(position, make_block(kind, width, stride, rng))
        return True

    def _mutate_remove(self, blocks: list[dict], rng: random.Random) -> bool:
        if len(blocks) <= self.min_blocks or len(blocks) <= 1:
            return False
        del blocks[rng.randrange(len(blocks))]
        return True

    def _mutate_alter(self, blocks: list[dict], rng: random.Random) -> bool:
        index = rng.randrange(len(blocks))
        old = blocks[index]
        others_down = sum(b["stride"] == 2 for i, b in enumerate(blocks) if i != index)
        can_flip = old["stride"] == 2 or others_down < self.max_downsamples
        prev = blocks[index - 1]["width"] if index > 0 else None
        nxt = blocks[index + 1]["width"] if index + 1 < len(blocks) else None
        for _ in range(DEDUP_RETRIES):
            change_kind = rng.random() < 0.5
            change_width = rng.random() < 0.5
            change_stride = can_flip and rng.random() < 0.25
            stride = (3 - old["stride"]) if change_stride else old["stride"]
            if stride == 2 and others_down >= self.max_downsamples:  # a parent over the limit
                stride = 1
            kind = self._pick_kind(stride, rng, exclude=old["kind"]) if change_kind else old["kind"]
            if change_width:
                width = self._fitting_width(kind, stride, prev, nxt, rng, exclude=old["width"])
            elif change_kind and not changes_width(kind, stride) and prev is not None:
                width = prev  # a width-preserving kind takes the incoming width
            else:
                width = old["width"]
            if change_kind or change_width or change_stride:
                new = make_block(kind, width, stride, rng, **block_params(old))
            else:  # re-sample the kind's parameters
                new = make_block(kind, width, stride, rng)
            if new != old:
                blocks[index] = new
                return True
        return False

    # -- evolvable: repair ----------------------------------------------------------------------
    def repair(self, arch, rng: random.Random) -> Genome:
        """``arch`` brought within the limits (module doc)."""
        blocks = Genome.from_json(arch).to_list()
        while len(blocks) > self.max_blocks:
            del blocks[rng.randrange(len(blocks))]
        while len(blocks) < self.min_blocks:
            position = rng.randint(0, len(blocks))
            kind = self._pick_kind(1, rng)
            prev, nxt = self._neighbour_widths(blocks, position)
            blocks.insert(position, make_block(kind, self._fitting_width(kind, 1, prev, nxt, rng), 1, rng))
        while True:
            down = [i for i, b in enumerate(blocks) if b["stride"] == 2]
            if len(down) <= self.max_downsamples:
                break
            i = rng.choice(down)
            b = blocks[i]
            blocks[i] = make_block(b["kind"], b["width"], 1, rng, **block_params(b))
        return Genome(blocks)

    # -- rewritable -----------------------------------------------------------------------------
    def units(self, arch) -> int:
        return len(Genome.from_json(arch))

    def alternatives(self, arch, index: int) -> list[dict]:
        block = Genome.from_json(arch)[index]
        return candidate_blocks(block["width"], block["stride"], self.kinds)

    def with_unit(self, arch, index: int, unit) -> Genome:
        return Genome.from_json(arch).with_block(index, unit)

    def network_layers(self, arch, in_channels: int = 3, image_size: int = 32, num_classes: int = 10) -> list:
        from .encoding import trace_factory
        from .genome_network import GenomeNetwork

        genome = Genome.from_json(arch)
        layers = trace_factory(lambda: GenomeNetwork(genome, in_channels, num_classes, init_weights=False),
                               (in_channels, image_size, image_size))
        return [layer.record for layer in layers]

    def unit_label(self, unit) -> str | None:
        return unit["kind"] if isinstance(unit, Mapping) else None
