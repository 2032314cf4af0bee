"""Tests for gptnas_hf.space_nas_bench_201: the cell string, the network (parameter range,
forward, odd sizes), the evolution operators, network_layers == trace, the registry."""

import copy
import csv
import dataclasses
import hashlib
import json
import pickle
import random
from pathlib import Path

import pytest
import torch
from torch import nn

from gptnas_hf.encoding import LayerRecord, trace
from gptnas_hf.search_space_protocol import InvalidArchitectureError, SearchSpace, create_space, space_names
from gptnas_hf.space_nas_bench_201 import (
    EDGES,
    OPS,
    Cell,
    NASBench201Cell,
    NASBench201Network,
    NASBench201Space,
    ResNetBasicblock,
    all_cells,
)

CSV_PATH = Path(__file__).resolve().parents[2] / "shared/data/nas-bench-201/cifar10.csv"

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
ALL_NONE = Cell(("none",) * 6)
ALL_SKIP = Cell(("skip_connect",) * 6)
ALL_CONV3 = Cell(("nor_conv_3x3",) * 6)
ALL_CONV1 = Cell(("nor_conv_1x1",) * 6)
POOLING = Cell(("avg_pool_3x3", "avg_pool_3x3", "nor_conv_1x1", "avg_pool_3x3", "none", "avg_pool_3x3"))
#: node 3 gets only ``none``: the cell outputs zeros although its other edges compute
DEAD_OUTPUT = Cell(("nor_conv_3x3", "avg_pool_3x3", "skip_connect", "none", "none", "none"))


@pytest.fixture(scope="module")
def space():
    return NASBench201Space()


@pytest.fixture(scope="module")
def table():
    if not CSV_PATH.is_file():
        pytest.skip(f"the NAS-Bench-201 table is not at {CSV_PATH} (shared data not checked out)")
    with CSV_PATH.open(newline="") as f:
        return [row["arch"] for row in csv.DictReader(f)]


# -- the cell string ----------------------------------------------------------------------
def test_string_round_trip_over_the_whole_table(table):
    assert len(table) == 15625
    for text in table:
        cell = Cell.from_string(text)
        assert cell.to_string() == text and str(cell) == text
        assert Cell.from_json(text) == cell and Cell.from_json(list(cell.ops)) == cell


def test_all_cells_are_exactly_the_tables_cells(table):
    cells = list(all_cells())
    assert len(cells) == len(set(cells)) == 15625
    assert {str(c) for c in cells} == set(table)
    assert list(all_cells()) == cells  # a fixed order


def test_string_form_and_edge_order():
    cell = Cell.from_string(BEST)
    assert cell.ops == ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3", "nor_conv_1x1")
    # node j's group lists edges i -> j as op~i: the edge (1, 3) is the 5th
    assert EDGES[4] == (1, 3) and cell[4] == "nor_conv_3x3"
    assert hash(cell) == hash(Cell(list(cell.ops))) and cell == Cell(list(cell.ops))
    assert repr(cell) == f"Cell({BEST!r})"
    assert pickle.loads(pickle.dumps(cell)) == cell
    with pytest.raises(dataclasses.FrozenInstanceError):
        cell.ops = ()


@pytest.mark.parametrize("text, problem", [
    ("|nor_conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'nor_conv_5x5'"),
    ("|none~0|+|none~0|conv~1|+|none~0|none~1|none~2|", "known ops: none, skip_connect, nor_conv_1x1"),
    ("|none~0|+|none~0|none~1|", "expected 3 nodes"),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|", "got 4"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 must have 2 incoming edges, got 1"),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|none~3|", "node 3 must have 3 incoming edges, got 4"),
    ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "source index ~1, expected ~0"),
    ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "position 0 of node 2"),
    ("|none~0|+|none~0|none~x|+|none~0|none~1|none~2|", "source index ~x, expected ~1"),
    ("|none|+|none~0|none~1|+|none~0|none~1|none~2|", "must be written 'op~0'"),
    ("|none~0~0|+|none~0|none~1|+|none~0|none~1|none~2|", "one '~'"),
    ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "starting and ending with '|'"),
    ("", "empty"),
    (42, "must be a str, got int"),
    (None, "must be a str, got NoneType"),
])
def test_malformed_strings_name_the_problem(text, problem):
    with pytest.raises(InvalidArchitectureError) as info:
        Cell.from_string(text)
    assert problem in str(info.value)


