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
matmul (1024x1024 fp32) and large convolutions (3x3 at batch 64: the best of 64 channels at
32x32 and 256 channels at 16x16), each from its fastest of several repeats (a busy core only
slows a repeat down, so the best one is the nearest to the machine's peak), and each
candidate's training FLOPs per image are counted by torch's own ``FlopCounterMode`` over one
training step (forward and backward); ``full`` scope's achieved GFLOP/s (img/s x FLOPs per
image) is reported against the convolution peak, beside an airbench-style reference network
(:data:`REFERENCE_GENOME`) trained by the same code.

Optimisations, measured in the same run on the same candidates (``optimisations``): seconds
per training step (forward, backward and SGD step on one batch of real images, median of timed
steps after warm-up) for the path before the speed work (``contiguous``: NCHW tensors,
for-loop SGD, fp32, eager) and for each change on top of the default ``channels_last``:
``foreach`` and ``fused`` SGD, ``bf16`` autocast and ``torch.compile``. For ``compile`` the
first step's compile seconds are recorded (every genome is a new graph: the graph caches are
off, the compiled-kernel cache is as a search would find it), with the steps a candidate would
need to pay them back against the training steps one candidate of the recipe runs. A change becomes a default
only when these numbers support it."""

from __future__ import annotations

import math
import statistics

import torch

from .common import (Clock, eval_config, mean, parse, parser, progress, proxy_data, pyplot, recipe_name, reconstruct,
                     sample_genomes, save_figure, search_config, train_candidate, write_result)
from .reconstruction import time_reconstruction

NAME = "eval_speed"
SCOPES = ("predicted", "bn", "full")
PAPER_TRAIN_IMAGES = 45_000
BUDGETS = {
    "smoke": {"genomes": 2, "epochs": 1, "reconstruction_repeats": 1, "ablation_genomes": 2, "compile_genomes": 0,
              "ablation_steps": 3},
    "small": {"genomes": 12, "epochs": 1, "reconstruction_repeats": 10, "ablation_genomes": 6, "compile_genomes": 3,
              "ablation_steps": 20},
    "paper": {"genomes": 10, "epochs": 1, "reconstruction_repeats": 10, "ablation_genomes": 6, "compile_genomes": 3,
              "ablation_steps": 20},
}
VARIANTS = ("contiguous", "channels_last", "foreach", "fused", "bf16", "compile")
#: an airbench-style reference network in the search space's blocks (conv-bn-act stem at 64,
#: then three stages of conv, max-pool, conv at 64/256/256): the img/s a well-shaped CIFAR
#: network reaches through the same training code, beside the searched candidates
REFERENCE_GENOME = [
    {"kind": "ConvNormActivation", "width": 64, "stride": 1, "kernel": 3},
    {"kind": "ConvNormActivation", "width": 64, "stride": 1, "kernel": 3},
    {"kind": "MaxPool", "width": 64, "stride": 2},
    {"kind": "ConvNormActivation", "width": 64, "stride": 1, "kernel": 3},
    {"kind": "ConvNormActivation", "width": 256, "stride": 1, "kernel": 3},
    {"kind": "MaxPool", "width": 256, "stride": 2},
    {"kind": "ConvNormActivation", "width": 256, "stride": 1, "kernel": 3},
    {"kind": "ConvNormActivation", "width": 256, "stride": 1, "kernel": 3},
    {"kind": "MaxPool", "width": 256, "stride": 2},
    {"kind": "ConvNormActivation", "width": 256, "stride": 1, "kernel": 3},
]


def _seconds(fn, repeats: int) -> list[float]:
    import time

    fn()  # warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def _median_seconds(fn, repeats: int = 5) -> float:
    return statistics.median(_seconds(fn, repeats))


def _best_seconds(fn, repeats: int = 7) -> float:
    """The fastest of the repeats: a peak is what the machine can do, and a shared core only
    ever slows a repeat down."""
    return min(_seconds(fn, repeats))


def machine_peak(device: str = "cpu") -> dict:
    """GFLOP/s of a large matmul and of large 3x3 convolutions (the best of 64 channels at 32x32
    and 256 channels at 16x16, batch 64) at the current thread count, each from its fastest repeat."""
    from torch.utils.flop_counter import FlopCounterMode

    a = torch.randn(1024, 1024, device=device)
    matmul = 2 * 1024 ** 3 / _best_seconds(lambda: a @ a) / 1e9
    convs = {}
    for channels, side in ((64, 32), (256, 16)):
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1).to(device)
        x = torch.randn(64, channels, side, side, device=device)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            conv(x)
        with torch.no_grad():
            seconds = _best_seconds(lambda: conv(x))
        convs[f"{channels}ch_{side}px"] = counter.get_total_flops() / seconds / 1e9
    return {"matmul_gflops": matmul, "conv_gflops": max(convs.values()), "conv_gflops_by_shape": convs,
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


def step_seconds(genome, data, batch: int, variant: str, steps: int, device: str) -> dict:
    """Median seconds of one training step of ``genome``'s network under ``variant`` (module
    doc), and the first step's seconds (the compile, for ``compile``)."""
    import time
    from contextlib import ExitStack, nullcontext

    from gptnas_hf.data import normalize
    from gptnas_hf.search_space import build_network

    torch.manual_seed(0)
    network = build_network(genome, in_channels=data.channels, num_classes=data.num_classes).to(device)
    layout = torch.contiguous_format if variant == "contiguous" else torch.channels_last
    network = network.to(memory_format=layout)
    options = {"foreach": {"foreach": True}, "fused": {"fused": True}}.get(variant, {"foreach": False})
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01, momentum=0.9, nesterov=True, **options)
    model, first_call = network, nullcontext()
    if variant == "compile":  # a first compile, as a user meets it: no graph compiled by an earlier run is reused
        from torch._functorch import config as functorch_config
        from torch._inductor import config as inductor_config

        torch._dynamo.reset()
        model = torch.compile(network)
        first_call = ExitStack()
        first_call.enter_context(inductor_config.patch(fx_graph_cache=False))
        first_call.enter_context(functorch_config.patch(enable_autograd_cache=False))
    x = normalize(data.train_x[:batch].to(device), data.mean.to(device), data.std.to(device))
    x, y = x.contiguous(memory_format=layout), data.train_y[:batch].to(device)
    autocast = torch.autocast(device, dtype=torch.bfloat16) if variant == "bf16" else nullcontext()

    def step():
        with autocast:
            logits = model(x)
        torch.nn.functional.cross_entropy(logits.float(), y).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()

    start = time.perf_counter()
    with first_call:
        step()
    first = time.perf_counter() - start
    return {"step_s": _median_seconds(step, steps), "first_step_s": first}  # one more step to warm, then timed


