"""Search time without training (paper Table 6): the non-training seconds per generation of 30
candidates for GA, GA+GPT, Random and Random+GPT, and the GPT's share of it.

A generation here is what :class:`~gptnas_hf.search.searcher.NASSearcher` does besides
training: the strategy proposes offspring (``propose_with_origins``; the initial population
for generation 0), the shipped GPT rebuilds them (``pipeline("nas-reconstruction")`` with the
searcher's mask-rate schedule, Eq. 3, and its seeds) when the setting uses it, and the
strategy selects the next population (``select``). Nothing is trained: each candidate gets a
seeded random fitness, so selection and breeding run as in a real search. Writing the run's
state and report files is not counted. Every run starts with an empty block-trace cache, as a
fresh search process does (so the first generations trace blocks for the first time).

Population 30 and 20 generations are the paper's; the limits (blocks, widths, downsamples) are
the recipe's. The small budget runs the paper's scale too (it trains nothing), 3 seeds.

For scale, a few candidates are also trained the way the search trains them (genomes rebuilt
at the initial mask rate, the recipe's evaluation, train scope ``auto``) to estimate the
training seconds of a generation of 30, and the GPT's share of a whole generation."""

from __future__ import annotations

import random
import time

import torch

from .common import (Clock, eval_config, fmt, mean, parse, parser, progress, proxy_data, pyplot, recipe_name,
                     reconstruct, reconstructor, sample_genomes, save_figure, search_config, std, train_candidate,
                     write_result)

NAME = "search_time"
SETTINGS = (("GA", "ga", False), ("GA+GPT", "ga", True), ("Random", "random", False), ("Random+GPT", "random", True))
BUDGETS = {
    "smoke": {"population": 6, "generations": 2, "seeds": 1, "train_sample": 2},
    "small": {"population": 30, "generations": 20, "seeds": 3, "train_sample": 6},
    "paper": {"population": 30, "generations": 20, "seeds": 5, "train_sample": 6},
}


def time_search(config, use_gpt: bool, seed: int, image_size: int = 32, in_channels: int = 3) -> dict:
    """One search without training; seconds per generation for the strategy and for the GPT."""
    from gptnas_hf.mask_schedule import mask_rate_at
    from gptnas_hf.pipeline_nas_reconstruction import clear_block_layers_cache
    from gptnas_hf.search.candidate import seed_for
    from gptnas_hf.search.config import make_space, make_strategy
    from gptnas_hf.search.strategies import Individual

    strategy = make_strategy(config, make_space(config))
    pipe = reconstructor(config.model) if use_gpt else None
    rng = random.Random(seed)
    fitness_rng = random.Random(f"fitness:{seed}")
    clear_block_layers_cache()
    strategy_s, gpt_s, rebuilt = [], [], []
    population: list = []
    for generation in range(config.generations + 1):
        start = time.perf_counter()
        if generation == 0:
            proposals = [(g, "init") for g in strategy.initial_population(rng)]
        else:
            proposals = [(p.genome, p.origin) for p in strategy.propose_with_origins(population, rng)]
        propose = time.perf_counter() - start
        genomes = [g for g, _ in proposals]
        flags = [False] * len(genomes)
        gpt = 0.0
        if pipe is not None:
            start = time.perf_counter()
            results = pipe(genomes, mask_rate=mask_rate_at(generation, max(config.generations, 1), config.initial_mask_rate),
                           seed=seed_for(seed, "gpt", generation), window_size=config.window_size,
                           image_size=image_size, in_channels=in_channels)
            gpt = time.perf_counter() - start
            genomes = [r["genome"] for r in results]
            flags = [bool(r["predicted_blocks"]) for r in results]
        offspring = [Individual(genome=g, fitness=fitness_rng.random(), reconstructed=f, origin=o)
                     for g, f, (_, o) in zip(genomes, flags, proposals)]
        start = time.perf_counter()
        if generation == 0:
            population = sorted(offspring, key=lambda ind: -ind.fitness)[: config.population_size]
        else:
            population = strategy.select(population, offspring, rng)
        select = time.perf_counter() - start
        strategy_s.append(propose + select)
        gpt_s.append(gpt)
        rebuilt.append(sum(flags))
    return {"strategy_s": strategy_s, "gpt_s": gpt_s, "rebuilt": rebuilt}


