"""Tests for gptnas_hf.search_space: genome -> nn.Module, closure rule, tracing, JSON, sampler."""

import json
import pickle
import random

import pytest
import torch
from torch import nn

from gptnas_hf.encoding import BLOCK_LABELS, trace
from gptnas_hf.search_space import (
    KIND_PARAMS,
    Genome,
    GenomeBlock,
    GenomeNetwork,
    InvalidGenomeError,
    build_block,
    build_network,
    count_parameters,
    make_block,
    normalize,
    sample_genome,
    validate_genome,
)



SMALL_WIDTHS = (8, 16, 32)

EXAMPLE = [
    {"kind": "Stem", "width": 32, "stride": 2},
    {"kind": "BasicBlock", "width": 32, "stride": 1},
    {"kind": "MaxPool", "width": 32, "stride": 2},
    {"kind": "Bottleneck", "width": 128, "stride": 1, "groups": 1, "base_width": 64},
    {"kind": "SqueezeExcitation", "width": 128, "stride": 1},
    {"kind": "Inception", "width": 64, "stride": 1},
    {"kind": "ResBottleneckBlock", "width": 64, "stride": 2, "group_width": 8, "se_ratio": 0.25},
    {"kind": "InvertedResidual", "width": 64, "stride": 1},
    {"kind": "ConvNormActivation", "width": 96, "stride": 1, "kernel": 5, "activation": "SiLU"},
    {"kind": "AvgPool", "width": 96, "stride": 2},
    {"kind": "BatchNorm", "width": 96, "stride": 1},
    {"kind": "ReLU", "width": 96, "stride": 1},
    {"kind": "Conv", "width": 48, "stride": 1, "kernel": 1, "bias": True},
]


def _logits(net, channels, size, batch=1):
    net.eval()
    with torch.no_grad():
        return net(torch.randn(batch, channels, size, size))


# -- building and running --------------------------------------------------------------------
def test_random_genomes_build_and_run_with_the_shapes_they_declare():
    """Properties over 48 genomes (every kind appears, widths and strides vary): each block
    outputs the width it declares at the size its strides give; the logits are finite; the
    parameter count is the blocks' plus the classifier's."""
    seen = set()
    for seed in range(48):
        genome = sample_genome(seed, widths=SMALL_WIDTHS)
        seen.update(genome.kinds)
        channels, size = ((3, 32), (1, 28))[seed % 2]
        net = build_network(genome, in_channels=channels, num_classes=10).eval()
        shapes = []
        hooks = [block.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:]))) for block in net.blocks]
        out = _logits(net, channels, size, batch=1 + seed % 2)
        for hook in hooks:
            hook.remove()
        assert out.shape == (1 + seed % 2, 10) and torch.isfinite(out).all(), (seed, genome.to_json())
        expected, side = [], size
        for block in genome:
            side = (side - 1) // block["stride"] + 1
            expected.append((block["width"], side, side))
        assert shapes == expected, (seed, genome.to_json())
        head = count_parameters(net.head)
        assert count_parameters(net) == head + sum(count_parameters(b) for b in net.blocks)
    assert seen == set(KIND_PARAMS), set(KIND_PARAMS) - seen


def test_example_genome_runs_at_every_size():
    net = build_network(EXAMPLE, in_channels=3, num_classes=100)
    for size in (28, 32, 224):
        assert _logits(net, 3, size).shape == (1, 100)
    net1 = build_network(EXAMPLE, in_channels=1, num_classes=7)
    assert _logits(net1, 1, 28, batch=2).shape == (2, 7)


def test_many_downsamples_never_below_one_pixel():
    kinds = ["Stem", "Conv", "ConvNormActivation", "BasicBlock", "Bottleneck", "ResBottleneckBlock",
             "InvertedResidual", "MaxPool", "AvgPool", "SqueezeExcitation", "Inception", "BatchNorm", "ReLU"]
    genome = [make_block(kind, 16, 2) for kind in kinds]  # 13 stride-2 blocks, every kind
    net = build_network(genome, in_channels=1)
    shapes = []
    hooks = [b.register_forward_hook(lambda m, a, o: shapes.append(tuple(o.shape))) for b in net.blocks]
    assert _logits(net, 1, 28).shape == (1, 10)
    for h in hooks:
        h.remove()
    assert [s[2] for s in shapes[:6]] == [14, 7, 4, 2, 1, 1]
    assert all(s[2:] == (1, 1) for s in shapes[4:])
    assert _logits(build_network(genome), 3, 224).shape == (1, 10)
    assert _logits(build_network(genome), 3, 1).shape == (1, 10)


