"""Search strategies: what the searcher asks for new genomes and tells the results.

A strategy is pure: it never builds or trains a network, keeps no hidden randomness (every
draw comes from the ``random.Random`` the caller passes, so equal seeds give equal runs)
and holds no state between generations beyond its configuration (the population the
searcher passes back *is* the state). One generation of the searcher::

    genomes = strategy.initial_population(rng)                  # generation 0
    population = [Individual(g, origin="init") for g in genomes]
    ... reconstruct / evaluate each: ind.genome, ind.reconstructed, ind.fitness ...
    for generation in range(1, generations + 1):
        proposals = strategy.propose_with_origins(population, rng)   # or .propose()
        offspring = [Individual(p.genome, origin=p.origin) for p in proposals]
        ... reconstruct / evaluate each ...
        population = strategy.select(population, offspring, rng)

Strategies:

* :class:`GeneticAlgorithm` (``"ga"``): AE-CNN's GA (Sun et al., "Completely Automated CNN
  Architecture Design Based on Blocks", IEEE TNNLS 2020), which GPT-NAS searches with:
  binary-tournament parents, one-point crossover with an independent cut point in each
  (variable-length) parent, add / remove / alter mutation, elitist environmental selection.
* :class:`RandomSearch` (``"random"``): fresh :func:`~gptnas_hf.search_space.sample_genome`
  draws each generation; the population is the best seen so far.

Others plug in with :func:`register_strategy` and are made by name with
:func:`create_strategy`.

Limits every proposal keeps (both strategies): ``min_blocks``..``max_blocks`` blocks and at
most ``max_downsamples`` stride-2 blocks. A proposal is always a valid :class:`Genome`; one
whose parent already broke a limit (e.g. a reconstructed genome) is repaired (origin gets
``+repair``). Proposals of one generation are distinct from each other and from the
population passed in, where a few retries manage it (the searcher's evaluation cache, keyed
by :meth:`Genome.hash`, dedups the rest).
"""

from __future__ import annotations

import math
import random
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..search_space import (
    BLOCK_LABELS,
    DEFAULT_MAX_BLOCKS,
    DEFAULT_MAX_DOWNSAMPLES,
    DEFAULT_MIN_BLOCKS,
    DEFAULT_WIDTHS,
    KIND_PARAMS,
    MAX_WIDTH,
    STRIDE_NATIVE_KINDS,
    Genome,
    changes_width,
    make_block,
    sample_genome,
)

#: the strategies' defaults (paper section 5.1), the one source of truth for the search settings
DEFAULT_POPULATION_SIZE = 30
DEFAULT_CROSSOVER_RATE = 0.7
DEFAULT_MUTATION_RATE = 0.5

__all__ = [
    "Individual",
    "Proposal",
    "SearchStrategy",
    "GeneticAlgorithm",
    "RandomSearch",
    "STRATEGIES",
    "register_strategy",
    "create_strategy",
    "best_individual",
]

_BASE_KEYS = ("kind", "width", "stride")
#: probability that a block added by mutation is stride 2 (when the downsample limit allows)
ADD_STRIDE2_PROB = 0.2
#: proposal attempts per offspring slot before a duplicate is accepted
DEDUP_RETRIES = 10


# -- individuals ---------------------------------------------------------------------------
def _check_fitness(value, what: str = "fitness") -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{what} must be a number or None, got {value!r}")
    return float(value)