@pytest.mark.parametrize("value, problem", [
    (["none"] * 5, "6 edges, got 5 ops"),
    (["none"] * 5 + ["conv"], "edge 5 (2->3): unknown op 'conv'"),
    ([0, 1, 2, 3, 4, 0], "expected an op name, got int"),
    ({"ops": ["none"] * 6}, "got dict"),
    (3.5, "got float"),
    ('["none", "none"]', "6 edges, got 2"),
    ('"|none~0|"', "expected 3 nodes"),
    ("[not json", "malformed JSON"),
])
def test_malformed_json_names_the_problem(space, value, problem):
    with pytest.raises(InvalidArchitectureError) as info:
        space.load(value)
    assert problem in str(info.value)
    assert isinstance(info.value, ValueError)


def test_load_dump_hash(space):
    cell = space.load(BEST)
    assert space.load(cell) is cell
    assert space.load(json.dumps(BEST)) == cell == space.load(json.dumps(list(cell.ops))) == space.load(tuple(cell.ops))
    assert space.dump(cell) == BEST and json.loads(json.dumps(space.dump(cell))) == BEST
    assert space.hash(cell) == hashlib.sha1(BEST.encode()).hexdigest() == space.hash(BEST)
    assert space.hash(ALL_NONE) != space.hash(ALL_SKIP)
    assert space.tokens(cell) == list(cell.ops) and space.describe(cell) == BEST
    assert space.config() == {} and space.within_limits(cell) is True


# -- the network --------------------------------------------------------------------------
def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_range_and_forward(space):
    largest, smallest = space.build_network(ALL_CONV3), space.build_network(ALL_NONE)
    # NAS-Bench-201's range: 0.07 M to 1.53 M parameters with 10 classes (1,531,546 and 73,306 exactly)
    assert _count(largest) == 1_531_546
    assert _count(smallest) == 73_306
    counts = [_count(space.build_network(space.sample(random.Random(seed)))) for seed in range(3)]
    assert all(73_306 <= n <= 1_531_546 for n in counts)
    for network in (largest, smallest):
        assert network(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_network_structure(space):
    network = space.build_network(BEST, in_channels=1, num_classes=7)
    assert isinstance(network, NASBench201Network) and isinstance(network.blocks, nn.ModuleList)
    assert len(network.blocks) == 18 and isinstance(network.head, nn.Linear)
    assert network.head.in_features == 64 and network.head.out_features == 7
    kinds = [type(b).__name__ for b in network.blocks]
    assert kinds[1:6] == ["NASBench201Cell"] * 5 and kinds[6] == kinds[12] == "ResNetBasicblock"
    assert [b.channels for b in network.blocks if isinstance(b, NASBench201Cell)] == [16] * 5 + [32] * 5 + [64] * 5
    # any input size of at least 4 pixels, odd ones included, and any channel count
    for size in (4, 5, 7, 16):
        assert network(torch.randn(2, 1, size, size)).shape == (2, 7)
    assert copy.deepcopy(network).cell == network.cell
    with pytest.raises(ValueError, match="num_classes"):
        space.build_network(BEST, num_classes=0)


def test_reduction_block_is_the_reference_resnet_block():
    block = ResNetBasicblock(16, 32)
    x = torch.randn(2, 16, 8, 8)
    expected = block.conv_b(block.conv_a(x)) + block.downsample[1](nn.functional.avg_pool2d(x, 2))
    assert torch.allclose(block(x), expected)
    assert block(torch.randn(2, 16, 5, 5)).shape == (2, 32, 3, 3)


def test_cell_semantics():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 6, 6)
    assert torch.equal(NASBench201Cell(ALL_NONE, 16)(x), torch.zeros_like(x))
    assert torch.equal(NASBench201Cell(DEAD_OUTPUT, 16)(x), torch.zeros_like(x))
    # all skip: node1 = x, node2 = 2x, node3 = x + x + 2x
    assert torch.allclose(NASBench201Cell(ALL_SKIP, 16)(x), 4 * x)
    cell = NASBench201Cell(POOLING, 16).eval()
    e = cell.edges
    n1 = e[0](x)
    n2 = e[1](x) + e[2](n1)
    n3 = e[3](x) + e[5](n2)  # edge 4 (1->3) is none
    assert torch.allclose(cell(x), n3)


