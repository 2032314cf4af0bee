"""The layer-type tokenizer: one token per layer type (see :func:`gptnas_hf.encoding.layer_type`).

Built with the ``tokenizers`` library (a WordLevel model over a fixed, sorted vocabulary,
split on whitespace) and wrapped as a transformers ``PreTrainedTokenizerFast``, so
``AutoTokenizer.from_pretrained("tokenizer")`` loads it with nothing but transformers
installed. An architecture is written as its layer types joined by spaces.

Vocabulary rule: every layer type (:func:`gptnas_hf.encoding.layer_type`: widths relative to
the layer's input, "other" layers by family) that occurs in the training corpora, nothing
else, so every token has been trained. A type outside the vocabulary is read as the nearest
type in it (:func:`gptnas_hf.encoding.nearest_type`) by :func:`encode_types`, which is how the
package turns layers into ids; only a type with no relative of its kind (an unknown "other"
class) stays ``<unk>``. The plain tokenizer (``AutoTokenizer``) knows nothing of the backoff
and writes ``<unk>`` for every unseen type.

``model_max_length`` is the GPT's window (k + 1 = 11 tokens); longer input is cut from the
left (``truncation_side="left"``), keeping the layers nearest the prediction.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Sequence

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from .encoding import LayerRecord, layer_type, nearest_type

PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN, MASK_TOKEN = "<pad>", "<s>", "</s>", "<unk>", "<mask>"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN, MASK_TOKEN)

__all__ = [
    "SPECIAL_TOKENS",
    "build_tokenizer",
    "architecture_text",
    "encode_types",
    "unk_rate",
]

#: the GPT's window k + 1 (GPTNASConfig's default window_size 10, plus the predicted layer)
DEFAULT_MODEL_MAX_LENGTH = 11


def build_tokenizer(layer_types: Iterable[str], model_max_length: int = DEFAULT_MODEL_MAX_LENGTH) -> PreTrainedTokenizerFast:
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
        truncation_side="left",
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


class _Lookup:
    """A tokenizer's vocabulary and the backoff decisions made so far (one per vocabulary)."""

    def __init__(self, vocab: dict[str, int], special: set[str], unk_id: int):
        self.vocab, self.unk_id = vocab, unk_id
        self.known = tuple(sorted(t for t in vocab if t not in special))
        self.backoff: dict[str, int] = {}

    def id(self, token: str) -> int:
        found = self.vocab.get(token)
        if found is not None:
            return found
        if token not in self.backoff:
            nearest = nearest_type(token, self.known)
            self.backoff[token] = self.vocab[nearest] if nearest is not None else self.unk_id
        return self.backoff[token]


@lru_cache(maxsize=64)
def _lookup(vocab_items: frozenset, special: frozenset, unk_id: int) -> _Lookup:
    return _Lookup(dict(vocab_items), set(special), unk_id)


def _lookup_for(tokenizer: PreTrainedTokenizerFast) -> _Lookup:
    cached = getattr(tokenizer, "_gptnas_lookup", None)
    if cached is None or len(cached.vocab) != len(tokenizer):
        cached = _lookup(frozenset(tokenizer.get_vocab().items()), frozenset(tokenizer.all_special_tokens),
                         tokenizer.unk_token_id)
        tokenizer._gptnas_lookup = cached
    return cached


def encode_types(tokenizer: PreTrainedTokenizerFast, layers: Sequence, backoff: bool = True) -> list[int]:
    """Token ids of ``layers`` (types, Table-1 texts, records or traced layers). With
    ``backoff`` a type outside the vocabulary becomes its nearest known type
    (:func:`gptnas_hf.encoding.nearest_type`), else ``<unk>``."""
    types = _as_types(layers)
    lookup = _lookup_for(tokenizer)
    if not backoff:
        return [lookup.vocab.get(t, lookup.unk_id) for t in types]
    return [lookup.id(t) for t in types]


def unk_rate(tokenizer: PreTrainedTokenizerFast, layers: Sequence, backoff: bool = False) -> float:
    """Share of ``layers`` (types, Table-1 texts, records or traced layers) read as the unknown
    token: by the plain tokenizer (``backoff=False``: the share of types outside the
    vocabulary), or by :func:`encode_types` with the backoff."""
    ids = encode_types(tokenizer, layers, backoff=backoff)
    if not ids:
        return 0.0
    return sum(i == tokenizer.unk_token_id for i in ids) / len(ids)
