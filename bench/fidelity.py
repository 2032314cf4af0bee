"""Fidelity of the cheap fitness (paper Table 5 and Fig. 4): does the short training the search
scores candidates with rank them like longer training, and does training only the blocks the
GPT predicted rank them like training every block?

1. Epochs (Table 5): the same random genomes trained (all parameters) for several epoch
   counts in separate sessions; Pearson correlation and p-value (``scipy.stats.pearsonr``) of
   the validation accuracies between every pair of counts (the paper: 6 against 30, 60, 90
   epochs, 50 genomes). The small budget's counts are 1, 2 (the proxy search's), 6 and 12, on
   20 genomes.
2. Train scope (Fig. 4): the genomes rebuilt by the shipped GPT at a mask rate (0.4, the
   search's initial rate; the paper budget also 0, 0.2, 0.6 and 0.8 for the heat map), trained
   once with all blocks (``full``, "a") and once the way the search trains them (``auto``:
   only the predicted blocks and the classifier, or only BatchNorm when no predicted block has
   parameters, "p"); Pearson correlation between the two across genomes.

Each epoch count is a separate training session from the same initialisation. With the proxy
recipe's schedule (lr warmed up over the first epoch, then constant) the first epochs of a
longer session are the shorter session. Trainings are cached in
``bench/results/runs/candidates.jsonl`` (shared with mask_rate: same genomes, same settings)."""

from __future__ import annotations

import itertools

import torch

from .common import (CandidateCache, Clock, eval_config, fmt, parse, parser, pearson, progress, proxy_data, pyplot,
                     recipe_name, reconstruct, sample_genomes, save_figure, search_config, train_candidate,
                     write_result)

NAME = "fidelity"
BUDGETS = {
    "smoke": {"genomes": 3, "epochs": (1, 2), "rates": (0.4,), "scope_genomes": 3},
    "small": {"genomes": 20, "epochs": (1, 2, 6, 12), "rates": (0.4,), "scope_genomes": 20},
    "paper": {"genomes": 50, "epochs": (6, 30, 60, 90), "rates": (0.0, 0.2, 0.4, 0.6, 0.8), "scope_genomes": 15},
}


def _sizes(x, y, unit: float = 18.0) -> list[float]:
    """Marker areas proportional to how many genomes share a point (accuracies repeat a lot)."""
    from collections import Counter

    counts = Counter(zip(x, y))
    return [unit * counts[p] for p in zip(x, y)]


def _spearman(x, y):
    from scipy.stats import spearmanr

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(spearmanr(x, y).statistic)