@dataclass
class Individual:
    """One member of a population: a genome, its fitness (validation accuracy in [0, 1];
    ``None`` until evaluated), whether the GPT reconstruction pipeline rewrote it, where it
    came from (``"init"``, ``"random"``, ``"crossover"``, ``"copy"``, ``"mutation:add"``,
    ``"crossover+mutation:alter"``, ...) and free-form JSON-serialisable ``meta`` (e.g.
    parameter count, training time, the genome before reconstruction)."""

    genome: Genome
    fitness: float | None = None
    reconstructed: bool = False
    origin: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.genome = Genome.from_json(self.genome)  # accepts a Genome, list of dicts or JSON
        self.fitness = _check_fitness(self.fitness)
        self.reconstructed = bool(self.reconstructed)
        self.origin = str(self.origin)
        self.meta = dict(self.meta or {})

    def to_dict(self) -> dict:
        """A JSON-serialisable dict; ``hash`` is informative (ignored by :meth:`from_dict`)."""
        return {
            "genome": self.genome.to_list(),
            "hash": self.genome.hash(),
            "fitness": self.fitness,
            "reconstructed": self.reconstructed,
            "origin": self.origin,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "Individual":
        if not isinstance(d, Mapping) or "genome" not in d:
            raise ValueError(f"expected a dict with a 'genome', got {d!r:.200}")
        return cls(genome=d["genome"], fitness=d.get("fitness"), reconstructed=d.get("reconstructed", False),
                   origin=d.get("origin", ""), meta=d.get("meta") or {})


class Proposal(NamedTuple):
    """A proposed genome and how it was made (an :attr:`Individual.origin`)."""

    genome: Genome
    origin: str


def _require_fitness(individuals: Iterable[Individual], what: str) -> list[Individual]:
    out = []
    for i, ind in enumerate(individuals):
        if not isinstance(ind, Individual):
            raise TypeError(f"{what}[{i}] is a {type(ind).__name__}, not an Individual")
        if ind.fitness is None:
            raise ValueError(f"{what}[{i}] (genome {ind.genome.hash()[:10]}) has no fitness; evaluate it first")
        _check_fitness(ind.fitness, f"{what}[{i}].fitness")
        out.append(ind)
    return out


def best_individual(individuals: Iterable[Individual]) -> Individual:
    """The fittest evaluated individual (the first of equals); ValueError if there is none."""
    evaluated = [ind for ind in individuals if ind.fitness is not None]
    if not evaluated:
        raise ValueError("no evaluated individual")
    return max(evaluated, key=lambda ind: ind.fitness)


def _dedup_best(individuals: Sequence[Individual]) -> tuple[list[Individual], list[Individual]]:
    """(unique, duplicates): one individual per genome hash, the fittest (the first of
    equals), in first-seen order; the rest in order."""
    best: dict[str, int] = {}
    for i, ind in enumerate(individuals):
        h = ind.genome.hash()
        if h not in best or ind.fitness > individuals[best[h]].fitness:
            best[h] = i
    keep = set(best.values())
    return ([ind for i, ind in enumerate(individuals) if i in keep],
            [ind for i, ind in enumerate(individuals) if i not in keep])


def _by_fitness(individuals: Iterable[Individual]) -> list[Individual]:
    return sorted(individuals, key=lambda ind: -ind.fitness)  # stable: ties keep their order


# -- the interface -------------------------------------------------------------------------
class SearchStrategy(ABC):
    """The interface the searcher drives. Subclasses set ``name`` and implement
    :meth:`initial_population`, :meth:`propose_with_origins` and :meth:`select`;
    :meth:`config` returns the constructor arguments (JSON-serialisable)."""

    name: str = ""
    population_size: int

    @abstractmethod
    def initial_population(self, rng: random.Random) -> list[Genome]:
        """Generation 0's genomes (origin ``"init"``)."""

    @abstractmethod
    def propose_with_origins(self, population: list[Individual], rng: random.Random) -> list[Proposal]:
        """The next generation's offspring, each with its origin."""

    def propose(self, population: list[Individual], rng: random.Random) -> list[Genome]:
        """The next generation's offspring genomes (see :meth:`propose_with_origins`)."""
        return [p.genome for p in self.propose_with_origins(population, rng)]

    @abstractmethod
    def select(self, population: list[Individual], offspring: list[Individual],
               rng: random.Random) -> list[Individual]:
        """The next population from the evaluated parents and offspring (best first)."""

    def config(self) -> dict:
        return {}

    def state_dict(self) -> dict:
        """What a checkpoint stores (strategies here keep no state beyond their config)."""
        return {"name": self.name, "config": self.config()}

    def load_state_dict(self, state: Mapping) -> None:
        """Check a :meth:`state_dict` belongs to this strategy; a different config only warns
        (the current one is kept, e.g. a larger population on resume)."""
        if not isinstance(state, Mapping):
            raise TypeError(f"expected a dict, got {type(state).__name__}")
        name = state.get("name", self.name)
        if name != self.name:
            raise ValueError(f"state is for strategy {name!r}, not {self.name!r}")
        saved = state.get("config")
        if saved is not None and dict(saved) != self.config():
            diff = sorted(k for k in set(saved) | set(self.config()) if saved.get(k) != self.config().get(k))
            warnings.warn(f"{self.name}: resuming with a different config ({', '.join(diff)}); keeping the current one",
                          stacklevel=2)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


# -- shared configuration ------------------------------------------------------------------
def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _GenomeLimits:
    """The genome space a strategy searches: block count, widths, downsample limit, kinds."""

    def _init_limits(self, population_size, min_blocks, max_blocks, widths, max_downsamples, kinds):
        if not _is_int(population_size) or population_size < 1:
            raise ValueError(f"population_size must be a positive int, got {population_size!r}")
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
        self.population_size = population_size
        self.min_blocks, self.max_blocks = min_blocks, max_blocks
        self.widths, self.max_downsamples, self.kinds = widths, max_downsamples, kinds

    def _limits_config(self) -> dict:
        return {"population_size": self.population_size, "min_blocks": self.min_blocks,
                "max_blocks": self.max_blocks, "widths": list(self.widths),
                "max_downsamples": self.max_downsamples, "kinds": list(self.kinds)}

    def _sample(self, rng: random.Random) -> Genome:
        return sample_genome(rng, self.min_blocks, self.max_blocks, self.widths, self.max_downsamples, self.kinds)

    def within_limits(self, genome: Genome) -> bool:
        """Whether ``genome`` keeps the block-count and downsample limits."""
        return self.min_blocks <= len(genome) <= self.max_blocks and genome.num_downsamples <= self.max_downsamples

    def _sample_distinct(self, n: int, seen: set[str], rng: random.Random) -> list[Genome]:
        out: list[Genome] = []
        attempts = 0
        while len(out) < n:
            attempts += 1
            genome = self._sample(rng)
            h = genome.hash()
            if h in seen and attempts <= DEDUP_RETRIES * n:
                continue
            seen.add(h)
            out.append(genome)
        return out


# -- genetic algorithm ---------------------------------------------------------------------
def _params(block: Mapping) -> dict:
    return {k: v for k, v in block.items() if k not in _BASE_KEYS}


class GeneticAlgorithm(_GenomeLimits, SearchStrategy):
    """AE-CNN's genetic algorithm over variable-length block lists.

    * **Initial population**: ``population_size`` distinct :func:`sample_genome` draws.
    * **Offspring** (:meth:`propose_with_origins`): ``population_size`` of them, made in
      pairs. Two parents by tournament (the fitter of ``tournament_size`` distinct random
      individuals; binary by default), drawn again if both are the same individual. With
      probability ``crossover_rate`` they are crossed (:meth:`crossover`), else copied; each
      child is then mutated (:meth:`mutate`) with probability ``mutation_rate``. A child
      equal to a member of the population or to an earlier child of this generation is
      dropped and another pair bred, ``DEDUP_RETRIES`` times per slot, after which
      duplicates are accepted.
    * **Crossover**: one-point with an independent cut point in each parent:
      ``child1 = p1[:c1] + p2[c2:]``, ``child2 = p2[:c2] + p1[c1:]``, ``(c1, c2)`` uniform
      over the pairs (cuts strictly inside each parent) whose children both keep
      ``min_blocks``..``max_blocks`` blocks and ``max_downsamples``; with no such pair the
      parents are copied.
    * **Mutation**: one of add / remove / alter, uniformly among those that keep the limits
      (another is tried if the drawn one cannot change the genome). *add* inserts a block of
      a random kind at a random position (stride 2 with probability ``ADD_STRIDE2_PROB`` if
      the downsample limit allows, then a kind that downsamples natively) whose width fits
      its neighbours (the incoming width for width-preserving kinds, else one of ``widths``
      or the neighbours' widths between the two); *remove* drops a random block; *alter*
      rebuilds a random block with :func:`make_block`, changing its kind, width and/or
      stride (or, when none is drawn, re-sampling its parameters).
    * **Environmental selection** (:meth:`select`): parents + offspring, one per genome
      (the fitter), the ``elitism`` fittest kept, the rest of the ``population_size`` filled
      by tournaments without replacement (a winner leaves the pool, the losers stay);
      duplicates are used only if there are too few distinct genomes. Best first.
    """

    name = "ga"

    def __init__(self, population_size: int = DEFAULT_POPULATION_SIZE, crossover_rate: float = DEFAULT_CROSSOVER_RATE,
                 mutation_rate: float = DEFAULT_MUTATION_RATE, min_blocks: int = DEFAULT_MIN_BLOCKS,
                 max_blocks: int = DEFAULT_MAX_BLOCKS, widths: Sequence[int] = DEFAULT_WIDTHS,
                 max_downsamples: int = DEFAULT_MAX_DOWNSAMPLES, tournament_size: int = 2, elitism: int = 1,
                 kinds: Iterable[str] = BLOCK_LABELS):
        self._init_limits(population_size, min_blocks, max_blocks, widths, max_downsamples, kinds)
        for name, rate in (("crossover_rate", crossover_rate), ("mutation_rate", mutation_rate)):
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be a number in [0, 1], got {rate!r}")
        if not _is_int(tournament_size) or tournament_size < 1:
            raise ValueError(f"tournament_size must be a positive int, got {tournament_size!r}")
        if not _is_int(elitism) or not 0 <= elitism <= population_size:
            raise ValueError(f"elitism must be an int in 0..population_size ({population_size}), got {elitism!r}")
        self.crossover_rate, self.mutation_rate = float(crossover_rate), float(mutation_rate)
        self.tournament_size, self.elitism = tournament_size, elitism

    def config(self) -> dict:
        return {**self._limits_config(), "crossover_rate": self.crossover_rate,
                "mutation_rate": self.mutation_rate, "tournament_size": self.tournament_size,
                "elitism": self.elitism}

    # ---- generation 0 ----
    def initial_population(self, rng: random.Random) -> list[Genome]:
        return self._sample_distinct(self.population_size, set(), rng)

    # ---- offspring ----
    def tournament(self, individuals: Sequence[Individual], rng: random.Random) -> int:
        """Index of the fittest of ``tournament_size`` distinct random individuals (the first
        drawn of equals)."""
        k = min(self.tournament_size, len(individuals))
        if k < 1:
            raise ValueError("tournament over an empty population")
        picks = rng.sample(range(len(individuals)), k)
        return max(picks, key=lambda i: individuals[i].fitness)  # max keeps the first of equals

    def propose_with_origins(self, population: list[Individual], rng: random.Random) -> list[Proposal]:
        population = _require_fitness(population, "population")
        if not population:
            raise ValueError("cannot breed from an empty population")
        seen = {ind.genome.hash() for ind in population}
        out: list[Proposal] = []
        attempts = 0
        while len(out) < self.population_size:
            attempts += 1
            for child in self._breed(population, rng):
                if len(out) >= self.population_size:
                    break
                h = child.genome.hash()
                if h in seen and attempts <= DEDUP_RETRIES * self.population_size:
                    continue
                seen.add(h)
                out.append(child)
        return out

    def _breed(self, population: Sequence[Individual], rng: random.Random) -> list[Proposal]:
        i = self.tournament(population, rng)
        j = self.tournament(population, rng)
        for _ in range(DEDUP_RETRIES):
            if j != i or len(population) < 2:
                break
            j = self.tournament(population, rng)
        p1, p2 = population[i].genome, population[j].genome
        if rng.random() < self.crossover_rate:
            pair = self._crossover(p1, p2, rng)
            children = [Proposal(c, "crossover") for c in pair] if pair else [Proposal(p1, "copy"), Proposal(p2, "copy")]
        else:
            children = [Proposal(p1, "copy"), Proposal(p2, "copy")]
        out = []
        for genome, origin in children:
            if rng.random() < self.mutation_rate:
                genome, op = self._mutate(genome, rng)
                if op:
                    origin = f"mutation:{op}" if origin == "copy" else f"{origin}+mutation:{op}"
            if not self.within_limits(genome):
                genome = self.repair(genome, rng)
                origin += "+repair"
            out.append(Proposal(genome, origin))
        return out

    # ---- crossover ----
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

    def _crossover(self, p1: Genome, p2: Genome, rng: random.Random) -> tuple[Genome, Genome] | None:
        pairs = self._cut_pairs(p1, p2)
        if not pairs:
            return None
        c1, c2 = rng.choice(pairs)
        b1, b2 = p1.to_list(), p2.to_list()
        return Genome(b1[:c1] + b2[c2:]), Genome(b2[:c2] + b1[c1:])

    def crossover(self, p1, p2, rng: random.Random) -> tuple[Genome, Genome]:
        """One-point crossover with independent cut points (see the class docstring); the
        parents themselves if no cut-point pair keeps the limits."""
        p1, p2 = Genome.from_json(p1), Genome.from_json(p2)
        return self._crossover(p1, p2, rng) or (p1, p2)

    # ---- mutation ----
    def mutate(self, genome, rng: random.Random) -> tuple[Genome, str | None]:
        """``(mutated genome, "add" | "remove" | "alter")``, or ``(genome, None)`` if no
        operation can change it within the limits."""
        return self._mutate(Genome.from_json(genome), rng)

    def _mutate(self, genome: Genome, rng: random.Random) -> tuple[Genome, str | None]:
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
            pool = [k for k in pool if k in STRIDE_NATIVE_KINDS] or pool
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
                new = make_block(kind, width, stride, rng, **_params(old))
            else:  # re-sample the kind's parameters
                new = make_block(kind, width, stride, rng)
            if new != old:
                blocks[index] = new
                return True
        return False

    # ---- repair ----
    def repair(self, genome, rng: random.Random) -> Genome:
        """``genome`` brought within the limits (for parents that broke them, e.g. after
        reconstruction): random blocks removed while too long, random stride-1 blocks added
        while too short, random stride-2 blocks set to stride 1 while over the downsample limit."""
        blocks = Genome.from_json(genome).to_list()
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
            blocks[i] = make_block(b["kind"], b["width"], 1, rng, **_params(b))
        return Genome(blocks)

    # ---- environmental selection ----
    def select(self, population: list[Individual], offspring: list[Individual],
               rng: random.Random) -> list[Individual]:
        pool = _require_fitness(population, "population") + _require_fitness(offspring, "offspring")
        unique, duplicates = _dedup_best(pool)
        n = self.population_size
        chosen = _by_fitness(unique)[: self.elitism]
        taken = {id(ind) for ind in chosen}
        candidates = [ind for ind in unique if id(ind) not in taken]
        while len(chosen) < n and (candidates or duplicates):
            if not candidates:  # too few distinct genomes: fall back on the duplicates
                candidates, duplicates = duplicates, []
            winner = self.tournament(candidates, rng)
            chosen.append(candidates.pop(winner))
        return _by_fitness(chosen)


# -- random search -------------------------------------------------------------------------
class RandomSearch(_GenomeLimits, SearchStrategy):
    """Random search: every generation ``population_size`` fresh :func:`sample_genome`
    draws (distinct from each other and from the population, a few retries permitting); the
    population is the ``population_size`` best distinct genomes seen so far (parents +
    offspring), so the best so far never gets worse. Best first."""

    name = "random"

    def __init__(self, population_size: int = DEFAULT_POPULATION_SIZE, min_blocks: int = DEFAULT_MIN_BLOCKS,
                 max_blocks: int = DEFAULT_MAX_BLOCKS, widths: Sequence[int] = DEFAULT_WIDTHS,
                 max_downsamples: int = DEFAULT_MAX_DOWNSAMPLES,
                 kinds: Iterable[str] = BLOCK_LABELS):
        self._init_limits(population_size, min_blocks, max_blocks, widths, max_downsamples, kinds)

    def config(self) -> dict:
        return self._limits_config()

    def initial_population(self, rng: random.Random) -> list[Genome]:
        return self._sample_distinct(self.population_size, set(), rng)

    def propose_with_origins(self, population: list[Individual], rng: random.Random) -> list[Proposal]:
        seen = {ind.genome.hash() for ind in population}
        return [Proposal(g, "random") for g in self._sample_distinct(self.population_size, seen, rng)]

    def select(self, population: list[Individual], offspring: list[Individual],
               rng: random.Random) -> list[Individual]:
        pool = _require_fitness(population, "population") + _require_fitness(offspring, "offspring")
        unique, duplicates = _dedup_best(pool)
        return (_by_fitness(unique) + _by_fitness(duplicates))[: self.population_size]


# -- registry ------------------------------------------------------------------------------
STRATEGIES: dict[str, type[SearchStrategy]] = {"ga": GeneticAlgorithm, "random": RandomSearch}


def register_strategy(name: str, cls: type[SearchStrategy] | None = None, *, overwrite: bool = False):
    """Register a :class:`SearchStrategy` subclass under ``name`` (also usable as a class
    decorator: ``@register_strategy("mine")``). Re-registering a name for another class
    needs ``overwrite=True``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"strategy name must be a non-empty string, got {name!r}")

    def register(cls):
        if not (isinstance(cls, type) and issubclass(cls, SearchStrategy)):
            raise TypeError(f"{cls!r} is not a SearchStrategy subclass")
        if name in STRATEGIES and STRATEGIES[name] is not cls and not overwrite:
            raise ValueError(f"strategy {name!r} is already registered ({STRATEGIES[name].__name__}); "
                             "pass overwrite=True to replace it")
        STRATEGIES[name] = cls
        return cls

    return register if cls is None else register(cls)


def create_strategy(name: str, **kwargs: Any) -> SearchStrategy:
    """A strategy by registered name, e.g. ``create_strategy("ga", population_size=30)``."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown search strategy {name!r}; available: {', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[name](**kwargs)