def main(argv=None) -> dict:
    args = parse(parser(__doc__, "repetitions of each setting with different seeds (default 3 small, 5 paper)"), argv)
    budget = BUDGETS[args.budget]
    seeds = args.seeds or budget["seeds"]
    clock = Clock()
    reconstructor()  # load the model before timing anything
    rows = {}
    for label, strategy, use_gpt in SETTINGS:
        config = search_config(args.budget, strategy=strategy, use_gpt=use_gpt, population_size=budget["population"],
                               generations=budget["generations"])
        runs = [time_search(config, use_gpt, seed) for seed in range(seeds)]
        per_gen = [mean([s + g for s, g in zip(r["strategy_s"], r["gpt_s"])]) for r in runs]
        strat = [mean(r["strategy_s"]) for r in runs]
        gpt = [mean(r["gpt_s"]) for r in runs]
        rows[label] = {"strategy": strategy, "use_gpt": use_gpt, "per_generation_s": mean(per_gen),
                       "per_generation_sd": std(per_gen), "strategy_s": mean(strat), "gpt_s": mean(gpt),
                       "gpt_share_percent": 100 * mean(gpt) / mean(per_gen) if mean(per_gen) else None,
                       "search_total_s": mean([sum(r["strategy_s"]) + sum(r["gpt_s"]) for r in runs]),
                       "rebuilt_per_generation": mean([mean(r["rebuilt"]) for r in runs]),
                       "first_generation_gpt_s": mean([r["gpt_s"][0] for r in runs]),
                       "runs": runs}
        progress(f"{label}: {rows[label]['per_generation_s']:.4f} s per generation "
                 f"(strategy {rows[label]['strategy_s']:.4f}, GPT {rows[label]['gpt_s']:.4f})")
    for base, with_gpt in (("GA", "GA+GPT"), ("Random", "Random+GPT")):
        b, w = rows[base]["per_generation_s"], rows[with_gpt]["per_generation_s"]
        rows[with_gpt]["overhead_vs_" + base + "_percent"] = 100 * (w - b) / b if b else None
    config = search_config(args.budget)
    # the training a generation would add, estimated from a few candidates trained as the search does
    source, data, data_key = proxy_data(config, args.budget, args.dataset)
    sample = sample_genomes(config, budget["train_sample"], first_seed=5000)
    rebuilt = reconstruct(sample, config.initial_mask_rate, data, seed=config.seed)
    train_s = [train_candidate(r["genome"], data, eval_config(config), data_key, config.seed,
                               predicted_blocks=r["predicted_blocks"])["seconds"] for r in rebuilt]
    generation_train_s = budget["population"] * mean(train_s)
    training = {"candidates": len(train_s), "seconds_per_candidate": mean(train_s), "seconds_per_candidate_sd": std(train_s),
                "seconds_per_generation": generation_train_s,
                "gpt_share_of_whole_generation_percent": {
                    label: 100 * rows[label]["gpt_s"] / (rows[label]["per_generation_s"] + generation_train_s)
                    for label in rows if rows[label]["use_gpt"]}}
    progress(f"training estimate: {mean(train_s):.1f} s per candidate, {generation_train_s:.0f} s per generation")
    figures = {label: {k: v for k, v in row.items() if k != "runs"} for label, row in rows.items()}
    figures["training_estimate"] = training
    figures["per_run"] = {label: row["runs"] for label, row in rows.items()}
    settings = {"budget": args.budget, "population": budget["population"], "generations": budget["generations"],
                "seeds": seeds, "initial_mask_rate": config.initial_mask_rate, "recipe": recipe_name(args.budget),
                "limits": {"blocks": [config.min_blocks, config.max_blocks], "widths": list(config.widths),
                           "max_downsamples": config.max_downsamples},
                "image": "3x32x32", "fitness": "seeded random (no training)", "data": data_key,
                "evaluation": {k: v for k, v in eval_config(config).__dict__.items() if k != "progress"}, "threads": torch.get_num_threads(),
                **clock.info()}

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    labels = [label for label, _, _ in SETTINGS]
    strat = [rows[label]["strategy_s"] for label in labels]
    gpt = [rows[label]["gpt_s"] for label in labels]
    ax.bar(labels, strat, color="tab:blue", label="strategy (propose + select)")
    ax.bar(labels, gpt, bottom=strat, color="tab:orange", label="GPT reconstruction")
    ax.errorbar(labels, [s + g for s, g in zip(strat, gpt)], yerr=[rows[label]["per_generation_sd"] for label in labels],
                fmt="none", color="black", capsize=4)
    for i, label in enumerate(labels):
        share = rows[label]["gpt_share_percent"]
        text = f"{rows[label]['per_generation_s'] * 1000:.0f} ms" + (f"\nGPT {share:.0f}%" if rows[label]["use_gpt"] else "")
        top = strat[i] + gpt[i] + (rows[label]["per_generation_sd"] or 0)
        ax.annotate(text, (i, top), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=8)
    ax.set_ylabel("seconds per generation (no training)")
    ax.set_title(f"Table 6 proxy: population {budget['population']}, {budget['generations']} generations, {seeds} seeds; "
                 f"with ~{generation_train_s:.0f} s of training a generation,\nthe GPT is "
                 f"{training['gpt_share_of_whole_generation_percent']['GA+GPT']:.2f}% of a GA+GPT generation", fontsize=9)
    ax.set_ylim(0, max(s + g for s, g in zip(strat, gpt)) * 1.45)
    ax.legend(fontsize=8, loc="upper right")
    save_figure(fig, NAME)

    headline = "; ".join(
        f"{label} {rows[label]['per_generation_s']:.3f} s/gen" + (f" (GPT {rows[label]['gpt_share_percent']:.0f}%)"
                                                                 if rows[label]["use_gpt"] else "") for label in labels)
    headline += (f"; GPT overhead +{fmt(rows['GA+GPT']['overhead_vs_GA_percent'], '.0f')}% over GA, "
                 f"+{fmt(rows['Random+GPT']['overhead_vs_Random_percent'], '.0f')}% over Random (no training counted); "
                 f"with training (~{generation_train_s:.0f} s per generation of {budget['population']}) the GPT is "
                 f"{training['gpt_share_of_whole_generation_percent']['GA+GPT']:.2f}% of a GA+GPT generation")
    write_result(NAME, settings, figures, headline)
    return figures


if __name__ == "__main__":
    main()
