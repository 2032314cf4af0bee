"""The block search space: a *genome* (a JSON list of blocks) and the ``nn.Module`` it builds.

Genome format
-------------
A genome is a JSON-serialisable list of flat dicts, one per block, executed in order and
followed by a classifier head (``AdaptiveAvgPool2d(1) -> Flatten -> Linear``)::

    [{"kind": "Stem", "width": 32, "stride": 2},
     {"kind": "BasicBlock", "width": 32, "stride": 1},
     {"kind": "MaxPool", "width": 32, "stride": 2},
     {"kind": "Bottleneck", "width": 128, "stride": 1, "groups": 1, "base_width": 64}]

Every block has ``kind`` (one of the paper's Table-2 block labels, :data:`BLOCK_LABELS`),
``width`` (its output channels, an int in 1..4096) and ``stride`` (1 or 2), plus the
parameters of its kind (:data:`KIND_PARAMS`; a missing one takes its default, see
:func:`normalize`; any other key is an error). Kind, module it is built from, parameters
(default):

* ConvNormActivation: ``torchvision.ops.Conv2dNormActivation``; kernel in {1, 3, 5} (3),
  activation in {"ReLU", "SiLU"} ("ReLU").
* SqueezeExcitation: ``torchvision.ops.SqueezeExcitation``; squeeze_factor, int 1..1024 (4):
  squeeze channels = max(1, width // squeeze_factor).
* Inception: ``torchvision.models.googlenet.Inception`` with its ``BasicConv2d``; no
  parameters, the width is split as in GoogLeNet's inception-3a (1x1: 1/4, 3x3: 1/2 with a
  3/4 reduction, 5x5: 1/8 with a 1/2 reduction, pool projection: 1/8); width >= 4.
* AvgPool / MaxPool: ``nn.AvgPool2d`` / ``nn.MaxPool2d`` (kernel 3, padding 1); no parameters.
* ResBottleneckBlock: ``torchvision.models.regnet.ResBottleneckBlock``;
  bottleneck_multiplier in (0, 4] (1.0), group_width (gcd(w_b, 8)), se_ratio in [0, 1]
  (0.0 = no SE; null is read as 0.0); group_width must divide w_b = round(width * multiplier).
* Stem: ``torchvision.models.regnet.SimpleStemIN`` (3x3 conv-BN-ReLU); no parameters; its
  conv's stride is set to the block's (SimpleStemIN itself is stride 2).
* Bottleneck: ``torchvision.models.resnet.Bottleneck``; groups (1), base_width (64);
  width = planes * 4, so width % 4 == 0; int(planes * base_width / 64) * groups >= 1.
* BasicBlock: ``torchvision.models.resnet.BasicBlock``; no parameters (it only supports
  groups 1, base width 64).
* InvertedResidual: ``torchvision.models.shufflenetv2.InvertedResidual``; no parameters;
  width even.
* BatchNorm: ``nn.BatchNorm2d``; ReLU: ``nn.ReLU`` (not in place); no parameters.
* Conv: ``nn.Conv2d`` (padding (k - 1) // 2); kernel in {1, 3, 5} (3), bias (false).

Closure rule
------------
Every block of every kind, whatever its input channels, outputs exactly ``width`` channels at
the given stride, so any list of valid blocks builds (crossover, mutation and reconstruction
never produce an unbuildable network; validity of a block never depends on its neighbours).
Kinds that cannot change channels or stride natively get an *adapter*, a 1x1 ``Conv2d`` (no
bias) + ``BatchNorm2d`` with the needed stride, inside the same :class:`GenomeBlock`:

* SqueezeExcitation, ReLU: adapter (in -> width, stride) before the op;
* BatchNorm: a 1x1 conv (in -> width, stride) before it (the block's own BN is the adapter's norm);
* MaxPool, AvgPool: the pool does the stride; an adapter (in -> width, stride 1) after it;
* InvertedResidual at stride 1 with in != width: adapter (in -> width) before it;
* Inception at stride 2: adapter (in -> in, stride 2) before it (it changes channels itself).

Residual blocks build their projection the way torchvision does (ResNet's ``downsample`` 1x1
conv + BN when stride != 1 or in != width; RegNet's own ``proj``). All spatial ops pad so that
their output is ``floor((H - 1) / stride) + 1``: a stride-2 op on a 1x1 map gives 1x1, never
less, so a network runs on any input size (28x28 to 224x224 and beyond) and any number of
input channels. :func:`sample_genome` mostly avoids adapters (width-preserving kinds get the
incoming width, stride-2 positions get kinds that downsample natively), but they are always legal.
:func:`changes_width` is the one rule for which kinds (at which stride) map channels themselves;
the sampler and the search strategies' mutations both follow it.

Each genome block becomes one :class:`GenomeBlock` whose ``gptnas_block_label`` is its kind,
so :func:`gptnas_hf.encoding.trace` labels every layer inside it (adapters included) with the
genome's block kind.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torchvision.models.googlenet import BasicConv2d, Inception
from torchvision.models.regnet import ResBottleneckBlock, SimpleStemIN
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.models.shufflenetv2 import InvertedResidual
from torchvision.ops import Conv2dNormActivation, SqueezeExcitation

from .block_labels import BLOCK_LABELS

__all__ = [
    "BLOCK_LABELS",
    "KIND_PARAMS",
    "KindParam",
    "MAX_WIDTH",
    "WIDTH_PRESERVING_KINDS",
    "STRIDE_NATIVE_KINDS",
    "changes_width",
    "InvalidGenomeError",
    "Genome",
    "GenomeBlock",
    "GenomeNetwork",
    "normalize",
    "validate_genome",
    "make_block",
    "sample_genome",
    "build_block",
    "build_network",
    "count_parameters",
]

MAX_WIDTH = 4096
_BASE_KEYS = ("kind", "width", "stride")

#: Kinds whose native module keeps the channel count (they need an adapter to change it).
WIDTH_PRESERVING_KINDS = ("SqueezeExcitation", "AvgPool", "MaxPool", "BatchNorm", "ReLU")
#: Kinds whose native module can downsample (stride 2) without an adapter.
STRIDE_NATIVE_KINDS = (
    "ConvNormActivation", "AvgPool", "ResBottleneckBlock", "Stem", "Bottleneck",
    "BasicBlock", "InvertedResidual", "MaxPool", "Conv",
)


class InvalidGenomeError(ValueError):
    """A genome (or one of its blocks) is not valid. ``index`` and ``kind`` name the offending
    block (``None`` for errors about the genome as a whole); ``reason`` says what is wrong."""

    def __init__(self, reason: str, index: int | None = None, kind: Any = None):
        self.reason, self.index, self.kind = reason, index, kind
        if index is None:
            message = f"invalid genome: {reason}"
        else:
            message = f"invalid genome: block {index} ({kind if isinstance(kind, str) else repr(kind)}): {reason}"
        super().__init__(message)


# -- kind parameters -----------------------------------------------------------------------
def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _res_bottleneck_width(width: int, multiplier: float) -> int:
    # exactly torchvision's BottleneckTransform: w_b = int(round(width_out * bottleneck_multiplier))
    return int(round(width * multiplier))


def _bottleneck_inner(width: int, groups: int, base_width: int) -> int:
    # exactly torchvision's Bottleneck: width = int(planes * (base_width / 64.0)) * groups
    return int((width // 4) * (base_width / 64.0)) * groups


class KindParam:
    """One kind parameter: ``default`` (a value, or a function of the block), ``sample`` (the
    values :func:`make_block` draws from, repeats weight them), ``check(value)`` (``None`` or
    what is wrong), ``canon(value)`` (canonical type) and ``doc``."""

    def __init__(self, default, sample: Sequence, check, canon=lambda v: v, doc: str = ""):
        self.default, self.sample, self.check, self.canon, self.doc = default, tuple(sample), check, canon, doc

    def default_for(self, block: Mapping) -> Any:
        return self.default(block) if callable(self.default) else self.default


def _choice(values: Sequence, default, *, doc: str = "") -> KindParam:
    def check(v):
        return None if (v in values and type(v) is type(default)) else f"must be one of {list(values)}"
    return KindParam(default, values, check, doc=doc)


def _int_range(lo: int, hi: int, default, sample: Sequence, *, doc: str = "") -> KindParam:
    def check(v):
        return None if _is_int(v) and lo <= v <= hi else f"must be an int in {lo}..{hi}"
    return KindParam(default, sample, check, doc=doc)


def _float_range(lo: float, hi: float, default: float, sample: Sequence, *, lo_open: bool, doc: str = "") -> KindParam:
    def check(v):
        ok = _is_number(v) and (v > lo if lo_open else v >= lo) and v <= hi
        return None if ok else f"must be a number in {'(' if lo_open else '['}{lo}, {hi}]"
    return KindParam(default, sample, check, canon=lambda v: float(v) if _is_number(v) else v, doc=doc)


def _bool(default: bool, *, doc: str = "") -> KindParam:
    return KindParam(default, (False, True), lambda v: None if isinstance(v, bool) else "must be true or false", doc=doc)


def _default_group_width(block: Mapping) -> int:
    w_b = _res_bottleneck_width(block["width"], block.get("bottleneck_multiplier", 1.0))
    return math.gcd(max(w_b, 1), 8)


def _se_ratio_canon(value):
    if value is None:
        return 0.0
    return float(value) if _is_number(value) else value


_KERNELS = (1, 3, 5)

#: kind -> {param name -> KindParam}. Parameter order here is not significant (JSON keys are sorted).
KIND_PARAMS: dict[str, dict[str, KindParam]] = {
    "ConvNormActivation": {
        "kernel": _choice(_KERNELS, 3, doc="square kernel size"),
        "activation": _choice(("ReLU", "SiLU"), "ReLU", doc="activation after the BatchNorm"),
    },
    "SqueezeExcitation": {
        "squeeze_factor": _int_range(1, 1024, 4, (4, 4, 8, 16), doc="squeeze channels = max(1, width // factor)"),
    },
    "Inception": {},
    "AvgPool": {},
    "ResBottleneckBlock": {
        "bottleneck_multiplier": _float_range(0.0, 4.0, 1.0, (1.0, 1.0, 0.5), lo_open=True,
                                              doc="bottleneck width w_b = round(width * multiplier)"),
        "group_width": _int_range(1, 4 * MAX_WIDTH, _default_group_width, (8, 8, 16, 4, 2, 1),
                                  doc="channels per group of the 3x3 conv; must divide w_b"),
        "se_ratio": KindParam(0.0, (0.0, 0.0, 0.25), lambda v: None if _is_number(v) and 0.0 <= v <= 1.0
                           else "must be a number in [0, 1] (0 = no SE)", canon=_se_ratio_canon,
                           doc="SE squeeze channels = round(se_ratio * input channels); 0 = no SE"),
    },
    "Stem": {},
    "Bottleneck": {
        "groups": _int_range(1, 1024, 1, (1, 1, 32, 32, 8, 64), doc="3x3 conv groups (ResNeXt cardinality)"),
        "base_width": _int_range(1, 1024, 64, (64, 64, 128, 4, 8, 16), doc="ResNet base width (64; 128 = Wide-ResNet)"),
    },
    "BasicBlock": {},
    "InvertedResidual": {},
    "MaxPool": {},
    "BatchNorm": {},
    "ReLU": {},
    "Conv": {
        "kernel": _choice(_KERNELS, 3, doc="square kernel size"),
        "bias": _bool(False, doc="conv bias"),
    },
}
assert tuple(KIND_PARAMS) == BLOCK_LABELS

# Bottleneck (groups, base_width) pairs the sampler draws from: ResNet, Wide-ResNet, ResNeXt.
_BOTTLENECK_CONFIGS = ((1, 64), (1, 64), (1, 128), (32, 4), (32, 8), (8, 16), (64, 4))


def _kind_constraint(block: Mapping) -> str | None:
    """What is wrong with a block whose keys and individual values are fine, or ``None``."""
    kind, width = block["kind"], block["width"]
    if kind == "Bottleneck":
        if width % 4:
            return f"width {width} is not a multiple of 4 (Bottleneck output = planes * 4)"
        inner = _bottleneck_inner(width, block["groups"], block["base_width"])
        if inner < 1:
            return (f"inner width int(planes * base_width / 64) * groups = {inner} with planes={width // 4}, "
                    f"groups={block['groups']}, base_width={block['base_width']}; it must be >= 1")
        if inner > 4 * MAX_WIDTH:
            return f"inner width {inner} exceeds {4 * MAX_WIDTH}"
    elif kind == "InvertedResidual":
        if width % 2:
            return f"width {width} is odd (InvertedResidual splits its output into two equal branches)"
    elif kind == "Inception":
        if width < 4:
            return f"width {width} < 4 (Inception splits its output over four branches)"
    elif kind == "ResBottleneckBlock":
        w_b = _res_bottleneck_width(width, block["bottleneck_multiplier"])
        if w_b < 1:
            return f"bottleneck width round({width} * {block['bottleneck_multiplier']}) = {w_b} < 1"
        if w_b > 4 * MAX_WIDTH:
            return f"bottleneck width {w_b} exceeds {4 * MAX_WIDTH}"
        if w_b % block["group_width"]:
            return (f"group_width {block['group_width']} does not divide the bottleneck width "
                    f"{w_b} (= round(width {width} * bottleneck_multiplier {block['bottleneck_multiplier']}))")
    return None


def _normalize_block(index: int, block) -> dict:
    if not isinstance(block, Mapping):
        raise InvalidGenomeError(f"expected a dict with 'kind', 'width', 'stride', got {type(block).__name__}", index, None)
    kind = block.get("kind")
    if not isinstance(kind, str) or kind not in KIND_PARAMS:
        what = "missing 'kind'" if "kind" not in block else f"unknown kind {kind!r}"
        raise InvalidGenomeError(f"{what}; valid kinds: {', '.join(BLOCK_LABELS)}", index, kind)

    def bad(reason: str):
        return InvalidGenomeError(reason, index, kind)

    specs = KIND_PARAMS[kind]
    extra = [k for k in block if k not in _BASE_KEYS and k not in specs]
    if extra:
        allowed = list(_BASE_KEYS) + list(specs)
        raise bad(f"unknown key {extra[0]!r}; {kind} takes {allowed}")
    if "width" not in block:
        raise bad("missing 'width'")
    width = block["width"]
    if not _is_int(width) or not 1 <= width <= MAX_WIDTH:
        raise bad(f"width must be a positive int <= {MAX_WIDTH}, got {width!r}")
    if "stride" not in block:
        raise bad("missing 'stride'")
    stride = block["stride"]
    if not _is_int(stride) or stride not in (1, 2):
        raise bad(f"stride must be 1 or 2, got {stride!r}")
    out = {"kind": kind, "width": width, "stride": stride}
    for name in sorted(specs, key=lambda n: n == "group_width"):  # group_width's default needs the multiplier
        spec = specs[name]
        value = spec.canon(block[name]) if name in block else spec.default_for(out)
        problem = spec.check(value)
        if problem:
            raise bad(f"{name} {block.get(name, value)!r} {problem}")
        out[name] = value
    problem = _kind_constraint(out)
    if problem:
        raise bad(problem)
    return {k: out[k] for k in (*_BASE_KEYS, *sorted(specs))}


def _load(genome) -> list:
    if isinstance(genome, Genome):
        return genome.to_list()
    if isinstance(genome, (str, bytes, bytearray)):
        try:
            genome = json.loads(genome)
        except ValueError as err:
            raise InvalidGenomeError(f"not valid JSON ({err})") from None
    if isinstance(genome, Mapping) and "blocks" in genome and len(genome) == 1:
        genome = genome["blocks"]
    if not isinstance(genome, (list, tuple)):
        raise InvalidGenomeError(f"expected a list of blocks, got {type(genome).__name__}")
    return list(genome)


def normalize(genome) -> list[dict]:
    """The canonical form of a genome (a JSON string, list of dicts or :class:`Genome`): every
    block with all its kind's parameters (defaults filled in), canonical value types (floats
    for float parameters, ``se_ratio`` null -> 0.0) and keys ordered kind, width, stride, then
    sorted parameters. Equivalent genomes normalize (and hash) the same. Raises
    :class:`InvalidGenomeError` on anything invalid."""
    blocks = _load(genome)
    if not blocks:
        raise InvalidGenomeError("empty genome (a network needs at least one block)")
    return [_normalize_block(i, b) for i, b in enumerate(blocks)]


def validate_genome(genome, in_channels: int = 3, *, min_blocks: int = 1, max_blocks: int | None = None) -> "Genome":
    """Check ``genome`` and return it as a normalized :class:`Genome`; raises
    :class:`InvalidGenomeError` naming the offending block. ``in_channels`` (any positive int)
    never makes a valid genome invalid (closure rule); it is checked for range only."""
    if not _is_int(in_channels) or not 1 <= in_channels <= MAX_WIDTH:
        raise ValueError(f"in_channels must be a positive int <= {MAX_WIDTH}, got {in_channels!r}")
    result = Genome(genome)
    if len(result) < min_blocks:
        raise InvalidGenomeError(f"{len(result)} blocks, fewer than min_blocks={min_blocks}")
    if max_blocks is not None and len(result) > max_blocks:
        raise InvalidGenomeError(f"{len(result)} blocks, more than max_blocks={max_blocks}")
    return result


class Genome(Sequence):
    """An immutable, validated, normalized list of blocks (see the module docstring).

    ``Genome(blocks)`` accepts a list of dicts, a JSON string or another ``Genome`` and
    raises :class:`InvalidGenomeError` if it is invalid. Indexing returns copies of the
    block dicts, so a genome cannot be changed in place: edit ``to_list()`` and build a new one.
    """

    __slots__ = ("_blocks", "_json")

    def __init__(self, blocks):
        self._blocks = normalize(blocks)
        self._json = json.dumps(self._blocks, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, data) -> "Genome":
        """From a JSON string, a list of block dicts or a ``Genome``."""
        return data if type(data) is cls else cls(data)

    def to_json(self, indent: int | None = None) -> str:
        """JSON of the normalized blocks, keys in the normalized order (kind, width, stride,
        then sorted parameters); compact unless ``indent`` is given. Deterministic, so it is
        as stable as the sorted-keys form that :meth:`hash` uses."""
        separators = (",", ":") if indent is None else None
        return json.dumps(self._blocks, indent=indent, separators=separators)

    def to_list(self) -> list[dict]:
        return copy.deepcopy(self._blocks)

    def hash(self) -> str:
        """Stable sha1 (hex) of the canonical JSON; the same across processes and runs."""
        return hashlib.sha1(self._json.encode("utf-8")).hexdigest()

    def with_block(self, index: int, block: Mapping) -> "Genome":
        """A new genome with block ``index`` replaced by ``block`` (e.g. from :func:`make_block`)."""
        blocks = self.to_list()
        blocks[index] = dict(block)
        return Genome(blocks)

    @property
    def kinds(self) -> list[str]:
        return [b["kind"] for b in self._blocks]

    @property
    def widths(self) -> list[int]:
        return [b["width"] for b in self._blocks]

    @property
    def num_downsamples(self) -> int:
        return sum(b["stride"] == 2 for b in self._blocks)

    def __len__(self) -> int:
        return len(self._blocks)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [dict(b) for b in self._blocks[index]]
        return dict(self._blocks[index])

    def __iter__(self) -> Iterator[dict]:
        return (dict(b) for b in self._blocks)

    def __eq__(self, other) -> bool:
        if isinstance(other, Genome):
            return self._json == other._json
        if isinstance(other, (list, tuple, str)):
            try:
                return self._json == Genome(other)._json
            except InvalidGenomeError:
                return False
        return NotImplemented

    def __hash__(self) -> int:
        return int(self.hash()[:16], 16)

    def __repr__(self) -> str:
        return f"Genome({self._json})"

    def __reduce__(self):
        return (Genome, (self.to_json(),))


# -- modules -------------------------------------------------------------------------------
def _adapter(in_channels: int, out_channels: int, stride: int, *, norm: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)]
    if norm:
        layers.append(nn.BatchNorm2d(out_channels))
    return nn.Sequential(*layers)


def _inception_split(width: int) -> dict[str, int]:
    """GoogLeNet's inception-3a proportions (64 / 96->128 / 16->32 / 32 of 256): 1x1 gets 1/4,
    3x3 1/2 (reduced to 3/4 of it), 5x5 1/8 (reduced to 1/2), pool projection 1/8."""
    ch5x5 = pool_proj = max(1, width // 8)
    ch1x1 = max(1, width // 4)
    ch3x3 = width - ch1x1 - ch5x5 - pool_proj
    return dict(ch1x1=ch1x1, ch3x3red=max(1, ch3x3 * 3 // 4), ch3x3=ch3x3,
                ch5x5red=max(1, ch5x5 // 2), ch5x5=ch5x5, pool_proj=pool_proj)


class GenomeBlock(nn.Module):
    """One genome block: the kind's module (``op``) plus, where the closure rule needs it, an
    ``adapter`` before or after it. ``gptnas_block_label`` (= ``kind``) is what the tracer in
    :mod:`gptnas_hf.encoding` labels every layer inside with."""

    def __init__(self, block: Mapping, in_channels: int):
        super().__init__()
        spec = _normalize_block(0, block)
        kind, width, stride = spec["kind"], spec["width"], spec["stride"]
        self.gptnas_block_label = kind
        self.kind, self.spec = kind, spec
        self.in_channels, self.out_channels, self.stride = int(in_channels), width, stride
        pre: nn.Module | None = None
        post: nn.Module | None = None
        cin = self.in_channels
        if kind == "ConvNormActivation":
            act = nn.SiLU if spec["activation"] == "SiLU" else nn.ReLU
            op = Conv2dNormActivation(cin, width, kernel_size=spec["kernel"], stride=stride, activation_layer=act)
        elif kind == "SqueezeExcitation":
            if cin != width or stride != 1:
                pre = _adapter(cin, width, stride)
            op = SqueezeExcitation(width, max(1, width // spec["squeeze_factor"]))
        elif kind == "Inception":
            if stride != 1:
                pre = _adapter(cin, cin, stride)
            op = Inception(cin, conv_block=BasicConv2d, **_inception_split(width))
        elif kind in ("AvgPool", "MaxPool"):
            pool = nn.AvgPool2d if kind == "AvgPool" else nn.MaxPool2d
            op = pool(kernel_size=3, stride=stride, padding=1)
            if cin != width:
                post = _adapter(cin, width, 1)
        elif kind == "ResBottleneckBlock":
            se_ratio = spec["se_ratio"] or None
            if se_ratio and int(round(se_ratio * cin)) < 1:  # keep at least one SE channel
                se_ratio = 1.0 / cin
            op = ResBottleneckBlock(cin, width, stride, norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU,
                                    group_width=spec["group_width"],
                                    bottleneck_multiplier=spec["bottleneck_multiplier"], se_ratio=se_ratio)
        elif kind == "Stem":
            op = SimpleStemIN(cin, width, norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU)
            op[0].stride = (stride, stride)  # SimpleStemIN is stride 2; the genome decides
        elif kind in ("BasicBlock", "Bottleneck"):
            cls = BasicBlock if kind == "BasicBlock" else Bottleneck
            planes = width // cls.expansion
            downsample = None
            if stride != 1 or cin != width:  # as torchvision's ResNet._make_layer
                downsample = nn.Sequential(nn.Conv2d(cin, width, kernel_size=1, stride=stride, bias=False),
                                           nn.BatchNorm2d(width))
            extra = {"groups": spec["groups"], "base_width": spec["base_width"]} if kind == "Bottleneck" else {}
            op = cls(cin, planes, stride, downsample, **extra)
        elif kind == "InvertedResidual":
            if stride == 1 and cin != width:
                pre = _adapter(cin, width, 1)
                cin = width
            op = InvertedResidual(cin, width, stride)
        elif kind == "BatchNorm":
            if cin != width or stride != 1:
                pre = _adapter(cin, width, stride, norm=False)
            op = nn.BatchNorm2d(width)
        elif kind == "ReLU":
            if cin != width or stride != 1:
                pre = _adapter(cin, width, stride)
            op = nn.ReLU()  # not in-place: it may be the network's first op
        elif kind == "Conv":
            k = spec["kernel"]
            op = nn.Conv2d(cin, width, kernel_size=k, stride=stride, padding=(k - 1) // 2, bias=spec["bias"])
        else:  # pragma: no cover - normalize rejects unknown kinds
            raise InvalidGenomeError(f"unknown kind {kind!r}", 0, kind)
        # register in execution order
        self.adapter_position = "pre" if pre is not None else ("post" if post is not None else None)
        if pre is not None:
            self.adapter = pre
        self.op = op
        if post is not None:
            self.adapter = post

    @property
    def has_adapter(self) -> bool:
        return self.adapter_position is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.adapter_position == "pre":
            x = self.adapter(x)
        x = self.op(x)
        if self.adapter_position == "post":
            x = self.adapter(x)
        return x

    def extra_repr(self) -> str:
        return f"kind={self.kind}, in={self.in_channels}, out={self.out_channels}, stride={self.stride}"


def build_block(block: Mapping, in_channels: int) -> GenomeBlock:
    """The :class:`GenomeBlock` of one block dict (validated and normalized first)."""
    return GenomeBlock(_normalize_block(0, block), in_channels)


def init_module_weights(module: nn.Module) -> None:
    """Initialise one module as torchvision's ResNet / RegNet do: kaiming (fan-out) convs,
    unit BatchNorm, small normal Linear."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.01)
        nn.init.zeros_(module.bias)


