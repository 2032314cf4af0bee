"""Search strategies on NAS-Bench-201 (Dong and Yang, ICLR 2020) over many seeds: every cell's
accuracy is in a table, so an evaluation is a lookup and the GPT's effect on a search can be
measured with power.

``python -m bench.nas_bench_201 --table PATH --seeds N [--first-seed S] [--confirm-first-seed C] [--output FILE.json]``

Arms (every one a run of the same :class:`~gptnas_hf.search.searcher.NASSearcher` that
``gptnas search --recipe recipes/nas-bench-201.yaml`` runs, with the recipe's settings):

* ``random``: random search; ``rea``: regularized evolution (NAS-Bench-201's population 10,
  sample 3); ``ga``: the GA (population 10, crossover 0.7, mutation 0.5);
* ``ga_gpt`` / ``random_gpt``: the same with the GPT rewriting each proposal (Eq. 3's mask rate
  from 0.4, decaying over the queries; a masked edge becomes the op whose network the GPT finds
  most likely);
* ``ga_adapted``: GA+GPT whose GPT is fine-tuned on the best cells queried so far after each
  generation (``gpt_adaptation``, its defaults);
* ``ga_size_prior``: the control. GA+GPT with the GPT's score replaced by the network's
  parameter count: the same rewrite, lacking only the GPT's knowledge;
* ``ga_filter_gpt`` / ``ga_filter_size`` / ``ga_filter_gpt_size``: the proposal filter
  (``proposal_filter``): the GA proposes 4 times as many cells as it queries and the best-rated
  are queried, rated by the GPT's mean log-likelihood, by the parameter count (the control), or
  by the two ranks averaged; ``ga_filter_size_then_gpt``: by the parameter count, the GPT's
  score breaking its ties (``parameters>gpt``), against ``ga_filter_size`` whose ties stay in the
  order drawn.

The same seed gives every arm the same initial proposals (``initial_population`` of the same
sampler). A query is a distinct cell looked up (a repeat is free); each run goes to the largest
budget, and its best-so-far after 10, 25, 50, 100 and 200 queries is read off its records in
order. Figures: per arm and budget the mean, std and n of the best test accuracy found and the
share of runs that found the optimum; paired differences (the same seeds) with a t 95% interval,
the matching paired t-test's two-sided p, the smallest difference it detects with 80% power and
a Holm-corrected p over all the comparisons reported (``bench.common.paired_t``, ``holm``);
best-so-far curves with 95% bands (PNG); seconds per run of 100 queries (timed separately,
after warm-up, on one thread); the GPT's mean log-likelihood, the parameter count and their
combinations (the ranks averaged, size with the GPT breaking ties, the GPT's score beyond a fit on
log size) as zero-cost proxies, Spearman against the table over all its cells (``best_gpt``
names the best score that reads the GPT); per arm and budget the share of distinct cells among
all its runs' queries (``diversity``: an arm whose runs collapse onto the same cells shows it).

Design and confirmation: designs are chosen on seeds 0-199; the recipe ships the chosen one
(:data:`WINNER`), and ``--confirm-first-seed 1000`` runs it, the paper's GA+GPT and the controls
(:data:`CONFIRM_ARMS`) on as many fresh seeds (``figures.confirmation``: the same layout, its own
Holm family). Every arm starts from the recipe with its design knobs neutral (:data:`NEUTRAL`),
so the shipped design never leaks into an arm; the recipe's other settings are part of the
runs' code key.

Resumable: every finished run is appended to ``RESULTS/runs/nas_bench_201/<arm>-<key>.jsonl`` (key:
the table, the arm's settings, the GPT checkpoint and the search code), and a killed benchmark
starts again where it stopped. Runs made by other search code are not reused unless
``--reuse-stale-runs`` is given; the result then names them per arm and code
(``settings.runs_of_other_code``). ``--shard I/N`` runs every N-th seed and writes no results
(several processes share the cache); a last run without ``--shard`` aggregates.
The GPT is never trained on NAS-Bench-201 (only ``ga_adapted`` fine-tunes on what its own
search queried). ``--budget smoke`` checks the code path on a synthetic table in seconds.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from .common import (REUSE_STALE_ENV, ROOT, add_shard_option, code_fingerprint, holm, paired_t, parse, parser, progress, pyplot,
                     results_dir, runs_dir, save_figure, shard, write_result)

NAME = "nas_bench_201"
DEFAULT_TABLE = ROOT.parent / "shared" / "data" / "nas-bench-201" / "cifar10.csv"
RECIPE = ROOT / "recipes" / "nas-bench-201.yaml"
QUERY_BUDGETS = (10, 25, 50, 100, 200)
ARMS = {
    "random": {"strategy": "random", "use_gpt": False},
    "rea": {"strategy": "rea", "use_gpt": False, "strategy_options": {"sample_size": 3}},
    "ga": {"strategy": "ga", "use_gpt": False},
    "ga_gpt": {"strategy": "ga", "use_gpt": True},
    "random_gpt": {"strategy": "random", "use_gpt": True},
    "ga_adapted": {"strategy": "ga", "use_gpt": True, "gpt_adaptation": {}},
    "ga_size_prior": {"strategy": "ga", "use_gpt": True, "reconstruction_scorer": "parameters"},
    # the proposal filter (search/proposal_filter.py): the GA proposes 4x, the best-rated are queried
    "ga_filter_gpt": {"strategy": "ga", "use_gpt": False, "proposal_filter": "gpt", "proposal_pool": 4},
    "ga_filter_size": {"strategy": "ga", "use_gpt": False, "proposal_filter": "parameters", "proposal_pool": 4},
    "ga_filter_gpt_size": {"strategy": "ga", "use_gpt": False, "proposal_filter": "gpt+parameters", "proposal_pool": 4},
    "ga_filter_size_then_gpt": {"strategy": "ga", "use_gpt": False, "proposal_filter": "parameters>gpt",
                                "proposal_pool": 4},
}
PAIRS = {"ga_gpt_minus_ga": ("ga_gpt", "ga"), "ga_gpt_minus_rea": ("ga_gpt", "rea"),
         "ga_gpt_minus_size_prior": ("ga_gpt", "ga_size_prior"), "random_gpt_minus_random": ("random_gpt", "random"),
         "ga_adapted_minus_ga_gpt": ("ga_adapted", "ga_gpt"), "ga_adapted_minus_ga": ("ga_adapted", "ga"),
         "ga_filter_gpt_minus_ga_filter_size": ("ga_filter_gpt", "ga_filter_size"),
         "ga_filter_gpt_size_minus_ga_filter_size": ("ga_filter_gpt_size", "ga_filter_size"),
         "ga_filter_gpt_minus_rea": ("ga_filter_gpt", "rea"), "ga_filter_gpt_size_minus_rea": ("ga_filter_gpt_size", "rea"),
         "ga_filter_gpt_minus_ga": ("ga_filter_gpt", "ga"),
         "ga_filter_size_then_gpt_minus_ga_filter_size": ("ga_filter_size_then_gpt", "ga_filter_size"),
         "ga_filter_size_then_gpt_minus_rea": ("ga_filter_size_then_gpt", "rea"),
         "ga_filter_size_then_gpt_minus_size_prior": ("ga_filter_size_then_gpt", "ga_size_prior")}
#: published figures on NAS-Bench-201's CIFAR-10 test accuracy, beside ours in RESULTS.md
ANCHORS = {"optimum": 94.37, "random search (NAS-Bench-201 paper, 500 runs, 12,000 simulated s)": "93.70 ± 0.36",
           "REINFORCE (same)": "93.85 ± 0.37", "GENIUS (GPT-4), 10 queries": "93.84 ± 0.33"}
#: the design the recipe ships (``recipes/nas-bench-201.yaml``), chosen on seeds 0-199 by a rule fixed
#: before the fresh seeds were run: among the GPT arms run on all 200 design seeds, the highest mean
#: best-found at 100 queries (the second round's ga_filter_size_then_gpt, 94.354)
WINNER = "ga_filter_size_then_gpt"
#: the winner's confirmation on fresh seeds (``--confirm-first-seed 1000``): the winner, the paper's
#: GA+GPT and the arms each must beat
CONFIRM_ARMS = ("random", "rea", "ga", "ga_gpt", "ga_size_prior", "ga_filter_size", WINNER)
CONFIRM_PAIRS = {"winner_minus_rea": (WINNER, "rea"), "winner_minus_size_prior": (WINNER, "ga_size_prior"),
                 "winner_minus_ga_filter_size": (WINNER, "ga_filter_size"), "winner_minus_ga": (WINNER, "ga"),
                 "ga_gpt_minus_ga": ("ga_gpt", "ga"), "ga_gpt_minus_rea": ("ga_gpt", "rea"),
                 "ga_gpt_minus_size_prior": ("ga_gpt", "ga_size_prior")}
#: the recipe's design knobs, reset before an arm applies its own: a new default design in the
#: recipe does not leak into the arms
NEUTRAL = {"use_gpt": False, "reconstruction_scorer": "gpt", "gpt_adaptation": None, "proposal_filter": None}
CELL_ID = 12  # hex digits of a cell's hash kept per query (the diversity figure)
SMOKE = {"seeds": 2, "budgets": (10, 25), "timing_seeds": 1, "proxy_cells": 200, "timing_queries": 25}
SOURCES = ("search/searcher.py", "search/strategies.py", "search/regularized_evolution.py", "search/table_fitness.py",
           "search/adaptation.py", "space_nas_bench_201.py", "unit_reconstruction.py", "architecture_score.py",
           "pipeline_nas_reconstruction.py", "mask_schedule.py")


def _smoke_accuracy(cell) -> float:
    ops = cell.ops
    return round(40 + 8 * ops.count("nor_conv_3x3") + 3 * ops.count("nor_conv_1x1")
                 + (sum(map(ord, str(cell))) % 7) / 10, 4)


def synthetic_table(path: Path, accuracy=_smoke_accuracy) -> Path:
    """A CSV table (``arch``, ``test_accuracy``) of every cell with a known landscape,
    ``accuracy(cell)`` in percent (for the smoke budget and the tests: no data needed)."""
    from gptnas_hf.space_nas_bench_201 import all_cells

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["arch", "test_accuracy"])
        for cell in all_cells():
            writer.writerow([str(cell), accuracy(cell)])
    return path


def _source_fingerprint() -> str:
    import gptnas_hf

    digest = hashlib.sha256(code_fingerprint().encode())
    # the recipe's search settings (population, rates, mask rate...) decide the runs as much as the code
    base = {k: v for k, v in _base_recipe().items() if k not in ("fitness", "output_dir", "seed", "retrain", "dataset")}
    digest.update(json.dumps(base, sort_keys=True, default=str).encode())
    for name in SOURCES:
        file = Path(gptnas_hf.__file__).resolve().parent / name
        digest.update(file.read_bytes() if file.is_file() else b"")
    return digest.hexdigest()[:16]


def _base_recipe() -> dict:
    """The recipe every arm starts from: the shipped one with its design knobs neutral."""
    from gptnas_hf.recipe_config import read_recipe

    recipe = read_recipe(RECIPE)
    recipe.pop("name", None)
    recipe.update(NEUTRAL)
    return recipe


def _config(table: Path, arm: str, seed: int, max_queries: int, out: Path):
    from gptnas_hf.search.searcher import SearchConfig

    recipe = _base_recipe()
    recipe.update(ARMS[arm])
    recipe.update(seed=seed, max_queries=max_queries, output_dir=str(out), progress=False,
                  fitness={**recipe["fitness"], "table": str(table)})
    return SearchConfig.from_dict(recipe)


def run_arm(table: Path, arm: str, seed: int, max_queries: int, pipeline) -> dict:
    """One search; its table values in query order and its wall seconds."""
    from gptnas_hf.search.searcher import NASSearcher

    scratch = Path(tempfile.mkdtemp(prefix="nb201-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    try:
        started = time.perf_counter()
        NASSearcher(_config(table, arm, seed, max_queries, scratch / "run"), model=pipeline).run()
        seconds = time.perf_counter() - started
        records = [json.loads(line) for line in (scratch / "run" / "evaluations.jsonl").read_text().splitlines()]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"arm": arm, "seed": seed, "curve": [r["metric"] for r in records],
            "cells": [r["hash"][:CELL_ID] for r in records], "seconds": round(seconds, 3)}


def diversity(runs: dict, arms: list[str], arm_seeds: dict, budgets) -> dict:
    """Per arm and budget q, the share of distinct cells among all the cells its runs queried
    first (``distinct_share``: 1 when no two seeds met the same cell, small when the arm's runs
    collapse onto the same few), over the runs that recorded their cells (older ones did not)."""
    out = {}
    for arm in arms:
        recorded = [runs[(arm, s)]["cells"] for s in arm_seeds[arm] if "cells" in runs[(arm, s)]]
        out[arm] = {}
        for q in budgets:
            heads = [cells[:q] for cells in recorded if len(cells) >= q]
            total = sum(len(h) for h in heads)
            out[arm][str(q)] = {"distinct_share": len({c for h in heads for c in h}) / total if total else None,
                                "runs": len(heads)}
    return out


class RunCache:
    """Finished runs on disk (module doc), one file per arm: ``keys`` maps an arm to the key of
    everything that decides its runs, so adding an arm or changing one reruns only that arm.

    Each run also carries ``loose_keys[arm]`` (the same key without the search code) and the
    code's fingerprint: with ``reuse_stale`` the runs of another code version of that arm are
    reused where nothing else differs, and ``stale`` counts them per arm and code."""

    def __init__(self, keys: dict[str, str], loose_keys: dict[str, str] | None = None, code: str | None = None,
                 reuse_stale: bool = False):
        self.keys, self.loose_keys, self.code = dict(keys), dict(loose_keys or {}), code
        self.folder = runs_dir() / NAME
        self.runs: dict[tuple[str, int], dict] = {}
        self.stale: dict[str, dict[str, int]] = {}
        for arm in self.keys:
            for run in self._read(self.path(arm), arm):
                self.runs[(arm, run["seed"])] = run
        if not reuse_stale:
            return
        for arm, loose in self.loose_keys.items():
            for path in sorted(self.folder.glob(f"{arm}-*.jsonl")):
                if path == self.path(arm):
                    continue
                for run in self._read(path, arm):
                    if run.get("loose") == loose and (arm, run["seed"]) not in self.runs:
                        self.runs[(arm, run["seed"])] = run
                        code_of = self.stale.setdefault(arm, {})
                        code_of[run.get("code", "?")] = code_of.get(run.get("code", "?"), 0) + 1

    @staticmethod
    def _read(path: Path, arm: str) -> list[dict]:
        runs = []
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    run = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill: that run is done again
                    continue
                if run.get("arm") == arm:
                    runs.append(run)
        return runs

    def path(self, arm: str) -> Path:
        return self.folder / f"{arm}-{self.keys[arm]}.jsonl"

    def put(self, run: dict) -> None:
        run = {**run, "code": self.code, "loose": self.loose_keys.get(run["arm"])}
        self.runs[(run["arm"], run["seed"])] = run
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.path(run["arm"]), "a") as f:
            f.write(json.dumps(run) + "\n")


def best_after(curve: list[float], queries: int) -> float | None:
    """The best value among the first ``queries`` lookups (None when the run made fewer)."""
    return max(curve[:queries]) if len(curve) >= queries else None


def _spearman(x, y) -> dict:
    from scipy.stats import spearmanr

    rho, p = spearmanr(x, y)
    return {"spearman": float(rho), "p_value": float(p), "n": len(x)}


def proxies(table, pipeline, shape: dict, sample: int | None = None, cache_dir=None) -> dict:
    """The GPT's mean log-likelihood and the parameter count as zero-cost proxies over every
    cell of the table (or a seeded ``sample`` of them; Spearman against its metric)."""
    import random

    from gptnas_hf.architecture_score import cached_space_scores

    space = table.space
    keys = sorted(table)
    if sample is not None and sample < len(keys):
        keys = random.Random(0).sample(keys, sample)
    cells = [space.load(table.cell(key)) for key in keys]
    values = [table.lookup(cell) for cell in cells]
    started = time.perf_counter()
    scores = cached_space_scores(pipeline, space, cells, progress=True, cache_dir=cache_dir, **shape)
    seconds = time.perf_counter() - started
    params = [space.parameters(c, shape["in_channels"], shape["num_classes"]) for c in cells]
    from gptnas_hf.search.proposal_filter import average_ranks, lexicographic_ranks

    out = {"gpt": {**_spearman(scores, values), "seconds": round(seconds, 1),
                   "what": "the GPT's mean log-likelihood of the cell's traced network"},
           "params": {**_spearman(params, values), "what": "the parameter count (no GPT: the control)"},
           "gpt+params": {**_spearman(average_ranks(scores, params), values),
                          "what": "the GPT's and the parameter count's ranks averaged (proposal_filter: gpt+parameters)"},
           "params>gpt": {**_spearman(lexicographic_ranks(params, scores), values),
                          "what": "the parameter count, the GPT breaking its ties (proposal_filter: parameters>gpt)"},
           "gpt_beyond_size": {**_spearman(size_residuals(scores, params), values),
                               "what": "the GPT's score less its least-squares fit on log parameters: "
                                       "what it says beyond size"}}
    gpt_scores = [name for name in out if "gpt" in name]
    out["best_gpt"] = max(gpt_scores, key=lambda name: out[name]["spearman"])
    return out


def size_residuals(scores, params) -> list[float]:
    """``scores`` less their least-squares line on ``log(params)``."""
    logs = [math.log(max(p, 1)) for p in params]
    mx, my = statistics.fmean(logs), statistics.fmean(scores)
    var = sum((x - mx) ** 2 for x in logs)
    slope = sum((x - mx) * (y - my) for x, y in zip(logs, scores)) / var if var else 0.0
    return [y - my - slope * (x - mx) for x, y in zip(logs, scores)]


def summarise(runs: dict, arms: list[str], arm_seeds: dict, budgets, optimum: float,
              pair_specs: dict | None = None) -> tuple[dict, dict]:
    """Per arm and budget the best found; per pair (``pair_specs``, default :data:`PAIRS`) the
    paired analysis over the seeds both ran, Holm-corrected over all of them."""
    table, pairs = {}, {}
    for arm in arms:
        table[arm] = {}
        for q in budgets:
            values = [best_after(runs[(arm, s)]["curve"], q) for s in arm_seeds[arm]]
            values = [v for v in values if v is not None]
            table[arm][str(q)] = {"mean": statistics.fmean(values) if values else None,
                                  "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values),
                                  "optimum_share": sum(v >= optimum - 1e-9 for v in values) / len(values)
                                  if values else None}
    for name, (a, b) in (PAIRS if pair_specs is None else pair_specs).items():
        if a not in arms or b not in arms:
            continue
        pairs[name] = {}
        for q in budgets:
            common = [s for s in arm_seeds[a] if s in set(arm_seeds[b])]
            both = [(best_after(runs[(a, s)]["curve"], q), best_after(runs[(b, s)]["curve"], q)) for s in common]
            both = [(x, y) for x, y in both if x is not None and y is not None]
            if both:
                pairs[name][str(q)] = paired_t([x for x, _ in both], [y for _, y in both])
    family = {(name, q): row["p_value"] for name, rows in pairs.items() for q, row in rows.items()}
    for (name, q), p in holm(family).items():
        pairs[name][q]["p_holm"] = p
    return table, pairs


def timing(table_path: Path, arms: list[str], seeds: int, pipeline, queries: int = 100) -> dict:
    """Mean wall seconds of a run of ``queries`` queries per arm (after one warm-up run each)."""
    out = {}
    for arm in arms:
        run_arm(table_path, arm, 10_000, queries, pipeline)  # warm-up: caches, first calls
        times = [run_arm(table_path, arm, 10_001 + i, queries, pipeline)["seconds"] for i in range(seeds)]
        out[arm] = round(statistics.fmean(times), 3)
        progress(f"timing {arm}: {out[arm]:.2f} s a run of {queries} queries")
    return out


def plot(runs: dict, arms: list[str], arm_seeds: dict, horizon: int, optimum: float, title: str,
         spread: dict | None = None):
    """Best-so-far curves with 95% bands; beside them, where ``spread`` (``diversity``'s output)
    holds recorded cells, each arm's share of distinct cells against the queries."""
    plt = pyplot()
    shown = {arm: {int(q): row["distinct_share"] for q, row in (spread or {}).get(arm, {}).items()
                   if row["distinct_share"] is not None} for arm in arms}
    shown = {arm: v for arm, v in shown.items() if v}
    if shown:
        fig, (ax, side) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [8, 5]})
    else:
        fig, ax = plt.subplots(figsize=(8, 5))
    for arm in arms:
        curves = [runs[(arm, s)]["curve"] for s in arm_seeds[arm]]
        xs, means, lows, highs = [], [], [], []
        for q in range(1, horizon + 1):
            values = [max(c[:q]) for c in curves if len(c) >= q]
            if len(values) < 2:
                break
            m, sd = statistics.fmean(values), statistics.stdev(values)
            half = 1.96 * sd / math.sqrt(len(values))
            xs.append(q)
            means.append(m)
            lows.append(m - half)
            highs.append(m + half)
        line, = ax.plot(xs, means, label=arm, lw=1.6 if "gpt" in arm or arm == "ga_adapted" else 1.1)
        ax.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.15)
    ax.axhline(optimum, color="black", ls=":", lw=1, label=f"optimum {optimum:.2f}")
    ax.set_xscale("log")
    ax.set_xlabel("queries (distinct cells looked up)")
    ax.set_ylabel("best test accuracy so far (%)")
    low = min(statistics.fmean(runs[(a, s)]["curve"][0] for s in arm_seeds[a]) for a in arms)
    ax.set_ylim(max(low, optimum - 4), optimum + 0.2)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    if shown:
        for arm, share in shown.items():
            qs = sorted(share)
            side.plot(qs, [share[q] for q in qs], "o-", label=arm, lw=1.6 if "gpt" in arm or arm == "ga_adapted" else 1.1)
        side.set_xscale("log")
        side.set_xlabel("queries")
        side.set_ylabel("distinct cells / cells queried, over all seeds")
        side.set_ylim(0, 1.02)
        side.set_title("diversity: 1 = no two seeds queried the same cell", fontsize=9)
        side.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def main(argv=None) -> dict:
    p = parser(__doc__, "seeds per arm (default 200; smoke 2)")
    p.add_argument("--table", default=None, help=f"the NAS-Bench-201 table (default {DEFAULT_TABLE})")
    p.add_argument("--first-seed", type=int, default=0, help="the first seed (choose designs on 0-199, "
                   "confirm on fresh ones, e.g. 1000)")
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    p.add_argument("--output", default=None, help="also write the JSON here")
    p.add_argument("--timing-seeds", type=int, default=5, help="runs of 100 queries timed per arm")
    p.add_argument("--adapted-seeds", type=int, default=None,
                   help="seeds of ga_adapted (the first ones; default all): it fine-tunes the GPT every generation")
    p.add_argument("--confirm-first-seed", type=int, default=None,
                   help="also run the confirmation arms (the recipe's design, the GA+GPT and their controls) on "
                        "as many fresh seeds from this one (1000: seeds 1000-1199)")
    add_shard_option(p, "seed")
    args = parse(p, argv)
    import torch
    from transformers import pipeline as hf_pipeline

    import gptnas_hf  # noqa: F401 - registers the pipeline
    from gptnas_hf.default_model import DEFAULT_MODEL
    from gptnas_hf.search.searcher import _checkpoint_id
    from gptnas_hf.search.table_fitness import FitnessTable
    from gptnas_hf.search_space_protocol import create_space

    smoke = args.budget == "smoke"
    budgets = SMOKE["budgets"] if smoke else QUERY_BUDGETS
    n_seeds = args.seeds or (SMOKE["seeds"] if smoke else 200)
    seeds = list(range(args.first_seed, args.first_seed + n_seeds))
    if smoke:
        table_path = synthetic_table(results_dir() / "runs" / NAME / "synthetic.csv")
    else:
        table_path = Path(args.table or DEFAULT_TABLE)
        if not table_path.is_file():
            raise SystemExit(f"bench.{NAME}: no table at {table_path}: pass --table PATH (a NAS-Bench-201 CSV "
                             "with arch and test_accuracy columns)")
    space = create_space("nas-bench-201")
    recipe_config = _config(table_path, "ga_gpt", 0, max(budgets), Path("unused"))
    table = FitnessTable.load(table_path, recipe_config.table_config().arch_column,
                              recipe_config.table_config().metric, space=space)
    optimum = table.lookup(space.load(table.cell(table.best()[0])))
    shape = {k: getattr(recipe_config.table_config(), k) for k in ("in_channels", "image_size", "num_classes")}
    pipeline = hf_pipeline("nas-reconstruction", model=DEFAULT_MODEL)
    shown = os.path.relpath(table_path.resolve(), ROOT) if table_path.is_absolute() else str(table_path)
    settings = {"budget": args.budget, "table": shown, "table_fingerprint": table.fingerprint(),
                "recipe": str(RECIPE.relative_to(ROOT)), "arms": {a: ARMS[a] for a in args.arms},
                "query_budgets": list(budgets), "seeds": [seeds[0], seeds[-1]], "gpt": _checkpoint_id(DEFAULT_MODEL),
                "threads": torch.get_num_threads()}
    code = _source_fingerprint()

    def arm_key(arm: str, **extra) -> str:
        return hashlib.sha256(json.dumps({"table": table.fingerprint(), "arm": ARMS[arm], "gpt": settings["gpt"],
                                          "budget": max(budgets), **extra}, sort_keys=True).encode()).hexdigest()[:16]

    confirm_first = args.confirm_first_seed if args.confirm_first_seed is not None else (1000 if smoke else None)
    confirm_seeds = list(range(confirm_first, confirm_first + n_seeds)) if confirm_first is not None else []
    if confirm_seeds and set(confirm_seeds) & set(seeds):
        raise SystemExit(f"bench.{NAME}: the confirmation seeds {confirm_seeds[0]}-{confirm_seeds[-1]} overlap the "
                         f"design seeds {seeds[0]}-{seeds[-1]}: confirm on fresh ones")
    cached_arms = list(dict.fromkeys([*args.arms, *(CONFIRM_ARMS if confirm_seeds else ())]))
    cache = RunCache({arm: arm_key(arm, code=code) for arm in cached_arms}, {arm: arm_key(arm) for arm in cached_arms},
                     code, reuse_stale=os.environ.get(REUSE_STALE_ENV) == "1")
    settings["code"] = code
    if cache.stale:
        settings["runs_of_other_code"] = cache.stale
        progress(f"reusing runs made by other search code (--reuse-stale-runs): {cache.stale}")
    arm_seeds = {arm: seeds[:args.adapted_seeds] if arm == "ga_adapted" and args.adapted_seeds else seeds
                 for arm in args.arms}
    settings["seeds_per_arm"] = {arm: len(v) for arm, v in arm_seeds.items()}
    if args.shard is None or args.shard[0] == 0:  # every cell's GPT score once, before the runs read them
        proxy = proxies(table, pipeline, shape, sample=SMOKE["proxy_cells"] if smoke else None,
                        cache_dir=results_dir() / "runs" / NAME / "scores" if smoke else None)
    todo = [(arm, s) for s in shard(seeds, args.shard) for arm in args.arms
            if s in arm_seeds[arm] and (arm, s) not in cache.runs]
    todo += [(arm, s) for s in shard(confirm_seeds, args.shard) for arm in CONFIRM_ARMS if (arm, s) not in cache.runs]
    progress(f"{len(todo)} runs to do ({len(cache.runs)} cached in {cache.folder})")
    started = time.perf_counter()
    for i, (arm, seed) in enumerate(todo, 1):
        cache.put(run_arm(table_path, arm, seed, max(budgets), pipeline))
        if i % 25 == 0 or i == len(todo):
            rate = (time.perf_counter() - started) / i
            progress(f"{i}/{len(todo)} runs, {rate:.2f} s a run, about {rate * (len(todo) - i) / 60:.0f} min left")
    if args.shard is not None:
        return {}
    missing = [(a, s) for a in args.arms for s in arm_seeds[a] if (a, s) not in cache.runs]
    missing += [(a, s) for a in CONFIRM_ARMS for s in confirm_seeds if (a, s) not in cache.runs]
    if missing:
        raise SystemExit(f"bench.{NAME}: {len(missing)} runs missing from {cache.folder}; run again without --shard")
    arms_table, pairs = summarise(cache.runs, args.arms, arm_seeds, budgets, optimum)
    figures = {"seeds": seeds, "optimum": optimum, "arms": arms_table, "pairs": pairs,
               "seeds_per_arm": settings["seeds_per_arm"], "proxy": proxy,
               "diversity": diversity(cache.runs, args.arms, arm_seeds, budgets),
               "seconds_per_run": timing(table_path, args.arms, SMOKE["timing_seeds"] if smoke else args.timing_seeds,
                                         pipeline, SMOKE["timing_queries"] if smoke else 100),
               "anchors": ANCHORS, "run_cache": {arm: str(cache.path(arm).relative_to(results_dir())) for arm in args.arms}}
    if confirm_seeds:
        confirm_arm_seeds = {a: confirm_seeds for a in CONFIRM_ARMS}
        confirm_table, confirm_pairs = summarise(cache.runs, list(CONFIRM_ARMS), confirm_arm_seeds, budgets, optimum,
                                                 CONFIRM_PAIRS)
        figures["confirmation"] = {"seeds": [confirm_seeds[0], confirm_seeds[-1]], "winner": WINNER,
                                   "winner_settings": ARMS[WINNER], "arms": confirm_table, "pairs": confirm_pairs,
                                   "diversity": diversity(cache.runs, list(CONFIRM_ARMS), confirm_arm_seeds, budgets)}
        settings["confirmation"] = {"seeds": [confirm_seeds[0], confirm_seeds[-1]], "arms": list(CONFIRM_ARMS)}
    plot_path = save_figure(plot(cache.runs, args.arms, arm_seeds, max(budgets), optimum,
                                 f"NAS-Bench-201 ({table_path.name}): best so far, {len(seeds)} seeds, 95% bands",
                                 figures["diversity"]),
                            NAME)
    figures["plot"] = plot_path.name
    q = "100" if "100" in next(iter(arms_table.values())) else str(max(budgets))
    parts = [f"{arm} {arms_table[arm][q]['mean']:.2f}" for arm in args.arms]
    pair_text = [f"{name} {row[q]['mean']:+.2f} [{row[q]['ci95'][0]:+.2f}, {row[q]['ci95'][1]:+.2f}] "
                 f"(p={row[q]['p_value']:.2g}, Holm {row[q]['p_holm']:.2g})" for name, row in pairs.items() if q in row]
    headline = (f"{len(seeds)} seeds, best test accuracy after {q} queries: " + ", ".join(parts) + "; "
                + "; ".join(pair_text) + f"; zero-cost Spearman over {figures['proxy']['gpt']['n']} cells: GPT "
                f"{figures['proxy']['gpt']['spearman']:.3f}, params {figures['proxy']['params']['spearman']:.3f}, best GPT "
                f"score {figures['proxy']['best_gpt']} {figures['proxy'][figures['proxy']['best_gpt']]['spearman']:.3f}; "
                f"s/run of {SMOKE['timing_queries'] if smoke else 100}: " + ", ".join(f"{a} {v:.2f}" for a, v in figures["seconds_per_run"].items()))
    if confirm_seeds:
        c = figures["confirmation"]
        headline += (f"; confirmation on seeds {confirm_seeds[0]}-{confirm_seeds[-1]}: {WINNER} {c['arms'][WINNER][q]['mean']:.2f}, "
                     + "; ".join(f"{name} {row[q]['mean']:+.2f} [{row[q]['ci95'][0]:+.2f}, {row[q]['ci95'][1]:+.2f}] "
                                 f"(Holm {row[q]['p_holm']:.2g})" for name, row in c["pairs"].items() if q in row))
    path = write_result(NAME, settings, figures, headline)
    if args.output:  # a copy of the JSON and its figure under another name, the copy naming its own figure
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plot_path, output.with_suffix(".png"))
        record = json.loads(path.read_text())
        record["figures"]["plot"] = output.with_suffix(".png").name
        output.write_text(json.dumps(record, indent=1))
    return figures


if __name__ == "__main__":
    main()
