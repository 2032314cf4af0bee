"""What every benchmark shares: where results go, the machine they ran on, the results table,
the CPU-proxy search settings and data, candidate training (with an on-disk cache), timing
and plotting helpers.

Every benchmark runs as ``python -m bench.NAME --budget small|paper [--seeds N]``:

* ``small``: the CPU proxy of ``recipes/search-cifar10-cpu.yaml`` (a class-balanced CIFAR-10
  subset, narrow networks, short training), sized for a 2-core CPU (each result records its wall time);
* ``paper``: the paper's scale (``recipes/search-cifar10.yaml``, the full CIFAR-10), for a GPU;
* ``smoke`` (hidden): a code-path check on scikit-learn's digits, for ``tests/test_bench_smoke.py``.

Threads. On a CPU the benchmarks run torch with one intra-op thread unless ``--threads N`` says
otherwise: on a shared 2-core machine two threads train a candidate faster while the other core
is idle but collapse when another job runs (``bench.search_wall`` measures thread policies quiet
and under load), so one thread gives timings that other people's jobs cannot wreck. ``threads`` and the load average are recorded with every result.

Results go to ``bench/results/NAME.{json,png}`` and a row of ``bench/RESULTS.md``; set
``GPTNAS_BENCH_RESULTS`` (or pass ``--results-dir``) to write them elsewhere (the table then
lives in that directory too). Run directories and the candidate cache go to ``RESULTS/runs/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import hashlib
import json
import os
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_TABLE = Path(__file__).resolve().parent / "RESULTS.md"
RESULTS_ENV = "GPTNAS_BENCH_RESULTS"
REUSE_STALE_ENV = "GPTNAS_BENCH_REUSE_STALE"
CIFAR10_ENV = "GPTNAS_CIFAR10"
#: where the real CIFAR-10 (Hugging Face parquet: train.parquet, test.parquet) is expected
DEFAULT_CIFAR10 = ROOT.parent / "shared" / "data" / "cifar10"
RECIPES = {"smoke": ROOT / "recipes" / "search-cifar10-cpu.yaml", "small": ROOT / "recipes" / "search-cifar10-cpu.yaml",
           "paper": ROOT / "recipes" / "search-cifar10.yaml"}
BUDGETS = ("small", "paper", "smoke")
#: smoke budget: the proxy recipe shrunk to seconds, on digits (ships with scikit-learn, offline)
SMOKE_OVERRIDES = {  # a code-path check in seconds: candidates train in the benchmark's own process
    "dataset": "digits", "min_blocks": 4, "max_blocks": 6, "widths": [8], "max_downsamples": 2, "workers": 1,
    "data": {"max_train_per_class": 8, "val_fraction": 0.25},
    "evaluation": {"epochs": 1, "batch_size": 32, "lr": 0.05, "augment": False, "max_batches_per_epoch": 1},
}
CACHE_VERSION = 2
#: the package sources that decide a candidate's training result (part of the cache key)
TRAINING_SOURCES = ("genome_schema.py", "genome_network.py", "kind_registry.py", "builtin_kinds.py", "evaluation.py",
                    "data.py", "search/candidate.py")


# -- where results go ----------------------------------------------------------------------
def results_dir() -> Path:
    """``$GPTNAS_BENCH_RESULTS`` if set, else ``bench/results``."""
    return Path(os.environ.get(RESULTS_ENV) or DEFAULT_RESULTS)


def table_path() -> Path:
    """``bench/RESULTS.md``, or ``RESULTS.md`` inside an overridden results directory."""
    return results_dir() / "RESULTS.md" if os.environ.get(RESULTS_ENV) else DEFAULT_TABLE


def runs_dir() -> Path:
    return results_dir() / "runs"


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads()}
    if hasattr(os, "getloadavg"):
        info["load_average_1m"] = round(os.getloadavg()[0], 2)
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def machine_name() -> str:
    return machine().get("gpu") or f"{os.cpu_count()}-core CPU"


def write_result(name: str, settings: dict, figures: dict, headline: str) -> Path:
    """Write ``RESULTS/NAME.json``, put ``headline`` in NAME's row of the results table, and
    print the headline and where the JSON went."""
    out = results_dir()
    out.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": name, "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "commit": commit(), "provenance": provenance(), "machine": machine(), "settings": settings,
              "figures": figures}
    record = json.loads(json.dumps(record, default=_jsonable), object_hook=_without_absolute_paths)
    path = out / f"{name}.json"
    path.write_text(json.dumps(record, indent=1))
    headline = shown_path_text(headline)
    budget = settings.get("budget")
    threads = torch.get_num_threads()
    where = machine_name() + ("" if torch.cuda.is_available() else f" ({threads} thread{'s' if threads > 1 else ''})")
    where += f", {budget} budget" if budget else ""
    sha = record["commit"]["sha"]
    _update_table(name, record["date"][:10], where, headline,
                  sha=(sha[:7] + ("+" if record["commit"]["dirty"] else "")) if sha else None)
    print(headline)
    print(f"-> {path}")
    return path


def commit() -> dict:
    """The git commit the benchmark ran from, and whether the tree had uncommitted changes to
    tracked files (``dirty``: the figures then come from code no commit holds)."""
    import subprocess

    def git(*args) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    # the benchmarks' own outputs (figures written before the JSON, the results table) do not make code dirty
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results",
                  ":(exclude)bench/RESULTS.md")
    return {"sha": git("rev-parse", "HEAD") or None, "dirty": bool(changed)}


def provenance() -> dict:
    """What else made a figure besides the commit: the library versions and the hash of the
    shipped GPT checkpoint (benchmarks that read another checkpoint name it in their settings)."""
    import transformers

    from gptnas_hf.architecture_score import checkpoint_identity
    from gptnas_hf.default_model import DEFAULT_MODEL

    return {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
            "gpt_checkpoint": {"path": shown_path_text(DEFAULT_MODEL), "sha256": checkpoint_identity(DEFAULT_MODEL)}}


def _path_prefixes() -> list[tuple[str, str]]:
    """Absolute prefixes of this machine and what a result file says instead, longest first."""
    import tempfile

    # the repository's own prefixes last: where the repository sits directly in the home or the
    # temporary folder (a clone in /tmp), its parent is shown as ``..``, not as ``~`` or ``<tmp>``
    prefixes = {str(Path.home()): "~", str(Path(tempfile.gettempdir()).resolve()): "<tmp>", "/dev/shm": "<tmp>",
                str(ROOT.parent): "..", str(ROOT): "."}
    return sorted(prefixes.items(), key=lambda item: -len(item[0]))


def shown_path_text(text: str) -> str:
    """``text`` with every absolute path of this machine's repository, its parent folder, the
    home and the temporary folders written relative to the repository or symbolically
    (``./`` dropped: ``bench/results``, ``../shared/data``, ``~/.cache``, ``<tmp>/x``)."""
    import re

    for prefix, shown in _path_prefixes():
        text = text.replace(prefix + "/", "" if shown == "." else shown + "/")
        text = re.sub(re.escape(prefix) + r"(?![\w-]|\.\w)", shown, text)
    return text


def _without_absolute_paths(mapping: dict) -> dict:
    def fix(value):
        if isinstance(value, str):
            return shown_path_text(value)
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    return {shown_path_text(k): fix(v) for k, v in mapping.items()}


def _jsonable(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _recorded_commit(name: str) -> str:
    """The short commit a benchmark's JSON in the results folder records, else why not."""
    path = results_dir() / f"{name}.json"
    try:
        sha = (json.loads(path.read_text()).get("commit") or {}).get("sha")
    except (OSError, ValueError, AttributeError):
        sha = None
    return sha[:7] if sha else "not recorded"


