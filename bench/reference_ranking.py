"""The reference ranking: what "full training" says of the search space's networks, measured
once and committed, so that every cheap fitness proxy is scored against the same truth
(``bench.fidelity``) without training it again.

Genomes: 32 random genomes of the CPU proxy search space (``recipes/search-cifar10-cpu.yaml``:
10-20 blocks, widths 8/16/32, at most 3 downsamplings; seeds 1000.., the same genomes the
other benchmarks draw first) and 6 hand-designed ones in the same space (ResNet-, VGG-,
MobileNet- and RegNet-like stacks, and a deliberately poor stack of pools and activations).

Training, far longer than any proxy: 5,000 CIFAR-10 training images (700 a class drawn, 2,000
of them held back as the validation split), 10 epochs with augmentation (random crop, flip), SGD
with nesterov momentum, batch 128, lr 0.05 warmed up over one epoch then cosine-decayed to zero,
weight decay 5e-4, every parameter trained. Score: top-1 on that validation split, carved from
the training images: the reference selects proxies (``bench.fidelity``), and no selection is
ever made on the CIFAR-10 test split, which scores final figures only.

Each trained genome is cached (``RESULTS/runs/candidates.jsonl``), so a killed run resumes;
``--shard I/N`` trains every N-th genome from the I-th, so N processes can share the cores and
the last one (or a run without ``--shard``) writes ``reference_ranking.json`` and the plot.
The JSON records the settings and the code version (git commit) it was measured with.
"""

from __future__ import annotations

import dataclasses
import subprocess

from .common import (ROOT, CandidateCache, Clock, add_shard_option, fmt, mean, parse, parser, progress, pyplot,
                     sample_genomes, save_figure, search_config, shard, train_candidate, write_result)

NAME = "reference_ranking"
BUDGETS = {
    "smoke": {"random": 3, "hand": 2, "per_class": 12, "val_fraction": 0.25, "epochs": 1, "batch_size": 32},
    "small": {"random": 32, "hand": 6, "per_class": 700, "val_fraction": 2 / 7, "epochs": 10, "batch_size": 128},
    "paper": {"random": 50, "hand": 6, "per_class": None, "val_fraction": 0.1, "epochs": 30, "batch_size": 256},
}


def _stack(*blocks) -> list[dict]:
    from gptnas_hf.search_space import make_block

    return [make_block(kind, width, stride, rng=0, **params) for kind, width, stride, *rest in blocks
            for params in (rest[0] if rest else {},)]


def hand_designed() -> dict[str, list[dict]]:
    """Hand-designed genomes within the proxy search space (10-20 blocks, widths 8/16/32, at
    most 3 downsamplings), as a person who knows CNNs would write them."""
    bb = "BasicBlock"
    return {
        "resnet_like": _stack(("Stem", 16, 1), (bb, 16, 1), (bb, 16, 1), (bb, 16, 1), (bb, 32, 2), (bb, 32, 1),
                              (bb, 32, 1), (bb, 32, 2), (bb, 32, 1), (bb, 32, 1)),
        "resnet_narrow": _stack(("Stem", 8, 1), (bb, 8, 1), (bb, 8, 1), (bb, 16, 2), (bb, 16, 1), (bb, 16, 1),
                                (bb, 32, 2), (bb, 32, 1), (bb, 32, 1), (bb, 32, 1)),
        "vgg_like": _stack(("Stem", 16, 1), ("ConvNormActivation", 16, 1), ("MaxPool", 16, 2),
                           ("ConvNormActivation", 32, 1), ("ConvNormActivation", 32, 1), ("MaxPool", 32, 2),
                           ("ConvNormActivation", 32, 1), ("ConvNormActivation", 32, 1), ("MaxPool", 32, 2),
                           ("ConvNormActivation", 32, 1)),
        "mobilenet_like": _stack(("Stem", 16, 1), ("InvertedResidual", 16, 1), ("InvertedResidual", 16, 1),
                                 ("InvertedResidual", 32, 2), ("InvertedResidual", 32, 1),
                                 ("SqueezeExcitation", 32, 1), ("InvertedResidual", 32, 2),
                                 ("InvertedResidual", 32, 1), ("InvertedResidual", 32, 1),
                                 ("SqueezeExcitation", 32, 1)),
        "regnet_like": _stack(("Stem", 16, 1), ("ResBottleneckBlock", 16, 1), ("ResBottleneckBlock", 16, 1),
                              ("ResBottleneckBlock", 32, 2), ("ResBottleneckBlock", 32, 1),
                              ("ResBottleneckBlock", 32, 1), ("ResBottleneckBlock", 32, 2),
                              ("ResBottleneckBlock", 32, 1), ("ResBottleneckBlock", 32, 1),
                              ("ResBottleneckBlock", 32, 1)),
        "poor_pools": _stack(("Conv", 8, 1), ("ReLU", 8, 1), ("AvgPool", 8, 2), ("BatchNorm", 8, 1),
                             ("MaxPool", 8, 2), ("ReLU", 8, 1), ("AvgPool", 8, 2), ("BatchNorm", 8, 1),
                             ("ReLU", 8, 1), ("MaxPool", 8, 1)),
    }


