"""The ``gptnas`` command.

A user's mistake (a bad recipe, a missing or corrupt file, bad data, an unreachable Hub, a
directory that is in the way) prints one line, ``gptnas COMMAND: error: ...``, on stderr and
exits with status 2; a Hub token never appears in it. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .mask_schedule import DEFAULT_INITIAL_MASK_RATE


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C,H,W such as 3,32,32, got {text!r}") from None
    if len(shape) != 3:
        raise argparse.ArgumentTypeError(f"expected C,H,W such as 3,32,32, got {text!r}")
    return shape


def cmd_encode(args) -> int:
    from .encoding import trace

    if args.torchvision:
        from .corpora.zoo import ZOO_INPUT_SHAPE, trace_torchvision

        layers = trace_torchvision(args.torchvision, args.input_shape or ZOO_INPUT_SHAPE)
    else:
        space = _space(args.space)
        genome = _read_arch(space, args.genome)
        shape = args.input_shape or (3, 32, 32)
        layers = trace(space.build_network(genome, in_channels=shape[0], num_classes=args.num_classes), shape)
    for layer in layers:
        if args.types:
            print(layer.type)
        elif args.blocks:
            print(f"{layer.block}\t{layer.text}")
        else:
            print(layer.text)
    return 0


def _space(name: str):
    """The search space named on the command line (blocks: the default limits)."""
    from .search_space_protocol import create_space

    return create_space(name)


def _read_arch(space, text: str):
    """An architecture from a file (JSON, or the space's own text) or from the argument itself
    (a NAS-Bench-201 string, say); the space's error names what is wrong."""
    path = Path(text)
    if len(text) < 4096 and path.is_file():
        text = path.read_text().strip()
    elif space.name == "blocks":
        raise FileNotFoundError(f"genome file {text!r} does not exist")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    return space.load(value)


def cmd_sample_genome(args) -> int:
    if args.space == "blocks":
        from .search_space import sample_genome

        genome = sample_genome(args.seed, min_blocks=args.min_blocks, max_blocks=args.max_blocks)
        print(json.dumps(genome.to_list(), indent=None if args.compact else 1))
        return 0
    import random

    space = _space(args.space)
    value = space.dump(space.sample(random.Random(args.seed)))
    print(value if isinstance(value, str) else json.dumps(value, indent=None if args.compact else 1))
    return 0


def cmd_corpus(args) -> int:
    from .corpora.nasbench101 import nasbench101_corpus
    from .corpora.zoo import zoo_corpus

    out = Path(args.out)
    zoo = zoo_corpus()
    zoo.save_to_disk(str(out / "zoo"))
    print(f"zoo: {zoo.num_rows} networks -> {out / 'zoo'}")
    nb = nasbench101_corpus(tfrecord=args.nasbench_tfrecord, num_cells=args.nasbench_cells, seed=args.seed,
                            limit=args.nasbench_limit)
    nb.save_to_disk(str(out / "nasbench101"))
    print(f"nasbench101: {nb.num_rows} networks -> {out / 'nasbench101'}")
    return 0


def cmd_tokenizer(args) -> int:
    import datasets

    from .training import VOCABULARY_RECIPES, tokenizer_from_corpora, tokenizer_from_recipes

    if args.corpus:
        corpora = [datasets.load_from_disk(str(Path(args.corpus) / name)) for name in ("zoo", "nasbench101")]
        tokenizer = tokenizer_from_corpora(*corpora)
    else:
        tokenizer = tokenizer_from_recipes(args.recipe or VOCABULARY_RECIPES)
    tokenizer.save_pretrained(args.out)
    print(f"{len(tokenizer)} tokens ({len(tokenizer) - len(tokenizer.all_special_tokens)} layer types) -> {args.out}")
    return 0


def cmd_train(args) -> int:
    from .training import train_from_recipe

    outcome = train_from_recipe(args.recipe, output_dir=args.output_dir, resume=args.resume)
    print(json.dumps({"output_dir": str(outcome.output_dir), "train_loss": outcome.train_loss,
                      "eval_loss": outcome.eval_loss}, indent=1))
    return 0


def cmd_evaluate_gpt(args) -> int:
    from .modeling_gptnas import GPTNASForArchitectureModeling
    from .training import evaluate_held_out, load_corpus, load_tokenizer

    model = GPTNASForArchitectureModeling.from_pretrained(args.model)
    tokenizer = load_tokenizer(args.model)
    if args.held_out_networks:
        networks = [n for n in args.held_out_networks.split(",") if n]
        train = load_corpus({"source": "zoo", "exclude_networks": networks})
        held_out = load_corpus({"source": "zoo", "networks": networks})
        split = {"held_out_networks": networks}
    else:
        families = [f for f in args.held_out_families.split(",") if f]
        train = load_corpus({"source": "zoo", "exclude_families": families})
        held_out = load_corpus({"source": "zoo", "families": families})
        split = {"held_out_families": families}
    metrics = evaluate_held_out(model, tokenizer, train, held_out).as_dict()
    metrics.update(split, model=str(args.model))
    print(json.dumps(metrics, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(metrics, indent=1))
    return 0


def cmd_package_model(args) -> int:
    from .training import package_checkpoint

    print("\n".join(package_checkpoint(args.model, args.out, args.model_card, overwrite=args.overwrite)))
    return 0


def cmd_reconstruct(args) -> int:
    from transformers import pipeline

    from .default_model import DEFAULT_MODEL

    space = _space(args.space)
    genome = _read_arch(space, args.genome)
    reconstruct = pipeline("nas-reconstruction", model=args.model or DEFAULT_MODEL)
    extra = {} if space.name == "blocks" else {"space": space, "num_classes": args.num_classes}
    result = reconstruct(genome if space.name == "blocks" else space.dump(genome), mask_rate=args.mask_rate,
                         seed=args.seed, image_size=args.image_size, in_channels=args.in_channels, **extra)
    out = result if args.details else result["genome"]
    print(out if isinstance(out, str) else json.dumps(out, indent=None if args.compact else 1))
    return 0


def cmd_search(args) -> int:
    from accelerate import PartialState

    from .search.searcher import NASSearcher, SearchConfig

    overrides = {"output_dir": args.output_dir, "seed": args.seed, "use_gpt": args.use_gpt, "strategy": args.strategy,
                 "model": args.model, "generations": args.generations, "population_size": args.population_size,
                 "dataset": args.dataset, "log_with": args.log_with, "max_params": args.max_params,
                 "max_macs": args.max_macs, "max_latency_ms": args.max_latency_ms,
                 "max_queries": args.max_queries, "proposal_filter": args.proposal_filter}  # all recorded with the run
    if args.table is not None:  # the recipe's fitness section, another table of the same format
        from .recipe_config import read_recipe

        overrides["fitness"] = {**(read_recipe(args.recipe).get("fitness") or {}), "table": args.table}
    config = SearchConfig.from_yaml(args.recipe, **overrides)
    searcher = NASSearcher(config)
    result = searcher.run(resume=args.resume)
    if PartialState().is_main_process:
        print(json.dumps({"best_fitness": result.best_fitness, "evaluations": result.evaluations,
                          "output_dir": str(result.output_dir),
                          "best_genome": searcher.space.dump(result.best_genome)}))
    return 0


def cmd_retrain(args) -> int:
    from .search.retrain import retrain_run

    overrides = {"epochs": args.epochs} if args.epochs else {}
    summary = retrain_run(args.run, dataset=args.dataset, recipe=args.recipe, pick=args.pick, **overrides)
    summary.pop("history")
    print(json.dumps(summary, indent=1))
    return 0


def cmd_export(args) -> int:
    from .hub import export_adapted_gpt, export_run

    if args.gpt:
        print("\n".join(export_adapted_gpt(args.run, args.out)))
        return 0

    files = export_run(args.run, args.out, weights=args.weights, dataset=args.dataset, repo_id=args.repo_id,
                       pick=args.pick)
    print("\n".join(files))
    return 0


def cmd_push(args) -> int:
    from .hub import push_run

    message = {"commit_message": args.commit_message} if args.commit_message else {}
    commit = push_run(args.run, args.repo_id, private=args.private, token=args.token, weights=args.weights,
                      dataset=args.dataset, pick=args.pick, **message)
    print(getattr(commit, "commit_url", None) or commit)
    return 0


def cmd_push_model(args) -> int:
    from .hub import push_architecture_model

    message = {"commit_message": args.commit_message} if args.commit_message else {}
    commit = push_architecture_model(args.model, args.repo_id, private=args.private, token=args.token,
                                     model_card=args.model_card, **message)
    print(getattr(commit, "commit_url", None) or commit)
    return 0


PICK_HELP = ("which network of the run: best (default), smallest-within:D (the fewest parameters within D of the "
             "best accuracy, e.g. 0.01), max-params:N or max-macs:N (the most accurate within N; 20k, 1.5M accepted)")


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gptnas", description="GPT-NAS: neural architecture search with a GPT that rewrites architectures.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("encode", help="print a network's layers as Table-1 text")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--torchvision", metavar="NAME", help="a torchvision classifier, e.g. resnet18 (weights=None)")
    src.add_argument("--genome", metavar="GENOME", help="a genome of the block search space (a JSON file), or with "
                     "--space an architecture of that space (a file, or the text itself: a NAS-Bench-201 string)")
    p.add_argument("--space", default="blocks", help="the search space of --genome: blocks (default), "
                   "nas-bench-201, or one an installed package declares (entry points gptnas_hf.search_spaces)")
    p.add_argument("--input-shape", type=_shape, default=None, help="C,H,W (default 3,224,224 for torchvision, 3,32,32 for a genome)")
    p.add_argument("--num-classes", type=int, default=10, help="classes of a genome's head")
    show = p.add_mutually_exclusive_group()
    show.add_argument("--types", action="store_true", help="print each layer's type (its token) instead")
    show.add_argument("--blocks", action="store_true", help="prefix each line with the layer's block label")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("sample-genome", help="print a random genome as JSON (or a NAS-Bench-201 string)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--space", default="blocks", help="blocks (default), nas-bench-201, or one an installed "
                   "package declares (entry points gptnas_hf.search_spaces)")
    p.add_argument("--min-blocks", type=int, default=10)
    p.add_argument("--max-blocks", type=int, default=20)
    p.add_argument("--compact", action="store_true", help="one line")
    p.set_defaults(func=cmd_sample_genome)

    p = sub.add_parser("corpus", help="write the architecture corpora (zoo, NAS-Bench-101) as datasets")
    p.add_argument("--out", required=True)
    p.add_argument("--nasbench-tfrecord", default=None, help="the official nasbench_only108.tfrecord (filtered at 90%% validation accuracy)")
    p.add_argument("--nasbench-cells", type=int, default=2000, help="cells to sample when no tfrecord is given")
    p.add_argument("--nasbench-limit", type=int, default=None, help="at most this many networks from the tfrecord")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_corpus)

    p = sub.add_parser("tokenizer", help="build the layer-type tokenizer from the training corpora of recipes")
    p.add_argument("--out", default="tokenizer")
    p.add_argument("--recipe", action="append", default=None,
                   help="a GPT training recipe whose corpus the vocabulary covers (repeatable; default: "
                        "recipes/pretrain-cpu.yaml and recipes/finetune-cpu.yaml)")
    p.add_argument("--corpus", default=None, help="instead: a directory written by 'gptnas corpus'")
    p.set_defaults(func=cmd_tokenizer)

    p = sub.add_parser("train", help="pre-train or fine-tune the architecture GPT from a recipe")
    p.add_argument("--recipe", required=True, help="recipes/*.yaml")
    p.add_argument("--output-dir", default=None, help="overrides the recipe's training.output_dir")
    p.add_argument("--resume", action="store_true", help="carry on from the last checkpoint in the output dir")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate-gpt", help="held-out next-layer and block accuracy beside a bigram baseline")
    p.add_argument("--model", required=True, help="a checkpoint fine-tuned without the held-out families")
    p.add_argument("--held-out-families", default="shufflenet,googlenet")
    p.add_argument("--held-out-networks", default=None, help="hold out these networks instead of whole families")
    p.add_argument("--out", default=None, help="also write the metrics to this JSON file")
    p.set_defaults(func=cmd_evaluate_gpt)

    p = sub.add_parser("package-model", help="copy a trained checkpoint's usable files (and its card) to a directory")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--model-card", default="model_card.md")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out directory")
    p.set_defaults(func=cmd_package_model)

    p = sub.add_parser("reconstruct", help="rebuild a genome with the architecture GPT (Algorithm 1); prints JSON")
    p.add_argument("genome", help="a genome JSON file (or, with --space, an architecture of that space or its file)")
    p.add_argument("--space", default="blocks", help="blocks (default), nas-bench-201, or one an installed "
                   "package declares (entry points gptnas_hf.search_spaces)")
    p.add_argument("--num-classes", type=int, default=10, help="classes of the network's head (spaces but blocks)")
    p.add_argument("--mask-rate", type=float, default=DEFAULT_INITIAL_MASK_RATE)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default=None, help="architecture GPT checkpoint (default: the shipped one)")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--details", action="store_true", help="print the whole result, not only the new genome")
    p.add_argument("--compact", action="store_true", help="one line")
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("search", help="run a search from a recipe (resumable)")
    p.add_argument("--recipe", required=True, help="recipes/*.yaml, e.g. recipes/quickstart.yaml")
    p.add_argument("--dataset", default=None, help="overrides the recipe: digits, cifar10, cifar100, imagenet-1k, "
                   "a Hub id, a parquet directory or an image folder")
    p.add_argument("--output-dir", default=None)
    p.add_argument("--resume", action="store_true", help="carry on from the output directory's state")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--strategy", default=None, help="ga, random or rea (regularized evolution)")
    p.add_argument("--table", default=None, metavar="PATH", help="overrides the recipe's fitness table (CSV or "
                   "parquet with the recipe's arch and metric columns), e.g. a CIFAR-100 table of NAS-Bench-201")
    p.add_argument("--max-queries", type=int, default=None, help="stop after this many distinct architectures")
    p.add_argument("--use-gpt", type=_bool, default=None, help="true or false")
    p.add_argument("--proposal-filter", default=None, metavar="RATING",
                   help="propose proposal_pool times the cells a step needs and query the best-rated: none, gpt, "
                        "parameters, gpt+parameters or parameters>gpt (overrides the recipe)")
    p.add_argument("--model", default=None, help="architecture GPT checkpoint (default: the shipped one)")
    p.add_argument("--generations", type=int, default=None)
    p.add_argument("--population-size", type=int, default=None)
    p.add_argument("--max-params", type=int, default=None, help="budget: parameters of a candidate")
    p.add_argument("--max-macs", type=int, default=None, help="budget: multiply-accumulates for one image")
    p.add_argument("--max-latency-ms", type=float, default=None,
                   help="budget: ms of one image's forward pass on the evaluation device")
    p.add_argument("--log-with", default=None, help="experiment trackers through accelerate: tensorboard, wandb, "
                   "mlflow, trackio or all (comma-separated; each is an extra, e.g. pip install 'gptnas-hf[tensorboard]')")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("retrain", help="train a run's best genome on the full training set and test it")
    p.add_argument("--run", required=True, help="a search output directory")
    p.add_argument("--dataset", default=None, help="where the data is, if not where the search found it")
    p.add_argument("--epochs", type=int, default=None, help="overrides the recipe's retrain epochs")
    p.add_argument("--recipe", default=None, help="take the retrain section from this recipe instead of the run's "
                   "(e.g. a corrected one); the search is kept")
    p.add_argument("--pick", default="best", help=PICK_HELP)
    p.set_defaults(func=cmd_retrain)

    token_help = "a Hub token (default: HF_TOKEN or the `hf auth login` one; prefer those, an argument shows in `ps`)"
    p = sub.add_parser("export", help="write a run's best network as a transformers model directory with a model card")
    p.add_argument("--run", required=True, help="a search output directory")
    p.add_argument("--out", required=True, help="a new (or empty) directory")
    p.add_argument("--weights", choices=("auto", "retrained", "init"), default="auto",
                   help="retrained (needs `gptnas retrain`), init (untrained), auto: retrained if there")
    p.add_argument("--dataset", default=None, help="where the run's data is, if not where the search found it")
    p.add_argument("--repo-id", default=None, help="the Hub repo the card's usage snippet names")
    p.add_argument("--pick", default="best", help=PICK_HELP)
    p.add_argument("--gpt", action="store_true", help="export the run's adapted architecture GPT (gpt_adaptation) "
                   "instead of its network")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("push", help="export a run's best network and upload it to a Hub model repo in one commit")
    p.add_argument("--run", required=True, help="a search output directory")
    p.add_argument("--repo-id", required=True, help="name or namespace/name")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--token", default=None, help=token_help)
    p.add_argument("--weights", choices=("auto", "retrained", "init"), default="auto")
    p.add_argument("--dataset", default=None, help="where the run's data is, if not where the search found it")
    p.add_argument("--commit-message", default=None, help="default: 'Upload a network found by gptnas-hf'")
    p.add_argument("--pick", default="best", help=PICK_HELP)
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("push-model", help="upload an architecture GPT checkpoint (code, pipeline, card) to the Hub")
    p.add_argument("--model", required=True, help="a checkpoint directory, e.g. the shipped one or a `gptnas train` output")
    p.add_argument("--repo-id", required=True, help="name or namespace/name")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--token", default=None, help=token_help)
    p.add_argument("--model-card", default=None, help="the README.md to upload (default: the repository's model_card.md)")
    p.add_argument("--commit-message", default=None, help="default: 'Upload the gptnas-hf architecture GPT'")
    p.set_defaults(func=cmd_push_model)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a user's mistake raises (module doc); anything else is a bug."""
    from huggingface_hub.errors import HTTPError as HubHTTPError

    from .search.run_directory import RunDirectoryLocked
    from .search.table_fitness import ArchitectureNotInTableError

    return (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError,
            ArchitectureNotInTableError, RunDirectoryLocked, ConnectionError, TimeoutError, HubHTTPError)


def _one_line(err: BaseException, secrets: list[str]) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    for secret in secrets:
        text = text.replace(secret, "***")
    return re.sub(r"\bhf_[A-Za-z0-9]{8,}", "hf_***", text)  # any token-shaped string


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        resume = " (nothing is lost: run the same command with --resume)" if args.command == "search" else ""
        print(f"gptnas {args.command}: interrupted{resume}", file=sys.stderr)
        return 130
    except _user_errors() as err:
        where = ""
        if isinstance(err, _user_errors()[-3:]):  # the network: ConnectionError, TimeoutError, the Hub's HTTP errors
            where = f"the Hub could not be reached or refused the request ({type(err).__name__}): "
        secrets = [s for s in (getattr(args, "token", None),) if s]
        print(f"gptnas {args.command}: error: {where}{_one_line(err, secrets)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
