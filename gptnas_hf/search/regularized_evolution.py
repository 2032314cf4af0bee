"""Regularized ("aging") evolution as a :class:`~gptnas_hf.search.strategies.SearchStrategy`.

Real, Aggarwal, Huang, Le, "Regularized Evolution for Image Classifier Architecture Search",
AAAI 2019 (Algorithm 1). The population is a queue in age order: each cycle samples
``sample_size`` members uniformly at random, mutates the fittest of the sample into a child,
appends the child and removes the *oldest* member (not the worst), so every architecture
dies young unless its descendants keep being selected: the regularization.

It works on any search space implementing the protocol's evolvable tier
(:mod:`gptnas_hf.search_space_protocol`): ``sample`` for the initial population, ``mutate``
for children and ``within_limits`` / ``repair`` (a parent that broke the space's limits, e.g.
after reconstruction, gives a repaired child whose origin ends ``+repair``). It only reads
``genome`` and ``fitness`` of the individuals it is given.

**Defaults.** NAS-Bench-201's published REA settings: population size 10, sample (tournament)
size 3. Source: the code released with NAS-Bench-201 (Dong and Yang, ICLR 2020),
``D-X-Y/AutoDL-Projects``: ``scripts-search/NAS-Bench-201-algos/R-EA.sh`` runs
``exps/NAS-Bench-201-algos/R_EA.py`` with ``--ea_population 10`` and the sample size given on
the command line, which ``docs/NAS-Bench-201.md`` gives as 3 (``bash ./scripts-search/algos/
R-EA.sh cifar10 3 -1``); NATS-Bench (Dong et al., TPAMI 2021) keeps ``--ea_population 10
--ea_sample_size 3`` in ``exps/NATS-algos/regularized_ea.py``. (Their search stops at a
simulated time budget of 12000 s, not a cycle count: the number of queries is the searcher's
business here.) As in the released code and the paper's pseudo-code, the sample is drawn *with* replacement.

**Fitting the generational searcher.** One generation is ``offspring_per_generation`` cycles
proposed at once (1 by default, the paper's sequential algorithm; more is the batched variant
whose children all come from the same population): :meth:`~RegularizedEvolution.propose_with_origins`
makes the children, :meth:`~RegularizedEvolution.select` appends them and drops the oldest.
The population :meth:`~RegularizedEvolution.select` returns is in **age order, oldest first**,
not best first, and may hold duplicates (as in the paper); the searcher must pass it back
unchanged (order included) and read the best of the run from its history, since aging
eventually removes even the best architecture from the population.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from ..search_space_protocol import SearchSpace
from ..value_checks import is_int
from .strategies import Proposal, SearchStrategy, register_strategy

__all__ = [
    "RegularizedEvolution",
    "DEFAULT_REA_POPULATION_SIZE",
    "DEFAULT_REA_SAMPLE_SIZE",
]

#: NAS-Bench-201's REA population size (``--ea_population 10``; module doc)
DEFAULT_REA_POPULATION_SIZE = 10
#: NAS-Bench-201's REA sample (tournament) size (``--ea_sample_size 3``; module doc)
DEFAULT_REA_SAMPLE_SIZE = 3


def _positive_int(name: str, value: Any) -> int:
    if not is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _fitness_of(individuals: Sequence[Any], what: str) -> list[float]:
    out = []
    for i, ind in enumerate(individuals):
        fitness = getattr(ind, "fitness", None)
        if fitness is None:
            raise ValueError(f"{what}[{i}] has no fitness; evaluate it first")
        if isinstance(fitness, bool) or not isinstance(fitness, (int, float)) or fitness != fitness:
            raise ValueError(f"{what}[{i}].fitness must be a number, got {fitness!r}")
        out.append(float(fitness))
    return out


@register_strategy("rea")
class RegularizedEvolution(SearchStrategy):
    """Regularized (aging) evolution on any evolvable search space (module doc).

    * :meth:`initial_population`: ``population_size`` draws of ``space.sample(rng)`` (at least 2:
      with one member the fittest of a sample is always that member, and nothing is selected).
    * :meth:`propose_with_origins`: ``offspring_per_generation`` children, each
      ``space.mutate`` of the fittest (the first drawn of equals) of ``sample_size`` members
      drawn uniformly with replacement; origin ``"mutation:<suffix>"`` (``"copy"`` if the
      space reports no mutation), ``+repair`` if the child had to be brought within limits.
    * :meth:`select`: ``population + offspring`` with the oldest removed until
      ``population_size`` remain; age order (oldest first), duplicates kept.
    """

    name = "rea"
    min_population_size = 2
    population_rule = "with one member the fittest of a sample is always that member: no selection"

    def __init__(self, space: SearchSpace, population_size: int = DEFAULT_REA_POPULATION_SIZE,
                 sample_size: int = DEFAULT_REA_SAMPLE_SIZE, offspring_per_generation: int = 1):
        for method in ("sample", "mutate"):
            if not callable(getattr(space, method, None)):
                raise TypeError(f"space must be a SearchSpace with {method}(), got {type(space).__name__}")
        if isinstance(space, SearchSpace) and type(space).mutate is SearchSpace.mutate:
            raise ValueError(f"the {space.name or type(space).__name__!r} space does not support mutation, "
                             "which regularized evolution needs")
        self.check_population_size(population_size)
        _positive_int("sample_size", sample_size)
        _positive_int("offspring_per_generation", offspring_per_generation)
        if offspring_per_generation > population_size:
            raise ValueError(f"offspring_per_generation ({offspring_per_generation}) must not exceed "
                             f"population_size ({population_size}): the surplus children would age out at once")
        self.space = space
        self.population_size = population_size
        self.sample_size = sample_size
        self.offspring_per_generation = offspring_per_generation

    def config(self) -> dict:
        """The constructor arguments but the space (the searcher records the space)."""
        return {"population_size": self.population_size, "sample_size": self.sample_size,
                "offspring_per_generation": self.offspring_per_generation}

    # ---- generation 0 ----
    def initial_population(self, rng: random.Random) -> list[Any]:
        return [self.space.sample(rng) for _ in range(self.population_size)]

    # ---- offspring ----
    def tournament(self, population: Sequence[Any], rng: random.Random) -> int:
        """Index of the fittest of ``sample_size`` members drawn uniformly with replacement, as
        the released code draws them (the first drawn of equals)."""
        fitness = _fitness_of(population, "population")
        if not fitness:
            raise ValueError("cannot select a parent from an empty population")
        picks = [rng.randrange(len(fitness)) for _ in range(self.sample_size)]
        return max(picks, key=lambda i: fitness[i])  # max keeps the first of equals

    def propose_with_origins(self, population: list[Any], rng: random.Random) -> list[Proposal]:
        population = list(population)
        _fitness_of(population, "population")
        if not population:
            raise ValueError("cannot breed from an empty population")
        out = []
        for _ in range(self.offspring_per_generation):
            parent = population[self.tournament(population, rng)].genome
            child, suffix = self.space.mutate(parent, rng)
            origin = f"mutation:{suffix}" if suffix else "copy"
            if not self.space.within_limits(child):
                child = self.space.repair(child, rng)
                origin += "+repair"
            out.append(Proposal(child, origin))
        return out

    def first_population(self, evaluated: list[Any], rng: random.Random) -> list[Any]:
        """Generation 0 as it was drawn (all of one age): no sorting by fitness."""
        return list(evaluated)[-self.population_size:]

    # ---- aging ----
    def select(self, population: list[Any], offspring: list[Any], rng: random.Random) -> list[Any]:
        """``population + offspring`` (both in age order) without its oldest members beyond
        ``population_size``: the next population, oldest first (not sorted by fitness)."""
        _fitness_of(population, "population")
        _fitness_of(offspring, "offspring")
        pool = list(population) + list(offspring)
        return pool[max(0, len(pool) - self.population_size):]
