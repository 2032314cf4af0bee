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
* :class:`RandomSearch` (``"random"``): fresh draws of the space each generation; the
  population is the best seen so far.
* :class:`~gptnas_hf.search.regularized_evolution.RegularizedEvolution` (``"rea"``): Real et
  al.'s aging evolution, the field's standard baseline, with NAS-Bench-201's settings.

Others plug in with :func:`register_strategy` and are made by name with
:func:`create_strategy`.

Every strategy searches a :class:`~gptnas_hf.search_space_protocol.SearchSpace` (``space``):
the block genome (:class:`~gptnas_hf.space_blocks.BlockSpace`, the default, made from
``min_blocks``, ``max_blocks``, ``widths``, ``max_downsamples`` and ``kinds``), NAS-Bench-201's
cells or any registered space; it samples, mutates, crosses and repairs only through it. A
proposal is always a valid architecture of the space; one whose parent already broke a limit
(e.g. a reconstructed genome) is repaired (origin gets ``+repair``). Proposals of one
generation are distinct from each other and from the population passed in, where a few retries
manage it (the searcher's evaluation cache, keyed by the space's hash, dedups the rest).
"""

from __future__ import annotations

import math
import random
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..search_space import Genome
from ..search_space_protocol import SearchSpace
from ..space_blocks import BlockSpace
from ..value_checks import is_int

#: the strategies' defaults (paper section 5.1), the one source of truth for the search settings
DEFAULT_POPULATION_SIZE = 30
DEFAULT_CROSSOVER_RATE = 0.7
DEFAULT_MUTATION_RATE = 0.5
#: proposal attempts per offspring slot before a duplicate is accepted
DEDUP_RETRIES = 10

__all__ = [
    "Individual",
    "Proposal",
    "SearchStrategy",
    "GeneticAlgorithm",
    "RandomSearch",
    "STRATEGIES",
    "register_strategy",
    "strategy_class",
    "create_strategy",
    "strategy_names",
    "best_individual",
]

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
        # the architecture is kept as given: a space's architectures may be lists or strings too
        # (read a written one with ``space.load`` or :meth:`from_dict`)
        self.fitness = _check_fitness(self.fitness)
        self.reconstructed = bool(self.reconstructed)
        self.origin = str(self.origin)
        self.meta = dict(self.meta or {})

    def to_dict(self, space: SearchSpace | None = None) -> dict:
        """A JSON-serialisable dict (the architecture written by ``space``, default the block
        genome); ``hash`` is informative (ignored by :meth:`from_dict`)."""
        space = space or _BLOCKS
        return {
            "genome": space.dump(self.genome),
            "hash": space.hash(self.genome),
            "fitness": self.fitness,
            "reconstructed": self.reconstructed,
            "origin": self.origin,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, d: Mapping, space: SearchSpace | None = None) -> "Individual":
        if not isinstance(d, Mapping) or "genome" not in d:
            raise ValueError(f"expected a dict with a 'genome', got {d!r:.200}")
        return cls(genome=(space or _BLOCKS).load(d["genome"]), fitness=d.get("fitness"), reconstructed=d.get("reconstructed", False),
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
            raise ValueError(f"{what}[{i}] (genome {_label(ind.genome)}) has no fitness; evaluate it first")
        _check_fitness(ind.fitness, f"{what}[{i}].fitness")
        out.append(ind)
    return out


def best_individual(individuals: Iterable[Individual]) -> Individual:
    """The fittest evaluated individual (the first of equals); ValueError if there is none."""
    evaluated = [ind for ind in individuals if ind.fitness is not None]
    if not evaluated:
        raise ValueError("no evaluated individual")
    return max(evaluated, key=lambda ind: ind.fitness)


def _label(arch) -> str:
    """A short name of an architecture for messages: a genome's hash prefix, else its text."""
    return arch.hash()[:10] if isinstance(arch, Genome) else str(arch)[:80]


