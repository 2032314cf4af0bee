"""Fidelity against NAS-Bench-201: do our cheap fitness functions rank the benchmark's cells the
way its 200-epoch training does?

The truth is independent of us: the NAS-Bench-201 table (``--table``, default the shared
CIFAR-10 table), each cell's test accuracy after the benchmark's own 200-epoch training. Two
parts, on seeded samples of the table's cells:

* **trained proxies.** Each cell is built as the benchmark's network (16 channels, 5 cells a
  stage) and trained exactly as the searcher trains a candidate, on the shared CIFAR-10 parquet;
  its fitness is the accuracy on our validation split (carved from the training images; no
  test image is read). ``recipe`` is the default CPU proxy of ``recipes/search-cifar10-cpu.yaml``
  (its ``data`` and ``evaluation`` sections); the variants change one axis of it (epochs, input
  size). Each gets Spearman and Kendall against the table with 95% bootstrap intervals over the
  cells, the same on the cells in the table's top half (where ranking is hard: the bottom holds
  networks that barely learn), the share at chance and seconds per candidate (a timing pass at
  the end trains ``--timing-cells`` cells per variant again, uncached).
  *Selection:* on sample A (``--cells``, seeded 0) the variant with the highest Spearman among
  those that cost no more than the recipe is chosen; it is trained once more on a fresh sample
  B (``--confirm-cells``, disjoint from A), and that is the figure to quote. The Pearson
  correlation of about 0.91 between 12-epoch and 200-epoch accuracy in the NAS-Bench-201 paper
  is the anchor for a trained proxy.
* **zero-cost proxies** (``gptnas_hf.zero_cost``) at initialisation on ``--zero-cost-cells``
  cells: the protocol of Abdelfattah et al. (ICLR 2021): one batch of 64 CIFAR-10 training
  images at 32 px drawn at random (seeded), the network at 16 channels with 10 classes; their published Spearman over all 15,625 cells
  beside ours. The parameter count is scored on the same cells as a knowledge-free baseline.
  The networks are scored as the package initialises them (``"zero_cost"``), and synflow, snip
  and grad_norm again with PyTorch's default initialisation, the published figures' protocol
  (``"zero_cost_pytorch_init"``): grad_norm sums gradient norms and follows the weights' scale.

Trainings are cached in ``RESULTS/runs/candidates.jsonl`` (``bench.common.CandidateCache``,
keyed by the training code) and zero-cost scores in
``RESULTS/runs/fidelity_nas_bench_201/zero_cost-KEY.jsonl``: a killed run resumes, and
``--shard I/N`` lets N processes share the work (a run without it writes the results).
``--parts zero_cost --zero-cost-inits pytorch --name NAME`` measures one part alone into
``RESULTS/NAME.json`` without replacing the full run's result.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from pathlib import Path

from .common import (ROOT, CandidateCache, Clock, add_shard_option, code_fingerprint, data_source, eval_config, fmt,
                     mean, parse, parser, progress, pyplot, results_dir, save_figure, search_config, shard,
                     train_candidate, write_result)

NAME = "fidelity_nas_bench_201"
DEFAULT_TABLE = ROOT.parent / "shared" / "data" / "nas-bench-201" / "cifar10.csv"
#: name -> overrides of the recipe's data / evaluation sections (one axis at a time)
VARIANTS = {
    "recipe": {},
    "e1": {"evaluation": {"epochs": 1}},
    "e3": {"evaluation": {"epochs": 3}},
    "e12": {"evaluation": {"epochs": 12}},
    "e6 32px": {"data": {"image_size": 32}},
}
#: published Spearman against 200-epoch CIFAR-10 test accuracy over all 15,625 cells
#: (Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021); naswot is the
#: later NASWOT score (Mellor et al., ICML 2021), not in that table (their jacob_cov is its first version)
PUBLISHED = {"synflow": 0.737, "jacob_cov": 0.731, "snip": 0.596, "grad_norm": 0.594, "naswot": None,
             "params": None}
ZERO_COST = ("synflow", "jacob_cov", "snip", "grad_norm", "naswot")
#: the initialisations zero-cost scores are measured at: the package's, and PyTorch's defaults
#: (the published figures' protocol) for the proxies that read gradients or weights
INITS = ("package", "pytorch")
REFERENCE_INIT_PROXIES = ("synflow", "snip", "grad_norm")
ZERO_COST_DATA = {"max_train_per_class": 250, "val_fraction": 0.2, "max_test": 0, "image_size": 32}
ZERO_COST_BATCH = 64
#: the NAS-Bench-201 paper's correlation of 12-epoch with 200-epoch accuracy (Pearson)
TRAINED_ANCHOR = 0.91
CHANCE_MARGIN = 0.02
BOOTSTRAP = 2000
SMOKE = {"cells": 6, "confirm_cells": 4, "zero_cost_cells": 6, "variants": ("recipe", "e1"), "timing_cells": 1,
         "zero_cost_data": {"max_train_per_class": 8, "val_fraction": 0.25, "max_test": 0, "image_size": 8}}


# -- samples and statistics --------------------------------------------------------------------
def samples(keys: list[str], cells: int, confirm: int, zero_cost: int) -> dict[str, list[str]]:
    """Seeded samples of the table's keys: A (selection), B (confirmation, disjoint from A) and
    the zero-cost sample (its own seed)."""
    keys = sorted(keys)
    order = random.Random(0).sample(keys, min(len(keys), cells + confirm))
    return {"A": order[:cells], "B": order[cells:cells + confirm],
            "zero_cost": random.Random(2).sample(keys, min(len(keys), zero_cost))}


def _ranked(values) -> list[float]:
    """NaN and None rank last (the zero-cost contract)."""
    finite = [v for v in values if v is not None and v == v]
    floor = (min(finite) - 1.0) if finite else 0.0
    return [floor if v is None or v != v else v for v in values]


def rank_stats(scores, truth, seed: int = 0, resamples: int = BOOTSTRAP) -> dict:
    """Spearman and Kendall of ``scores`` against ``truth`` with percentile bootstrap 95%
    intervals over the cells (``resamples`` draws, seeded); NaN scores rank last."""
    import numpy as np
    from scipy.stats import kendalltau, spearmanr

    x, y = np.asarray(_ranked(scores), dtype=float), np.asarray(truth, dtype=float)
    n = len(x)
    if n < 3 or len(set(x)) < 2:
        return {"spearman": None, "kendall": None, "ci95": None, "kendall_ci95": None, "n": n}
    rng = np.random.default_rng(seed)
    boot_s, boot_k = [], []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        if len(set(x[idx])) < 2 or len(set(y[idx])) < 2:
            continue
        boot_s.append(spearmanr(x[idx], y[idx]).statistic)
        boot_k.append(kendalltau(x[idx], y[idx]).statistic)

    def interval(values):
        return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if values else None

    s, k = spearmanr(x, y), kendalltau(x, y)
    return {"spearman": float(s.statistic), "spearman_p": float(s.pvalue), "kendall": float(k.statistic),
            "kendall_p": float(k.pvalue), "ci95": interval(boot_s), "kendall_ci95": interval(boot_k), "n": n}


def top_half(scores, truth, median: float) -> dict:
    """:func:`rank_stats` on the cells whose table accuracy is at least the table's median."""
    kept = [(s, t) for s, t in zip(scores, truth) if t >= median]
    if len(kept) < 3:
        return {"spearman": None, "kendall": None, "ci95": None, "n": len(kept)}
    a, b = zip(*kept)
    return rank_stats(list(a), list(b))


