"""Accuracy against cost: the Pareto front of a run's trained candidates, its plot
(``pareto.png``), and the choice of a network other than the most accurate one (``--pick``).

A candidate is on the front of a cost (``parameters`` or ``macs``) when no other trained
candidate is at least as accurate at no greater cost and strictly better in one of the two.

Picks (``gptnas export/retrain/push --pick``, :func:`pick_record`):

* ``best``: the most accurate candidate (the default; ``best_genome.json``);
* ``smallest-within:D``: the candidate with the fewest parameters whose validation accuracy is
  within ``D`` (a fraction: 0.01 is one point) of the best;
* ``max-params:N`` / ``max-macs:N``: the most accurate candidate with at most ``N`` parameters /
  MACs (``N`` may be written ``20000``, ``20k``, ``1.5M``, ``2G``).

Ties go to fewer parameters, then to the earlier evaluation."""

from __future__ import annotations

import re
from pathlib import Path

COSTS = {"parameters": "parameters", "macs": "MACs"}
PICKS = ("best", "smallest-within:D", "max-params:N", "max-macs:N")
_SUFFIX = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}


def trained(records: list[dict]) -> list[dict]:
    """The candidates that were trained and scored (not refused, failed or pre-filtered)."""
    return [r for r in records if r.get("status") == "ok"]


def pareto_front(records: list[dict], cost: str = "parameters") -> list[dict]:
    """The non-dominated trained candidates for ``cost``, cheapest first (one per genome)."""
    points = {r["hash"]: r for r in trained(records) if r.get(cost) is not None}
    front, best = [], float("-inf")
    for r in sorted(points.values(), key=lambda r: (r[cost], -r["fitness"])):
        if r["fitness"] > best:
            front.append(r)
            best = r["fitness"]
    return front


def _number(text: str, spec: str) -> float:
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmg]?)\s*", text.lower())
    if not match:
        raise ValueError(f"--pick {spec!r}: {text!r} is not a number (e.g. 20000, 20k, 1.5M)")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def parse_pick(spec: str) -> tuple[str, float | None]:
    """``(rule, value)`` of a pick; a ValueError naming the accepted forms otherwise."""
    rule, _, value = str(spec).partition(":")
    rule = rule.strip().lower()
    if rule == "best" and not value:
        return rule, None
    if rule in ("smallest-within", "max-params", "max-macs") and value:
        number = _number(value, spec)
        if rule == "smallest-within" and not 0 <= number < 1:
            raise ValueError(f"--pick {spec!r}: the tolerance is a fraction of accuracy in [0, 1) (0.01 is one point)")
        return rule, number
    raise ValueError(f"--pick {spec!r}: expected one of {', '.join(PICKS)}")


def pick_record(records: list[dict], spec: str = "best") -> dict:
    """The trained candidate that ``spec`` chooses (module doc); a ValueError when none qualifies."""
    rule, value = parse_pick(spec)
    pool = trained(records)
    if not pool:
        raise ValueError("the run has no trained candidate to pick from")
    order = {id(r): i for i, r in enumerate(pool)}

    def most_accurate(rows):
        return max(rows, key=lambda r: (r["fitness"], -r.get("parameters", 0), -order[id(r)]))

    if rule == "best":
        return most_accurate(pool)
    if rule == "smallest-within":
        floor = most_accurate(pool)["fitness"] - value - 1e-12
        return min((r for r in pool if r["fitness"] >= floor),
                   key=lambda r: (r.get("parameters", 0), -r["fitness"], order[id(r)]))
    cost = "parameters" if rule == "max-params" else "macs"
    rows = [r for r in pool if r.get(cost) is not None and r[cost] <= value]
    if not rows:
        cheapest = min((r[cost] for r in pool if r.get(cost) is not None), default=None)
        raise ValueError(f"--pick {spec!r}: no trained candidate has at most {value:,.0f} {COSTS[cost]}"
                         + (f" (the smallest has {cheapest:,})" if cheapest is not None else
                            f" (the run's records carry no {COSTS[cost]}: it was searched by an older version)"))
    return most_accurate(rows)


def pick_genome(best, records: list[dict], spec: str = "best", space=None):
    """The run's ``best`` genome (``best_genome.json``), or the one ``spec`` chooses among its
    records (read by ``space``, default the block genome)."""
    from ..search_space import Genome

    if parse_pick(spec)[0] == "best":
        return best
    chosen = pick_record(records, spec)["genome"]
    return Genome.from_json(chosen) if space is None else space.load(chosen)


def plot_pareto(records: list[dict], path: Path, title: str, limits: dict | None = None) -> None:
    """Accuracy against parameters and against MACs: every trained candidate, the front, the
    most accurate one, and the budget's limits as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = trained(records)
    costs = [c for c in COSTS if any(r.get(c) is not None for r in rows)] or ["parameters"]
    fig, axes = plt.subplots(1, len(costs), figsize=(5.5 * len(costs), 4), squeeze=False)
    for ax, cost in zip(axes[0], costs):
        points = [r for r in rows if r.get(cost) is not None]
        ax.scatter([r[cost] for r in points], [r["fitness"] for r in points], s=12, alpha=0.5,
                   c=["tab:orange" if r.get("reconstructed") else "tab:blue" for r in points], label="candidates")
        front = pareto_front(rows, cost)
        if front:
            ax.step([r[cost] for r in front], [r["fitness"] for r in front], where="post", color="black", lw=1.2)
            ax.scatter([r[cost] for r in front], [r["fitness"] for r in front], s=30, facecolors="none",
                       edgecolors="black", label=f"Pareto front ({len(front)})")
            best = max(front, key=lambda r: r["fitness"])
            ax.scatter([best[cost]], [best["fitness"]], marker="*", s=160, color="tab:red", label="most accurate")
        limit = (limits or {}).get(cost)
        if limit:
            ax.axvline(limit, color="tab:red", ls="--", lw=1, label=f"budget {limit:,}")
        if points and min(r[cost] for r in points) > 0:
            ax.set_xscale("log")
        ax.set_xlabel(COSTS[cost] + (" (one image)" if cost == "macs" else ""))
        ax.set_ylabel("validation top-1")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title + " (orange: rebuilt by the GPT)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def front_table(records: list[dict], cost: str, limit: int = 12) -> list[str]:
    """Markdown rows of the front for ``cost`` (at most ``limit``, evenly spread)."""
    front = pareto_front(records, cost)
    if len(front) > limit:
        step = (len(front) - 1) / (limit - 1)
        front = [front[round(i * step)] for i in range(limit)]
    lines = [f"| {COSTS[cost]} | validation top-1 | genome | blocks | rebuilt |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r[cost]:,} | {r['fitness']:.4f} | `{r['hash'][:10]}` | "
              f"{len(r['genome']) if isinstance(r['genome'], list) else '-'} | "
              f"{'yes' if r.get('reconstructed') else ''} |" for r in front]
    return lines
