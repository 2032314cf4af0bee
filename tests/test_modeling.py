import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

import gptnas_hf
from gptnas_hf import GPTNASConfig, GPTNASForArchitectureModeling
from gptnas_hf.corpora.zoo import zoo_corpus
from gptnas_hf.training import network_windows, windows_dataset


def tiny_model(vocab_size=60, **kwargs):
    torch.manual_seed(0)
    return GPTNASForArchitectureModeling(GPTNASConfig(vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=2, **kwargs))


def test_positions_cover_the_window_and_the_predicted_layer():
    """n_positions follows window_size (k context layers + the predicted one) unless given, and a
    window longer than the position table cannot run."""
    for k in (3, 10):
        config = GPTNASConfig(window_size=k, n_embd=16, n_layer=1, n_head=2, vocab_size=20)
        assert config.n_positions == k + 1
        model = GPTNASForArchitectureModeling(config).eval()
        assert model(input_ids=torch.ones(2, k + 1, dtype=torch.long)).logits.shape == (2, k + 1, 20)
        with pytest.raises(ValueError, match=f"reads at most {k + 1} layers"):
            model(input_ids=torch.ones(1, k + 2, dtype=torch.long))
    assert GPTNASConfig(window_size=3, n_positions=8).n_positions == 8
    from gptnas_hf.block_labels import BLOCK_LABELS

    assert tuple(GPTNASConfig().block_labels) == BLOCK_LABELS  # the FCN's classes are Table 2's


def test_the_shipped_checkpoint_is_the_papers_size():
    """Paper section 4.3: a 4-layer, 4-head GPT reading k = 10 layers."""
    config = AutoConfig.from_pretrained(gptnas_hf.DEFAULT_MODEL)
    assert (config.n_layer, config.n_head, config.window_size) == (4, 4, 10)


def test_save_and_load_round_trip_with_identical_outputs(tmp_path):
    model = tiny_model().eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin"))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "gptnas"
    assert config["auto_map"]["AutoModelForCausalLM"].endswith("GPTNASForArchitectureModeling")
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
    assert isinstance(loaded, GPTNASForArchitectureModeling)
    assert isinstance(AutoConfig.from_pretrained(str(tmp_path)), GPTNASConfig)
    ids = torch.randint(5, 60, (3, 11))
    a = model(input_ids=ids, return_block_logits=True)
    b = loaded(input_ids=ids, return_block_logits=True)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.block_logits, b.block_logits)
    assert loaded.lm_head.weight.data_ptr() == loaded.transformer.wte.weight.data_ptr()


def test_losses_and_shapes():
    model = tiny_model()
    ids = torch.randint(5, 60, (4, 11))
    out = model(input_ids=ids, labels=ids, block_labels=torch.tensor([0, 3, -100, 12]))
    assert out.logits.shape == (4, 11, 60) and out.block_logits.shape == (4, 13)
    assert torch.isclose(out.loss, out.lm_loss + out.block_loss)
    with pytest.raises(ValueError, match="windows of 11"):
        model.classify_block(ids[:, :5])


