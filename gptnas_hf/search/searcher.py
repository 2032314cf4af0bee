"""The search loop (paper Fig. 3): a strategy proposes genomes, the architecture GPT rebuilds
them (``use_gpt``), each new genome is trained briefly and scored, and the strategy selects.

GA, GA+GPT, Random and Random+GPT are four settings of one :class:`NASSearcher`.

A run directory survives ``kill -9``: ``state.json`` (population, generation, RNG state, the
candidates of the generation in flight) is replaced atomically whenever it changes, and every
finished evaluation is appended to ``evaluations.jsonl`` (one JSON object a line, flushed and
synced) before the next one starts. ``resume`` reads both back: evaluated genomes are never
trained again, so a killed run loses at most the candidate that was training, and ends with
the same result as an uninterrupted one with the same seed (each candidate's training is
seeded from the run's seed and the genome's hash, not from the order of evaluation).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from tqdm.auto import tqdm

from ..search_space import Genome, build_network, count_parameters
from .schedule import DEFAULT_INITIAL_MASK_RATE, mask_rate_at
from .strategies import Individual, create_strategy

STATE_FILE = "state.json"
EVALUATIONS_FILE = "evaluations.jsonl"
DATA_FILE = "data.json"  # channels, size, classes and normalisation of the data searched on


@dataclass
class SearchConfig:
    """Every knob of a search; defaults are the paper's (section 4.3)."""

    strategy: str = "ga"  # "ga" | "random" | any registered strategy
    population_size: int = 30
    generations: int = 20  # offspring generations after the initial population (Eq. 3's T)
    crossover_rate: float = 0.7
    mutation_rate: float = 0.5
    min_blocks: int = 10
    max_blocks: int = 20
    widths: tuple[int, ...] = (16, 32, 64, 128)
    max_downsamples: int = 4
    use_gpt: bool = True
    model: str | None = None  # architecture GPT checkpoint; None: the shipped default
    initial_mask_rate: float = DEFAULT_INITIAL_MASK_RATE
    window_size: int | None = None
    dataset: str = "cifar10"
    data: dict = field(default_factory=dict)  # load_image_data(**data)
    evaluation: dict = field(default_factory=dict)  # EvalConfig(**evaluation)
    retrain: dict = field(default_factory=dict)  # RetrainConfig(**retrain)
    seed: int = 0
    output_dir: str = "runs/search"
    progress: bool = True

    def __post_init__(self):
        self.widths = tuple(int(w) for w in self.widths)
        if self.population_size < 2:
            raise ValueError(f"population_size must be at least 2, got {self.population_size}")
        if self.generations < 0:
            raise ValueError(f"generations must be non-negative, got {self.generations}")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, **overrides) -> "SearchConfig":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"recipe {str(path)!r} does not exist")
        recipe = yaml.safe_load(path.read_text()) or {}
        if not isinstance(recipe, dict):
            raise ValueError(f"recipe {str(path)!r} is not a YAML mapping")
        recipe.pop("name", None)
        return cls.from_dict({**recipe, **{k: v for k, v in overrides.items() if v is not None}})

    @classmethod
    def from_dict(cls, values: dict) -> "SearchConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown search setting(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["widths"] = list(self.widths)
        return values


@dataclass
class SearchResult:
    best: Individual
    population: list[Individual]
    history: list[dict]
    output_dir: Path
    evaluations: int

    @property
    def best_genome(self) -> Genome:
        return self.best.genome

    @property
    def best_fitness(self) -> float:
        return self.best.fitness


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _set_rng_state(rng: random.Random, state: list) -> None:
    rng.setstate((state[0], tuple(state[1]), state[2]))


def _comparable(config: dict) -> dict:
    """The settings that decide a run's result (not where it writes or whether it shows bars)."""
    return {k: v for k, v in config.items() if k not in ("output_dir", "progress")}


def _seed_for(*parts) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "little")


