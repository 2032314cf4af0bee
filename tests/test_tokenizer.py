from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from gptnas_hf.corpora import nasbench101_corpus, zoo_corpus
from gptnas_hf.tokenization_gptnas import SPECIAL_TOKENS, architecture_text, build_tokenizer, unk_rate

TOKENIZER_DIR = Path(__file__).resolve().parents[1] / "tokenizer"


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))


def test_shipped_tokenizer_loads_with_auto_tokenizer(tokenizer):
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    assert tokenizer.convert_ids_to_tokens(list(range(len(SPECIAL_TOKENS)))) == list(SPECIAL_TOKENS)
    assert (tokenizer.pad_token, tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token, tokenizer.mask_token) == SPECIAL_TOKENS
    types = tokenizer.convert_ids_to_tokens(list(range(len(SPECIAL_TOKENS), len(tokenizer))))
    assert types == sorted(types) and len(types) > 40
    assert tokenizer.model_max_length == 11 and tokenizer.truncation_side == "left"


def test_unk_rate_is_zero_over_the_zoo_and_a_fresh_nasbench_sample(tokenizer):
    """The vocabulary holds every type of the training corpora: no unseen type, no backoff."""
    for row in zoo_corpus(progress=False, input_sizes=(224, 32)):
        assert unk_rate(tokenizer, row["types"]) == 0.0, row["name"]
    # another seed than the one the vocabulary was built from, at both stem widths
    for row in nasbench101_corpus(num_cells=100, seed=12345, progress=False):
        assert unk_rate(tokenizer, row["layers"]) == 0.0, row["name"]
    for row in nasbench101_corpus(num_cells=60, seed=54321, progress=False, stem_channels=16):
        assert unk_rate(tokenizer, row["layers"]) == 0.0, row["name"]


def test_unknown_types_map_to_unk_and_count(tokenizer):
    text = architecture_text(["ReLU", "conv_k9x9_s1_p4_d1_g1_nobias_x4", "BatchNorm2d"])
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[1] == tokenizer.unk_token_id and tokenizer.unk_token_id not in (ids[0], ids[2])
    assert unk_rate(tokenizer, ["ReLU", "conv_k9x9_s1_p4_d1_g1_nobias_x4"]) == 0.5


def test_build_is_deterministic_and_round_trips(tmp_path):
    a = build_tokenizer(["b_type", "a_type", "b_type"])
    b = build_tokenizer(["a_type", "b_type"])
    assert a.get_vocab() == b.get_vocab()
    assert a.convert_tokens_to_ids(["a_type", "b_type"]) == [len(SPECIAL_TOKENS), len(SPECIAL_TOKENS) + 1]
    a.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(str(tmp_path))
    assert again("a_type b_type", add_special_tokens=False)["input_ids"] == a("a_type b_type", add_special_tokens=False)["input_ids"]


def test_a_type_with_whitespace_is_rejected():
    with pytest.raises(ValueError, match="whitespace"):
        build_tokenizer(["conv k3"])


def test_the_shipped_checkpoint_uses_the_top_level_tokenizer(tokenizer):
    import gptnas_hf

    shipped = AutoTokenizer.from_pretrained(gptnas_hf.DEFAULT_MODEL)
    assert shipped.get_vocab() == tokenizer.get_vocab()
