"""Typed, nested recipe settings, checked when a recipe is read, before anything trains.

Contract: every setting of a recipe is checked against a dataclass. An unknown key, a value of
the wrong type (``population_size: "4"``) or out of range (``batch_size: 0``) raises a
:class:`RecipeError` (a ``ValueError``) whose message names the setting by its dotted path
(``evaluation.train_scop``) and lists the known keys of its section; nothing is ever coerced
silently except an integer where a float is expected. No ``**dict`` reaches a constructor
unchecked.

Sections:

* a search recipe (:class:`~gptnas_hf.search.searcher.SearchConfig`): top-level keys, then
  ``data`` (:class:`DataConfig`, the options of :func:`~gptnas_hf.data.load_image_data`),
  ``evaluation`` (:class:`~gptnas_hf.evaluation.EvalConfig`) and ``retrain``
  (:class:`~gptnas_hf.evaluation.RetrainConfig` plus ``retrain.data``, a partial
  :class:`DataConfig` for the final training: :func:`retrain_data_settings`);
* an architecture-GPT training recipe (:class:`GPTRecipe`): its top-level keys, ``model``
  (the keys ``GPTNASConfig`` knows) and ``training`` (``TrainingArguments`` fields).

:func:`read_recipe` reads a YAML file (invalid YAML is a :class:`RecipeError` with the file,
line and column). Sections are kept as the plain mappings the user wrote (that is what a run records); the
checked, typed objects are made from them with :func:`eval_config`, :func:`retrain_config`
and :func:`data_config`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .value_checks import is_int

__all__ = [
    "RecipeError",
    "read_recipe",
    "DataConfig",
    "GPTRecipe",
    "check_fields",
    "data_config",
    "eval_config",
    "retrain_config",
    "retrain_data_settings",
    "check_gpt_recipe",
    "check_training_arguments",
]


class RecipeError(ValueError):
    """A recipe setting that cannot be used; the message names it by its dotted path."""


def read_recipe(path: str | os.PathLike) -> dict:
    """A YAML recipe as a dict, with errors that name the file (and the line of a YAML error)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recipe {str(path)!r} does not exist")
    try:
        recipe = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise RecipeError(f"recipe {str(path)!r} is not valid YAML{where}: {problem}") from None
    if recipe is None:
        return {}
    if not isinstance(recipe, dict):
        raise RecipeError(f"recipe {str(path)!r} is not a YAML mapping of settings")
    return recipe


# -- constraints --------------------------------------------------------------------------------
Check = tuple[Callable[[Any], bool], str]  # (predicate on a non-None value, what it must be)

POSITIVE: Check = (lambda v: v >= 1, "at least 1")
NON_NEGATIVE: Check = (lambda v: v >= 0, "at least 0")
POSITIVE_FLOAT: Check = (lambda v: v > 0 and math.isfinite(v), "a finite number above 0")
NON_NEGATIVE_FLOAT: Check = (lambda v: v >= 0 and math.isfinite(v), "a finite number, at least 0")
UNIT: Check = (lambda v: 0 <= v <= 1, "in [0, 1]")
UNIT_OPEN: Check = (lambda v: 0 <= v < 1, "in [0, 1)")
FRACTION: Check = (lambda v: 0 < v <= 1, "in (0, 1]")

#: ranges of EvalConfig's numbers (its own __post_init__ checks its choices)
EVAL_CHECKS: dict[str, Check] = {
    "epochs": POSITIVE, "batch_size": POSITIVE, "eval_batch_size": POSITIVE, "lr": POSITIVE_FLOAT,
    "warmup_epochs": NON_NEGATIVE_FLOAT, "momentum": UNIT_OPEN, "weight_decay": NON_NEGATIVE_FLOAT,
    "label_smoothing": UNIT_OPEN, "augment_pad": NON_NEGATIVE, "max_batches_per_epoch": POSITIVE,
}
#: ranges of RetrainConfig's numbers
RETRAIN_CHECKS: dict[str, Check] = {
    "epochs": POSITIVE, "batch_size": POSITIVE, "eval_batch_size": POSITIVE, "lr": POSITIVE_FLOAT,
    "lr_step": POSITIVE, "gamma": POSITIVE_FLOAT, "momentum": UNIT_OPEN, "weight_decay": NON_NEGATIVE_FLOAT,
    "label_smoothing": UNIT_OPEN, "augment_pad": NON_NEGATIVE, "max_batches_per_epoch": POSITIVE,
}


@dataclass
class DataConfig:
    """A recipe's ``data`` section: the options of :func:`gptnas_hf.data.load_image_data`
    (the source itself is the recipe's ``dataset``; the seed is the run's)."""

    cache_dir: str | None = None
    val_fraction: float = 0.1
    max_train_per_class: int | None = None
    max_test: int | None = None
    image_size: int | None = None
    train_subset_fraction: float | None = None
    image_column: str | None = None
    label_column: str | None = None


