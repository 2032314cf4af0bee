"""Fitness from a table: evaluate an architecture by looking it up instead of training it.

Tabular benchmarks (NAS-Bench-201, NATS-Bench, NAS-Bench-101, ...) publish the trained accuracy
of every architecture of their space; a search that reads its fitness from such a table costs
a lookup per candidate, and strategies are compared by how many architectures they *query*
(the oracle setting of the NAS-Bench papers). Two pieces:

* :class:`FitnessTable`: a CSV or parquet table with an architecture column and a metric column,
  loaded once (:meth:`FitnessTable.load`) and looked up by architecture
  (:meth:`FitnessTable.lookup`, :meth:`FitnessTable.fitness`). Given a
  :class:`~gptnas_hf.search_space_protocol.SearchSpace`, each architecture cell is read with
  ``space.load`` and keyed by ``space.hash``, so a lookup does not depend on how an architecture
  happens to be written; without a space the key is the cell's stripped string.
* :class:`TableEvaluator`: a drop-in for training a candidate: :meth:`TableEvaluator.evaluate`
  returns the fields a trained candidate's record has (``evaluate_candidate``'s dict) and counts
  the *distinct* architectures queried, the benchmark's budget unit; its state resumes with a run.

**Fitness scale.** Searches keep fitness in [0, 1] (a fraction, like the validation accuracy a
trained candidate reports). A table's metric may be a fraction or a percentage (NAS-Bench-201's
``test_accuracy`` is in percent): :attr:`FitnessTable.scale` is ``0.01`` when any metric value
exceeds 1 and ``1.0`` otherwise (or what ``load(scale=...)`` says), and
``fitness(arch) = lookup(arch) * scale``. Loading refuses a table whose scaled values fall
outside [0, 1] (e.g. a metric that is not an accuracy), naming the offending row.

Every problem with the file is a :class:`TableError` (a ``ValueError``) whose message names the
file and the problem (and the row, where one is to blame); an architecture the table lacks is an
:class:`ArchitectureNotInTableError` (a ``KeyError``) naming the architecture and the table.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

__all__ = [
    "TableError",
    "ArchitectureNotInTableError",
    "FitnessTable",
    "TableEvaluator",
    "TableFitnessConfig",
    "SUPPORTED_SUFFIXES",
]

#: the file types :meth:`FitnessTable.load` reads, by suffix
SUPPORTED_SUFFIXES = (".csv", ".parquet")
#: how much of an architecture's text an error message shows
_MAX_SHOWN = 200


class TableError(ValueError):
    """A table that cannot be used: the message names the file and the problem."""


class ArchitectureNotInTableError(KeyError):
    """An architecture the table has no row for (a ``KeyError``; ``str()`` is readable)."""

    def __init__(self, arch: str, path: str | Path, key: str | None = None):
        super().__init__(arch)
        self.arch = arch  # the architecture as text (the space's dump form)
        self.path = str(path)
        self.key = key  # its table key (the space's hash, or the stripped string)

    def __str__(self) -> str:
        return f"architecture {_shorten(self.arch)} is not in the table {self.path}"


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _as_text(value: Any) -> str:
    """A dumped architecture (a string, or any JSON value) as one line of text."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def _metric_value(raw: Any) -> float | None:
    """The cell as a finite float, or None."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, Real):
        value = float(raw)
    else:
        try:
            value = float(str(raw).strip())
        except ValueError:
            return None
    return value if math.isfinite(value) else None


class FitnessTable:
    """A table of architectures and their metric; build it with :meth:`load` (module doc)."""

    def __init__(self, path: str | Path, arch_column: str, metric_column: str, space: Any,
                 values: dict[str, float], cells: dict[str, str], rows: int, columns: list[str],
                 fingerprint: str, scale: float):
        self.path = Path(path)
        self.arch_column, self.metric_column = arch_column, metric_column
        self.space = space
        self._values, self._cells = values, cells
        self.rows, self.columns = rows, list(columns)
        self._fingerprint = fingerprint
        self.scale = scale

    # -- loading ------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, arch_column: str = "arch", metric_column: str = "test_accuracy",
             space: Any = None, scale: float | None = None) -> "FitnessTable":
        """Read the table at ``path`` (``.csv`` with the ``csv`` module, ``.parquet`` with
        pyarrow). With ``space``, each ``arch_column`` cell is read with ``space.load`` and keyed
        by ``space.hash``; without, keyed by the stripped string. ``scale`` (metric -> fitness)
        defaults to 0.01 when a value exceeds 1 (percent) and 1.0 otherwise. Raises
        :class:`TableError` naming the file and the problem."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            raise TableError(f"{path}: unsupported table type {path.suffix or '(no suffix)'!r}; "
                             f"expected one of {', '.join(SUPPORTED_SUFFIXES)}")
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, Real)
                                  or not math.isfinite(scale) or scale <= 0):
            raise ValueError(f"scale must be a positive finite number or None, got {scale!r}")
        if not path.exists():
            raise TableError(f"{path}: no such file")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise TableError(f"{path}: cannot read the file ({type(e).__name__}: {e})") from e
        if suffix == ".csv":
            columns, arch_cells, metric_cells, where = _read_csv(path, data, arch_column, metric_column)
        else:
            columns, arch_cells, metric_cells, where = _read_parquet(path, data, arch_column, metric_column)
        if not arch_cells:
            raise TableError(f"{path}: the table is empty (no rows)")

        values: dict[str, float] = {}
        cells: dict[str, str] = {}
        first_row: dict[str, str] = {}
        for arch_cell, metric_cell, row in zip(arch_cells, metric_cells, where):
            value = _metric_value(metric_cell)
            if value is None:
                raise TableError(f"{path}: {row}: {metric_column!r} is {metric_cell!r}, not a finite number")
            key, text = _read_arch(path, row, arch_cell, arch_column, space)
            if key in values:
                if values[key] != value:
                    raise TableError(f"{path}: {row}: architecture {_shorten(text)} appears again with "
                                     f"{metric_column} {value!r}; {first_row[key]} gave {values[key]!r}")
                continue
            values[key], cells[key], first_row[key] = value, text, row

        if scale is None:
            scale = 0.01 if max(values.values()) > 1.0 else 1.0
        for key, value in values.items():
            if not 0.0 <= value * scale <= 1.0:
                raise TableError(f"{path}: {first_row[key]}: {metric_column} {value!r} times the scale {scale!r} "
                                 "is outside [0, 1]; fitness is a fraction (pass scale= for another unit)")
        digest = hashlib.sha256(data)
        digest.update(b"\0" + arch_column.encode() + b"\0" + metric_column.encode())
        return cls(path, arch_column, metric_column, space, values, cells, len(arch_cells), columns,
                   digest.hexdigest()[:16], float(scale))

    # -- lookups ------------------------------------------------------------------------------
    def key(self, arch: Any) -> str:
        """The table key of ``arch``: ``space.hash(space.load(arch))`` with a space (an
        unreadable architecture raises the space's error), else the stripped string."""
        if self.space is not None:
            return self.space.hash(self.space.load(arch))
        return str(arch).strip()

    def _text(self, arch: Any) -> str:
        if self.space is not None:
            try:
                return _as_text(self.space.dump(self.space.load(arch)))
            except Exception:  # noqa: BLE001 - the message only; key() raised nothing
                return _as_text(arch)
        return str(arch).strip()

    def lookup(self, arch: Any) -> float:
        """The metric of ``arch`` as the table has it (e.g. percent); raises
        :class:`ArchitectureNotInTableError` if the table has no row for it."""
        key = self.key(arch)
        try:
            return self._values[key]
        except KeyError:
            raise ArchitectureNotInTableError(self._text(arch), self.path, key) from None

    def fitness(self, arch: Any) -> float:
        """``lookup(arch) * scale``: the fitness in [0, 1] a search keeps (module doc)."""
        return self.lookup(arch) * self.scale

    def __contains__(self, arch: Any) -> bool:
        try:
            return self.key(arch) in self._values
        except (ValueError, TypeError, KeyError):
            return False

    def __len__(self) -> int:
        """How many distinct architectures the table has."""
        return len(self._values)

    def __iter__(self) -> Iterator[str]:
        """The table keys, in file order."""
        return iter(self._values)

    def items(self) -> Iterator[tuple[str, float]]:
        """(key, metric) pairs, in file order."""
        return iter(self._values.items())

    def cell(self, key: str) -> str:
        """How the table writes the architecture of ``key`` (its first row; the space's dump
        form, with a space)."""
        return self._cells[key]

    def best(self) -> tuple[str, float]:
        """(key, metric) of the best architecture (the first in file order of equals)."""
        return max(self._values.items(), key=lambda kv: kv[1])

    # -- identity -----------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """A short stable hex digest of the file's bytes and the two column names (for a run's
        evaluation key: the same file and columns, the same fingerprint)."""
        return self._fingerprint

    def describe(self) -> dict:
        """Path, columns, rows (data rows read), architectures (distinct), scale and the
        metric's min / max / mean over the distinct architectures."""
        values = list(self._values.values())
        return {"path": str(self.path), "arch_column": self.arch_column, "metric_column": self.metric_column,
                "columns": list(self.columns), "rows": self.rows, "architectures": len(values),
                "min": min(values), "max": max(values), "mean": math.fsum(values) / len(values),
                "scale": self.scale, "fingerprint": self._fingerprint,
                "space": getattr(self.space, "name", None) if self.space is not None else None}

    def __repr__(self) -> str:
        return (f"FitnessTable({str(self.path)!r}, {self.arch_column!r} -> {self.metric_column!r}, "
                f"{len(self)} architectures, scale={self.scale})")


