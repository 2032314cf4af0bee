import json
import shutil

import pytest
import torch
from safetensors import SafetensorError
from transformers import pipeline

import gptnas_hf
from gptnas_hf.mask_schedule import mask_rate_at
from gptnas_hf.search_space import Genome, InvalidGenomeError, build_network, sample_genome


@pytest.fixture(scope="module")
def reconstruct():
    return pipeline("nas-reconstruction", model=gptnas_hf.DEFAULT_MODEL)


@pytest.fixture(scope="module")
def genomes():
    return [sample_genome(seed) for seed in range(8)]


def test_eq_3_schedule():
    assert mask_rate_at(0, 20) == pytest.approx(0.4)
    assert mask_rate_at(10, 20) == pytest.approx(0.2)
    assert mask_rate_at(20, 20) == pytest.approx(0.0)
    assert mask_rate_at(5, 20, initial_mask_rate=0.8) == pytest.approx(0.6)
    with pytest.raises(ValueError):
        mask_rate_at(21, 20)


def test_shipped_checkpoint_reconstructs_valid_genomes(reconstruct, genomes):
    results = reconstruct(genomes, mask_rate=0.5, seed=0)
    assert len(results) == len(genomes)
    replaced = 0
    for genome, result in zip(genomes, results):
        new = Genome.from_json(result["genome"])
        assert len(new) == len(genome)
        assert [b["width"] for b in new] == [b["width"] for b in genome] or result["predicted_blocks"]
        for index in range(len(genome)):
            if index not in result["predicted_blocks"]:
                assert new[index] == genome[index]
        for info, probs in zip(result["predicted_layers"], result["block_probabilities"]):
            assert info["block"] == probs["block"] and info["type"] in reconstruct.tokenizer.get_vocab()
            assert info["text"].startswith("id:")
            assert sum(probs["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        replaced += len(result["predicted_blocks"])
        with torch.no_grad():
            assert build_network(new, in_channels=3, num_classes=10)(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    assert replaced > 0


def test_mask_rate_zero_changes_nothing_and_one_replaces_every_block(reconstruct, genomes):
    for genome in genomes[:3]:
        same = reconstruct(genome, mask_rate=0.0)
        assert same["genome"] == genome.to_list() and same["predicted_blocks"] == []
        everything = reconstruct(genome, mask_rate=1.0)
        assert everything["predicted_blocks"] == list(range(len(genome)))


def test_schedule_parameters_reach_the_pipeline(reconstruct, genomes):
    late = reconstruct(genomes[0], iteration=20, max_iterations=20)
    assert late["mask_rate"] == 0.0 and late["predicted_blocks"] == []
    early = reconstruct(genomes[0], iteration=0, max_iterations=20, initial_mask_rate=0.4)
    assert early["mask_rate"] == pytest.approx(0.4)


def test_batched_equals_unbatched_and_seeds_repeat(reconstruct, genomes):
    batched = reconstruct(genomes, mask_rate=0.4, seed=7)
    for genome, result in zip(genomes, batched):
        alone = reconstruct(genome.to_json(), mask_rate=0.4, seed=7)
        for key in ("genome", "predicted_blocks", "predicted_layers", "mask_rate"):
            assert alone[key] == result[key]
        # a batch pads; the probabilities agree to float precision
        for a, b in zip(alone["block_probabilities"], result["block_probabilities"]):
            assert a["block"] == b["block"]
            assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-4)
    assert reconstruct(genomes, mask_rate=0.4, seed=7) == batched
    sampled = reconstruct(genomes, mask_rate=0.4, seed=7, do_sample=True, temperature=1.5, top_k=10)
    assert reconstruct(genomes, mask_rate=0.4, seed=7, do_sample=True, temperature=1.5, top_k=10) == sampled


def _same_result(a: dict, b: dict) -> bool:
    """Equal, except the FCN probabilities, which agree to float precision (a batch pads)."""
    exact = ("genome", "predicted_blocks", "predicted_layers", "mask_rate", "method", "kept_kind")
    return all(a[k] == b[k] for k in exact) and all(
        x["block"] == y["block"] and x["probabilities"] == pytest.approx(y["probabilities"], abs=1e-4)
        for x, y in zip(a["block_probabilities"], b["block_probabilities"], strict=True))


def test_batch_size_num_workers_and_streaming_follow_the_pipeline_contract(reconstruct, genomes):
    """The base class's batch_size / num_workers / dataset streaming work, and give what the
    genomes give one at a time."""
    from datasets import Dataset
    from transformers.pipelines.pt_utils import KeyDataset

    alone = [reconstruct(g.to_json(), mask_rate=0.5, seed=3) for g in genomes]
    for batch_size in (1, 3, 4, len(genomes)):
        batched = reconstruct(genomes, mask_rate=0.5, seed=3, batch_size=batch_size)
        assert len(batched) == len(genomes) and all(map(_same_result, batched, alone)), batch_size
    workers = reconstruct(genomes[:4], mask_rate=0.5, seed=3, batch_size=2, num_workers=2)
    assert all(map(_same_result, workers, alone[:4]))
    column = Dataset.from_dict({"genome": [g.to_json() for g in genomes]})
    streamed = reconstruct(KeyDataset(column, "genome"), mask_rate=0.5, seed=3, batch_size=4)
    assert not isinstance(streamed, list)  # an iterator, consumed on demand
    assert all(map(_same_result, list(streamed), alone))
    generated = list(reconstruct((g.to_list() for g in genomes[:3]), mask_rate=0.5, seed=3))
    assert all(map(_same_result, generated, alone[:3]))


def test_input_forms(reconstruct, genomes):
    as_list = reconstruct(genomes[1].to_list(), mask_rate=0.4, seed=1)
    assert reconstruct(genomes[1], mask_rate=0.4, seed=1) == as_list
    assert reconstruct(json.dumps(genomes[1].to_list()), mask_rate=0.4, seed=1) == as_list


def test_malformed_genomes_and_parameters_give_clear_errors(reconstruct):
    with pytest.raises(InvalidGenomeError, match="block 1 .*Wormhole"):
        reconstruct([{"kind": "Conv", "width": 16, "stride": 1}, {"kind": "Wormhole", "width": 16, "stride": 1}])
    with pytest.raises(ValueError):
        reconstruct("{not json")
    with pytest.raises(ValueError, match="mask_rate"):
        reconstruct(sample_genome(0), mask_rate=1.5)
    with pytest.raises(TypeError, match="unknown nas-reconstruction parameter"):
        reconstruct(sample_genome(0), mask_ratio=0.2)


def test_missing_or_corrupt_model_directory(tmp_path):
    with pytest.raises(OSError):
        pipeline("nas-reconstruction", model=str(tmp_path / "nowhere"))
    broken = tmp_path / "broken"
    shutil.copytree(gptnas_hf.DEFAULT_MODEL, broken)
    (broken / "model.safetensors").write_bytes(b"this is not a safetensors file")
    with pytest.raises(SafetensorError, match="deserializing header"):
        pipeline("nas-reconstruction", model=str(broken))
