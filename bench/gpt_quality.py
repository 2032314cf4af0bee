"""Quality of the architecture GPT on networks it never saw: next-layer top-1 / top-5 and block
accuracy against a bigram baseline (``gptnas_hf.training.evaluate_held_out``), on these
held-out splits:

* ``outside_table2``: the torchvision classification families outside the paper's Table 2
  (``gptnas_hf.corpora.zoo.HELD_OUT_NETWORKS``: MobileNet v2/v3, MNASNet, DenseNet,
  SqueezeNet, VGG, AlexNet, ConvNeXt, EfficientNetV2, Inception v3), read by the GPT the
  shipped default is trained by (``recipes/finetune-cpu.yaml``), which never sees them: the
  test of whether its knowledge generalises beyond its families;
* ``outside_table2_no_location``: the same, for the ablation without the location input
  (``recipes/finetune-cpu-nolocation.yaml``);
* ``variants`` (``recipes/finetune-cpu-holdout-variants.yaml``): one variant of each
  multi-variant zoo family held out; their block classes were seen in fine-tuning;
* ``families`` (``recipes/finetune-cpu-holdout.yaml``): whole families (ShuffleNet, GoogLeNet)
  held out, so their block classes (InvertedResidual, Inception) were never seen: block
  accuracy there is expected to be near 0 for any model trained on the rest.

Each split uses the checkpoint its recipe writes (``runs/gpt/finetune-cpu-holdout*``); when it
is missing the benchmark trains it with ``gptnas_hf.training.train_from_recipe``, after
``recipes/pretrain-cpu.yaml`` when the pre-trained checkpoint is missing too. The bigram baseline is fitted on the recipe's own fine-tuning corpus. Budgets do not
change the measurement (it is deterministic); the smoke budget stands the shipped checkpoint
in for both (it saw every network: plumbing only)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import torch

from .common import ROOT, Clock, parse, parser, progress, pyplot, save_figure, write_result

NAME = "gpt_quality"
#: split -> (recipe of the checkpoint, held-out corpus; None: what the recipe's corpus excludes)
SPLITS = {"outside_table2": (ROOT / "recipes" / "finetune-cpu.yaml", {"source": "torchvision"}),
          "outside_table2_no_location": (ROOT / "recipes" / "finetune-cpu-nolocation.yaml", {"source": "torchvision"}),
          "variants": (ROOT / "recipes" / "finetune-cpu-holdout-variants.yaml", None),
          "families": (ROOT / "recipes" / "finetune-cpu-holdout.yaml", None)}
PRETRAINS = (ROOT / "recipes" / "pretrain-cpu.yaml", ROOT / "recipes" / "pretrain-cpu-nolocation.yaml")
METRICS = (("next_layer_top1", "bigram_top1", "next layer top-1"), ("next_layer_top5", "bigram_top5", "next layer top-5"),
           ("block_accuracy", "bigram_block_accuracy", "block"))


def _absolute(recipe: dict) -> dict:
    """Paths in a recipe are relative to the repository root: make them absolute."""
    recipe = json.loads(json.dumps(recipe))
    for key in ("tokenizer", "init_from"):
        if recipe.get(key) and not Path(recipe[key]).is_absolute():
            recipe[key] = str(ROOT / recipe[key])
    out = recipe.get("training", {}).get("output_dir")
    if out and not Path(out).is_absolute():
        recipe["training"]["output_dir"] = str(ROOT / out)
    return recipe


def _has_checkpoint(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def ensure_checkpoint(recipe_path: Path) -> tuple[Path, bool]:
    """The recipe's fine-tuned checkpoint, trained (with its pre-training) when missing."""
    from gptnas_hf.training import load_recipe, train_from_recipe

    recipe = _absolute(load_recipe(recipe_path))
    out = Path(recipe["training"]["output_dir"])
    if _has_checkpoint(out):
        return out, False
    init = recipe.get("init_from")
    if init and not _has_checkpoint(Path(init)):
        pretrains = [_absolute(load_recipe(path)) for path in PRETRAINS]
        pretrain = next((r for r in pretrains if Path(r["training"]["output_dir"]) == Path(init)), None)
        if pretrain is None:
            raise FileNotFoundError(f"{recipe_path.name} starts from {init}, which no recipe of {[p.name for p in PRETRAINS]} writes")
        progress(f"training {pretrain['name']} (its checkpoint {init} is missing)")
        train_from_recipe(pretrain)
    progress(f"training {recipe_path.name} (its checkpoint {out} is missing)")
    train_from_recipe(recipe)
    return out, True


def held_out_split(corpus_spec: dict, held_out: dict | None = None) -> tuple[dict, dict, dict]:
    """(train corpus spec, held-out corpus spec, description) from a recipe's zoo corpus and,
    when given, an explicit held-out corpus."""
    if held_out is not None:
        from gptnas_hf.corpora.zoo import HELD_OUT_NETWORKS

        return corpus_spec, held_out, {"held_out_networks": list(held_out.get("networks", HELD_OUT_NETWORKS))}
    spec = dict(corpus_spec)
    if spec.get("source") != "zoo":
        raise ValueError(f"expected a zoo fine-tuning corpus, got {spec}")
    if spec.get("exclude_networks"):
        return spec, {"source": "zoo", "networks": list(spec["exclude_networks"])}, {"held_out_networks": spec["exclude_networks"]}
    if spec.get("exclude_families"):
        return spec, {"source": "zoo", "families": list(spec["exclude_families"])}, {"held_out_families": spec["exclude_families"]}
    raise ValueError(f"the corpus {spec} holds nothing out")