class GenomeNetwork(nn.Module):
    """A genome's network: ``blocks`` (one :class:`GenomeBlock` per genome block, same index)
    then ``head`` = AdaptiveAvgPool2d(1) -> Flatten -> Linear(last width, num_classes)."""

    def __init__(self, genome, in_channels: int = 3, num_classes: int = 10, *, init_weights: bool = True):
        super().__init__()
        if not _is_int(num_classes) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.genome = validate_genome(genome, in_channels)
        self.in_channels, self.num_classes = in_channels, num_classes
        blocks, channels = [], in_channels
        for i, spec in enumerate(self.genome._blocks):
            blocks.append(GenomeBlock(spec, channels))
            channels = spec["width"]
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(channels, num_classes))
        if init_weights:
            self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            init_module_weights(m)

    @property
    def num_adapters(self) -> int:
        return sum(b.has_adapter for b in self.blocks)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def build_network(genome, in_channels: int = 3, num_classes: int = 10) -> GenomeNetwork:
    """Build the ``nn.Module`` of a genome (a :class:`Genome`, list of dicts or JSON string)."""
    return GenomeNetwork(genome, in_channels=in_channels, num_classes=num_classes)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``module`` (only those with ``requires_grad`` if asked)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# -- making and sampling blocks ------------------------------------------------------------