def choose(rows: dict[str, dict], reference: str = "recipe") -> str:
    """The variant with the highest Spearman on sample A among those costing no more than
    ``reference`` (ties: the cheaper); ``reference`` itself when none can be ranked."""
    cost = rows[reference]["seconds_per_candidate"]
    eligible = [name for name, row in rows.items()
                if row["spearman"] is not None and row["seconds_per_candidate"] <= cost * 1.05]
    if not eligible:
        return reference
    return max(eligible, key=lambda name: (rows[name]["spearman"], -rows[name]["seconds_per_candidate"]))


# -- the two parts -----------------------------------------------------------------------------
def _variant_settings(config, name: str) -> tuple[dict, dict]:
    overrides = VARIANTS[name]
    evaluation = {k: v for k, v in config.evaluation.items() if k != "progress"}
    return {**config.data, **overrides.get("data", {})}, {**evaluation, **overrides.get("evaluation", {})}


class _Data:
    """Data sets by their settings, loaded once."""

    def __init__(self, budget: str, dataset: str | None, seed: int):
        self.source, self.seed, self.loaded = data_source(budget, dataset), seed, {}

    def get(self, settings: dict):
        from gptnas_hf.data import load_image_data

        key = json.dumps(settings, sort_keys=True)
        if key not in self.loaded:
            data = load_image_data(self.source, seed=self.seed, progress=False, **settings)
            shown = self.source if not os.path.isabs(self.source) else os.path.relpath(self.source, ROOT)
            self.loaded[key] = (data, {"source": shown, "seed": self.seed, **settings, "train": len(data.train_y),
                                       "val": len(data.val_y)})
        return self.loaded[key]


