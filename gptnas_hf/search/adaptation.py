"""The architecture GPT adapts to the search it serves (beyond the paper): after each
generation, a copy of the pretrained GPT is fine-tuned on the layer sequences of the best
genomes evaluated so far, and the next generation is rebuilt by the adapted copy. An
estimation-of-distribution step carried out by the pretrained model.

Settings (``SearchConfig.gpt_adaptation``, checked by :class:`~gptnas_hf.search.config.AdaptationConfig`;
None: off):

* ``top_fraction``: the share of the trained candidates so far, by fitness, that the GPT
  reads (at least 2 genomes);
* ``steps``, ``lr``, ``batch_size``: AdamW steps on windows of their layer sequences (the
  windows the pretraining recipes cut: ``training.windows_dataset``, with locations);
* ``replay``: the share of each batch drawn from the torchvision zoo traced at the data's input
  size (``corpora.zoo``), so the GPT keeps what it knew and does not collapse onto one genome.

Each generation starts again from the *pretrained* weights (not from the last adaptation), on
everything found so far: the adapted GPT of generation t depends only on the records up to t
and the seeds, so a resumed search adapts exactly as an uninterrupted one. The weights of the
latest adaptation are saved in the run directory (``adapted_gpt/``: ``save_pretrained``,
safetensors, the tokenizer and ``adaptation.json`` saying what it read), which
``gptnas export --gpt`` turns into a model directory.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import random
import shutil
import time
from pathlib import Path

import torch

from .config import AdaptationConfig
from .run_directory import RunDirectory


def genome_rows(genomes, in_channels: int, num_classes: int, image_size: int, space=None) -> list[dict]:
    """Corpus rows (types, blocks, block_index) of genomes' networks (of ``space``, default the
    block genome), traced at the data's size."""
    from ..corpora.common import architecture_row
    from ..encoding import trace_factory
    from ..search_space import Genome, GenomeNetwork

    rows = []
    for i, genome in enumerate(genomes):
        if space is None:
            genome = Genome.from_json(genome)
            factory = lambda: GenomeNetwork(genome, in_channels, num_classes, init_weights=False)  # noqa: E731
            layers = trace_factory(factory, (in_channels, image_size, image_size))
        else:
            layers = _traced(space, space.load(genome), in_channels, num_classes, image_size)
        rows.append(architecture_row(f"search-{i}", "search", layers))
    return rows


#: (space, architecture hash, shape) -> its traced layers: the best cells recur generation after generation
_TRACED: dict = {}
_TRACED_MAX = 20_000


def _traced(space, arch, in_channels: int, num_classes: int, image_size: int):
    from ..encoding import trace_factory

    key = (space.name, space.hash(arch), in_channels, num_classes, image_size)
    layers = _TRACED.get(key)
    if layers is None:
        layers = trace_factory(lambda: space.build_network(arch, in_channels, num_classes),
                               (in_channels, image_size, image_size))
        if len(_TRACED) >= _TRACED_MAX:
            _TRACED.clear()
        _TRACED[key] = layers
    return layers


@functools.lru_cache(maxsize=4)
def _replay_rows(image_size: int) -> tuple:
    from ..corpora.zoo import zoo_corpus

    corpus = zoo_corpus(progress=False, input_sizes=(image_size,))
    return tuple({k: corpus[i][k] for k in ("types", "blocks", "block_index")} for i in range(len(corpus)))


def _windows(rows, tokenizer, config) -> list[dict]:
    import datasets

    from ..training import windows_dataset

    if not rows:
        return []
    table = datasets.Dataset.from_list([{k: r[k] for k in ("types", "blocks", "block_index")} for r in rows])
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        windows = windows_dataset(table, tokenizer, config.window_size, config.block_labels,
                                  getattr(config, "location_buckets", 0))
    finally:
        if bars:
            datasets.enable_progress_bars()
    return windows.to_list()


def _batch(examples: list[dict]) -> dict:
    return {key: torch.tensor([e[key] for e in examples]) for key in examples[0]}


def top_genomes(records: list[dict], fraction: float) -> list:
    """The best ``fraction`` of the trained records (at least 2), best first, one per genome."""
    trained = sorted({r["hash"]: r for r in records if r.get("status") == "ok"}.values(),
                     key=lambda r: (-r["fitness"], r["hash"]))
    keep = max(2, round(fraction * len(trained)))
    return [r["genome"] for r in trained[:keep]]


class GPTAdapter:
    """Fine-tunes the pipeline's model in place, each time from the pretrained weights."""

    def __init__(self, pipeline, config: AdaptationConfig, data_shape: tuple[int, int, int], space=None):
        import copy

        from ..space_blocks import BlockSpace

        self.pipeline = copy.copy(pipeline)  # the caller's pipeline (and model) stay untouched
        self.pipeline.model = copy.deepcopy(pipeline.model)
        self.config = config
        self.space = None if isinstance(space, BlockSpace) else space  # None: the block genome
        self.in_channels, self.num_classes, self.image_size = data_shape
        self.pretrained = {k: v.detach().clone() for k, v in pipeline.model.state_dict().items()}
        self._replay: list[dict] | None = None

    def reset(self) -> None:
        """Back to the pretrained weights."""
        self.pipeline.model.load_state_dict(self.pretrained)
        self.pipeline.model.eval()

    def adapt(self, records: list[dict], seed: int) -> dict:
        """Fine-tune on the best genomes of ``records``; returns what was done (for the record)."""
        started = time.perf_counter()
        model, tokenizer, cfg = self.pipeline.model, self.pipeline.tokenizer, self.config
        genomes = top_genomes(records, cfg.top_fraction)
        own = _windows(genome_rows(genomes, self.in_channels, self.num_classes, self.image_size, self.space),
                       tokenizer, model.config)
        if self._replay is None:
            self._replay = _windows(list(_replay_rows(self.image_size)), tokenizer, model.config) if cfg.replay else []
        replay = self._replay
        self.reset()
        rng = random.Random(seed)
        losses = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
            model.train()
            for _ in range(cfg.steps):
                n_replay = sum(rng.random() < cfg.replay for _ in range(cfg.batch_size)) if replay else 0
                examples = [rng.choice(own) for _ in range(cfg.batch_size - n_replay)]
                examples += [rng.choice(replay) for _ in range(n_replay)]
                loss = model(**_batch(examples)).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
            model.eval()
        return {"genomes": len(genomes), "windows": len(own), "replay_windows": len(replay), "steps": cfg.steps,
                "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
                "seconds": round(time.perf_counter() - started, 3),
                "top_hashes": [_hash(g, self.space) for g in genomes]}

    def save(self, run_dir: Path, generation: int, summary: dict) -> Path:
        """The adapted weights, tokenizer and ``adaptation.json``, replaced atomically."""
        out = RunDirectory(run_dir).adapted_gpt_path
        tmp = out.with_name(out.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        self.pipeline.model.save_pretrained(tmp)
        self.pipeline.tokenizer.save_pretrained(tmp)
        (tmp / RunDirectory.ADAPTATION).write_text(json.dumps({"generation": generation, **summary,
                                                       "settings": dataclasses.asdict(self.config)}, indent=1))
        old = out.with_name(out.name + ".old")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        if old.exists():
            shutil.rmtree(old)
        return out


def _hash(genome, space=None) -> str:
    from ..search_space import Genome

    return Genome.from_json(genome).hash() if space is None else space.hash(space.load(genome))
