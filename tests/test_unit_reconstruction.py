"""Algorithm 1 in any rewritable space (gptnas_hf.unit_reconstruction.reconstruct_units) and the
nas-reconstruction pipeline's path for spaces other than the block genome."""

import random

import pytest
from transformers import pipeline

import gptnas_hf
from gptnas_hf.search_space import sample_genome
from gptnas_hf.space_nas_bench_201 import OPS, Cell, NASBench201Space
from gptnas_hf.unit_reconstruction import choose, reconstruct_units

SPACE = NASBench201Space()
CELLS = [SPACE.sample(random.Random(seed)) for seed in range(8)]
STRINGS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|none~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
]
KEYS = {"genome", "predicted_blocks", "predicted_layers", "block_probabilities", "mask_rate", "method", "kept_kind"}


def conv3_count(archs):
    return [float(sum(op == "nor_conv_3x3" for op in SPACE.load(a).ops)) for a in archs]


class Recorder:
    """A score_fn that counts its calls."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, archs):
        self.calls.append(len(archs))
        return self.fn(archs)


def test_greedy_at_mask_rate_one_takes_the_best_op_everywhere():
    score = Recorder(conv3_count)
    results = reconstruct_units(CELLS, SPACE, score, 1.0)
    assert score.calls == [len(CELLS) * len(OPS)] * 6  # one call per unit position, the whole batch
    for cell, result in zip(CELLS, results):
        assert set(result) == KEYS
        assert result["genome"] == SPACE.dump(Cell(("nor_conv_3x3",) * 6))
        assert result["predicted_blocks"] == list(range(6))
        assert result["kept_kind"] == [op == "nor_conv_3x3" for op in cell.ops]
        assert result["method"] == "likelihood" and result["mask_rate"] == 1.0 and result["block_probabilities"] == []
        for i, info in enumerate(result["predicted_layers"]):
            assert info == {"block": i, "type": "nor_conv_3x3", "text": None, "score": info["score"], "candidates": 5}
        assert [info["score"] for info in result["predicted_layers"]] == [
            float(sum(op == "nor_conv_3x3" for op in cell.ops[i + 1:]) + i + 1) for i in range(6)]


def test_mask_rate_zero_changes_nothing():
    score = Recorder(conv3_count)
    for cell, result in zip(CELLS, reconstruct_units(CELLS, SPACE, score, 0.0)):
        assert result["genome"] == SPACE.dump(cell) and result["predicted_blocks"] == [] == result["kept_kind"]
    assert score.calls == []


def test_ties_keep_the_current_unit_else_the_first_best():
    flat = reconstruct_units(CELLS, SPACE, lambda archs: [0.0] * len(archs), 1.0)
    assert [r["genome"] for r in flat] == [SPACE.dump(c) for c in CELLS]
    assert all(r["kept_kind"] == [True] * 6 for r in flat)

    def fewer_layers(archs):  # none and skip_connect tie (no layers), as they do for the GPT
        return [-float(sum(op not in ("none", "skip_connect") for op in SPACE.load(a).ops)) for a in archs]

    for cell, result in zip(CELLS, reconstruct_units(CELLS, SPACE, fewer_layers, 1.0)):
        expected = tuple(op if op in ("none", "skip_connect") else "none" for op in cell.ops)
        assert result["genome"] == SPACE.dump(Cell(expected))
    assert choose([1.0, 3.0, 3.0, float("nan")], current=2) == 2
    assert choose([1.0, 3.0, 3.0], current=0) == 1
    assert choose([float("nan"), 0.0], current=None) == 1


def test_a_batch_equals_its_architectures_one_at_a_time():
    batched = reconstruct_units(CELLS, SPACE, conv3_count, 0.5, seed=3)
    assert batched == [reconstruct_units([c], SPACE, conv3_count, 0.5, seed=3)[0] for c in CELLS]
    assert batched == reconstruct_units([c.to_string() for c in CELLS], "nas-bench-201", conv3_count, 0.5, seed=3)
    assert 0 < sum(len(r["predicted_blocks"]) for r in batched) < 6 * len(CELLS)
    other = reconstruct_units(CELLS, SPACE, conv3_count, 0.5, seed=4)
    assert [r["predicted_blocks"] for r in other] != [r["predicted_blocks"] for r in batched]


def test_sampling_is_seeded_and_follows_the_temperature():
    def run(seed, temperature):
        return reconstruct_units(CELLS, SPACE, conv3_count, 1.0, seed=seed, do_sample=True, temperature=temperature)

    assert run(5, 1.0) == run(5, 1.0)
    assert [r["genome"] for r in run(5, 1.0)] != [r["genome"] for r in run(6, 1.0)]
    conv3 = lambda results: sum(SPACE.load(r["genome"]).ops.count("nor_conv_3x3") for r in results)  # noqa: E731
    assert conv3(run(5, 0.01)) == 6 * len(CELLS)  # cold: greedy
    assert conv3(run(5, 100.0)) < 3 * len(CELLS)  # hot: about uniform (1 in 5)
    batched = run(7, 1.0)
    assert batched == [reconstruct_units([c], SPACE, conv3_count, 1.0, seed=7, do_sample=True)[0] for c in CELLS]


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="mask_rate"):
        reconstruct_units(CELLS, SPACE, conv3_count, 1.5)
    with pytest.raises(ValueError, match="temperature"):
        reconstruct_units(CELLS, SPACE, conv3_count, 0.5, do_sample=True, temperature=0)
    with pytest.raises(ValueError, match="scores"):
        reconstruct_units(CELLS, SPACE, lambda archs: [0.0], 1.0)


# -- the pipeline ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reconstruct():
    return pipeline("nas-reconstruction", model=gptnas_hf.DEFAULT_MODEL)


def test_pipeline_rewrites_nas_bench_201_strings(reconstruct):
    results = reconstruct(STRINGS, space="nas-bench-201", mask_rate=1.0, seed=0)
    block = reconstruct(sample_genome(0, 4, 5, (8,), 1), mask_rate=1.0, seed=0)
    assert isinstance(results, list) and len(results) == 3
    for text, result in zip(STRINGS, results):
        assert set(result) == set(block) == KEYS
        new = Cell.from_string(result["genome"])
        assert result["genome"] == new.to_string() and result["predicted_blocks"] == list(range(6))
        assert [info["type"] for info in result["predicted_layers"]] == list(new.ops)
        assert all(info["candidates"] == 5 and info["score"] < 0 for info in result["predicted_layers"])
        assert result["kept_kind"] == [a == b for a, b in zip(Cell.from_string(text).ops, new.ops)]
    # one string is one architecture; a batch equals its architectures one at a time
    assert reconstruct(STRINGS[1], space="nas-bench-201", mask_rate=1.0, seed=0) == results[1]
    assert reconstruct(Cell.from_string(STRINGS[2]), space=SPACE, mask_rate=1.0, seed=0) == results[2]
    same = reconstruct(STRINGS, space="nas-bench-201", mask_rate=0.0)
    assert [r["genome"] for r in same] == STRINGS and all(r["predicted_blocks"] == [] for r in same)


def test_pipeline_scores_and_checks_the_generic_arguments(reconstruct):
    scores = reconstruct.score(STRINGS, space="nas-bench-201")
    assert len(scores) == 3 and all(s < 0 for s in scores)
    assert reconstruct.score(STRINGS[0], space="nas-bench-201") == scores[0]
    assert reconstruct.score(list(Cell.from_string(STRINGS[0]).ops), space=SPACE) == scores[0]  # a list of 6 ops
    assert reconstruct.score(STRINGS[:1], space="nas-bench-201", num_classes=100) != scores[:1]
    with pytest.raises(ValueError, match="likelihood"):
        reconstruct(STRINGS[0], space="nas-bench-201", method="predict")
    with pytest.raises(ValueError, match="num_classes"):
        reconstruct(STRINGS[0], space="nas-bench-201", num_classes=0)
    with pytest.raises(ValueError, match="space"):
        reconstruct(STRINGS[0], space="nas-bench-999")
    with pytest.raises(ValueError, match="unknown op"):
        reconstruct("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", space="nas-bench-201")
