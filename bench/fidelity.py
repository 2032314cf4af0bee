"""Fidelity of the cheap fitness: how well does each proxy rank networks the way long training
does, and at what cost? (the paper's Table 5 question, asked against a committed reference)

The truth is ``bench/results/reference_ranking.json`` (``bench.reference_ranking``: 38 networks
of the CPU proxy search space trained 10 epochs on 5,000 CIFAR-10 training images, scored on
2,000 validation images carved from the training split, so that choosing a proxy never looks at
the test split). Every proxy variant scores the same networks and is compared with it:

* trained proxies, one axis at a time around the proxy the recipe used before this benchmark
  (250 images a class, 20% of them for validation, 3 epochs, batch 64, lr 0.1 warmed up over
  half an epoch, every parameter trained, 32 px): epochs (1, 3, 6), learning-rate schedule
  (one-cycle; cosine with label smoothing), input resolution (16 px, at 3 and 6 epochs), train
  scope (BatchNorm only); then the best schedule (cosine with label smoothing, measured first)
  with more epochs at 32 and 16 px;
* zero-cost proxies at initialisation (``gptnas_hf.zero_cost``: NASWOT, synflow, grad_norm) on
  64 training images;
* the proxy ``recipes/search-cifar10-cpu.yaml`` uses now (``default_proxy`` in the JSON).

For each: Spearman and Kendall correlation with the reference (``scipy.stats``, with p-values),
seconds per candidate and the share of networks at chance. Seconds are measured in a timing
pass at the end (``--timing-genomes``, 4 networks a variant trained again, uncached, one
process, one torch thread), because the cached trainings may have shared the cores with other
jobs.
``fidelity.png`` plots correlation against cost. Trainings are cached in
``RESULTS/runs/candidates.jsonl``; ``--shard I/N`` trains every N-th (variant, network) pair so
N processes can share the cores, and a run without it writes the results.
"""

from __future__ import annotations

import json
import time

from .common import (CandidateCache, Clock, add_shard_option, eval_config, fmt, mean, parse, parser, progress, pyplot,
                     recipe_name, results_dir, save_figure, search_config, shard, train_candidate, write_result)

NAME = "fidelity"
BASE = {"data": {"max_train_per_class": 250, "val_fraction": 0.2, "max_test": 2000},
        "evaluation": {"epochs": 3, "batch_size": 64, "lr": 0.1, "warmup_epochs": 0.5, "weight_decay": 0.0,
                       "augment": False, "train_scope": "full", "lr_schedule": "warmup",
                       "label_smoothing": 0.0}}
#: name -> overrides of BASE (one axis at a time)
VARIANTS = {
    "e3 (before)": {},
    "e1": {"evaluation": {"epochs": 1}},
    "e3 16px": {"data": {"image_size": 16}},
    "e3 one-cycle": {"evaluation": {"lr_schedule": "onecycle"}},
    "e3 cosine+ls0.1": {"evaluation": {"lr_schedule": "cosine", "label_smoothing": 0.1}},
    "e6 16px": {"data": {"image_size": 16}, "evaluation": {"epochs": 6}},
    "e3 bn-only": {"evaluation": {"train_scope": "bn"}},
    "e6": {"evaluation": {"epochs": 6}},
    # the best schedule with more epochs, at full and at a quarter of the pixels
    "e4 cosine+ls0.1": {"evaluation": {"epochs": 4, "lr_schedule": "cosine", "label_smoothing": 0.1}},
    "e6 16px cosine+ls0.1": {"data": {"image_size": 16},
                             "evaluation": {"epochs": 6, "lr_schedule": "cosine", "label_smoothing": 0.1}},
}
ZERO_COST = ("naswot", "synflow", "grad_norm")
SMOKE_VARIANTS = ("e3 (before)", "e1")


def _settings(overrides: dict) -> tuple[dict, dict]:
    return ({**BASE["data"], **overrides.get("data", {})}, {**BASE["evaluation"], **overrides.get("evaluation", {})})


def _rank_stats(x, y) -> dict:
    from scipy.stats import kendalltau, spearmanr

    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None and a == a]
    if len(pairs) < 3 or len({a for a, _ in pairs}) < 2:
        return {"spearman": None, "spearman_p": None, "kendall": None, "kendall_p": None, "n": len(pairs)}
    a, b = zip(*pairs)
    s, k = spearmanr(a, b), kendalltau(a, b)
    return {"spearman": float(s.statistic), "spearman_p": float(s.pvalue), "kendall": float(k.statistic),
            "kendall_p": float(k.pvalue), "n": len(pairs)}


