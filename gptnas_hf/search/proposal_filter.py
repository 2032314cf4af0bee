"""The proposal filter: the strategy proposes ``pool`` times as many architectures as a step
needs, a zero-cost scorer rates them, and only the best-rated ones are evaluated.

Rating a proposal costs a lookup (the GPT's score of a NAS-Bench-201 cell is cached for the
whole space) or a forward pass of the GPT, where evaluating it costs a training run or a table
query: so the filter spends the cheap resource to save the dear one. The paper's
reconstruction rewrites a proposal's units by the GPT's likelihood; the filter instead chooses
among whole proposals, so the GA's own operators keep making the architectures.

Scorers (``proposal_filter`` in a search recipe):

* ``"gpt"``: the architecture GPT's mean log-likelihood of the network
  (:mod:`gptnas_hf.architecture_score`), of the search's current GPT (the adapted one when
  ``gpt_adaptation`` is on);
* ``"parameters"``: the parameter count, the control that lacks only the GPT's knowledge;
* ``"gpt+parameters"``: the two ranks within the pool, averaged (what the GPT adds to size);
* ``"parameters>gpt"``: the parameter count first, the GPT's score only among proposals of
  equal size (a cell space has few distinct sizes: the GPT breaks the size prior's ties).

A step's pool is deduplicated, and architectures the run has evaluated already are dropped
while enough new ones remain (re-proposing one costs no query but teaches nothing). The kept
proposals are the ``keep`` best-rated, ties in the order they were drawn. Deterministic for the
strategy's seeded draws.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

#: the zero-cost scorers a search can filter its proposals with
PROPOSAL_SCORERS = ("gpt", "parameters", "gpt+parameters", "parameters>gpt")


def average_ranks(*columns: Sequence[float]) -> list[float]:
    """Per item, the mean over ``columns`` of its rank within that column (1 = lowest; ties
    share their average rank)."""
    from scipy.stats import rankdata

    if not columns:
        return []
    ranked = [rankdata(list(column), method="average") for column in columns]
    return [float(sum(r[i] for r in ranked) / len(ranked)) for i in range(len(columns[0]))]


def lexicographic_ranks(primary: Sequence[float], secondary: Sequence[float]) -> list[float]:
    """Per item, its rank (1 = lowest) when items are ordered by ``primary`` and, among equal
    ``primary`` values, by ``secondary``; items equal in both share their average rank."""
    from scipy.stats import rankdata

    if len(primary) != len(secondary):
        raise ValueError(f"{len(primary)} primary values against {len(secondary)} secondary ones")
    pairs = list(zip(primary, secondary))
    order = sorted(set(pairs))
    position = {pair: i for i, pair in enumerate(order)}
    return [float(r) for r in rankdata([position[pair] for pair in pairs], method="average")]


def filter_proposals(pool: list, keep: int, score: Callable[[list], list[float]], key: Callable[[object], str],
                     evaluated: set[str] | frozenset = frozenset()) -> list[tuple[object, float]]:
    """The ``keep`` best-rated of ``pool`` (proposals whose architecture ``key`` gives), with
    their ratings: duplicates dropped, and architectures in ``evaluated`` too while at least
    ``keep`` others remain. ``score`` rates a list of proposals at once."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    distinct, seen = [], set()
    for proposal in pool:
        k = key(proposal)
        if k not in seen:
            seen.add(k)
            distinct.append((k, proposal))
    fresh = [(k, p) for k, p in distinct if k not in evaluated]
    candidates = fresh if len(fresh) >= keep else distinct
    ratings = score([p for _, p in candidates])
    if len(ratings) != len(candidates):
        raise ValueError(f"the scorer rated {len(ratings)} of {len(candidates)} proposals")
    order = sorted(range(len(candidates)), key=lambda i: -ratings[i])  # stable: ties keep the draw order
    return [(candidates[i][1], float(ratings[i])) for i in order[:keep]]