def _update_table(name: str, date: str, where: str, headline: str, sha: str | None = None) -> None:
    """Put NAME's row (date, commit, machine, headline) in the results table; rows written before
    the commit column get the commit their JSON records."""
    table = table_path()
    header = ["# Benchmark results", "", "Measured figures, one row per benchmark (latest run); details in "
              "`bench/results/NAME.json` and `NAME.png`. Run one with `python -m bench.NAME --budget small`, "
              "all with `python -m bench.all --budget small`. Each JSON records the exact settings it ran with "
              "(the proxy's training settings included: rows measured before a recipe change keep the old ones), "
              "the commit it ran at (the `commit` column; a `+` marks uncommitted changes) and the library versions.",
              "", "| benchmark | date | commit | machine | headline |",
              "| --- | --- | --- | --- | --- |"]
    rows, rest = {}, []
    if table.is_file():  # the benchmark table, then any sections written by hand (kept as they are)
        lines = table.read_text().splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith("| benchmark")), len(lines))
        end = start
        while end < len(lines) and lines[end].startswith("| "):
            line = lines[end]
            if not line.startswith("| benchmark") and not line.startswith("| ---"):
                cells = line.split("|")[1:-1]
                key = cells[0].strip()
                if len(cells) == 4:  # a row from before the commit column
                    cells.insert(2, f" {_recorded_commit(key)} ")
                rows[key] = "|" + "|".join(cells) + "|"
            end += 1
        rest = lines[end:]
    rows[name] = f"| {name} | {date} | {sha or _recorded_commit(name)} | {where} | {headline.replace('|', '/')} |"
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text("\n".join(header + [rows[k] for k in sorted(rows)] + rest) + "\n")