def train(config, data: _Data, space, cache, jobs, smoke: bool) -> dict:
    """Train every (variant, arch) job; ``{(variant, arch): record}``."""
    out = {}
    for i, (name, arch) in enumerate(jobs, 1):
        data_settings, evaluation = _variant_settings(config, name)
        if smoke:
            evaluation = {**evaluation, "batch_size": 32, "max_batches_per_epoch": 1}
        images, data_key = data.get(data_settings)
        out[(name, arch)] = train_candidate(arch, images, eval_config(config, **evaluation), data_key, config.seed,
                                            cache=cache, space=space)
        if cache is not None and (i % 10 == 0 or i == len(jobs)):
            progress(f"trained {i}/{len(jobs)} ({cache.misses} new, {cache.hits} cached)")
    return out


def _zero_cost_key(space_name: str, settings: dict) -> str:
    import torch

    import gptnas_hf

    digest = hashlib.sha256(json.dumps({"settings": settings, "torch": torch.__version__, "space": space_name,
                                        "code": code_fingerprint()}, sort_keys=True).encode())
    package = Path(gptnas_hf.__file__).resolve().parent
    for name in ("zero_cost.py", "space_nas_bench_201.py"):
        digest.update((package / name).read_bytes())
    return digest.hexdigest()[:16]


def reinitialise_as_pytorch(network) -> None:
    """Give every module PyTorch's default initialisation (``reset_parameters``), the protocol of
    the published zero-cost figures, instead of the package's (kaiming fan-out convolutions, a
    classifier drawn with std 0.01)."""
    for module in network.modules():
        if module is not network and hasattr(module, "reset_parameters"):
            module.reset_parameters()


