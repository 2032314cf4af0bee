"""Does a zero-cost pre-filter make the GA find better networks in the same time? A paired
comparison of two arms that differ only in the pre-filter:

* ``GA``: the proxy search of ``recipes/search-cifar10-cpu.yaml`` (no GPT), population P,
  G offspring generations, every offspring trained: P * (G + 1) trainings;
* ``GA+prefilter``: the same search with ``prefilter: PROXY`` (default ``grad_norm``, the
  zero-cost proxy that ranks the reference best in ``bench.fidelity``) and ``prefilter_keep:
  0.5``: only the better half of each generation's offspring is trained, so the same number
  of trainings buys 2G generations. A zero-cost score costs a small fraction of a training;
  both arms' cost (training seconds plus scoring seconds, from the records) is reported beside
  their results.

Both arms of a seed start from the same initial population (same seed, no pre-filter in
generation 0), and train every candidate with the same seeded recipe.

Endpoint: each run's best genome (by the search's own proxy fitness) trained at the settings
of ``bench.reference_ranking`` (10 epochs on 5,000 CIFAR-10 training images) and scored on its
2,000 validation images, carved from the training split, which the search never saw: ``prefilter_minus_plain`` ``{mean, ci95, p_value, n, wins}`` in
accuracy (``bench.common.paired_t``: t interval and the matching paired t-test, Holm over the two endpoints). The search's own
best proxy fitness is reported as a secondary endpoint.

Runs live in ``bench/results/runs/prefilter/`` and resume; the reference trainings are cached
with those of ``bench.reference_ranking`` (``RESULTS/runs/candidates.jsonl``)."""

from __future__ import annotations


import torch

from .common import (CandidateCache, Clock, mean, paired_family, parse, parser, progress, pyplot, recipe_name, runs_dir,
                     save_figure, search_config, train_candidate, write_result)
from .reference_ranking import reference_setup

NAME = "prefilter"
KEEP = 0.5
BUDGETS = {
    "smoke": {"population": 3, "generations": 1, "seeds": 2},
    "small": {"population": 6, "generations": 3, "seeds": 5},
    "paper": {"population": 30, "generations": 20, "seeds": 3},
}


def _records(run_dir) -> list[dict]:
    from gptnas_hf.search.run_directory import RunDirectory

    return RunDirectory(run_dir).read_records()


def _cost_curve(records) -> tuple[list[float], list[float]]:
    """(cumulative seconds of training and scoring, best-so-far proxy fitness) after each record."""
    spent, best, xs, ys = 0.0, 0.0, [], []
    for r in records:
        spent += (r.get("seconds") or 0.0) + (r.get("proxy_seconds") or 0.0)
        best = max(best, r["fitness"])
        xs.append(spent)
        ys.append(best)
    return xs, ys


