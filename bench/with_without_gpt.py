"""With and without the GPT (paper Fig. 6 and 7): GA against GA+GPT and Random against
Random+GPT, and a fifth arm beyond the paper, GA + adapted GPT (``gpt_adaptation`` at its
defaults: the GPT fine-tuned on the best genomes after each generation; pairs
``adapted_minus_ga`` and ``adapted_minus_pretrained``, with the adaptation's seconds per
generation and each arm's population diversity), each run with several seeds through :class:`~gptnas_hf.search.searcher.NASSearcher`
with the same population and generations (so the same number of proposals), on the CPU proxy
of ``recipes/search-cifar10-cpu.yaml``. Reported: the best-so-far validation accuracy against
evaluations (mean and spread over seeds), the final best, GPT minus no-GPT in points (paired
by seed), the accuracy of every candidate (Fig. 6), and how many evaluations (and training
seconds, the proxy of Fig. 7's GPU days) each setting needed to reach fixed thresholds.

Candidates train all their parameters (train scope ``full``) by default, so the settings
differ only in the architectures they propose; ``--train-scope auto`` uses the paper's rule
instead (a rebuilt genome trains only its predicted blocks, an unchanged one only BatchNorm,
which also changes how fitness is measured between the settings).

Runs live in ``bench/results/runs/with_without_gpt/`` and are resumed when the benchmark is run
again (finished runs are only read back; pass ``--fresh`` after changing the package's
training or search code, which a resumed run cannot detect). GA and Random with the same seed start from the
same initial population (both draw it from the same seeded generator, and the GPT rebuilds it
with the same seed), so a Random run starts with the GA run's generation-0 evaluations copied
in; the searcher trains a candidate seeded by the run seed and its genome, so the copy is what
it would have computed itself. ``--shard I/N`` runs every N-th seed (all its arms) and writes
no results, so N processes share the cores; a run without it then reads them back and writes.

Endpoints, paired by seed (GA+GPT against GA, Random+GPT against Random, at an equal
evaluation budget: the same population and generations):

* ``auc``: the area under the best-so-far curve (the mean best-so-far validation accuracy over
  the evaluations both runs made): how fast good networks are found;
* ``test_accuracy``: each run's best network retrained briefly from scratch (``--retrain-epochs``,
  10 at the small budget, on the search's training + validation images) and scored on the
  test split, which the search never saw (CIFAR-10's test images). Cached in each run
  directory (``retrain_short.json``).

Each is reported as ``{mean, ci95, p_value, p_holm, n, wins}`` (``bench.common.paired_t``: t
interval and the matching paired t-test, Holm over the four comparisons of an endpoint); ``ga_gpt_minus_ga`` and ``random_gpt_minus_random``
carry the test-accuracy endpoint at their top level and both endpoints inside.

The small budget: population 6, 3 generations, 5 seeds (24 proposals a run); the mask-rate
schedule (Eq. 3) gives rates 0.4, 0.27, 0.13 and 0 to generations 0-3, so the GPT rebuilds
less and less and nothing in the last generation."""

from __future__ import annotations

import json
import shutil

import torch

from .common import (Clock, add_shard_option, data_settings, data_source, load_data, mean, paired_family, parse, parser,
                     progress, pyplot, recipe_name, reconstructor, runs_dir, save_figure, search_config, shard, std,
                     write_result)

NAME = "with_without_gpt"
SETTINGS = (("GA", "ga", False), ("GA+GPT", "ga", True), ("Random", "random", False), ("Random+GPT", "random", True),
            ("GA+adapted GPT", "ga", True))
ADAPTED = "GA+adapted GPT"  # GA with the GPT fine-tuned on the best genomes after each generation (gpt_adaptation)
PAIRS = (("GA", "GA+GPT"), ("Random", "Random+GPT"), ("GA", ADAPTED), ("GA+GPT", ADAPTED))
BUDGETS = {
    "smoke": {"population": 3, "generations": 1, "seeds": 2, "thresholds": (0.1, 0.2, 0.3), "retrain_epochs": 1},
    "small": {"population": 6, "generations": 3, "seeds": 5, "thresholds": (0.25, 0.3, 0.35), "retrain_epochs": 10},
    "paper": {"population": 30, "generations": 20, "seeds": 5, "thresholds": (0.8, 0.85, 0.9), "retrain_epochs": 30},
}


