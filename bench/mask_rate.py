"""Mask rate (paper Table 4): random genomes, each rebuilt by the shipped GPT at mask rates
0, 0.2, 0.4, 0.6 and 0.8, then trained the same short way; mean validation accuracy per rate
and how many genomes got better / stayed equal / got worse than at rate 0.

Every candidate trains *all* its parameters (train scope ``full``), whatever the rate: the
search's own rule (``auto``) would train only the predicted blocks of a rebuilt genome but
only the BatchNorm layers of an unchanged one, which would compare the training rules rather
than the architectures. The paper trained 15 initial genomes for 90 epochs; the small budget
uses the CPU proxy's training (``recipes/search-cifar10-cpu.yaml``: 2,500 class-balanced
CIFAR-10 images, 20% of them for validation, 16 px, 6 epochs with a cosine lr: the fitness the
proxy search sees, whose rank correlation with the reference ranking ``bench.fidelity``
measures), so its accuracies are far lower
than the paper's; it takes 30 genomes for a little more statistical power (``--epochs`` trains
longer). Paired differences against rate 0 (t interval and paired t-test, Holm over the rates) are
reported per rate.

All rates rebuild a genome with the same seed, so the blocks masked at a low rate are also
masked at every higher rate (the masking draws are shared). Trainings are cached in
``bench/results/runs/candidates.jsonl`` (the fidelity benchmark reuses them)."""

from __future__ import annotations

import torch

from .common import (CandidateCache, Clock, eval_config, fmt, mean, paired_family, parse, parser, progress, proxy_data, pyplot,
                     recipe_name, reconstruct, sample_genomes, save_figure, search_config, std, train_candidate,
                     write_result)

NAME = "mask_rate"
RATES = (0.0, 0.2, 0.4, 0.6, 0.8)
BUDGETS = {
    "smoke": {"genomes": 2, "epochs": None},
    "small": {"genomes": 30, "epochs": None},  # None: the recipe's evaluation epochs (6 at the proxy)
    "paper": {"genomes": 15, "epochs": 90},  # paper 5.2.1
}


def main(argv=None) -> dict:
    p = parser(__doc__, "number of random genomes (default 30 small, 15 paper as in the paper)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the recipe's, 90 paper)")
    args = parse(p, argv)
    budget = dict(BUDGETS[args.budget])
    if args.epochs:
        budget["epochs"] = args.epochs
    n = args.seeds or budget["genomes"]
    clock = Clock()
    config = search_config(args.budget)
    source, data, data_key = proxy_data(config, args.budget, args.dataset)
    evaluation = eval_config(config, train_scope="full", **({"epochs": budget["epochs"]} if budget["epochs"] else {}))
    cache = CandidateCache()
    genomes = sample_genomes(config, n)

    accuracy = {rate: [] for rate in RATES}
    replaced = {rate: [] for rate in RATES}
    for rate in RATES:
        rebuilt = reconstruct(genomes, rate, data, seed=config.seed)
        for i, result in enumerate(rebuilt):
            record = train_candidate(result["genome"], data, evaluation, data_key, config.seed, cache=cache)
            accuracy[rate].append(record["fitness"])
            replaced[rate].append(len(result["predicted_blocks"]) / len(genomes[i]))
        progress(f"rate {rate}: mean accuracy {mean(accuracy[rate]):.4f} over {n} genomes "
                 f"({cache.misses} trained, {cache.hits} cached so far)")

    base = accuracy[0.0]
    rows = []
    for rate in RATES:
        acc = accuracy[rate]
        diffs = [a - b for a, b in zip(acc, base)]
        row = {"rate": rate, "mean": mean(acc), "std": std(acc), "min": min(acc), "max": max(acc),
               "at_chance": sum(a <= 1 / data.num_classes + 1e-9 for a in acc),
               "blocks_replaced_fraction": mean(replaced[rate])}
        if rate > 0:
            row.update(better=sum(d > 1e-9 for d in diffs), equal=sum(abs(d) <= 1e-9 for d in diffs),
                       worse=sum(d < -1e-9 for d in diffs), mean_gain=mean(diffs),
                       gain_stderr=(std(diffs) or 0.0) / len(diffs) ** 0.5)
        rows.append(row)
    family = paired_family({rate: (accuracy[rate], base) for rate in RATES if rate > 0})  # paired t, Holm over the rates
    for row in rows:
        if row["rate"] > 0:
            row["minus_rate_0"] = family[row["rate"]]
    best = max(rows, key=lambda r: r["mean"])
    figures = {"rows": rows, "accuracy": {str(r): accuracy[r] for r in RATES}, "best_rate": best["rate"],
               "trained": cache.misses, "cached": cache.hits}
    settings = {"budget": args.budget, "genomes": n, "genome_seeds": f"sample_genome(1000..{1000 + n - 1})",
                "rates": list(RATES), "reconstruction": "shipped GPT, greedy, seed = the recipe's seed for every rate",
                "train_scope": "full", "evaluation": {k: v for k, v in evaluation.__dict__.items() if k != "progress"},
                "data": data_key, "recipe": recipe_name(args.budget),
                "limits": {"blocks": [config.min_blocks, config.max_blocks], "widths": list(config.widths),
                           "max_downsamples": config.max_downsamples},
                "threads": torch.get_num_threads(), **clock.info()}

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i in range(n):
        ax.plot(RATES, [accuracy[r][i] for r in RATES], color="grey", alpha=0.3, linewidth=0.8)
    ax.errorbar(RATES, [r["mean"] for r in rows], yerr=[r["std"] for r in rows], color="tab:red", marker="o",
                linewidth=2, capsize=4, label=f"mean over {n} genomes (± sd)")
    for r in rows[1:]:
        ax.annotate(f"{r['better']}/{r['equal']}/{r['worse']}", (r["rate"], r["mean"]), textcoords="offset points",
                    xytext=(0, 10), ha="center", fontsize=8)
    ax.axhline(1 / data.num_classes, color="black", linestyle=":", linewidth=0.8, label="chance")
    ax.set_xlabel("mask rate")
    ax.set_ylabel("validation top-1 (train scope full)")
    ax.set_title(f"Table 4 proxy: accuracy against mask rate ({evaluation.epochs} epochs, {len(data.train_y)} images)\n"
                 "labels: better/equal/worse than rate 0", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, NAME)

    curve = ", ".join(f"{r['rate']:g}: {r['mean']:.3f}" for r in rows)
    counts = ", ".join(f"{r['rate']:g}: {r['better']}/{r['equal']}/{r['worse']}" for r in rows[1:])
    headline = (f"{n} genomes, {evaluation.epochs} epochs full scope; mean val acc by rate {curve}; "
                f"better/equal/worse vs rate 0: {counts}; best rate {best['rate']:g}")
    write_result(NAME, settings, figures, headline)
    for r in rows[1:]:
        print(f"  rate {r['rate']:g}: gain {r['mean_gain']:+.4f} ± {r['gain_stderr']:.4f} (se), "
              f"paired t p {fmt(r['minus_rate_0']['p_value'], '.3g')} (Holm {fmt(r['minus_rate_0']['p_holm'], '.3g')}), {r['blocks_replaced_fraction']:.0%} blocks replaced, "
              f"{r['at_chance']}/{n} at chance (rate 0: {rows[0]['at_chance']})")
    return figures


if __name__ == "__main__":
    main()