def zero_cost(space, archs: list[str], images, labels, num_classes: int, data_key: dict,
              seed: int, part: tuple[int, int] | None = None, init: str = "package",
              proxies: tuple[str, ...] = ZERO_COST) -> tuple[dict, dict] | None:
    """Every zero-cost proxy and the parameter count on every arch (cached), each network built
    for ``num_classes`` (the data's, not the batch's: a batch may miss classes); ``(scores,
    seconds)``, each ``{proxy: [value per arch]}``. ``part``: an ``--shard`` (I, N): score every
    N-th cell still to do, from the I-th, and return None. ``init``: ``"package"`` (the networks
    as the package initialises them) or ``"pytorch"`` (:func:`reinitialise_as_pytorch`)."""
    import torch

    from gptnas_hf.zero_cost import zero_cost_score

    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    settings = {**data_key, "batch": len(labels), "draw": "random", "classes": num_classes, "seed": seed}
    if init != "package":  # the package's runs keep their key (and cache)
        settings["init"] = init
    key = _zero_cost_key(space.name, settings)
    path = results_dir() / "runs" / NAME / f"zero_cost-{key}.jsonl"
    done: dict[tuple[str, str], dict] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill
                continue
            done[(row["arch"], row["proxy"])] = row
    path.parent.mkdir(parents=True, exist_ok=True)
    todo = shard([a for a in archs if any((a, p) not in done for p in proxies)], part)
    progress(f"zero-cost: {len(todo)} of {len(archs)} cells to score ({path.name})")
    with path.open("a") as handle:
        for i, arch in enumerate(todo, 1):
            cell = space.load(arch)
            torch.manual_seed(seed)
            network = space.build_network(cell, in_channels=images.shape[1], num_classes=num_classes)
            if init == "pytorch":
                reinitialise_as_pytorch(network)
            for proxy in proxies:
                if (arch, proxy) in done:
                    continue
                started = time.perf_counter()
                value = zero_cost_score(network, images, labels, proxy, seed=seed)
                row = {"arch": arch, "proxy": proxy, "value": None if value != value else value,
                       "seconds": round(time.perf_counter() - started, 4)}
                done[(arch, proxy)] = row
                handle.write(json.dumps(row) + "\n")
            handle.flush()
            if i % 50 == 0 or i == len(todo):
                progress(f"zero-cost: {i}/{len(todo)} cells")
    if part is not None:
        return None
    scores = {p: [done[(a, p)]["value"] for a in archs] for p in proxies}
    seconds = {p: [done[(a, p)]["seconds"] for a in archs] for p in proxies}
    scores["params"] = [space.parameters(space.load(a), images.shape[1], num_classes) for a in archs]
    seconds["params"] = [0.0] * len(archs)
    return scores, seconds


# -- the benchmark -------------------------------------------------------------------------------
def _plot(trained: dict, zero: dict, confirmation: dict | None, n_a: int, n_zero: int):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, row in trained.items():
        if row["spearman"] is None:
            continue
        low, high = row["ci95"]
        ax.errorbar(row["seconds_per_candidate"], row["spearman"], yerr=[[row["spearman"] - low], [high - row["spearman"]]],
                    fmt="o", color="tab:red" if name == "recipe" else "tab:blue", capsize=3)
        ax.annotate(name, (row["seconds_per_candidate"], row["spearman"]), fontsize=8, xytext=(5, 3),
                    textcoords="offset points")
    if confirmation and confirmation.get("spearman") is not None:
        ax.scatter(confirmation["seconds_per_candidate"], confirmation["spearman"], marker="*", s=200, color="tab:purple",
                   label=f"{confirmation['variant']} on fresh cells (B)", zorder=5)
    for name, row in zero.items():
        if row["spearman"] is None:
            continue
        ax.scatter(max(row["seconds_per_candidate"], 1e-3), row["spearman"], color="tab:green", marker="s")
        label = name if row["published"] is None else f"{name} (published {row['published']:.2f})"
        ax.annotate(label, (max(row["seconds_per_candidate"], 1e-3), row["spearman"]), fontsize=7, xytext=(5, -8),
                    textcoords="offset points")
    ax.axhline(TRAINED_ANCHOR, color="grey", ls=":", lw=1, label="12 vs 200 epochs (NAS-Bench-201 paper, Pearson)")
    ax.set_xscale("log")
    ax.set_xlabel("seconds per candidate (log; 1 torch thread)")
    ax.set_ylabel("Spearman with NAS-Bench-201's 200-epoch accuracy")
    ax.set_title(f"Proxy fidelity on NAS-Bench-201: trained ({n_a} cells, 95% bootstrap) and zero-cost ({n_zero} cells)",
                 fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def _plot_zero_cost(by_init: dict[str, dict], n_zero: int):
    """A zero-cost run alone (no trained part): each proxy's Spearman with its 95% bootstrap
    interval at every initialisation measured, beside the published figure."""
    plt = pyplot()
    names = [n for n in dict.fromkeys(k for rows in by_init.values() for k in rows) if n != "params"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / (len(by_init) + 1)
    colours = {"package": "tab:green", "pytorch": "tab:blue"}
    for j, (init, rows) in enumerate(by_init.items()):
        for i, name in enumerate(names):
            row = rows.get(name)
            if not row or row["spearman"] is None:
                continue
            low, high = row["ci95"] or (row["spearman"], row["spearman"])
            ax.bar(i + j * width, row["spearman"], width, color=colours.get(init, "tab:grey"),
                   yerr=[[row["spearman"] - low], [high - row["spearman"]]], capsize=3,
                   label=f"ours, {init} initialisation")
    for i, name in enumerate(names):
        published = PUBLISHED.get(name)
        if published is not None:
            ax.bar(i + len(by_init) * width, published, width, color="lightgrey", edgecolor="black",
                   label="published (all 15,625 cells)")
    ax.set_xticks([i + width * len(by_init) / 2 for i in range(len(names))], names)
    ax.set_ylabel("Spearman with NAS-Bench-201's 200-epoch accuracy")
    ax.set_title(f"Zero-cost proxies on {n_zero} NAS-Bench-201 cells (95% bootstrap) and the published figures",
                 fontsize=9)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3, axis="y")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))  # every bar is labelled; the legend names each kind once
    ax.legend(unique.values(), unique.keys(), fontsize=8, loc="upper right")
    return fig