def _records(run_dir) -> list[dict]:
    from gptnas_hf.search.run_directory import RunDirectory

    return RunDirectory(run_dir).read_records()


def _best_so_far(records) -> list[float]:
    out, best = [], 0.0
    for r in records:
        best = max(best, r["fitness"])
        out.append(best)
    return out


def _reach(records, threshold):
    """(evaluations, training seconds) until the best so far reaches ``threshold``, or None."""
    seconds = 0.0
    for i, r in enumerate(records):
        seconds += r.get("seconds") or 0.0
        if r["fitness"] >= threshold:
            return i + 1, seconds
    return None


def _auc(records, length: int) -> float:
    """Mean best-so-far fitness over the first ``length`` evaluations."""
    curve = _best_so_far(records)[:length]
    return sum(curve) / max(len(curve), 1)


def _offspring_diversity(runs) -> list[float | None]:
    """Mean pairwise edit distance of the block kinds of each generation's evaluated genomes
    (what the arm proposed), averaged over seeds: comparable across arms whatever code ran them."""
    from gptnas_hf.search.diversity import population_diversity

    per_run = []
    for run in runs:
        generations = sorted({r["generation"] for r in run["records"]})
        per_run.append([population_diversity([r["genome"] for r in run["records"] if r["generation"] == g])
                        ["edit_distance"] for g in generations])
    depth = max((len(d) for d in per_run), default=0)
    return [mean([d[i] for d in per_run if i < len(d)]) for i in range(depth)]


def _cached_retrain(run_dir, genome, epochs: int) -> dict | None:
    """``run_dir``'s short retrain when it is of ``genome`` for ``epochs``, else None."""
    path = run_dir / "retrain_short.json"
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("hash") == genome.hash() and cached.get("epochs") == epochs:
            return cached
    return None


