"""A search run's directory: every file in it, with its reads and writes, in one place.

Contract (what a run directory holds, and who writes it):

* ``state.json``: the settings, population, generation, RNG states and history, written
  atomically by the searcher after every change (:meth:`RunDirectory.write_state`); read with
  a clear error naming the way out when it is empty, cut or not a state
  (:meth:`RunDirectory.read_state`). The searcher also keeps the wall seconds of the search in it
  (``wall_seconds``), so nothing parses ``report.md`` for numbers.
* ``evaluations.jsonl``: one JSON object per finished evaluation, appended and flushed
  (:meth:`append_record`); :meth:`read_records` is the one reader (a line cut by a kill is
  skipped); :meth:`repair_evaluations` moves such lines to ``evaluations.jsonl.partial-N`` so the
  next record starts on a line of its own.
* ``data.json``: channels, image size, classes and normalisation of the data searched on.
* ``best_genome.json``, ``report.md``, ``progress.png``, ``pareto.png``: the reports
  (:mod:`.report`).
* ``retrain.json`` and ``retrained.safetensors``: the final training (:mod:`.retrain`).
* ``adapted_gpt/`` (with ``adaptation.json``): the architecture GPT adapted during the search
  (:mod:`.adaptation`).

Every write that replaces a file goes through a temporary file and ``os.replace``, so a kill
leaves either the old file or the new one.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..search_space import Genome

try:  # POSIX: concurrent appends from several processes are serialised with flock
    import fcntl
except ImportError:  # pragma: no cover - Windows: O_APPEND alone
    fcntl = None

#: the keys every ``state.json`` holds
STATE_KEYS = ("config", "generation", "phase", "pending", "population", "history", "rng", "strategy")


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace`` (fsynced)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class RunDirectoryLocked(RuntimeError):
    """Another process holds the run directory's lock (:meth:`RunDirectory.lock`)."""