# -- evolution ----------------------------------------------------------------------------
def test_sample_mutate_crossover_are_deterministic(space):
    def run(seed):
        rng = random.Random(seed)
        a, b = space.sample(rng), space.sample(rng)
        return a, b, space.mutate(a, rng), space.crossover(a, b, rng)

    assert run(3) == run(3)
    assert run(3) != run(4)
    assert len({space.sample(random.Random(s)) for s in range(50)}) == 50


def test_mutate_changes_exactly_one_edge(space):
    rng = random.Random(0)
    edges_hit, ops_given = set(), set()
    for _ in range(300):
        parent = space.sample(rng)
        child, origin = space.mutate(parent, rng)
        assert origin == "alter" and isinstance(child, Cell)
        changed = [k for k in range(6) if child[k] != parent[k]]
        assert len(changed) == 1
        edges_hit.add(changed[0])
        ops_given.add(child[changed[0]])
    assert edges_hit == set(range(6)) and ops_given == set(OPS)


def test_crossover_is_one_point(space):
    rng = random.Random(1)
    a, b = ALL_CONV3, ALL_NONE
    cuts = set()
    for _ in range(100):
        c, d = space.crossover(a, b, rng)
        cut = c.ops.count("nor_conv_3x3")
        assert 1 <= cut <= 5
        assert c.ops == a.ops[:cut] + b.ops[cut:] and d.ops == b.ops[:cut] + a.ops[cut:]
        cuts.add(cut)
    assert cuts == {1, 2, 3, 4, 5}
    assert space.repair(BEST, rng) == Cell.from_string(BEST)


def test_rewritable(space):
    cell = Cell.from_string(BEST)
    assert space.units(cell) == 6
    assert space.alternatives(cell, 3) == list(OPS)
    assert space.with_unit(cell, 5, "none").ops == cell.ops[:5] + ("none",)
    assert space.unit_label("nor_conv_3x3") is None
    with pytest.raises(InvalidArchitectureError, match="unknown op 'conv'"):
        space.with_unit(cell, 0, "conv")
    with pytest.raises(IndexError):
        space.alternatives(cell, 6)


# -- what the GPT reads -------------------------------------------------------------------
LAYER_CELLS = [ALL_NONE, ALL_SKIP, ALL_CONV3, ALL_CONV1, POOLING, DEAD_OUTPUT, Cell.from_string(BEST)] + [
    NASBench201Space().sample(random.Random(seed)) for seed in range(3)
]


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 16, 16)])
def test_network_layers_equal_trace(space, shape):
    channels, size = shape[0], shape[1]
    for cell in LAYER_CELLS:
        network = space.build_network(cell, in_channels=channels, num_classes=10)
        expected = [t.record for t in trace(network, shape)]
        got = space.network_layers(cell, in_channels=channels, image_size=size, num_classes=10)
        assert got == expected, str(cell)
        assert [r.id for r in got] == list(range(1, len(got) + 1))
        assert all(isinstance(r, LayerRecord) for r in got)


def test_network_layers_shape(space):
    none, conv3 = space.network_layers(ALL_NONE), space.network_layers(ALL_CONV3)
    # stem (2) + two reductions (8 each) + tail (4); a conv edge adds ReLU, Conv, BN per cell
    assert len(none) == 2 + 2 * 8 + 4 and len(conv3) == len(none) + 15 * 6 * 3
    assert none == space.network_layers(ALL_SKIP)  # neither none nor skip_connect is a layer
    assert none[-1].kind == "fc" and none[-1].out_size == (1, 1, 10)
    assert space.network_layers(ALL_NONE, num_classes=100)[-1].out_size == (1, 1, 100)
    with pytest.raises(ValueError, match="image_size"):
        space.network_layers(ALL_NONE, image_size=0)


# -- the registry -------------------------------------------------------------------------
def test_create_space():
    assert "nas-bench-201" in space_names()
    made = create_space("nas-bench-201")
    assert isinstance(made, NASBench201Space) and isinstance(made, SearchSpace)
    assert made.name == "nas-bench-201"