def _as_rng(seed_or_rng) -> random.Random:
    if isinstance(seed_or_rng, random.Random):
        return seed_or_rng
    if seed_or_rng is None or _is_int(seed_or_rng):
        return random.Random(seed_or_rng)
    raise TypeError(f"expected an int seed, a random.Random or None, got {type(seed_or_rng).__name__}")


def _fix_width(kind: str, width: int) -> int:
    width = min(max(int(width), 1), MAX_WIDTH)
    if kind == "Bottleneck":
        return min(max(4, int(width / 4 + 0.5) * 4), MAX_WIDTH)
    if kind == "InvertedResidual":
        return min(max(2, int(width / 2 + 0.5) * 2), MAX_WIDTH)
    if kind == "Inception":
        return max(4, width)
    return width


def make_block(kind: str, width: int, stride: int, rng=None, **hints) -> dict:
    """A valid, normalized block dict of ``kind`` with (about) that width and stride.

    * ``width`` is clamped to 1..4096 and moved to the nearest value the kind accepts
      (Bottleneck: multiple of 4; InvertedResidual: even; Inception: >= 4);
      ``stride`` >= 2 becomes 2, anything else 1.
    * Kind parameters come from ``hints`` (keyword arguments named like the parameters,
      e.g. ``kernel=5``) where the hinted value gives a valid block; hints that are not
      parameters of ``kind``, or whose value is invalid, are ignored (the reconstruction
      pipeline can pass the same hints whatever kind it predicted). A ``kernel`` hint outside
      {1, 3, 5} snaps to the nearest of them.
    * Remaining parameters are the defaults when ``rng`` is ``None``, else sampled from
      ``rng`` (a ``random.Random`` or an int seed) among sensible values.
    """
    if kind not in KIND_PARAMS:
        raise ValueError(f"unknown block kind {kind!r}; valid kinds: {', '.join(BLOCK_LABELS)}")
    rng = None if rng is None else _as_rng(rng)
    block: dict[str, Any] = {"kind": kind, "width": _fix_width(kind, width), "stride": 2 if int(stride) >= 2 else 1}
    specs = KIND_PARAMS[kind]
    if "kernel" in specs and _is_number(hints.get("kernel")):
        hints = dict(hints, kernel=min(_KERNELS, key=lambda k: (abs(k - hints["kernel"]), k)))
    for name, value in hints.items():
        if name in specs:
            trial = dict(block, **{name: specs[name].canon(value)})
            try:
                _normalize_block(0, trial)
            except InvalidGenomeError:
                continue
            block[name] = trial[name]
    if rng is not None:
        _sample_params(block, rng)
    return _normalize_block(0, block)


