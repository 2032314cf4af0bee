"""Reconstruction speed: a batch of 30 genomes of 10-20 blocks at mask rate 0.4 through
``pipeline("nas-reconstruction")`` with the shipped checkpoint. Target: under 0.5 s on a
2-core CPU. ``cold`` traces every block for the first time; ``warm`` is the steady state of a
search, where the blocks of the incoming genomes were seen before and only new predicted
blocks are traced."""

from __future__ import annotations

import statistics
import time

import torch

from .common import Clock, parse, parser, pyplot, reconstructor, save_figure, write_result

NAME = "reconstruction"

TARGET_S = 0.5


def time_reconstruction(repeats: int, batch: int = 30, mask_rate: float = 0.4, first_seed: int = 10_000) -> dict:
    """Cold and warm seconds of ``repeats`` batches of ``batch`` fresh genomes (10-20 blocks)
    through the shipped pipeline; the median, max and every measurement."""
    from gptnas_hf.pipeline_nas_reconstruction import clear_block_layers_cache
    from gptnas_hf.search_space import sample_genome

    reconstruct = reconstructor()
    cold, warm, replaced = [], [], []
    for rep in range(repeats):
        genomes = [sample_genome(first_seed + batch * rep + i) for i in range(batch)]
        clear_block_layers_cache()
        start = time.perf_counter()
        reconstruct(genomes, mask_rate=mask_rate, seed=rep)
        cold.append(time.perf_counter() - start)
        # the incoming genomes' blocks are known now, as in a running search; new seed, new predictions
        start = time.perf_counter()
        results = reconstruct(genomes, mask_rate=mask_rate, seed=rep + 1000)
        warm.append(time.perf_counter() - start)
        replaced.append(sum(len(r["predicted_blocks"]) for r in results))
    return {
        "warm_median_s": statistics.median(warm), "warm_max_s": max(warm),
        "cold_median_s": statistics.median(cold), "cold_max_s": max(cold),
        "blocks_replaced_per_batch": statistics.mean(replaced), "target_s": TARGET_S,
        "warm_s": warm, "cold_s": cold,
    }


def main(argv=None) -> dict:
    args = parse(parser(__doc__, "repetitions (default 10 small, 30 paper)"), argv)
    repeats = args.seeds or {"small": 10, "paper": 30, "smoke": 1}[args.budget]
    clock = Clock()
    figures = time_reconstruction(repeats)
    settings = {"budget": args.budget, "batch": 30, "mask_rate": 0.4, "blocks": "10-20", "repeats": repeats,
                "threads": torch.get_num_threads(), **clock.info()}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.boxplot([figures["warm_s"], figures["cold_s"]], tick_labels=["warm (search steady state)", "cold (no block seen)"])
    ax.axhline(TARGET_S, color="red", linestyle="--", label=f"target {TARGET_S} s")
    ax.set_ylabel("seconds per batch of 30 genomes")
    ax.set_title("nas-reconstruction at mask rate 0.4")
    ax.legend()
    save_figure(fig, NAME)
    headline = (f"batch of 30 at rate 0.4: warm {figures['warm_median_s']:.3f} s median (max {figures['warm_max_s']:.3f}), "
                f"cold {figures['cold_median_s']:.3f} s; {figures['blocks_replaced_per_batch']:.0f} blocks replaced")
    write_result(NAME, settings, figures, headline)
    return figures


if __name__ == "__main__":
    main()
