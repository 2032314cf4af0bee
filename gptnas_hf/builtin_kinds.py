"""The package's block kinds, each defined once as a :class:`~gptnas_hf.kind_registry.BlockKind`
(parameters, accepted widths, how it is built, how the sampler draws it, what the
reconstruction tries) and registered: first the paper's Table-2 kinds, built from torchvision's
own block classes, in the GPT's label order (:data:`~gptnas_hf.block_labels.BLOCK_LABELS`). A
new kind is one more definition here, appended to :data:`BUILTIN_KINDS`: a builder (modules made
in execution order, :func:`adapter` where the kind cannot reach the width or stride by itself)
and its settings. It is searched, built and traced like the others; the GPT rewrites masked
blocks only into the kinds its block head was trained on (its ``config.block_labels``). The
sampler's weights favour conv-like blocks over bare layers.

A flat model-side module (saved searched networks carry it): it imports torch, torchvision and
flat modules only.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

from torch import nn
from torchvision.models.googlenet import BasicConv2d, Inception
from torchvision.models.regnet import ResBottleneckBlock, SimpleStemIN
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.models.shufflenetv2 import InvertedResidual
from torchvision.ops import Conv2dNormActivation, SqueezeExcitation

from .block_labels import BLOCK_LABELS
from .kind_registry import (MAX_WIDTH, BlockKind, KindParam, choice, flag, float_range, int_range,
                            register_kind)
from .value_checks import is_number

__all__ = ["BUILTIN_KINDS", "adapter"]


def adapter(in_channels: int, out_channels: int, stride: int, *, norm: bool = True) -> nn.Sequential:
    """The closure rule's adapter: a 1x1 ``Conv2d`` (no bias) with the stride, then a
    ``BatchNorm2d`` unless ``norm`` is false."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)]
    if norm:
        layers.append(nn.BatchNorm2d(out_channels))
    return nn.Sequential(*layers)


_KERNELS = (1, 3, 5)


# -- ConvNormActivation --------------------------------------------------------------------
def _build_conv_norm_activation(spec: Mapping, cin: int):
    act = nn.SiLU if spec["activation"] == "SiLU" else nn.ReLU
    return None, Conv2dNormActivation(cin, spec["width"], kernel_size=spec["kernel"], stride=spec["stride"],
                                      activation_layer=act), None


CONV_NORM_ACTIVATION = BlockKind(
    "ConvNormActivation", _build_conv_norm_activation,
    params={"kernel": choice(_KERNELS, 3, doc="square kernel size", snap=True),
            "activation": choice(("ReLU", "SiLU"), "ReLU", doc="activation after the BatchNorm")},
    weight=3.0,
    candidates=tuple({"kernel": k, "activation": a} for k in (1, 3, 5) for a in ("ReLU", "SiLU")),
    doc="``torchvision.ops.Conv2dNormActivation``; kernel in {1, 3, 5} (3), activation in "
        "{\"ReLU\", \"SiLU\"} (\"ReLU\").")