def load_reference(budget: str) -> dict:
    path = results_dir() / "reference_ranking.json"
    if not path.is_file() and budget == "smoke":
        from . import reference_ranking

        reference_ranking.main(["--budget", "smoke"])
    if not path.is_file():
        raise SystemExit(f"no reference ranking at {path}: run python -m bench.reference_ranking --budget {budget} first")
    record = json.loads(path.read_text())
    if record["settings"]["budget"] != budget:
        raise SystemExit(f"{path} was measured at budget {record['settings']['budget']!r}, not {budget!r}")
    return record


def _proxy_data(config, budget, dataset, data_settings: dict):
    from gptnas_hf.data import load_image_data

    from .common import data_source

    source = data_source(budget, dataset)
    if budget == "smoke":
        data_settings = {**data_settings, "max_train_per_class": 8, "val_fraction": 0.25}
    data = load_image_data(source, seed=config.seed, progress=False, **data_settings)
    key = {"source": source, "seed": config.seed, **data_settings, "train": len(data.train_y), "val": len(data.val_y)}
    return data, key


def main(argv=None) -> dict | None:
    p = parser(__doc__, "unused")
    add_shard_option(p, "(variant, network) pair")
    p.add_argument("--timing-genomes", type=int, default=4, help="networks a variant is timed on, uncached")
    p.add_argument("--only", nargs="+", default=None, help="with --shard: train only these variants")
    args = parse(p, argv)
    clock = Clock()
    config = search_config(args.budget)
    from .reference_ranking import reference_genomes

    genomes = [g for _, g in reference_genomes(args.budget, config)]  # the reference's networks, in its order
    variants = {k: v for k, v in VARIANTS.items() if args.budget != "smoke" or k in SMOKE_VARIANTS}
    recipe_data, recipe_eval = dict(config.data), {k: v for k, v in eval_config(config).__dict__.items()}
    cache = CandidateCache()
    jobs = [(name, i) for name in variants for i in range(len(genomes))]
    jobs += [("recipe", i) for i in range(len(genomes))]
    if args.shard:
        jobs = shard([job for job in jobs if not args.only or job[0] in args.only], args.shard)
    data_by_key: dict[str, tuple] = {}
    scores: dict[str, list] = {}
    seconds: dict[str, list] = {}
    described: dict[str, dict] = {}
    for name, i in jobs:
        if name == "recipe":
            data_settings, evaluation = recipe_data, {k: v for k, v in recipe_eval.items() if k not in ("progress",)}
        else:
            data_settings, evaluation = _settings(variants[name])
        if args.budget == "smoke":
            evaluation = {**evaluation, "batch_size": 32, "max_batches_per_epoch": 1}
        dkey = json.dumps(data_settings, sort_keys=True)
        if dkey not in data_by_key:
            data_by_key[dkey] = _proxy_data(config, args.budget, args.dataset, data_settings)
        data, data_key = data_by_key[dkey]
        record = train_candidate(genomes[i], data, eval_config(config, **evaluation), data_key, config.seed, cache=cache)
        scores.setdefault(name, [None] * len(genomes))[i] = record["fitness"]
        seconds.setdefault(name, [None] * len(genomes))[i] = record["seconds"]
        described[name] = {"data": data_settings, "evaluation": evaluation}
        if args.shard:
            progress(f"{name} / network {i}: {record['fitness']:.3f} ({record['seconds']:.1f} s)")
    if args.shard:
        return None
    reference = load_reference(args.budget)
    networks = reference["figures"]["networks"]
    if [r["hash"] for r in networks] != [g.hash() for g in genomes]:
        raise SystemExit("the reference ranking holds other networks than bench.reference_ranking draws: re-run it")
    truth = [r["accuracy"] for r in networks]

    # timing pass: a few networks per trained variant again, uncached, nothing else running here
    timing = list(range(0, len(genomes), max(1, len(genomes) // max(args.timing_genomes, 1))))[:args.timing_genomes]
    loaded_seconds = {name: list(values) for name, values in seconds.items()}
    for name in list(seconds):
        data, data_key = data_by_key[json.dumps(described[name]["data"], sort_keys=True)]
        evaluation = eval_config(config, **described[name]["evaluation"])
        seconds[name] = [train_candidate(genomes[i], data, evaluation, data_key, config.seed)["seconds"] for i in timing]
    progress(f"timed {len(timing)} networks per variant")

    # zero-cost proxies (cheap: computed afresh every run, timed here)
    import torch

    from gptnas_hf.zero_cost import score_genome

    zc_data, _ = data_by_key.get(json.dumps(BASE["data"], sort_keys=True)) or _proxy_data(config, args.budget, args.dataset, BASE["data"])
    for proxy in ZERO_COST:
        values, times = [], []
        for genome in genomes:
            start = time.perf_counter()
            values.append(score_genome(genome, zc_data, proxy, batch_size=64, seed=config.seed))
            times.append(time.perf_counter() - start)
        scores[f"zero-cost {proxy}"], seconds[f"zero-cost {proxy}"] = values, times
        described[f"zero-cost {proxy}"] = {"proxy": proxy, "batch_size": 64, "data": BASE["data"]}
    progress(f"{cache.misses} trained, {cache.hits} cached; threads {torch.get_num_threads()}")

    chance = 1 / 10
    rows = []
    for name in scores:
        stats = _rank_stats(scores[name], truth)
        trained = not name.startswith("zero-cost")
        rows.append({"name": name, **stats, "seconds_per_candidate": mean(seconds[name]), "settings": described[name],
                     "seconds_in_cached_runs": mean(loaded_seconds.get(name, [])),
                     "at_chance_fraction": (sum(v <= chance + 0.02 for v in scores[name]) / len(genomes)) if trained else None,
                     "scores": scores[name]})
    default = next(r for r in rows if r["name"] == "recipe")
    same_as = [r["name"] for r in rows if r["name"] != "recipe" and r["scores"] == default["scores"]]
    figures = {
        "variants": rows, "reference": {"n": len(truth), "settings": reference["settings"], "accuracy": truth},
        "default_proxy": {"spearman": default["spearman"], "kendall": default["kendall"],
                          "seconds_per_candidate": default["seconds_per_candidate"], "n": default["n"],
                          "spearman_p": default["spearman_p"], "same_as": same_as,
                          "settings": default["settings"], "recipe": recipe_name(args.budget)},
    }
    settings = {"budget": args.budget, "recipe": recipe_name(args.budget), "base": BASE, "variants": variants,
                "timing_networks": [networks[i]["name"] for i in timing],
                "zero_cost_batch": 64, "threads": torch.get_num_threads(), **clock.info()}

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for row in rows:
        if row["spearman"] is None or row["name"] == "recipe":
            continue
        zero = row["name"].startswith("zero-cost")
        ax.scatter(row["seconds_per_candidate"], row["spearman"], color="tab:green" if zero else "tab:blue", s=36)
        ax.annotate(row["name"], (row["seconds_per_candidate"], row["spearman"]), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    if default["spearman"] is not None:
        ax.scatter(default["seconds_per_candidate"], default["spearman"], marker="*", s=220, color="tab:red",
                   label=f"recipe default ({', '.join(same_as) or 'own settings'})", zorder=5)
    ax.set_xscale("log")
    ax.axhline(0.8, color="grey", ls=":", lw=1)
    ax.set_xlabel("seconds per candidate (log; 1 torch thread)")
    ax.set_ylabel("Spearman correlation with the reference ranking")
    ax.set_title(f"Proxy fidelity against the reference ({len(truth)} networks, "
                 f"{reference['settings']['training']['epochs']} epochs on {reference['settings']['data']['train']} images)",
                 fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save_figure(fig, NAME)

    best = max((r for r in rows if r["spearman"] is not None and r["name"] != "recipe"), key=lambda r: r["spearman"])
    headline = (f"{len(truth)} networks vs reference: default proxy ({', '.join(same_as) or 'recipe'}) Spearman "
                f"{fmt(default['spearman'], '.2f')}, Kendall {fmt(default['kendall'], '.2f')} at "
                f"{fmt(default['seconds_per_candidate'], '.1f')} s a candidate; best {best['name']} "
                f"{fmt(best['spearman'], '.2f')} at {fmt(best['seconds_per_candidate'], '.1f')} s; "
                + ", ".join(f"{r['name']} {fmt(r['spearman'], '.2f')}" for r in rows
                            if r["name"].startswith("zero-cost")))
    write_result(NAME, settings, figures, headline)
    return figures


if __name__ == "__main__":
    main()
