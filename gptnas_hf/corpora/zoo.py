"""The fine-tuning corpus: the 36 torchvision networks of the paper's Table 2.

Every network is built with ``weights=None`` (nothing is downloaded) and traced on the
``meta`` device (shapes only, no weights). By default at 224x224x3 as in the
paper; ``input_sizes`` adds the small inputs a search runs at (32, 28: strides and global
pools then meet 1x1 maps), and ``width_multipliers`` narrow versions of the families that have
a width knob (EfficientNet's ``width_mult``, RegNet's ``w_0``/``w_a``, ShuffleNetV2's stage
channels, the bottleneck ResNets' ``width_per_group``), which change the networks' width
ratios where channel counts round to a floor (EfficientNet's multiples of 8, RegNet's group
widths), as in the narrow genomes of a CPU search. A variant's name is
``name@SIZE`` or ``name@SIZE*MULT`` (``resnet50@32*0.25``).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Sequence

import datasets
import torchvision
from torch import nn
from tqdm.auto import tqdm

from ..encoding import trace_factory
from .common import ARCHITECTURE_FEATURES, architecture_row

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


#: families whose width :func:`build_torchvision` can scale
NARROWABLE_FAMILIES = ("efficientnet", "regnet", "shufflenet", "resnet", "resnext", "wide_resnet")


@contextmanager
def _narrowed(multiplier: float):
    """Within the block, torchvision's builders of EfficientNet, RegNet and ShuffleNetV2 make
    their networks ``multiplier`` times as wide (their own width knobs, scaled where the
    builders set them)."""
    from torchvision.models import efficientnet, regnet, shufflenetv2

    conf, params, shuffle = efficientnet._efficientnet_conf, regnet.BlockParams.from_init_params, shufflenetv2._shufflenetv2

    def narrow_conf(arch, **kwargs):
        kwargs["width_mult"] = kwargs.get("width_mult", 1.0) * multiplier
        return conf(arch, **kwargs)

    def narrow_params(*args, **kwargs):
        kwargs["w_0"] = max(8, int(round(kwargs["w_0"] * multiplier / 8)) * 8)
        kwargs["w_a"] = kwargs["w_a"] * multiplier
        return params(*args, **kwargs)

    def narrow_shuffle(weights, progress, repeats, channels, **kwargs):
        channels = [max(8, int(round(c * multiplier / 4)) * 4) for c in channels[:-1]] + [channels[-1]]
        return shuffle(weights, progress, repeats, channels, **kwargs)

    efficientnet._efficientnet_conf, regnet.BlockParams.from_init_params = narrow_conf, narrow_params
    shufflenetv2._shufflenetv2 = narrow_shuffle
    try:
        yield
    finally:
        efficientnet._efficientnet_conf, regnet.BlockParams.from_init_params = conf, params
        shufflenetv2._shufflenetv2 = shuffle


def build_torchvision(name: str, width_multiplier: float = 1.0) -> nn.Module:
    """A torchvision classifier by name, randomly initialised (``weights=None``);
    ``width_multiplier`` narrows the families of :data:`NARROWABLE_FAMILIES`."""
    available = set(torchvision.models.list_models(module=torchvision.models))
    if name not in available:
        raise ValueError(
            f"unknown torchvision network {name!r}; choose one of torchvision.models.list_models(), "
            f"for instance {', '.join(ZOO_NETWORKS[:5])}, ..."
        )
    kwargs = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
    if width_multiplier == 1.0:
        return torchvision.models.get_model(name, weights=None, **kwargs)
    family = family_of(name) if name in ZOO_NETWORKS else None
    if family not in NARROWABLE_FAMILIES:
        raise ValueError(f"{name!r} has no width knob here; width multipliers apply to {', '.join(NARROWABLE_FAMILIES)}")
    if family in ("resnet", "resnext", "wide_resnet"):
        model = torchvision.models.get_model(name, weights=None)
        if not isinstance(model.layer1[0], torchvision.models.resnet.Bottleneck):
            raise ValueError(f"{name!r} is built of BasicBlocks, which have no width knob")
        from torchvision.models.resnet import Bottleneck, ResNet

        groups = model.layer1[0].conv2.groups
        base = model.layer1[0].conv1.out_channels // groups  # width_per_group
        depths = [len(model.layer1), len(model.layer2), len(model.layer3), len(model.layer4)]
        return ResNet(Bottleneck, depths, groups=groups, width_per_group=max(4, int(base * width_multiplier)))
    with _narrowed(width_multiplier):
        return torchvision.models.get_model(name, weights=None, **kwargs)


def trace_torchvision(name: str, input_shape=ZOO_INPUT_SHAPE, width_multiplier: float = 1.0):
    return trace_factory(lambda: build_torchvision(name, width_multiplier), input_shape)


def zoo_corpus(names: Iterable[str] = ZOO_NETWORKS, progress: bool = True, input_sizes: Sequence[int] = (224,),
               width_multipliers: Sequence[float] = (1.0,)) -> datasets.Dataset:
    """One row per zoo network and variant (columns of :data:`ARCHITECTURE_FEATURES` plus
    ``family``): every network at every input size of ``input_sizes``, at full width, and the
    narrowable ones (:data:`NARROWABLE_FAMILIES`) at every other multiplier too."""
    names = list(names)
    variants = []
    for name in names:
        for size in input_sizes:
            for mult in width_multipliers:
                narrowable = family_of(name) in NARROWABLE_FAMILIES and (
                    family_of(name) not in ("resnet",) or name not in ("resnet18", "resnet34"))
                if mult == 1.0 or narrowable:
                    variants.append((name, int(size), float(mult)))
    rows = []
    for name, size, mult in tqdm(variants, desc="tracing torchvision zoo", disable=not progress):
        label = name if (size, mult) == (224, 1.0) else f"{name}@{size}" + ("" if mult == 1.0 else f"*{mult:g}")
        row = architecture_row(label, "torchvision", trace_torchvision(name, (3, size, size), mult))
        row["family"] = family_of(name)
        rows.append(row)
    features = ARCHITECTURE_FEATURES.copy()
    features["family"] = datasets.Value("string")
    return datasets.Dataset.from_list(rows, features=features)


#: torchvision classification CNN families outside the paper's Table 2: the held-out test of
#: whether the GPT's knowledge generalises beyond the families it was trained on. They are
#: never part of a training recipe.
HELD_OUT_NETWORKS: tuple[str, ...] = (
    "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "mnasnet0_5", "mnasnet1_0", "densenet121",
    "squeezenet1_1", "vgg11_bn", "vgg16", "alexnet", "convnext_tiny", "efficientnet_v2_s", "inception_v3",
)


def torchvision_corpus(networks: Sequence[str] = HELD_OUT_NETWORKS, input_size: int = 224,
                       progress: bool = True) -> datasets.Dataset:
    """One row per torchvision network of ``networks`` (any name of
    ``torchvision.models.list_models()``), traced at ``input_size``; ``family`` is the name."""
    networks = list(networks)
    overlap = sorted(set(networks) & set(ZOO_NETWORKS))
    if overlap:
        raise ValueError(f"{overlap} belong to the zoo (Table 2); use source: zoo for them")
    rows = []
    for name in tqdm(networks, desc="tracing torchvision networks", disable=not progress):
        row = architecture_row(name, "torchvision", trace_torchvision(name, (3, input_size, input_size)))
        row["family"] = name
        rows.append(row)
    features = ARCHITECTURE_FEATURES.copy()
    features["family"] = datasets.Value("string")
    return datasets.Dataset.from_list(rows, features=features)
