"""The search loop (paper Fig. 3): a strategy proposes genomes, the architecture GPT rebuilds
them (``use_gpt``), each new genome is trained briefly and scored, and the strategy selects.

GA, GA+GPT, Random and Random+GPT are four settings of one :class:`NASSearcher`.

A run directory survives ``kill -9``: ``state.json`` (the settings, population, generation,
RNG state, the candidates of the generation in flight) is replaced atomically whenever it
changes, and every finished evaluation is appended to ``evaluations.jsonl`` (one JSON object
a line, written with one locked, synced ``write``) before the next one starts, by whichever
process trained it (under ``accelerate launch`` too). ``resume`` reads both back: evaluated
genomes are never trained again, so a killed run loses at most the candidates that were
training, and ends with the same result as an uninterrupted one with the same seed (each
candidate's training is seeded from the run's seed and the genome's hash, not from the order
of evaluation).

Trust rules:

* Settings. ``state.json`` records every setting of the run, CLI overrides included
  (``--dataset`` is the recipe's ``dataset``). ``resume`` with other settings is refused with
  the differences named, and with other data (another source, or data whose fingerprint
  changed) with both named. Only ``retrain`` may change: a corrected ``retrain`` section is
  taken over.
* Evaluation cache. Each record carries ``key``, a hash of everything that decides a fitness:
  the data fingerprint, the evaluation settings, the seed, the GPT checkpoint (when on) and
  the size budget. Only records with the run's key are reused; others (a run directory reused
  with other epochs, say) are left in the log, never counted, and said so on stderr.
* The log. A line cut by a crash (the last one, as a rule) is moved to
  ``evaluations.jsonl.partial-N`` when the run starts again, said so on stderr, and its
  candidate trains again: every line of ``evaluations.jsonl`` stays parseable.
* Refusals. Data whose validation split is too small to rank networks
  (``min_val_images``) is refused before anything trains; a genome past the size budget
  (``max_params``, ``max_macs``, ``max_activations``, ``max_latency_ms``: :mod:`.budget`) is
  repaired or redrawn when it is proposed; one still over it is recorded with status
  ``"budget"``, the reason and fitness 0, without being trained.
* A ``state.json`` that cannot be read is reported with the way out: move it aside and run the
  same command again; the search replays from ``evaluations.jsonl`` without training again
  what it holds under the same settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from tqdm.auto import tqdm

from ..mask_schedule import mask_rate_at
from ..recipe_config import RecipeError, eval_config
from ..search_space import Genome
from ..search_space_protocol import SearchSpace
from ..space_blocks import BlockSpace
from .budget import SearchBudget, repair
from .candidate import candidate_seed, evaluate_candidate, seed_for
from .config import AdaptationConfig, SearchConfig, make_space, make_strategy  # SearchConfig is also read from here
from .diversity import population_diversity
from .proposal_filter import average_ranks, filter_proposals, lexicographic_ranks
from .run_directory import RunDirectory
from .strategies import Individual
from .tracking import SearchTracker
from .workers import CandidatePool, resolve_threads, resolve_workers, torch_threads

REDRAWS = 5  # new draws for a proposal that repair cannot bring within the budget
#: the report and plots are rewritten after a generation at most this often (and when the search ends):
#: a table lookup makes a generation take milliseconds, the plots a second
REPORT_EVERY_S = 10.0

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


def _rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _set_rng_state(rng: random.Random, state: list) -> None:
    rng.setstate((state[0], tuple(state[1]), state[2]))


#: settings that never decide a run's result; `retrain` only matters after the search
_NOT_COMPARED = ("output_dir", "progress", "retrain", "log_with", "workers", "threads")


def _comparable(config: dict) -> dict:
    """The settings that decide a run's result, with every default written out."""
    values = {k: v for k, v in config.items() if k not in _NOT_COMPARED}
    try:
        values = SearchConfig.from_dict(values).to_dict()
    except ValueError:  # a state written by another version: compare as written
        pass
    return {k: v for k, v in values.items() if k not in _NOT_COMPARED}


def _same_dataset(a, b) -> bool:
    if str(a) == str(b):
        return True
    pa, pb = Path(str(a)).expanduser(), Path(str(b)).expanduser()
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


def _checkpoint_id(model) -> str | None:
    """What identifies an architecture GPT: its weights' hash for a local checkpoint, else its name."""
    from transformers import Pipeline

    from ..default_model import DEFAULT_MODEL

    if isinstance(model, Pipeline):
        model = getattr(model.model, "name_or_path", None) or type(model.model).__name__
    path = Path(str(model or DEFAULT_MODEL)).expanduser()
    if path.is_dir() and (path / "model.safetensors").is_file():
        digest = hashlib.sha256()
        for name in ("config.json", "model.safetensors"):
            if (path / name).is_file():
                digest.update((path / name).read_bytes())
        return "sha256:" + digest.hexdigest()[:16]
    return str(model)


def _needs_training(record: dict | None, generation: int) -> bool:
    """A candidate is trained unless this run has a record of it; a genome the pre-filter left
    untrained in an earlier generation is considered again (in its own generation it stays so)."""
    if record is None:
        return True
    return record.get("status") == "prefiltered" and record.get("generation") != generation


