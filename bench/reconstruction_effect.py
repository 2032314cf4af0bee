"""Does the GPT's rewrite make a network better than chance would? (paired, with a control)

Seeded genomes of the CPU proxy search space (``recipes/search-cifar10-cpu.yaml``: 10-20
blocks, widths 8/16/32; seeds 1000.., 40 at the small budget), each trained in several arms:

1. ``original``: as sampled;
2. ``gpt``: rebuilt by the shipped architecture GPT at mask rate 0.4 (the search's initial rate;
   ``nas-reconstruction`` with its default method, greedy);
3. ``gpt_sampled``: the same, sampling at temperature 1 (greedy against sampling);
4. ``control``: knowledge-free: the *same* masked positions, each block replaced by a block
   whose kind is drawn from the zoo's block frequencies (the share of each Table-2 block kind
   among the blocks of the 36 torchvision networks), with the same width and stride and random
   parameters. It lacks only what the GPT knows.

Training is identical in every arm: the recipe's proxy (its evaluation settings, every
parameter trained), on CIFAR-10 from ``../shared/data/cifar10`` with a validation split of at
least 1,000 images (300 images a class, a third of them held out for validation). Each
network is seeded from its own hash, as in the search.

Reported: paired differences per genome (``gpt_minus_original``, ``gpt_minus_control``,
``sampled_minus_greedy``), each ``{mean, ci95, p_value, p_holm, n}`` (``bench.common.paired_t``: t interval and the
matching paired t-test, Holm over the five comparisons), the share of networks at chance, how often a
masked block keeps its kind, and the distribution of the chosen kinds. Trainings are cached
(``RESULTS/runs/candidates.jsonl``); ``--shard I/N`` trains every N-th job and writes nothing.
"""

from __future__ import annotations

import random
from collections import Counter

from .common import (CandidateCache, Clock, add_shard_option, eval_config, fmt, mean, paired_family, parse, parser, progress,
                     pyplot, reconstructor, recipe_name, sample_genomes, save_figure, search_config, shard,
                     train_candidate, write_result)

NAME = "reconstruction_effect"
BUDGETS = {"smoke": {"genomes": 4, "data": {"max_train_per_class": 8, "val_fraction": 0.25}},
           "small": {"genomes": 40, "data": {"max_train_per_class": 300, "val_fraction": 0.34, "max_test": 2000}},
           "paper": {"genomes": 100, "data": {"val_fraction": 0.1}}}
RATE = 0.4
ARMS = ("original", "gpt", "gpt_sampled", "control")


def zoo_block_frequencies() -> dict[str, float]:
    """Share of each Table-2 block kind among the blocks of the 36 zoo networks."""
    from gptnas_hf.corpora.zoo import zoo_corpus
    from gptnas_hf.search_space import KIND_PARAMS

    counts: Counter = Counter()
    for row in zoo_corpus(progress=False):
        seen = set()
        for label, index in zip(row["blocks"], row["block_index"]):
            if index not in seen:
                seen.add(index)
                if label in KIND_PARAMS:
                    counts[label] += 1
    total = sum(counts.values())
    return {kind: counts[kind] / total for kind in sorted(counts)}


def control_genome(genome, positions, frequencies: dict[str, float], seed: int):
    """``genome`` with the blocks at ``positions`` replaced by kinds drawn from ``frequencies``
    (same width and stride, random parameters)."""
    from gptnas_hf.search_space import Genome, make_block

    rng = random.Random(f"control:{seed}:{genome.hash()}")
    blocks = genome.to_list()
    kinds, weights = list(frequencies), list(frequencies.values())
    for index in positions:
        kind = rng.choices(kinds, weights=weights)[0]
        blocks[index] = make_block(kind, blocks[index]["width"], blocks[index]["stride"], rng)
    return Genome(blocks)


