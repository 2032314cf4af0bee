"""What a search run leaves beside its state: ``best_genome.json``, ``report.md``,
``progress.png`` (best and mean fitness per generation; accuracy against evaluations) and
``pareto.png`` (accuracy against parameters and MACs, with the Pareto front: :mod:`.pareto`).

``report.md`` names the data searched (source, classes, image size, split sizes, and how
images of other sizes were resized), and after ``gptnas retrain`` a "Final training" section
with the settings and data that training used (:func:`write_final_training`)."""

from __future__ import annotations

import json

import time
from pathlib import Path

from .pareto import COSTS, front_table, plot_pareto, trained
from .run_directory import RunDirectory


def plot_progress(history: list[dict], records: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (left, right, third) = plt.subplots(1, 3, figsize=(15, 4))
    generations = [h["generation"] for h in history]
    left.plot(generations, [h["best"] for h in history], marker="o", label="best of population")
    left.plot(generations, [h["mean"] for h in history], marker=".", label="mean of population")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_xlabel("generation")
    left.set_ylabel("validation top-1")
    left.set_title("fitness per generation")
    left.grid(alpha=0.3)
    left.legend()
    fitness = [r["fitness"] for r in records]
    colours = ["tab:orange" if r.get("reconstructed") else "tab:blue" for r in records]
    right.scatter(range(1, len(fitness) + 1), fitness, s=12, c=colours, alpha=0.7)
    best, running = [], 0.0
    for value in fitness:
        running = max(running, value)
        best.append(running)
    right.plot(range(1, len(best) + 1), best, color="black", label="best so far")
    right.set_xlabel("evaluation")
    right.set_ylabel("validation top-1")
    right.set_title("accuracy against evaluations (orange: rebuilt by the GPT)")
    right.grid(alpha=0.3)
    right.legend()
    diverse = [h for h in history if h.get("diversity_edit_distance") is not None]
    third.plot([h["generation"] for h in diverse], [h["diversity_edit_distance"] for h in diverse], marker="o",
               color="tab:green", label="mean pairwise edit distance")
    third.plot([h["generation"] for h in diverse], [h["diversity_kinds_per_position"] for h in diverse], marker=".",
               color="tab:purple", label="distinct kinds per position")
    third.xaxis.set_major_locator(MaxNLocator(integer=True))
    third.set_xlabel("generation")
    third.set_title("population diversity (block kinds)")
    third.grid(alpha=0.3)
    third.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


FINAL_TRAINING = "## Final training"


def _data_line(data: dict | None, dataset) -> list[str]:
    if not data:
        return []
    if "table" in data:  # fitness looked up in a table
        table = data["table"]
        return [f"- fitness: looked up in `{table['path']}` (`{table['metric_column']}` of {table['architectures']:,} "
                f"architectures, {table['min']:.2f} to {table['max']:.2f}; fitness = value x {table['scale']}), "
                f"networks read at {data['in_channels']}x{data['image_size']}x{data['image_size']} with "
                f"{data['num_classes']} classes"]
    line = (f"- data: {dataset}, {data['num_classes']} classes, {data['channels']}x{data['image_size']}x"
            f"{data['image_size']} input, {data.get('train', '?')} training / {data.get('val', '?')} validation / "
            f"{data.get('test', '?')} test images")
    return [line + (f"; {data['size_note']}" if data.get("size_note") else "")]


def write_reports(output_dir: Path, config, state: dict, population, records: list[dict],
                  data: dict | None = None, space=None, best=None) -> None:
    """``data``: the searched data's ``describe()`` plus its split sizes (``train``, ``val``, ``test``),
    or the fitness table's; ``space``: the search space (default the block genome); ``best``: the
    run's best individual (default the population's fittest)."""
    from ..space_blocks import BlockSpace

    space = space or BlockSpace()
    best = best or max(population, key=lambda ind: ind.fitness)
    best_hash = space.hash(best.genome)
    best_record = next((r for r in records if r["hash"] == best_hash), {})
    run = RunDirectory(output_dir)
    run.write_best_genome(best.genome, space)
    strategy = config.strategy.upper() if config.strategy in ("ga", "rea") else config.strategy.capitalize()
    setting = f"{strategy}{'+GPT' if config.use_gpt else ''}"
    table = data.get("table") if data else None
    searched = f"{space.name} ({Path(table['path']).name})" if table else config.dataset
    plot_progress(state["history"], records, run.progress_plot_path, f"{setting} on {searched}")
    limits = {"parameters": config.max_params, "macs": config.max_macs} if not table else {}
    plot_pareto(records, run.pareto_plot_path, f"{setting} on {searched}: accuracy against cost", limits)
    repaired = [r for r in records if r.get("budget_repair") or r.get("gpt_budget_repair") or r.get("gpt_over_budget")]
    failures = [r for r in records if r["status"] not in ("ok", "prefiltered")]
    prefiltered = sum(r["status"] == "prefiltered" for r in records)
    elapsed = run.wall_seconds(state)
    if elapsed is None:  # a state written before the searcher kept its wall seconds
        elapsed = time.time() - state.get("started", time.time())
    lines = [
        f"# Search report: {setting} on {searched}",
        "",
        f"- status: {'finished' if state['phase'] == 'done' else 'running, generation ' + str(state['generation'])}",
        *_data_line(data, config.dataset),
        f"- strategy: {config.strategy}, population {config.population_size}, generations {config.generations}, "
        f"GPT reconstruction: {'on, initial mask rate ' + str(config.initial_mask_rate) if config.use_gpt else 'off'}",
        f"- evaluations: {len(records)} ({sum(r['reconstructed'] for r in records)} rebuilt by the GPT, "
        f"{len(failures)} failed"
        + (f", {prefiltered} left untrained by the {config.prefilter} pre-filter" if prefiltered else "")
        + f"), {sum(r['seconds'] for r in records):.0f} s of training, {elapsed:.0f} s wall",
        (f"- best {data['table']['metric_column']}: **{best_record.get('metric', best.fitness)}** (fitness "
         f"{best.fitness:.4f}, {best_record.get('parameters', 0):,} parameters): `{space.describe(best.genome)}`"
         if data and "table" in data else
         f"- best validation top-1: **{best.fitness:.4f}** ({best_record.get('parameters', 0):,} parameters, "
         + (f"{best_record['macs']:,} MACs, " if best_record.get("macs") is not None else "")
         + (f"{len(best.genome)} blocks)" if isinstance(space, BlockSpace) else f"`{space.describe(best.genome)}`)")),
        *([] if table else [_budget_line(config, repaired)]),
        "",
        "## Generations",
        "",
        "| generation | best | mean | best offspring | rebuilt | evaluations | diversity (edit distance, kinds per "
        "position) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for h in state["history"]:
        offspring = "" if h["offspring_best"] is None else f"{h['offspring_best']:.4f}"
        diversity = ("" if h.get("diversity_edit_distance") is None
                     else f"{h['diversity_edit_distance']:.1f}, {h['diversity_kinds_per_position']:.2f}")
        lines.append(f"| {h['generation']} | {h['best']:.4f} | {h['mean']:.4f} | {offspring} | {h['reconstructed']} "
                     f"| {h['evaluations']} | {diversity} |")
    lines += ["", "![progress](progress.png)", "", "## Accuracy against cost", "",
              "The Pareto front: no other trained candidate is as accurate at lower cost. "
              "`gptnas export --pick smallest-within:0.01` (or `max-params:N`, `max-macs:N`) exports another point "
              "than the most accurate.", ""]
    for cost in COSTS:
        if any(r.get(cost) is not None for r in trained(records)):
            lines += front_table(records, cost) + [""]
    lines += ["![pareto](pareto.png)", "", "## Best genome", "", "```json",
              json.dumps(space.dump(best.genome), indent=1), "```"]
    if failures:
        lines += ["", "## Failed candidates", ""]
        lines += [f"- `{r['hash'][:10]}`: {r['status']}: {r['reason']}" for r in failures]
    final = _final_section(run.report_path)
    run.report_path.write_text("\n".join(lines) + "\n" + final)


def _budget_line(config, repaired: list[dict]) -> str:
    limits = [f"{name} {value:,}" for name, value in (("max_params", config.max_params), ("max_macs", config.max_macs),
                                                      ("max_activations", config.max_activations),
                                                      ("max_latency_ms", config.max_latency_ms)) if value is not None]
    gpt = sum(bool(r.get("gpt_over_budget")) for r in repaired)
    return (f"- budget: {', '.join(limits) or 'none'}; {len(repaired)} candidate{'s' if len(repaired) != 1 else ''} "
            f"repaired or redrawn to fit" + (f" ({gpt} GPT reconstructions over budget dropped)" if gpt else ""))


def _final_section(report: Path) -> str:
    text = report.read_text() if report.is_file() else ""
    return text[text.index(FINAL_TRAINING):] if FINAL_TRAINING in text else ""


def write_final_training(run_dir: Path, summary: dict) -> None:
    """Put (or replace) the "Final training" section of ``report.md``: what ``retrain.json`` says."""
    report = RunDirectory(run_dir).report_path
    text = report.read_text() if report.is_file() else ""
    if FINAL_TRAINING in text:
        text = text[:text.index(FINAL_TRAINING)]
    data, settings = summary["data"], summary["settings"]
    subset = ", ".join(f"{k} {v}" for k, v in sorted(data["settings"].items()) if k != "cache_dir" and v is not None)
    lines = [
        FINAL_TRAINING, "",
        f"- test top-1 **{summary['test_top1']:.4f}**, top-5 {summary['test_top5']:.4f} "
        f"({summary['parameters']:,} parameters)",
        f"- data: {data['source']}, {data['train_images']} training images "
        f"({'training + validation split' if summary['use_val'] else 'training split only'}), "
        f"{data['test_images']} test images, {data['channels']}x{data['image_size']}x{data['image_size']}"
        + (f"; data settings: {subset}" if subset else "; the whole dataset"),
        f"- training: {summary['epochs']} epochs, batch {settings['batch_size']}, lr {settings['lr']} "
        f"(x{settings['gamma']} every {settings['lr_step']} epochs), settings from {summary['settings_from']}",
    ]
    report.write_text(text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")