def _missing_column(path: Path, column: str, columns: list[str], what: str) -> TableError:
    return TableError(f"{path}: no {what} column {column!r}; the file's columns: "
                      f"{', '.join(repr(c) for c in columns) or '(none)'}")


def _read_csv(path: Path, data: bytes, arch_column: str, metric_column: str):
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TableError(f"{path}: cannot read the file as UTF-8 CSV ({e})") from e
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise TableError(f"{path}: the table is empty (no header, no rows)")
        columns = [h.strip() for h in header]
        for column, what in ((arch_column, "architecture"), (metric_column, "metric")):
            if column not in columns:
                raise _missing_column(path, column, columns, what)
        ia, im = columns.index(arch_column), columns.index(metric_column)
        archs, metrics, where = [], [], []
        for row in reader:
            if not row or all(not c.strip() for c in row):  # blank lines
                continue
            archs.append(row[ia] if ia < len(row) else None)
            metrics.append(row[im] if im < len(row) else None)
            where.append(f"row {len(archs)} (line {reader.line_num})")
    except csv.Error as e:
        raise TableError(f"{path}: malformed CSV near line {reader.line_num}: {e}") from e
    return columns, archs, metrics, where


def _read_parquet(path: Path, data: bytes, arch_column: str, metric_column: str):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - pyarrow comes with `datasets`
        raise TableError(f"{path}: reading parquet needs pyarrow ({e})") from e
    try:
        table = pq.read_table(pa.BufferReader(data))
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
        raise TableError(f"{path}: cannot read the file as parquet ({type(e).__name__}: {e})") from e
    columns = list(table.column_names)
    for column, what in ((arch_column, "architecture"), (metric_column, "metric")):
        if column not in columns:
            raise _missing_column(path, column, columns, what)
    archs = table.column(arch_column).to_pylist()
    metrics = table.column(metric_column).to_pylist()
    return columns, archs, metrics, [f"row {i + 1}" for i in range(len(archs))]