class RunDirectory:
    """The files of one search run (module doc). ``RunDirectory(path).state_path`` etc. name
    them; the methods read and write them."""

    LOCK = ".lock"
    TRACKED = "tracked.json"  # how many records the experiment trackers have logged

    STATE = "state.json"
    EVALUATIONS = "evaluations.jsonl"
    DATA = "data.json"
    BEST_GENOME = "best_genome.json"
    REPORT = "report.md"
    PROGRESS_PLOT = "progress.png"
    PARETO_PLOT = "pareto.png"
    RETRAIN = "retrain.json"
    RETRAINED_WEIGHTS = "retrained.safetensors"
    ADAPTED_GPT = "adapted_gpt"
    ADAPTATION = "adaptation.json"  # inside ADAPTED_GPT

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run directory for one process while the block runs: an OS lock (``flock``)
        on ``.lock``, which says who holds it (pid, host, since when). A second process is
        refused with :class:`RunDirectoryLocked` naming the holder. The kernel drops the lock
        when its process ends however it ends (kill -9 included), so a lock left by a killed
        run is simply taken over; its stale text is overwritten."""
        try:
            import fcntl
        except ImportError:  # no flock on this platform (Windows): unlocked, as before
            yield
            return
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / self.LOCK, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "a process that has not said who it is yet"
            handle.close()
            raise RunDirectoryLocked(f"{self.path} is in use by another gptnas process ({holder}): wait for it to "
                                     "finish or stop it, or choose another output directory") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            handle.flush()
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    # -- names -----------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.path / self.STATE

    @property
    def evaluations_path(self) -> Path:
        return self.path / self.EVALUATIONS

    @property
    def data_path(self) -> Path:
        return self.path / self.DATA

    @property
    def best_genome_path(self) -> Path:
        return self.path / self.BEST_GENOME

    @property
    def report_path(self) -> Path:
        return self.path / self.REPORT

    @property
    def progress_plot_path(self) -> Path:
        return self.path / self.PROGRESS_PLOT

    @property
    def pareto_plot_path(self) -> Path:
        return self.path / self.PARETO_PLOT

    @property
    def retrain_path(self) -> Path:
        return self.path / self.RETRAIN

    @property
    def retrained_weights_path(self) -> Path:
        return self.path / self.RETRAINED_WEIGHTS

    @property
    def adapted_gpt_path(self) -> Path:
        return self.path / self.ADAPTED_GPT

    # -- state.json --------------------------------------------------------------------------
    def has_state(self) -> bool:
        return self.state_path.is_file()

    def read_state(self) -> dict:
        """``state.json``; one that is empty, cut or not a state gives a ValueError that names
        the file and how to rebuild it from ``evaluations.jsonl``."""
        path = self.state_path
        text = path.read_text()
        problem = None
        try:
            state = json.loads(text)
        except json.JSONDecodeError as err:
            problem = "is empty" if not text.strip() else f"is cut or corrupt ({err.msg} at line {err.lineno})"
        else:
            if not isinstance(state, dict) or any(k not in state for k in STATE_KEYS):
                problem = "is not a search state (keys missing)"
        if problem:
            raise ValueError(f"{path} {problem}. To rebuild the state from {self.evaluations_path}: "
                             f"move it aside (mv {path} {path}.bad) and run the same `gptnas search` command again; "
                             "the search replays with its seed and reuses every evaluation recorded under the same "
                             "settings instead of training it again")
        return state

    def write_state(self, state: dict) -> None:
        atomic_write(self.state_path, json.dumps(state, indent=1))

    @staticmethod
    def wall_seconds(state: dict) -> float | None:
        """The search's wall seconds as the searcher last recorded them (None for a run written
        before they were kept)."""
        value = state.get("wall_seconds")
        return float(value) if value is not None else None

    # -- evaluations.jsonl -------------------------------------------------------------------
    def read_records(self, key: str | None = None) -> list[dict]:
        """The records of ``evaluations.jsonl`` with ``key`` (the run's evaluation key; None:
        all); a line cut by a kill is skipped, a missing file gives none."""
        records = []
        if self.evaluations_path.is_file():
            for line in self.evaluations_path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if key is None or record.get("key", key) == key:
                    records.append(record)
        return records

    def append_record(self, record: dict) -> None:
        """One finished evaluation: one line, one locked write, synced, so it is safe from several
        processes at once; a line cut by an earlier crash is closed first, so this record stays
        parseable."""
        data = (json.dumps(record) + "\n").encode()
        fd = os.open(self.evaluations_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)  # releases the lock

    def repair_evaluations(self) -> int:
        """Move lines that do not parse (a write cut by a crash) to ``evaluations.jsonl.partial-N``
        and keep the rest, so that the next record starts on a line of its own; says so on
        stderr. Returns the number of lines moved."""
        path = self.evaluations_path
        if not path.is_file():
            return 0
        raw = path.read_bytes()
        good, bad = [], []
        for line in raw.split(b"\n"):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                ok = isinstance(record, dict) and "hash" in record and "fitness" in record
            except (json.JSONDecodeError, UnicodeDecodeError):
                ok = False
            (good if ok else bad).append(line)
        if not bad and (not raw or raw.endswith(b"\n")):
            return 0
        n = 1
        while path.with_name(f"{path.name}.partial-{n}").exists():
            n += 1
        aside = path.with_name(f"{path.name}.partial-{n}")
        if bad:
            aside.write_bytes(b"\n".join(bad) + b"\n")
        atomic_write(path, "".join(line.decode() + "\n" for line in good))
        if bad:
            print(f"gptnas search: {path}: {len(bad)} line{'s' if len(bad) > 1 else ''} cut by a crash moved to "
                  f"{aside}; the search evaluates again every candidate it still needs whose record was cut",
                  file=sys.stderr)
        return len(bad)

    # -- data.json, best_genome.json, retrain.json ---------------------------------------------
    def read_data(self) -> dict | None:
        """``data.json`` (None when the run has none)."""
        return self._read_json(self.data_path)

    def write_data(self, described: dict) -> None:
        atomic_write(self.data_path, json.dumps(described, indent=1))

    def read_best_genome(self, space=None):
        """The best architecture (of ``space``, default the block genome)."""
        if not self.best_genome_path.is_file():
            raise FileNotFoundError(f"run {str(self.path)!r} has no best genome yet (no generation has finished)")
        text = self.best_genome_path.read_text()
        fix = ("run the same `gptnas search` command with --resume: a finished run rebuilds it from "
               f"{self.EVALUATIONS}")
        try:
            return Genome.from_json(text) if space is None else space.load(json.loads(text))
        except (ValueError, TypeError, KeyError) as err:  # json.JSONDecodeError is a ValueError
            raise ValueError(f"{self.best_genome_path} is damaged ({' '.join(str(err).split())}): {fix}") from None

    def write_best_genome(self, genome, space=None) -> None:
        if space is None:
            atomic_write(self.best_genome_path, Genome.from_json(genome).to_json(indent=1) + "\n")
        else:
            atomic_write(self.best_genome_path, json.dumps(space.dump(genome), indent=1) + "\n")

    def read_tracked(self) -> int | None:
        """How many records of ``evaluations.jsonl`` the trackers have logged (``tracked.json``;
        None when the run never kept the count)."""
        value = self._read_json(self.path / self.TRACKED)
        return int(value["candidates"]) if isinstance(value, dict) and "candidates" in value else None

    def write_tracked(self, candidates: int) -> None:
        atomic_write(self.path / self.TRACKED, json.dumps({"candidates": int(candidates)}))

    def read_retrain(self) -> dict | None:
        """``retrain.json`` (None before a final training)."""
        return self._read_json(self.retrain_path)

    def write_retrain(self, summary: dict) -> None:
        atomic_write(self.retrain_path, json.dumps(summary, indent=1))

    def has_retrained_weights(self) -> bool:
        return self.retrained_weights_path.is_file()

    @staticmethod
    def _read_json(path: Path) -> dict | None:
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is corrupt: {err}") from None

    # -- the whole run -----------------------------------------------------------------------
    def load(self):
        """``(SearchConfig, best architecture, state)`` of a finished or running search, with clear
        errors (no directory, no state, no best genome yet, settings that no longer parse). The
        ``retrain`` section comes back as recorded, unchecked (``retrain_run`` checks it)."""
        from ..recipe_config import RecipeError
        from .config import SearchConfig

        if not self.path.is_dir():
            raise FileNotFoundError(f"run directory {str(self.path)!r} does not exist")
        if not self.has_state():
            raise FileNotFoundError(f"{str(self.path)!r} is not a search run: it has no {self.STATE}")
        from .config import make_space

        state = self.read_state()
        settings = dict(state["config"])
        retrain = settings.pop("retrain", {})
        try:
            config = SearchConfig.from_dict(settings)
        except RecipeError as err:
            raise RecipeError(f"{self.state_path}: {err}") from None
        config.retrain = retrain if isinstance(retrain, dict) else {}
        genome = self.read_best_genome(None if config.space == "blocks" else make_space(config))
        return config, genome, state