def _short_retrain(run_dir, genome, data, epochs: int, seed: int) -> dict:
    """The run's best genome trained from scratch on train + validation for ``epochs`` and scored
    on the test split; cached in ``run_dir/retrain_short.json`` (keyed by genome and epochs)."""
    from gptnas_hf.evaluation import RetrainConfig, retrain_network
    from gptnas_hf.search_space import build_network

    cached = _cached_retrain(run_dir, genome, epochs)
    if cached is not None:
        return cached
    path = run_dir / "retrain_short.json"
    torch.manual_seed(seed)
    network = build_network(genome, in_channels=data.channels, num_classes=data.num_classes)
    config = RetrainConfig(epochs=epochs, lr=0.05, lr_step=max(1, (2 * epochs) // 3), batch_size=64, augment=True,
                           weight_decay=5e-4, seed=seed, progress=False)
    result = retrain_network(network, data, config)
    record = {"hash": genome.hash(), "epochs": epochs, "test_top1": result.test_top1, "test_top5": result.test_top5,
              "test_images": len(data.test_y), "train_images": len(data.train_y) + len(data.val_y),
              "settings": {k: v for k, v in config.__dict__.items() if k != "progress"}}
    path.write_text(json.dumps(record, indent=1))
    return record


SEEDED = "seeded_from.json"


def _seed_random_run(run_dir, ga_dir) -> int:
    """Copy the GA run's generation-0 evaluations into a fresh run of the same seed that starts
    from the same initial population (the Random arm here, the filter arms of
    ``proposal_filter_blocks``), and say so in the run's ``seeded_from.json``: the evaluations
    copied (0 when the run had begun already or the GA run has none)."""
    if (run_dir / "state.json").is_file() or (run_dir / "evaluations.jsonl").is_file():
        return 0
    rows = [r for r in _records(ga_dir) if r["generation"] == 0]
    if not rows:
        return 0
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "evaluations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / SEEDED).write_text(json.dumps({"run": ga_dir.name, "evaluations": len(rows)}))
    return len(rows)


def _was_seeded(run_dir) -> bool:
    """Whether the run started from another run's generation 0 (:func:`_seed_random_run`), in
    this process or an earlier one."""
    return (run_dir / SEEDED).is_file()


def main(argv=None) -> dict:
    p = parser(__doc__, "search seeds per setting (default 3)")
    p.add_argument("--population", type=int, default=None, help="population size (default: the budget's)")
    p.add_argument("--generations", type=int, default=None, help="offspring generations (default: the budget's)")
    p.add_argument("--train-scope", default="full", choices=("full", "auto"), help="candidate training scope")
    p.add_argument("--thresholds", type=float, nargs="+", default=None, help="accuracy thresholds (Fig. 7)")
    p.add_argument("--fresh", action="store_true", help="delete this budget's earlier runs first")
    p.add_argument("--retrain-epochs", type=int, default=None, help="epochs of the best network's short retrain")
    add_shard_option(p, "seed (all of its arms)")
    args = parse(p, argv)
    if args.fresh and args.shard is not None:
        raise SystemExit("bench.with_without_gpt: --fresh deletes every seed's runs; pass it without --shard")
    budget = BUDGETS[args.budget]
    seeds = args.seeds or budget["seeds"]
    population = args.population or budget["population"]
    generations = budget["generations"] if args.generations is None else args.generations
    thresholds = tuple(args.thresholds or budget["thresholds"])
    clock = Clock()
    source = data_source(args.budget, args.dataset)
    base = search_config(args.budget)
    data = load_data(base, source)
    data_key = data_settings(base, source, data)
    from gptnas_hf.data import load_image_data

    # the short retrain runs at the data's own resolution, whatever size the proxy searches at
    retrain_data = load_image_data(source, seed=base.seed, progress=False,
                                   **{k: v for k, v in base.data.items() if k != "image_size"})
    pipe = reconstructor()
    root = runs_dir() / NAME / f"{args.budget}-p{population}-g{generations}-{args.train_scope}"
    if args.fresh and root.exists():
        shutil.rmtree(root)

    from gptnas_hf.search.searcher import NASSearcher

    runs = {label: {} for label, _, _ in SETTINGS}
    copied = 0
    for seed in shard(list(range(seeds)), args.shard):
        for label, strategy, use_gpt in SETTINGS:
            config = search_config(args.budget, strategy=strategy, use_gpt=use_gpt, population_size=population,
                                   generations=generations, seed=seed, dataset=source,
                                   evaluation={"train_scope": args.train_scope},
                                   gpt_adaptation={} if label == ADAPTED else None)
            run_dir = root / f"{label.lower().replace('+', '_').replace(' ', '_')}-seed{seed}"
            if strategy == "random":
                ga_dir = root / f"{label.lower().replace('+', '_').replace('random', 'ga')}-seed{seed}"
                _seed_random_run(run_dir, ga_dir)
                copied += _was_seeded(run_dir)
            searcher = NASSearcher(config, dataset=data, model=pipe if use_gpt else None, output_dir=str(run_dir))
            result = searcher.run(resume=True)
            records = _records(run_dir)
            retrained = _short_retrain(run_dir, result.best_genome, retrain_data,
                                       args.retrain_epochs or budget["retrain_epochs"], seed)
            history = json.loads((run_dir / "state.json").read_text())["history"]
            runs[label][seed] = {"dir": str(run_dir), "best": result.best_fitness, "evaluations": len(records),
                                 "records": records, "test_top1": retrained["test_top1"],
                                 "adaptation_seconds": [h["adaptation_seconds"] for h in history
                                                        if "adaptation_seconds" in h],
                                 "diversity": [h.get("diversity_edit_distance") for h in history]}
            progress(f"{label} seed {seed}: best {result.best_fitness:.4f} after {len(records)} evaluations "
                     f"({sum(r.get('seconds') or 0 for r in records):.0f} s of training)")
    if args.shard is not None:  # this shard's seeds are searched and retrained; a run without --shard writes
        return None

    summary = {}
    for label, _, _ in SETTINGS:
        per_seed = runs[label]
        curves = [_best_so_far(r["records"]) for r in per_seed.values()]
        length = min(len(c) for c in curves)
        fitness = [rec["fitness"] for r in per_seed.values() for rec in r["records"]]
        reach = {}
        for t in thresholds:
            hits = [_reach(r["records"], t) for r in per_seed.values()]
            done = [h for h in hits if h is not None]
            reach[str(t)] = {"reached": len(done), "of": len(hits), "mean_evaluations": mean([h[0] for h in done]),
                             "mean_training_seconds": mean([h[1] for h in done])}
        summary[label] = {
            "final_best": [r["best"] for r in per_seed.values()], "final_best_mean": mean([r["best"] for r in per_seed.values()]),
            "final_best_sd": std([r["best"] for r in per_seed.values()]),
            "evaluations": [r["evaluations"] for r in per_seed.values()],
            "mean_curve": [mean([c[i] for c in curves]) for i in range(length)],
            "min_curve": [min(c[i] for c in curves) for i in range(length)],
            "max_curve": [max(c[i] for c in curves) for i in range(length)],
            "candidate_fitness_mean": mean(fitness), "candidate_fitness_sd": std(fitness), "candidates": len(fitness),
            "reconstructed": sum(rec.get("reconstructed", False) for r in per_seed.values() for rec in r["records"]),
            "training_seconds": sum(rec.get("seconds") or 0 for r in per_seed.values() for rec in r["records"]),
            "reach": reach, "test_accuracy": [r["test_top1"] for r in per_seed.values()],
            "test_accuracy_mean": mean([r["test_top1"] for r in per_seed.values()]),
            "adaptation_seconds_per_generation": mean([s for r in per_seed.values() for s in r["adaptation_seconds"]]),
            "offspring_diversity_per_generation": _offspring_diversity(per_seed.values()),
            "diversity_per_generation": [mean([r["diversity"][i] for r in per_seed.values()
                                               if i < len(r["diversity"]) and r["diversity"][i] is not None])
                                         for i in range(max(len(r["diversity"]) for r in per_seed.values()))],
        }
    pairs = {}
    for without, with_ in PAIRS:
        diffs = [runs[with_][s]["best"] - runs[without][s]["best"] for s in range(seeds)]
        common = min(min(len(r["records"]) for r in runs[without].values()),
                     min(len(r["records"]) for r in runs[with_].values()))
        at_common = [max(x["fitness"] for x in runs[with_][s]["records"][:common])
                     - max(x["fitness"] for x in runs[without][s]["records"][:common]) for s in range(seeds)]
        pairs[f"{with_} - {without}"] = {
            "final_best_points": [100 * d for d in diffs], "mean_points": 100 * mean(diffs), "sd_points": 100 * std(diffs),
            "wins": sum(d > 1e-9 for d in diffs), "ties": sum(abs(d) <= 1e-9 for d in diffs),
            "losses": sum(d < -1e-9 for d in diffs), "common_evaluations": common,
            "mean_points_at_common_evaluations": 100 * mean(at_common),
            "candidate_mean_points": 100 * (summary[with_]["candidate_fitness_mean"] - summary[without]["candidate_fitness_mean"]),
        }
    endpoints, tests, aucs, commons = {}, {}, {}, {}
    named = (("ga_gpt_minus_ga", PAIRS[0]), ("random_gpt_minus_random", PAIRS[1]),
             ("adapted_minus_ga", PAIRS[2]), ("adapted_minus_pretrained", PAIRS[3]))
    for key, (without, with_) in named:
        commons[key] = common = min(len(runs[label][s]["records"]) for label in (without, with_) for s in range(seeds))
        aucs[key] = ([_auc(runs[with_][s]["records"], common) for s in range(seeds)],
                     [_auc(runs[without][s]["records"], common) for s in range(seeds)])
        tests[key] = ([runs[with_][s]["test_top1"] for s in range(seeds)], [runs[without][s]["test_top1"] for s in range(seeds)])
    tests, aucs = paired_family(tests), paired_family(aucs)  # paired t, Holm over the four comparisons
    for key, _ in named:
        test = tests[key]
        endpoints[key] = {**{k: test[k] for k in ("mean", "ci95", "p_value", "p_holm", "n", "wins")},
                          "endpoint": "test_accuracy", "test_accuracy": test,
                          "auc": {**aucs[key], "evaluations": commons[key]}}
    figures = {"settings": summary, "pairs": pairs, "thresholds": list(thresholds), "random_runs_seeded_from_ga": copied,
               **endpoints}
    settings = {"budget": args.budget, "population": population, "generations": generations, "seeds": seeds,
                "train_scope": args.train_scope, "thresholds": list(thresholds), "recipe": recipe_name(args.budget),
                "initial_mask_rate": base.initial_mask_rate,
                "evaluation": {**base.evaluation, "train_scope": args.train_scope}, "data": data_key,
                "runs": str(root), "threads": torch.get_num_threads(), **clock.info()}

    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    colours = {"GA": "tab:blue", "GA+GPT": "tab:orange", "Random": "tab:green", "Random+GPT": "tab:red",
               ADAPTED: "tab:purple"}
    for ax, (without, with_) in zip(axes[0], PAIRS):
        for label in (without, with_) + ((ADAPTED,) if without == "GA" else ()):
            s = summary[label]
            xs = range(1, len(s["mean_curve"]) + 1)
            ax.plot(xs, s["mean_curve"], color=colours[label], label=f"{label} (final {s['final_best_mean']:.3f})")
            ax.fill_between(xs, s["min_curve"], s["max_curve"], color=colours[label], alpha=0.15)
        for t in thresholds:
            ax.axhline(t, color="grey", linestyle=":", linewidth=0.7)
        d = pairs[f"{with_} - {without}"]
        ax.set_title(f"{with_} - {without}: {d['mean_points']:+.1f} ± {d['sd_points']:.1f} points "
                     f"({d['wins']}/{d['ties']}/{d['losses']} w/t/l, {seeds} seeds)", fontsize=9)
        ax.set_xlabel("evaluations")
        ax.set_ylabel("best-so-far validation top-1 (mean, min-max)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[1][0]
    labels = [label for label, _, _ in SETTINGS]
    ax.boxplot([[rec["fitness"] for r in runs[label].values() for rec in r["records"]] for label in labels],
               tick_labels=labels)
    ax.set_ylabel("validation top-1 of every candidate")
    ax.set_title("Fig. 6 proxy: accuracy of the evaluated architectures", fontsize=9)
    ax.grid(alpha=0.3)
    ax = axes[1][1]
    width = 0.8 / len(labels)
    for j, label in enumerate(labels):
        values = [summary[label]["reach"][str(t)]["mean_evaluations"] or 0 for t in thresholds]
        bars = ax.bar([i + j * width for i in range(len(thresholds))], values, width, color=colours[label], label=label)
        for bar, t in zip(bars, thresholds):
            r = summary[label]["reach"][str(t)]
            ax.annotate(f"{r['reached']}/{r['of']}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        textcoords="offset points", xytext=(0, 2), ha="center", fontsize=7)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(thresholds))], [f"≥ {t:g}" for t in thresholds])
    ax.set_ylabel("evaluations to reach (mean over seeds that did)")
    ax.set_title("Fig. 7 proxy: evaluations to reach a threshold (labels: seeds that reached it)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"{args.budget} budget: population {population}, {generations} generation(s), {seeds} seeds, "
                 f"train scope {args.train_scope}", fontsize=10)
    save_figure(fig, NAME)

    text = "; ".join(
        f"{key}: test {100 * e['test_accuracy']['mean']:+.1f} points [{100 * e['test_accuracy']['ci95'][0]:+.1f}, "
        f"{100 * e['test_accuracy']['ci95'][1]:+.1f}] (p={e['test_accuracy']['p_value'] if e['test_accuracy']['p_value'] is None else round(e['test_accuracy']['p_value'], 3)}, "
        f"{e['test_accuracy']['wins']}/{e['n']} wins), AUC {100 * e['auc']['mean']:+.1f} ({e['auc']['wins']}/{e['n']} wins)"
        for key, e in endpoints.items())
    finals = ", ".join(f"{label} {summary[label]['final_best_mean']:.3f}" for label in labels)
    headline = (f"population {population}, {generations} generations after the initial ({population * (generations + 1)} "
                f"proposals a run), {seeds} seeds, {args.train_scope}-scope {base.evaluation.get('epochs')}-epoch fitness")
    headline += f"; final best {finals}; {text}"
    write_result(NAME, settings, figures, headline)
    return figures


if __name__ == "__main__":
    main()
