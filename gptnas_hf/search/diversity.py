"""How varied a population is, per generation: a guard against a search (or an adapted GPT)
that collapses onto one architecture.

* ``edit_distance``: the mean pairwise Levenshtein distance between the members' block-kind
  sequences (a block inserted, removed or of another kind counts 1; widths and strides are not
  compared), over all pairs;
* ``kinds_per_position``: the number of distinct block kinds at each depth, averaged over the
  depths the members share (1.0: every member has the same kind at every position)."""

from __future__ import annotations

from itertools import combinations


def edit_distance(a: list[str], b: list[str]) -> int:
    """Levenshtein distance between two sequences."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def population_diversity(genomes, tokens=None) -> dict:
    """``{"edit_distance": ..., "kinds_per_position": ...}`` of a list of genomes (see module doc);
    ``tokens(arch)`` reads another search space's architectures as symbol sequences (its
    ``SearchSpace.tokens``: NAS-Bench-201's six edge ops), by default a block genome's kinds."""
    from ..search_space import Genome

    kinds = [list(tokens(g)) if tokens is not None else Genome.from_json(g).kinds for g in genomes]
    pairs = list(combinations(kinds, 2))
    depth = min((len(k) for k in kinds), default=0)
    return {
        "edit_distance": sum(edit_distance(a, b) for a, b in pairs) / len(pairs) if pairs else 0.0,
        "kinds_per_position": (sum(len({k[i] for k in kinds}) for i in range(depth)) / depth) if depth else 0.0,
    }
