"""Reconstruction speed: a batch of 30 genomes of 10-20 blocks at mask rate 0.4 through
``pipeline("nas-reconstruction")`` with the shipped checkpoint. Target: under 0.5 s on a
2-core CPU. ``cold`` traces every block for the first time; ``warm`` is the steady state of a
search, where the blocks of the incoming genomes were seen before and only new predicted
blocks are traced."""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budget", choices=("small", "paper"), default="small")
    parser.add_argument("--seeds", type=int, default=None, help="repetitions (default 10 small, 30 paper)")
    args = parser.parse_args(argv)
    repeats = args.seeds or (10 if args.budget == "small" else 30)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from transformers import pipeline

    import gptnas_hf
    from gptnas_hf.pipeline_nas_reconstruction import _block_layers_cached
    from gptnas_hf.search_space import sample_genome

    from .common import RESULTS, write_result

    reconstruct = pipeline("nas-reconstruction", model=gptnas_hf.DEFAULT_MODEL)
    cold, warm, replaced = [], [], []
    for rep in range(repeats):
        genomes = [sample_genome(10_000 + 30 * rep + i) for i in range(30)]
        _block_layers_cached.cache_clear()
        start = time.perf_counter()
        reconstruct(genomes, mask_rate=0.4, seed=rep)
        cold.append(time.perf_counter() - start)
        # the incoming genomes' blocks are known now, as in a running search; new seed, new predictions
        start = time.perf_counter()
        results = reconstruct(genomes, mask_rate=0.4, seed=rep + 1000)
        warm.append(time.perf_counter() - start)
        replaced.append(sum(len(r["predicted_blocks"]) for r in results))
    figures = {
        "warm_median_s": statistics.median(warm), "warm_max_s": max(warm),
        "cold_median_s": statistics.median(cold), "cold_max_s": max(cold),
        "blocks_replaced_per_batch": statistics.mean(replaced), "target_s": 0.5,
        "warm_s": warm, "cold_s": cold,
    }
    settings = {"batch": 30, "mask_rate": 0.4, "blocks": "10-20", "repeats": repeats, "threads": torch.get_num_threads()}
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.boxplot([warm, cold], tick_labels=["warm (search steady state)", "cold (no block seen)"])
    ax.axhline(0.5, color="red", linestyle="--", label="target 0.5 s")
    ax.set_ylabel("seconds per batch of 30 genomes")
    ax.set_title("nas-reconstruction at mask rate 0.4")
    ax.legend()
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "reconstruction.png", dpi=110)
    headline = (f"batch of 30 at rate 0.4: warm {figures['warm_median_s']:.3f} s median (max {figures['warm_max_s']:.3f}), "
                f"cold {figures['cold_median_s']:.3f} s; {figures['blocks_replaced_per_batch']:.0f} blocks replaced")
    path = write_result("reconstruction", settings, figures, headline)
    print(headline)
    print(f"-> {path}")


if __name__ == "__main__":
    main()