def main(argv=None) -> dict:
    p = parser(__doc__, "search seeds per arm (default: the budget's)")
    p.add_argument("--proxy", default="grad_norm", choices=("naswot", "synflow", "grad_norm"),
                   help="the zero-cost proxy of the pre-filter arm")
    p.add_argument("--population", type=int, default=None, help="population size (default: the budget's)")
    p.add_argument("--generations", type=int, default=None,
                   help="offspring generations of the plain GA (the pre-filter arm runs twice as many)")
    args = parse(p, argv)
    budget = BUDGETS[args.budget]
    seeds = args.seeds or budget["seeds"]
    population = args.population or budget["population"]
    generations = budget["generations"] if args.generations is None else args.generations
    clock = Clock()
    _, reference_data, reference_training, reference_key = reference_setup(args.budget, args.dataset)
    reference_cache = CandidateCache()
    arms = (("GA", {"generations": generations}),
            ("GA+prefilter", {"generations": round(generations / KEEP), "prefilter": args.proxy, "prefilter_keep": KEEP}))
    root = runs_dir() / NAME / f"{args.budget}-p{population}-g{generations}-{args.proxy}"

    from gptnas_hf.data import load_image_data
    from gptnas_hf.search.searcher import NASSearcher

    base = search_config(args.budget)
    source = reference_key["source"]
    data = load_image_data(source, seed=base.seed, progress=False, **base.data)
    runs = {label: {} for label, _ in arms}
    for seed in range(seeds):
        for label, overrides in arms:
            config = search_config(args.budget, use_gpt=False, population_size=population, seed=seed,
                                   dataset=source, **overrides)
            run_dir = root / f"{label.lower().replace('+', '_')}-seed{seed}"
            result = NASSearcher(config, dataset=data, output_dir=str(run_dir)).run(resume=True)
            records = _records(run_dir)
            reference = train_candidate(result.best_genome, reference_data, reference_training, reference_key,
                                        base.seed, cache=reference_cache)
            trained = [r for r in records if r["status"] != "prefiltered"]
            runs[label][seed] = {
                "best_fitness": result.best_fitness, "best_hash": result.best_genome.hash(),
                "reference_accuracy": reference["fitness"], "proposals": len(records), "trained": len(trained),
                "training_seconds": sum(r.get("seconds") or 0.0 for r in records),
                "proxy_seconds": sum(r.get("proxy_seconds") or 0.0 for r in records),
                "curve": _cost_curve(records),
            }
            progress(f"{label} seed {seed}: proxy best {result.best_fitness:.3f}, reference {reference['fitness']:.3f} "
                     f"({len(trained)} of {len(records)} trained)")

    plain, filtered = runs["GA"], runs["GA+prefilter"]
    order = range(seeds)
    family = paired_family({
        "reference": ([filtered[s]["reference_accuracy"] for s in order], [plain[s]["reference_accuracy"] for s in order]),
        "proxy": ([filtered[s]["best_fitness"] for s in order], [plain[s]["best_fitness"] for s in order])})
    reference_diff, proxy_diff = family["reference"], family["proxy"]
    cost = {label: mean([r["training_seconds"] + r["proxy_seconds"] for r in runs[label].values()]) for label, _ in arms}
    summary = {label: {
        "reference_accuracy": [runs[label][s]["reference_accuracy"] for s in order],
        "reference_accuracy_mean": mean([runs[label][s]["reference_accuracy"] for s in order]),
        "best_fitness": [runs[label][s]["best_fitness"] for s in order],
        "trained_mean": mean([runs[label][s]["trained"] for s in order]),
        "proposals_mean": mean([runs[label][s]["proposals"] for s in order]),
        "training_seconds_mean": mean([runs[label][s]["training_seconds"] for s in order]),
        "proxy_seconds_mean": mean([runs[label][s]["proxy_seconds"] for s in order]),
        "cost_seconds_mean": cost[label],
        "same_best_as_other_arm": None,
    } for label, _ in arms}
    same = sum(plain[s]["best_hash"] == filtered[s]["best_hash"] for s in order)
    for label in summary:
        summary[label]["same_best_as_other_arm"] = same
    figures = {"arms": summary, "prefilter_minus_plain": reference_diff, "proxy_fitness_prefilter_minus_plain": proxy_diff,
               "cost_ratio": cost["GA+prefilter"] / cost["GA"] if cost["GA"] else None,
               "runs": {label: {str(s): {k: v for k, v in r.items() if k != "curve"} for s, r in runs[label].items()}
                        for label in runs}}
    settings = {"budget": args.budget, "population": population, "generations": {k: v["generations"] for k, v in arms},
                "seeds": seeds, "proxy": args.proxy, "prefilter_keep": KEEP, "recipe": recipe_name(args.budget),
                "evaluation": base.evaluation, "reference": {"data": reference_key, "epochs": reference_training.epochs},
                "runs": str(root), "threads": torch.get_num_threads(), **clock.info()}

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for s in order:
        left.plot([0, 1], [plain[s]["reference_accuracy"], filtered[s]["reference_accuracy"]], "o-", color="grey", alpha=0.6)
    left.plot([0, 1], [summary["GA"]["reference_accuracy_mean"], summary["GA+prefilter"]["reference_accuracy_mean"]],
              "s-", color="tab:red", lw=2, label="mean")
    left.set_xticks([0, 1], ["GA", f"GA + {args.proxy} pre-filter"])
    left.set_xlim(-0.3, 1.3)
    left.set_ylabel("reference validation top-1 of the run's best network")
    ci = reference_diff["ci95"]
    left.set_title(f"pre-filter - plain: {100 * reference_diff['mean']:+.1f} points [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}], "
                   f"p={reference_diff['p_value'] if reference_diff['p_value'] is None else round(reference_diff['p_value'], 3)}, "
                   f"{reference_diff['wins']}/{seeds} wins", fontsize=9)
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    for label, colour in (("GA", "tab:blue"), ("GA+prefilter", "tab:orange")):
        for i, s in enumerate(order):
            xs, ys = runs[label][s]["curve"]
            right.step(xs, ys, where="post", color=colour, alpha=0.7, label=label if i == 0 else None)
    right.set_xlabel("seconds of training and zero-cost scoring")
    right.set_ylabel("best-so-far proxy fitness (validation top-1)")
    right.set_title(f"each seed's search: population {population}, equal trainings", fontsize=9)
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    save_figure(fig, NAME)

    pv = reference_diff["p_value"]
    headline = (f"GA with a {args.proxy} pre-filter (keep {KEEP:.0%}, {arms[1][1]['generations']} generations) against "
                f"the plain GA ({generations} generations), population {population}, {seeds} seeds, equal trainings "
                f"(cost ratio {figures['cost_ratio']:.2f}): reference accuracy of the best network "
                f"{summary['GA+prefilter']['reference_accuracy_mean']:.3f} vs {summary['GA']['reference_accuracy_mean']:.3f}, "
                f"difference {100 * reference_diff['mean']:+.1f} points [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}] "
                f"(p={'n/a' if pv is None else f'{pv:.2f}'}, {reference_diff['wins']}/{seeds} wins); proxy fitness "
                f"{100 * proxy_diff['mean']:+.1f} points")
    write_result(NAME, settings, figures, headline)
    return figures


if __name__ == "__main__":
    main()
