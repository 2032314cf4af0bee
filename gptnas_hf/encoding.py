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
from typing import Sequence

import torch
from torch import nn

__all__ = [
    "LayerRecord",
    "TracedLayer",
    "BLOCK_LABELS",
    "OTHER_LABEL",
    "layer_type",
    "width_bucket",
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
WIDTH_BUCKETS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)


def width_bucket(channels: int) -> int:
    """The smallest bucket edge that holds ``channels``: two buckets per octave (``2^n`` and
    ``1.5 * 2^n``) from 16 to 2048, wider maps to 2048. Widths live on a log scale."""
    for edge in WIDTH_BUCKETS:
        if channels <= edge:
            return edge
    return WIDTH_BUCKETS[-1]


def _groups_relation(record: LayerRecord) -> str:
    if record.groups == 1:
        return "g1"
    if record.groups == record.in_channels and record.groups == record.out_channels:
        return "dw"
    return "grouped"


def layer_type(record: LayerRecord) -> str:
    """The record without ``id`` and spatial sizes: what becomes one token.

    * conv:  ``conv_k{kh}x{kw}_s{s}_p{pad}_d{d}_{g1|dw|grouped}_{bias|nobias}_w{bucket}``
    * pool:  ``pool_{max|avg}_k{kh}x{kw}_s{s}_p{pad}`` or ``pool_{max|avg}_global`` when the output is 1x1
    * fc:    ``fc_w{bucket}``
    * other: ``{name}`` (the layer class: ``BatchNorm2d``, ``ReLU``, ``SiLU``, ...)

    Widths are bucketed with :func:`width_bucket`; stride and padding are written once when
    they are symmetric (``s2``), else in full (``s2x1``, ``p1-0-1-0``).
    """
    if record.kind == CONV:
        return (
            f"conv_k{record.kernel[0]}x{record.kernel[1]}_s{_pair(record.stride)}_p{_pad(record.padding)}"
            f"_d{record.dilation}_{_groups_relation(record)}_{'bias' if record.bias_used else 'nobias'}"
            f"_w{width_bucket(record.out_channels)}"
        )
    if record.kind == POOL:
        head = f"pool_{record.pool_type.lower()}"
        if record.out_size[:2] == (1, 1) and record.in_size[:2] != (1, 1):
            return f"{head}_global"
        return f"{head}_k{record.kernel[0]}x{record.kernel[1]}_s{_pair(record.stride)}_p{_pad(record.padding)}"
    if record.kind == FC:
        return f"fc_w{width_bucket(record.out_channels)}"
    return record.name


def _pair(values: Sequence[int]) -> str:
    return str(values[0]) if values[0] == values[1] else f"{values[0]}x{values[1]}"


def _pad(values: Sequence[int]) -> str:
    return str(values[0]) if len(set(values)) == 1 else "-".join(map(str, values))


# -- block labels (Table 2) ----------------------------------------------------------------
BLOCK_LABELS = (
    "ConvNormActivation",
    "SqueezeExcitation",
    "Inception",
    "AvgPool",
    "ResBottleneckBlock",
    "Stem",
    "Bottleneck",
    "BasicBlock",
    "InvertedResidual",
    "MaxPool",
    "BatchNorm",
    "ReLU",
    "Conv",
)
OTHER_LABEL = "Other"

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