def test_network_structure_and_training_step():
    net = build_network(EXAMPLE, in_channels=3, num_classes=10)
    assert isinstance(net, GenomeNetwork) and isinstance(net.blocks, nn.ModuleList)
    assert len(net.blocks) == len(EXAMPLE) and net.genome == EXAMPLE
    assert isinstance(net.head[0], nn.AdaptiveAvgPool2d) and isinstance(net.head[1], nn.Flatten)
    assert isinstance(net.head[2], nn.Linear) and net.head[2].in_features == 48
    for i, block in enumerate(net.blocks):
        assert isinstance(block, GenomeBlock)
        assert block.gptnas_block_label == EXAMPLE[i]["kind"]
    # torchvision's own classes inside
    from torchvision.models.googlenet import BasicConv2d, Inception
    from torchvision.models.regnet import ResBottleneckBlock, SimpleStemIN
    from torchvision.models.resnet import BasicBlock, Bottleneck
    from torchvision.models.shufflenetv2 import InvertedResidual
    from torchvision.ops import Conv2dNormActivation, SqueezeExcitation

    expected = [SimpleStemIN, BasicBlock, nn.MaxPool2d, Bottleneck, SqueezeExcitation, Inception,
                ResBottleneckBlock, InvertedResidual, Conv2dNormActivation, nn.AvgPool2d, nn.BatchNorm2d,
                nn.ReLU, nn.Conv2d]
    assert [type(b.op) for b in net.blocks] == expected
    assert isinstance(net.blocks[5].op.branch1, BasicConv2d)
    assert net.blocks[3].op.downsample is not None  # 32 -> 128 channels
    assert net.blocks[1].op.downsample is None  # 32 -> 32, stride 1
    assert net.num_adapters == 0
    assert count_parameters(net) == sum(p.numel() for p in net.parameters()) > 0
    # one SGD step in training mode (catches in-place autograd errors)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    loss = nn.functional.cross_entropy(net(torch.randn(2, 3, 32, 32)), torch.tensor([1, 2]))
    loss.backward()
    opt.step()
    for seed in range(20):
        net = build_network(sample_genome(seed, widths=SMALL_WIDTHS)).train()
        net(torch.randn(2, 3, 32, 32)).sum().backward()


def test_first_block_takes_in_channels_and_adapters():
    for channels in (1, 3, 5):
        for kind in BLOCK_LABELS:
            block = build_block(make_block(kind, 16, 1), channels)
            assert block(torch.randn(2, channels, 8, 8)).shape == (2, 16, 8, 8)
    assert build_block({"kind": "ReLU", "width": 16, "stride": 1}, 16).has_adapter is False
    assert build_block({"kind": "ReLU", "width": 16, "stride": 1}, 8).has_adapter is True
    assert build_block({"kind": "MaxPool", "width": 16, "stride": 2}, 16).has_adapter is False
    assert build_block({"kind": "Inception", "width": 16, "stride": 2}, 16).has_adapter is True
    assert build_block({"kind": "InvertedResidual", "width": 16, "stride": 2}, 8).has_adapter is False
    # RegNet's SE with a 1-channel input still gets one squeeze channel
    block = build_block({"kind": "ResBottleneckBlock", "width": 8, "stride": 1, "se_ratio": 0.25}, 1)
    assert block(torch.randn(2, 1, 8, 8)).shape == (2, 8, 8, 8)


def test_sampled_genomes_rarely_need_adapters():
    adapters = sum(build_network(sample_genome(s, widths=SMALL_WIDTHS)).num_adapters for s in range(100))
    assert adapters == 0


# -- tracing --------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [None, 0, 1, 2, 3])
def test_trace_labels_follow_genome(seed):
    genome = Genome(EXAMPLE) if seed is None else sample_genome(seed, widths=SMALL_WIDTHS)
    net = build_network(genome)
    layers = trace(net, (3, 32, 32))
    seen = set()
    for layer in layers:
        if layer.path.startswith("blocks."):
            index = int(layer.path.split(".")[1])
            assert layer.block == genome[index]["kind"], (layer.path, layer.block)
            seen.add(index)
    assert seen == set(range(len(genome)))
    # blocks are numbered by the tracer in genome order, the head comes last
    block_indices = [layer.block_index for layer in layers if layer.path.startswith("blocks.")]
    assert block_indices == sorted(block_indices)
    assert layers[-1].path == "head.2" and layers[-1].record.kind == "fc"