def test_block_window_left_pads_short_rows():
    model = tiny_model()
    ids = torch.tensor([[7, 8, 9, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    window = model.block_window(ids, mask)
    assert window.tolist() == [[0] * 8 + [7, 8, 9]]


def test_windows_follow_eq_2():
    ids = list(range(20, 35))  # <s> + 13 layers + </s>
    blocks = [-100] + list(range(13)) + [-100]
    windows = list(network_windows(ids, blocks, 10, pad_id=0))
    assert len(windows) == len(ids) - 10
    first_ids, mask, labels, block, locations = windows[0]
    assert first_ids == ids[:11] and mask == [1] * 11 and block == blocks[10] and locations == [0] * 11
    short = list(network_windows([1, 5, 6, 2], [-100, 3, 4, -100], 10, pad_id=0))
    assert len(short) == 1 and short[0][1] == [1] * 4 + [0] * 7 and short[0][2][4:] == [-100] * 7


def test_a_tiny_trainer_run_lowers_the_loss(tmp_path):
    from transformers import Trainer, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(gptnas_hf.DEFAULT_MODEL)
    corpus = zoo_corpus(["resnet18", "resnet34", "shufflenet_v2_x0_5"], progress=False)
    model = tiny_model(vocab_size=len(tokenizer))
    data = windows_dataset(corpus, tokenizer, model.config.window_size, model.config.block_labels)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=64, learning_rate=3e-3,
                             num_train_epochs=15, use_cpu=True, report_to="none", save_strategy="no",
                             logging_steps=5, seed=0, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=data, eval_dataset=data, processing_class=tokenizer)
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    assert after < before * 0.6, (before, after)


def test_registered_with_the_auto_classes():
    assert AutoConfig.for_model("gptnas").__class__ is GPTNASConfig
    model = AutoModelForCausalLM.from_config(GPTNASConfig(vocab_size=30, n_embd=16, n_layer=1, n_head=2))
    assert isinstance(model, GPTNASForArchitectureModeling)


# -- location input (Algorithm 1's "location information") ------------------------------------
def test_location_ids_are_relative_depth_buckets():
    from gptnas_hf.configuration_gptnas import location_id

    assert [location_id(i, 8, 4) for i in range(8)] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert location_id(0, 1, 8) == 1 and location_id(99, 10, 8) == 8 and location_id(3, 10, 0) == 0


def test_a_location_model_reads_locations_and_round_trips(tmp_path):
    model = tiny_model(location_buckets=8).eval()
    ids = torch.randint(5, 60, (2, 11))
    with pytest.raises(ValueError, match="location_ids"):
        model(input_ids=ids)
    early, late = torch.ones_like(ids), torch.full_like(ids, 8)
    a = model(input_ids=ids, location_ids=early, return_block_logits=True)
    b = model(input_ids=ids, location_ids=late, return_block_logits=True)
    assert not torch.allclose(a.logits, b.logits) and not torch.allclose(a.block_logits, b.block_logits)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
    assert loaded.config.location_buckets == 8
    assert torch.equal(loaded(input_ids=ids, location_ids=early).logits, a.logits)
    with pytest.raises(ValueError, match="at most 11 layers"):
        model(input_ids=torch.randint(5, 60, (1, 12)), location_ids=torch.ones(1, 12, dtype=torch.long))


def test_windows_carry_the_location_of_each_layer():
    tokenizer = AutoTokenizer.from_pretrained(gptnas_hf.DEFAULT_MODEL)
    corpus = zoo_corpus(["resnet18"], progress=False)
    data = windows_dataset(corpus, tokenizer, 10, GPTNASConfig().block_labels, location_buckets=4)
    blocks = corpus[0]["block_index"]
    n = max(blocks) + 1
    first, last = data[0]["location_ids"], data[len(data) - 1]["location_ids"]
    assert first[0] == 0 and first[1:] == [1 + min(3, 4 * b // n) for b in blocks[:10]]
    assert last[-1] == 0 and last[-2] == 4  # </s>, then the last layer in the last bucket
    assert "location_ids" not in windows_dataset(corpus, tokenizer, 10, GPTNASConfig().block_labels).column_names


def test_tokenizer_and_model_agree_on_the_window():
    tokenizer = AutoTokenizer.from_pretrained(gptnas_hf.DEFAULT_MODEL)
    model = GPTNASForArchitectureModeling.from_pretrained(gptnas_hf.DEFAULT_MODEL)
    assert tokenizer.model_max_length == model.config.n_positions == model.config.window_size + 1
    text = " ".join(["ReLU"] * 30)
    cut = tokenizer(text, truncation=True)["input_ids"]
    assert len(cut) == model.config.n_positions
