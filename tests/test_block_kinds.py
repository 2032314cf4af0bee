"""A block kind is defined in one place (gptnas_hf.kind_registry.BlockKind): a kind defined and
registered here, and nowhere else, is validated, sampled, built, measured, traced and encoded,
mutated and offered to the reconstruction by the package's own code."""

import pickle
import random

import pytest
import torch
from torch import nn
from transformers import AutoTokenizer

from gptnas_hf.block_labels import BLOCK_LABELS
from gptnas_hf.builtin_kinds import BUILTIN_KINDS, adapter
from gptnas_hf.default_model import DEFAULT_MODEL
from gptnas_hf.encoding import layer_type, trace
from gptnas_hf.genome_budget import measure_genome
from gptnas_hf.kind_registry import BLOCK_KINDS, BlockKind, choice, register_kind
from gptnas_hf.search.strategies import GeneticAlgorithm, Individual
from gptnas_hf.search_space import (
    KIND_PARAMS,
    Genome,
    InvalidGenomeError,
    build_network,
    candidate_blocks,
    count_parameters,
    make_block,
    normalize,
    sample_genome,
)
from gptnas_hf.space_blocks import BlockSpace
from gptnas_hf.tokenization_gptnas import encode_types

NAME = "SeparableConv"


def _build_separable(spec, cin):
    """A depthwise 3x3 conv (``multiplier`` filters per input channel, the block's stride), then
    a pointwise conv to the width, BatchNorm and ReLU."""
    inner = cin * spec["multiplier"]
    op = nn.Sequential(nn.Conv2d(cin, inner, 3, stride=spec["stride"], padding=1, groups=cin, bias=False),
                       nn.Conv2d(inner, spec["width"], 1, bias=False), nn.BatchNorm2d(spec["width"]), nn.ReLU())
    return None, op, None


SEPARABLE = BlockKind(
    NAME, _build_separable, params={"multiplier": choice((1, 2), 1, doc="depthwise filters per input channel")},
    width_multiple=2, width_rule="a test rule: even widths only", weight=50.0,
    candidates=({"multiplier": 1}, {"multiplier": 2}), doc="a depthwise-separable conv (defined in a test)")


@pytest.fixture
def separable():
    register_kind(SEPARABLE)
    try:
        yield SEPARABLE
    finally:
        BLOCK_KINDS.pop(NAME, None)


def test_the_builtin_kinds_are_registered_table2_first_in_the_gpts_label_order():
    assert tuple(BLOCK_KINDS) == tuple(kind.name for kind in BUILTIN_KINDS) == tuple(KIND_PARAMS)
    assert tuple(BLOCK_KINDS)[:len(BLOCK_LABELS)] == BLOCK_LABELS


def test_a_registered_kind_is_validated(separable):
    (block,) = normalize([{"kind": NAME, "width": 16, "stride": 2}])
    assert block == {"kind": NAME, "width": 16, "stride": 2, "multiplier": 1}
    assert set(KIND_PARAMS[NAME]) == {"multiplier"}
    with pytest.raises(InvalidGenomeError, match=r"\(SeparableConv\): width 15 is odd \(a test rule: even widths"):
        normalize([{"kind": NAME, "width": 15, "stride": 1}])
    with pytest.raises(InvalidGenomeError, match=r"multiplier 3 must be one of \[1, 2\]"):
        normalize([{"kind": NAME, "width": 16, "stride": 1, "multiplier": 3}])
    with pytest.raises(InvalidGenomeError, match=r"unknown key 'kernel'; SeparableConv takes"):
        normalize([{"kind": NAME, "width": 16, "stride": 1, "kernel": 3}])
    genome = Genome([{"kind": "Stem", "width": 8, "stride": 1}, block])
    assert pickle.loads(pickle.dumps(genome)) == genome and Genome(genome.to_json()).hash() == genome.hash()


def test_an_unregistered_kind_is_refused_naming_the_registered_ones():
    with pytest.raises(InvalidGenomeError, match=rf"unknown kind '{NAME}'; valid kinds: ConvNormActivation, "):
        normalize([{"kind": NAME, "width": 16, "stride": 1}])
    with pytest.raises(ValueError, match=f"unknown block kind '{NAME}'"):
        make_block(NAME, 16, 1)