def main(argv=None) -> dict:
    args = parse(parser(__doc__, "ignored (the measurement is deterministic)"), argv)
    import gptnas_hf
    from gptnas_hf.modeling_gptnas import GPTNASForArchitectureModeling
    from gptnas_hf.training import evaluate_held_out, load_corpus, load_recipe, load_tokenizer

    clock = Clock()
    rows = {}
    for split, (recipe_path, held) in SPLITS.items():
        recipe = load_recipe(recipe_path)
        train_spec, held_spec, description = held_out_split(recipe["corpus"], held)
        if args.budget == "smoke" and held is not None:  # plumbing only: a few networks
            train_spec, held_spec = {"source": "zoo", "networks": ["resnet18"]}, {**held, "networks": ["mobilenet_v3_small"]}
        if args.budget == "smoke":
            model_dir, trained, note = Path(gptnas_hf.DEFAULT_MODEL), False, "shipped checkpoint (saw every network)"
        else:
            model_dir, trained = ensure_checkpoint(recipe_path)
            note = "trained by this run" if trained else "existing checkpoint"
            meta = model_dir / "train_metrics.json"
            if meta.is_file():
                used = json.loads(meta.read_text()).get("recipe", {}).get("corpus")
                if used is not None and used != recipe["corpus"]:
                    raise ValueError(f"{model_dir} was fine-tuned on {used}, not on {recipe_path.name}'s corpus "
                                     f"{recipe['corpus']}: its held-out figures would leak; delete it to retrain")
        model = GPTNASForArchitectureModeling.from_pretrained(str(model_dir))
        tokenizer = load_tokenizer(str(model_dir))
        train, held_out = load_corpus(train_spec), load_corpus(held_spec)
        metrics = evaluate_held_out(model, tokenizer, train, held_out).as_dict()
        rows[split] = {**metrics, **description, "model": str(model_dir), "checkpoint": note,
                       "recipe": str(recipe_path.relative_to(ROOT)), "train_networks": train.num_rows,
                       "held_out_networks_count": held_out.num_rows}
        progress(f"{split}: top-1 {metrics['next_layer_top1']:.3f} (bigram {metrics['bigram_top1']:.3f}), "
                 f"block {metrics['block_accuracy']:.3f} (bigram {metrics['bigram_block_accuracy']:.3f})")
    settings = {"budget": args.budget, "splits": {k: str(v.relative_to(ROOT)) for k, (v, _) in SPLITS.items()},
                "baseline": "bigram fitted on the fine-tuning corpus", "threads": torch.get_num_threads(), **clock.info()}

    plt = pyplot()
    fig, axes = plt.subplots(1, len(rows), figsize=(5.0 * len(rows), 4.2))
    for ax, (split, m) in zip(axes, rows.items()):
        xs = range(len(METRICS))
        gpt = [m[k] for k, _, _ in METRICS]
        bigram = [m[b] for _, b, _ in METRICS]
        ax.bar([x - 0.2 for x in xs], gpt, 0.4, label="GPT", color="tab:orange")
        ax.bar([x + 0.2 for x in xs], bigram, 0.4, label="bigram", color="tab:grey")
        for x, g, b in zip(xs, gpt, bigram):
            ax.annotate(f"{g:.2f}", (x - 0.2, g), textcoords="offset points", xytext=(0, 2), ha="center", fontsize=8)
            ax.annotate(f"{b:.2f}", (x + 0.2, b), textcoords="offset points", xytext=(0, 2), ha="center", fontsize=8)
        ax.set_xticks(list(xs), [label for _, _, label in METRICS])
        ax.set_ylim(0, 1.1)
        held = m.get("held_out_networks") or m.get("held_out_families")
        names = textwrap.fill(", ".join(held), 60)
        ax.set_title(f"held out: {split} ({m['windows']} windows)\n{names}", fontsize=8)
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    save_figure(fig, NAME)

    ratio = {split: m["next_layer_top1"] / max(m["bigram_top1"], 1e-9) for split, m in rows.items()}
    for split in rows:
        rows[split]["top1_over_bigram"] = ratio[split]
    headline = "; ".join(
        f"{split}: next-layer top-1 {m['next_layer_top1']:.3f} vs bigram {m['bigram_top1']:.3f}, top-5 "
        f"{m['next_layer_top5']:.3f} vs {m['bigram_top5']:.3f}, block {m['block_accuracy']:.3f} vs "
        f"{m['bigram_block_accuracy']:.3f}" for split, m in rows.items())
    if args.budget == "smoke":
        headline = "smoke (shipped checkpoint, not held out): " + headline
    write_result(NAME, settings, rows, headline)
    return rows


if __name__ == "__main__":
    main()