def _dedup_best(individuals: Sequence[Individual], space: SearchSpace | None = None
                ) -> tuple[list[Individual], list[Individual]]:
    """(unique, duplicates): one individual per architecture hash, the fittest (the first of
    equals), in first-seen order; the rest in order."""
    space = space or _BLOCKS
    best: dict[str, int] = {}
    for i, ind in enumerate(individuals):
        h = space.hash(ind.genome)
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
    :meth:`config` returns the constructor arguments (JSON-serialisable).

    Two class attributes say what the strategy needs, for its constructor and the recipe checks
    alike: ``min_population_size`` (the smallest population it searches with, and why:
    :meth:`check_population_size`) and ``recipe_settings`` (the search settings beyond the
    population size and the space that the searcher passes to its constructor)."""

    name: str = ""
    population_size: int
    #: the smallest ``population_size`` the strategy searches with
    min_population_size: int = 1
    #: why it needs that many (for the message)
    population_rule: str = ""
    #: the :class:`~gptnas_hf.search.config.SearchConfig` settings its constructor takes
    recipe_settings: tuple[str, ...] = ()

    @classmethod
    def population_problem(cls, population_size) -> str | None:
        """What is wrong with ``population_size`` for this strategy, or ``None``."""
        if is_int(population_size) and population_size >= cls.min_population_size:
            return None
        least = f"{'' if is_int(population_size) else 'an int of '}at least {cls.min_population_size}"
        why = f" ({cls.population_rule})" if cls.population_rule else ""
        return f"must be {least} for the {cls.name or cls.__name__!r} strategy{why}, got {population_size!r}"

    @classmethod
    def check_population_size(cls, population_size) -> int:
        """``population_size`` if the strategy searches with it, else a ValueError saying why not."""
        problem = cls.population_problem(population_size)
        if problem:
            raise ValueError(f"population_size {problem}")
        return population_size

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
        """The next population from the evaluated parents and offspring (in the strategy's own
        order: best first for the GA and random search, oldest first for regularized evolution)."""

    def first_population(self, evaluated: list[Individual], rng: random.Random) -> list[Individual]:
        """The population after generation 0 is evaluated: by default its ``population_size``
        fittest, best first."""
        return sorted(evaluated, key=lambda ind: -ind.fitness)[: self.population_size]

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
#: the block genome with the search's default limits (what an Individual is when no space is named)
_BLOCKS = BlockSpace()


class _SpaceStrategy:
    """What a strategy searches: a :class:`~gptnas_hf.search_space_protocol.SearchSpace`
    (``space``), or the block genome within ``min_blocks``, ``max_blocks``, ``widths``,
    ``max_downsamples`` and ``kinds`` (a :class:`~gptnas_hf.space_blocks.BlockSpace`; these
    limits belong to the space, so they cannot be given with another one)."""

    def _init_space(self, space, population_size, **limits):
        self.check_population_size(population_size)
        given = {k: v for k, v in limits.items() if v is not None}
        if space is None:
            space = BlockSpace(**given)
        elif given:
            raise ValueError(f"{', '.join(sorted(given))}: limits of the block space; the {space.name!r} space "
                             "takes its own settings")
        if not isinstance(space, SearchSpace):
            raise TypeError(f"space must be a SearchSpace, got {type(space).__name__}")
        self.space = space
        self.population_size = population_size

    def __getattr__(self, name):  # the block space's limits, read as before (strategy.widths, ...)
        if name in ("min_blocks", "max_blocks", "widths", "max_downsamples", "kinds") and "space" in self.__dict__:
            return getattr(self.__dict__["space"], name)
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def _limits_config(self) -> dict:
        return {"population_size": self.population_size, **self.space.config()}

    def sample(self, rng: random.Random):
        """One random architecture of the space."""
        return self.space.sample(rng)

    def within_limits(self, genome) -> bool:
        """Whether ``genome`` keeps the space's limits."""
        return self.space.within_limits(genome)

    def _sample_distinct(self, n: int, seen: set[str], rng: random.Random) -> list:
        out: list = []
        attempts = 0
        while len(out) < n:
            attempts += 1
            genome = self.sample(rng)
            h = self.space.hash(genome)
            if h in seen and attempts <= DEDUP_RETRIES * n:
                continue
            seen.add(h)
            out.append(genome)
        return out


