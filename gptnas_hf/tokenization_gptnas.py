"""The layer-type tokenizer: one token per layer type (see :func:`gptnas_hf.encoding.layer_type`).

Built with the ``tokenizers`` library (a WordLevel model over a fixed, sorted vocabulary,
split on whitespace) and wrapped as a transformers ``PreTrainedTokenizerFast``, so
``AutoTokenizer.from_pretrained("tokenizer")`` loads it with nothing but transformers
installed. An architecture is written as its layer types joined by spaces.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from .encoding import LayerRecord, layer_type

PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN, MASK_TOKEN = "<pad>", "<s>", "</s>", "<unk>", "<mask>"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN, MASK_TOKEN)

__all__ = [
    "SPECIAL_TOKENS",
    "build_tokenizer",
    "architecture_text",
    "unk_rate",
]


def build_tokenizer(layer_types: Iterable[str], model_max_length: int = 1024) -> PreTrainedTokenizerFast:
    """A tokenizer whose vocabulary is the special tokens followed by the sorted, distinct
    ``layer_types``. Ids are stable for a given set of types."""
    distinct = sorted(set(layer_types) - set(SPECIAL_TOKENS))
    for token in distinct:
        if not token or any(ch.isspace() for ch in token):
            raise ValueError(f"layer type {token!r} is empty or holds whitespace; it cannot be one token")
    vocab = {token: i for i, token in enumerate(list(SPECIAL_TOKENS) + distinct)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        mask_token=MASK_TOKEN,
        model_max_length=model_max_length,
    )


def build_tokenizer_from_corpora(*corpora) -> PreTrainedTokenizerFast:
    """A tokenizer over every layer type of the given corpora (``datasets.Dataset`` with a
    ``types`` column)."""
    return build_tokenizer(t for corpus in corpora for row in corpus["types"] for t in row)


def _as_types(layers: Sequence) -> list[str]:
    """Layer types from types, Table-1 texts, records or traced layers."""
    out = []
    for layer in layers:
        if isinstance(layer, LayerRecord):
            out.append(layer_type(layer))
        elif hasattr(layer, "record"):
            out.append(layer_type(layer.record))
        elif isinstance(layer, str) and layer.startswith("id:"):
            out.append(layer_type(LayerRecord.from_text(layer)))
        else:
            out.append(str(layer))
    return out


def architecture_text(layers: Sequence) -> str:
    """An architecture as the tokenizer reads it: its layer types joined by spaces."""
    return " ".join(_as_types(layers))


def unk_rate(tokenizer: PreTrainedTokenizerFast, layers: Sequence) -> float:
    """Share of ``layers`` (types, Table-1 texts, records or traced layers) that the
    tokenizer maps to the unknown token."""
    ids = tokenizer(architecture_text(layers), add_special_tokens=False)["input_ids"]
    if not ids:
        return 0.0
    return sum(i == tokenizer.unk_token_id for i in ids) / len(ids)