def test_trace_labels_adapters_with_block_kind():
    genome = [{"kind": "SqueezeExcitation", "width": 16, "stride": 2}, {"kind": "MaxPool", "width": 32, "stride": 2}]
    layers = trace(build_network(genome), (3, 32, 32))
    assert {layer.block for layer in layers if layer.path.startswith("blocks.0.")} == {"SqueezeExcitation"}
    assert {layer.block for layer in layers if layer.path.startswith("blocks.1.")} == {"MaxPool"}
    assert any(layer.path == "blocks.1.adapter.0" for layer in layers)


# -- JSON, hashing, normalize ---------------------------------------------------------------
def test_json_round_trip_and_hash():
    genome = Genome(EXAMPLE)
    text = genome.to_json()
    again = Genome.from_json(text)
    assert again == genome and again.hash() == genome.hash() and hash(again) == hash(genome)
    assert Genome.from_json(json.loads(text)) == genome
    assert Genome.from_json(genome) is genome
    assert Genome.from_json(genome.to_json(indent=2)) == genome
    assert json.loads(text) == genome.to_list()
    assert pickle.loads(pickle.dumps(genome)) == genome
    assert len(genome) == len(EXAMPLE) and genome[0]["kind"] == "Stem"
    assert [b["kind"] for b in genome] == [b["kind"] for b in EXAMPLE]
    # known value: the hash is sha1 of the sorted-keys canonical JSON, stable across runs
    import hashlib
    canonical = json.dumps(genome.to_list(), sort_keys=True, separators=(",", ":"))
    assert genome.hash() == hashlib.sha1(canonical.encode()).hexdigest()
    assert Genome([{"kind": "ReLU", "width": 8, "stride": 1}]).hash() == hashlib.sha1(
        b'[{"kind":"ReLU","stride":1,"width":8}]').hexdigest()
    # key order in the input does not matter
    shuffled = [dict(reversed(list(b.items()))) for b in EXAMPLE]
    assert Genome(shuffled).hash() == genome.hash()
    # different genomes differ
    other = genome.to_list()
    other[1]["width"] = 64
    assert Genome(other) != genome and Genome(other).hash() != genome.hash()
    # replacing a block gives a new genome (what reconstruction does)
    replaced = genome.with_block(4, make_block("Conv", 128, 1))
    assert replaced[4]["kind"] == "Conv" and genome[4]["kind"] == "SqueezeExcitation"
    with pytest.raises(InvalidGenomeError, match="block 4"):
        genome.with_block(4, {"kind": "Conv", "width": 128, "stride": 5})
    # immutability: edits of returned dicts do not change the genome
    genome[0]["width"] = 999
    genome.to_list()[0]["width"] = 999
    assert genome[0]["width"] == 32 and genome == Genome(text)


def test_normalize_fills_defaults():
    minimal = [{"kind": k, "width": 32, "stride": 1} for k in BLOCK_LABELS]
    full = normalize(minimal)
    for block in full:
        assert set(block) == {"kind", "width", "stride", *KIND_PARAMS[block["kind"]]}
        assert list(block)[:3] == ["kind", "width", "stride"]
    by_kind = {b["kind"]: b for b in full}
    assert by_kind["Bottleneck"]["groups"] == 1 and by_kind["Bottleneck"]["base_width"] == 64
    assert by_kind["Conv"] == {"kind": "Conv", "width": 32, "stride": 1, "bias": False, "kernel": 3}
    assert by_kind["ConvNormActivation"]["activation"] == "ReLU"
    assert by_kind["ResBottleneckBlock"]["group_width"] == 8 and by_kind["ResBottleneckBlock"]["se_ratio"] == 0.0
    assert by_kind["SqueezeExcitation"]["squeeze_factor"] == 4
    assert normalize(full) == full  # idempotent
    assert Genome(minimal) == Genome(full) and Genome(minimal).hash() == Genome(full).hash()
    # canonical value types
    a = normalize([{"kind": "ResBottleneckBlock", "width": 24, "stride": 1, "bottleneck_multiplier": 1, "se_ratio": None}])
    b = normalize([{"kind": "ResBottleneckBlock", "width": 24, "stride": 1, "bottleneck_multiplier": 1.0, "se_ratio": 0}])
    assert a == b and isinstance(a[0]["bottleneck_multiplier"], float) and a[0]["group_width"] == 8
    assert normalize([{"kind": "ResBottleneckBlock", "width": 20, "stride": 1}])[0]["group_width"] == 4


