"""Search wall time on the machine users have, quiet and under load: the thread and process
policy of ``gptnas_hf/search/workers.py`` against torch's default (one process, as many
threads as cores).

Measured in one run, on the quick-start recipe (``recipes/quickstart.yaml``: GA+GPT on the
digits, offline):

* **quick start**: the whole recipe, quiet, with the default policy (several candidate
  processes, one thread each) and with one process (``workers: 1``): wall seconds, and whether
  both end with the same best genome (they must: each candidate's training is seeded by its
  genome and uses the same thread count whatever the number of processes);
* **under load**: a small search (the recipe at ``population`` and ``generations`` below) and
  a batch of 30 reconstructions (``pipeline("nas-reconstruction")`` in the search's own process,
  at the search's thread count), each quiet and while another process keeps one core busy
  (a Python busy loop), for both policies; reported as the loaded / quiet ratio.

The policies: ``default`` (``workers`` and ``threads`` left to the search: on a CPU, the
usable cores / 1 processes with 1 thread each) and ``torch-default`` (``workers: 1``,
``threads``: every usable core, which is what torch does by itself).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

from .common import ROOT, Clock, parse, parser, progress, pyplot, save_figure, write_result

NAME = "search_wall"
RECIPE = ROOT / "recipes" / "quickstart.yaml"
BUDGETS = {
    "smoke": {"quickstart": {"population_size": 2, "generations": 0, "data": {"max_train_per_class": 20}},
              "small_search": {"population_size": 2, "generations": 0, "data": {"max_train_per_class": 20}},
              "reconstructions": 4, "repeats": 1},
    "small": {"quickstart": {}, "small_search": {"population_size": 4, "generations": 1},
              "reconstructions": 30, "repeats": 5},
}
BUDGETS["paper"] = BUDGETS["small"]


@contextmanager
def busy_core():
    """Another process keeping one core busy for the block."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        process.kill()
        process.wait()


def _policies() -> dict:
    from gptnas_hf.search.workers import available_cores

    return {"default": {}, "torch-default": {"workers": 1, "threads": available_cores()}}


def _config(overrides: dict, policy: dict, output_dir: str):
    from gptnas_hf.search.searcher import SearchConfig

    recipe = SearchConfig.from_yaml(RECIPE).to_dict()
    for key, value in overrides.items():
        recipe[key] = {**recipe.get(key, {}), **value} if isinstance(value, dict) else value
    return SearchConfig.from_dict({**recipe, **policy, "progress": False, "output_dir": output_dir})


def time_search(overrides: dict, policy: dict) -> dict:
    """Wall seconds of one search in a fresh run directory, from construction to the end."""
    from gptnas_hf.search.searcher import NASSearcher

    with tempfile.TemporaryDirectory(prefix="gptnas-wall-") as tmp:
        start = time.perf_counter()
        result = NASSearcher(_config(overrides, policy, tmp)).run()
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "best_genome": result.best_genome.hash(), "best_fitness": result.best_fitness}


def time_reconstructions(n: int, repeats: int, threads: int) -> float:
    """Median seconds of a batch of ``n`` reconstructions at ``threads`` torch threads."""
    from gptnas_hf.search.workers import torch_threads

    from .common import reconstructor, sample_genomes, search_config

    pipe = reconstructor()
    genomes = sample_genomes(search_config("small"), n, first_seed=7000)
    times = []
    with torch_threads(threads):
        pipe(genomes[:2], mask_rate=0.4, seed=0)  # warm
        for i in range(repeats):
            start = time.perf_counter()
            pipe(genomes, mask_rate=0.4, seed=i)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> dict:
    p = parser(__doc__, "unused")
    args = parse(p, argv)
    budget = BUDGETS[args.budget]
    clock = Clock()
    from gptnas_hf.search.workers import available_cores, resolve_threads

    policies = _policies()
    cores = available_cores()
    quick = {
        "default": time_search(budget["quickstart"], policies["default"]),
        "one-process": time_search(budget["quickstart"], {"workers": 1}),
    }
    progress(f"quick start: {quick['default']['seconds']:.1f} s (default), {quick['one-process']['seconds']:.1f} s "
             "(one process)")
    load = {}
    for name, policy in policies.items():
        threads = policy.get("threads") or resolve_threads(None, on_gpu=False)
        row = {}
        for state in ("quiet", "loaded"):
            with (busy_core() if state == "loaded" else _nothing()):
                row[f"search_{state}_s"] = time_search(budget["small_search"], policy)["seconds"]
                row[f"reconstructions_{state}_s"] = time_reconstructions(budget["reconstructions"], budget["repeats"],
                                                                        threads)
        row["search_ratio"] = row["search_loaded_s"] / row["search_quiet_s"]
        row["reconstructions_ratio"] = row["reconstructions_loaded_s"] / row["reconstructions_quiet_s"]
        load[name] = row
        progress(f"{name}: search x{row['search_ratio']:.2f} under load ({row['search_quiet_s']:.1f} -> "
                 f"{row['search_loaded_s']:.1f} s), {budget['reconstructions']} reconstructions "
                 f"x{row['reconstructions_ratio']:.2f} ({row['reconstructions_quiet_s']:.3f} -> "
                 f"{row['reconstructions_loaded_s']:.3f} s)")
    figures = {"quickstart": {**quick, "same_best_genome": quick["default"]["best_genome"]
                              == quick["one-process"]["best_genome"]},
               "under_load": load, "cores": cores}
    settings = {"budget": args.budget, "recipe": str(RECIPE.relative_to(ROOT)), "policies": policies, **budget,
                **clock.info()}

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    names = list(load)
    for offset, (part, label) in enumerate((("search", "small search"), ("reconstructions", "30 reconstructions"))):
        xs = [i + 0.38 * offset for i in range(len(names))]
        bars = left.bar(xs, [load[n][f"{part}_ratio"] for n in names], 0.36, label=label)
        for bar, n in zip(bars, names):
            left.annotate(f"x{load[n][f'{part}_ratio']:.1f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                          textcoords="offset points", xytext=(0, 2), ha="center", fontsize=8)
    left.axhline(2, color="tab:red", ls="--", lw=1, label="goal: at most x2")
    left.set_xticks([i + 0.19 for i in range(len(names))], names)
    left.set_ylabel("wall time with one core busy / quiet")
    left.set_title("slow-down under load", fontsize=9)
    left.legend(fontsize=8)
    left.grid(alpha=0.3, axis="y")
    right.bar(["default", "one process"], [quick["default"]["seconds"], quick["one-process"]["seconds"]],
              color=["tab:blue", "tab:grey"])
    right.axhline(60, color="tab:red", ls="--", lw=1, label="goal: 60 s")
    right.set_ylabel("seconds")
    right.set_title(f"quick start, quiet ({cores} cores); same best genome: {figures['quickstart']['same_best_genome']}",
                    fontsize=9)
    right.legend(fontsize=8)
    save_figure(fig, NAME)
    d, t = load["default"], load["torch-default"]
    headline = (f"quick start {quick['default']['seconds']:.0f} s quiet ({quick['one-process']['seconds']:.0f} s in one "
                f"process; same best genome: {figures['quickstart']['same_best_genome']}); with one core busy, a small "
                f"search x{d['search_ratio']:.2f} and {budget['reconstructions']} reconstructions "
                f"x{d['reconstructions_ratio']:.2f} (torch's default threads: x{t['search_ratio']:.2f} and "
                f"x{t['reconstructions_ratio']:.2f})")
    write_result(NAME, settings, figures, headline)
    return figures


@contextmanager
def _nothing():
    yield


if __name__ == "__main__":
    main()