# -- SqueezeExcitation ---------------------------------------------------------------------
def _build_squeeze_excitation(spec: Mapping, cin: int):
    width, stride = spec["width"], spec["stride"]
    pre = adapter(cin, width, stride) if cin != width or stride != 1 else None
    return pre, SqueezeExcitation(width, max(1, width // spec["squeeze_factor"])), None


SQUEEZE_EXCITATION = BlockKind(
    "SqueezeExcitation", _build_squeeze_excitation,
    params={"squeeze_factor": int_range(1, 1024, 4, (4, 4, 8, 16), doc="squeeze channels = max(1, width // factor)")},
    maps_channels_at=(), downsamples=False,
    candidates=({"squeeze_factor": 4}, {"squeeze_factor": 16}),
    doc="``torchvision.ops.SqueezeExcitation``; squeeze_factor, int 1..1024 (4): squeeze channels = "
        "max(1, width // squeeze_factor). An adapter (in -> width, stride) before it.")


# -- Inception -----------------------------------------------------------------------------
def _inception_split(width: int) -> dict[str, int]:
    """GoogLeNet's inception-3a proportions (64 / 96->128 / 16->32 / 32 of 256): 1x1 gets 1/4,
    3x3 1/2 (reduced to 3/4 of it), 5x5 1/8 (reduced to 1/2), pool projection 1/8."""
    ch5x5 = pool_proj = max(1, width // 8)
    ch1x1 = max(1, width // 4)
    ch3x3 = width - ch1x1 - ch5x5 - pool_proj
    return dict(ch1x1=ch1x1, ch3x3red=max(1, ch3x3 * 3 // 4), ch3x3=ch3x3,
                ch5x5red=max(1, ch5x5 // 2), ch5x5=ch5x5, pool_proj=pool_proj)


def _build_inception(spec: Mapping, cin: int):
    pre = adapter(cin, cin, spec["stride"]) if spec["stride"] != 1 else None
    return pre, Inception(cin, conv_block=BasicConv2d, **_inception_split(spec["width"])), None


INCEPTION = BlockKind(
    "Inception", _build_inception, downsamples=False,
    min_width=4, width_rule="Inception splits its output over four branches",
    doc="``torchvision.models.googlenet.Inception`` with its ``BasicConv2d``; no parameters, the width "
        "is split as in GoogLeNet's inception-3a (1x1: 1/4, 3x3: 1/2 with a 3/4 reduction, 5x5: 1/8 with a "
        "1/2 reduction, pool projection: 1/8); width >= 4. At stride 2 an adapter (in -> in, stride 2) "
        "before it (it changes channels itself).")


# -- AvgPool / MaxPool ---------------------------------------------------------------------
def _pool_builder(pool: type[nn.Module]):
    def build(spec: Mapping, cin: int):
        op = pool(kernel_size=3, stride=spec["stride"], padding=1)
        return None, op, (adapter(cin, spec["width"], 1) if cin != spec["width"] else None)
    return build


_POOL_DOC = ("``nn.{}`` (kernel 3, padding 1); no parameters. The pool does the stride; an adapter "
             "(in -> width, stride 1) after it.")
AVG_POOL = BlockKind("AvgPool", _pool_builder(nn.AvgPool2d), maps_channels_at=(), weight=0.5, stride2_weight=2.0,
                     doc=_POOL_DOC.format("AvgPool2d"))
MAX_POOL = BlockKind("MaxPool", _pool_builder(nn.MaxPool2d), maps_channels_at=(), weight=0.5, stride2_weight=2.0,
                     doc=_POOL_DOC.format("MaxPool2d"))


# -- ResBottleneckBlock --------------------------------------------------------------------
def _res_bottleneck_width(width: int, multiplier: float) -> int:
    # exactly torchvision's BottleneckTransform: w_b = int(round(width_out * bottleneck_multiplier))
    return int(round(width * multiplier))


def _default_group_width(block: Mapping) -> int:
    w_b = _res_bottleneck_width(block["width"], block.get("bottleneck_multiplier", 1.0))
    return math.gcd(max(w_b, 1), 8)


def _se_ratio_canon(value):
    if value is None:
        return 0.0
    return float(value) if is_number(value) else value


_RES_BOTTLENECK_PARAMS = {
    "bottleneck_multiplier": float_range(0.0, 4.0, 1.0, (1.0, 1.0, 0.5), lo_open=True,
                                         doc="bottleneck width w_b = round(width * multiplier)"),
    "group_width": int_range(1, 4 * MAX_WIDTH, _default_group_width, (8, 8, 16, 4, 2, 1),
                             doc="channels per group of the 3x3 conv; must divide w_b"),
    "se_ratio": KindParam(0.0, (0.0, 0.0, 0.25), lambda v: None if is_number(v) and 0.0 <= v <= 1.0
                          else "must be a number in [0, 1] (0 = no SE)", canon=_se_ratio_canon,
                          doc="SE squeeze channels = round(se_ratio * input channels); 0 = no SE"),
}


def _check_res_bottleneck(block: Mapping) -> str | None:
    width = block["width"]
    w_b = _res_bottleneck_width(width, block["bottleneck_multiplier"])
    if w_b < 1:
        return f"bottleneck width round({width} * {block['bottleneck_multiplier']}) = {w_b} < 1"
    if w_b > 4 * MAX_WIDTH:
        return f"bottleneck width {w_b} exceeds {4 * MAX_WIDTH}"
    if w_b % block["group_width"]:
        return (f"group_width {block['group_width']} does not divide the bottleneck width "
                f"{w_b} (= round(width {width} * bottleneck_multiplier {block['bottleneck_multiplier']}))")
    return None


def _sample_res_bottleneck(block: dict, rng: random.Random) -> None:
    """The multiplier first (one that leaves a bottleneck), then the SE ratio, then a group
    width that divides the bottleneck."""
    specs, width = _RES_BOTTLENECK_PARAMS, block["width"]
    if "bottleneck_multiplier" not in block:
        options = [m for m in specs["bottleneck_multiplier"].sample if _res_bottleneck_width(width, m) >= 1]
        block["bottleneck_multiplier"] = rng.choice(options) if options else 1.0
    if "se_ratio" not in block:
        block["se_ratio"] = rng.choice(specs["se_ratio"].sample)
    if "group_width" not in block:
        w_b = _res_bottleneck_width(width, block["bottleneck_multiplier"])
        options = [g for g in specs["group_width"].sample if w_b % g == 0]
        block["group_width"] = rng.choice(options) if options else 1


def _build_res_bottleneck(spec: Mapping, cin: int):
    se_ratio = spec["se_ratio"] or None
    if se_ratio and int(round(se_ratio * cin)) < 1:  # keep at least one SE channel
        se_ratio = 1.0 / cin
    return None, ResBottleneckBlock(cin, spec["width"], spec["stride"], norm_layer=nn.BatchNorm2d,
                                    activation_layer=nn.ReLU, group_width=spec["group_width"],
                                    bottleneck_multiplier=spec["bottleneck_multiplier"], se_ratio=se_ratio), None


RES_BOTTLENECK_BLOCK = BlockKind(
    "ResBottleneckBlock", _build_res_bottleneck, params=_RES_BOTTLENECK_PARAMS,
    check=_check_res_bottleneck, sample_params=_sample_res_bottleneck, weight=2.0,
    candidates=tuple({"bottleneck_multiplier": m, "se_ratio": se} for m in (1.0, 0.5) for se in (0.0, 0.25)),
    doc="``torchvision.models.regnet.ResBottleneckBlock``; bottleneck_multiplier in (0, 4] (1.0), "
        "group_width (gcd(w_b, 8)), se_ratio in [0, 1] (0.0 = no SE; null is read as 0.0); group_width must "
        "divide w_b = round(width * multiplier). Its projection is RegNet's own.")


# -- Stem ----------------------------------------------------------------------------------
def _build_stem(spec: Mapping, cin: int):
    op = SimpleStemIN(cin, spec["width"], norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU)
    op[0].stride = (spec["stride"], spec["stride"])  # SimpleStemIN is stride 2; the genome decides
    return None, op, None


STEM = BlockKind(
    "Stem", _build_stem, weight=0.25, first_weight=6.0,
    doc="``torchvision.models.regnet.SimpleStemIN`` (3x3 conv-BN-ReLU); no parameters; its conv's stride "
        "is set to the block's (SimpleStemIN itself is stride 2). The sampler favours it first.")


# -- Bottleneck / BasicBlock ---------------------------------------------------------------
def _bottleneck_inner(width: int, groups: int, base_width: int) -> int:
    # exactly torchvision's Bottleneck: width = int(planes * (base_width / 64.0)) * groups
    return int((width // 4) * (base_width / 64.0)) * groups


#: (groups, base_width) pairs the sampler draws from: ResNet, Wide-ResNet, ResNeXt
_BOTTLENECK_CONFIGS = ((1, 64), (1, 64), (1, 128), (32, 4), (32, 8), (8, 16), (64, 4))


def _check_bottleneck(block: Mapping) -> str | None:
    width = block["width"]
    inner = _bottleneck_inner(width, block["groups"], block["base_width"])
    if inner < 1:
        return (f"inner width int(planes * base_width / 64) * groups = {inner} with planes={width // 4}, "
                f"groups={block['groups']}, base_width={block['base_width']}; it must be >= 1")
    if inner > 4 * MAX_WIDTH:
        return f"inner width {inner} exceeds {4 * MAX_WIDTH}"
    return None


def _sample_bottleneck(block: dict, rng: random.Random) -> None:
    """``groups`` and ``base_width`` together, as ResNet, Wide-ResNet and ResNeXt set them."""
    if not {"groups", "base_width"} & set(block):
        options = [c for c in _BOTTLENECK_CONFIGS if 1 <= _bottleneck_inner(block["width"], *c) <= 4 * MAX_WIDTH]
        block["groups"], block["base_width"] = rng.choice(options) if options else (1, 64)


def _resnet_builder(cls: type[nn.Module]):
    def build(spec: Mapping, cin: int):
        width, stride = spec["width"], spec["stride"]
        downsample = None
        if stride != 1 or cin != width:  # as torchvision's ResNet._make_layer
            downsample = nn.Sequential(nn.Conv2d(cin, width, kernel_size=1, stride=stride, bias=False),
                                       nn.BatchNorm2d(width))
        extra = {name: spec[name] for name in ("groups", "base_width") if name in spec}
        return None, cls(cin, width // cls.expansion, stride, downsample, **extra), None
    return build


BOTTLENECK = BlockKind(
    "Bottleneck", _resnet_builder(Bottleneck),
    params={"groups": int_range(1, 1024, 1, (1, 1, 32, 32, 8, 64), doc="3x3 conv groups (ResNeXt cardinality)"),
            "base_width": int_range(1, 1024, 64, (64, 64, 128, 4, 8, 16),
                                    doc="ResNet base width (64; 128 = Wide-ResNet)")},
    width_multiple=4, min_width=4, width_rule="Bottleneck output = planes * 4",
    check=_check_bottleneck, sample_params=_sample_bottleneck, weight=2.0,
    candidates=({"groups": 1, "base_width": 64}, {"groups": 1, "base_width": 128}, {"groups": 32, "base_width": 4}),
    doc="``torchvision.models.resnet.Bottleneck``; groups (1), base_width (64); width = planes * 4, so "
        "width % 4 == 0; int(planes * base_width / 64) * groups >= 1. Its projection is ResNet's "
        "``downsample`` (1x1 conv + BN when stride != 1 or in != width).")
BASIC_BLOCK = BlockKind(
    "BasicBlock", _resnet_builder(BasicBlock), weight=3.0,
    doc="``torchvision.models.resnet.BasicBlock``; no parameters (it only supports groups 1, base width "
        "64). Its projection is ResNet's ``downsample``.")


# -- InvertedResidual ----------------------------------------------------------------------
def _build_inverted_residual(spec: Mapping, cin: int):
    width, stride = spec["width"], spec["stride"]
    pre = None
    if stride == 1 and cin != width:
        pre = adapter(cin, width, 1)
        cin = width
    return pre, InvertedResidual(cin, width, stride), None


INVERTED_RESIDUAL = BlockKind(
    "InvertedResidual", _build_inverted_residual, maps_channels_at=(2,), weight=2.0,
    width_multiple=2, min_width=2, width_rule="InvertedResidual splits its output into two equal branches",
    doc="``torchvision.models.shufflenetv2.InvertedResidual``; no parameters; width even. At stride 1 "
        "with in != width an adapter (in -> width) before it.")


# -- BatchNorm / ReLU / Conv ---------------------------------------------------------------
def _build_batch_norm(spec: Mapping, cin: int):
    width, stride = spec["width"], spec["stride"]
    pre = adapter(cin, width, stride, norm=False) if cin != width or stride != 1 else None
    return pre, nn.BatchNorm2d(width), None


def _build_relu(spec: Mapping, cin: int):
    width, stride = spec["width"], spec["stride"]
    pre = adapter(cin, width, stride) if cin != width or stride != 1 else None
    return pre, nn.ReLU(), None  # not in-place: it may be the network's first op


def _build_conv(spec: Mapping, cin: int):
    k = spec["kernel"]
    return None, nn.Conv2d(cin, spec["width"], kernel_size=k, stride=spec["stride"], padding=(k - 1) // 2,
                           bias=spec["bias"]), None


BATCH_NORM = BlockKind(
    "BatchNorm", _build_batch_norm, maps_channels_at=(), downsamples=False, weight=0.5,
    doc="``nn.BatchNorm2d``; no parameters. A 1x1 conv (in -> width, stride) before it (the block's own "
        "BN is the adapter's norm).")
RELU = BlockKind(
    "ReLU", _build_relu, maps_channels_at=(), downsamples=False, weight=0.5,
    doc="``nn.ReLU`` (not in place); no parameters. An adapter (in -> width, stride) before it.")
CONV = BlockKind(
    "Conv", _build_conv,
    params={"kernel": choice(_KERNELS, 3, doc="square kernel size", snap=True), "bias": flag(False, doc="conv bias")},
    candidates=tuple({"kernel": k} for k in (1, 3, 5)),
    doc="``nn.Conv2d`` (padding (k - 1) // 2); kernel in {1, 3, 5} (3), bias (false).")


#: the package's kinds in registration order (the order the sampler draws from by default): the
#: Table-2 kinds in the GPT's label order, then any other
BUILTIN_KINDS = (CONV_NORM_ACTIVATION, SQUEEZE_EXCITATION, INCEPTION, AVG_POOL, RES_BOTTLENECK_BLOCK, STEM,
                 BOTTLENECK, BASIC_BLOCK, INVERTED_RESIDUAL, MAX_POOL, BATCH_NORM, RELU, CONV)
assert tuple(kind.name for kind in BUILTIN_KINDS[:len(BLOCK_LABELS)]) == BLOCK_LABELS
for _kind in BUILTIN_KINDS:
    register_kind(_kind)