# -- genetic algorithm ---------------------------------------------------------------------
class GeneticAlgorithm(_SpaceStrategy, SearchStrategy):
    """AE-CNN's genetic algorithm, on any evolvable search space (the block genome by default).

    * **Initial population**: ``population_size`` distinct draws of the space (at least 2:
      :attr:`min_population_size`).
    * **Offspring** (:meth:`propose_with_origins`): ``population_size`` of them, made in
      pairs. Two parents by tournament (the fitter of ``tournament_size`` distinct random
      individuals; binary by default), drawn again if both are the same individual. With
      probability ``crossover_rate`` they are crossed (the space's crossover; for the block
      genome one-point with an independent cut point in each parent, :mod:`gptnas_hf.space_blocks`),
      else copied; each child is then mutated (the space's mutation; for the block genome add /
      remove / alter) with probability ``mutation_rate``, and repaired when it breaks the
      space's limits. A child equal to a member of the population or to an earlier child of
      this generation is dropped and another pair bred, ``DEDUP_RETRIES`` times per slot,
      after which duplicates are accepted.
    * **Environmental selection** (:meth:`select`): parents + offspring, one per genome
      (the fitter), the ``elitism`` fittest kept, the rest of the ``population_size`` filled
      by tournaments without replacement (a winner leaves the pool, the losers stay);
      duplicates are used only if there are too few distinct genomes. Best first.
    """

    name = "ga"
    min_population_size = 2
    population_rule = "a tournament chooses between individuals and crossover mates two parents"
    recipe_settings = ("crossover_rate", "mutation_rate")

    def __init__(self, population_size: int = DEFAULT_POPULATION_SIZE, crossover_rate: float = DEFAULT_CROSSOVER_RATE,
                 mutation_rate: float = DEFAULT_MUTATION_RATE, min_blocks: int | None = None,
                 max_blocks: int | None = None, widths: Sequence[int] | None = None,
                 max_downsamples: int | None = None, tournament_size: int = 2, elitism: int = 1,
                 kinds: Iterable[str] | None = None, space: SearchSpace | None = None):
        self._init_space(space, population_size, min_blocks=min_blocks, max_blocks=max_blocks, widths=widths,
                         max_downsamples=max_downsamples, kinds=kinds)
        for name, rate in (("crossover_rate", crossover_rate), ("mutation_rate", mutation_rate)):
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be a number in [0, 1], got {rate!r}")
        if not is_int(tournament_size) or tournament_size < 1:
            raise ValueError(f"tournament_size must be a positive int, got {tournament_size!r}")
        if not is_int(elitism) or not 0 <= elitism <= population_size:
            raise ValueError(f"elitism must be an int in 0..population_size ({population_size}), got {elitism!r}")
        self.crossover_rate, self.mutation_rate = float(crossover_rate), float(mutation_rate)
        self.tournament_size, self.elitism = tournament_size, elitism

    def config(self) -> dict:
        return {**self._limits_config(), "crossover_rate": self.crossover_rate,
                "mutation_rate": self.mutation_rate, "tournament_size": self.tournament_size,
                "elitism": self.elitism}

    # ---- generation 0 ----
    def initial_population(self, rng: random.Random) -> list:
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
        seen = {self.space.hash(ind.genome) for ind in population}
        out: list[Proposal] = []
        attempts = 0
        while len(out) < self.population_size:
            attempts += 1
            for child in self._breed(population, rng):
                if len(out) >= self.population_size:
                    break
                h = self.space.hash(child.genome)
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
            pair = self.space.crossover(p1, p2, rng)
            children = [Proposal(c, "crossover") for c in pair] if pair else [Proposal(p1, "copy"), Proposal(p2, "copy")]
        else:
            children = [Proposal(p1, "copy"), Proposal(p2, "copy")]
        out = []
        for genome, origin in children:
            if rng.random() < self.mutation_rate:
                genome, op = self.space.mutate(genome, rng)
                if op:
                    origin = f"mutation:{op}" if origin == "copy" else f"{origin}+mutation:{op}"
            if not self.within_limits(genome):
                genome = self.space.repair(genome, rng)
                origin += "+repair"
            out.append(Proposal(genome, origin))
        return out

    def crossover(self, p1, p2, rng: random.Random) -> tuple:
        """The space's crossover of ``p1`` and ``p2``; the parents themselves if it has none
        that keeps the limits."""
        p1, p2 = self.space.load(p1), self.space.load(p2)
        return self.space.crossover(p1, p2, rng) or (p1, p2)

    def mutate(self, genome, rng: random.Random) -> tuple:
        """``(mutated genome, what the mutation did)``, or ``(genome, None)`` if no mutation
        can change it within the limits (the space's mutation)."""
        return self.space.mutate(self.space.load(genome), rng)

    def repair(self, genome, rng: random.Random):
        """``genome`` brought within the space's limits (for parents that broke them, e.g.
        after reconstruction)."""
        return self.space.repair(self.space.load(genome), rng)

    # ---- environmental selection ----
    def select(self, population: list[Individual], offspring: list[Individual],
               rng: random.Random) -> list[Individual]:
        pool = _require_fitness(population, "population") + _require_fitness(offspring, "offspring")
        unique, duplicates = _dedup_best(pool, self.space)
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
class RandomSearch(_SpaceStrategy, SearchStrategy):
    """Random search: every generation ``population_size`` fresh draws of the space (distinct
    from each other and from the population, a few retries permitting); the population is the
    ``population_size`` best distinct genomes seen so far (parents + offspring), so the best so
    far never gets worse. Best first. Any population size from 1: no draw depends on it."""

    name = "random"

    def __init__(self, population_size: int = DEFAULT_POPULATION_SIZE, min_blocks: int | None = None,
                 max_blocks: int | None = None, widths: Sequence[int] | None = None,
                 max_downsamples: int | None = None, kinds: Iterable[str] | None = None,
                 space: SearchSpace | None = None):
        self._init_space(space, population_size, min_blocks=min_blocks, max_blocks=max_blocks, widths=widths,
                         max_downsamples=max_downsamples, kinds=kinds)

    def config(self) -> dict:
        return self._limits_config()

    def initial_population(self, rng: random.Random) -> list:
        return self._sample_distinct(self.population_size, set(), rng)

    def propose_with_origins(self, population: list[Individual], rng: random.Random) -> list[Proposal]:
        seen = {self.space.hash(ind.genome) for ind in population}
        return [Proposal(g, "random") for g in self._sample_distinct(self.population_size, seen, rng)]

    def select(self, population: list[Individual], offspring: list[Individual],
               rng: random.Random) -> list[Individual]:
        pool = _require_fitness(population, "population") + _require_fitness(offspring, "offspring")
        unique, duplicates = _dedup_best(pool, self.space)
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


def _register_builtin() -> None:
    from .regularized_evolution import RegularizedEvolution  # noqa: F401 - registers "rea"


def strategy_names() -> list[str]:
    """The registered strategies, the built-in ones included."""
    _register_builtin()
    return sorted(STRATEGIES)


def strategy_class(name: str) -> type[SearchStrategy]:
    """The strategy class registered as ``name``; a ValueError naming the registered ones."""
    _register_builtin()
    if name not in STRATEGIES:
        raise ValueError(f"unknown search strategy {name!r}; available: {', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[name]


def create_strategy(name: str, **kwargs: Any) -> SearchStrategy:
    """A strategy by registered name, e.g. ``create_strategy("ga", population_size=30)``."""
    return strategy_class(name)(**kwargs)

