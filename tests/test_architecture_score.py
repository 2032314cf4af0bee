"""The GPT's mean log-likelihood of a network (gptnas_hf.architecture_score): its windows and
value against a direct computation, deduplication, the block indices it reads, and the
persistent cache."""

import copy
import hashlib
import json
import random
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import AutoTokenizer

import gptnas_hf
from gptnas_hf.architecture_score import (ArchitectureScorer, ScoreCache, cached_space_scores, checkpoint_identity,
                                          prediction_windows)
from gptnas_hf.encoding import trace
from gptnas_hf.modeling_gptnas import GPTNASForArchitectureModeling
from gptnas_hf.space_nas_bench_201 import OPS, Cell, NASBench201Space

SPACE = NASBench201Space()
ALL_NONE = Cell(("none",) * 6)
TWO_POOLS = Cell(("avg_pool_3x3", "none", "skip_connect", "none", "none", "avg_pool_3x3"))
BEST = Cell.from_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")


@pytest.fixture(scope="module")
def model():
    return GPTNASForArchitectureModeling.from_pretrained(gptnas_hf.DEFAULT_MODEL).eval()


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(gptnas_hf.DEFAULT_MODEL)


@pytest.fixture(scope="module")
def scorer(model, tokenizer):
    return ArchitectureScorer(model, tokenizer)


