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

from .block_labels import BLOCK_LABELS
from .genome_network import (GenomeBlock, GenomeNetwork, build_block, build_network, count_parameters,
                             init_module_weights)
from .genome_sampler import (DEFAULT_MAX_BLOCKS, DEFAULT_MAX_DOWNSAMPLES, DEFAULT_MIN_BLOCKS, DEFAULT_WIDTHS,
                             changes_width, make_block, sample_genome)
from .genome_schema import (KIND_PARAMS, MAX_WIDTH, STRIDE_NATIVE_KINDS, WIDTH_PRESERVING_KINDS, Genome,
                            InvalidGenomeError, KindParam, normalize, validate_genome)

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
    "init_module_weights",
    "DEFAULT_MIN_BLOCKS",
    "DEFAULT_MAX_BLOCKS",
    "DEFAULT_WIDTHS",
    "DEFAULT_MAX_DOWNSAMPLES",
]