def _sample_params(block: dict, rng: random.Random) -> None:
    """Fill the block's missing parameters with sampled values that keep it valid."""
    kind, width = block["kind"], block["width"]
    specs = KIND_PARAMS[kind]
    if kind == "Bottleneck" and not {"groups", "base_width"} & set(block):
        options = [c for c in _BOTTLENECK_CONFIGS if 1 <= _bottleneck_inner(width, *c) <= 4 * MAX_WIDTH]
        block["groups"], block["base_width"] = rng.choice(options) if options else (1, 64)
        return
    if kind == "ResBottleneckBlock":
        if "bottleneck_multiplier" not in block:
            options = [m for m in specs["bottleneck_multiplier"].sample if _res_bottleneck_width(width, m) >= 1]
            block["bottleneck_multiplier"] = rng.choice(options) if options else 1.0
        if "se_ratio" not in block:
            block["se_ratio"] = rng.choice(specs["se_ratio"].sample)
        if "group_width" not in block:
            w_b = _res_bottleneck_width(width, block["bottleneck_multiplier"])
            options = [g for g in specs["group_width"].sample if w_b % g == 0]
            block["group_width"] = rng.choice(options) if options else 1
        return
    for name in sorted(specs):
        if name not in block:
            trial = dict(block, **{name: rng.choice(specs[name].sample)})
            try:
                _normalize_block(0, trial)
            except InvalidGenomeError:
                continue
            block[name] = trial[name]


