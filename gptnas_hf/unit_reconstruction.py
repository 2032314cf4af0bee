"""The paper's Algorithm 1 for any rewritable search space: :func:`reconstruct_units`.

Walk an architecture's units (:meth:`~gptnas_hf.search_space_protocol.SearchSpace.units`:
blocks, edges) left to right; each is masked with probability ``mask_rate``. A masked unit is
replaced by the best of its alternatives (:meth:`~gptnas_hf.search_space_protocol.SearchSpace.alternatives`,
the current unit included), each judged as the whole architecture it makes
(:meth:`~gptnas_hf.search_space_protocol.SearchSpace.with_unit`, the units before it already
rewritten) by ``score_fn`` (higher is better): the ``nas-reconstruction`` pipeline passes the
GPT's mean log-likelihood of the network (:class:`~gptnas_hf.architecture_score.ArchitectureScorer`),
a control may pass the parameter count. Greedy by default: ties go to the current unit when it
is among the best (in NAS-Bench-201 a ``none`` and a ``skip_connect`` edge give the same layers,
so the GPT cannot tell them apart and the architecture keeps what it had), else to the first
best in the alternatives' order. With ``do_sample`` the unit is drawn from
``softmax(score / temperature)`` (optionally among the ``top_k`` best).

Randomness: each architecture draws from ``random.Random(f"{seed}:{space.hash(arch)}")``, one
``rng.random()`` per unit in order for the masks, then the seed of a ``torch.Generator`` for
sampling (as the block pipeline does), so a batch gives what its architectures give one at a
time. The candidates of every architecture at one unit position are scored in one
``score_fn`` call.

The result of each architecture has the keys of the block pipeline's results: ``genome`` (the
new architecture, ``space.dump``), ``predicted_blocks`` (the masked units), ``predicted_layers``
(per masked unit: ``block``, ``type``: the chosen unit as a string, ``text``: None, ``score``
and ``candidates``), ``block_probabilities`` (empty: no FCN here), ``mask_rate``, ``method``
(``"likelihood"``) and ``kept_kind`` (per masked unit, whether it kept its unit).

A flat model-side module: it imports torch, the standard library and flat modules of
``gptnas_hf`` only.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any, Callable, Sequence

import torch

from .value_checks import is_int

__all__ = ["reconstruct_units", "choose"]


def _unit_text(unit: Any) -> str:
    if isinstance(unit, str):
        return unit
    try:
        return json.dumps(unit, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(unit)


def choose(scores: Sequence[float], current: int | None, generator: torch.Generator | None = None,
           do_sample: bool = False, temperature: float = 1.0, top_k: int | None = None) -> int:
    """The index chosen among candidates with ``scores`` (NaN counts as the worst): greedy,
    ties to ``current`` (the candidate that keeps the unit; None when it is not among them)
    when it is among the best, else to the first best; or sampled from
    ``softmax(score / temperature)`` (among the ``top_k`` best) with ``generator``."""
    values = [float("-inf") if math.isnan(float(s)) else float(s) for s in scores]
    if not values:
        raise ValueError("no candidates to choose from")
    if not do_sample:
        best = max(values)
        if current is not None and values[current] == best:
            return current
        return values.index(best)
    logits = torch.tensor(values, dtype=torch.float64) / float(temperature)
    if top_k:
        kth = logits.topk(min(int(top_k), logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if torch.isinf(logits).all():  # nothing has a finite score: keep the unit (or take the first)
        return current if current is not None else 0
    return int(torch.multinomial(logits.softmax(-1), 1, generator=generator))


def reconstruct_units(archs: Sequence, space, score_fn: Callable[[list], Sequence[float]], mask_rate: float,
                      seed: int = 0, do_sample: bool = False, temperature: float = 1.0,
                      top_k: int | None = None) -> list[dict]:
    """Rewrite each architecture of ``archs`` unit by unit (module doc). ``space``: a
    rewritable :class:`~gptnas_hf.search_space_protocol.SearchSpace` or a registered space's
    name; ``score_fn``: a list of architectures -> one score each (higher is better)."""
    if isinstance(space, str):
        from .search_space_protocol import create_space

        space = create_space(space)
    if isinstance(mask_rate, bool) or not isinstance(mask_rate, (int, float)) or not 0.0 <= mask_rate <= 1.0:
        raise ValueError(f"mask_rate must be a number in [0, 1], got {mask_rate!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if top_k is not None and (not is_int(top_k) or top_k < 1):
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    states = []
    for arch in archs:
        arch = space.load(arch)
        rng = random.Random(f"{seed}:{space.hash(arch)}")  # order-free: batched equals unbatched
        masked = [rng.random() < mask_rate for _ in range(space.units(arch))]
        states.append({"arch": arch, "masked": masked, "rng": rng,
                       "gen": torch.Generator().manual_seed(rng.getrandbits(63)),
                       "predicted": [], "layers": [], "kept": []})
    for index in range(max((len(s["masked"]) for s in states), default=0)):
        plans = []
        for state in states:
            if index >= len(state["masked"]) or not state["masked"][index]:
                continue
            current = state["arch"]
            if index >= space.units(current):  # an earlier rewrite shortened it
                continue
            alternatives = list(space.alternatives(current, index))
            candidates = [space.with_unit(current, index, alt) for alt in alternatives]
            here = space.hash(current)
            keep = next((i for i, c in enumerate(candidates) if space.hash(c) == here), None)
            plans.append((state, alternatives, candidates, keep))
        if not plans:
            continue
        flat = [c for _, _, candidates, _ in plans for c in candidates]
        scores = [float(s) for s in score_fn(flat)] if flat else []
        if len(scores) != len(flat):
            raise ValueError(f"score_fn returned {len(scores)} scores for {len(flat)} architectures")
        row = 0
        for state, alternatives, candidates, keep in plans:
            mine = scores[row:row + len(candidates)]
            row += len(candidates)
            state["predicted"].append(index)
            if not candidates:  # nothing it may become: it stays
                state["layers"].append({"block": index, "type": None, "text": None, "score": None, "candidates": 0})
                state["kept"].append(True)
                continue
            pick = choose(mine, keep, state["gen"], do_sample, temperature, top_k)
            state["arch"] = candidates[pick]
            state["layers"].append({"block": index, "type": _unit_text(alternatives[pick]), "text": None,
                                    "score": round(mine[pick], 4), "candidates": len(candidates)})
            state["kept"].append(pick == keep)
    return [
        {"genome": space.dump(s["arch"]), "predicted_blocks": s["predicted"], "predicted_layers": s["layers"],
         "block_probabilities": [], "mask_rate": mask_rate, "method": "likelihood", "kept_kind": s["kept"]}
        for s in states
    ]
