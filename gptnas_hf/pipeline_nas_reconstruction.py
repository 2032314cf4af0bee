"""``pipeline("nas-reconstruction")``: the paper's Algorithm 1.

Walk a genome's blocks left to right; each block is masked with probability ``mask_rate``.
For a masked block the context is the last k layers of the network *as rebuilt so far*; the
GPT predicts the next layer, the FCN turns context plus that layer into a block class, and a
block of that class takes the masked block's place with the same output width and stride, so
the network stays valid. Genomes of a batch are rebuilt side by side: one GPT call per block
position for the whole batch.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from functools import lru_cache
from typing import Any

import torch
from transformers import Pipeline

from .corpora.common import trace_factory
from .encoding import LayerRecord, layer_type
from .search.schedule import DEFAULT_INITIAL_MASK_RATE, mask_rate_at
from .search_space import Genome, build_block, make_block

__all__ = ["NASReconstructionPipeline", "block_layers"]


@lru_cache(maxsize=65536)
def _block_layers_cached(block_json: str, in_channels: int, size: int) -> tuple[LayerRecord, ...]:
    block = json.loads(block_json)
    layers = trace_factory(lambda: build_block(block, in_channels), (in_channels, size, size))
    return tuple(layer.record for layer in layers)


def block_layers(block: dict, in_channels: int, size: int) -> tuple[LayerRecord, ...]:
    """The layer records of one block fed ``in_channels`` x ``size`` x ``size`` (cached)."""
    return _block_layers_cached(json.dumps(block, sort_keys=True), int(in_channels), int(size))


def _out_size(size: int, stride: int) -> int:
    return (size - 1) // stride + 1


def _kernel_hint(layer_type: str) -> dict:
    """``conv_k5x5_...`` -> ``{"kernel": 5}``: the predicted layer's kernel, for kinds that take one."""
    if layer_type.startswith("conv_k"):
        head = layer_type.split("_")[1][1:]
        side = head.split("x")[0]
        if side.isdigit():
            return {"kernel": int(side)}
    return {}