def test_a_registered_kind_is_made_and_sampled(separable):
    assert make_block(NAME, 15, 3) == {"kind": NAME, "width": 16, "stride": 2, "multiplier": 1}  # width fitted
    assert make_block(NAME, 8, 1, None, multiplier=2, kernel=5)["multiplier"] == 2  # hints of other kinds ignored
    assert {make_block(NAME, 8, 1, seed)["multiplier"] for seed in range(20)} == {1, 2}
    genomes = [sample_genome(seed, widths=(8, 16)) for seed in range(10)]  # every registered kind by default
    assert all(NAME in g.kinds for g in genomes)  # (its weight of 50 makes it common)
    only = sample_genome(0, widths=(8, 16), kinds=[NAME, "MaxPool"])
    assert set(only.kinds) <= {NAME, "MaxPool"} and NAME in only.kinds


def test_a_registered_kind_is_built_measured_traced_and_encoded(separable):
    genome = Genome([make_block("Stem", 8, 1), make_block(NAME, 16, 2, None, multiplier=2),
                     make_block("BasicBlock", 16, 1)])
    network = build_network(genome, in_channels=3, num_classes=5).eval()
    block = network.blocks[1]
    assert block.kind == NAME and not block.has_adapter and block.op[0].groups == 8
    with torch.no_grad():
        assert network.forward_features(torch.randn(2, 3, 16, 16)).shape == (2, 16, 8, 8)
    assert measure_genome(genome, num_classes=5, image_size=16).parameters == count_parameters(network)
    layers = trace(network, (3, 16, 16))
    mine = [layer for layer in layers if layer.path.startswith("blocks.1.")]
    assert len(mine) == 4 and {layer.block for layer in mine} == {NAME}
    assert layer_type(mine[0].record) == "conv_k3x3_s2_p1_d1_grouped_nobias_x2"  # the depthwise conv, 2 filters each
    space = BlockSpace(min_blocks=1, max_blocks=5, widths=(8, 16), kinds=("Stem", NAME, "BasicBlock"))
    records = space.network_layers(genome, in_channels=3, image_size=16, num_classes=5)
    assert records == [layer.record for layer in layers]
    tokenizer = AutoTokenizer.from_pretrained(DEFAULT_MODEL)
    assert tokenizer.unk_token_id not in encode_types(tokenizer, records)  # its layers read as known types


def test_a_registered_kind_is_mutated_crossed_and_searched(separable):
    space = BlockSpace(min_blocks=3, max_blocks=8, widths=(8, 16), max_downsamples=2, kinds=("Conv", NAME))
    rng = random.Random(0)
    genome = Genome([make_block("Conv", 8, 1)] * 4)
    seen = set()
    for _ in range(60):
        mutated, op = space.mutate(genome, rng)
        seen |= {op} if NAME in mutated.kinds else set()
        genome = mutated if len(set(mutated.kinds)) < 2 else genome
    assert {"add", "alter"} <= seen
    ga = GeneticAlgorithm(population_size=4, min_blocks=3, max_blocks=8, widths=(8, 16), max_downsamples=2,
                          kinds=("Conv", NAME))
    population = [Individual(g, fitness=i / 4) for i, g in enumerate(ga.initial_population(random.Random(1)))]
    assert any(NAME in ind.genome.kinds for ind in population)
    for proposal in ga.propose_with_origins(population, random.Random(2)):
        assert ga.within_limits(proposal.genome) and set(proposal.genome.kinds) <= {"Conv", NAME}


def test_a_registered_kind_is_offered_to_the_reconstruction_only_where_the_gpt_knows_it(separable):
    offered = candidate_blocks(16, 1)
    assert [b["multiplier"] for b in offered if b["kind"] == NAME] == [1, 2]
    assert NAME not in {b["kind"] for b in candidate_blocks(16, 1, BLOCK_LABELS)}  # the shipped GPT's block classes


def test_a_kind_definition_is_checked():
    with pytest.raises(ValueError, match="already registered"):
        register_kind(BlockKind("Conv", _build_separable))
    with pytest.raises(ValueError, match="clashes with a block's keys"):
        BlockKind("Bad", _build_separable, params={"width": choice((1, 2), 1)})
    with pytest.raises(ValueError, match="candidate setting 'kernel' is not one of its parameters"):
        BlockKind("Bad", _build_separable, candidates=({"kernel": 3},))
    with pytest.raises(TypeError, match="build must be callable"):
        BlockKind("Bad", None)
    assert adapter(4, 8, 2)[0].stride == (2, 2)