# -- command line ----------------------------------------------------------------------------
def parser(doc: str, seeds_help: str) -> argparse.ArgumentParser:
    """The options every benchmark takes."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", choices=BUDGETS, default="small",
                   help="small: the CPU proxy, sized for 2 cores; paper: the paper's scale, for a GPU")
    p.add_argument("--seeds", type=int, default=None, help=seeds_help)
    p.add_argument("--results-dir", default=None, help=f"write results here instead of bench/results (or set ${RESULTS_ENV})")
    p.add_argument("--reuse-stale-runs", action="store_true",
                   help="reuse cached trainings made by other training code (they are refused by default)")
    p.add_argument("--dataset", default=None,
                   help=f"the CIFAR-10 copy (HF parquet); default ${CIFAR10_ENV} or {DEFAULT_CIFAR10}")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default on a CPU: 1, see the module doc; on a GPU: torch's default)")
    return p


def add_shard_option(p: argparse.ArgumentParser, what: str) -> None:
    """``--shard I/N``: this process does every N-th of the benchmark's ``what``, from the I-th,
    and writes no results (several processes share the cores and one cache)."""
    p.add_argument("--shard", default=None, type=_shard_spec,
                   help=f"I/N: train every N-th {what} from the I-th and write no results")


def _shard_spec(text: str) -> tuple[int, int]:
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes I/N (e.g. 0/2), got {text!r}") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard I/N needs 0 <= I < N, got {text!r}")
    return index, count


def shard(jobs: list, spec: tuple[int, int] | None) -> list:
    """The jobs of one ``--shard`` (all of them without one)."""
    if spec is None:
        return jobs
    index, count = spec
    return jobs[index::count]


def parse(p: argparse.ArgumentParser, argv) -> argparse.Namespace:
    args = p.parse_args(argv)
    if args.results_dir:
        os.environ[RESULTS_ENV] = str(Path(args.results_dir).resolve())
    if args.reuse_stale_runs:
        os.environ[REUSE_STALE_ENV] = "1"
    threads = args.threads or (None if torch.cuda.is_available() else 1)
    if threads:
        torch.set_num_threads(threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    import datasets

    datasets.disable_progress_bars()
    return args


# -- the proxy search settings and data --------------------------------------------------------
def search_config(budget: str, **overrides):
    """The search recipe of a budget (one source of truth), with ``overrides`` on top; nested
    ``data`` / ``evaluation`` overrides are merged into the recipe's mappings."""
    from gptnas_hf.search.searcher import SearchConfig

    base = SearchConfig.from_yaml(RECIPES[budget]).to_dict()
    layers = [SMOKE_OVERRIDES] if budget == "smoke" else []
    for layer in layers + [overrides]:
        for key, value in layer.items():
            if value is None:
                continue
            if key in ("data", "evaluation", "retrain") and isinstance(value, dict):
                base[key] = {**base.get(key, {}), **value}
            else:
                base[key] = value
    base["progress"] = False
    return SearchConfig.from_dict(base)


