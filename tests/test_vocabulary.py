"""The vocabulary rule (relative widths, "other" families), the backoff to the nearest known
type, and what the shipped tokenizer reads: search-space genomes and held-out families."""

import random
from pathlib import Path

import pytest
from accelerate import init_empty_weights
from torch import nn
from transformers import AutoTokenizer

from gptnas_hf.encoding import trace_factory
from gptnas_hf.corpora.zoo import HELD_OUT_NETWORKS, ZOO_NETWORKS, build_torchvision, trace_torchvision
from gptnas_hf.encoding import (LayerRecord, canonical_other, layer_type, nearest_type, trace, type_distance,
                                width_ratio)
from gptnas_hf.search_space import build_network, sample_genome
from gptnas_hf.tokenization_gptnas import architecture_text, build_tokenizer, encode_types, unk_rate

TOKENIZER_DIR = Path(__file__).resolve().parents[1] / "tokenizer"


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))


def _conv(cin, cout, k=3, s=1, groups=1):
    return LayerRecord("conv", 1, (32, 32, cin), (32 // s, 32 // s, cout), kernel=(k, k), stride=(s, s),
                       padding=(k // 2,) * 4, dilation=1, groups=groups, bias_used=False)


def test_widths_are_written_relative_to_the_input():
    assert width_ratio(16, 16) == "x1" and width_ratio(64, 256) == "x4" and width_ratio(256, 64) == "x1/4"
    assert width_ratio(3, 64) == "x16" and width_ratio(8, 12) == "x2" and width_ratio(8, 11) == "x1"
    assert width_ratio(1, 4096) == "x64" and width_ratio(4096, 1) == "x1/64"  # clamped
    # the same conv at 8 and at 512 channels is one token; a widening conv is another
    assert layer_type(_conv(8, 8)) == layer_type(_conv(512, 512)) == "conv_k3x3_s1_p1_d1_g1_nobias_x1"
    assert layer_type(_conv(8, 16, s=2)) == "conv_k3x3_s2_p1_d1_g1_nobias_x2"
    assert layer_type(_conv(32, 32, groups=32)).endswith("_dw_nobias_x1")


def test_other_layers_are_written_by_family():
    assert canonical_other("ReLU6") == canonical_other("LeakyReLU") == "ReLU"
    assert canonical_other("Hardswish") == canonical_other("GELU") == "SiLU"
    assert canonical_other("GroupNorm") == canonical_other("LayerNorm2d") == "LayerNorm"
    assert canonical_other("StochasticDepth") == "Dropout"
    assert canonical_other("Permute") == "Permute"
    layers = trace(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU6(), nn.Hardswish(), nn.GroupNorm(2, 8)), (3, 8, 8))
    assert [l.type for l in layers][1:] == ["ReLU", "SiLU", "LayerNorm"]
    assert "name:ReLU6" in layers[1].text  # the Table-1 text keeps the real class


def test_an_adaptive_pool_to_one_pixel_is_global_even_on_a_one_pixel_map():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=8, padding=1), nn.AdaptiveAvgPool2d(1))
    assert trace(net, (3, 8, 8))[-1].type == "pool_avg_global"
    assert trace(net, (3, 64, 64))[-1].type == "pool_avg_global"


def test_backoff_keeps_stride_and_grouping_before_kernel():
    known = ["conv_k3x3_s1_p1_d1_g1_nobias_x1", "conv_k3x3_s2_p1_d1_g1_nobias_x2", "conv_k3x3_s1_p1_d1_dw_nobias_x1",
             "pool_max_k3x3_s2_p1", "pool_avg_global", "fc_x1/2", "ReLU", "BatchNorm2d"]
    assert nearest_type("conv_k7x7_s1_p3_d1_dw_bias_x1", known) == "conv_k3x3_s1_p1_d1_dw_nobias_x1"
    assert nearest_type("conv_k5x5_s2_p2_d1_g1_nobias_x2", known) == "conv_k3x3_s2_p1_d1_g1_nobias_x2"
    assert nearest_type("conv_k1x7_s1_p0-0-3-3_d1_g1_nobias_x1", known) == "conv_k3x3_s1_p1_d1_g1_nobias_x1"
    assert nearest_type("pool_avg_k3x3_s2_p1", known) == "pool_max_k3x3_s2_p1"
    assert nearest_type("pool_max_global", known) == "pool_avg_global"
    assert nearest_type("fc_x1/8", known) == "fc_x1/2"
    assert nearest_type("LayerNorm", known) == "BatchNorm2d"  # a norm backs off to a norm
    assert nearest_type("Permute", known) is None  # no relative: stays <unk>
    assert nearest_type("ReLU", known) == "ReLU"
    assert type_distance("ReLU", "conv_k3x3_s1_p1_d1_g1_nobias_x1") == float("inf")
    assert type_distance("<pad>", "ReLU") == float("inf")