# -- invalid genomes ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "block, words",
    [
        ({"kind": "Nope", "width": 16, "stride": 1}, ["unknown kind", "'Nope'", "ConvNormActivation", "Conv"]),
        ({"width": 16, "stride": 1}, ["missing 'kind'"]),
        ({"kind": ["Conv"], "width": 16, "stride": 1}, ["unknown kind"]),
        ({"kind": "Conv", "width": 0, "stride": 1}, ["(Conv)", "width"]),
        ({"kind": "Conv", "width": 16.0, "stride": 1}, ["(Conv)", "width"]),
        ({"kind": "Conv", "width": True, "stride": 1}, ["(Conv)", "width"]),
        ({"kind": "Conv", "width": 5000, "stride": 1}, ["(Conv)", "width", "4096"]),
        ({"kind": "Conv", "stride": 1}, ["(Conv)", "missing 'width'"]),
        ({"kind": "ReLU", "width": 16, "stride": 3}, ["(ReLU)", "stride must be 1 or 2"]),
        ({"kind": "ReLU", "width": 16}, ["(ReLU)", "missing 'stride'"]),
        ({"kind": "Bottleneck", "width": 30, "stride": 1}, ["(Bottleneck)", "multiple of 4"]),
        ({"kind": "Bottleneck", "width": 16, "stride": 1, "groups": 32, "base_width": 4}, ["(Bottleneck)", "inner width"]),
        ({"kind": "Bottleneck", "width": 16, "stride": 1, "groups": 0}, ["(Bottleneck)", "groups"]),
        ({"kind": "InvertedResidual", "width": 17, "stride": 2}, ["(InvertedResidual)", "odd"]),
        ({"kind": "ResBottleneckBlock", "width": 24, "stride": 1, "group_width": 16}, ["(ResBottleneckBlock)", "group_width 16 does not divide"]),
        ({"kind": "ResBottleneckBlock", "width": 24, "stride": 1, "se_ratio": 2}, ["(ResBottleneckBlock)", "se_ratio"]),
        ({"kind": "ConvNormActivation", "width": 16, "stride": 1, "kernel": 7}, ["(ConvNormActivation)", "kernel 7", "[1, 3, 5]"]),
        ({"kind": "ConvNormActivation", "width": 16, "stride": 1, "activation": "GELU"}, ["(ConvNormActivation)", "activation"]),
        ({"kind": "Conv", "width": 16, "stride": 1, "bias": "yes"}, ["(Conv)", "bias"]),
        ({"kind": "MaxPool", "width": 16, "stride": 1, "kernel": 3}, ["(MaxPool)", "unknown key 'kernel'"]),
        ({"kind": "Inception", "width": 3, "stride": 1}, ["(Inception)", "width 3"]),
        (["Conv", 16, 1], ["expected a dict"]),
    ],
)
def test_invalid_blocks_name_index_and_kind(block, words):
    genome = [{"kind": "Stem", "width": 16, "stride": 2}, {"kind": "ReLU", "width": 16, "stride": 1}, block]
    with pytest.raises(InvalidGenomeError) as info:
        validate_genome(genome, in_channels=3)
    message = str(info.value)
    assert "block 2" in message and info.value.index == 2
    for word in words:
        assert word in message, (word, message)
    with pytest.raises(InvalidGenomeError):
        build_network(genome)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("genome, words", [
    ([], ["empty genome"]),
    ({"kind": "Conv"}, ["expected a list"]),
    (42, ["expected a list"]),
    ("not json [", ["not valid JSON"]),
])
def test_invalid_genomes_as_a_whole(genome, words):
    with pytest.raises(InvalidGenomeError) as info:
        Genome.from_json(genome)
    for word in words:
        assert word in str(info.value)
    assert info.value.index is None


