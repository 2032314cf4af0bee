"""The paper's Table-1 layer encoding, a layer's *type* (one token), and a tracer that turns
any ``nn.Module`` into the sequence of its layers.

Text form (paper, section 3.2), sizes are ``H-W-C``:

* convolution: ``id:1;in_size:32-32-3;out_size:32-32-3;kernel:1-1;stride:1-1;padding:0-0-0-0;dilation:1;groups:1;bias_used:No``
* pooling:     ``id:2;type:Max;in_size:32-32-3;out_size:16-16-3;kernel:2-2;stride:2-2;padding:1-0-1-0;dilation:1;bias_used:No``
* FC:          ``id:3;in_size:1-1-512;out_size:1-1-10``
* others:      ``id:4;name:ReLU;in_size:16-16-8;out_size:16-16-8;value:None``

Padding is ``top-bottom-left-right``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from .block_labels import BLOCK_LABELS, OTHER_LABEL

__all__ = [
    "LayerRecord",
    "TracedLayer",
    "BLOCK_LABELS",
    "trace_factory",
    "OTHER_LABEL",
    "layer_type",
    "width_ratio",
    "canonical_other",
    "OTHER_FAMILIES",
    "type_distance",
    "nearest_type",
    "trace",
    "register_block_class",
    "block_label_of",
]

CONV, POOL, FC, OTHER = "conv", "pool", "fc", "other"

_FIELDS = {
    CONV: ("id", "in_size", "out_size", "kernel", "stride", "padding", "dilation", "groups", "bias_used"),
    POOL: ("id", "type", "in_size", "out_size", "kernel", "stride", "padding", "dilation", "bias_used"),
    FC: ("id", "in_size", "out_size"),
    OTHER: ("id", "name", "in_size", "out_size", "value"),
}
_TUPLE_LEN = {"in_size": 3, "out_size": 3, "kernel": 2, "stride": 2, "padding": 4}
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_VALUE_RE = re.compile(r"^[A-Za-z0-9_.+\-]+$")


@dataclass(frozen=True)
class LayerRecord:
    """One layer with the properties of the paper's Table 1."""

    kind: str
    id: int
    in_size: tuple[int, int, int]
    out_size: tuple[int, int, int]
    kernel: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    padding: tuple[int, int, int, int] | None = None
    dilation: int | None = None
    groups: int | None = None
    bias_used: bool | None = None
    pool_type: str | None = None
    name: str | None = None
    value: str | None = None

    def __post_init__(self):
        if self.kind not in _FIELDS:
            raise ValueError(f"unknown layer kind {self.kind!r}; expected one of {sorted(_FIELDS)}")
        if self.kind == POOL and self.pool_type not in ("Max", "Avg"):
            raise ValueError(f"pooling layer needs type Max or Avg, got {self.pool_type!r}")

    # -- text ---------------------------------------------------------------------------
    def to_text(self) -> str:
        """The Table-1 string of this layer."""
        parts = []
        for key in _FIELDS[self.kind]:
            parts.append(f"{key}:{_format_field(key, self._get(key))}")
        return ";".join(parts)

    def _get(self, key):
        return self.pool_type if key == "type" else getattr(self, key)

    @classmethod
    def from_text(cls, text: str) -> "LayerRecord":
        """Parse a Table-1 string; raises ``ValueError`` naming the bad field and the text."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"empty layer text: {text!r}")
        fields: dict[str, str] = {}
        for chunk in text.strip().strip(";").split(";"):
            if ":" not in chunk:
                raise ValueError(f"malformed field {chunk.strip()!r} (expected key:value) in layer text {text!r}")
            key, raw = (s.strip() for s in chunk.split(":", 1))
            if key in fields:
                raise ValueError(f"field {key!r} appears twice in layer text {text!r}")
            fields[key] = raw
        if "type" in fields:
            kind = POOL
        elif "name" in fields:
            kind = OTHER
        elif "kernel" in fields:
            kind = CONV
        else:
            kind = FC
        expected = _FIELDS[kind]
        missing = [k for k in expected if k not in fields]
        extra = [k for k in fields if k not in expected]
        if missing:
            raise ValueError(f"{kind} layer text lacks field {missing[0]!r}: {text!r}")
        if extra:
            raise ValueError(f"unexpected field {extra[0]!r} for a {kind} layer: {text!r}")
        values = {k: _parse_field(k, fields[k], text) for k in expected}
        if "type" in values:
            values["pool_type"] = values.pop("type")
        return cls(kind=kind, **values)

    @property
    def out_channels(self) -> int:
        return self.out_size[2]

    @property
    def in_channels(self) -> int:
        return self.in_size[2]


def _format_field(key: str, value) -> str:
    if key in _TUPLE_LEN:
        return "-".join(str(int(v)) for v in value)
    if key == "bias_used":
        return "Yes" if value else "No"
    return str(value)


def _parse_field(key: str, raw: str, text: str):
    def bad(why: str):
        return ValueError(f"bad field {key!r}={raw!r} ({why}) in layer text {text!r}")

    if key in _TUPLE_LEN:
        parts = raw.split("-")
        if len(parts) != _TUPLE_LEN[key] or not all(p.isdigit() for p in parts):
            raise bad(f"expected {_TUPLE_LEN[key]} non-negative integers joined by '-'")
        return tuple(int(p) for p in parts)
    if key in ("id", "dilation", "groups"):
        if not raw.isdigit():
            raise bad("expected a non-negative integer")
        return int(raw)
    if key == "bias_used":
        if raw not in ("Yes", "No"):
            raise bad("expected Yes or No")
        return raw == "Yes"
    if key == "type":
        if raw not in ("Max", "Avg"):
            raise bad("expected Max or Avg")
        return raw
    if key == "name":
        if not _NAME_RE.match(raw):
            raise bad("expected an identifier")
        return raw
    if key == "value":
        if not _VALUE_RE.match(raw):
            raise bad("expected letters, digits, '.', '+', '-' or '_'")
        return raw
    raise bad("unknown field")  # pragma: no cover - guarded by _FIELDS


# -- layer types (tokens) ------------------------------------------------------------------
#: Widths are written relative to the layer's input: out/in channels rounded to the nearest power
#: of two, clamped to this range. A ResNet at 64..2048 channels and the same stack at 8..32 read
#: alike, so what the GPT learns on the zoo (224 px, wide) applies to the search's narrow genomes.
RATIO_RANGE = (-6, 6)  # log2 of the smallest and largest ratio: x1/64 .. x64

#: "Other" layers (activations, norms, dropout) are written as the class that stands for their
#: family, so torchvision's many activations and norms share a few well-trained tokens; the
#: Table-1 text keeps the real class name. A class not listed is written as itself.
OTHER_FAMILIES: dict[str, tuple[str, ...]] = {
    "ReLU": ("ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "CELU", "SELU", "Threshold"),
    "SiLU": ("SiLU", "Hardswish", "GELU", "Mish", "Softplus"),
    "Sigmoid": ("Sigmoid", "Hardsigmoid", "LogSigmoid"),
    "Tanh": ("Tanh", "Hardtanh", "Softsign", "Tanhshrink"),
    "BatchNorm2d": ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LazyBatchNorm2d"),
    "LayerNorm": ("LayerNorm", "LayerNorm2d", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
                  "LocalResponseNorm", "RMSNorm"),
    "Dropout": ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout",
                "StochasticDepth"),
    "Softmax": ("Softmax", "Softmax2d", "LogSoftmax"),
}
_OTHER_CANONICAL = {name: family for family, names in OTHER_FAMILIES.items() for name in names}
#: families an unseen "other" type may back off to (activation to activation, norm to norm)
_OTHER_CATEGORY = {"ReLU": "activation", "SiLU": "activation", "Sigmoid": "gate", "Tanh": "gate",
                   "BatchNorm2d": "norm", "LayerNorm": "norm", "Dropout": "regulariser", "Softmax": "gate"}


def width_ratio(in_channels: int, out_channels: int) -> str:
    """``out / in`` as a power of two (nearest in log scale, within :data:`RATIO_RANGE`):
    ``x1``, ``x2``, ``x1/4``, ..."""
    import math

    exponent = round(math.log2(max(out_channels, 1) / max(in_channels, 1)))
    exponent = min(max(exponent, RATIO_RANGE[0]), RATIO_RANGE[1])
    return f"x{2 ** exponent}" if exponent >= 0 else f"x1/{2 ** -exponent}"


def canonical_other(name: str) -> str:
    """The token of an "other" layer class: its family's representative (``ReLU6`` ->
    ``ReLU``, ``GroupNorm`` -> ``LayerNorm``), or the class name itself."""
    return _OTHER_CANONICAL.get(name, name)


def _groups_relation(record: LayerRecord) -> str:
    if record.groups == 1:
        return "g1"
    if record.groups == record.in_channels and record.groups == record.out_channels:
        return "dw"
    return "grouped"


def layer_type(record: LayerRecord) -> str:
    """The record without ``id`` and spatial sizes, widths relative: what becomes one token.

    * conv:  ``conv_k{kh}x{kw}_s{s}_p{pad}_d{d}_{g1|dw|grouped}_{bias|nobias}_x{out/in}``
    * pool:  ``pool_{max|avg}_k{kh}x{kw}_s{s}_p{pad}``, or ``pool_{max|avg}_global`` for a pool
      to 1x1 (an adaptive pool to 1x1 is global even on a 1x1 map)
    * fc:    ``fc_x{out/in}``
    * other: its family's class (:data:`OTHER_FAMILIES`: ``ReLU``, ``SiLU``, ``BatchNorm2d``, ...)

    Widths are the ratio of output to input channels (:func:`width_ratio`), so the type does not
    depend on how wide the network is; stride and padding are written once when they are
    symmetric (``s2``), else in full (``s2x1``, ``p1-0-1-0``).
    """
    if record.kind == CONV:
        return (
            f"conv_k{record.kernel[0]}x{record.kernel[1]}_s{_pair(record.stride)}_p{_pad(record.padding)}"
            f"_d{record.dilation}_{_groups_relation(record)}_{'bias' if record.bias_used else 'nobias'}"
            f"_{width_ratio(record.in_channels, record.out_channels)}"
        )
    if record.kind == POOL:
        head = f"pool_{record.pool_type.lower()}"
        if record.out_size[:2] == (1, 1) and (record.in_size[:2] != (1, 1) or record.padding == (0, 0, 0, 0)
                                              and record.kernel == (1, 1) and record.stride == (1, 1)):
            return f"{head}_global"
        return f"{head}_k{record.kernel[0]}x{record.kernel[1]}_s{_pair(record.stride)}_p{_pad(record.padding)}"
    if record.kind == FC:
        return f"fc_{width_ratio(record.in_channels, record.out_channels)}"
    return canonical_other(record.name)


def _pair(values: Sequence[int]) -> str:
    return str(values[0]) if values[0] == values[1] else f"{values[0]}x{values[1]}"


def _pad(values: Sequence[int]) -> str:
    return str(values[0]) if len(set(values)) == 1 else "-".join(map(str, values))


# -- backoff: an unseen type to its nearest known type ----------------------------------------
_CONV_RE = re.compile(r"^conv_k(\d+)x(\d+)_s([\dx]+)_p([\d-]+)_d(\d+)_(g1|dw|grouped)_(bias|nobias)_x([\d/]+)$")
_POOL_RE = re.compile(r"^pool_(max|avg)_(?:global|k(\d+)x(\d+)_s([\dx]+)_p([\d-]+))$")
_FC_RE = re.compile(r"^fc_x([\d/]+)$")


def _log2_ratio(text: str) -> float:
    import math

    if text.startswith("1/"):
        return -math.log2(int(text[2:]))
    return math.log2(int(text))


def _parse_type(token: str):
    """``(kind, fields)`` of a type string, ``None`` for a special token or a malformed type."""
    import math

    m = _CONV_RE.match(token)
    if m:
        kh, kw, s, p, d, g, b, r = m.groups()
        stride = [int(v) for v in s.split("x")]
        return "conv", {"k": (math.log2(int(kh)), math.log2(int(kw))), "s": max(stride), "asym_s": len(stride) > 1,
                        "p": p, "d": int(d), "g": g, "b": b, "r": _log2_ratio(r)}
    m = _POOL_RE.match(token)
    if m:
        t, kh, kw, s, p = m.groups()
        if kh is None:
            return "pool", {"t": t, "global": True}
        return "pool", {"t": t, "global": False, "k": int(kh) + int(kw), "s": max(int(v) for v in s.split("x")),
                        "p": p}
    m = _FC_RE.match(token)
    if m:
        return "fc", {"r": _log2_ratio(m.group(1))}
    if token.startswith("<") and token.endswith(">"):
        return None
    return "other", {"family": token, "category": _OTHER_CATEGORY.get(token)}


def type_distance(a: str, b: str) -> float:
    """How far apart two layer types are (``inf`` across conv / pool / fc / other, or between
    "other" classes of different categories). Stride, grouping and kind weigh most, then
    kernel and width ratio, then padding, dilation and bias."""
    pa, pb = _parse_type(a), _parse_type(b)
    if pa is None or pb is None or pa[0] != pb[0]:
        return float("inf")
    kind, x = pa
    y = pb[1]
    if kind == "conv":
        return (4.0 * (x["s"] != y["s"]) + 1.0 * (x["asym_s"] != y["asym_s"]) + 4.0 * (x["g"] != y["g"])
                + 1.5 * (abs(x["k"][0] - y["k"][0]) + abs(x["k"][1] - y["k"][1])) + 1.0 * abs(x["r"] - y["r"])
                + 0.5 * (x["p"] != y["p"]) + 1.0 * (x["d"] != y["d"]) + 0.25 * (x["b"] != y["b"]))
    if kind == "pool":
        if x["global"] or y["global"]:
            return 1.0 * (x["t"] != y["t"]) + (0.0 if x["global"] == y["global"] else 10.0)
        return (2.0 * (x["t"] != y["t"]) + 3.0 * (x["s"] != y["s"]) + 0.5 * abs(x["k"] - y["k"])
                + 0.5 * (x["p"] != y["p"]))
    if kind == "fc":
        return abs(x["r"] - y["r"])
    if x["family"] == y["family"]:
        return 0.0
    if x["category"] is None or x["category"] != y["category"]:
        return float("inf")
    return 1.0


def nearest_type(token: str, known: Sequence[str]) -> str | None:
    """``token`` itself when it is known, else the known type nearest to it
    (:func:`type_distance`; ties go to the first in ``known``), else ``None`` (no known type of
    its kind: the caller writes ``<unk>``)."""
    if token in known:
        return token
    best, best_distance = None, float("inf")
    for candidate in known:
        distance = type_distance(token, candidate)
        if distance < best_distance:
            best, best_distance = candidate, distance
    return best


# -- block labels (Table 2) ----------------------------------------------------------------

_BLOCK_CLASSES: dict[type, str] = {}


def register_block_class(cls: type, label: str) -> None:
    """Make the tracer label every layer inside an instance of ``cls`` (matched by exact
    type) with ``label``."""
    if label not in BLOCK_LABELS:
        raise ValueError(f"unknown block label {label!r}; expected one of {BLOCK_LABELS}")
    _BLOCK_CLASSES[cls] = label


def _register_torchvision_blocks() -> None:
    from torchvision.models.googlenet import Inception
    from torchvision.models.regnet import ResBottleneckBlock, SimpleStemIN
    from torchvision.models.resnet import BasicBlock, Bottleneck
    from torchvision.models.shufflenetv2 import InvertedResidual
    from torchvision.ops import Conv2dNormActivation, SqueezeExcitation

    register_block_class(Conv2dNormActivation, "ConvNormActivation")
    register_block_class(SqueezeExcitation, "SqueezeExcitation")
    register_block_class(Inception, "Inception")
    register_block_class(ResBottleneckBlock, "ResBottleneckBlock")
    register_block_class(SimpleStemIN, "Stem")
    register_block_class(Bottleneck, "Bottleneck")
    register_block_class(BasicBlock, "BasicBlock")
    register_block_class(InvertedResidual, "InvertedResidual")


_register_torchvision_blocks()

_LEAF_LABELS = (
    ((nn.Conv2d,), "Conv"),
    ((nn.MaxPool2d, nn.AdaptiveMaxPool2d), "MaxPool"),
    ((nn.AvgPool2d, nn.AdaptiveAvgPool2d), "AvgPool"),
    ((nn.BatchNorm2d,), "BatchNorm"),
    ((nn.ReLU,), "ReLU"),
)


def block_label_of(module: nn.Module) -> str | None:
    """The Table-2 label of a module: its ``gptnas_block_label`` attribute (set by the search
    space on each genome block), else that of its registered class, else ``None``."""
    return getattr(module, "gptnas_block_label", None) or _BLOCK_CLASSES.get(type(module))


def _leaf_label(module: nn.Module) -> str:
    for classes, label in _LEAF_LABELS:
        if isinstance(module, classes):
            return label
    return OTHER_LABEL


# -- records from modules ------------------------------------------------------------------
_SKIPPED_LEAVES = (nn.Identity, nn.Flatten, nn.Unflatten)


def _size(shape: Sequence[int]) -> tuple[int, int, int]:
    """``(N, C, H, W)`` or ``(N, F)`` -> ``(H, W, C)``."""
    if len(shape) == 4:
        return (int(shape[2]), int(shape[3]), int(shape[1]))
    if len(shape) == 2:
        return (1, 1, int(shape[1]))
    raise ValueError(f"cannot encode a tensor of shape {tuple(shape)} as H-W-C")


def _as_pair(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def _value_of(module: nn.Module) -> str:
    """``value`` of an 'other' layer: its defining hyper-parameter, ``None`` where it has none."""
    for attr in ("p", "negative_slope", "eps", "upscale_factor", "dim"):
        if hasattr(module, attr) and isinstance(getattr(module, attr), (int, float)) and not isinstance(getattr(module, attr), bool):
            return _number(getattr(module, attr))
    return "None"


def _number(x: float) -> str:
    if isinstance(x, int):
        return str(x)
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def record_from_module(module: nn.Module, layer_id: int, in_shape, out_shape) -> LayerRecord:
    """The Table-1 record of a leaf module given its input and output tensor shapes."""
    in_size, out_size = _size(in_shape), _size(out_shape)
    if isinstance(module, nn.Conv2d):
        ph, pw = _conv_padding(module, in_size, out_size)
        return LayerRecord(
            CONV, layer_id, in_size, out_size,
            kernel=_as_pair(module.kernel_size), stride=_as_pair(module.stride),
            padding=(ph, ph, pw, pw), dilation=_as_pair(module.dilation)[0],
            groups=int(module.groups), bias_used=module.bias is not None,
        )
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        pool_type = "Max" if isinstance(module, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)) else "Avg"
        if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            # the equivalent fixed pooling: stride = floor(in/out), kernel = in - (out-1)*stride
            stride = tuple(max(1, i // max(o, 1)) for i, o in zip(in_size[:2], out_size[:2]))
            kernel = tuple(i - (o - 1) * s for i, o, s in zip(in_size[:2], out_size[:2], stride))
            padding, dilation = (0, 0, 0, 0), 1
        else:
            kernel, stride = _as_pair(module.kernel_size), _as_pair(module.stride or module.kernel_size)
            ph, pw = _as_pair(module.padding)
            padding = (ph, ph, pw, pw)
            dilation = _as_pair(getattr(module, "dilation", 1))[0]
        return LayerRecord(POOL, layer_id, in_size, out_size, kernel=kernel, stride=stride,
                           padding=padding, dilation=dilation, bias_used=False, pool_type=pool_type)
    if isinstance(module, nn.Linear):
        return LayerRecord(FC, layer_id, in_size, out_size)
    return LayerRecord(OTHER, layer_id, in_size, out_size, name=type(module).__name__, value=_value_of(module))


def _conv_padding(module: nn.Conv2d, in_size, out_size) -> tuple[int, int]:
    if isinstance(module.padding, str):  # "same" / "valid": recover the total from the sizes
        pads = []
        for axis in range(2):
            k, s, d = module.kernel_size[axis], module.stride[axis], module.dilation[axis]
            total = max((out_size[axis] - 1) * s + d * (k - 1) + 1 - in_size[axis], 0)
            pads.append(total // 2)
        return pads[0], pads[1]
    return _as_pair(module.padding)


# -- tracing --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TracedLayer:
    """A layer as the tracer saw it: its record, the Table-2 block it belongs to, which block
    (0-based, in execution order) and the module path (``blocks.3.conv1``)."""

    record: LayerRecord
    block: str
    block_index: int
    path: str

    @property
    def text(self) -> str:
        return self.record.to_text()

    @property
    def type(self) -> str:
        return layer_type(self.record)


def _module_device(module: nn.Module) -> torch.device:
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def trace(module: nn.Module, input_shape: Sequence[int]) -> list[TracedLayer]:
    """Run ``module`` once on zeros of ``input_shape`` (``(C, H, W)`` or ``(N, C, H, W)``) and
    return its leaf layers in execution order. A module called twice gives two layers.

    Each layer is labelled with the outermost registered block class above it (Table 2), or,
    outside any block, with its own kind (Conv, BatchNorm, ReLU, MaxPool, AvgPool, Other).
    Works on the ``meta`` device too, which traces large networks without computing.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1,) + shape
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) or (N, C, H, W) with positive sizes, got {tuple(input_shape)}")
    names = {m: n for n, m in module.named_modules()}
    owner: dict[str, str] = {}  # leaf path -> outermost block path
    blocks_by_path = {n: block_label_of(m) for n, m in module.named_modules() if block_label_of(m)}
    for name in names.values():
        for block_path in sorted(blocks_by_path, key=len):
            if block_path == "" or name == block_path or name.startswith(block_path + "."):
                owner[name] = block_path
                break

    layers: list[TracedLayer] = []
    block_index: dict[str, int] = {}
    calls: dict[str, int] = {}

    def hook(mod, args, output):
        if not args or not isinstance(args[0], torch.Tensor) or not isinstance(output, torch.Tensor):
            return
        path = names[mod]
        calls[path] = calls.get(path, 0) + 1
        if path in owner:
            key, label = owner[path], blocks_by_path[owner[path]]
        else:
            key, label = f"{path}#{calls[path]}", _leaf_label(mod)
        if key not in block_index:
            block_index[key] = len(block_index)
        record = record_from_module(mod, len(layers) + 1, args[0].shape, output.shape)
        layers.append(TracedLayer(record, label, block_index[key], path))

    handles = [
        m.register_forward_hook(hook)
        for m in module.modules()
        if not any(True for _ in m.children()) and not isinstance(m, _SKIPPED_LEAVES)
    ]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(torch.zeros(shape, device=_module_device(module)))
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)
    return layers


def _shape_only(x):
    return x


def trace_factory(factory: Callable[[], nn.Module], input_shape: Sequence[int]) -> list[TracedLayer]:
    """Build ``factory()`` with its weights on the ``meta`` device and trace it: shapes only, no
    memory for weights and no arithmetic, so the largest zoo networks trace cheaply.

    Every BatchNorm2d of the throw-away copy forwards its input unchanged: batch norm keeps
    the shape, so the trace is identical, but on ``meta`` tensors PyTorch runs batch norm
    through Python decompositions that take most of the tracing time."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        module = factory()
    for sub in module.modules():
        if isinstance(sub, nn.BatchNorm2d):
            sub.forward = _shape_only
    return trace(module.to("meta"), input_shape)