def test_encode_types_backs_off_and_the_plain_tokenizer_does_not(tokenizer):
    unseen = "conv_k7x7_s1_p3_d1_dw_bias_x1"
    assert unseen not in tokenizer.get_vocab()
    plain = tokenizer(f"ReLU {unseen}", add_special_tokens=False)["input_ids"]
    assert plain[1] == tokenizer.unk_token_id
    ids = encode_types(tokenizer, ["ReLU", unseen, "Permute"])
    assert ids[0] == plain[0] and ids[1] != tokenizer.unk_token_id and ids[2] == tokenizer.unk_token_id
    assert tokenizer.convert_ids_to_tokens(ids[1]).startswith("conv_") and "_dw_" in tokenizer.convert_ids_to_tokens(ids[1])
    assert unk_rate(tokenizer, ["ReLU", unseen]) == 0.5 and unk_rate(tokenizer, ["ReLU", unseen], backoff=True) == 0.0


def test_no_unk_on_search_space_genomes_at_any_width_and_input(tokenizer):
    """Genomes at 8..2048 channels, 28..224 px, 1 or 3 channels, 10..1000 classes."""
    ladder = [8, 16, 32, 64, 128, 256, 512, 1024, 2048]
    for seed in range(16):
        rng = random.Random(seed)
        widths = sorted(rng.sample(ladder, 4))
        size, channels, classes = rng.choice([28, 32, 64, 224]), rng.choice([1, 3]), rng.choice([10, 100, 1000])
        genome = sample_genome(seed, 10, 20, widths, 4)
        layers = trace_factory(lambda: build_network(genome, in_channels=channels, num_classes=classes),
                               (channels, size, size))
        assert unk_rate(tokenizer, layers, backoff=True) == 0.0, (seed, genome)
        # the tokenizer alone too: AutoTokenizer on the architecture text, no package code
        ids = tokenizer(architecture_text(layers), add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids, (seed, genome)
        assert ids == encode_types(tokenizer, layers)


def test_at_most_five_percent_unk_on_families_outside_table_2(tokenizer):
    assert not set(HELD_OUT_NETWORKS) & set(ZOO_NETWORKS)
    unk = total = 0
    for name in ("mobilenet_v3_small", "densenet121", "squeezenet1_1", "vgg11_bn", "convnext_tiny", "inception_v3"):
        layers = trace_torchvision(name)
        unk += unk_rate(tokenizer, layers, backoff=True) * len(layers)
        total += len(layers)
    assert unk / total <= 0.05, unk / total


def test_narrow_zoo_variants_build_narrower_networks():
    def channels(model):
        return sum(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d))

    with init_empty_weights():
        for name in ("efficientnet_b0", "regnet_y_400mf", "shufflenet_v2_x0_5"):
            assert channels(build_torchvision(name, 0.25)) < channels(build_torchvision(name)) / 2
        assert build_torchvision("resnet50", 0.25).layer1[0].conv2.out_channels == 16
        assert build_torchvision("resnet50").layer1[0].conv2.out_channels == 64
    with pytest.raises(ValueError, match="BasicBlocks"):
        build_torchvision("resnet18", 0.5)
    with pytest.raises(ValueError, match="no width knob"):
        build_torchvision("googlenet", 0.5)


def test_aliases_are_read_by_the_tokenizer_itself(tmp_path):
    from gptnas_hf.training import search_space_types

    tokenizer = build_tokenizer(["conv_k3x3_s1_p1_d1_g1_nobias_x1", "ReLU"],
                                aliases={"conv_k5x5_s1_p2_d1_g1_nobias_x1": "conv_k3x3_s1_p1_d1_g1_nobias_x1"})
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    text = "conv_k5x5_s1_p2_d1_g1_nobias_x1 ReLU conv_k5x5_s1_p2_d1_g1_nobias_x1/2 conv_k5x5_s1_p2_d1_g1_nobias_x1"
    conv, relu = loaded.convert_tokens_to_ids(["conv_k3x3_s1_p1_d1_g1_nobias_x1", "ReLU"])
    # whole types only: the x1/2 type is not an alias and stays unknown
    assert loaded(text, add_special_tokens=False)["input_ids"] == [conv, relu, loaded.unk_token_id, conv]
    assert len(loaded) == 2 + 5
    with pytest.raises(ValueError, match="alias"):
        build_tokenizer(["ReLU"], aliases={"SiLU": "GELU"})
    with pytest.raises(ValueError, match="alias"):
        build_tokenizer(["ReLU"], aliases={"ReLU": "ReLU"})
    assert {"conv_k5x5_s1_p2_d1_g1_nobias_x1", "pool_avg_k3x3_s2_p1", "fc_x1/4"} <= search_space_types()
