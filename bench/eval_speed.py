"""Candidate evaluation speed: training images per second and seconds per epoch by train scope
(``predicted``: the blocks the GPT predicted + the classifier; ``bn``: BatchNorm + the
classifier; ``full``: everything), on random genomes rebuilt by the shipped GPT at mask rate
0.4 (so they have predicted blocks), each scope from the same initialisation; plus the
reconstruction time of a batch of 30 genomes (``bench.reconstruction.time_reconstruction``).

The device is autodetected (``evaluate_network``'s accelerator: a CUDA GPU when there is one,
else the CPU); the small budget uses the CPU proxy's data and training
(``recipes/search-cifar10-cpu.yaml``), the paper budget the paper's (batch 512, full CIFAR-10).
Seconds per epoch are also extrapolated to the 45,000 training images of the paper's search.
Throughput on a shared machine depends on what else runs: the load average is recorded.

Share of peak: the machine's peak at the benchmark's thread count is measured on a large
matmul (1024x1024 fp32) and a large convolution (3x3, 64 channels, 32x32, batch 64), and each
candidate's training FLOPs per image are counted by torch's own ``FlopCounterMode`` over one
training step (forward and backward); ``full`` scope's achieved GFLOP/s (img/s x FLOPs per
image) is reported against the convolution peak."""

from __future__ import annotations

import statistics

import torch

from .common import (Clock, eval_config, mean, parse, parser, progress, proxy_data, pyplot, recipe_name, reconstruct,
                     sample_genomes, save_figure, search_config, train_candidate, write_result)
from .reconstruction import time_reconstruction

NAME = "eval_speed"
SCOPES = ("predicted", "bn", "full")
PAPER_TRAIN_IMAGES = 45_000
BUDGETS = {
    "smoke": {"genomes": 2, "epochs": 1, "reconstruction_repeats": 1},
    "small": {"genomes": 12, "epochs": 1, "reconstruction_repeats": 10},
    "paper": {"genomes": 10, "epochs": 1, "reconstruction_repeats": 10},
}