class NASSearcher:
    """Run a search: ``NASSearcher(SearchConfig(...), dataset=..., model=...).run()``.

    ``dataset``: an :class:`~gptnas_hf.data.ImageData`, or a source for
    :func:`~gptnas_hf.data.load_image_data` (default ``config.dataset``; a source given here
    replaces ``config.dataset``, so the run records the data it searched).
    ``model``: a ``nas-reconstruction`` pipeline, or a checkpoint path (default
    ``config.model``, else the shipped checkpoint); unused when ``config.use_gpt`` is off.
    """

    def __init__(self, config: SearchConfig, dataset=None, model=None, output_dir: str | None = None):
        from ..data import ImageData, load_image_data

        if dataset is not None and not isinstance(dataset, ImageData) and not _same_dataset(dataset, config.dataset):
            config = dataclasses.replace(config, dataset=str(dataset))  # recorded as the run's dataset
        self.config = config
        self.output_dir = Path(output_dir or config.output_dir)
        self.eval_config = eval_config({"progress": False, **config.evaluation})
        self.space = make_space(config)
        self.table = self.table_evaluator = None
        table = config.table_config()
        if table is not None:  # fitness is a lookup: no data is loaded, nothing is trained
            from .table_fitness import FitnessTable, TableEvaluator

            self.data = None
            self.shape = {"in_channels": table.in_channels, "num_classes": table.num_classes,
                          "image_size": table.image_size}
            self.table = FitnessTable.load(Path(table.table).expanduser(), table.arch_column, table.metric,
                                           space=self.space)
            self.table_evaluator = TableEvaluator(self.table, self.space, parameters=self._parameters)
            self.data_fingerprint = self.table.fingerprint()
        else:
            if isinstance(dataset, ImageData):
                self.data = dataset
            else:
                self.data = load_image_data(config.dataset, seed=config.seed, progress=config.progress, **config.data)
            self._check_data()
            self.shape = {"in_channels": self.data.channels, "num_classes": self.data.num_classes,
                          "image_size": self.data.image_size}
            self.data_fingerprint = self.data.fingerprint()
        try:
            self.strategy = make_strategy(config, self.space)
        except (TypeError, ValueError) as err:
            raise RecipeError(f"strategy {config.strategy!r} on the {self.space.name!r} space: {err} "
                              "(check population_size and strategy_options)") from None
        self.reconstructor = self.adapter = None
        if config.use_gpt:
            self.reconstructor = self._load_pipeline(model or config.model)
            if config.gpt_adaptation is not None:
                from .adaptation import GPTAdapter

                self.adapter = GPTAdapter(self.reconstructor, AdaptationConfig(**config.gpt_adaptation),
                                          (self.shape["in_channels"], self.shape["num_classes"],
                                           self.shape["image_size"]), space=self.space)
                self.reconstructor = self.adapter.pipeline  # its own copy of the model
        self._filter_gpt = None  # the GPT that rates proposals when proposal_filter needs one and use_gpt is off
        if config.proposal_filter not in (None, "parameters") and self.reconstructor is None:
            self._filter_gpt = self._load_pipeline(model or config.model)
        self.evaluation_key = self._evaluation_key(model or config.model)
        self._accelerator = None
        self._queries = 0  # distinct architectures this run has evaluated (max_queries)
        self._reported = float("-inf")  # when the reports were last written (time.monotonic)
        self._tracker = None  # the experiment trackers of a running search (tracking.py)
        self._tracked = 0  # records the trackers have logged (tracked.json)
        self._pool = None  # the candidate-training processes of a running search (workers.py)
        self.budget = None if self.table is not None else SearchBudget(
            max_params=config.max_params, max_activations=config.max_activations, max_macs=config.max_macs,
            max_latency_ms=config.max_latency_ms, in_channels=self.data.channels, num_classes=self.data.num_classes,
            image_size=self.data.image_size, device=str(self._distributed().device),
            build=None if isinstance(self.space, BlockSpace) else self.space.build_network)
        floor = "" if self.budget is None else self.budget.floor_problem(
            min(config.widths) if isinstance(self.space, BlockSpace) else 1)
        if floor:  # refused before any proposal is measured at length
            raise ValueError(floor)

    def _parameters(self, arch) -> int:
        return self.space.parameters(arch, self.shape["in_channels"], self.shape["num_classes"])

    def _hash(self, arch) -> str:
        """The run's key of an architecture (a record's ``hash``), from its JSON value or itself."""
        return self.space.hash(self.space.load(arch))

    def _check_data(self) -> None:
        """Refuse data on which fitness cannot rank networks (before anything trains)."""
        n_val = len(self.data.val_y)
        classes = len(torch.unique(self.data.val_y)) if n_val else 0
        if n_val < self.config.min_val_images or classes < 2:
            fraction = self.config.data.get("val_fraction")
            fraction = "" if fraction is None else f" (now {fraction})"
            raise ValueError(
                f"the validation split of {str(self.data.source or self.config.dataset)!r} has {n_val} image"
                f"{'' if n_val == 1 else 's'} of {classes} class{'' if classes == 1 else 'es'}: too small to rank "
                f"networks (fitness is validation accuracy; at least {self.config.min_val_images} images of 2 or "
                f"more classes are needed, setting min_val_images). Raise data.val_fraction{fraction} or "
                "data.max_train_per_class")

    def _evaluation_key(self, model) -> str:
        """The hash of everything that decides a candidate's fitness (module doc, "Evaluation cache")."""
        if self.table is not None:  # a lookup: the table, its columns and the space decide the fitness
            settings = {"table": self.data_fingerprint, "metric": self.table.metric_column,
                        "arch_column": self.table.arch_column, "space": self.space.name, "seed": self.config.seed,
                        "gpt": _checkpoint_id(model) if self.config.use_gpt else None,
                        "scorer": self.config.reconstruction_scorer}
            return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
        evaluation = {k: v for k, v in dataclasses.asdict(self.eval_config).items() if k not in ("progress", "seed")}
        settings = {"data": self.data_fingerprint, "evaluation": evaluation, "seed": self.config.seed,
                    "gpt": _checkpoint_id(model) if self.config.use_gpt else None,
                    "budget": [self.config.max_params, self.config.max_activations]
                    + ([self.config.max_macs, self.config.max_latency_ms]
                       if (self.config.max_macs, self.config.max_latency_ms) != (None, None) else [])}
        if self.config.space != "blocks":  # (blocks keep the key they always had)
            settings.update(space=self.space.name, scorer=self.config.reconstruction_scorer)
        return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @staticmethod
    def _load_pipeline(model):
        from transformers import Pipeline, pipeline

        from ..default_model import DEFAULT_MODEL

        if isinstance(model, Pipeline):
            return model
        return pipeline("nas-reconstruction", model=str(model or DEFAULT_MODEL))

    def _distributed(self):
        """The process group (accelerate's ``PartialState``): one process, or several under
        ``accelerate launch`` / ``torchrun``; on a machine without a GPU (or with
        ``evaluation.cpu``, or ``accelerate launch --cpu``) several processes use the CPU
        backend (gloo)."""
        from accelerate import PartialState
        from accelerate.utils import parse_flag_from_env

        cpu = self.eval_config.cpu or parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
        return PartialState(cpu=cpu)

    # -- state --------------------------------------------------------------------------------
    @property
    def run_directory(self) -> RunDirectory:
        return RunDirectory(self.output_dir)

    @property
    def state_path(self) -> Path:
        return self.run_directory.state_path

    @property
    def evaluations_path(self) -> Path:
        return self.run_directory.evaluations_path

    def _save_state(self, state: dict) -> None:
        """Write the state; ``wall_seconds`` is the time the search has been running, summed over
        every process that ran or resumed it (the time a stopped run sat idle is not counted)."""
        if getattr(self, "_session_started", None) is not None:
            state["wall_seconds"] = round(self._wall_before + time.monotonic() - self._session_started, 1)
        elif "started" in state:
            state["wall_seconds"] = round(time.time() - state["started"], 1)
        self.run_directory.write_state(state)

    def _load_cache(self, legacy: bool = False) -> dict[str, dict]:
        """Records made under this run's settings (``key``); with ``legacy`` also records
        without a key (written by an older version into this same run)."""
        cache: dict[str, dict] = {}
        other = 0
        for record in self.run_directory.read_records():  # a cut line: repaired by the main process, skipped here
            if record.get("key") == self.evaluation_key or (legacy and "key" not in record):
                cache[record["hash"]] = record
            else:
                other += 1
        if other and self.config.progress:
            print(f"gptnas search: {other} evaluation{'s' if other > 1 else ''} in {self.evaluations_path} "
                  "were made under other settings (data, evaluation, seed, GPT or budget) and are not reused",
                  file=sys.stderr)
        return cache


    # -- one generation -------------------------------------------------------------------------
    def _mask_rate(self, generation: int) -> float:
        """Eq. 3's rate at ``generation`` (T = ``generations``); with ``max_queries`` the
        schedule runs over the queries made instead (t = queries so far, T = max_queries)."""
        if self.config.max_queries is not None:
            done = min(self._queries, self.config.max_queries)
            return mask_rate_at(done, self.config.max_queries, self.config.initial_mask_rate)
        return mask_rate_at(generation, max(self.config.generations, 1), self.config.initial_mask_rate)

    def _within_query_budget(self, pending: list[dict], cache: dict) -> list[dict]:
        """The candidates of a generation that ``max_queries`` still allows, in order: one that
        the run has evaluated already costs no query; the first new ones up to the budget."""
        if self.config.max_queries is None:
            return pending
        left, kept, new = self.config.max_queries - len(cache), [], set()
        for candidate in pending:
            h = self._hash(candidate["genome"])
            if h not in cache and h not in new:
                if len(new) >= left:
                    continue
                new.add(h)
            kept.append(candidate)
        return kept

    def _queries_left(self, cache: dict) -> bool:
        return self.config.max_queries is None or len(cache) < self.config.max_queries

    def _best(self, population: list[Individual], cache: dict) -> Individual:
        """The fittest of the population, or of the run's records when a strategy (regularized
        evolution) let a better one age out of it."""
        best = max(population, key=lambda ind: ind.fitness)
        top = max((r for r in cache.values() if r.get("status") == "ok"), key=lambda r: r["fitness"], default=None)
        if top is not None and top["fitness"] > best.fitness:
            return Individual(genome=self.space.load(top["genome"]), fitness=top["fitness"],
                              reconstructed=top.get("reconstructed", False), origin=top.get("origin", ""),
                              meta={"parameters": top.get("parameters")})
        return best

    def _prepare(self, proposals: list[tuple[Genome, str]], generation: int) -> list[dict]:
        """Candidates of a generation: the proposals fitted to the budget, rebuilt by the GPT
        when it is on (and fitted again). With a latency budget under several processes, the
        main process measures and the others receive its candidates."""
        distributed = self._distributed()
        if self.config.max_latency_ms is not None and distributed.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            box = [self._prepare_here(proposals, generation) if distributed.is_main_process else None]
            return broadcast_object_list(box, from_process=0)[0]
        return self._prepare_here(proposals, generation)

    def _fit(self, genome: Genome, rng: random.Random, protected=()) -> tuple[Genome | None, dict, dict | None, list]:
        """(genome within budget or None, its measurements, what the repair did or None, index map)."""
        if self.budget is None:  # a table's architectures are what they are
            return genome, {}, None, None
        measured, why = self.budget.check(genome)
        if not why:
            return genome, measured, None, None
        if not isinstance(self.space, BlockSpace):  # only the block genome is narrowed; others are drawn again
            return None, measured, {"reason": why, "steps": 0, "fitted": False}, None
        fixed = repair(genome, self.budget, rng, widths=self.config.widths, min_blocks=self.config.min_blocks,
                       protected=protected)
        note = {"reason": why, "steps": fixed.steps, "fitted": fixed.genome is not None}
        return fixed.genome, fixed.measured, note, fixed.index_map

    def _fit_proposal(self, genome: Genome, rng: random.Random) -> tuple[Genome, dict, dict | None]:
        """A proposal within budget: repaired, else redrawn (and repaired) up to REDRAWS times;
        when nothing fits, the proposal itself (refused, untrained, in :meth:`_evaluate`)."""
        fitted, measured, note, _ = self._fit(genome, rng)
        if fitted is not None:
            return fitted, measured, note
        for attempt in range(REDRAWS):
            drawn, drawn_measured, _, _ = self._fit(self.space.sample(rng), rng)
            if drawn is not None:
                return drawn, drawn_measured, {**note, "redrawn": attempt + 1}
        return genome, measured, note

    def _prepare_here(self, proposals: list[tuple[Genome, str]], generation: int) -> list[dict]:
        rate = self._mask_rate(generation) if self.reconstructor is not None else None
        pending = []
        for index, (g, origin) in enumerate(proposals):
            rng = random.Random(seed_for(self.config.seed, "budget", generation, index))
            fitted, measured, note = self._fit_proposal(g, rng)
            pending.append({"genome": self.space.dump(fitted), "origin": origin, "reconstructed": False,
                            "predicted_blocks": [], "mask_rate": rate, "proposed_hash": self.space.hash(g),
                            "measured": measured, "budget_repair": note})
        if self.reconstructor is not None and pending:
            results = self._reconstruct([self.space.load(c["genome"]) for c in pending], rate, generation)
            for index, (candidate, result) in enumerate(zip(pending, results)):
                if not result["predicted_blocks"]:
                    continue
                rng = random.Random(seed_for(self.config.seed, "budget-gpt", generation, index))
                rebuilt, measured, note, index_map = self._fit(self.space.load(result["genome"]), rng,
                                                               protected=result["predicted_blocks"])
                if rebuilt is None:  # the GPT's blocks cannot be fitted: keep the proposal
                    candidate["gpt_over_budget"] = note["reason"]
                    continue
                predicted = (sorted(result["predicted_blocks"]) if index_map is None else
                             sorted(index_map[i] for i in result["predicted_blocks"] if index_map[i] is not None))
                candidate.update(genome=self.space.dump(rebuilt), reconstructed=True, predicted_blocks=predicted,
                                 measured=measured, gpt_budget_repair=note)
        return pending

    def _reconstruct(self, archs: list, rate: float, generation: int) -> list[dict]:
        """The GPT's rewrite of a generation's proposals (the nas-reconstruction pipeline), or
        for a space other than blocks with ``reconstruction_scorer: parameters`` the same
        rewrite rated by network size instead of the GPT (the control that lacks its knowledge)."""
        seed = seed_for(self.config.seed, "gpt", generation)
        shape = {"image_size": self.shape["image_size"], "in_channels": self.shape["in_channels"]}
        options = {"do_sample": self.config.reconstruction_sampling,
                   "temperature": float(self.config.reconstruction_temperature)}
        if isinstance(self.space, BlockSpace):
            return self.reconstructor(archs, mask_rate=rate, seed=seed, window_size=self.config.window_size,
                                      method=self.config.reconstruction_method, **options, **shape)
        if self.config.reconstruction_scorer == "parameters":
            from ..unit_reconstruction import reconstruct_units

            return reconstruct_units(archs, self.space, lambda cands: [float(self._parameters(a)) for a in cands],
                                     rate, seed=seed, **options)
        return self.reconstructor([self.space.dump(a) for a in archs], space=self.space, mask_rate=rate, seed=seed,
                                  num_classes=self.shape["num_classes"], **options, **shape)

    def _base_record(self, candidate: dict, generation: int) -> dict:
        """What every record of a candidate says, trained or not: the genome and how it came about."""
        genome = self.space.load(candidate["genome"])
        return {
            "hash": self.space.hash(genome), "key": self.evaluation_key, "genome": self.space.dump(genome),
            "generation": generation,
            "origin": candidate["origin"], "reconstructed": candidate["reconstructed"],
            "predicted_blocks": candidate["predicted_blocks"], "mask_rate": candidate["mask_rate"],
            "proposed_hash": candidate["proposed_hash"], "process": self._distributed().process_index,
            **{k: candidate[k] for k in ("proxy", "proxy_score", "proxy_seconds") if k in candidate},
        }

    def _start_record(self, candidate: dict, generation: int) -> tuple[dict, dict | None]:
        """The record of a candidate before training, and the job to train it (None: refused
        over the budget, and the record is complete)."""
        genome = self.space.load(candidate["genome"])
        record = self._base_record(candidate, generation)
        if self.budget is None:  # a table lookup: nothing to measure or refuse
            return record, {"genome": self.space.dump(genome), "predicted_blocks": candidate["predicted_blocks"],
                            "seed": candidate_seed(self.config.seed, genome, self.space)}
        started = time.perf_counter()
        measured = candidate.get("measured") or self.budget.measure(genome)
        record.update({k: measured[k] for k in ("macs", "latency_ms") if k in measured},
                      **{k: candidate[k] for k in ("budget_repair", "gpt_budget_repair", "gpt_over_budget")
                         if candidate.get(k)}, activations=measured["activations"])
        problem = self.budget.problem(measured)
        if problem:  # refused before anything is allocated
            record.update(fitness=0.0, top5=0.0, parameters=measured["parameters"], trainable_parameters=0,
                          train_scope="", status="budget", reason=problem,
                          seconds=round(time.perf_counter() - started, 3), images_per_second=0.0)
            return record, None
        return record, {"genome": self.space.dump(genome), "predicted_blocks": candidate["predicted_blocks"],
                        "seed": candidate_seed(self.config.seed, genome, self.space)}

    def _evaluate(self, candidate: dict, generation: int) -> dict:
        """Train and score one candidate in this process."""
        record, job = self._start_record(candidate, generation)
        if job is None:
            return record
        if self.table_evaluator is not None:
            return {**record, **self.table_evaluator.evaluate(self.space.load(job["genome"]))}
        result = evaluate_candidate(job["genome"], self.data, self.eval_config, predicted_blocks=job["predicted_blocks"],
                                    seed=job["seed"], accelerator=self._accelerator,
                                    space=None if isinstance(self.space, BlockSpace) else self.space)
        return {**record, **result}

    def _evaluate_all(self, candidates: list[tuple[int, dict]], generation: int) -> Iterator[dict]:
        """Records of ``(index, candidate)``, as each is done: in this process, or by the worker
        pool (workers.py) when there is one."""
        if self._pool is None:
            for _, candidate in candidates:
                yield self._evaluate(candidate, generation)
            return
        records, jobs = {}, []
        for index, candidate in candidates:
            record, job = self._start_record(candidate, generation)
            if job is None:
                yield record
            else:
                records[index] = record
                jobs.append((index, job["genome"], job["predicted_blocks"], job["seed"]))
        for index, result in self._pool.train(jobs):
            yield {**records[index], **result}

    def _evaluate_pending(self, state: dict, cache: dict) -> list[Individual]:
        from accelerate.utils import gather_object

        distributed = self._distributed()
        pending = state["pending"]
        todo, seen = [], set()
        for i, c in enumerate(pending):  # a genome twice in one generation (a rewrite made it again) is done once
            h = self._hash(c["genome"])
            if h not in seen and _needs_training(cache.get(h), state["generation"]):
                todo.append(i)
            seen.add(h)
        if self.config.prefilter and state["generation"] > 0 and todo:
            todo = self._prefilter(pending, todo, state["generation"], cache)
        mine = todo[distributed.process_index::distributed.num_processes]
        bar = tqdm(total=len(pending), initial=len(pending) - len(todo), disable=not self.config.progress
                   or not distributed.is_main_process, desc=f"generation {state['generation']}", unit="net")
        fresh = []
        for record in self._evaluate_all([(i, pending[i]) for i in mine], state["generation"]):
            fresh.append(record)
            self.run_directory.append_record(record)  # by the process that trained it, as soon as it is done
            cache[record["hash"]] = record
            self._log_new_candidates(cache)
            bar.update(distributed.num_processes)
            bar.set_postfix(best=f"{max((r['fitness'] for r in cache.values()), default=0):.3f}")
        bar.close()
        if distributed.num_processes > 1:
            fresh = gather_object(fresh)
            for record in fresh:
                cache[record["hash"]] = record
        self._log_new_candidates(cache)  # the other processes' records, and any the pre-filter wrote
        individuals = []
        for candidate in pending:
            record = cache[self._hash(candidate["genome"])]
            individuals.append(Individual(genome=self.space.load(candidate["genome"]), fitness=record["fitness"],
                                          reconstructed=candidate["reconstructed"], origin=candidate["origin"],
                                          meta={"parameters": record["parameters"]}))
        return individuals

    def _prefilter(self, pending: list[dict], todo: list[int], generation: int, cache: dict) -> list[int]:
        """Rank the offspring still to train by the zero-cost proxy ``prefilter`` and keep the top
        ``prefilter_keep`` share of the generation; the others are recorded untrained (status
        ``prefiltered``, fitness 0, their ``proxy_score``): never selected over a trained one,
        never reported as trained. Every process computes the same ranking (seeded)."""
        import math

        from ..zero_cost import score_genome

        distributed = self._distributed()
        keep = max(1, math.ceil(self.config.prefilter_keep * len(pending)))
        space = self.space
        trained_already = sum(cache.get(space.hash(space.load(c["genome"])), {}).get("status", "prefiltered")
                              != "prefiltered" for c in pending)
        scores, seconds = {}, {}
        for index in todo:
            arch = space.load(pending[index]["genome"])
            started = time.perf_counter()
            score = score_genome(arch, self.data, self.config.prefilter, space=space, batch_seed=self.config.seed,
                                 seed=candidate_seed(self.config.seed, pending[index]["genome"], space))
            seconds[index] = round(time.perf_counter() - started, 4)
            scores[index] = score if score == score else float("-inf")  # NaN ranks last
            # the trained ones keep their score and its cost too (their record says what the proxy thought)
            pending[index].update(proxy=self.config.prefilter, proxy_score=scores[index], proxy_seconds=seconds[index])
        ranked = sorted(todo, key=lambda i: (-scores[i], i))
        chosen = set(ranked[:max(0, keep - trained_already)])
        for index in todo:
            if index in chosen:
                continue
            record = {**self._base_record(pending[index], generation),  # proxy, its score and seconds included
                      "fitness": 0.0, "top5": 0.0, "parameters": 0, "trainable_parameters": 0, "train_scope": "",
                      "status": "prefiltered",
                      "reason": f"not trained: {self.config.prefilter} score {scores[index]:.4g} outside the top "
                                f"{self.config.prefilter_keep:.0%} of the generation", "seconds": 0.0,
                      "images_per_second": 0.0}
            if distributed.is_main_process:
                self.run_directory.append_record(record)
            cache[record["hash"]] = record
        return [i for i in todo if i in chosen]

    # -- the loop -------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> SearchResult:
        """Search to the end; with ``resume`` carry on from the run directory's state. The run
        directory is locked for the whole run (``RunDirectory.lock``): a second search on it,
        fresh or resumed, is refused with the holder's pid."""
        import contextlib

        self.output_dir.mkdir(parents=True, exist_ok=True)
        held = self.run_directory.lock() if self._distributed().is_main_process else contextlib.nullcontext()
        with held:
            return self._run(resume)

    def _run(self, resume: bool) -> SearchResult:
        distributed = self._distributed()
        rng = random.Random(self.config.seed)
        resuming = resume and self.state_path.is_file()
        if self.state_path.is_file() and not resume:
            raise FileExistsError(f"{self.output_dir} already holds a search; pass resume=True (--resume) to carry "
                                  "on, or choose another output directory")
        self._session_started, self._wall_before = time.monotonic(), 0.0
        if resuming:
            state = self.run_directory.read_state()
            self._check_resume(state)
            self._wall_before = float(state.get("wall_seconds") or 0.0)
        if distributed.is_main_process:
            self._cut = self.run_directory.repair_evaluations()
        distributed.wait_for_everyone()
        cache = self._load_cache(legacy=resuming)
        self._queries = len(cache)
        if resuming:
            _set_rng_state(rng, state["rng"])
            self.strategy.load_state_dict(state["strategy"])
            state["config"]["retrain"] = self.config.to_dict()["retrain"]  # a corrected retrain section
            state.setdefault("data", {"source": self._source(), "fingerprint": self.data_fingerprint})
            state["evaluation_key"] = self.evaluation_key
        else:
            initial = [(g, "init") for g in self.strategy.initial_population(rng)]
            state = {"config": self.config.to_dict(), "generation": 0, "phase": "evaluate",
                     "pending": self._within_query_budget(self._prepare(initial, 0), cache), "population": [],
                     "history": [], "rng": _rng_state(rng), "strategy": self.strategy.state_dict(),
                     "started": time.time(), "data": {"source": self._source(), "fingerprint": self.data_fingerprint},
                     "evaluation_key": self.evaluation_key}
        self._tracker = SearchTracker(self.config.log_with, self.output_dir, self.output_dir.resolve().name or "search",
                                      config=self.config.to_dict(), run_state=state.get("trackers"),
                                      is_main_process=distributed.is_main_process)
        if self._tracker.enabled:
            state["trackers"] = self._tracker.state_dict()
            tracked = self.run_directory.read_tracked()
            if tracked is None:  # a run from before the count: its finished generations were logged
                tracked = sum(r.get("generation", 0) < state["generation"] for r in cache.values()) if resuming else 0
            # a kill between a tracker's write and the count leaves the count behind: where the
            # tracker's own files say what it holds (TensorBoard), that decides
            self._tracked = min(max(tracked, self._tracker.last_step("candidate")), len(cache))
            if self._tracked != tracked and distributed.is_main_process:
                self.run_directory.write_tracked(self._tracked)
            self._log_new_candidates(cache)  # what a killed run wrote but never logged
        if distributed.is_main_process:
            self._save_state(state)
            self.run_directory.write_data(self._describe_data())
        on_gpu = distributed.device.type == "cuda"
        threads = resolve_threads(self.config.threads, on_gpu)
        workers = resolve_workers(self.config.workers, threads, on_gpu, distributed.num_processes)
        interrupted = False
        try:
            with torch_threads(threads):
                if workers > 1 and state["phase"] != "done" and self.table is None:
                    self._pool = CandidatePool(workers, self.data, self.eval_config, threads, space=self.space)
                return self._loop(state, cache, rng)
        except KeyboardInterrupt:  # every finished candidate is recorded: a resume carries on exactly
            interrupted = True
            raise
        finally:
            self._tracker.finish()
            self._tracker = None
            if self._pool is not None:
                self._pool.close(now=interrupted)
                self._pool = None

    def _loop(self, state: dict, cache: dict, rng: random.Random) -> SearchResult:
        distributed = self._distributed()
        population = [Individual.from_dict(d, self.space) for d in state["population"]]
        if state["phase"] == "done" and distributed.is_main_process and population:
            self._rewrite_finished(state, population, cache)
        while state["phase"] != "done":
            offspring = self._evaluate_pending(state, cache)
            if state["generation"] == 0:
                self._check_something_fits(state["pending"], cache)
                population = self.strategy.first_population(offspring, rng)
            else:
                population = self.strategy.select(population, offspring, rng)
            state["history"].append(self._stats(state["generation"], population, offspring, cache,
                                                self._mask_rate(state["generation"]) if self.reconstructor else None,
                                                self.space))
            state["population"] = [ind.to_dict(self.space) for ind in population]
            self._queries = len(cache)
            last = state["generation"] >= self.config.generations or not self._queries_left(cache)
            if self.adapter is not None and not last:
                self._adapt(state, cache)  # the GPT that rebuilds the next generation
            self._tracker.log_generation(state["history"][-1], state["generation"])
            if last:
                state.update(phase="done", pending=[])
            else:
                state["generation"] += 1
                proposals = self._propose(population, rng, cache)
                state["pending"] = self._within_query_budget(
                    self._prepare([(p.genome, p.origin) for p in proposals], state["generation"]), cache)
            state["rng"] = _rng_state(rng)
            state["strategy"] = self.strategy.state_dict()
            if distributed.is_main_process:
                self._save_state(state)
                if state["phase"] == "done" or time.monotonic() - self._reported >= REPORT_EVERY_S:
                    self._write_reports(state, population, cache)
                    self._reported = time.monotonic()
        return SearchResult(self._best(population, cache), population, state["history"], self.output_dir, len(cache))

    def _log_new_candidates(self, cache: dict) -> None:
        """Log to the trackers every record not logged yet, in the order of the run's records
        (step = its number in the run), and keep the count in ``tracked.json``: every record is
        logged once, also across kills and resumes."""
        if self._tracker is None or not self._tracker.enabled or not self._distributed().is_main_process:
            return
        records = list(cache.values())
        if len(records) <= self._tracked:
            return
        for step, record in enumerate(records[self._tracked:], self._tracked + 1):
            self._tracker.log_candidate(record, step)
            self._tracked = step
            self.run_directory.write_tracked(step)  # per record: a kill repeats at most the one in flight

    def _rewrite_finished(self, state: dict, population: list[Individual], cache: dict) -> None:
        """A resumed finished run writes its reports and best genome again from its state and
        records: a damaged ``best_genome.json`` is rebuilt, and said so."""
        missing = [ind for ind in population if self.space.hash(ind.genome) not in cache]
        missing = list({self.space.hash(ind.genome): ind for ind in missing}.values())
        for record in self._evaluate_all([(i, {"genome": self.space.dump(ind.genome), "origin": ind.origin,
                                               "reconstructed": ind.reconstructed, "predicted_blocks": [],
                                               "mask_rate": None, "proposed_hash": self.space.hash(ind.genome)})
                                          for i, ind in enumerate(missing)], state["generation"]):
            self.run_directory.append_record(record)
            cache[record["hash"]] = record
        if missing or getattr(self, "_cut", 0):
            lost = max(0, self._cut - len(missing))
            print(f"gptnas search: the run had finished; evaluated again {len(missing)} candidate"
                  f"{'s' if len(missing) != 1 else ''} of its final population whose record was cut"
                  + (f"; {lost} cut record{'s' if lost != 1 else ''} of candidates outside it stay only in "
                     f"{self.evaluations_path.name}.partial-*" if lost else ""), file=sys.stderr)
        try:
            self.run_directory.read_best_genome(None if isinstance(self.space, BlockSpace) else self.space)
            damaged = None
        except (ValueError, FileNotFoundError) as err:
            damaged = err
        self._write_reports(state, population, cache)
        if damaged is not None:
            print(f"gptnas search: {self.run_directory.best_genome_path} was unreadable; rebuilt from "
                  f"{self.evaluations_path.name}", file=sys.stderr)

    def _propose(self, population: list[Individual], rng: random.Random, cache: dict) -> list:
        """The strategy's proposals for the next step; with ``proposal_filter``, the best-rated
        of ``proposal_pool`` times as many (proposal_filter.py)."""
        proposals = self.strategy.propose_with_origins(population, rng)
        if self.config.proposal_filter is None or not proposals:
            return proposals
        pool = list(proposals)
        for _ in range(self.config.proposal_pool - 1):
            pool.extend(self.strategy.propose_with_origins(population, rng))
        kept = filter_proposals(pool, len(proposals), self._proposal_scores, lambda p: self._hash(p.genome), set(cache))
        return [proposal for proposal, _ in kept]

    def _proposal_scores(self, proposals: list) -> list[float]:
        archs = [self.space.load(p.genome) for p in proposals]
        scorer = self.config.proposal_filter
        sizes = [float(self._parameters(a)) for a in archs] if scorer != "gpt" else []
        if scorer == "parameters":
            return sizes
        gpt = self.reconstructor or self._filter_gpt
        likelihood = gpt.score(archs, space=self.space, window_size=self.config.window_size, **self.shape)
        if scorer == "parameters>gpt":
            return lexicographic_ranks(sizes, likelihood)
        return likelihood if scorer == "gpt" else average_ranks(likelihood, sizes)

    def _adapt(self, state: dict, cache: dict) -> None:
        """Fine-tune the GPT on the best genomes so far (adaptation.py) before it rebuilds the
        next generation; the weights are saved in the run directory."""
        generation = state["generation"]
        summary = self.adapter.adapt(list(cache.values()), seed=seed_for(self.config.seed, "adapt", generation))
        if self._distributed().is_main_process:
            self.adapter.save(self.output_dir, generation, summary)
        state["history"][-1]["adaptation_seconds"] = summary["seconds"]
        state["adaptation"] = {"generation": generation, **{k: v for k, v in summary.items() if k != "top_hashes"}}

    def _check_something_fits(self, pending: list[dict], cache: dict) -> None:
        """A budget that no genome of the initial population fits, even after repair and
        redraws, is an error: there would be no network to return."""
        statuses = [cache[self._hash(c["genome"])]["status"] for c in pending]
        if statuses and all(status == "budget" for status in statuses):
            reason = cache[self._hash(pending[0]["genome"])]["reason"]
            raise ValueError(f"no genome of generation 0 fits the budget, even repaired (narrower, fewer blocks) or "
                             f"drawn again: {reason}. Raise max_params / max_macs / max_activations / "
                             "max_latency_ms, or search smaller networks (widths, min_blocks)")

    def _check_resume(self, state: dict) -> None:
        """Refuse to resume with other data or other settings, naming what differs."""
        old, new = state["config"], self.config.to_dict()
        recorded = state.get("data", {}).get("fingerprint")
        if not _same_dataset(old.get("dataset"), new["dataset"]) or (recorded and recorded != self.data_fingerprint):
            same_name = _same_dataset(old.get("dataset"), new["dataset"])
            raise ValueError(
                f"{self.state_path} is a search on {old.get('dataset')!r}"
                + (f" (data fingerprint {recorded})" if same_name else "")
                + f", but this command gives {new['dataset']!r}"
                + (f" whose data is now different (fingerprint {self.data_fingerprint})" if same_name else "")
                + ": one run cannot mix two datasets; resume with the run's dataset, or use another --output-dir")
        a, b = _comparable(old), _comparable(new)
        changed = [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        if changed:
            raise ValueError(f"{self.state_path} was written by a search with other settings ({'; '.join(changed)}); "
                             "resume with the same recipe and options (only retrain may change) or use another "
                             "--output-dir")

    @staticmethod
    def _stats(generation: int, population: list[Individual], offspring: list[Individual], cache: dict,
               mask_rate: float | None = None, space: SearchSpace | None = None) -> dict:
        fitness = [ind.fitness for ind in population]
        return {
            "generation": generation, "best": max(fitness), "mean": sum(fitness) / len(fitness),
            "offspring_best": max(ind.fitness for ind in offspring) if offspring else None,
            "reconstructed": sum(ind.reconstructed for ind in offspring), "evaluations": len(cache),
            "mask_rate": mask_rate, **{f"diversity_{k}": v for k, v in population_diversity(
                [ind.genome for ind in population], tokens=space.tokens if space is not None else None).items()},
        }

    def _write_reports(self, state: dict, population: list[Individual], cache: dict) -> None:
        from .report import write_reports

        if self.table is not None:
            data = self._describe_data()
        else:
            data = {**self.data.describe(), "train": len(self.data.train_y), "val": len(self.data.val_y),
                    "test": len(self.data.test_y)}
        write_reports(self.output_dir, self.config, state, population, list(cache.values()), data, space=self.space,
                      best=self._best(population, cache))

    def _source(self) -> str:
        """What the run searched on: the dataset, or the fitness table."""
        return str(self.table.path) if self.table is not None else str(self.config.dataset)

    def _describe_data(self) -> dict:
        if self.table is None:
            return self.data.describe()
        return {"table": self.table.describe(), **self.shape, "source": str(self.table.path)}