def recipe_name(budget: str) -> str:
    return str(RECIPES[budget].relative_to(ROOT)) + (" + smoke overrides (digits)" if budget == "smoke" else "")


def cifar10_path(explicit: str | None = None) -> Path:
    path = Path(explicit or os.environ.get(CIFAR10_ENV) or DEFAULT_CIFAR10).expanduser()
    if not path.is_dir() or not any(path.rglob("*.parquet")):
        sys.exit(f"CIFAR-10 not found at {path}: the benchmarks train on the real CIFAR-10 (Hugging Face parquet "
                 f"files train.parquet / test.parquet). Put a copy there, pass --dataset DIR or set ${CIFAR10_ENV}.")
    return path


def data_source(budget: str, explicit: str | None = None) -> str:
    return "digits" if budget == "smoke" else str(cifar10_path(explicit))


def load_data(config, source: str):
    """The search's data exactly as :class:`NASSearcher` loads it (seeded by the config)."""
    from gptnas_hf.data import load_image_data

    return load_image_data(source, seed=config.seed, progress=False, **config.data)


def data_settings(config, source: str, data) -> dict:
    return {"source": source, "seed": config.seed, **config.data, "train": len(data.train_y), "val": len(data.val_y),
            "classes": data.num_classes, "image": f"{data.channels}x{data.image_size}x{data.image_size}"}


def proxy_data(config, budget: str, explicit: str | None = None):
    """The benchmark's data source, the data as the searcher loads it, and the settings that
    describe it (for cache keys and result files)."""
    source = data_source(budget, explicit)
    data = load_data(config, source)
    return source, data, data_settings(config, source, data)


def eval_config(config, **overrides):
    from gptnas_hf.evaluation import EvalConfig

    return EvalConfig(**{"progress": False, **config.evaluation, **overrides})


@functools.lru_cache(maxsize=None)
def _pipeline(model: str):
    from transformers import pipeline

    return pipeline("nas-reconstruction", model=model)


def reconstructor(model: str | None = None):
    """The shipped architecture GPT's ``nas-reconstruction`` pipeline (loaded once)."""
    import gptnas_hf

    return _pipeline(str(model or gptnas_hf.DEFAULT_MODEL))


def sample_genomes(config, n: int, first_seed: int = 1000):
    """``n`` random genomes within the search's limits, seeds ``first_seed``.. (shared by the
    benchmarks, so the candidate cache can reuse trainings across them)."""
    from gptnas_hf.search_space import sample_genome

    return [sample_genome(first_seed + i, config.min_blocks, config.max_blocks, config.widths, config.max_downsamples)
            for i in range(n)]


def reconstruct(genomes, rate: float, data, seed: int = 0) -> list[dict]:
    """One batch through the pipeline, as the searcher calls it."""
    return reconstructor()([g for g in genomes], mask_rate=rate, seed=seed, image_size=data.image_size,
                           in_channels=data.channels)


# -- candidate training ----------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def code_fingerprint() -> str:
    """A hash of the sources that build and train candidates, and of torch's version: cached
    trainings from older code are not reused."""
    import gptnas_hf

    digest = hashlib.sha256(torch.__version__.encode())
    for name in TRAINING_SOURCES:
        digest.update((Path(gptnas_hf.__file__).resolve().parent / name).read_bytes())
    return digest.hexdigest()[:16]


