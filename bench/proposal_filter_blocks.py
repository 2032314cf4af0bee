"""The NAS-Bench-201 design carried back to the block space: does the proposal filter that the
NAS-Bench-201 benchmark chose (``proposal_filter: parameters>gpt``) make the GA find better
networks at the CPU proxy? Three arms, each run of ``recipes/search-cifar10-cpu.yaml`` with no
reconstruction (``use_gpt: false``), the same population, generations and trainings:

* ``GA``: the plain GA, every offspring trained;
* ``GA+size filter``: the GA proposes ``proposal_pool`` (4) times the offspring a generation
  needs and trains the largest (``proposal_filter: parameters``): the control, lacking only the GPT;
* ``GA+size>GPT filter``: the same, the GPT's mean log-likelihood breaking ties in size
  (``proposal_filter: parameters>gpt``): the NAS-Bench-201 design.

The three arms of a seed start from the same initial population (the filter acts on offspring),
so the filter arms take the GA run's generation-0 evaluations instead of training those
networks again, and arms of a seed that found the same best genome share its retrain (the same
genome, seed and images give the same training).
Endpoint: each run's best genome (by the search's proxy fitness) retrained from scratch for a
few epochs on the search's training + validation images and scored on the test split, which the
search never saw (``with_without_gpt``'s short retrain, cached in the run directory); paired by
seed, ``bench.common.paired_t`` (t interval and the matching paired t-test) with Holm over the
comparisons. The search's own best proxy fitness is a secondary endpoint (its own Holm family).

Runs live in ``bench/results/runs/proposal_filter_blocks/`` and resume; ``--shard I/N`` runs
every N-th seed and writes no results (a last run without it aggregates)."""

from __future__ import annotations

import json

import torch

from .common import (Clock, add_shard_option, data_source, load_data, mean, paired_family, parse, parser, progress,
                     pyplot, recipe_name, runs_dir, save_figure, search_config, shard, write_result)
from .with_without_gpt import _cached_retrain, _records, _seed_random_run, _short_retrain

NAME = "proposal_filter_blocks"
POOL = 4
ARMS = (("GA", {}), ("GA+size filter", {"proposal_filter": "parameters", "proposal_pool": POOL}),
        ("GA+size>GPT filter", {"proposal_filter": "parameters>gpt", "proposal_pool": POOL}))
DESIGN = "GA+size>GPT filter"
PAIRS = {"design_minus_ga": (DESIGN, "GA"), "design_minus_size_filter": (DESIGN, "GA+size filter"),
         "size_filter_minus_ga": ("GA+size filter", "GA")}
BUDGETS = {
    "smoke": {"population": 3, "generations": 1, "seeds": 2, "retrain_epochs": 1},
    "small": {"population": 6, "generations": 3, "seeds": 10, "retrain_epochs": 10},
    "paper": {"population": 30, "generations": 20, "seeds": 10, "retrain_epochs": 30},
}


def _slug(label: str) -> str:
    return label.lower().replace(">", "_then_").replace("+", "_").replace(" ", "_")


def shared_retrain(root, run_dir, genome, data, epochs: int, seed: int) -> dict:
    """``_short_retrain`` of the run's best genome, or a copy of the retrain another arm of the
    same seed already made of the same genome (``shared_from`` names that run). The run's own
    retrain, trained or copied, comes first: a rerun never relabels it."""
    own = _cached_retrain(run_dir, genome, epochs)
    if own is not None:
        return own
    for other in sorted(root.glob(f"*-seed{seed}")):
        cached = _cached_retrain(other, genome, epochs) if other != run_dir else None
        if cached is not None:
            shared = {**cached, "shared_from": other.name}
            (run_dir / "retrain_short.json").write_text(json.dumps(shared, indent=1))
            return shared
    return _short_retrain(run_dir, genome, data, epochs, seed)