def _tiny_network():
    """A network shorter than one window (4 layers: 6 tokens with <s> and </s>)."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 10))


def _direct(model, ids, locations, k):
    """The definition, slowly: one forward per position, from the previous (up to) k tokens."""
    total = 0.0
    with torch.no_grad():
        for t in range(1, len(ids)):
            start = max(0, t - k)
            logits = model(input_ids=torch.tensor([ids[start:t]]),
                           location_ids=torch.tensor([locations[start:t]])).logits[0, -1]
            total += float(logits.float().log_softmax(-1)[ids[t]])
    return total, len(ids) - 1


def test_windows_predict_every_position_once_from_its_k_previous_tokens():
    for k in (1, 3, 10):
        for length in (0, 1, 2, 5, k + 1, k + 2, 40):
            contexts = {}
            for start, end, first in prediction_windows(length, k):
                assert end - start <= k + 1 and end <= length
                for t in (range(start + 1, end) if first else [end - 1]):
                    assert t not in contexts
                    contexts[t] = (start if first else t - k, t)
            assert contexts == {t: (max(0, t - k), t) for t in range(1, length)}, (k, length)


def test_sequence_is_what_training_reads(scorer, tokenizer):
    from gptnas_hf.configuration_gptnas import location_id
    from gptnas_hf.tokenization_gptnas import encode_types

    traced = trace(SPACE.build_network(TWO_POOLS), (3, 32, 32))
    ids, locations = scorer.sequence([t.record for t in traced], [t.block_index for t in traced])
    assert ids == [tokenizer.bos_token_id] + encode_types(tokenizer, traced) + [tokenizer.eos_token_id]
    blocks = max(t.block_index for t in traced) + 1
    assert locations == [0] + [location_id(t.block_index, blocks, 8) for t in traced] + [0]
    assert scorer.sequence(traced) == (ids, locations)  # block indices read from traced layers
    with pytest.raises(ValueError, match="block index"):
        scorer.sequence([t.record for t in traced])


def test_score_equals_the_direct_computation(model, tokenizer):
    scorer = ArchitectureScorer(model, tokenizer, batch_size=7)  # several batches
    networks = [next(scorer.networks(SPACE, [cell])) for cell in (ALL_NONE, TWO_POOLS)]
    networks.append(tuple(zip(*[(t.record, t.block_index) for t in trace(_tiny_network(), (3, 16, 16))])))
    results = scorer.score_layers(networks)
    for (records, blocks), result in zip(networks, results):
        ids, locations = scorer.sequence(records, blocks)
        total, n = _direct(model, ids, locations, model.config.window_size)
        assert result["n"] == n == len(records) + 1
        assert result["sum"] == pytest.approx(total, abs=1e-5)
        assert result["mean"] == pytest.approx(total / n, abs=1e-5)
    assert len(scorer.sequence(*networks[2])[0]) <= model.config.window_size + 1  # one short window


def test_deduplication_gives_the_same_scores(model, tokenizer):
    cells = [ALL_NONE, TWO_POOLS, BEST, SPACE.sample(random.Random(1)), BEST]
    together = ArchitectureScorer(model, tokenizer)
    scores = together.score(SPACE, cells)
    stats = dict(together.stats)
    assert stats["networks"] == 5 and stats["computed"] == stats["unique"] < stats["windows"]
    alone = [ArchitectureScorer(model, tokenizer, cache_size=0).score(SPACE, [cell])[0] for cell in cells]
    assert scores == pytest.approx(alone, abs=1e-6)
    assert scores[2] == scores[4]
    assert together.score(SPACE, cells) == scores  # from the window cache: identical
    assert together.stats["computed"] == stats["computed"] and together.dedup_ratio > 1
    assert together.score(SPACE, [c.to_string() for c in cells]) == scores  # anything the space loads


def test_block_index_equals_trace():
    cells = [Cell((op,) * 6) for op in OPS] + [BEST] + [SPACE.sample(random.Random(seed)) for seed in range(3)]
    for channels, size in ((3, 32), (1, 12)):
        for cell in cells:
            traced = trace(SPACE.build_network(cell, in_channels=channels), (channels, size, size))
            assert SPACE.network_block_index(cell, in_channels=channels, image_size=size) == [
                t.block_index for t in traced], str(cell)
            assert len(SPACE.network_layers(cell, in_channels=channels, image_size=size)) == len(traced)


class _TracedOnly(NASBench201Space):
    """The same space without network_block_index: the scorer traces build_network."""

    network_block_index = None


def test_spaces_without_block_indices_are_traced(scorer):
    cells = [TWO_POOLS, SPACE.sample(random.Random(2))]
    fast = scorer.score(SPACE, cells, image_size=16)
    assert scorer.score(_TracedOnly(), cells, image_size=16) == pytest.approx(fast, abs=1e-9)
    assert scorer.score("nas-bench-201", cells, image_size=16) == fast


def test_a_change_of_weights_empties_the_window_cache(model, tokenizer):
    changed = copy.deepcopy(model)
    scorer = ArchitectureScorer(changed, tokenizer)
    before = scorer.score(SPACE, [TWO_POOLS])
    with torch.no_grad():
        changed.transformer.wte.weight.mul_(0.5)
    assert scorer.score(SPACE, [TWO_POOLS]) != before
    assert checkpoint_identity(changed) != checkpoint_identity(gptnas_hf.DEFAULT_MODEL)


def test_checkpoint_identity(scorer):
    folder = Path(gptnas_hf.DEFAULT_MODEL)
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes() + (folder / "config.json").read_bytes())
    identity = digest.hexdigest()[:16]
    assert checkpoint_identity(gptnas_hf.DEFAULT_MODEL) == identity
    assert checkpoint_identity(scorer) == identity  # the model in memory is the checkpoint's


def test_score_cache_round_trip_shape_key_and_corrupt_file(scorer, tmp_path, monkeypatch):
    cells = [ALL_NONE, TWO_POOLS, BEST]
    scores = cached_space_scores(scorer, SPACE, cells, cache_dir=tmp_path, progress=False)
    assert scores == pytest.approx(scorer.score(SPACE, cells), abs=1e-12)
    files = list(tmp_path.rglob("*.json"))
    assert len(files) == 1 and files[0].parent.name == checkpoint_identity(scorer)
    assert json.loads(files[0].read_text()) == {SPACE.hash(c): s for c, s in zip(cells, scores)}

    def fail(*args, **kwargs):
        raise AssertionError("computed although cached")

    monkeypatch.setattr(scorer, "score", fail)
    assert cached_space_scores(scorer, "nas-bench-201", [c.to_string() for c in cells], cache_dir=tmp_path,
                               progress=False) == scores
    monkeypatch.undo()

    # the shape is part of the key (types are written size-free, so the image size keeps the score)
    assert cached_space_scores(scorer, SPACE, cells[:1], image_size=16, cache_dir=tmp_path, progress=False) == [
        pytest.approx(scores[0], abs=1e-9)]
    other = cached_space_scores(scorer, SPACE, cells[:1], num_classes=100, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.rglob("*.json"))) == 3 and other[0] != scores[0]
    paths = {ScoreCache(checkpoint_identity(scorer), SPACE.name, c, s, n, cache_dir=tmp_path).path
             for c, s, n in ((3, 32, 10), (1, 32, 10), (3, 16, 10), (3, 32, 100))}
    assert len(paths) == 4

    files[0].write_text('{"abc": 1.0, "truncated')
    with pytest.warns(RuntimeWarning, match="corrupt"):
        again = cached_space_scores(scorer, SPACE, cells, cache_dir=tmp_path, progress=False)
    assert again == pytest.approx(scores, abs=1e-12)
    assert set(json.loads(files[0].read_text())) == {SPACE.hash(c) for c in cells}  # rewritten
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cached_space_scores(scorer, SPACE, cells, cache_dir=tmp_path, progress=False) == again
    assert not list(tmp_path.rglob("*.tmp"))  # written atomically: no temporary file left


def test_default_cache_dir_follows_the_environment(scorer, tmp_path, monkeypatch):
    monkeypatch.setenv("GPTNAS_CACHE", str(tmp_path / "scores"))
    cached_space_scores(scorer, SPACE, [ALL_NONE], progress=False)
    assert len(list((tmp_path / "scores").rglob("*.json"))) == 1