def _read_arch(path: Path, row: str, cell: Any, arch_column: str, space: Any) -> tuple[str, str]:
    """(key, text) of an architecture cell."""
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        raise TableError(f"{path}: {row}: the {arch_column!r} cell is empty")
    if space is None:
        text = cell.strip() if isinstance(cell, str) else _as_text(cell)
        return text, text
    try:
        arch = space.load(cell.strip() if isinstance(cell, str) else cell)
        return space.hash(arch), _as_text(space.dump(arch))
    except (ValueError, TypeError, KeyError, IndexError) as e:
        name = getattr(space, "name", "") or type(space).__name__
        raise TableError(f"{path}: {row}: the {name!r} space cannot read architecture "
                         f"{_shorten(_as_text(cell))}: {e}") from e


class TableEvaluator:
    """Evaluate architectures by table lookup; counts the distinct architectures queried.

    :meth:`evaluate` returns the fields of a trained candidate's record (see
    ``gptnas_hf.search.candidate.evaluate_candidate``): ``fitness`` (``table.fitness``, in
    [0, 1]), ``metric`` (the raw table value), ``top5`` 0.0, ``parameters`` (from the optional
    ``parameters(arch)`` callable, else 0), ``trainable_parameters`` 0 (nothing is trained),
    ``train_scope "table"``, ``status "ok"``, ``reason ""``, ``images_per_second`` 0.0,
    ``channels_last`` False, ``threads`` 1 and ``seconds`` (the lookup time). An architecture
    the table lacks raises :class:`ArchitectureNotInTableError` and is not counted.

    ``space`` (default: the table's) keys the query count by ``space.hash``; a table loaded
    without a space with an evaluator given one is refused (the keys would not match). The
    count lives in this object: parallel worker processes must report back to one evaluator.
    """

    def __init__(self, table: FitnessTable, space: Any = None,
                 parameters: Callable[[Any], int] | None = None):
        if not isinstance(table, FitnessTable):
            raise TypeError(f"table must be a FitnessTable, got {type(table).__name__}")
        if space is not None and table.space is None:
            raise ValueError(f"the table {table.path} was loaded without a search space; "
                             "load it with FitnessTable.load(..., space=space) to evaluate that space")
        if parameters is not None and not callable(parameters):
            raise TypeError(f"parameters must be a callable arch -> int or None, got {parameters!r}")
        self.table = table
        self.space = space if space is not None else table.space
        self.parameters = parameters
        self._queried: set[str] = set()

    def _key(self, arch: Any) -> str:
        if self.space is not None:
            return self.space.hash(self.space.load(arch))
        return self.table.key(arch)

    def evaluate(self, arch: Any) -> dict:
        """The record fields of ``arch`` (class doc); counts it as a query if it is new."""
        started = time.perf_counter()
        value = self.table.lookup(arch)
        self._queried.add(self._key(arch))
        params = 0
        if self.parameters is not None:
            params = int(self.parameters(arch))
        return {"fitness": value * self.table.scale, "metric": value, "top5": 0.0, "parameters": params,
                "trainable_parameters": 0, "train_scope": "table", "status": "ok", "reason": "",
                "images_per_second": 0.0, "channels_last": False, "threads": 1,
                "seconds": round(time.perf_counter() - started, 6)}

    __call__ = evaluate

    @property
    def queries(self) -> int:
        """How many distinct architectures have been looked up (a repeat is not a new query)."""
        return len(self._queried)

    def seen(self, arch: Any) -> bool:
        """Whether ``arch`` has been looked up already."""
        return self._key(arch) in self._queried

    def config(self) -> dict:
        """What identifies this evaluation (for a run's evaluation key)."""
        return {"kind": "table", "path": str(self.table.path), "fingerprint": self.table.fingerprint(),
                "arch_column": self.table.arch_column, "metric_column": self.table.metric_column,
                "scale": self.table.scale}

    def state_dict(self) -> dict:
        """The table's fingerprint and the queried keys (sorted), for resume."""
        return {"table": self.table.fingerprint(), "queried": sorted(self._queried)}

    def load_state_dict(self, state: Mapping) -> None:
        """Restore the queried set of a :meth:`state_dict`; a ValueError if it belongs to
        another table (the counts would not mean the same)."""
        if not isinstance(state, Mapping):
            raise TypeError(f"expected a dict, got {type(state).__name__}")
        table = state.get("table")
        if table is not None and table != self.table.fingerprint():
            raise ValueError(f"the state is for table {table}, not {self.table.fingerprint()} ({self.table.path})")
        queried = state.get("queried", [])
        if isinstance(queried, (str, bytes)) or not all(isinstance(k, str) for k in queried):
            raise ValueError("state['queried'] must be a list of architecture keys (strings)")
        self._queried = set(queried)

    def __repr__(self) -> str:
        return f"TableEvaluator({self.table!r}, queries={self.queries})"


@dataclass
class TableFitnessConfig:
    """A search recipe's ``fitness`` section: look each architecture up in ``table`` (CSV or
    parquet) instead of training it. ``arch_column`` holds the architectures in their space's
    string form, ``metric`` the value to maximise; ``in_channels``, ``image_size`` and
    ``num_classes`` describe the data the table was measured on (the shape the GPT reads the
    networks at, and the networks' parameter counts): CIFAR-10's 3, 32 and 10 by default, so set
    them for a CIFAR-100 (100 classes) or ImageNet16-120 (16 px, 120 classes) table."""

    table: str = ""
    metric: str = "test_accuracy"
    arch_column: str = "arch"
    in_channels: int = 3
    image_size: int = 32
    num_classes: int = 10

    def __post_init__(self):
        if not self.table:
            raise ValueError("table: the path of a CSV or parquet table is required")
        for name in ("in_channels", "image_size", "num_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be a positive int, got {getattr(self, name)!r}")
