"""``pipeline("nas-reconstruction")``: the paper's Algorithm 1.

Walk a genome's blocks left to right; each block is masked with probability ``mask_rate``.
For a masked block the context is the last k layers of the network *as rebuilt so far* (with
their locations, when the model reads them); a new block with the masked block's output width
and stride takes its place, so the network stays valid. How the new block is chosen
(``method``):

* ``"likelihood"`` (default): every candidate block (:func:`candidate_blocks`: each kind the
  GPT's block head knows with the parameter settings that matter, its ``BlockKind.candidates``,
  e.g. a conv's kernel and activation, a bottleneck's groups) is written as its own layer
  sequence in this context; its score is the GPT's mean log-likelihood of those layers and of
  the first layer of the block that follows, plus the log-probability the FCN gives its kind
  from the context and its first layer. The best candidate is taken (greedy) or one is sampled from ``softmax(score / temperature)``
  (``do_sample``). Everything the GPT knows about the layers, kernel, width ratio, stride,
  grouping and activation included, decides the block.
* ``"predict"``: the paper's literal reading: the GPT predicts the next layer, the FCN turns
  context plus that layer into a block class, and a block of that class is made with the
  predicted layer's kernel; its other parameters are drawn at random.

Genomes of a batch are rebuilt side by side: one batch of GPT calls per block position for
the whole batch.

Other search spaces (``space=``: a registered space's name such as ``"nas-bench-201"``, or a
:class:`~gptnas_hf.search_space_protocol.SearchSpace`): the architectures are read with the
space's ``load`` (one architecture, e.g. NAS-Bench-201's ``|nor_conv_3x3~0|+|...|`` string, or a
list of them) and rewritten unit by unit by
:func:`~gptnas_hf.unit_reconstruction.reconstruct_units`: a masked unit becomes the alternative
whose whole network the GPT finds most likely (its mean log-likelihood,
:class:`~gptnas_hf.architecture_score.ArchitectureScorer`, for the data's ``in_channels``,
``image_size`` and ``num_classes``). Only ``method="likelihood"`` applies there.
:meth:`NASReconstructionPipeline.score` gives that mean log-likelihood of architectures of any
space (a zero-cost score).
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from functools import lru_cache
from typing import Any

import torch
from transformers import Pipeline

from .configuration_gptnas import location_id
from .encoding import LayerRecord, layer_type, trace_factory
from .genome_network import build_block
from .genome_sampler import candidate_blocks, make_block
from .genome_schema import KIND_PARAMS, Genome
from .mask_schedule import DEFAULT_INITIAL_MASK_RATE, mask_rate_at
from .tokenization_gptnas import encode_types
from .value_checks import is_int

__all__ = ["NASReconstructionPipeline", "block_layers", "clear_block_layers_cache", "candidate_blocks", "METHODS"]

METHODS = ("likelihood", "predict")
#: genomes rebuilt side by side when the caller gives no ``batch_size``: a search's population
#: in one batch (one GPT batch per block position)
DEFAULT_BATCH_SIZE = 64
#: at most this many layers of a candidate block are scored (the first ones, which tell the
#: kinds apart): a candidate is scored in one GPT pass over a window of at most k + 1 tokens
#: (context, its layers, the next block's first layer), so at least k - 6 layers of context
MAX_SCORED_LAYERS = 6


@lru_cache(maxsize=65536)
def _block_layers_cached(block_json: str, in_channels: int, size: int) -> tuple[LayerRecord, ...]:
    block = json.loads(block_json)
    layers = trace_factory(lambda: build_block(block, in_channels), (in_channels, size, size))
    return tuple(layer.record for layer in layers)


def block_layers(block: dict, in_channels: int, size: int) -> tuple[LayerRecord, ...]:
    """The layer records of one block fed ``in_channels`` x ``size`` x ``size`` (cached)."""
    return _block_layers_cached(json.dumps(block, sort_keys=True), int(in_channels), int(size))


def clear_block_layers_cache() -> None:
    """Forget the layer records :func:`block_layers` remembers (for timings that start cold)."""
    _block_layers_cached.cache_clear()


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

    ``space`` (a registered space's name or a ``SearchSpace``; default the block genome) with
    ``num_classes`` (default 10): architectures of another space, rewritten unit by unit by the
    GPT's likelihood of each candidate's network (module doc); results have the same keys
    (``block_probabilities`` empty). :meth:`score` gives that likelihood alone.
    """

    _load_tokenizer = True
    _load_image_processor = False
    _load_feature_extractor = False
    _load_processor = False

    def _sanitize_parameters(self, mask_rate=None, iteration=None, max_iterations=None, initial_mask_rate=None,
                             window_size=None, do_sample=None, temperature=None, top_k=None, seed=None,
                             image_size=None, in_channels=None, method=None, space=None, num_classes=None, **kwargs):
        if kwargs:
            raise TypeError(f"unknown nas-reconstruction parameter(s): {', '.join(sorted(kwargs))}")
        params: dict[str, Any] = {}
        space = _resolve_space(space)
        _check_int("num_classes", num_classes, 1)
        if space is not None and method is not None and method != "likelihood":
            raise ValueError(f"method must be 'likelihood' for the {space.name!r} space (its units are rewritten by "
                             f"the GPT's likelihood of the network), got {method!r}")
        _check_number("mask_rate", mask_rate, 0.0, 1.0)
        _check_number("initial_mask_rate", initial_mask_rate, 0.0, 1.0)
        _check_int("window_size", window_size, 1)
        _check_int("top_k", top_k, 1)
        _check_int("image_size", image_size, 1)
        _check_int("in_channels", in_channels, 1)
        _check_int("iteration", iteration, 0)
        _check_int("max_iterations", max_iterations, 1)
        _check_int("seed", seed, None)
        if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                        or not temperature > 0):
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        if do_sample is not None and not isinstance(do_sample, bool):
            raise ValueError(f"do_sample must be true or false, got {do_sample!r}")
        if method is not None and method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if mask_rate is not None and (iteration is not None or max_iterations is not None):
            raise ValueError("give either mask_rate or iteration/max_iterations, not both")
        if mask_rate is not None:
            params["mask_rate"] = float(mask_rate)
        elif iteration is not None or max_iterations is not None:
            if iteration is None or max_iterations is None:
                raise ValueError("iteration and max_iterations go together")
            params["mask_rate"] = mask_rate_at(int(iteration), int(max_iterations),
                                               DEFAULT_INITIAL_MASK_RATE if initial_mask_rate is None else float(initial_mask_rate))
        elif initial_mask_rate is not None:
            params["mask_rate"] = float(initial_mask_rate)
        for key, value in (("window_size", window_size), ("do_sample", do_sample), ("temperature", temperature),
                           ("top_k", top_k), ("seed", seed), ("image_size", image_size), ("in_channels", in_channels),
                           ("method", method)):
            if value is not None:
                params[key] = value
        if space is None:  # the block genome: what the pipeline has always done
            return {}, params, {}
        params["space"] = space
        if num_classes is not None:
            params["num_classes"] = num_classes
        return {"space": space}, params, {}

    # -- the Pipeline protocol -----------------------------------------------------------------
    # preprocess: one genome -> {"genomes": [Genome]}; batches of ``batch_size`` are collated
    # into one list and rebuilt side by side (one GPT batch per block position) by _forward;
    # postprocess: one genome's result dict. Each genome's randomness is seeded by ``seed`` and
    # its own hash, so a batch gives the same results as the genomes one at a time.
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("batch_size", DEFAULT_BATCH_SIZE)
        super().__init__(*args, **kwargs)

    def preprocess(self, genome, space=None):
        if space is not None:  # another space: its architectures travel as their JSON values
            return {"genomes": [space.dump(space.load(genome))]}
        return {"genomes": [Genome.from_json(genome)]}

    def _forward(self, model_inputs, **params):
        space = params.pop("space", None)
        if space is not None:
            return {"results": self.reconstruct_space(model_inputs["genomes"], space, **params)}
        genomes = [Genome.from_json(g) for g in model_inputs["genomes"]]  # device placement made them lists
        return {"results": self.reconstruct(genomes, **params)}

    def postprocess(self, model_outputs):
        result = model_outputs["results"]  # a batch is unrolled one result at a time by the base class
        return result[0] if isinstance(result, list) else result

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        """The base class's iterator with a collate that keeps genomes as a list (they are not
        tensors to pad)."""
        from torch.utils.data import DataLoader
        from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

        if not hasattr(inputs, "__len__"):
            return super().get_iterator(inputs, num_workers, 1, preprocess_params, forward_params,
                                        postprocess_params)
        dataset = PipelineDataset(inputs, self.preprocess, preprocess_params)
        loader = DataLoader(dataset, num_workers=num_workers, batch_size=batch_size, collate_fn=_collate_genomes)
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    @staticmethod
    def _is_single(inputs) -> bool:
        if isinstance(inputs, (str, Genome)):
            return True
        return isinstance(inputs, list) and (not inputs or isinstance(inputs[0], dict))

    def __call__(self, inputs, **kwargs):
        """One genome (a list of block dicts, its JSON string or a ``Genome``) -> one result dict;
        a list of genomes -> a list, rebuilt ``batch_size`` at a time (default
        :data:`DEFAULT_BATCH_SIZE`); a ``KeyDataset`` or a generator of genomes -> an iterator.
        With ``space`` (module doc), architectures of that space, one or a list."""
        space = _resolve_space(kwargs["space"] if "space" in kwargs else self._preprocess_params.get("space"))
        if space is not None:
            return super().__call__(_space_inputs(inputs, space), **kwargs)
        if isinstance(inputs, Genome):
            inputs = inputs.to_json()
        elif self._is_single(inputs) and not isinstance(inputs, str):
            if not inputs:
                raise ValueError("a genome needs at least one block; got an empty list")
            inputs = json.dumps(inputs)
        if isinstance(inputs, tuple):
            inputs = list(inputs)
        return super().__call__(inputs, **kwargs)

    # -- other spaces --------------------------------------------------------------------------
    def architecture_scorer(self, window_size: int | None = None):
        """The :class:`~gptnas_hf.architecture_score.ArchitectureScorer` of this pipeline's model
        and tokenizer (kept, with its window cache, for the pipeline's life; a new one when the
        model or tokenizer is swapped; the scorer itself notices weights changed in place)."""
        from .architecture_score import ArchitectureScorer

        scorers = self.__dict__.setdefault("_gptnas_scorers", {})
        key = (id(self.model), id(self.tokenizer), window_size)
        scorer = scorers.get(key)
        if scorer is None or scorer.model is not self.model or scorer.tokenizer is not self.tokenizer:
            scorer = scorers[key] = ArchitectureScorer(self.model, self.tokenizer, window_size=window_size)
        return scorer

    def reconstruct_space(self, archs: list, space, mask_rate: float = DEFAULT_INITIAL_MASK_RATE,
                          window_size: int | None = None, do_sample: bool = False, temperature: float = 1.0,
                          top_k: int | None = None, seed: int = 0, image_size: int = 32, in_channels: int = 3,
                          num_classes: int = 10, method: str = "likelihood") -> list[dict]:
        """Algorithm 1 in a space other than the block genome (module doc):
        :func:`~gptnas_hf.unit_reconstruction.reconstruct_units` scored by the GPT's mean
        log-likelihood of each candidate's network."""
        from .unit_reconstruction import reconstruct_units

        space = _resolve_space(space)
        if space is None:
            raise ValueError("reconstruct_space needs a space other than the block genome (use reconstruct)")
        if method != "likelihood":
            raise ValueError(f"method must be 'likelihood' for the {space.name!r} space (its units are rewritten by "
                             f"the GPT's likelihood of the network), got {method!r}")
        shape = {"in_channels": int(in_channels), "image_size": int(image_size), "num_classes": int(num_classes)}
        return reconstruct_units([space.load(a) for a in archs], space,
                                 lambda candidates: self._architecture_scores(space, candidates, shape, window_size),
                                 mask_rate, seed=seed, do_sample=do_sample, temperature=temperature, top_k=top_k)

    def _architecture_scores(self, space, archs: list, shape: dict, window_size: int | None) -> list[float]:
        """Each architecture's mean log-likelihood, remembered per architecture for this model's
        current weights (an adapted model gets its own memo) and seeded from the persistent
        cache of :func:`~gptnas_hf.architecture_score.cached_space_scores` when one was written
        for these weights, space and shape (all 15,625 NAS-Bench-201 cells: one lookup each)."""
        from .architecture_score import ScoreCache, checkpoint_identity

        scorer = self.architecture_scorer(window_size)
        identity = checkpoint_identity(scorer)
        model_k = min(int(self.model.config.window_size), int(self.model.config.n_positions) - 1)
        tag = "" if scorer.window_size == model_k else f"_k{scorer.window_size}"
        key = (identity, space.name, shape["in_channels"], shape["image_size"], shape["num_classes"], tag)
        memos = self.__dict__.setdefault("_gptnas_arch_scores", {})
        memo = memos.get(key)
        if memo is None:
            memo = memos[key] = dict(ScoreCache(identity, space.name, shape["in_channels"], shape["image_size"],
                                                shape["num_classes"], tag=tag).load(warn=False))
        hashes = [space.hash(a) for a in archs]
        todo = {h: a for h, a in zip(hashes, archs) if h not in memo}
        if todo:
            memo.update(zip(todo, scorer.score(space, list(todo.values()), **shape)))
        return [memo[h] for h in hashes]

    def score(self, archs, space=None, image_size: int = 32, in_channels: int = 3, num_classes: int = 10,
              window_size: int | None = None):
        """The GPT's mean log-likelihood of each architecture's network (a zero-cost score:
        higher is more like the networks it learned from): a list for a list of architectures,
        one float for one. ``space``: a space or its registered name (default: the block
        genome)."""
        from .search_space_protocol import create_space

        _check_int("image_size", image_size, 1)
        _check_int("in_channels", in_channels, 1)
        _check_int("num_classes", num_classes, 1)
        space = _resolve_space(space) or create_space("blocks")
        single, items = _split_inputs(archs, space)
        shape = {"in_channels": int(in_channels), "image_size": int(image_size), "num_classes": int(num_classes)}
        scores = self._architecture_scores(space, [space.load(a) for a in items], shape, window_size)
        return scores[0] if single else scores

    # -- Algorithm 1 -------------------------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, genomes: list[Genome], mask_rate: float = DEFAULT_INITIAL_MASK_RATE, window_size: int | None = None,
                    do_sample: bool = False, temperature: float = 1.0, top_k: int | None = None, seed: int = 0,
                    image_size: int = 32, in_channels: int = 3, method: str = "likelihood") -> list[dict]:
        model = self.model
        k = int(window_size or model.config.window_size)
        if not 1 <= k <= model.config.window_size:
            raise ValueError(f"window_size must lie in [1, {model.config.window_size}] for this model, got {k}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        states = []
        for genome in genomes:
            rng = random.Random(f"{seed}:{genome.hash()}")  # order-free: batched equals unbatched
            states.append({
                "blocks": genome.to_list(), "masked": [rng.random() < mask_rate for _ in range(len(genome))],
                "rng": rng, "gen": torch.Generator().manual_seed(rng.getrandbits(63)),
                "tokens": [self.tokenizer.bos_token_id], "locations": [0], "layers": 0, "channels": int(in_channels),
                "size": int(image_size), "predicted": [], "predicted_layers": [], "probabilities": [], "kept_kind": [],
            })
        options = {"do_sample": do_sample, "temperature": temperature, "top_k": top_k}
        for index in range(max((len(g) for g in genomes), default=0)):
            active = [s for s in states if index < len(s["blocks"])]
            masked = [s for s in active if s["masked"][index]]
            if masked:
                old_kinds = [s["blocks"][index]["kind"] for s in masked]
                if method == "likelihood":
                    self._choose_by_likelihood(masked, index, k, options)
                else:
                    self._replace_blocks(masked, index, k, options)
                for state, kind in zip(masked, old_kinds):
                    state["kept_kind"].append(state["blocks"][index]["kind"] == kind)
            for state in active:
                block = state["blocks"][index]
                records = block_layers(block, state["channels"], state["size"])
                if state["masked"][index]:
                    first = replace(records[0], id=state["layers"] + 1)
                    state["predicted_layers"][-1]["text"] = first.to_text()
                state["tokens"] += encode_types(self.tokenizer, records)
                state["locations"] += [self._location(state, index)] * len(records)
                state["layers"] += len(records)
                state["channels"] = block["width"]
                state["size"] = _out_size(state["size"], block["stride"])
        return [
            {"genome": s["blocks"], "predicted_blocks": s["predicted"], "predicted_layers": s["predicted_layers"],
             "block_probabilities": s["probabilities"], "mask_rate": mask_rate, "method": method,
             "kept_kind": s["kept_kind"]}
            for s in states
        ]

    def _location(self, state: dict, block_index: int) -> int:
        """Location id of genome block ``block_index``: relative depth among the genome's blocks
        plus the classifier's pool and linear layer (as the tracer counts a network's blocks)."""
        return location_id(block_index, len(state["blocks"]) + 2, self.model.config.location_buckets)

    def _locations_or_none(self, rows):
        if not self.model.config.location_buckets:
            return None
        width = max(len(r) for r in rows)
        return torch.tensor([r + [0] * (width - len(r)) for r in rows], device=self.model.device)

    def _fcn_window(self, tokens: list[int], locations: list[int]):
        """The FCN's input: the last k + 1 tokens (left-padded) and their locations."""
        k1 = self.model.config.window_size + 1
        tokens, locations = tokens[-k1:], locations[-k1:]
        pad = k1 - len(tokens)
        return [self.tokenizer.pad_token_id] * pad + tokens, [0] * pad + locations

    def _choose_by_likelihood(self, states, index, k, options):
        """Score every candidate block in each state's context and choose one (module doc)."""
        model, tok = self.model, self.tokenizer
        kinds = [label for label in model.config.block_labels if label in KIND_PARAMS]
        n_positions = model.config.n_positions
        rows, row_locs, starts = [], [], []  # one row per candidate: context, its layers, the next layer
        fcn_ids, fcn_locs, fcn_kind = [], [], []
        plans = []
        for state in states:
            old = state["blocks"][index]
            candidates = candidate_blocks(old["width"], old["stride"], kinds)
            loc_here = self._location(state, index)
            following = state["blocks"][index + 1] if index + 1 < len(state["blocks"]) else None
            plans.append({"state": state, "candidates": candidates})
            for candidate in candidates:
                records = block_layers(candidate, state["channels"], state["size"])
                ids = encode_types(tok, records[:MAX_SCORED_LAYERS])
                locs = [loc_here] * len(ids)
                if following is not None:
                    nxt = block_layers(following, candidate["width"], _out_size(state["size"], candidate["stride"]))
                    ids.append(encode_types(tok, nxt[:1])[0])
                    locs.append(self._location(state, index + 1))
                context = min(k, n_positions - len(ids), len(state["tokens"]))
                rows.append(state["tokens"][len(state["tokens"]) - context:] + ids)
                row_locs.append(state["locations"][len(state["locations"]) - context:] + locs)
                starts.append(context)
                w_ids, w_locs = self._fcn_window(state["tokens"][-k:] + ids[:1], state["locations"][-k:] + locs[:1])
                fcn_ids.append(w_ids)
                fcn_locs.append(w_locs)
                fcn_kind.append(model.config.block_labels.index(candidate["kind"]))
        likelihood = torch.empty(len(rows))
        for lo in range(0, len(rows), 512):
            chunk = rows[lo:lo + 512]
            ids, mask = self._pad(chunk)
            out = model(input_ids=ids, attention_mask=mask, location_ids=self._locations_or_none(row_locs[lo:lo + 512]))
            lp = out.logits.float().log_softmax(-1)
            for i, row in enumerate(chunk):
                start = starts[lo + i]
                positions = torch.arange(start, len(row))
                likelihood[lo + i] = lp[i, positions - 1, ids[i, positions]].mean().cpu()
        fcn_locations = torch.tensor(fcn_locs, device=model.device) if model.config.location_buckets else None
        fcn_log = model.classify_block(torch.tensor(fcn_ids, device=model.device), fcn_locations).float().log_softmax(-1).cpu()
        row = 0
        for plan in plans:
            state = plan["state"]
            n = len(plan["candidates"])
            fcn = fcn_log[row:row + n]
            kind_ids = torch.tensor(fcn_kind[row:row + n])
            scores = likelihood[row:row + n] + fcn[torch.arange(n), kind_ids]
            row += n
            choice = self._choose(scores, state["gen"], options["do_sample"], options["temperature"], options["top_k"])
            chosen = plan["candidates"][choice]
            state["blocks"][index] = dict(chosen)
            first = block_layers(chosen, state["channels"], state["size"])[0]
            probs = fcn[choice].exp()
            state["predicted"].append(index)
            state["predicted_layers"].append({"block": index, "type": layer_type(first), "text": None,
                                              "score": round(float(scores[choice]), 4), "candidates": n})
            state["probabilities"].append({"block": index, "probabilities": {
                name: round(float(p), 6) for name, p in zip(model.config.block_labels, probs.tolist())}})

    def _replace_blocks(self, states, index, k, options):
        """The paper's reading of Algorithm 1 (``method="predict"``, module doc)."""
        model, tok = self.model, self.tokenizer
        labels = model.config.block_labels
        special = torch.tensor(sorted(set(tok.all_special_ids)), device=model.device)
        contexts = [s["tokens"][-k:] for s in states]
        context_locs = [s["locations"][-k:] for s in states]
        ids, mask = self._pad(contexts)
        logits = model.next_layer_logits(ids, mask, self._locations_or_none(context_locs)).float()
        logits[:, special] = float("-inf")
        choices = [self._choose(row, s["gen"], options["do_sample"], options["temperature"], options["top_k"])
                   for row, s in zip(logits, states)]
        windows = [self._fcn_window(c + [choice], l + [self._location(s, index)])
                   for c, l, choice, s in zip(contexts, context_locs, choices, states)]
        window_ids = torch.tensor([w for w, _ in windows], device=model.device)
        window_locs = torch.tensor([l for _, l in windows], device=model.device) if model.config.location_buckets else None
        block_probs = model.classify_block(window_ids, window_locs).float().softmax(-1)
        for state, choice, probs in zip(states, choices, block_probs):
            label = int(self._choose(probs.log(), state["gen"], options["do_sample"], options["temperature"], None))
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



def _collate_genomes(items: list[dict]) -> dict:
    return {"genomes": [genome for item in items for genome in item["genomes"]]}


def _check_number(name: str, value, lo: float, hi: float) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ValueError(f"{name} must be a number in [{lo}, {hi}], got {value!r}")


def _check_int(name: str, value, lo: int | None) -> None:
    if value is None:
        return
    if not is_int(value) or (lo is not None and value < lo):
        raise ValueError(f"{name} must be an integer{'' if lo is None else f' >= {lo}'}, got {value!r}")


def _resolve_space(space):
    """None for the block genome (the pipeline's own path), else the space (a name is made)."""
    if space is None:
        return None
    from .search_space_protocol import SearchSpace, create_space, space_names
    from .space_nas_bench_201 import NASBench201Space  # noqa: F401 - a saved pipeline carries this space's code

    if isinstance(space, str):
        if space not in space_names():
            raise ValueError(f"space must be a registered search space ({', '.join(space_names())}) or a "
                             f"SearchSpace, got {space!r}")
        space = create_space(space)
    if not isinstance(space, SearchSpace):
        raise ValueError(f"space must be a registered search space's name or a SearchSpace, got "
                         f"{type(space).__name__} {space!r}")
    from .space_blocks import BlockSpace

    return None if isinstance(space, BlockSpace) else space


def _loads(space, value) -> bool:
    try:
        space.load(value)
    except (ValueError, TypeError, KeyError, IndexError):
        return False
    return True


def _split_inputs(inputs, space) -> tuple[bool, list]:
    """(whether ``inputs`` is one architecture, the architectures): a list or tuple is a batch
    unless its items are not architectures while the whole is one (NAS-Bench-201's list of 6
    op names)."""
    if isinstance(inputs, (list, tuple)):
        if inputs and not any(_loads(space, item) for item in inputs) and _loads(space, list(inputs)):
            return True, [list(inputs)]
        return False, list(inputs)
    return True, [inputs]


def _space_inputs(inputs, space):
    """What the base class is called with for another space: one architecture as the string
    given or its JSON text, a batch as a list; a torch ``Dataset`` (``KeyDataset``) or a
    generator as it is (streamed)."""
    import types

    from torch.utils.data import Dataset

    if isinstance(inputs, (types.GeneratorType, Dataset)):
        return inputs
    single, items = _split_inputs(inputs, space)
    if not single:
        return items
    item = items[0]
    return item if isinstance(item, str) else json.dumps(space.dump(space.load(item)))