def main(argv=None) -> dict:
    p = parser(__doc__, "search seeds per arm (default: the budget's, 10 at small)")
    p.add_argument("--population", type=int, default=None, help="population size (default: the budget's)")
    p.add_argument("--generations", type=int, default=None, help="offspring generations (default: the budget's)")
    p.add_argument("--retrain-epochs", type=int, default=None, help="epochs of the best network's short retrain")
    add_shard_option(p, "seed")
    args = parse(p, argv)
    budget = BUDGETS[args.budget]
    seeds = list(range(args.seeds or budget["seeds"]))
    population = args.population or budget["population"]
    generations = budget["generations"] if args.generations is None else args.generations
    epochs = args.retrain_epochs or budget["retrain_epochs"]
    clock = Clock()
    source = data_source(args.budget, args.dataset)
    base = search_config(args.budget)
    data = load_data(base, source)
    from gptnas_hf.data import load_image_data
    from gptnas_hf.search.searcher import NASSearcher

    # the short retrain runs at the data's own resolution, whatever size the proxy searches at
    retrain_data = load_image_data(source, seed=base.seed, progress=False,
                                   **{k: v for k, v in base.data.items() if k != "image_size"})
    root = runs_dir() / NAME / f"{args.budget}-p{population}-g{generations}"
    runs = {label: {} for label, _ in ARMS}
    for seed in shard(seeds, args.shard):
        for label, overrides in ARMS:
            config = search_config(args.budget, use_gpt=False, population_size=population, generations=generations,
                                   seed=seed, dataset=source, progress=False, **overrides)
            run_dir = root / f"{_slug(label)}-seed{seed}"
            if label != ARMS[0][0]:  # the same initial population as the GA's: its evaluations, not new trainings
                _seed_random_run(run_dir, root / f"{_slug(ARMS[0][0])}-seed{seed}")
            result = NASSearcher(config, dataset=data, output_dir=str(run_dir)).run(resume=True)
            records = _records(run_dir)
            retrained = shared_retrain(root, run_dir, result.best_genome, retrain_data, epochs, seed)
            runs[label][seed] = {"best_fitness": result.best_fitness, "test_top1": retrained["test_top1"],
                                 "best_hash": result.best_genome.hash(), "evaluations": len(records),
                                 "mean_parameters": mean([r["parameters"] for r in records if r.get("parameters")]),
                                 "training_seconds": sum(r.get("seconds") or 0.0 for r in records),
                                 "retrain_shared_from": retrained.get("shared_from")}
            progress(f"{label} seed {seed}: proxy best {result.best_fitness:.3f}, test {retrained['test_top1']:.3f} "
                     f"after {len(records)} evaluations")
    if args.shard is not None:
        return {}

    test = paired_family({name: ([runs[a][s]["test_top1"] for s in seeds], [runs[b][s]["test_top1"] for s in seeds])
                          for name, (a, b) in PAIRS.items()})
    proxy = paired_family({name: ([runs[a][s]["best_fitness"] for s in seeds], [runs[b][s]["best_fitness"] for s in seeds])
                           for name, (a, b) in PAIRS.items()})
    summary = {label: {
        "test_accuracy": [runs[label][s]["test_top1"] for s in seeds],
        "test_accuracy_mean": mean([runs[label][s]["test_top1"] for s in seeds]),
        "best_fitness_mean": mean([runs[label][s]["best_fitness"] for s in seeds]),
        "mean_parameters": mean([runs[label][s]["mean_parameters"] for s in seeds]),
        "training_seconds_mean": mean([runs[label][s]["training_seconds"] for s in seeds]),
        "evaluations_mean": mean([runs[label][s]["evaluations"] for s in seeds]),
    } for label, _ in ARMS}
    figures = {"arms": summary, "test_accuracy": test, "proxy_fitness": proxy, "design": DESIGN,
               "runs": {label: {str(s): r for s, r in runs[label].items()} for label in runs}}
    settings = {"budget": args.budget, "population": population, "generations": generations, "seeds": len(seeds),
                "arms": {label: {"use_gpt": False, **overrides} for label, overrides in ARMS},
                "retrain_epochs": epochs, "recipe": recipe_name(args.budget), "evaluation": base.evaluation,
                "runs": str(root), "threads": torch.get_num_threads(), **clock.info()}

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    labels = [label for label, _ in ARMS]
    for s in seeds:
        left.plot(range(len(labels)), [runs[label][s]["test_top1"] for label in labels], "o-", color="grey", alpha=0.5)
    left.plot(range(len(labels)), [summary[label]["test_accuracy_mean"] for label in labels], "s-", color="tab:red",
              lw=2, label="mean")
    left.set_xticks(range(len(labels)), labels, fontsize=8)
    left.set_ylabel("test top-1 of the run's best network (short retrain)")
    left.set_title(f"{len(seeds)} seeds, population {population}, {generations} generations", fontsize=9)
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    names = list(PAIRS)
    for i, name in enumerate(names):
        row = test[name]
        right.errorbar([100 * row["mean"]], [i], xerr=[[100 * (row["mean"] - row["ci95"][0])],
                                                     [100 * (row["ci95"][1] - row["mean"])]], fmt="o", capsize=4)
    right.axvline(0, color="black", lw=0.8)
    right.set_yticks(range(len(names)), [f"{n} (Holm p {test[n]['p_holm']:.2g})" for n in names], fontsize=8)
    right.set_xlabel("paired difference in test top-1, points (95% t interval)")
    right.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    save_figure(fig, NAME)

    parts = [f"{label} {summary[label]['test_accuracy_mean']:.3f}" for label in labels]
    diffs = [f"{name} {100 * row['mean']:+.1f} points [{100 * row['ci95'][0]:+.1f}, {100 * row['ci95'][1]:+.1f}] "
             f"(paired t, Holm p {row['p_holm']:.2g}, {row['wins']}/{row['n']} wins)" for name, row in test.items()]
    headline = (f"population {population}, {generations} generations, {len(seeds)} seeds, best network retrained "
                f"{epochs} epochs: test top-1 " + ", ".join(parts) + "; " + "; ".join(diffs))
    write_result(NAME, settings, figures, headline)
    return figures


if __name__ == "__main__":
    main()