class NASReconstructionPipeline(Pipeline):
    """Rebuild genomes with the architecture GPT (paper Algorithm 1, Eq. 3).

    Call with one genome (a list of block dicts, its JSON string, or a ``Genome``) or a list
    of them. Parameters: ``mask_rate``, or ``iteration`` + ``max_iterations`` (+
    ``initial_mask_rate``, default 0.4) for Eq. 3; ``window_size`` (default: the model's k);
    ``do_sample`` with ``temperature`` / ``top_k`` (default greedy); ``seed``; ``image_size``
    and ``in_channels`` of the data (the spatial sizes the layers are written with).

    Returns, per genome, a dict: ``genome`` (the new genome as a list), ``predicted_blocks``
    (indices of the replaced blocks: the evaluator trains only these), ``predicted_layers``
    (per replaced block: the GPT's predicted layer type and the Table-1 text of the new block's
    first layer), ``block_probabilities`` (per replaced block: the FCN's class
    probabilities), ``mask_rate``.
    """

    _load_tokenizer = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_processor = False

    def _sanitize_parameters(self, mask_rate=None, iteration=None, max_iterations=None, initial_mask_rate=None,
                             window_size=None, do_sample=None, temperature=None, top_k=None, seed=None,
                             image_size=None, in_channels=None, **kwargs):
        if kwargs:
            raise TypeError(f"unknown nas-reconstruction parameter(s): {', '.join(sorted(kwargs))}")
        params: dict[str, Any] = {}
        if mask_rate is not None and (iteration is not None or max_iterations is not None):
            raise ValueError("give either mask_rate or iteration/max_iterations, not both")
        if mask_rate is not None:
            if not 0.0 <= float(mask_rate) <= 1.0:
                raise ValueError(f"mask_rate must lie in [0, 1], got {mask_rate}")
            params["mask_rate"] = float(mask_rate)
        elif iteration is not None or max_iterations is not None:
            if iteration is None or max_iterations is None:
                raise ValueError("iteration and max_iterations go together")
            params["mask_rate"] = mask_rate_at(int(iteration), int(max_iterations),
                                               DEFAULT_INITIAL_MASK_RATE if initial_mask_rate is None else float(initial_mask_rate))
        elif initial_mask_rate is not None:
            params["mask_rate"] = float(initial_mask_rate)
        for key, value in (("window_size", window_size), ("do_sample", do_sample), ("temperature", temperature),
                           ("top_k", top_k), ("seed", seed), ("image_size", image_size), ("in_channels", in_channels)):
            if value is not None:
                params[key] = value
        if "temperature" in params and params["temperature"] <= 0:
            raise ValueError(f"temperature must be positive, got {params['temperature']}")
        return {}, params, {}

    # -- the Pipeline protocol, one genome at a time ------------------------------------------
    def preprocess(self, genome):
        return {"genome": Genome.from_json(genome)}

    def _forward(self, model_inputs, **params):
        return self.reconstruct([model_inputs["genome"]], **params)[0]

    def postprocess(self, model_outputs):
        return model_outputs

    @staticmethod
    def _is_single(inputs) -> bool:
        if isinstance(inputs, (str, Genome)):
            return True
        return isinstance(inputs, list) and (not inputs or isinstance(inputs[0], dict))

    def __call__(self, inputs, **kwargs):
        """One genome -> one result dict; a list of genomes -> a list, rebuilt as one batch."""
        _, params, _ = self._sanitize_parameters(**kwargs)
        single = self._is_single(inputs)
        genomes = [Genome.from_json(g) for g in ([inputs] if single else list(inputs))]
        results = self.reconstruct(genomes, **params)
        return results[0] if single else results

    # -- Algorithm 1 -------------------------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, genomes: list[Genome], mask_rate: float = DEFAULT_INITIAL_MASK_RATE, window_size: int | None = None,
                    do_sample: bool = False, temperature: float = 1.0, top_k: int | None = None, seed: int = 0,
                    image_size: int = 32, in_channels: int = 3) -> list[dict]:
        model, tok = self.model, self.tokenizer
        k = int(window_size or model.config.window_size)
        if not 1 <= k <= model.config.window_size:
            raise ValueError(f"window_size must lie in [1, {model.config.window_size}] for this model, got {k}")
        labels = model.config.block_labels
        special = torch.tensor(sorted(set(tok.all_special_ids)), device=model.device)
        states = []
        for genome in genomes:
            rng = random.Random(f"{seed}:{genome.hash()}")  # order-free: batched equals unbatched
            states.append({
                "blocks": genome.to_list(), "masked": [rng.random() < mask_rate for _ in range(len(genome))],
                "rng": rng, "gen": torch.Generator().manual_seed(rng.getrandbits(63)),
                "tokens": [tok.bos_token_id], "layers": 0, "channels": int(in_channels), "size": int(image_size),
                "predicted": [], "predicted_layers": [], "probabilities": [],
            })
        for index in range(max((len(g) for g in genomes), default=0)):
            active = [s for s in states if index < len(s["blocks"])]
            masked = [s for s in active if s["masked"][index]]
            if masked:
                self._replace_blocks(masked, index, k, labels, special, do_sample, temperature, top_k)
            for state in active:
                block = state["blocks"][index]
                records = block_layers(block, state["channels"], state["size"])
                if state["masked"][index]:
                    first = replace(records[0], id=state["layers"] + 1)
                    state["predicted_layers"][-1]["text"] = first.to_text()
                state["tokens"] += tok.convert_tokens_to_ids([layer_type(r) for r in records])
                state["layers"] += len(records)
                state["channels"] = block["width"]
                state["size"] = _out_size(state["size"], block["stride"])
        return [
            {"genome": s["blocks"], "predicted_blocks": s["predicted"], "predicted_layers": s["predicted_layers"],
             "block_probabilities": s["probabilities"], "mask_rate": mask_rate}
            for s in states
        ]

    def _replace_blocks(self, states, index, k, labels, special, do_sample, temperature, top_k):
        model, tok = self.model, self.tokenizer
        contexts = [s["tokens"][-k:] for s in states]
        ids, mask = self._pad(contexts)
        logits = model.next_layer_logits(ids, mask).float()
        logits[:, special] = float("-inf")
        choices = [self._choose(row, s["gen"], do_sample, temperature, top_k) for row, s in zip(logits, states)]
        windows = [context + [choice] for context, choice in zip(contexts, choices)]
        ids, mask = self._pad(windows)
        block_probs = model.classify_block(model.block_window(ids, mask)).float().softmax(-1)
        for state, choice, probs in zip(states, choices, block_probs):
            label = int(self._choose(probs.log(), state["gen"], do_sample, temperature, None))
            predicted_type = tok.convert_ids_to_tokens(int(choice))
            old = state["blocks"][index]
            state["blocks"][index] = make_block(labels[label], old["width"], old["stride"], rng=state["rng"],
                                                **_kernel_hint(predicted_type))
            state["predicted"].append(index)
            state["predicted_layers"].append({"block": index, "type": predicted_type, "text": None})
            state["probabilities"].append({"block": index, "probabilities": {
                name: round(float(p), 6) for name, p in zip(labels, probs.tolist())}})

    def _pad(self, rows):
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=self.model.device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=self.model.device)
        return ids, mask

    @staticmethod
    def _choose(logits, generator, do_sample, temperature, top_k) -> int:
        if not do_sample:
            return int(logits.argmax())
        logits = logits / temperature
        if top_k:
            kth = logits.topk(min(int(top_k), logits.numel())).values[-1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        return int(torch.multinomial(logits.softmax(-1).cpu(), 1, generator=generator))