class CandidateCache:
    """Evaluations on disk (``RESULTS/runs/candidates.jsonl``), keyed by everything that decides
    the result: genome, predicted blocks, the whole evaluation config, the data settings, the
    seed and the code (:func:`code_fingerprint`). Benchmarks that train the same candidate the same way (mask_rate and fidelity
    share genomes) train it once; a re-run resumes where a killed one stopped."""

    def __init__(self, path: Path | None = None, enabled: bool = True, reuse_stale: bool | None = None):
        """``reuse_stale``: also answer from trainings made by other training code (matched on
        everything else; default: ``--reuse-stale-runs`` / ``$GPTNAS_BENCH_REUSE_STALE``)."""
        self.path = path or runs_dir() / "candidates.jsonl"
        self.enabled = enabled
        self.reuse_stale = os.environ.get(REUSE_STALE_ENV) == "1" if reuse_stale is None else reuse_stale
        self.records: dict[str, dict] = {}
        self.loose: dict[str, dict] = {}
        self.hits = self.misses = self.stale_hits = 0
        if enabled and self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self.records[record["key"]] = record
                if record.get("loose"):
                    self.loose[record["loose"]] = record
        code = code_fingerprint()
        self.stale = sum(r.get("code", code) != code for r in self.records.values())
        if self.stale:
            progress(f"{self.stale} cached trainings in {self.path.name} were made by other training code: "
                     + ("reused where nothing else differs (--reuse-stale-runs)" if self.reuse_stale else
                        "not reused (pass --reuse-stale-runs to reuse them)"))

    @staticmethod
    def key(genome, predicted_blocks, config, data_key: dict, seed: int, space=None, code: bool = True) -> str:
        """``space``: the genome's search space (default the block genome, whose keys are
        unchanged by this argument); ``code=False``: the key without the training code's
        fingerprint (what a stale training is matched on)."""
        settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("progress", "seed")}
        described = {"genome": genome.to_list()} if space is None else {"space": space.name, "genome": space.dump(genome)}
        fields = {"v": CACHE_VERSION, **described, "predicted": sorted(predicted_blocks), "eval": settings,
                  "data": data_key, "seed": seed}
        if code:
            fields["code"] = code_fingerprint()
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]

    def get(self, key: str, loose: str | None = None) -> dict | None:
        """The training under ``key``; with ``reuse_stale``, else one made by other training
        code under the ``loose`` key."""
        if not self.enabled:
            return None
        hit = self.records.get(key)
        if hit is None and self.reuse_stale and loose is not None:
            hit = self.loose.get(loose)
            self.stale_hits += hit is not None
        return hit

    def put(self, record: dict) -> None:
        self.records[record["key"]] = record
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as handle:
                handle.write(json.dumps(record) + "\n")


def train_candidate(genome, data, config, data_key: dict, run_seed: int = 0, predicted_blocks=(),
                    cache: CandidateCache | None = None, space=None) -> dict:
    """Build and briefly train one candidate exactly as the searcher does (weights and batches
    seeded from the run's seed and the genome's hash); returns fitness, top-5, the resolved
    train scope, parameter counts, seconds and images/s. Cached when ``cache`` is given.
    ``space``: the genome's search space (a :class:`SearchSpace`; default the block genome)."""
    from gptnas_hf.search.candidate import candidate_seed, evaluate_candidate
    from gptnas_hf.search_space import Genome

    genome = Genome.from_json(genome) if space is None else space.load(genome)
    seed = candidate_seed(run_seed, genome, space)
    key = CandidateCache.key(genome, predicted_blocks, config, data_key, seed, space)
    loose = CandidateCache.key(genome, predicted_blocks, config, data_key, seed, space, code=False)
    if cache is not None:
        hit = cache.get(key, loose)
        if hit is not None:
            cache.hits += 1
            return hit
        cache.misses += 1
    result = evaluate_candidate(genome, data, config, seed=seed, predicted_blocks=predicted_blocks, space=space)
    record = {"key": key, "hash": genome.hash() if space is None else space.hash(genome), "fitness": result["fitness"], "top5": result["top5"],
              "status": result["status"], "train_scope": result["train_scope"], "parameters": result["parameters"],
              "trainable_parameters": result["trainable_parameters"], "seconds": result["seconds"],
              "images_per_second": round(result["images_per_second"], 1), "epochs": config.epochs,
              "loose": loose, "code": code_fingerprint()}
    if cache is not None:
        cache.put(record)
    return record


