"""The architecture GPT's likelihood of a whole network: a zero-cost score, and what the
``nas-reconstruction`` pipeline ranks a masked unit's alternatives by in a space other than
the block genome.

The score (:class:`ArchitectureScorer`). A network is read exactly as the GPT was trained on it
(:func:`gptnas_hf.training.windows_dataset`): ``ids = [<s>] + encode_types(layers) + [</s>]``
(types outside the vocabulary read through the backoff) with ``locations = [0] +
[location_id(block_index, num_blocks, buckets) per layer] + [0]``, where ``block_index`` is
the tracer's (:attr:`gptnas_hf.encoding.TracedLayer.block_index`: the layers of a registered
block class share one index, every other leaf is a block of its own) and ``num_blocks`` is
the largest index plus one. For every position ``t >= 1`` the GPT gives ``log p(ids[t] |
ids[max(0, t - k):t])``, the previous (up to) ``k = window_size`` tokens with their location
ids; the score is the **mean** over the ``len(ids) - 1`` positions (so long networks are not
penalised for their length), and the sum is reported beside it.

How it is computed. A network is cut into its prediction windows of ``k + 1`` tokens (stride 1):
the first window ``ids[0:k + 1]`` gives positions ``1..k`` (the GPT is causal: each position
sees only the tokens before it), every later window ``ids[s:s + k + 1]`` gives its last
position ``s + k``; a network of at most ``k + 1`` tokens is one shorter window. A window's
token and location ids decide its log-probabilities, so identical windows are computed once:
across the networks of a call and, through an LRU dict (``cache_size`` windows), across calls.
The unique windows run in batches of ``batch_size`` under ``torch.no_grad`` in eval mode (one
length per batch, so nothing is padded), then each network's log-probabilities are summed.
Over NAS-Bench-201's 15,625 cells about 2.2 million windows hold about 40 thousand distinct
ones. A change of the model's weights (fine-tuning in place, ``load_state_dict``, a new dtype)
is noticed (the parameters' identities, version counters and sums) and empties the window
cache.

The persistent cache (:class:`ScoreCache`, :func:`cached_space_scores`): one JSON file
``{architecture hash: mean score}`` per checkpoint (:func:`checkpoint_identity`: the first 16
hex digits of the sha256 of its ``model.safetensors`` and ``config.json``), space and input
shape, under ``cache_dir`` (default ``$GPTNAS_CACHE``, else ``~/.cache/gptnas_hf/scores``),
written atomically (a temporary file and ``os.replace``). A corrupt file is reported with a
warning and its scores recomputed. So scoring a whole table-benchmark space happens once per
checkpoint and shape; later lookups are a dict access.

A flat model-side module: it imports torch, transformers, the standard library and flat
modules of ``gptnas_hf`` only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import tempfile
import warnings
import weakref
from array import array
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch

from .configuration_gptnas import location_id
from .encoding import LayerRecord, trace_factory
from .tokenization_gptnas import encode_types

__all__ = [
    "ArchitectureScorer",
    "ScoreCache",
    "cached_space_scores",
    "checkpoint_identity",
    "default_cache_dir",
    "prediction_windows",
    "SCORE_VERSION",
]

#: the score's definition; a cache file written under another version is not read
SCORE_VERSION = 1
#: networks scored at a time by :meth:`ArchitectureScorer.score_layers` (bounds the memory a call
#: of many networks takes; windows are still shared across chunks through the LRU cache)
CHUNK_NETWORKS = 1024
#: bytes per token of a window's key (a 32-bit int: token id * (buckets + 1) + location)
_TYPECODE = "i" if array("i").itemsize == 4 else "l"
_ITEM = 4
#: windows per forward pass when none is given: on a CPU larger batches are no faster (measured
#: on one thread with the shipped checkpoint), on an accelerator they are
CPU_BATCH_SIZE = 128
ACCELERATOR_BATCH_SIZE = 4096
#: layer records whose token id a scorer remembers (emptied when full)
RECORD_MEMO = 1 << 16
#: at least this many architectures to compute before :func:`cached_space_scores` shows a bar
PROGRESS_MIN = 256


def prediction_windows(length: int, window_size: int) -> list[tuple[int, int, bool]]:
    """The windows a sequence of ``length`` tokens is scored with: ``(start, end, first)``
    (``ids[start:end]``); ``first`` means every position after the window's first counts (the
    window that starts the network), otherwise only its last position does. Together they
    predict each position ``t >= 1`` exactly once, from ``ids[max(0, t - window_size):t]``."""
    if window_size < 1:
        raise ValueError(f"window_size must be at least 1, got {window_size}")
    if length < 2:
        return []
    k1 = window_size + 1
    return [(0, min(length, k1), True)] + [(s, s + k1, False) for s in range(1, length - k1 + 1)]


class ArchitectureScorer:
    """The GPT's mean log-likelihood of networks' layer sequences (module doc).

    Args:
        model: a :class:`~gptnas_hf.modeling_gptnas.GPTNASForArchitectureModeling`.
        tokenizer: its tokenizer.
        batch_size: windows per forward pass (default: 128 on a CPU, where larger batches are
            no faster, and 4096 on an accelerator).
        cache_size: windows kept across calls (an LRU dict); 0 keeps none.
        window_size: k, the context of each prediction (default: the model's ``window_size``;
            at most that).

    ``stats`` counts, over the scorer's life, the networks scored, the windows they were cut
    into, the distinct windows among them (per chunk of :data:`CHUNK_NETWORKS` networks,
    summed) and the windows the GPT actually computed (the rest came from the cache);
    :attr:`dedup_ratio` is windows over computed.
    """

    def __init__(self, model, tokenizer, batch_size: int | None = None, cache_size: int = 1 << 20,
                 window_size: int | None = None):
        config = model.config
        largest = min(int(config.window_size), int(config.n_positions) - 1)
        if window_size is None:
            window_size = largest
        if isinstance(window_size, bool) or not isinstance(window_size, int) or not 1 <= window_size <= largest:
            raise ValueError(f"window_size must be an integer in [1, {largest}] for this model, got {window_size!r}")
        if batch_size is None:
            device = next(model.parameters()).device
            batch_size = CPU_BATCH_SIZE if device.type == "cpu" else ACCELERATOR_BATCH_SIZE
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"cache_size must be a non-negative integer, got {cache_size!r}")
        self.model, self.tokenizer = model, tokenizer
        self.window_size = window_size
        self.batch_size = batch_size
        self.cache_size = cache_size
        self.buckets = int(getattr(config, "location_buckets", 0) or 0)
        self._base = self.buckets + 1  # a window's key packs token id and location as id * base + location
        self._cache: OrderedDict[bytes, tuple[float, float]] = OrderedDict()
        self._fingerprint = None
        self._record_ids: dict[LayerRecord, int] = {}
        self.stats = {"networks": 0, "windows": 0, "unique": 0, "computed": 0}

    # -- what the GPT reads ---------------------------------------------------------------
    def sequence(self, layers: Sequence, block_index: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
        """``(ids, locations)`` of one network, as training reads it (module doc): ``layers`` are
        records, traced layers, Table-1 texts or types; ``block_index`` each layer's block (taken
        from traced layers when None)."""
        if block_index is None:
            if layers and all(hasattr(layer, "block_index") for layer in layers):
                block_index = [layer.block_index for layer in layers]
            elif self.buckets:
                raise ValueError("this model reads location ids: give each layer's block index (trace's "
                                 "TracedLayer.block_index, or the space's network_block_index)")
            else:
                block_index = [0] * len(layers)
        block_index = [int(b) for b in block_index]
        if len(block_index) != len(layers):
            raise ValueError(f"{len(layers)} layers but {len(block_index)} block indices")
        if any(b < 0 for b in block_index):
            raise ValueError("block indices must be non-negative")
        tok = self.tokenizer
        ids = [tok.bos_token_id] + self._encode(layers) + [tok.eos_token_id]
        if self.buckets:
            table = _locations(max(block_index, default=0) + 1, self.buckets)
            locations = [0] + [table[b] for b in block_index] + [0]
        else:
            locations = [0] * len(ids)
        return ids, locations

    def _encode(self, layers: Sequence) -> list[int]:
        """``encode_types`` with a memo of the records seen (a record's type is worked out once)."""
        memo = self._record_ids
        if not all(isinstance(layer, LayerRecord) for layer in layers):
            return encode_types(self.tokenizer, list(layers))
        ids = [memo.get(layer) for layer in layers]
        unseen = [i for i, found in enumerate(ids) if found is None]
        if unseen:
            if len(memo) > RECORD_MEMO:
                memo.clear()
            for i, found in zip(unseen, encode_types(self.tokenizer, [layers[i] for i in unseen])):
                ids[i] = memo[layers[i]] = found
        return ids

    def networks(self, space, archs: Iterable, in_channels: int = 3, image_size: int = 32,
                 num_classes: int = 10) -> Iterator[tuple[list, list[int]]]:
        """``(records, block_index)`` of each architecture's network: the space's
        ``network_layers`` and ``network_block_index`` when it has both, else a trace of its
        ``build_network`` on the meta device."""
        space = _as_space(space)
        fast = callable(getattr(space, "network_block_index", None))
        for arch in archs:
            if fast:
                try:
                    records = space.network_layers(arch, in_channels=in_channels, image_size=image_size,
                                                   num_classes=num_classes)
                    blocks = space.network_block_index(arch, in_channels=in_channels, image_size=image_size,
                                                       num_classes=num_classes)
                except NotImplementedError:
                    pass
                else:
                    yield list(records), list(blocks)
                    continue
            loaded = space.load(arch)
            traced = trace_factory(lambda: space.build_network(loaded, in_channels=in_channels,
                                                               num_classes=num_classes),
                                   (in_channels, image_size, image_size))
            yield [t.record for t in traced], [t.block_index for t in traced]

    # -- scores -----------------------------------------------------------------------------
    def score(self, space, archs: Iterable, in_channels: int = 3, image_size: int = 32,
              num_classes: int = 10) -> list[float]:
        """The mean log-likelihood of each architecture's network (higher: more like what the
        GPT was trained on). ``space``: a :class:`~gptnas_hf.search_space_protocol.SearchSpace`
        or a registered space's name."""
        return [d["mean"] for d in self.score_layers(self.networks(space, archs, in_channels, image_size,
                                                                   num_classes))]

    def score_layers(self, networks: Iterable) -> list[dict]:
        """Per network, given as a tuple ``(layers, block_index)`` (or a list of traced layers), its
        ``{"mean": ..., "sum": ..., "n": ...}``: the mean and summed log-likelihood over its
        ``n`` predicted positions (module doc)."""
        self._check_weights()
        results: list[dict] = []
        chunk: list = []
        for network in networks:
            chunk.append(network)
            if len(chunk) >= CHUNK_NETWORKS:
                results += self._score_chunk(chunk)
                chunk = []
        if chunk:
            results += self._score_chunk(chunk)
        return results

    def clear_cache(self) -> None:
        """Forget every window's log-probabilities."""
        self._cache.clear()

    @property
    def dedup_ratio(self) -> float:
        """Windows read over windows computed, over this scorer's life (``stats``)."""
        return self.stats["windows"] / max(self.stats["computed"], 1)

    def _score_chunk(self, networks: list) -> list[dict]:
        k1 = self.window_size + 1
        unique: dict[bytes, int] = {}
        plans = []
        for network in networks:
            if isinstance(network, tuple) and len(network) == 2:
                layers, blocks = network
            else:
                layers, blocks = network, None
            ids, locations = self.sequence(layers, blocks)
            base = self._base
            buffer = array(_TYPECODE, [i * base + where for i, where in zip(ids, locations)]).tobytes()
            n = len(ids)
            first = unique.setdefault(buffer[:_ITEM * min(n, k1)], len(unique))
            rest = [unique.setdefault(buffer[_ITEM * s:_ITEM * (s + k1)], len(unique)) for s in range(1, n - k1 + 1)]
            plans.append((first, rest, n - 1))
        keys = list(unique)
        values = self._values(keys)
        self.stats["networks"] += len(networks)
        self.stats["windows"] += sum(1 + len(rest) for _, rest, _ in plans)
        self.stats["unique"] += len(keys)
        out = []
        for first, rest, n in plans:
            total = values[first][0] + math.fsum(values[i][1] for i in rest)
            out.append({"mean": total / n if n else 0.0, "sum": total, "n": n})
        return out

    def _values(self, keys: list[bytes]) -> list[tuple[float, float]]:
        """(sum over every position, last position) of each window: cached or computed."""
        found: list[tuple[float, float] | None] = [None] * len(keys)
        missing: list[int] = []
        cache = self._cache
        for i, key in enumerate(keys):
            hit = cache.get(key)
            if hit is None:
                missing.append(i)
            else:
                cache.move_to_end(key)
                found[i] = hit
        if missing:
            computed = self._compute([keys[i] for i in missing])
            for i, value in zip(missing, computed):
                found[i] = value
                if self.cache_size:
                    cache[keys[i]] = value
            while len(cache) > self.cache_size:
                cache.popitem(last=False)
            self.stats["computed"] += len(missing)
        return found  # type: ignore[return-value]

    @torch.no_grad()
    def _compute(self, keys: list[bytes]) -> list[tuple[float, float]]:
        model = self.model
        device = next(model.parameters()).device
        by_length: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            by_length.setdefault(len(key) // _ITEM, []).append(i)
        out: list[tuple[float, float] | None] = [None] * len(keys)
        was_training = model.training
        model.eval()
        try:
            for length, rows in sorted(by_length.items()):
                for lo in range(0, len(rows), self.batch_size):
                    part = rows[lo:lo + self.batch_size]
                    packed = bytearray(b"".join(keys[i] for i in part))
                    codes = torch.frombuffer(packed, dtype=torch.int32).reshape(len(part), length).long()
                    ids = (codes // self._base).to(device)
                    locations = (codes % self._base).to(device) if self.buckets else None
                    logits = model(input_ids=ids, location_ids=locations).logits
                    logp = logits[:, :-1].float().log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
                    logp = logp.double().cpu()
                    totals, lasts = logp.sum(1).tolist(), logp[:, -1].tolist()
                    for i, total, last in zip(part, totals, lasts):
                        out[i] = (total, last)
        finally:
            model.train(was_training)
        return out  # type: ignore[return-value]

    def _check_weights(self) -> None:
        """Empty the window cache when the model's weights have changed since the last call."""
        fingerprint = _weights_fingerprint(self.model)
        if fingerprint != self._fingerprint:
            self._cache.clear()
            self._fingerprint = fingerprint


@functools.lru_cache(maxsize=4096)
def _locations(num_blocks: int, buckets: int) -> tuple[int, ...]:
    return tuple(location_id(b, num_blocks, buckets) for b in range(num_blocks))


def _weights_fingerprint(model) -> tuple:
    """Changes when any parameter is changed in place (its version counter, and its sum for a
    change made through ``.data``, which the counter misses), replaced or cast."""
    params = list(model.parameters())
    with torch.no_grad():
        sums = torch.stack([p.detach().double().sum() for p in params]).tolist() if params else []
    return (id(model),) + tuple((id(p), p.data_ptr(), getattr(p, "_version", 0), p.dtype, str(p.device), total)
                                for p, total in zip(params, sums))


def _as_space(space):
    if isinstance(space, str):
        from .search_space_protocol import create_space

        return create_space(space)
    return space


# ------------------------------------------------------------------------------------------
# checkpoint identity


def default_cache_dir() -> Path:
    """``$GPTNAS_CACHE``, else ``~/.cache/gptnas_hf/scores``."""
    return Path(os.environ.get("GPTNAS_CACHE") or "~/.cache/gptnas_hf/scores").expanduser()


def _weight_files(directory: Path) -> list[Path]:
    single = directory / "model.safetensors"
    if single.is_file():
        return [single]
    return sorted(directory.glob("*.safetensors"))


def _file_identity(directory: Path) -> str:
    files = _weight_files(directory)
    config = directory / "config.json"
    if not files or not config.is_file():
        raise FileNotFoundError(f"{directory} holds no model.safetensors and config.json: not a checkpoint directory")
    digest = hashlib.sha256()
    for path in files + [config]:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


_VOLATILE_CONFIG = ("_name_or_path", "transformers_version", "_commit_hash", "name_or_path")


def _config_subset(values: dict) -> dict:
    return {k: v for k, v in values.items() if k not in _VOLATILE_CONFIG}


def _matches_directory(model, directory: Path) -> bool:
    """Whether ``model``'s weights and config are those saved in ``directory``."""
    from safetensors.torch import load_file

    try:
        with open(directory / "config.json", encoding="utf-8") as handle:
            saved_config = json.load(handle)
        files = _weight_files(directory)
        saved: dict[str, torch.Tensor] = {}
        for path in files:
            saved.update(load_file(str(path)))
    except (OSError, ValueError):
        return False
    ours = _config_subset(model.config.to_dict())
    for key in ("window_size", "n_positions", "location_buckets", "vocab_size", "n_embd", "n_layer", "n_head"):
        if saved_config.get(key) != ours.get(key):
            return False
    state = model.state_dict()
    pointers = {}
    for name, tensor in state.items():
        if name in saved:
            theirs = saved[name]
            if tensor.shape != theirs.shape or not torch.equal(tensor.detach().cpu(), theirs.to(tensor.dtype)):
                return False
            pointers[tensor.data_ptr()] = name
    # a tensor absent from the file must be tied to one in it (lm_head.weight)
    return all(name in saved or tensor.data_ptr() in pointers for name, tensor in state.items())


def _memory_identity(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode("utf-8"))
        digest.update(str(tensor.dtype).encode("utf-8"))
        digest.update(str(tuple(tensor.shape)).encode("utf-8"))
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    digest.update(json.dumps(_config_subset(model.config.to_dict()), sort_keys=True, default=str).encode("utf-8"))
    return digest.hexdigest()[:16]


#: model -> (its weights' fingerprint, its identity)
_MODEL_IDENTITIES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def checkpoint_identity(source) -> str:
    """The first 16 hex digits of the sha256 of a checkpoint's ``model.safetensors`` and
    ``config.json``. ``source``: a checkpoint directory, or a model / pipeline / scorer in
    memory: its weights are compared with those of the directory it was loaded from, and a
    model whose weights differ (fine-tuned in memory) gets the digest of its own tensors and
    config instead."""
    if isinstance(source, (str, os.PathLike)):
        directory = Path(source)
        if directory.is_dir():
            return _file_identity(directory)
        source = _load_scorer(str(source))
    model = getattr(source, "model", source)
    fingerprint = _weights_fingerprint(model)
    held = _MODEL_IDENTITIES.get(model)
    if held is not None and held[0] == fingerprint:
        return held[1]
    name = str(getattr(model, "name_or_path", "") or "")
    directory = Path(name)
    identity = None
    if name and directory.is_dir() and _weight_files(directory) and _matches_directory(model, directory):
        identity = _file_identity(directory)
    identity = identity or _memory_identity(model)
    _MODEL_IDENTITIES[model] = (fingerprint, identity)
    return identity


# ------------------------------------------------------------------------------------------
# the persistent cache

#: loaded cache files: path -> ((mtime_ns, size), {hash: score})
_LOADED: dict[str, tuple[tuple[int, int], dict[str, float]]] = {}


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)) or "space"


class ScoreCache:
    """The stored scores of one checkpoint, space and input shape: a JSON file
    ``{architecture hash: score}`` (module doc). ``load`` reads it (a corrupt file: a warning
    and an empty dict, so its scores are recomputed); ``update`` merges new scores with what
    the file holds now and writes it atomically."""

    def __init__(self, identity: str, space_name: str, in_channels: int = 3, image_size: int = 32,
                 num_classes: int = 10, cache_dir: str | os.PathLike | None = None, tag: str = ""):
        for name, value in (("in_channels", in_channels), ("image_size", image_size), ("num_classes", num_classes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        name = (f"{_safe_name(space_name)}_c{in_channels}_s{image_size}_n{num_classes}{_safe_name(tag) if tag else ''}"
                f"_v{SCORE_VERSION}.json")
        self.identity = identity
        self.path = root / _safe_name(identity) / name

    def _signature(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def load(self, warn: bool = True) -> dict[str, float]:
        """The stored scores (a copy held in memory while the file is unchanged)."""
        signature = self._signature()
        if signature is None:
            return {}
        key = str(self.path)
        held = _LOADED.get(key)
        if held is not None and held[0] == signature:
            return held[1]
        problem = None
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            problem, data = f"{type(error).__name__}: {error}", None
        if problem is None:
            if not isinstance(data, dict):
                problem = f"expected a JSON object of scores, got {type(data).__name__}"
            else:
                bad = next((k for k, v in data.items()
                            if isinstance(v, bool) or not isinstance(v, (int, float))), None)
                if bad is not None:
                    problem = f"the score of {bad!r} is {data[bad]!r}, not a number"
        if problem is not None:
            if warn:
                warnings.warn(f"score cache {self.path} is corrupt ({problem}); its scores are recomputed "
                              "and the file rewritten", RuntimeWarning, stacklevel=2)
            _LOADED.pop(key, None)
            return {}
        scores = {str(k): float(v) for k, v in data.items()}
        _LOADED[key] = (signature, scores)
        return scores

    def update(self, scores: dict[str, float]) -> None:
        """Merge ``scores`` into the file (what another process wrote meanwhile is kept) and
        write it atomically."""
        if not scores:
            return
        merged = dict(self.load(warn=False))
        merged.update({str(k): float(v) for k, v in scores.items()})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=self.path.parent,
                                             prefix=self.path.name + ".", suffix=".tmp", delete=False)
        try:
            with handle:
                json.dump(merged, handle, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(handle.name, self.path)
        except BaseException:
            try:
                os.unlink(handle.name)
            except OSError:
                pass
            raise
        signature = self._signature()
        if signature is not None:
            _LOADED[str(self.path)] = (signature, merged)


_SCORERS: dict[str, ArchitectureScorer] = {}


def _load_scorer(path: str) -> ArchitectureScorer:
    """The scorer of a checkpoint (loaded once per path in a process)."""
    if path not in _SCORERS:
        from transformers import AutoTokenizer

        from .modeling_gptnas import GPTNASForArchitectureModeling

        model = GPTNASForArchitectureModeling.from_pretrained(path)
        model.eval()
        _SCORERS[path] = ArchitectureScorer(model, AutoTokenizer.from_pretrained(path))
    return _SCORERS[path]


def _as_scorer(source) -> ArchitectureScorer:
    if isinstance(source, ArchitectureScorer):
        return source
    if source is None:
        from .default_model import DEFAULT_MODEL

        source = DEFAULT_MODEL
    if isinstance(source, (str, os.PathLike)):
        return _load_scorer(str(source))
    make = getattr(source, "architecture_scorer", None)  # the nas-reconstruction pipeline's own
    if callable(make):
        return make()
    if hasattr(source, "model") and hasattr(source, "tokenizer"):
        return ArchitectureScorer(source.model, source.tokenizer)
    raise TypeError(f"expected an ArchitectureScorer, a nas-reconstruction pipeline or a checkpoint path, "
                    f"got {type(source).__name__}")


def cached_space_scores(scorer_or_model_path, space, archs: Sequence, in_channels: int = 3, image_size: int = 32,
                        num_classes: int = 10, cache_dir: str | os.PathLike | None = None,
                        progress: bool = True) -> list[float]:
    """The mean log-likelihood of each architecture (:meth:`ArchitectureScorer.score`), read
    from the persistent cache (:class:`ScoreCache`) and computed, then stored, only for the
    architectures it lacks. ``scorer_or_model_path``: an :class:`ArchitectureScorer`, a
    ``nas-reconstruction`` pipeline, a checkpoint directory, or None (the shipped
    checkpoint); ``space``: a space or a registered space's name. A progress bar shows when
    many are computed (``progress``)."""
    scorer = _as_scorer(scorer_or_model_path)
    space = _as_space(space)
    model_k = min(int(scorer.model.config.window_size), int(scorer.model.config.n_positions) - 1)
    tag = "" if scorer.window_size == model_k else f"_k{scorer.window_size}"
    cache = ScoreCache(checkpoint_identity(scorer), space.name or type(space).__name__, in_channels, image_size,
                       num_classes, cache_dir=cache_dir, tag=tag)
    loaded = [space.load(a) for a in archs]
    hashes = [space.hash(a) for a in loaded]
    stored = cache.load()
    todo: dict[str, Any] = {}
    for h, arch in zip(hashes, loaded):
        if h not in stored and h not in todo:
            todo[h] = arch
    new: dict[str, float] = {}
    if todo:
        from tqdm.auto import tqdm

        items = list(todo.items())
        bar = tqdm(total=len(items), desc=f"GPT scores ({space.name})", unit="arch",
                   disable=not progress or len(items) < PROGRESS_MIN)
        try:
            for lo in range(0, len(items), CHUNK_NETWORKS):
                part = items[lo:lo + CHUNK_NETWORKS]
                scores = scorer.score(space, [a for _, a in part], in_channels=in_channels, image_size=image_size,
                                      num_classes=num_classes)
                new.update((h, s) for (h, _), s in zip(part, scores))
                bar.update(len(part))
        finally:
            bar.close()
            cache.update(new)  # what was computed is kept, also when interrupted
        stored = cache.load(warn=False) if new else stored
    return [stored[h] if h in stored else new[h] for h in hashes]
