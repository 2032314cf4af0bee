import pytest
import torch
from torch import nn

from gptnas_hf.encoding import BLOCK_LABELS, LayerRecord, layer_type, trace

CONV_TEXT = "id:1;in_size:32-32-3;out_size:32-32-3;kernel:1-1;stride:1-1;padding:0-0-0-0;dilation:1;groups:1;bias_used:No"
POOL_TEXT = "id:2;type:Max;in_size:32-32-3;out_size:16-16-3;kernel:2-2;stride:2-2;padding:1-0-1-0;dilation:1;bias_used:No"


def test_paper_conv_example_round_trips():
    record = LayerRecord.from_text(CONV_TEXT)
    assert record.kind == "conv"
    assert record.in_size == (32, 32, 3) and record.kernel == (1, 1) and record.groups == 1
    assert record.bias_used is False
    assert record.to_text() == CONV_TEXT


def test_paper_pool_example_round_trips_with_its_spaces():
    # the paper prints this one with a space after some semicolons
    printed = "id:2;type:Max;in_size:32-32-3; out_size:16-16-3; kernel:2-2; stride:2-2; padding:1-0-1-0; dilation:1; bias_used:No"
    record = LayerRecord.from_text(printed)
    assert record.kind == "pool" and record.pool_type == "Max"
    assert record.padding == (1, 0, 1, 0)
    assert record.to_text() == POOL_TEXT
    assert LayerRecord.from_text(POOL_TEXT).to_text() == POOL_TEXT


@pytest.mark.parametrize(
    "text",
    [
        "id:3;in_size:1-1-512;out_size:1-1-10",
        "id:4;name:ReLU;in_size:16-16-8;out_size:16-16-8;value:None",
        "id:5;name:Dropout;in_size:1-1-512;out_size:1-1-512;value:0.2",
    ],
)
def test_fc_and_other_round_trip(text):
    assert LayerRecord.from_text(text).to_text() == text


@pytest.mark.parametrize(
    "text, field",
    [
        ("id:1;in_size:32-32;out_size:32-32-3;kernel:1-1;stride:1-1;padding:0-0-0-0;dilation:1;groups:1;bias_used:No", "in_size"),
        ("id:1;in_size:32-32-3;out_size:32-32-3;kernel:1-1;stride:1-1;padding:0-0-0-0;dilation:1;groups:1;bias_used:Maybe", "bias_used"),
        ("id:x;in_size:1-1-512;out_size:1-1-10", "id"),
        ("id:2;type:Min;in_size:32-32-3;out_size:16-16-3;kernel:2-2;stride:2-2;padding:1-0-1-0;dilation:1;bias_used:No", "type"),
        ("id:1;in_size:32-32-3;out_size:32-32-3;kernel:1-1;stride:1-1;dilation:1;groups:1;bias_used:No", "padding"),
        ("id:1;in_size:1-1-5;out_size:1-1-10;groups:1", "groups"),
        ("id:1;in_size 1-1-5;out_size:1-1-10", "in_size 1-1-5"),
        ("id:1;id:2;in_size:1-1-5;out_size:1-1-10", "id"),
    ],
)
def test_malformed_text_names_the_field_and_the_text(text, field):
    with pytest.raises(ValueError) as info:
        LayerRecord.from_text(text)
    assert field in str(info.value)
    assert text in str(info.value)


def test_empty_text_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        LayerRecord.from_text("  ")


def test_layer_type_drops_id_and_spatial_sizes():
    a = LayerRecord.from_text(CONV_TEXT)
    b = LayerRecord.from_text(CONV_TEXT.replace("id:1", "id:9").replace("32-32-3", "8-8-3"))
    assert layer_type(a) == layer_type(b) == "conv_k1x1_s1_p0_d1_g1_nobias_x1"
    assert layer_type(LayerRecord.from_text(POOL_TEXT)) == "pool_max_k2x2_s2_p1-0-1-0"


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU()
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.act(self.bn(self.conv(x)))
        x = self.act(self.dw(x))  # the same ReLU twice: two layers
        return self.fc(torch.flatten(self.pool(x), 1))


def test_trace_lists_leaf_calls_in_order_with_sizes():
    layers = trace(_Tiny(), (3, 32, 32))
    assert [layer.path for layer in layers] == ["conv", "bn", "act", "dw", "act", "pool", "fc"]
    assert [layer.record.id for layer in layers] == list(range(1, 8))
    assert layers[0].text == "id:1;in_size:32-32-3;out_size:16-16-8;kernel:3-3;stride:2-2;padding:1-1-1-1;dilation:1;groups:1;bias_used:No"
    assert layers[3].type == "conv_k3x3_s1_p1_d1_dw_bias_x1"
    assert layers[0].type == "conv_k3x3_s2_p1_d1_g1_nobias_x2" and layers[6].type == "fc_x1"
    assert layers[5].type == "pool_avg_global"
    assert layers[6].text == "id:7;in_size:1-1-8;out_size:1-1-10"
    assert [layer.block for layer in layers] == ["Conv", "BatchNorm", "ReLU", "Conv", "ReLU", "AvgPool", "Other"]
    for layer in layers:
        assert LayerRecord.from_text(layer.text) == layer.record


def test_trace_labels_layers_with_the_outermost_block():
    from torchvision.models.regnet import ResBottleneckBlock

    block = ResBottleneckBlock(16, 32, stride=2, norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU,
                               group_width=8, bottleneck_multiplier=1.0, se_ratio=0.25)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), block)
    layers = trace(net, (1, 3, 16, 16))
    assert layers[0].block == "Conv"
    # the block holds Conv2dNormActivation and SqueezeExcitation, yet all its layers are its own
    assert {layer.block for layer in layers[1:]} == {"ResBottleneckBlock"}
    assert {layer.block_index for layer in layers[1:]} == {1}
    assert set(BLOCK_LABELS) >= {layer.block for layer in layers}


def test_trace_rejects_a_bad_shape():
    with pytest.raises(ValueError, match="input_shape"):
        trace(_Tiny(), (32, 32))


def test_trace_restores_training_mode():
    net = _Tiny().train()
    trace(net, (3, 8, 8))
    assert net.training