# -- timing ----------------------------------------------------------------------------------
@contextmanager
def timed(into: list):
    """``with timed(times): ...`` appends the block's wall seconds to ``times``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        into.append(time.perf_counter() - start)


class Clock:
    """Wall time of a whole benchmark, and the machine's load while it ran (other jobs on a
    shared machine slow everything down; timings are only comparable at low load)."""

    def __init__(self):
        self.start = time.perf_counter()
        self.load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    def info(self) -> dict:
        out = {"wall_seconds": round(time.perf_counter() - self.start, 1)}
        if self.load_start is not None:
            out.update(load_average_at_start=round(self.load_start, 2), load_average_at_end=round(os.getloadavg()[0], 2))
        return out


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- statistics and plots ----------------------------------------------------------------------
def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def std(values) -> float | None:
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return 0.0 if values else None
    m = mean(values)
    return (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def paired_t(a, b) -> dict:
    """a - b over the same units (seeds): the mean difference, its t 95% interval and the matching
    two-sided paired t-test p (one analysis, so the interval excludes 0 exactly when p < 0.05),
    the sample sd, the smallest true difference detected with 80% power at alpha 0.05
    (``mde80``), n and wins / ties / losses."""
    from scipy import stats

    diffs = [x - y for x, y in zip(a, b)]
    n = len(diffs)
    m = sum(diffs) / n if n else float("nan")
    sd = (sum((d - m) ** 2 for d in diffs) / (n - 1)) ** 0.5 if n > 1 else float("nan")
    if n > 1:
        crit, power = float(stats.t.ppf(0.975, n - 1)), float(stats.t.ppf(0.8, n - 1))
        half, mde = crit * sd / n ** 0.5, (crit + power) * sd / n ** 0.5
        if sd > 0:
            p = float(2 * stats.t.sf(abs(m) / (sd / n ** 0.5), n - 1))
        else:  # every difference equal: no spread to test against
            p = 1.0 if m == 0 else 0.0
    else:
        half = mde = p = float("nan")
    return {"mean": m, "ci95": [m - half, m + half], "p_value": p, "test": "paired t", "sd": sd, "mde80": mde,
            "n": n, "wins": sum(d > 0 for d in diffs), "ties": sum(d == 0 for d in diffs),
            "losses": sum(d < 0 for d in diffs)}


def holm(pvalues: dict) -> dict:
    """Holm's step-down adjustment of a family of p-values (same keys): controls the chance of
    any false positive across the family at the nominal level."""
    order = sorted(pvalues, key=lambda k: pvalues[k])
    m, running, out = len(order), 0.0, {}
    for i, key in enumerate(order):
        running = max(running, min(1.0, (m - i) * pvalues[key]))
        out[key] = running
    return out


def paired_family(comparisons: dict) -> dict:
    """``{name: (a, b)}`` -> ``{name: paired_t(a, b) + "p_holm"}``: the paired analysis of every
    comparison one benchmark makes, with Holm's correction across them."""
    out = {name: paired_t(a, b) for name, (a, b) in comparisons.items()}
    finite = {name: row["p_value"] for name, row in out.items() if row["p_value"] == row["p_value"]}
    adjusted = holm(finite)
    for name, row in out.items():
        row["p_holm"] = adjusted.get(name, float("nan"))
        row["family"] = len(finite)
    return out


def pearson(x, y) -> dict:
    """Pearson r and two-sided p (scipy), ``None`` where undefined (fewer than 3 pairs or a
    constant side)."""
    from scipy.stats import pearsonr

    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None]
    if len(pairs) < 3 or len({a for a, _ in pairs}) < 2 or len({b for _, b in pairs}) < 2:
        return {"r": None, "p": None, "n": len(pairs)}
    r, p = pearsonr([a for a, _ in pairs], [b for _, b in pairs])
    return {"r": float(r), "p": float(p), "n": len(pairs)}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, name: str) -> Path:
    out = results_dir()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def fmt(value, spec: str = ".3f", none: str = "n/a") -> str:
    return none if value is None else format(value, spec)
