"""A genome's network: each block becomes a :class:`GenomeBlock` built from torchvision's own
block classes (with a 1x1 adapter where a kind cannot change width or stride by itself), and
the genome a :class:`GenomeNetwork` (blocks, then pooling and a linear classifier). The rules
(channel closure, strides, initialisation) are described in :mod:`gptnas_hf.search_space`."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torchvision.models.googlenet import BasicConv2d, Inception
from torchvision.models.regnet import ResBottleneckBlock, SimpleStemIN
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.models.shufflenetv2 import InvertedResidual
from torchvision.ops import Conv2dNormActivation, SqueezeExcitation

from .genome_schema import InvalidGenomeError, _is_int, _normalize_block, validate_genome


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