def main(argv=None) -> dict | None:
    p = parser(__doc__, "unused")
    p.add_argument("--table", default=None, help=f"the NAS-Bench-201 table (default {DEFAULT_TABLE})")
    p.add_argument("--cells", type=int, default=100, help="cells of sample A (selection)")
    p.add_argument("--confirm-cells", type=int, default=100, help="fresh cells of sample B (the chosen variant)")
    p.add_argument("--zero-cost-cells", type=int, default=1000, help="cells scored by the zero-cost proxies")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--parts", nargs="+", choices=("trained", "zero_cost"), default=["trained", "zero_cost"])
    p.add_argument("--timing-cells", type=int, default=3, help="cells a variant is timed on, uncached")
    p.add_argument("--zero-cost-inits", nargs="+", choices=INITS, default=list(INITS),
                   help="the initialisations the zero-cost proxies are scored at (default both)")
    p.add_argument("--name", default=NAME,
                   help=f"the result's name, RESULTS/NAME.json and .png (default {NAME}): give a partial run "
                        "(--parts, --zero-cost-inits) its own so that it does not replace the full one")
    add_shard_option(p, "training job (and, with --parts zero_cost, zero-cost cell)")
    args = parse(p, argv)
    if not args.name or args.name != Path(args.name).name or args.name.startswith("."):
        raise SystemExit(f"bench.{NAME}: --name must be a plain file name without folders, got {args.name!r}")
    import torch

    from gptnas_hf.data import normalize
    from gptnas_hf.zero_cost import zero_cost_batch
    from gptnas_hf.search.table_fitness import FitnessTable
    from gptnas_hf.search_space_protocol import create_space

    clock = Clock()
    smoke = args.budget == "smoke"
    space = create_space("nas-bench-201")
    if smoke:
        from .nas_bench_201 import synthetic_table

        table_path = synthetic_table(results_dir() / "runs" / NAME / "synthetic.csv")
        n_a, n_b, n_zero = SMOKE["cells"], SMOKE["confirm_cells"], SMOKE["zero_cost_cells"]
        variants = [v for v in args.variants if v in SMOKE["variants"]] or list(SMOKE["variants"])
        timing_cells = SMOKE["timing_cells"]
    else:
        table_path = Path(args.table or DEFAULT_TABLE)
        n_a, n_b, n_zero, variants, timing_cells = (args.cells, args.confirm_cells, args.zero_cost_cells,
                                                    args.variants, args.timing_cells)
        if not table_path.is_file():
            raise SystemExit(f"bench.{NAME}: no table at {table_path}: pass --table PATH (a NAS-Bench-201 CSV with "
                             "arch and test_accuracy columns)")
    if "recipe" not in variants:
        variants = ["recipe", *variants]
    table = FitnessTable.load(table_path, "arch", "test_accuracy", space=space)
    keys = sorted(table)
    truth_of = {key: table.lookup(space.load(table.cell(key))) for key in keys}
    median = sorted(truth_of.values())[len(keys) // 2]
    sample = samples(keys, n_a, n_b, n_zero)
    config = search_config(args.budget)
    data = _Data(args.budget, args.dataset, config.seed)
    cache = CandidateCache()
    cell = {key: table.cell(key) for key in sample["A"] + sample["B"] + sample["zero_cost"]}

    figures: dict = {"table": {"path": os.path.relpath(table_path.resolve(), ROOT), "cells": len(keys),
                               "median": median, "fingerprint": table.fingerprint()}}
    settings = {"budget": args.budget, "recipe": "recipes/search-cifar10-cpu.yaml" if not smoke else "smoke",
                "variants": {v: VARIANTS[v] for v in variants}, "samples": {k: len(v) for k, v in sample.items()},
                "sample_seeds": {"A+B": 0, "zero_cost": 2}, "bootstrap": BOOTSTRAP,
                "zero_cost": {"data": ZERO_COST_DATA, "batch": ZERO_COST_BATCH, "proxies": list(ZERO_COST)},
                "threads": torch.get_num_threads()}
    if "trained" in args.parts:
        jobs = [(v, cell[k]) for v in variants for k in sample["A"]]
        if args.shard is not None:
            train(config, data, space, cache, shard(jobs, args.shard), smoke)
        else:
            records = train(config, data, space, cache, jobs, smoke)
            truth = [truth_of[k] for k in sample["A"]]
            rows = {}
            for v in variants:
                fitness = [records[(v, cell[k])]["fitness"] for k in sample["A"]]
                data_settings, evaluation = _variant_settings(config, v)
                rows[v] = {**rank_stats(fitness, truth), "top_half": top_half(fitness, truth, median),
                           "seconds_in_cached_runs": mean([records[(v, cell[k])]["seconds"] for k in sample["A"]]),
                           "at_chance_fraction": sum(f <= 0.1 + CHANCE_MARGIN for f in fitness) / len(fitness),
                           "settings": {"data": data_settings, "evaluation": evaluation}, "fitness": fitness}
            # timing pass: a few cells per variant trained again, uncached, in this one process
            timing = sample["A"][:timing_cells]
            for v in variants:
                rows[v]["seconds_per_candidate"] = mean(
                    train(config, data, space, None, [(v, cell[k])], smoke)[(v, cell[k])]["seconds"] for k in timing)
            chosen = choose(rows)
            progress(f"chosen on sample A: {chosen}; confirming on {len(sample['B'])} fresh cells")
            confirm = train(config, data, space, cache, [(chosen, cell[k]) for k in sample["B"]], smoke)
            fitness_b = [confirm[(chosen, cell[k])]["fitness"] for k in sample["B"]]
            truth_b = [truth_of[k] for k in sample["B"]]
            confirmation = {"variant": chosen, **rank_stats(fitness_b, truth_b),
                            "top_half": top_half(fitness_b, truth_b, median),
                            "seconds_per_candidate": rows[chosen]["seconds_per_candidate"]}
            default = rows["recipe"]
            figures.update({
                "proxy": {"variant": "recipe", "spearman": default["spearman"], "kendall": default["kendall"],
                          "ci95": default["ci95"], "kendall_ci95": default["kendall_ci95"], "n": default["n"],
                          "top_half": default["top_half"], "seconds_per_candidate": default["seconds_per_candidate"]},
                "variants": rows, "chosen": chosen, "confirmation": confirmation, "truth": truth, "truth_b": truth_b,
                "sample_a": [cell[k] for k in sample["A"]], "sample_b": [cell[k] for k in sample["B"]],
                "anchor": {"pearson_12_vs_200_epochs": TRAINED_ANCHOR, "source": "NAS-Bench-201 paper (Dong and Yang, ICLR 2020)"}})
    if args.shard is not None and "zero_cost" not in args.parts:
        return None
    if "zero_cost" in args.parts:
        images, data_key = data.get(SMOKE["zero_cost_data"] if smoke else ZERO_COST_DATA)
        # one batch drawn at random from the training images (seeded; the loader's order is by class)
        drawn = zero_cost_batch(len(images.train_y), ZERO_COST_BATCH, config.seed)
        batch = normalize(images.train_x[drawn], images.mean, images.std)
        labels = images.train_y[drawn]
        archs = [cell[k] for k in sample["zero_cost"]]
        scored = reference = None
        if "package" in args.zero_cost_inits:
            scored = zero_cost(space, archs, batch, labels, images.num_classes, data_key, config.seed, args.shard)
        if "pytorch" in args.zero_cost_inits:
            # the same cells and batch with PyTorch's default initialisation: the published protocol
            reference = zero_cost(space, archs, batch, labels, images.num_classes, data_key, config.seed, args.shard,
                                  init="pytorch", proxies=REFERENCE_INIT_PROXIES)
        if args.shard is not None:  # one shard's cells scored and cached
            return None
        truth_z = [truth_of[k] for k in sample["zero_cost"]]

        def rows(scores, seconds):
            return {name: {**rank_stats(values, truth_z), "top_half": top_half(values, truth_z, median),
                           "published": PUBLISHED.get(name), "seconds_per_candidate": mean(seconds[name]),
                           "nan": sum(v is None or v != v for v in values)}
                    for name, values in scores.items()}

        if scored is not None:
            figures["zero_cost"] = rows(*scored)
        if reference is not None:
            figures["zero_cost_pytorch_init"] = {k: v for k, v in rows(*reference).items() if k != "params"}
        settings["zero_cost"]["inits"] = list(args.zero_cost_inits)
        if "pytorch" in args.zero_cost_inits:
            settings["zero_cost"]["proxies_at_pytorch_init"] = list(REFERENCE_INIT_PROXIES)
    if "trained" not in args.parts:
        settings.pop("variants")
    settings["parts"] = list(args.parts)
    settings.update(clock.info())
    if "trained" in args.parts:
        fig = _plot(figures.get("variants", {}), figures.get("zero_cost", {}), figures.get("confirmation"), n_a, n_zero)
    else:
        fig = _plot_zero_cost({init: figures[key] for init, key in (("package", "zero_cost"),
                                                                    ("pytorch", "zero_cost_pytorch_init"))
                               if key in figures}, n_zero)
    figures["plot"] = save_figure(fig, args.name).name
    parts = []
    if "proxy" in figures:
        d, c = figures["proxy"], figures["confirmation"]
        parts.append(f"default CPU proxy on {d['n']} cells: Spearman {fmt(d['spearman'], '.2f')} "
                     f"[{fmt(d['ci95'][0] if d['ci95'] else None, '.2f')}, {fmt(d['ci95'][1] if d['ci95'] else None, '.2f')}], "
                     f"Kendall {fmt(d['kendall'], '.2f')}, top half {fmt(d['top_half']['spearman'], '.2f')}, "
                     f"{fmt(d['seconds_per_candidate'], '.1f')} s a cell; chosen {figures['chosen']}, on {c['n']} fresh "
                     f"cells {fmt(c['spearman'], '.2f')}")
    for key, title in (("zero_cost", "zero-cost"), ("zero_cost_pytorch_init", "with PyTorch's default initialisation")):
        if key in figures:
            parts.append(f"{title} on {n_zero} cells: " + ", ".join(
                f"{k} {fmt(v['spearman'], '.3f')}" + (f" (published {v['published']})" if v["published"] else "")
                for k, v in figures[key].items()))
    write_result(args.name, settings, figures, "; ".join(parts))
    return figures


if __name__ == "__main__":
    main()