def test_validate_genome_bounds_and_in_channels():
    genome = [make_block("Conv", 8, 1)] * 3
    assert validate_genome(genome, 1) == Genome(genome)
    with pytest.raises(InvalidGenomeError, match="fewer than min_blocks=10"):
        validate_genome(genome, 3, min_blocks=10)
    with pytest.raises(InvalidGenomeError, match="more than max_blocks=2"):
        validate_genome(genome, 3, max_blocks=2)
    with pytest.raises(ValueError):
        validate_genome(genome, 0)


# -- make_block -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", BLOCK_LABELS)
def test_make_block_every_kind_keeps_width_and_stride(kind):
    rng = random.Random(kind)
    for width in (16, 24, 32, 48, 64, 96, 128, 256):
        for stride in (1, 2):
            for source in (None, rng):
                block = make_block(kind, width, stride, source)
                assert block["kind"] == kind and block["width"] == width and block["stride"] == stride
                assert normalize([block]) == [block]
                in_channels = rng.choice((3, width // 2, width, width * 2))
                module = build_block(block, in_channels)
                out = module.eval()(torch.randn(1, in_channels, 8, 8))
                assert out.shape == (1, width, 8 // stride, 8 // stride), (block, in_channels)


def test_make_block_fixes_width_and_uses_hints():
    assert make_block("Bottleneck", 30, 1)["width"] == 32
    assert make_block("Bottleneck", 1, 1)["width"] == 4
    assert make_block("InvertedResidual", 17, 2)["width"] == 18
    assert make_block("Inception", 2, 1)["width"] == 4
    assert make_block("Conv", 10_000, 1)["width"] == 4096
    assert make_block("Conv", 16, 4)["stride"] == 2
    assert make_block("Conv", 16, 1, kernel=5, bias=True) == {"kind": "Conv", "width": 16, "stride": 1, "bias": True, "kernel": 5}
    assert make_block("Conv", 16, 1, kernel=7)["kernel"] == 5  # snapped
    assert make_block("MaxPool", 16, 2, kernel=3) == {"kind": "MaxPool", "width": 16, "stride": 2}  # ignored
    assert make_block("Bottleneck", 16, 1, groups=32, base_width=4)["base_width"] == 64  # invalid hint dropped
    assert make_block("ResBottleneckBlock", 24, 1, group_width=16)["group_width"] == 8
    assert make_block("ResBottleneckBlock", 24, 1, group_width=12)["group_width"] == 12
    assert make_block("ResBottleneckBlock", 32, 1, 0) == make_block("ResBottleneckBlock", 32, 1, 0)
    with pytest.raises(ValueError, match="unknown block kind"):
        make_block("Transformer", 16, 1)


# -- sampler --------------------------------------------------------------------------------
def test_sampler_determinism_and_ranges():
    assert sample_genome(7) == sample_genome(7) and sample_genome(7).hash() == sample_genome(7).hash()
    assert sample_genome(random.Random(7)) == sample_genome(7)
    assert len({sample_genome(s).hash() for s in range(50)}) == 50
    counts = {k: 0 for k in BLOCK_LABELS}
    for seed in range(200):
        genome = sample_genome(seed)
        assert isinstance(genome, Genome)
        assert 10 <= len(genome) <= 20
        assert 1 <= genome.num_downsamples <= 4
        assert set(genome.widths) <= {16, 32, 64, 128}
        for kind in genome.kinds:
            counts[kind] += 1
    assert all(counts[k] > 0 for k in BLOCK_LABELS), counts
    # widths mostly non-decreasing
    steps = [b - a for s in range(200) for a, b in zip(sample_genome(s).widths, sample_genome(s).widths[1:])]
    assert sum(d < 0 for d in steps) < 0.05 * len(steps)


def test_sampler_options():
    genome = sample_genome(3, min_blocks=3, max_blocks=3, widths=(24,), max_downsamples=0, kinds=("Conv", "ReLU"))
    assert len(genome) == 3 and genome.num_downsamples == 0
    assert set(genome.kinds) <= {"Conv", "ReLU"} and set(genome.widths) == {24}
    assert set(sample_genome(1, kinds=("MaxPool",)).kinds) == {"MaxPool"}
    with pytest.raises(ValueError):
        sample_genome(0, kinds=("Nope",))
    with pytest.raises(ValueError):
        sample_genome(0, min_blocks=5, max_blocks=4)
