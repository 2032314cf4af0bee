"""Reconstruction uses what the GPT learned: a small GPT trained on networks built only of
ConvNormActivation(kernel 5, SiLU) blocks rebuilds masked blocks as such blocks, both when it
scores candidates (``method="likelihood"``) and when it predicts the next layer
(``method="predict"``, kernel hint). A GPT that knew nothing would pick them at the rate of
chance (1 in 26 candidates)."""

import datasets
import pytest
import torch
from transformers import Trainer, TrainingArguments, pipeline

import gptnas_hf  # noqa: F401  (registers the pipeline)
from gptnas_hf import GPTNASConfig, GPTNASForArchitectureModeling
from gptnas_hf.corpora.common import ARCHITECTURE_FEATURES, architecture_row
from gptnas_hf.encoding import trace_factory
from gptnas_hf.pipeline_nas_reconstruction import candidate_blocks
from gptnas_hf.search_space import Genome, build_network, make_block, sample_genome
from gptnas_hf.tokenization_gptnas import build_tokenizer
from gptnas_hf.training import windows_dataset


def _trace(genome):
    return trace_factory(lambda: build_network(genome, in_channels=3, num_classes=10), (3, 32, 32))


def _taught_genome(seed):
    widths = [8, 16, 16, 32, 32, 32, 32, 32, 32, 32][: 6 + seed % 5]
    blocks = [make_block("Stem", 8, 1)]
    blocks += [make_block("ConvNormActivation", w, 2 if i in (1, 3) else 1, kernel=5, activation="SiLU")
               for i, w in enumerate(widths)]
    return Genome(blocks)


@pytest.fixture(scope="module")
def taught(tmp_path_factory):
    """A tiny GPT that has only ever seen Stem + ConvNormActivation(5, SiLU) networks."""
    teach = [_taught_genome(s) for s in range(20)]
    # the vocabulary also covers every candidate block and random genomes, so nothing backs off
    types = {layer.type for g in teach for layer in _trace(g)}
    for seed in range(30):
        types |= {layer.type for layer in _trace(sample_genome(seed, 6, 10, (8, 16, 32), 2))}
    for width, stride in ((8, 1), (16, 1), (16, 2), (32, 1), (32, 2)):
        for block in candidate_blocks(width, stride):
            types |= {layer.type for layer in _trace(Genome([make_block("Stem", 8, 1), block]))}
    tokenizer = build_tokenizer(types)
    rows = [architecture_row(f"taught-{i}", "test", _trace(g)) for i, g in enumerate(teach)]
    corpus = datasets.Dataset.from_list(rows, features=ARCHITECTURE_FEATURES)
    torch.manual_seed(0)
    config = GPTNASConfig(vocab_size=len(tokenizer), n_embd=48, n_layer=2, n_head=2, location_buckets=4)
    model = GPTNASForArchitectureModeling(config)
    data = windows_dataset(corpus, tokenizer, config.window_size, config.block_labels, config.location_buckets)
    out = tmp_path_factory.mktemp("taught")
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=64, learning_rate=3e-3,
                             num_train_epochs=12, use_cpu=True, report_to="none", save_strategy="no", seed=0,
                             disable_tqdm=True, logging_strategy="no")
    Trainer(model=model, args=args, train_dataset=data, processing_class=tokenizer).train()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return pipeline("nas-reconstruction", model=str(out))


def _is_taught(block):
    return block["kind"] == "ConvNormActivation" and block.get("kernel") == 5 and block.get("activation") == "SiLU"


def test_likelihood_reconstruction_chooses_what_the_gpt_learned(taught):
    genomes = [sample_genome(100 + s, 6, 10, (8, 16, 32), 2) for s in range(8)]
    results = taught(genomes, mask_rate=1.0, seed=0)
    chosen = [r["genome"][i] for r in results for i in r["predicted_blocks"]]
    share = sum(map(_is_taught, chosen)) / len(chosen)
    assert share > 0.6, (share, chosen[:5])
    for r in results:
        assert len(r["kept_kind"]) == len(r["predicted_blocks"]) and r["method"] == "likelihood"
        for info in r["predicted_layers"]:
            assert info["candidates"] == 26 and info["type"].startswith(("conv_", "pool_"))


def test_sampling_follows_the_scores_and_is_seeded(taught):
    genomes = [sample_genome(200 + s, 6, 10, (8, 16, 32), 2) for s in range(6)]
    cold = taught(genomes, mask_rate=1.0, seed=3, do_sample=True, temperature=0.3)
    hot = taught(genomes, mask_rate=1.0, seed=3, do_sample=True, temperature=50.0)
    assert taught(genomes, mask_rate=1.0, seed=3, do_sample=True, temperature=0.3) == cold
    share = lambda results: (sum(_is_taught(r["genome"][i]) for r in results for i in r["predicted_blocks"])  # noqa: E731
                             / sum(len(r["predicted_blocks"]) for r in results))
    assert share(cold) > share(hot) and share(hot) < 0.4


def test_predict_method_takes_the_predicted_kernel(taught):
    genomes = [sample_genome(300 + s, 6, 10, (8, 16, 32), 2) for s in range(8)]
    results = taught(genomes, mask_rate=1.0, seed=0, method="predict")
    kernels = [r["genome"][i].get("kernel") for r in results for i in r["predicted_blocks"]
               if r["genome"][i]["kind"] in ("ConvNormActivation", "Conv")]
    assert kernels and sum(k == 5 for k in kernels) / len(kernels) > 0.6, kernels
    kinds = [r["genome"][i]["kind"] for r in results for i in r["predicted_blocks"]]
    assert kinds.count("ConvNormActivation") / len(kinds) > 0.5, kinds


def test_pipeline_arguments_are_validated(taught):
    genome = sample_genome(0, 6, 10, (8,), 2)
    for bad, match in (({"initial_mask_rate": 5}, "initial_mask_rate"), ({"window_size": 0}, "window_size"),
                       ({"top_k": -1}, "top_k"), ({"temperature": 0}, "temperature"), ({"method": "magic"}, "method"),
                       ({"mask_rate": "0.4"}, "mask_rate"), ({"do_sample": "yes"}, "do_sample")):
        with pytest.raises(ValueError, match=match):
            taught(genome, **bad)
