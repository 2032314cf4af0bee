"""The block search space: a *genome* (a JSON list of blocks) and the ``nn.Module`` it builds.

Genome format
-------------
A genome is a JSON-serialisable list of flat dicts, one per block, executed in order and
followed by a classifier head (``AdaptiveAvgPool2d(1) -> Flatten -> Linear``)::

    [{"kind": "Stem", "width": 32, "stride": 2},
     {"kind": "BasicBlock", "width": 32, "stride": 1},
     {"kind": "MaxPool", "width": 32, "stride": 2},
     {"kind": "Bottleneck", "width": 128, "stride": 1, "groups": 1, "base_width": 64}]

Every block has ``kind`` (a registered kind: the paper's Table-2 block labels,
:data:`BLOCK_LABELS`, or one added with :func:`register_kind`), ``width`` (its output channels,
an int in 1..4096) and ``stride`` (1 or 2), plus the parameters of its kind (:data:`KIND_PARAMS`;
a missing one takes its default, see :func:`normalize`; any other key is an error).

Kinds
-----
Each kind is one :class:`BlockKind` (:mod:`gptnas_hf.kind_registry`): its parameters with their
defaults, the widths it accepts, the module it is built from and its adapters, how the sampler
draws it and which settings the reconstruction tries. The Table-2 kinds are defined in
:mod:`gptnas_hf.builtin_kinds` (each kind's ``doc`` says what it is built from and what its
parameters mean): ConvNormActivation, SqueezeExcitation, Inception, AvgPool,
ResBottleneckBlock, Stem, Bottleneck, BasicBlock, InvertedResidual, MaxPool, BatchNorm, ReLU
and Conv, built from torchvision's own block classes (``Conv2dNormActivation``,
``SqueezeExcitation``, GoogLeNet's ``Inception``, RegNet's ``ResBottleneckBlock`` and
``SimpleStemIN``, ResNet's ``Bottleneck`` and ``BasicBlock``, ShuffleNetV2's
``InvertedResidual``) or single torch layers.

Closure rule
------------
Every block of every kind, whatever its input channels, outputs exactly ``width`` channels at
the given stride, so any list of valid blocks builds (crossover, mutation and reconstruction
never produce an unbuildable network; validity of a block never depends on its neighbours).
Kinds that cannot change channels or stride natively get an *adapter*, a 1x1 ``Conv2d`` (no
bias) + ``BatchNorm2d`` with the needed stride, inside the same :class:`GenomeBlock` (before the
op, or after a pool, which does the stride itself; each kind's ``doc`` says where).

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
                             candidate_blocks, changes_width, make_block, sample_genome)
from .genome_schema import (STRIDE_NATIVE_KINDS, WIDTH_PRESERVING_KINDS, Genome, InvalidGenomeError, normalize,
                            validate_genome)
from .kind_registry import (BLOCK_KINDS, KIND_PARAMS, MAX_WIDTH, BlockKind, KindParam, block_kind, kind_names,
                            register_kind)

__all__ = [
    "BLOCK_LABELS",
    "BLOCK_KINDS",
    "BlockKind",
    "register_kind",
    "block_kind",
    "kind_names",
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
    "candidate_blocks",
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
