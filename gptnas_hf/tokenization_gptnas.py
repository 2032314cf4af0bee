"""The layer-type tokenizer: one token per layer type (see :func:`gptnas_hf.encoding.layer_type`).

Built with the ``tokenizers`` library (a WordLevel model over a fixed, sorted vocabulary,
split on whitespace) and wrapped as a transformers ``PreTrainedTokenizerFast``, so
``AutoTokenizer.from_pretrained("tokenizer")`` loads it with nothing but transformers
installed. An architecture is written as its layer types joined by spaces.

Vocabulary rule: every layer type (:func:`gptnas_hf.encoding.layer_type`: widths relative to
the layer's input, "other" layers by family) that occurs in the training corpora, nothing
else, so every token has been trained. A type outside the vocabulary is read as the nearest
type in it (:func:`gptnas_hf.encoding.nearest_type`):

* inside the tokenizer itself for the types given as ``aliases`` (the shipped tokenizer: every
  type the search space can produce), by its normalizer, so ``AutoTokenizer`` alone reads a
  search-space genome without ``<unk>``;
* by :func:`encode_types`, which is how the package turns layers into ids, for any other type;
  only a type with no relative of its kind (an unknown "other" class) stays ``<unk>``.

``model_max_length`` is the GPT's window (k + 1 = 11 tokens); longer input is cut from the
left (``truncation_side="left"``), keeping the layers nearest the prediction.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import re

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
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


def build_tokenizer(layer_types: Iterable[str], model_max_length: int = DEFAULT_MODEL_MAX_LENGTH,
                    aliases: dict[str, str] | None = None) -> PreTrainedTokenizerFast:
    """A tokenizer whose vocabulary is the special tokens followed by the sorted, distinct
    ``layer_types``. Ids are stable for a given set of types. ``aliases`` (unseen type ->
    a type of the vocabulary) are read as their target by the tokenizer's normalizer."""
    distinct = sorted(set(layer_types) - set(SPECIAL_TOKENS))
    for token in distinct:
        if not token or any(ch.isspace() for ch in token):
            raise ValueError(f"layer type {token!r} is empty or holds whitespace; it cannot be one token")
    vocab = {token: i for i, token in enumerate(list(SPECIAL_TOKENS) + distinct)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    if aliases:
        for alias, target in sorted(aliases.items()):
            if alias in vocab or target not in vocab or not alias or any(ch.isspace() for ch in alias):
                raise ValueError(f"alias {alias!r} -> {target!r}: an alias must be a new type without whitespace "
                                 "and its target a type of the vocabulary")
        backend.normalizer = normalizers.Sequence([
            normalizers.Replace(Regex(rf"(?<!\S){re.escape(alias)}(?!\S)"), target)
            for alias, target in sorted(aliases.items())])
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

    def __init__(self, vocab: dict[str, int], special: set[str], unk_id: int, normalizer):
        self.vocab, self.unk_id, self.normalizer = vocab, unk_id, normalizer
        self.known = tuple(sorted(t for t in vocab if t not in special))
        self.plain_ids: dict[str, int] = {}
        self.backoff: dict[str, int] = {}

    def plain(self, token: str) -> int:
        """The id the tokenizer itself gives (its aliases applied), ``<unk>`` when it has none."""
        found = self.vocab.get(token)
        if found is not None:
            return found
        if token not in self.plain_ids:
            read = self.normalizer.normalize_str(token) if self.normalizer is not None else token
            self.plain_ids[token] = self.vocab.get(read, self.unk_id)
        return self.plain_ids[token]

    def id(self, token: str) -> int:
        found = self.plain(token)
        if found != self.unk_id:
            return found
        if token not in self.backoff:
            nearest = nearest_type(token, self.known)
            self.backoff[token] = self.vocab[nearest] if nearest is not None else self.unk_id
        return self.backoff[token]


def _lookup_for(tokenizer: PreTrainedTokenizerFast) -> _Lookup:
    cached = getattr(tokenizer, "_gptnas_lookup", None)
    if cached is None or len(cached.vocab) != len(tokenizer):
        cached = _Lookup(tokenizer.get_vocab(), set(tokenizer.all_special_tokens), tokenizer.unk_token_id,
                         tokenizer.backend_tokenizer.normalizer)
        tokenizer._gptnas_lookup = cached
    return cached


def encode_types(tokenizer: PreTrainedTokenizerFast, layers: Sequence, backoff: bool = True) -> list[int]:
    """Token ids of ``layers`` (types, Table-1 texts, records or traced layers). With
    ``backoff`` a type outside the vocabulary becomes its nearest known type
    (:func:`gptnas_hf.encoding.nearest_type`), else ``<unk>``."""
    types = _as_types(layers)
    lookup = _lookup_for(tokenizer)
    if not backoff:
        return [lookup.plain(t) for t in types]
    return [lookup.id(t) for t in types]


def unk_rate(tokenizer: PreTrainedTokenizerFast, layers: Sequence, backoff: bool = False) -> float:
    """Share of ``layers`` (types, Table-1 texts, records or traced layers) read as the unknown
    token: by the plain tokenizer (``backoff=False``: types neither in the vocabulary nor among
    its aliases), or by :func:`encode_types` with the backoff."""
    ids = encode_types(tokenizer, layers, backoff=backoff)
    if not ids:
        return 0.0
    return sum(i == tokenizer.unk_token_id for i in ids) / len(ids)