def main(argv=None) -> dict:
    args = parse(parser(__doc__, "number of genomes for the epoch correlation (default 20 small, 50 paper)"), argv)
    budget = BUDGETS[args.budget]
    n = args.seeds or budget["genomes"]
    n_scope = min(n, budget["scope_genomes"])
    clock = Clock()
    config = search_config(args.budget)
    source, data, data_key = proxy_data(config, args.budget, args.dataset)
    search_epochs = config.evaluation.get("epochs", 6)
    cache = CandidateCache()
    genomes = sample_genomes(config, n)

    # 1. epochs
    epochs = sorted(set(budget["epochs"]))
    by_epochs = {}
    for e in epochs:
        evaluation = eval_config(config, train_scope="full", epochs=e)
        by_epochs[e] = [train_candidate(g, data, evaluation, data_key, config.seed, cache=cache)["fitness"] for g in genomes]
        progress(f"{e} epochs: {n} genomes trained ({cache.misses} trained, {cache.hits} cached so far)")
    chance = 1 / data.num_classes
    epoch_pairs = []
    for a, b in itertools.combinations(epochs, 2):
        stats = pearson(by_epochs[a], by_epochs[b])
        above = [(x, y) for x, y in zip(by_epochs[a], by_epochs[b]) if x > chance + 1e-9]
        epoch_pairs.append({"pair": f"e{a}-e{b}", "short": a, "long": b, **stats,
                            "spearman": _spearman(by_epochs[a], by_epochs[b]),
                            "short_at_chance": sum(x <= chance + 1e-9 for x in by_epochs[a]),
                            "r_short_above_chance": pearson([x for x, _ in above], [y for _, y in above])["r"]})

    # 2. train scope, on genomes rebuilt by the GPT
    rates = budget["rates"]
    scope_genomes = genomes[:n_scope]
    full, searched, scopes, replaced = {}, {}, {}, {}
    for rate in rates:
        rebuilt = reconstruct(scope_genomes, rate, data, seed=config.seed)
        full[rate], searched[rate], scopes[rate], replaced[rate] = [], [], [], []
        for result in rebuilt:
            a = train_candidate(result["genome"], data, eval_config(config, train_scope="full"), data_key, config.seed,
                                cache=cache)
            p = train_candidate(result["genome"], data, eval_config(config, train_scope="auto"), data_key, config.seed,
                                predicted_blocks=result["predicted_blocks"], cache=cache)
            full[rate].append(a["fitness"])
            searched[rate].append(p["fitness"])
            scopes[rate].append(p["train_scope"])
            replaced[rate].append(len(result["predicted_blocks"]))
        progress(f"rate {rate}: full vs searched scope on {n_scope} genomes ({cache.misses} trained, {cache.hits} cached)")
    scope_rows = []
    for rate in rates:
        stats = pearson(searched[rate], full[rate])
        both = [(x, y) for x, y in zip(searched[rate], full[rate]) if not (x <= chance + 1e-9 and y <= chance + 1e-9)]
        scope_rows.append({"rate": rate, **stats, "spearman": _spearman(searched[rate], full[rate]),
                           "both_at_chance": n_scope - len(both),
                           "without_both_at_chance": pearson([x for x, _ in both], [y for _, y in both]),
                           "scopes": {s: scopes[rate].count(s) for s in sorted(set(scopes[rate]))},
                           "mean_full": sum(full[rate]) / n_scope, "mean_searched": sum(searched[rate]) / n_scope,
                           "mean_blocks_replaced": sum(replaced[rate]) / n_scope})
    heatmap = [[pearson(searched[rp], full[ra])["r"] for ra in rates] for rp in rates]

    figures = {"epoch_pairs": epoch_pairs, "accuracy_by_epochs": {str(e): v for e, v in by_epochs.items()},
               "scope_rows": scope_rows, "scope_heatmap": {"rows_p": list(rates), "cols_a": list(rates), "r": heatmap},
               "full_by_rate": {str(r): v for r, v in full.items()}, "searched_by_rate": {str(r): v for r, v in searched.items()},
               "trained": cache.misses, "cached": cache.hits}
    settings = {"budget": args.budget, "genomes": n, "scope_genomes": n_scope, "epochs": epochs,
                "search_epochs": search_epochs, "rates": list(rates), "recipe": recipe_name(args.budget),
                "evaluation": {k: v for k, v in eval_config(config).__dict__.items() if k != "progress"},
                "data": data_key, "threads": torch.get_num_threads(), **clock.info()}

    plt = pyplot()
    panels = 3 if len(rates) > 1 else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.4))
    ax = axes[0]
    longest = epochs[-1]
    for short, colour in zip(epochs[:-1], ("tab:blue", "tab:orange", "tab:green", "tab:purple")):
        row = next(r for r in epoch_pairs if r["short"] == short and r["long"] == longest)
        ax.scatter(by_epochs[short], by_epochs[longest], s=_sizes(by_epochs[short], by_epochs[longest]), color=colour,
                   alpha=0.6,
                   label=f"e{short} vs e{longest}: r={fmt(row['r'], '.2f')}, p={fmt(row['p'], '.1e')}")
    lo = min(min(v) for v in by_epochs.values())
    hi = max(max(v) for v in by_epochs.values())
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("validation top-1, short training; marker area: genomes")
    ax.set_ylabel(f"validation top-1, {longest} epochs")
    ax.set_title(f"Table 5 proxy: short vs long training ({n} genomes)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = axes[1]
    main_rate = 0.4 if 0.4 in rates else rates[0]
    row = next(r for r in scope_rows if r["rate"] == main_rate)
    ax.scatter(full[main_rate], searched[main_rate], s=_sizes(full[main_rate], searched[main_rate]), color="tab:red",
               alpha=0.7)
    lo = min(full[main_rate] + searched[main_rate])
    hi = max(full[main_rate] + searched[main_rate])
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("validation top-1, all blocks trained (a); marker area: genomes")
    ax.set_ylabel("validation top-1, search's scope (p: predicted blocks)")
    ax.set_title(f"Fig. 4 proxy at mask rate {main_rate}: r={fmt(row['r'], '.2f')}, p={fmt(row['p'], '.1e')}, "
                 f"n={n_scope}\n{row['both_at_chance']} at chance on both sides; without them r="
                 f"{fmt(row['without_both_at_chance']['r'], '.2f')}, p={fmt(row['without_both_at_chance']['p'], '.1e')}",
                 fontsize=8)
    ax.grid(alpha=0.3)
    if panels == 3:
        ax = axes[2]
        grid = [[float("nan") if v is None else v for v in line] for line in heatmap]
        image = ax.imshow(grid, vmin=-1, vmax=1, cmap="RdBu_r")
        labels = [f"{int(r * 10)}" for r in rates]
        ax.set_xticks(range(len(rates)), [f"a{x}" for x in labels])
        ax.set_yticks(range(len(rates)), [f"p{x}" for x in labels])
        for i, line in enumerate(heatmap):
            for j, v in enumerate(line):
                ax.text(j, i, fmt(v, ".2f"), ha="center", va="center", fontsize=7)
        fig.colorbar(image, ax=ax, fraction=0.046)
        ax.set_title("Pearson r, predicted-only (p) vs all blocks (a)", fontsize=9)
    save_figure(fig, NAME)

    search_pair = next((r for r in epoch_pairs if r["short"] == search_epochs and r["long"] == longest), epoch_pairs[-1])
    epoch_text = "; ".join(f"{r['pair']} r={fmt(r['r'], '.2f')} (p={fmt(r['p'], '.1e')})" for r in epoch_pairs)
    scope_text = "; ".join(f"rate {r['rate']:g} r={fmt(r['r'], '.2f')} (p={fmt(r['p'], '.1e')}; "
                           f"{r['both_at_chance']} at chance on both sides)" for r in scope_rows)
    headline = (f"{n} genomes: {epoch_text}; predicted-only vs all blocks ({n_scope} genomes): {scope_text}")
    write_result(NAME, settings, {**figures, "search_pair": search_pair}, headline)
    return figures


if __name__ == "__main__":
    main()