DATA_CHECKS: dict[str, Check] = {
    "val_fraction": UNIT_OPEN, "max_train_per_class": POSITIVE, "max_test": POSITIVE, "image_size": POSITIVE,
    "train_subset_fraction": FRACTION,
}
#: the subset settings a final training drops by default: it trains on the full training split
SEARCH_SUBSET_KEYS = ("max_train_per_class", "train_subset_fraction", "max_test")


# -- the checker ----------------------------------------------------------------------------------
def _dotted(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(annotation) -> str:
    if annotation is type(None):
        return "null"
    if annotation is float:
        return "a number"
    if annotation is int:
        return "an integer"
    if annotation is bool:
        return "true or false"
    if annotation is str:
        return "a string"
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin in (tuple, list) or annotation in (tuple, list):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return "a list" + (f" of {_type_name(args[0]).removeprefix('a ').removeprefix('an ')}s" if args else "")
    if origin is dict or annotation is dict:
        return "a mapping"
    return getattr(annotation, "__name__", str(annotation))


def _convert(value, annotation, dotted: str):
    """``value`` checked against ``annotation`` (and converted: int -> float, list -> tuple), or
    a RecipeError that names ``dotted``."""
    if annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            try:
                return _convert(value, option, dotted)
            except RecipeError:
                continue
        raise _wrong_type(value, annotation, dotted)
    if annotation is type(None):
        if value is None:
            return None
        raise _wrong_type(value, annotation, dotted)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise _wrong_type(value, annotation, dotted)
    if annotation is int:
        if is_int(value):
            return value
        raise _wrong_type(value, annotation, dotted)
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _wrong_type(value, annotation, dotted)
    if annotation is str:
        if isinstance(value, str):
            return value
        raise _wrong_type(value, annotation, dotted)
    if origin in (tuple, list) or annotation in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _wrong_type(value, annotation, dotted)
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        items = [_convert(v, args[0], f"{dotted}[{i}]") if args else v for i, v in enumerate(value)]
        return tuple(items) if (origin or annotation) is tuple else items
    if origin is dict or annotation is dict:
        if isinstance(value, Mapping):
            return dict(value)
        raise _wrong_type(value, annotation, dotted)
    return value  # anything else (an enum, a class) is the constructor's to check


def _wrong_type(value, annotation, dotted: str) -> RecipeError:
    hint = ""
    if isinstance(value, str) and annotation is not str:
        try:
            float(value)
            hint = " (write it without quotes"
            hint += "; YAML reads 1e-3 as a string, write 1.0e-3)" if "e" in value.lower() else ")"
        except ValueError:
            pass
    return RecipeError(f"{dotted}: expected {_type_name(annotation)}, got {value!r} "
                       f"({type(value).__name__}){hint}")


def _unknown(key: str, known: list[str], path: str) -> RecipeError:
    close = difflib.get_close_matches(key, known, n=1)
    maybe = f" (did you mean {_dotted(path, close[0])!r}?)" if close else ""
    where = f"of {path!r}" if path else "at the top level"
    return RecipeError(f"{_dotted(path, key)}: unknown setting{maybe}; known keys {where}: {', '.join(known)}")


def check_fields(cls, values: Mapping, path: str = "", checks: Mapping[str, Check] | None = None,
                 skip: tuple[str, ...] = ()) -> dict:
    """``values`` checked against the fields of dataclass ``cls``: unknown keys, types and the
    ranges in ``checks``. Returns the checked values (only the keys given). ``skip``: fields
    the caller checks itself."""
    if not isinstance(values, Mapping):
        raise RecipeError(f"{path or 'the recipe'}: expected a mapping of settings, got {values!r} "
                          f"({type(values).__name__})")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    out = {}
    for key, value in values.items():
        if not isinstance(key, str) or key not in known:
            raise _unknown(str(key), known, path)
        dotted = _dotted(path, key)
        if key in skip:
            out[key] = value
            continue
        value = _convert(value, hints[key], dotted)
        check = (checks or {}).get(key)
        if check is not None and value is not None and not check[0](value):
            raise RecipeError(f"{dotted}: must be {check[1]}, got {value!r}")
        out[key] = value
    return out


def build(cls, values: Mapping, path: str, checks: Mapping[str, Check] | None = None, **fixed):
    """``cls(**checked values, **fixed)``; an error of its own checks is prefixed with ``path``."""
    checked = check_fields(cls, values, path, checks)
    try:
        return cls(**{**checked, **fixed})
    except (ValueError, TypeError) as err:
        raise RecipeError(f"{path}: {err}") from None


# -- search sections --------------------------------------------------------------------------------
def data_config(values: Mapping, path: str = "data") -> DataConfig:
    return build(DataConfig, values, path, DATA_CHECKS)


def eval_config(values: Mapping, path: str = "evaluation", **fixed):
    """The :class:`~gptnas_hf.evaluation.EvalConfig` of a recipe's ``evaluation`` section."""
    from .evaluation import EvalConfig

    return build(EvalConfig, values, path, EVAL_CHECKS, **fixed)


def retrain_config(values: Mapping, path: str = "retrain", **fixed):
    """The :class:`~gptnas_hf.evaluation.RetrainConfig` of a recipe's ``retrain`` section (its
    ``data`` key is checked too, and left out of the result: :func:`retrain_data_settings`)."""
    from .evaluation import RetrainConfig

    if not isinstance(values, Mapping):
        raise RecipeError(f"{path}: expected a mapping of settings, got {values!r} ({type(values).__name__})")
    values = dict(values)
    data = values.pop("data", None)
    if data is not None:
        check_fields(DataConfig, data, f"{path}.data", DATA_CHECKS)
    try:
        return build(RetrainConfig, values, path, RETRAIN_CHECKS, **fixed)
    except RecipeError as err:
        if "unknown setting" in str(err):  # list retrain.data among the known keys
            raise RecipeError(f"{err}, data") from None
        raise


def retrain_data_settings(search_data: Mapping, retrain: Mapping) -> dict:
    """The data settings of a final training: the search's, less the subsets the search used
    (:data:`SEARCH_SUBSET_KEYS`: the full training and test splits), then ``retrain.data``."""
    settings = {k: v for k, v in search_data.items() if k not in SEARCH_SUBSET_KEYS}
    settings["train_subset_fraction"] = 1.0  # not None: a preset's own subset (imagenet-1k: 10%) would apply
    settings.update(retrain.get("data") or {})
    check_fields(DataConfig, settings, "retrain.data", DATA_CHECKS)
    return settings


# -- architecture-GPT training recipes ------------------------------------------------------------
@dataclass
class GPTRecipe:
    """The top level of a ``gptnas train`` recipe (``recipes/pretrain-*.yaml``, ``finetune-*``)."""

    corpus: dict | list  # load_corpus(corpus): one mapping, or a list of them
    name: str | None = None
    tokenizer: str | None = None  # a directory with tokenizer.json (default: tokenizer/, else the shipped one)
    init_from: str | None = None  # a checkpoint to fine-tune (default: a new GPT made from `model`)
    seed: int = 0
    eval_fraction: float = 0.05  # windows held out for the eval loss
    model: dict = field(default_factory=dict)  # GPTNASConfig keys
    training: dict = field(default_factory=dict)  # TrainingArguments keys


def _gpt_config_keys() -> list[str]:
    import inspect

    from transformers import GPT2Config

    from .configuration_gptnas import GPTNASConfig

    keys = set(GPTNASConfig().to_dict())
    for cls in (GPTNASConfig, GPT2Config):
        keys |= {p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")}
    return sorted(keys)


def check_gpt_recipe(recipe: Mapping, where: str = "recipe") -> dict:
    """A GPT training recipe checked: top-level keys and types, ``model`` keys against
    ``GPTNASConfig``, ``training`` keys against ``TrainingArguments``. Returns it as a dict."""
    try:
        if not isinstance(recipe, Mapping):
            raise RecipeError(f"expected a mapping of settings, got {type(recipe).__name__}")
        if "corpus" not in recipe:
            raise RecipeError("corpus: missing (e.g. corpus: {source: zoo})")
        checked = check_fields(GPTRecipe, recipe, "", {"eval_fraction": UNIT_OPEN})
        known = _gpt_config_keys()
        for key in checked.get("model", {}):
            if key not in known:
                raise _unknown(str(key), known, "model")
        check_training_arguments(checked.get("training", {}), construct=False)
    except RecipeError as err:
        raise RecipeError(f"{where}: {err}") from None
    return dict(recipe)


def check_training_arguments(args: Mapping, construct: bool = True):
    """``TrainingArguments(**args)`` with unknown keys named (``training.learnig_rate``) and its
    own errors prefixed with ``training``; ``construct=False`` only checks the keys."""
    from transformers import TrainingArguments

    known = sorted(f.name for f in dataclasses.fields(TrainingArguments) if f.init)
    for key in args:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            maybe = f" (did you mean 'training.{close[0]}'?)" if close else ""
            raise RecipeError(f"training.{key}: unknown TrainingArguments setting{maybe}; see "
                              "https://huggingface.co/docs/transformers/main_classes/trainer#transformers.TrainingArguments")
    if not construct:
        return None
    try:
        return TrainingArguments(**args)
    except (ValueError, TypeError) as err:
        raise RecipeError(f"training: {err}") from None
