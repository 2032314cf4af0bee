"""Pre-training and fine-tuning the architecture GPT with ``Trainer`` (paper section 3.3).

Both phases are supervised next-layer prediction: every network becomes
``<s> type_1 ... type_T </s>``, cut into windows of ``k + 1`` tokens with stride 1; the GPT
predicts each token from the ones before it in the window (the last position is Eq. 2's term
with exactly k layers of context, the earlier ones teach it to start a network). The FCN
learns the block class of the last layer of each window from the whole window.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import datasets
import torch
from transformers import PreTrainedTokenizerFast, Trainer

from .configuration_gptnas import GPTNASConfig
from .modeling_gptnas import GPTNASForArchitectureModeling

IGNORE = -100


# -- windows --------------------------------------------------------------------------------
def network_windows(ids: Sequence[int], blocks: Sequence[int], window_size: int, pad_id: int,
                    locations: Sequence[int] | None = None):
    """Windows of ``window_size + 1`` tokens (stride 1) over one tokenized network: tuples of
    ``(ids, attention mask, labels, block label, location ids)``.

    ``ids``, ``blocks`` (and ``locations``, default all 0) include the ``<s>``/``</s>``
    positions (block -100 and location 0 there). A network shorter than a window gives one
    right-padded window."""
    k1 = window_size + 1
    locations = list(locations) if locations is not None else [0] * len(ids)
    if len(ids) <= k1:
        pad = k1 - len(ids)
        yield (list(ids) + [pad_id] * pad, [1] * len(ids) + [0] * pad,
               list(ids) + [IGNORE] * pad, blocks[len(ids) - 1], locations + [0] * pad)
        return
    for start in range(len(ids) - k1 + 1):
        window = list(ids[start:start + k1])
        yield window, [1] * k1, window, blocks[start + k1 - 1], locations[start:start + k1]


def windows_dataset(corpus: datasets.Dataset, tokenizer: PreTrainedTokenizerFast, window_size: int,
                    block_labels: Sequence[str], location_buckets: int = 0) -> datasets.Dataset:
    """The training examples of a corpus (columns ``types``, ``blocks`` and ``block_index``):
    ``input_ids`` (types outside the vocabulary read through the backoff, as the pipeline reads
    them), ``attention_mask``, ``labels`` (next-layer targets), ``block_labels`` and, with
    ``location_buckets``, ``location_ids`` (relative depth of each layer's block)."""
    from .configuration_gptnas import location_id
    from .tokenization_gptnas import encode_types

    label_id = {label: i for i, label in enumerate(block_labels)}

    def explode(batch):
        out = {"input_ids": [], "attention_mask": [], "labels": [], "block_labels": []}
        if location_buckets:
            out["location_ids"] = []
        for types, blocks, index in zip(batch["types"], batch["blocks"], batch["block_index"]):
            ids = [tokenizer.bos_token_id] + encode_types(tokenizer, list(types)) + [tokenizer.eos_token_id]
            block_ids = [IGNORE] + [label_id.get(b, IGNORE) for b in blocks] + [IGNORE]
            num_blocks = max(index, default=0) + 1
            locations = [0] + [location_id(i, num_blocks, location_buckets) for i in index] + [0]
            for window, mask, labels, block, where in network_windows(ids, block_ids, window_size,
                                                                      tokenizer.pad_token_id, locations):
                out["input_ids"].append(window)
                out["attention_mask"].append(mask)
                out["labels"].append(labels)
                out["block_labels"].append(block)
                if location_buckets:
                    out["location_ids"].append(where)
        return out

    return corpus.map(explode, batched=True, remove_columns=corpus.column_names, desc="cutting windows")


# -- metrics --------------------------------------------------------------------------------
@dataclass
class HeldOutMetrics:
    next_layer_top1: float
    next_layer_top5: float
    block_accuracy: float
    bigram_top1: float
    bigram_top5: float
    bigram_block_accuracy: float
    windows: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _bigram_tables(corpus: datasets.Dataset):
    successors: dict[str, Counter] = defaultdict(Counter)
    block_of_type: dict[str, Counter] = defaultdict(Counter)
    for types, blocks in zip(corpus["types"], corpus["blocks"]):
        seq = ["<s>"] + list(types)
        for prev, nxt in zip(seq, seq[1:]):
            successors[prev][nxt] += 1
        for t, b in zip(types, blocks):
            block_of_type[t][b] += 1
    return successors, block_of_type


@torch.no_grad()
def evaluate_held_out(model: GPTNASForArchitectureModeling, tokenizer: PreTrainedTokenizerFast,
                      train_corpus: datasets.Dataset, held_out: datasets.Dataset, batch_size: int = 256) -> HeldOutMetrics:
    """Next-layer top-1/top-5 and block accuracy of ``model`` on the last position of every
    window of ``held_out``, beside a bigram baseline fitted on ``train_corpus`` (the most
    frequent next type after the previous type; the most frequent block of a type)."""
    model.eval()
    k = model.config.window_size
    labels = model.config.block_labels
    successors, block_of_type = _bigram_tables(train_corpus)
    overall = Counter(t for types in train_corpus["types"] for t in types)
    fallback = [t for t, _ in overall.most_common(5)]
    windows = windows_dataset(held_out, tokenizer, k, labels, model.config.location_buckets)
    hits1 = hits5 = block_hits = block_total = 0
    bigram1 = bigram5 = bigram_block = 0
    total = 0
    for start in range(0, len(windows), batch_size):
        batch = windows[start:start + batch_size]
        ids = torch.tensor(batch["input_ids"])
        mask = torch.tensor(batch["attention_mask"])
        locations = torch.tensor(batch["location_ids"]) if "location_ids" in batch else None
        out = model(input_ids=ids, attention_mask=mask, return_block_logits=True, location_ids=locations)
        last = mask.sum(1) - 1
        rows = torch.arange(len(ids))
        target = ids[rows, last]
        logits = out.logits[rows, last - 1]
        top5 = logits.topk(5, dim=-1).indices
        hits1 += (top5[:, 0] == target).sum().item()
        hits5 += (top5 == target[:, None]).any(-1).sum().item()
        total += len(ids)
        blocks = torch.tensor(batch["block_labels"])
        keep = blocks != IGNORE
        block_hits += (out.block_logits.argmax(-1)[keep] == blocks[keep]).sum().item()
        block_total += keep.sum().item()
        for row in range(len(ids)):
            prev = tokenizer.convert_ids_to_tokens(int(ids[row, last[row] - 1]))
            true = tokenizer.convert_ids_to_tokens(int(target[row]))
            guesses = [t for t, _ in successors.get(prev, Counter()).most_common(5)] or fallback
            bigram1 += guesses[0] == true
            bigram5 += true in guesses
            if keep[row]:
                common = block_of_type.get(true)
                guess = common.most_common(1)[0][0] if common else None
                bigram_block += guess == labels[int(blocks[row])]
    return HeldOutMetrics(
        next_layer_top1=hits1 / max(total, 1), next_layer_top5=hits5 / max(total, 1),
        block_accuracy=block_hits / max(block_total, 1), bigram_top1=bigram1 / max(total, 1),
        bigram_top5=bigram5 / max(total, 1), bigram_block_accuracy=bigram_block / max(block_total, 1),
        windows=total,
    )


# -- recipes ------------------------------------------------------------------------------
def load_recipe(path: str | Path) -> dict:
    """A GPT training recipe, checked before anything loads (``recipe_config.check_gpt_recipe``):
    invalid YAML, an unknown or ill-typed key (``eval_fracton``, ``model.n_layers``,
    ``training.learnig_rate``) is a ValueError naming the file and the setting."""
    from .recipe_config import check_gpt_recipe, read_recipe

    return check_gpt_recipe(read_recipe(path), f"recipe {str(path)!r}")


def load_corpus(spec: dict | list) -> datasets.Dataset:
    """A corpus from a recipe's ``corpus`` entry: one mapping, or a list of them whose corpora
    are concatenated. ``source`` is ``nasbench101`` (``num_cells``, ``seed``, or ``tfrecord``
    with ``limit``; network options such as ``stem_channels``) or ``zoo`` (``families`` /
    ``exclude_families``, ``networks`` / ``exclude_networks``, ``input_sizes``,
    ``width_multipliers``)."""
    if isinstance(spec, list):
        if not spec:
            raise ValueError("corpus: an empty list names no corpus")
        parts = [load_corpus(part) for part in spec]
        common = [c for c in parts[0].column_names if all(c in p.column_names for p in parts)]
        return datasets.concatenate_datasets([p.select_columns(common) for p in parts])
    spec = dict(spec)
    source = spec.pop("source", None)
    if source == "nasbench101":
        from .corpora.nasbench101 import nasbench101_corpus

        return nasbench101_corpus(**spec)
    if source == "zoo":
        from .corpora.zoo import ZOO_FAMILIES, ZOO_NETWORKS, zoo_corpus

        families = spec.pop("families", None) or list(ZOO_FAMILIES)
        excluded = set(spec.pop("exclude_families", None) or ())
        unknown = (set(families) | excluded) - set(ZOO_FAMILIES)
        if unknown:
            raise ValueError(f"unknown zoo families {sorted(unknown)}; the zoo has {sorted(ZOO_FAMILIES)}")
        only = spec.pop("networks", None)
        excluded_networks = set(spec.pop("exclude_networks", None) or ())
        unknown = (set(only or ()) | excluded_networks) - set(ZOO_NETWORKS)
        if unknown:
            raise ValueError(f"unknown zoo networks {sorted(unknown)}; the zoo has {', '.join(ZOO_NETWORKS)}")
        variants = {key: tuple(spec.pop(key)) for key in ("input_sizes", "width_multipliers") if key in spec}
        if spec:
            raise ValueError(f"unknown zoo corpus options {sorted(spec)}")
        names = {n for f in families if f not in excluded for n in ZOO_FAMILIES[f]}
        if only is not None:
            names &= set(only)
        return zoo_corpus([n for n in ZOO_NETWORKS if n in names and n not in excluded_networks], **variants)
    if source == "torchvision":
        from .corpora.zoo import torchvision_corpus

        return torchvision_corpus(**spec)
    raise ValueError(f"corpus source must be 'nasbench101', 'zoo' or 'torchvision', got {source!r}")


#: the recipes whose corpora make the shipped vocabulary (``gptnas tokenizer`` by default)
VOCABULARY_RECIPES = ("recipes/pretrain-cpu.yaml", "recipes/finetune-cpu.yaml")


def search_space_types() -> set[str]:
    """Every layer type a genome of the search space produces: each kind with each value its
    parameters are sampled from, at stride 1 and 2, 8 and 64 channels wide, fed 2^-6 .. 2^6
    times its width; plus the classifier head at every width ratio."""
    import itertools

    from .encoding import trace_factory, width_ratio
    from .search_space import KIND_PARAMS, build_block, make_block

    blocks = []
    for kind, specs in KIND_PARAMS.items():
        names = sorted(specs)
        for values in itertools.product(*(dict.fromkeys(specs[n].sample) for n in names)):
            for width, stride in itertools.product((8, 64), (1, 2)):
                block = make_block(kind, width, stride, None, **dict(zip(names, values)))
                if block not in blocks:
                    blocks.append(block)
    types = {"pool_avg_global"} | {f"fc_{width_ratio(1, 2 ** e)}" for e in range(0, 7)}
    types |= {f"fc_{width_ratio(2 ** e, 1)}" for e in range(1, 7)}
    for block in blocks:
        for exponent in range(-6, 7):
            channels = max(1, round(block["width"] * 2.0 ** exponent))
            types |= {layer.type for layer in trace_factory(lambda: build_block(block, channels), (channels, 8, 8))}
    return types


def tokenizer_from_recipes(recipes=VOCABULARY_RECIPES) -> PreTrainedTokenizerFast:
    """The tokenizer over every layer type of the recipes' training corpora (the vocabulary
    rule of :mod:`gptnas_hf.tokenization_gptnas`: what the GPT is trained on, nothing else),
    with every other type of the search space (:func:`search_space_types`) as an alias of its
    nearest trained type, so the tokenizer alone reads any genome without ``<unk>``."""
    corpora = [load_corpus(load_recipe(r)["corpus"] if not isinstance(r, dict) else r["corpus"]) for r in recipes]
    return tokenizer_from_corpora(*corpora)


def tokenizer_from_corpora(*corpora) -> PreTrainedTokenizerFast:
    """The vocabulary of ``corpora`` (``datasets.Dataset`` with a ``types`` column) with the
    search space's other types as aliases (:func:`tokenizer_from_recipes`)."""
    from .encoding import nearest_type
    from .tokenization_gptnas import build_tokenizer

    known = sorted({t for corpus in corpora for row in corpus["types"] for t in row})
    aliases = {t: nearest_type(t, known) for t in search_space_types() if t not in known}
    return build_tokenizer(known, aliases={t: target for t, target in aliases.items() if target is not None})


def load_tokenizer(path: str | Path | None) -> PreTrainedTokenizerFast:
    from transformers import AutoTokenizer

    from .default_model import DEFAULT_MODEL

    candidates = [Path(path)] if path else [Path("tokenizer"), Path(DEFAULT_MODEL)]
    for candidate in candidates:
        if (candidate / "tokenizer.json").is_file():
            return AutoTokenizer.from_pretrained(str(candidate))
    raise FileNotFoundError(f"no tokenizer.json in {', '.join(map(str, candidates))}; build one with 'gptnas tokenizer'")


def plot_loss_curves(log_history: list[dict], path: str | Path, title: str) -> None:
    """Training and evaluation loss against steps (the paper's Fig. 5)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e]
    fig, ax = plt.subplots(figsize=(6, 4))
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), marker="o", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (next layer + block)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@dataclass
class TrainOutcome:
    output_dir: Path
    train_loss: float
    eval_loss: float | None
    log_history: list[dict] = field(default_factory=list)


def train_from_recipe(recipe: dict | str | Path, *, output_dir: str | None = None, resume: bool = False,
                      overrides: dict | None = None) -> TrainOutcome:
    """Run one training phase as a recipe describes it (see ``recipes/*.yaml``)."""
    from .recipe_config import check_gpt_recipe, check_training_arguments

    if not isinstance(recipe, dict):
        recipe = load_recipe(recipe)
    recipe = json.loads(json.dumps(recipe))  # a private copy
    for key, value in (overrides or {}).items():
        recipe.setdefault("training", {})[key] = value
    check_gpt_recipe(recipe)
    tokenizer = load_tokenizer(recipe.get("tokenizer"))
    corpus = load_corpus(recipe["corpus"])
    if recipe.get("init_from"):
        model = GPTNASForArchitectureModeling.from_pretrained(recipe["init_from"])
        if model.config.vocab_size != len(tokenizer):
            raise ValueError(f"checkpoint {recipe['init_from']!r} has {model.config.vocab_size} tokens, the tokenizer {len(tokenizer)}")
    else:
        config = GPTNASConfig(
            vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, unk_token_id=tokenizer.unk_token_id,
            mask_token_id=tokenizer.mask_token_id, **recipe.get("model", {}),
        )
        model = GPTNASForArchitectureModeling(config)
    windows = windows_dataset(corpus, tokenizer, model.config.window_size, model.config.block_labels,
                              model.config.location_buckets)
    eval_fraction = float(recipe.get("eval_fraction", 0.05))
    train_set, eval_set = windows, None
    if eval_fraction > 0 and len(windows) > 20:
        split = windows.train_test_split(test_size=eval_fraction, seed=int(recipe.get("seed", 0)))
        train_set, eval_set = split["train"], split["test"]
    args = dict(recipe.get("training", {}))
    if output_dir:
        args["output_dir"] = output_dir
    args.setdefault("output_dir", "runs/gpt")
    args.setdefault("report_to", "none")
    args.setdefault("seed", int(recipe.get("seed", 0)))
    args.setdefault("use_cpu", not torch.cuda.is_available())
    if eval_set is not None:
        args.setdefault("eval_strategy", "epoch")
    training_args = check_training_arguments(args)  # TrainingArguments(**args), errors naming the setting
    trainer = Trainer(model=model, args=training_args, train_dataset=train_set, eval_dataset=eval_set,
                      processing_class=tokenizer)
    last = None
    if resume:
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(training_args.output_dir)
    result = trainer.train(resume_from_checkpoint=last)
    out = Path(training_args.output_dir)
    trainer.save_model(str(out))
    eval_loss = trainer.evaluate()["eval_loss"] if eval_set is not None else None
    plot_loss_curves(trainer.state.log_history, out / "loss_curve.png", recipe.get("name", out.name))
    (out / "train_metrics.json").write_text(json.dumps(
        {"train_loss": result.training_loss, "eval_loss": eval_loss, "windows": len(windows),
         "networks": corpus.num_rows, "recipe": recipe}, indent=1))
    return TrainOutcome(out, result.training_loss, eval_loss, trainer.state.log_history)


def package_checkpoint(model_dir: str | Path, out_dir: str | Path, model_card: str | Path | None = None, *,
                       overwrite: bool = False) -> list[str]:
    """Write what an architecture GPT checkpoint needs to be used, and nothing else (no
    optimizer state, no pickled training arguments): the ``nas-reconstruction`` pipeline loaded
    from ``model_dir`` and saved with ``Pipeline.save_pretrained``, which writes the config
    (with ``auto_map`` and ``custom_pipelines``), ``model.safetensors``, the generation config,
    the tokenizer files and, through transformers' ``custom_object_save``, the package's code for
    the model and the pipeline. So the folder serves
    ``pipeline("nas-reconstruction", model=DIR, trust_remote_code=True)`` without this package.
    ``model_card`` is copied as ``README.md``. Returns the file names written (sorted).

    All or nothing: everything is checked first and written into a temporary directory beside
    ``out_dir`` that is renamed into place at the end, so a failure leaves ``out_dir`` as it
    was. A non-empty ``out_dir`` is refused unless ``overwrite`` (then it is replaced whole)."""
    import shutil
    import tempfile

    from transformers import pipeline

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if not (model_dir / "model.safetensors").is_file() or not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{str(model_dir)!r} holds no checkpoint (config.json and model.safetensors)")
    if not (model_dir / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{str(model_dir)!r} has no tokenizer (tokenizer.json): the pipeline needs it beside the "
                                "weights; `gptnas train` saves it there, or copy the files of the tokenizer it was "
                                "trained with (e.g. tokenizer/) into the directory")
    if model_card and not Path(model_card).is_file():
        raise FileNotFoundError(f"model card {str(model_card)!r} does not exist (pass --model-card FILE)")
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{str(out_dir)!r} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"output directory {str(out_dir)!r} is not empty; choose a new one, or pass "
                              "--overwrite (overwrite=True) to replace it")
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{model_dir / 'config.json'} is corrupt: {err}") from None
    if config.get("model_type") != GPTNASConfig.model_type:
        raise ValueError(f"{str(model_dir)!r} is not an architecture GPT checkpoint (model_type "
                         f"{config.get('model_type')!r}, expected {GPTNASConfig.model_type!r})")
    reconstruct = pipeline("nas-reconstruction", model=str(model_dir), device="cpu")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        reconstruct.save_pretrained(staging)
        if model_card:
            shutil.copy2(model_card, staging / "README.md")
        written = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        staging.chmod(0o755)
        if out_dir.is_dir() and any(out_dir.iterdir()):  # overwrite: swap, then drop the old one
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            old.rmdir()
            out_dir.rename(old)
            staging.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            if out_dir.is_dir():
                out_dir.rmdir()
            staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written