def main(argv=None) -> dict | None:
    p = parser(__doc__, "number of genomes (default 40 small)")
    add_shard_option(p, "(arm, genome) job")
    args = parse(p, argv)
    clock = Clock()
    spec = BUDGETS[args.budget]
    n = args.seeds or spec["genomes"]
    config = search_config(args.budget, data=spec["data"])
    from .common import proxy_data

    source, data, data_key = proxy_data(config, args.budget, args.dataset)
    evaluation = eval_config(config, train_scope="full")
    genomes = sample_genomes(config, n)
    pipe = reconstructor()
    greedy = pipe(genomes, mask_rate=RATE, seed=config.seed, image_size=data.image_size, in_channels=data.channels)
    sampled = pipe(genomes, mask_rate=RATE, seed=config.seed, image_size=data.image_size, in_channels=data.channels,
                   do_sample=True, temperature=1.0)
    frequencies = zoo_block_frequencies()
    from gptnas_hf.search_space import Genome

    arms = {"original": genomes, "gpt": [Genome(r["genome"]) for r in greedy],
            "gpt_sampled": [Genome(r["genome"]) for r in sampled],
            "control": [control_genome(g, r["predicted_blocks"], frequencies, config.seed) for g, r in zip(genomes, greedy)]}
    cache = CandidateCache()
    jobs = [(arm, i) for i in range(n) for arm in ARMS]
    jobs = shard(jobs, args.shard)
    fitness = {arm: [None] * n for arm in ARMS}
    for arm, i in jobs:
        record = train_candidate(arms[arm][i], data, evaluation, data_key, config.seed, cache=cache)
        fitness[arm][i] = record["fitness"]
        if args.shard:
            progress(f"{arm} {i}: {record['fitness']:.3f} ({record['seconds']:.1f} s)")
    if args.shard:
        return None
    progress(f"{cache.misses} trained, {cache.hits} cached")

    chance = 1 / data.num_classes
    everything = [v for arm in ARMS for v in fitness[arm]]
    masked = [i for r in greedy for i in r["predicted_blocks"]]
    kept = [k for r in greedy for k in r["kept_kind"]]
    kept_sampled = [k for r in sampled for k in r["kept_kind"]]
    chosen = Counter(r["genome"][i]["kind"] for r in greedy for i in r["predicted_blocks"])
    chosen_sampled = Counter(r["genome"][i]["kind"] for r in sampled for i in r["predicted_blocks"])
    replaced = Counter(g[i]["kind"] for g, r in zip(genomes, greedy) for i in r["predicted_blocks"])
    control_kinds = Counter(c[i]["kind"] for c, r in zip(arms["control"], greedy) for i in r["predicted_blocks"])
    figures = {
        **paired_family({"gpt_minus_original": (fitness["gpt"], fitness["original"]),
                         "gpt_minus_control": (fitness["gpt"], fitness["control"]),
                         "sampled_minus_greedy": (fitness["gpt_sampled"], fitness["gpt"]),
                         "sampled_minus_original": (fitness["gpt_sampled"], fitness["original"]),
                         "control_minus_original": (fitness["control"], fitness["original"])}),
        "mean_fitness": {arm: mean(fitness[arm]) for arm in ARMS},
        "at_chance_fraction": sum(v <= chance + 0.02 for v in everything) / len(everything),
        "masked_blocks": len(masked), "kept_kind_fraction": sum(kept) / max(len(kept), 1),
        "kept_kind_fraction_sampled": sum(kept_sampled) / max(len(kept_sampled), 1),
        "chosen_kinds": dict(chosen.most_common()), "chosen_kinds_sampled": dict(chosen_sampled.most_common()),
        "replaced_kinds": dict(replaced.most_common()), "control_kinds": dict(control_kinds.most_common()),
        "zoo_block_frequencies": frequencies, "fitness": fitness,
        "genomes": [g.to_list() for g in genomes],
    }
    settings = {"budget": args.budget, "genomes": n, "mask_rate": RATE, "recipe": recipe_name(args.budget),
                "data": data_key, "evaluation": {k: v for k, v in evaluation.__dict__.items() if k != "progress"},
                "model": str(pipe.model.name_or_path), "method": greedy[0]["method"] if greedy else None,
                **clock.info()}

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    ax = axes[0]
    names = ["gpt_minus_original", "gpt_minus_control", "sampled_minus_greedy", "control_minus_original"]
    for y, name in enumerate(names):
        row = figures[name]
        ax.errorbar(row["mean"] * 100, y, xerr=[[(row["mean"] - row["ci95"][0]) * 100], [(row["ci95"][1] - row["mean"]) * 100]],
                    fmt="o", capsize=4)
        ax.annotate(f"p={fmt(row['p_value'], '.2g')}, {row['wins']}/{row['ties']}/{row['losses']}",
                    (row["mean"] * 100, y), xytext=(0, 7), textcoords="offset points", ha="center", fontsize=7)
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(range(len(names)), [n.replace("_minus_", " - ") for n in names])
    ax.set_xlabel("paired difference, validation top-1 (points), 95% CI")
    ax.set_title(f"{n} genomes, mask rate {RATE}; w/t/l and paired t p", fontsize=9)
    ax.grid(alpha=0.3)
    ax = axes[1]
    kinds = sorted(set(chosen) | set(replaced) | set(control_kinds))
    width = 0.27
    for offset, (label, counter) in enumerate((("replaced", replaced), ("GPT (greedy)", chosen), ("control", control_kinds))):
        ax.bar([i + (offset - 1) * width for i in range(len(kinds))], [counter.get(k, 0) for k in kinds], width, label=label)
    ax.set_xticks(range(len(kinds)), kinds, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("masked blocks")
    ax.set_title(f"kinds at masked positions (kept its kind: {figures['kept_kind_fraction']:.0%})", fontsize=9)
    ax.legend(fontsize=7)
    save_figure(fig, NAME)

    g_o, g_c = figures["gpt_minus_original"], figures["gpt_minus_control"]
    headline = (f"{n} genomes, rate {RATE}: GPT - original {g_o['mean'] * 100:+.1f} points "
                f"[{g_o['ci95'][0] * 100:+.1f}, {g_o['ci95'][1] * 100:+.1f}] (p={fmt(g_o['p_value'], '.2g')}); "
                f"GPT - control {g_c['mean'] * 100:+.1f} [{g_c['ci95'][0] * 100:+.1f}, {g_c['ci95'][1] * 100:+.1f}] "
                f"(p={fmt(g_c['p_value'], '.2g')}); sampled - greedy "
                f"{figures['sampled_minus_greedy']['mean'] * 100:+.1f}; kept kind "
                f"{figures['kept_kind_fraction']:.0%}; {figures['at_chance_fraction']:.0%} at chance")
    write_result(NAME, settings, figures, headline)
    return figures


if __name__ == "__main__":
    main()