class NASSearcher:
    """Run a search: ``NASSearcher(SearchConfig(...), dataset=..., model=...).run()``.

    ``dataset``: an :class:`~gptnas_hf.data.ImageData`, or a source for
    :func:`~gptnas_hf.data.load_image_data` (default ``config.dataset``).
    ``model``: a ``nas-reconstruction`` pipeline, or a checkpoint path (default
    ``config.model``, else the shipped checkpoint); unused when ``config.use_gpt`` is off.
    """

    def __init__(self, config: SearchConfig, dataset=None, model=None, output_dir: str | None = None):
        from ..data import ImageData, load_image_data
        from ..evaluation import EvalConfig

        self.config = config
        self.output_dir = Path(output_dir or config.output_dir)
        self.eval_config = EvalConfig(**{"progress": False, **config.evaluation})
        if isinstance(dataset, ImageData):
            self.data = dataset
        else:
            self.data = load_image_data(dataset or config.dataset, seed=config.seed, progress=config.progress,
                                        **config.data)
        self.strategy = create_strategy(
            config.strategy, **self._strategy_kwargs(config)
        )
        self.reconstructor = None
        if config.use_gpt:
            self.reconstructor = self._load_pipeline(model or config.model)
        self._accelerator = None

    @staticmethod
    def _strategy_kwargs(config: SearchConfig) -> dict:
        kwargs = {"population_size": config.population_size, "min_blocks": config.min_blocks,
                  "max_blocks": config.max_blocks, "widths": config.widths,
                  "max_downsamples": config.max_downsamples}
        if config.strategy == "ga":
            kwargs.update(crossover_rate=config.crossover_rate, mutation_rate=config.mutation_rate)
        return kwargs

    @staticmethod
    def _load_pipeline(model):
        from transformers import Pipeline, pipeline

        from .. import DEFAULT_MODEL

        if isinstance(model, Pipeline):
            return model
        return pipeline("nas-reconstruction", model=str(model or DEFAULT_MODEL))

    # -- state --------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.output_dir / STATE_FILE

    @property
    def evaluations_path(self) -> Path:
        return self.output_dir / EVALUATIONS_FILE

    def _save_state(self, state: dict) -> None:
        _atomic_write(self.state_path, json.dumps(state, indent=1))

    def _load_cache(self) -> dict[str, dict]:
        cache: dict[str, dict] = {}
        if self.evaluations_path.is_file():
            for line in self.evaluations_path.read_text().splitlines():
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill: that candidate trains again
                    continue
                cache[record["hash"]] = record
        return cache

    def _append_evaluation(self, record: dict) -> None:
        with open(self.evaluations_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    # -- one generation -------------------------------------------------------------------------
    def _mask_rate(self, generation: int) -> float:
        return mask_rate_at(generation, max(self.config.generations, 1), self.config.initial_mask_rate)

    def _prepare(self, proposals: list[tuple[Genome, str]], generation: int) -> list[dict]:
        """Candidates of a generation: the proposals, rebuilt by the GPT when it is on."""
        rate = self._mask_rate(generation) if self.reconstructor is not None else None
        pending = [{"genome": g.to_list(), "origin": origin, "reconstructed": False, "predicted_blocks": [],
                    "mask_rate": rate, "proposed_hash": g.hash()} for g, origin in proposals]
        if self.reconstructor is not None and pending:
            results = self.reconstructor(
                [g for g, _ in proposals], mask_rate=rate,
                seed=_seed_for(self.config.seed, "gpt", generation), window_size=self.config.window_size,
                image_size=self.data.image_size, in_channels=self.data.channels,
            )
            for candidate, result in zip(pending, results):
                if result["predicted_blocks"]:
                    candidate.update(genome=result["genome"], reconstructed=True,
                                     predicted_blocks=result["predicted_blocks"])
        return pending

    def _evaluate(self, candidate: dict, generation: int) -> dict:
        from ..evaluation import evaluate_network

        genome = Genome.from_json(candidate["genome"])
        seed = _seed_for(self.config.seed, genome.hash())
        torch.manual_seed(seed)
        network = build_network(genome, in_channels=self.data.channels, num_classes=self.data.num_classes)
        config = dataclasses.replace(self.eval_config, seed=seed)
        started = time.perf_counter()
        result = evaluate_network(network, self.data, config, predicted_blocks=candidate["predicted_blocks"],
                                  accelerator=self._accelerator)
        return {
            "hash": genome.hash(), "genome": genome.to_list(), "generation": generation,
            "origin": candidate["origin"], "reconstructed": candidate["reconstructed"],
            "predicted_blocks": candidate["predicted_blocks"], "mask_rate": candidate["mask_rate"],
            "proposed_hash": candidate["proposed_hash"], "fitness": result.fitness, "top5": result.top5,
            "parameters": count_parameters(network), "trainable_parameters": result.trainable_parameters,
            "train_scope": result.train_scope, "status": result.status, "reason": result.reason,
            "seconds": round(time.perf_counter() - started, 3), "images_per_second": result.images_per_second,
        }

    def _evaluate_pending(self, state: dict, cache: dict) -> list[Individual]:
        from accelerate import PartialState
        from accelerate.utils import gather_object

        distributed = PartialState()
        pending = state["pending"]
        todo = [i for i, c in enumerate(pending) if Genome.from_json(c["genome"]).hash() not in cache]
        mine = todo[distributed.process_index::distributed.num_processes]
        bar = tqdm(total=len(pending), initial=len(pending) - len(todo), disable=not self.config.progress
                   or not distributed.is_main_process, desc=f"generation {state['generation']}", unit="net")
        fresh = []
        for index in mine:
            record = self._evaluate(pending[index], state["generation"])
            fresh.append(record)
            if distributed.num_processes == 1:
                self._append_evaluation(record)
                cache[record["hash"]] = record
            bar.update(distributed.num_processes)
            bar.set_postfix(best=f"{max((r['fitness'] for r in cache.values()), default=0):.3f}")
        bar.close()
        if distributed.num_processes > 1:
            for record in gather_object(fresh):
                if distributed.is_main_process:
                    self._append_evaluation(record)
                cache[record["hash"]] = record
        individuals = []
        for candidate in pending:
            record = cache[Genome.from_json(candidate["genome"]).hash()]
            individuals.append(Individual(genome=candidate["genome"], fitness=record["fitness"],
                                          reconstructed=candidate["reconstructed"], origin=candidate["origin"],
                                          meta={"parameters": record["parameters"]}))
        return individuals

    # -- the loop -------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> SearchResult:
        """Search to the end; with ``resume`` carry on from the run directory's state."""
        from accelerate import PartialState

        distributed = PartialState()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        rng = random.Random(self.config.seed)
        cache = self._load_cache()
        if resume and self.state_path.is_file():
            state = json.loads(self.state_path.read_text())
            if _comparable(state["config"]) != _comparable(self.config.to_dict()):
                raise ValueError(f"{self.state_path} was written by a search with other settings; "
                                 "resume with the same recipe or use another --output-dir")
            _set_rng_state(rng, state["rng"])
            self.strategy.load_state_dict(state["strategy"])
        elif self.state_path.is_file() and not resume:
            raise FileExistsError(f"{self.output_dir} already holds a search; pass resume=True (--resume) to carry "
                                  "on, or choose another output directory")
        else:
            initial = [(g, "init") for g in self.strategy.initial_population(rng)]
            state = {"config": self.config.to_dict(), "generation": 0, "phase": "evaluate",
                     "pending": self._prepare(initial, 0), "population": [], "history": [],
                     "rng": _rng_state(rng), "strategy": self.strategy.state_dict(), "started": time.time()}
            if distributed.is_main_process:
                self._save_state(state)
        if distributed.is_main_process:
            _atomic_write(self.output_dir / DATA_FILE, json.dumps(self.data.describe(), indent=1))
        population = [Individual.from_dict(d) for d in state["population"]]
        while state["phase"] != "done":
            offspring = self._evaluate_pending(state, cache)
            if state["generation"] == 0:
                population = sorted(offspring, key=lambda ind: -ind.fitness)[: self.config.population_size]
            else:
                population = self.strategy.select(population, offspring, rng)
            state["history"].append(self._stats(state["generation"], population, offspring, cache))
            state["population"] = [ind.to_dict() for ind in population]
            if state["generation"] >= self.config.generations:
                state.update(phase="done", pending=[])
            else:
                state["generation"] += 1
                proposals = self.strategy.propose_with_origins(population, rng)
                state["pending"] = self._prepare([(p.genome, p.origin) for p in proposals], state["generation"])
            state["rng"] = _rng_state(rng)
            state["strategy"] = self.strategy.state_dict()
            if distributed.is_main_process:
                self._save_state(state)
                self._write_reports(state, population, cache)
        best = max(population, key=lambda ind: ind.fitness)
        return SearchResult(best, population, state["history"], self.output_dir, len(cache))

    @staticmethod
    def _stats(generation: int, population: list[Individual], offspring: list[Individual], cache: dict) -> dict:
        fitness = [ind.fitness for ind in population]
        return {
            "generation": generation, "best": max(fitness), "mean": sum(fitness) / len(fitness),
            "offspring_best": max(ind.fitness for ind in offspring) if offspring else None,
            "reconstructed": sum(ind.reconstructed for ind in offspring), "evaluations": len(cache),
        }

    def _write_reports(self, state: dict, population: list[Individual], cache: dict) -> None:
        from .report import write_reports

        write_reports(self.output_dir, self.config, state, population, list(cache.values()))