def optimisations(genomes, data, batch: int, steps: int, compile_genomes: int, steps_per_candidate: int,
                  device: str) -> dict:
    """The ablation of the module doc: per variant, the median speed-up over ``contiguous`` and
    over ``channels_last`` (the default) across ``genomes``; compile only on the first
    ``compile_genomes`` (its compile takes tens of seconds on a CPU)."""
    from gptnas_hf.evaluation import channels_last_is_safe

    per = {v: [] for v in VARIANTS}
    safe = channels_last_is_safe(device)  # else every variant but contiguous would corrupt oneDNN's heap
    for i, genome in enumerate(genomes):
        for variant in VARIANTS:
            if (variant == "compile" and i >= compile_genomes) or (variant != "contiguous" and not safe):
                continue
            per[variant].append(step_seconds(genome, data, batch, variant, steps, device))
        progress(f"optimisations, genome {i + 1}/{len(genomes)}: " + ", ".join(
            f"{v} {per[v][-1]['step_s'] * 1e3:.1f} ms" for v in VARIANTS if len(per[v]) == i + 1))
    rows = {}
    for variant, timings in per.items():
        if not timings:
            rows[variant] = {"measured": False}
            if not safe and variant != "contiguous":
                rows[variant]["reason"] = ("channels-last is not safe on this CPU (oneDNN without its AVX-512 "
                                           "kernels): candidates train in NCHW (contiguous)")
            continue
        n = len(timings)
        base, default = per["contiguous"][:n], (per["channels_last"] if safe else per["contiguous"])[:n]
        row = {"measured": True, "genomes": n,
               "step_ms_median": 1e3 * statistics.median(t["step_s"] for t in timings),
               "images_per_second_median": statistics.median(batch / t["step_s"] for t in timings),
               "speedup_vs_contiguous_median": statistics.median(b["step_s"] / t["step_s"] for b, t in zip(base, timings)),
               "speedup_vs_channels_last_median": statistics.median(
                   d["step_s"] / t["step_s"] for d, t in zip(default, timings))}
        if variant == "compile":
            saved = [d["step_s"] - t["step_s"] for d, t in zip(default, timings)]
            extra = [t["first_step_s"] - d["first_step_s"] for d, t in zip(default, timings)]
            row["compile_s_median"] = statistics.median(extra)
            row["break_even_steps"] = [round(e / s) if s > 0 else None for e, s in zip(extra, saved)]
            row["pays_back_within_a_candidate"] = all(
                b is not None and b <= steps_per_candidate for b in row["break_even_steps"])
        rows[variant] = row
    return {"batch": batch, "timed_steps": steps, "steps_per_candidate": steps_per_candidate,
            "channels_last_safe": safe, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "variants": rows}


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
    steps_per_candidate = config.evaluation.get("epochs", 1) * math.ceil(train_images / batch)
    ablation = optimisations([r["genome"] for r in rebuilt[:budget["ablation_genomes"]]], data, batch,
                             budget["ablation_steps"], budget["compile_genomes"], steps_per_candidate, device)
    reference = train_candidate(REFERENCE_GENOME, data, eval_config(config, epochs=budget["epochs"], train_scope="full"),
                                data_key, config.seed)
    reference_flops = training_flops_per_image(REFERENCE_GENOME, data)
    reference_row = {"images_per_second": reference["images_per_second"], "parameters": reference["parameters"],
                     "training_gflop_per_image": reference_flops / 1e9,
                     "achieved_gflops": reference["images_per_second"] * reference_flops / 1e9,
                     "share_of_conv_peak": reference["images_per_second"] * reference_flops / 1e9 / peak["conv_gflops"]}
    progress(f"reference network: {reference_row['images_per_second']:.0f} img/s, "
             f"{100 * reference_row['share_of_conv_peak']:.0f}% of the conv peak")
    progress("timing reconstruction")
    recon = time_reconstruction(budget["reconstruction_repeats"])
    figures = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "scopes": rows,
               "reconstruction_batch_30": recon, "train_images": train_images, "peak": peak,
               "optimisations": ablation, "reference_network": reference_row}
    settings = {"budget": args.budget, "genomes": n, "epochs": budget["epochs"], "recipe": recipe_name(args.budget),
                "mask_rate": config.initial_mask_rate, "batch_size": config.evaluation.get("batch_size"),
                "evaluation": {k: v for k, v in eval_config(config).__dict__.items() if k not in ("progress", "train_scope")},
                "data": data_key, "threads": torch.get_num_threads(), **clock.info()}

    plt = pyplot()
    fig, (left, right, third) = plt.subplots(1, 3, figsize=(16, 4.2))
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
    measured = [v for v in VARIANTS if ablation["variants"][v]["measured"]]
    speedups = [ablation["variants"][v]["speedup_vs_contiguous_median"] for v in measured]
    third.bar(measured, speedups, color=["#999999" if v == "contiguous" else "#4c72b0" for v in measured])
    third.axhline(1.0, color="black", lw=0.8)
    for j, v in enumerate(measured):
        row = ablation["variants"][v]
        note = f"x{row['speedup_vs_contiguous_median']:.2f}"
        if v == "compile":
            note += f"\n+{row['compile_s_median']:.0f} s compile"
        third.annotate(note, (j, row["speedup_vs_contiguous_median"]), ha="center", textcoords="offset points",
                       xytext=(0, 3), fontsize=7)
    third.set_ylabel("training-step speed-up over the contiguous fp32 path")
    third.set_title(f"optimisations, median over {ablation['variants']['contiguous']['genomes']} genomes "
                    f"(compile: {budget['compile_genomes']}), batch {batch}", fontsize=9)
    third.tick_params(axis="x", labelrotation=30, labelsize=8)
    third.grid(alpha=0.3, axis="y")
    save_figure(fig, NAME)

    headline = (f"{figures['device']}: " + ", ".join(
        f"{s} {rows[s]['images_per_second_median']:.0f} img/s ({rows[s]['seconds_per_epoch_mean']:.1f} s/epoch of "
        f"{train_images})" for s in SCOPES)
        + f"; full scope reaches {rows['full']['achieved_gflops_median']:.2f} GFLOP/s, "
        f"{100 * rows['full']['share_of_conv_peak_median']:.0f}% of the {peak['conv_gflops']:.0f} GFLOP/s conv peak "
        f"at {peak['threads']} thread(s) (airbench-style reference network: {reference_row['images_per_second']:.0f} "
        f"img/s, {100 * reference_row['share_of_conv_peak']:.0f}%)"
        + f"; predicted/full speed-up x{rows['predicted']['speedup_vs_full_median']:.2f}; reconstruction of 30: "
        f"warm {recon['warm_median_s']:.3f} s, cold {recon['cold_median_s']:.3f} s"
        + "; training step over the contiguous fp32 path: " + ", ".join(
            f"{v} x{ablation['variants'][v]['speedup_vs_contiguous_median']:.2f}" for v in measured if v != "contiguous")
        + (f" (compile {ablation['variants']['compile']['compile_s_median']:.0f} s, pays back within a candidate: "
           f"{ablation['variants']['compile']['pays_back_within_a_candidate']})"
           if ablation["variants"]["compile"]["measured"] else ""))
    write_result(NAME, settings, figures, headline)
    return figures


if __name__ == "__main__":
    main()