def reference_genomes(budget: str, config) -> list[tuple[str, object]]:
    """(name, genome) of every network in the reference, in a fixed order."""
    from gptnas_hf.search_space import Genome

    spec = BUDGETS[budget]
    named = [(f"random-{1000 + i}", g) for i, g in enumerate(sample_genomes(config, spec["random"]))]
    named += [(name, Genome(blocks)) for name, blocks in list(hand_designed().items())[:spec["hand"]]]
    return named


def reference_setup(budget: str, dataset: str | None = None):
    """The search config (its space), the reference data (scored on its validation split, carved
    from the training images) and the reference training config, as the committed JSON was measured."""
    from gptnas_hf.data import load_image_data
    from gptnas_hf.evaluation import EvalConfig

    from .common import data_source

    spec = BUDGETS[budget]
    config = search_config(budget)
    source = data_source(budget, dataset)
    data_settings = {"max_train_per_class": spec["per_class"], "val_fraction": spec["val_fraction"], "max_test": 0}
    data = load_image_data(source, seed=0, progress=False, **data_settings)
    evaluation = EvalConfig(epochs=spec["epochs"], batch_size=spec["batch_size"], lr=0.05, lr_schedule="cosine",
                            warmup_epochs=1.0, weight_decay=5e-4, augment=True, train_scope="full", progress=False)
    data_key = {"source": source, "reference": True, **data_settings, "train": len(data.train_y),
                "scored_on": "validation", "scored": len(data.val_y)}
    return config, data, evaluation, data_key


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "gptnas_hf", "bench"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv=None) -> dict | None:
    p = parser(__doc__, "unused")
    add_shard_option(p, "genome")
    args = parse(p, argv)
    clock = Clock()
    config, data, evaluation, data_key = reference_setup(args.budget, args.dataset)
    named = reference_genomes(args.budget, config)
    cache = CandidateCache()
    if args.shard:
        for name, genome in shard(named, args.shard):
            record = train_candidate(genome, data, evaluation, data_key, config.seed, cache=cache)
            progress(f"{name}: {record['fitness']:.3f} ({record['seconds']:.0f} s)")
        return None
    rows = []
    for name, genome in named:
        record = train_candidate(genome, data, evaluation, data_key, config.seed, cache=cache)
        rows.append({"name": name, "hand_designed": not name.startswith("random-"), "hash": genome.hash(),
                     "genome": genome.to_list(), "accuracy": record["fitness"], "top5": record["top5"],
                     "status": record["status"], "parameters": record["parameters"], "seconds": record["seconds"]})
        progress(f"{name}: {record['fitness']:.3f}")
    chance = 1 / data.num_classes
    randoms = [r["accuracy"] for r in rows if not r["hand_designed"]]
    hands = [r["accuracy"] for r in rows if r["hand_designed"]]
    figures = {
        "networks": rows, "n": len(rows), "chance": chance,
        "at_chance_fraction": sum(r["accuracy"] <= chance + 0.02 for r in rows) / len(rows),
        "random_mean": mean(randoms), "hand_designed_mean": mean(hands),
        "seconds_per_network": mean([r["seconds"] for r in rows]),
    }
    settings = {"budget": args.budget, "space": "recipes/search-cifar10-cpu.yaml", "data": data_key,
                "training": dataclasses.asdict(evaluation), "run_seed": config.seed, "code_version": git_commit(),
                **clock.info()}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ordered = sorted(rows, key=lambda r: r["accuracy"])
    ax.bar(range(len(ordered)), [r["accuracy"] for r in ordered],
           color=["tab:orange" if r["hand_designed"] else "tab:blue" for r in ordered])
    ax.axhline(chance, color="grey", ls="--", lw=1, label="chance")
    ax.set_xticks(range(len(ordered)), [r["name"].replace("random-", "") for r in ordered], rotation=90, fontsize=6)
    ax.set_ylabel("reference validation top-1")
    ax.set_title(f"Reference ranking: {len(rows)} networks, {evaluation.epochs} epochs on {data_key['train']} "
                 "images (orange: hand-designed)", fontsize=9)
    ax.legend()
    save_figure(fig, NAME)
    headline = (f"{len(rows)} networks, {evaluation.epochs} epochs on {data_key['train']} CIFAR-10 images, scored on "
                f"{data_key['scored']} validation images: random mean {fmt(figures['random_mean'])} "
                f"(range {fmt(min(randoms))}-{fmt(max(randoms))}), hand-designed mean {fmt(figures['hand_designed_mean'])}; "
                f"{figures['at_chance_fraction']:.0%} at chance; {fmt(figures['seconds_per_network'], '.0f')} s a network")
    write_result(NAME, settings, figures, headline)
    return figures


if __name__ == "__main__":
    main()