# sampler weights: conv-like blocks more often than bare layers
_KIND_WEIGHTS = {
    "ConvNormActivation": 3.0, "SqueezeExcitation": 1.0, "Inception": 1.0, "AvgPool": 0.5,
    "ResBottleneckBlock": 2.0, "Stem": 0.5, "Bottleneck": 2.0, "BasicBlock": 3.0,
    "InvertedResidual": 2.0, "MaxPool": 0.5, "BatchNorm": 0.5, "ReLU": 0.5, "Conv": 1.0,
}


def changes_width(kind: str, stride: int) -> bool:
    """Whether the kind's own module maps any input channels to ``width`` (no adapter); when
    it does not, the block should take the incoming width."""
    if kind in WIDTH_PRESERVING_KINDS:
        return False
    if kind == "InvertedResidual":
        return stride == 2
    return True


#: the search space's defaults (paper section 5.1), the one source of truth for the sampler,
#: the strategies and the search settings
DEFAULT_MIN_BLOCKS = 10
DEFAULT_MAX_BLOCKS = 20
DEFAULT_WIDTHS = (16, 32, 64, 128)
DEFAULT_MAX_DOWNSAMPLES = 4


def sample_genome(
    seed_or_rng=None,
    min_blocks: int = DEFAULT_MIN_BLOCKS,
    max_blocks: int = DEFAULT_MAX_BLOCKS,
    widths: Sequence[int] = DEFAULT_WIDTHS,
    max_downsamples: int = DEFAULT_MAX_DOWNSAMPLES,
    kinds: Iterable[str] = BLOCK_LABELS,
) -> Genome:
    """A random genome, reproducible from an int seed (or drawn from a ``random.Random``).

    ``min_blocks``..``max_blocks`` blocks, 1..``max_downsamples`` of them stride 2 (0 if
    ``max_downsamples`` is 0), at those positions kinds that downsample natively; widths
    taken from ``widths`` (as a ladder: mostly non-decreasing, a step up is likely at a
    downsampling block). Kinds are drawn from ``kinds`` (weighted towards conv blocks; Stem
    favoured first, pools favoured at stride 2); width-preserving kinds take the incoming
    width and the first block is one that sets its own width, so adapters are rare. Every
    kind in ``kinds`` is reachable.
    """
    rng = _as_rng(seed_or_rng)
    kinds = tuple(dict.fromkeys(kinds))
    unknown = [k for k in kinds if k not in KIND_PARAMS]
    if not kinds or unknown:
        raise ValueError(f"kinds must be a non-empty subset of {BLOCK_LABELS}, got unknown {unknown}")
    if not (_is_int(min_blocks) and _is_int(max_blocks) and 1 <= min_blocks <= max_blocks):
        raise ValueError(f"need 1 <= min_blocks <= max_blocks, got {min_blocks}, {max_blocks}")
    widths = tuple(widths)
    if not widths or not all(_is_int(w) and 1 <= w <= MAX_WIDTH for w in widths):
        raise ValueError(f"widths must be positive ints <= {MAX_WIDTH}, got {widths}")
    if not _is_int(max_downsamples) or max_downsamples < 0:
        raise ValueError(f"max_downsamples must be a non-negative int, got {max_downsamples!r}")

    n = rng.randint(min_blocks, max_blocks)
    n_down = min(n, rng.randint(min(1, max_downsamples), max_downsamples))
    down = set(rng.sample(range(n), n_down))
    level, current = 0, None
    blocks = []
    for i in range(n):
        stride = 2 if i in down else 1
        pool = [k for k in kinds if k in STRIDE_NATIVE_KINDS] if stride == 2 else list(kinds)
        pool = pool or list(kinds)
        if current is None:
            pool = [k for k in pool if changes_width(k, stride)] or pool
        weights = []
        for k in pool:
            w = _KIND_WEIGHTS[k]
            if k == "Stem":
                w = 6.0 if i == 0 else 0.25
            elif k in ("MaxPool", "AvgPool") and stride == 2:
                w = 2.0
            weights.append(w)
        kind = rng.choices(pool, weights=weights)[0]
        if current is None or changes_width(kind, stride):
            if current is not None:
                u = rng.random()
                if stride == 2 and u < 0.6 or stride == 1 and u < 0.08:
                    level = min(level + 1, len(widths) - 1)
                elif u > 0.97:
                    level = max(level - 1, 0)
            width = widths[level]
        else:
            width = current
        block = make_block(kind, width, stride, rng)
        blocks.append(block)
        current = block["width"]
    return Genome(blocks)
