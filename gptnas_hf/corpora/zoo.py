"""The fine-tuning corpus: the 36 torchvision networks of the paper's Table 2.

Every network is built with ``weights=None`` (nothing is downloaded) and traced on the
``meta`` device at 224x224x3, so the whole zoo traces in a few seconds.
"""

from __future__ import annotations

from typing import Iterable

import datasets
import torchvision
from torch import nn
from tqdm.auto import tqdm

from .common import ARCHITECTURE_FEATURES, architecture_row, trace_factory

# Table 2: family -> variants (36 in all)
ZOO_FAMILIES: dict[str, tuple[str, ...]] = {
    "efficientnet": tuple(f"efficientnet_b{i}" for i in range(8)),
    "googlenet": ("googlenet",),
    "regnet": tuple(
        f"regnet_{kind}_{size}"
        for kind in ("y", "x")
        for size in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")
    ),
    "resnet": ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"),
    "resnext": ("resnext50_32x4d", "resnext101_32x8d"),
    "shufflenet": ("shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"),
    "wide_resnet": ("wide_resnet50_2", "wide_resnet101_2"),
}
ZOO_NETWORKS: tuple[str, ...] = tuple(name for names in ZOO_FAMILIES.values() for name in names)
ZOO_INPUT_SHAPE = (3, 224, 224)


def family_of(name: str) -> str:
    for family, names in ZOO_FAMILIES.items():
        if name in names:
            return family
    raise ValueError(f"unknown zoo network {name!r}; the zoo holds {', '.join(ZOO_NETWORKS)}")


def build_torchvision(name: str) -> nn.Module:
    """A torchvision classifier by name, randomly initialised (``weights=None``)."""
    available = set(torchvision.models.list_models(module=torchvision.models))
    if name not in available:
        raise ValueError(
            f"unknown torchvision network {name!r}; choose one of torchvision.models.list_models(), "
            f"for instance {', '.join(ZOO_NETWORKS[:5])}, ..."
        )
    kwargs = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
    return torchvision.models.get_model(name, weights=None, **kwargs)


def trace_torchvision(name: str, input_shape=ZOO_INPUT_SHAPE):
    return trace_factory(lambda: build_torchvision(name), input_shape)


def zoo_corpus(names: Iterable[str] = ZOO_NETWORKS, progress: bool = True) -> datasets.Dataset:
    """One row per zoo network (columns of :data:`ARCHITECTURE_FEATURES` plus ``family``)."""
    names = list(names)
    rows = []
    for name in tqdm(names, desc="tracing torchvision zoo", disable=not progress):
        row = architecture_row(name, "torchvision", trace_torchvision(name))
        row["family"] = family_of(name)
        rows.append(row)
    features = ARCHITECTURE_FEATURES.copy()
    features["family"] = datasets.Value("string")
    return datasets.Dataset.from_list(rows, features=features)