def _median_seconds(fn, repeats: int = 5) -> float:
    import time

    fn()  # warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine_peak(device: str = "cpu") -> dict:
    """GFLOP/s of a large matmul and a large 3x3 convolution at the current thread count."""
    from torch.utils.flop_counter import FlopCounterMode

    a = torch.randn(1024, 1024, device=device)
    matmul = 2 * 1024 ** 3 / _median_seconds(lambda: a @ a) / 1e9
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(device)
    x = torch.randn(64, 64, 32, 32, device=device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        conv(x)
    with torch.no_grad():
        seconds = _median_seconds(lambda: conv(x))
    return {"matmul_gflops": matmul, "conv_gflops": counter.get_total_flops() / seconds / 1e9,
            "threads": torch.get_num_threads()}


def training_flops_per_image(genome, data, batch: int = 32) -> float:
    """FLOPs of one training step (forward + backward) per image, counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    from gptnas_hf.search_space import build_network

    network = build_network(genome, in_channels=data.channels, num_classes=data.num_classes).train()
    x = torch.randn(batch, data.channels, data.image_size, data.image_size)
    counter = FlopCounterMode(display=False)
    with counter:
        torch.nn.functional.cross_entropy(network(x), torch.zeros(batch, dtype=torch.long)).backward()
    return counter.get_total_flops() / batch


def main(argv=None) -> dict:
    args = parse(parser(__doc__, "number of genomes (default 12 small, 10 paper)"), argv)
    budget = BUDGETS[args.budget]
    n = args.seeds or budget["genomes"]
    clock = Clock()
    config = search_config(args.budget)
    source, data, data_key = proxy_data(config, args.budget, args.dataset)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        data = data.to(device)  # once, not per candidate
    genomes = sample_genomes(config, n, first_seed=3000)
    rebuilt = [r for r in reconstruct(genomes, config.initial_mask_rate, data, seed=config.seed)]
    # warm-up (first-call costs: metric loading, allocator, kernels), not counted
    train_candidate(rebuilt[0]["genome"], data, eval_config(config, epochs=1, train_scope="bn"), data_key, config.seed,
                    predicted_blocks=rebuilt[0]["predicted_blocks"])
    peak = machine_peak(device)
    progress(f"peak at {peak['threads']} thread(s): matmul {peak['matmul_gflops']:.1f} GFLOP/s, "
             f"conv {peak['conv_gflops']:.1f} GFLOP/s")
    per_scope = {s: [] for s in SCOPES}
    flops = [training_flops_per_image(r["genome"], data) for r in rebuilt]
    for i, result in enumerate(rebuilt):
        for scope in SCOPES:
            evaluation = eval_config(config, epochs=budget["epochs"], train_scope=scope)
            record = train_candidate(result["genome"], data, evaluation, data_key, config.seed,
                                     predicted_blocks=result["predicted_blocks"])
            per_scope[scope].append({"images_per_second": record["images_per_second"],
                                     "trainable_fraction": record["trainable_parameters"] / max(record["parameters"], 1),
                                     "seconds": record["seconds"], "resolved_scope": record["train_scope"]})
        progress(f"genome {i + 1}/{n}: " + ", ".join(f"{s} {per_scope[s][-1]['images_per_second']:.0f} img/s" for s in SCOPES))
    cap = config.evaluation.get("max_batches_per_epoch")
    batch = config.evaluation.get("batch_size", 512)
    train_images = min(len(data.train_y), cap * batch) if cap else len(data.train_y)  # images one epoch trains on
    rows = {}
    for scope in SCOPES:
        ips = [r["images_per_second"] for r in per_scope[scope]]
        rows[scope] = {"images_per_second_median": statistics.median(ips), "images_per_second_mean": mean(ips),
                       "seconds_per_epoch_mean": mean([train_images / v for v in ips]),
                       "seconds_per_epoch_45k_mean": mean([PAPER_TRAIN_IMAGES / v for v in ips]),
                       "trainable_fraction_mean": mean([r["trainable_fraction"] for r in per_scope[scope]]),
                       "per_genome": per_scope[scope]}
    achieved = [r["images_per_second"] * f / 1e9 for r, f in zip(per_scope["full"], flops)]
    rows["full"].update(training_gflop_per_image_mean=mean(flops) / 1e9, achieved_gflops_median=statistics.median(achieved),
                        share_of_conv_peak_median=statistics.median(achieved) / peak["conv_gflops"])
    for scope in ("predicted", "bn"):
        rows[scope]["speedup_vs_full_median"] = statistics.median(
            [a["images_per_second"] / b["images_per_second"] for a, b in zip(per_scope[scope], per_scope["full"])])
    progress("timing reconstruction")
    recon = time_reconstruction(budget["reconstruction_repeats"])
    figures = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "scopes": rows,
               "reconstruction_batch_30": recon, "train_images": train_images, "peak": peak}
    settings = {"budget": args.budget, "genomes": n, "epochs": budget["epochs"], "recipe": recipe_name(args.budget),
                "mask_rate": config.initial_mask_rate, "batch_size": config.evaluation.get("batch_size"),
                "evaluation": {k: v for k, v in eval_config(config).__dict__.items() if k not in ("progress", "train_scope")},
                "data": data_key, "threads": torch.get_num_threads(), **clock.info()}

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.boxplot([[r["images_per_second"] for r in per_scope[s]] for s in SCOPES], tick_labels=list(SCOPES))
    for j, scope in enumerate(SCOPES):
        left.annotate(f"{rows[scope]['seconds_per_epoch_mean']:.1f} s/epoch", (j + 1, rows[scope]["images_per_second_median"]),
                      textcoords="offset points", xytext=(28, 0), fontsize=8)
    left.set_ylabel("training images per second")
    left.set_title(f"candidate training by scope on {figures['device']} ({n} genomes, batch "
                   f"{config.evaluation.get('batch_size')}, {train_images} images/epoch)", fontsize=9)
    left.grid(alpha=0.3)
    right.boxplot([recon["warm_s"], recon["cold_s"]], tick_labels=["warm", "cold"])
    right.set_ylabel("seconds per batch of 30 genomes")
    right.set_title("nas-reconstruction at mask rate 0.4", fontsize=9)
    right.grid(alpha=0.3)
    save_figure(fig, NAME)

    headline = (f"{figures['device']}: " + ", ".join(
        f"{s} {rows[s]['images_per_second_median']:.0f} img/s ({rows[s]['seconds_per_epoch_mean']:.1f} s/epoch of "
        f"{train_images})" for s in SCOPES)
        + f"; full scope reaches {rows['full']['achieved_gflops_median']:.2f} GFLOP/s, "
        f"{100 * rows['full']['share_of_conv_peak_median']:.0f}% of the {peak['conv_gflops']:.0f} GFLOP/s conv peak "
        f"at {peak['threads']} thread(s)"
        + f"; predicted/full speed-up x{rows['predicted']['speedup_vs_full_median']:.2f}; reconstruction of 30: "
        f"warm {recon['warm_median_s']:.3f} s, cold {recon['cold_median_s']:.3f} s")
    write_result(NAME, settings, figures, headline)
    return figures


if __name__ == "__main__":
    main()
