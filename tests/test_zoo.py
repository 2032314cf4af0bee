import pytest

from gptnas_hf.corpora.zoo import ZOO_FAMILIES, ZOO_NETWORKS, build_torchvision, trace_torchvision, zoo_corpus
from gptnas_hf.encoding import BLOCK_LABELS, OTHER_LABEL, LayerRecord

# Table 2 of the paper: the blocks each family contributes
TABLE_2 = {
    "efficientnet": {"ConvNormActivation", "SqueezeExcitation"},
    "googlenet": {"Inception"},
    "regnet": {"ResBottleneckBlock", "Stem"},
    "resnet": {"Bottleneck", "BasicBlock"},
    "resnext": {"Bottleneck"},
    "shufflenet": {"InvertedResidual"},
    "wide_resnet": {"Bottleneck"},
}


def test_the_zoo_is_table_2():
    assert len(ZOO_NETWORKS) == 36
    assert {f: len(v) for f, v in ZOO_FAMILIES.items()} == {
        "efficientnet": 8, "googlenet": 1, "regnet": 14, "resnet": 5, "resnext": 2, "shufflenet": 4, "wide_resnet": 2,
    }


@pytest.fixture(scope="module")
def zoo():
    return zoo_corpus(progress=False)


def test_every_zoo_network_traces(zoo):
    assert zoo.num_rows == 36 and zoo["name"] == list(ZOO_NETWORKS)
    seen = {family: set() for family in TABLE_2}
    for row in zoo:
        seen[row["family"]] |= set(row["blocks"])
        assert len(row["layers"]) == len(row["types"]) == len(row["blocks"]) > 40
        assert LayerRecord.from_text(row["layers"][0]).kind == "conv"
        assert LayerRecord.from_text(row["layers"][-1]).kind == "fc"
        assert set(row["blocks"]) <= set(BLOCK_LABELS) | {OTHER_LABEL}
    for family, blocks in TABLE_2.items():
        assert blocks <= seen[family], family


def test_zoo_texts_round_trip(zoo):
    for texts in zoo["layers"][:6]:
        for text in texts:
            assert LayerRecord.from_text(text).to_text() == text


def test_traced_shapes_match_a_real_forward():
    import torch

    net = build_torchvision("resnet18").eval()
    layers = trace_torchvision("resnet18", (3, 64, 64))
    with torch.no_grad():
        logits = net(torch.zeros(1, 3, 64, 64))
    assert layers[-1].record.out_size == (1, 1, logits.shape[1])


def test_unknown_torchvision_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown torchvision network 'resnet19'"):
        build_torchvision("resnet19")
