"""Experiment tracking for a search, through accelerate's trackers.

:class:`SearchTracker` builds accelerate's own tracker classes
(``accelerate.tracking.LOGGER_TYPE_TO_CLASS``) on the main process and drives them directly,
so no second ``Accelerator`` is created next to the search's own, nor a ``PartialState`` with
other settings: it must be built after the search has created its process state (accelerate's
trackers log through accelerate's logger, which refuses to run without it), else it raises a
``RuntimeError``. Every other process gets a tracker whose methods do nothing, as does
``log_with=None``.

``log_with`` names one or more of ``tensorboard``, ``wandb``, ``mlflow``, ``trackio`` (a
list, or a comma-separated string), or ``all`` (every one of them that is installed). None of
them is a dependency of the package: a tracker whose package is missing is a ``ValueError``
that names the extra to install, e.g. ``pip install "gptnas-hf[tensorboard]"``.

What is logged:

* the search config, as hyperparameters, when a tracker run starts (not again on resume: a
  resumed search keeps its settings, MLflow parameters cannot be overwritten and TensorBoard
  would show a second hparams session); nested
  dicts are flattened to dotted keys and anything that is not a bool, int, float or str
  (lists, None, paths) becomes its ``str``;
* per evaluated candidate (:meth:`SearchTracker.log_candidate`, step = the evaluation's index
  in the run): ``candidate/fitness``, ``candidate/parameters``, ``candidate/macs``,
  ``candidate/seconds``, ``candidate/reconstructed`` (0/1);
* per generation (:meth:`SearchTracker.log_generation`, step = the generation number):
  ``generation/best``, ``generation/mean``, ``generation/mask_rate``,
  ``generation/offspring_best``.

Values that are missing, None or not numbers are skipped. The two series have their own step
axes; for wandb, whose run step must only grow, each is logged with its own step metric
(``candidate/step``, ``generation/step``, set up with ``define_metric``) instead of the run step.

Where the files go: ``<output_dir>/trackers/``. TensorBoard writes its event files to
``trackers/<project_name>/`` (accelerate joins the project name to the logging directory; the
hyperparameters go to a timestamped subfolder of it, as ``SummaryWriter.add_hparams`` does,
next to accelerate's ``hparams.yml`` in another one). wandb puts its ``wandb/`` folder there.
MLflow follows its own configuration (``MLFLOW_TRACKING_URI``; experiment = ``project_name``)
and trackio its own (``TRACKIO_DIR``; project = ``project_name``), as accelerate leaves them.

Resuming: :meth:`SearchTracker.state_dict` is what to keep in the search's ``state.json``;
passing it back as ``run_state`` continues the same tracker run where the tracker allows it:

* tensorboard: the same log directory; a new event file is added next to the old ones and,
  since the caller passes absolute steps, the curves continue (TensorBoard reads them together);
* wandb: the run id, reopened with ``wandb.init(id=..., resume="allow")``;
* mlflow: the run id, reopened with ``mlflow.start_run(run_id=...)``;
* trackio: the run name, reopened with ``trackio.init(name=..., resume="allow")``.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping

TRACKERS = ("tensorboard", "wandb", "mlflow", "trackio")
CANDIDATE_KEYS = ("fitness", "parameters", "macs", "seconds", "reconstructed")
GENERATION_KEYS = ("best", "mean", "mask_rate", "offspring_best", "diversity_edit_distance",
                   "diversity_kinds_per_position", "adaptation_seconds")


def _install_hint(name: str) -> str:
    return f'pip install "gptnas-hf[{name}]"'


def _is_available(name: str) -> bool:
    # Looked up at call time (not imported by name) so that tests can patch it.
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS
    from accelerate.utils import imports

    check = getattr(imports, f"is_{name}_available", None)
    return name in LOGGER_TYPE_TO_CLASS and check is not None and bool(check())


def parse_log_with(log_with) -> list[str]:
    """The tracker names in ``log_with`` (None, a name, ``"a,b"`` or a list), checked."""
    if not log_with:
        return []
    items = [log_with] if isinstance(log_with, str) else list(log_with)
    names: list[str] = []
    for item in items:
        for name in str(item).split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name == "all":
                found = [n for n in TRACKERS if _is_available(n)]
                if not found:
                    raise ValueError("log_with='all' but no tracker is installed; install one with "
                                     + ", ".join(_install_hint(n) for n in TRACKERS))
                names.extend(found)
                continue
            if name not in TRACKERS:
                raise ValueError(f"unknown tracker {name!r} in log_with; choose from "
                                 + ", ".join(repr(n) for n in TRACKERS) + " or 'all'")
            if not _is_available(name):
                raise ValueError(f"log_with={name!r} needs the {name} package, which is not installed "
                                 f"(or this accelerate does not support it): {_install_hint(name)}")
            names.append(name)
    return list(dict.fromkeys(names))


def flatten_config(config: Mapping, prefix: str = "") -> dict:
    """Nested dicts to dotted keys; values every tracker accepts (bool, int, float, str)."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, name + "."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def _metrics(values: Mapping, keys, prefix: str) -> dict:
    out = {}
    for key in keys:
        value = values.get(key)
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, numbers.Real):
            out[f"{prefix}/{key}"] = value if isinstance(value, (int, float)) else float(value)
    return out


class SearchTracker:
    """Logs a search's config, candidates and generations to accelerate trackers (see module doc)."""

    def __init__(self, log_with, output_dir, project_name: str, config: Mapping | None = None,
                 run_state: Mapping | None = None, is_main_process: bool = True):
        names = parse_log_with(log_with)
        self.trackers: dict = {}
        if not names or not is_main_process:
            return
        from accelerate.state import PartialState
        from accelerate.tracking import LOGGER_TYPE_TO_CLASS

        if not PartialState._shared_state:  # `PartialState().initialized` would create it
            raise RuntimeError("SearchTracker needs accelerate's process state (its trackers log through "
                               "accelerate's logger): create the search's PartialState/Accelerator first")
        run_state = dict(run_state or {})
        self.output_dir = os.fspath(output_dir)
        self.logging_dir = os.path.join(self.output_dir, "trackers")
        os.makedirs(self.logging_dir, exist_ok=True)
        hparams = flatten_config(config or {})
        for name in names:
            previous = dict(run_state.get(name) or {})
            kwargs = self._init_kwargs(name, previous, hparams)
            cls = LOGGER_TYPE_TO_CLASS[name]
            if cls.requires_logging_directory:
                tracker = cls(project_name, self.logging_dir, **kwargs)
            else:
                tracker = cls(project_name, **kwargs)
            # Built on the main process only: no need for accelerate's own main-process gate.
            tracker.main_process_only = False
            tracker.start()
            if name == "wandb":
                for axis in ("candidate", "generation"):
                    tracker.run.define_metric(f"{axis}/step")
                    tracker.run.define_metric(f"{axis}/*", step_metric=f"{axis}/step")
            # The config is logged once, when the run starts (trackio takes it at init instead).
            if hparams and not previous and name != "trackio":
                tracker.store_init_configuration(hparams)
            self.trackers[name] = tracker

    def _init_kwargs(self, name: str, previous: dict, hparams: dict) -> dict:
        if name == "wandb":
            kwargs = {"dir": self.logging_dir}
            if previous.get("id"):
                kwargs.update(id=previous["id"], resume="allow")
            return kwargs
        if name == "mlflow":
            return {"run_id": previous["run_id"]} if previous.get("run_id") else {}
        if name == "trackio":
            # trackio takes the config at init: accelerate's store_init_configuration calls
            # `trackio.config.update(..., allow_val_change=True)` on a plain dict.
            kwargs = {"config": hparams}
            if previous.get("name"):
                kwargs.update(name=previous["name"], resume="allow")
            return kwargs
        return {}

    @property
    def enabled(self) -> bool:
        return bool(self.trackers)

    def _log(self, values: dict, step: int, axis: str) -> None:
        if not values:
            return
        for name, tracker in self.trackers.items():
            if name == "wandb":
                tracker.log({**values, f"{axis}/step": int(step)})
            else:
                tracker.log(values, step=int(step))

    def log_candidate(self, record: Mapping, step: int) -> None:
        """One evaluated candidate; ``step`` is its evaluation number in the run."""
        if self.trackers:
            self._log(_metrics(record, CANDIDATE_KEYS, "candidate"), step, "candidate")

    def log_generation(self, stats: Mapping, step: int) -> None:
        """One generation's summary; ``step`` is the generation number."""
        if self.trackers:
            self._log(_metrics(stats, GENERATION_KEYS, "generation"), step, "generation")

    def last_step(self, axis: str = "candidate") -> int:
        """The highest step of ``axis`` (``candidate`` or ``generation``) a tracker already
        holds, where its own files can say so: TensorBoard's event files (a record cut by a kill
        ends the reading). 0 where they cannot (wandb, MLflow, trackio keep theirs elsewhere)."""
        tracker = self.trackers.get("tensorboard")
        if tracker is None:
            return 0
        return tensorboard_last_step(tracker.logging_dir, f"{axis}/")

    def state_dict(self) -> dict:
        """What to keep in ``state.json`` to continue the same runs on resume."""
        state = {}
        for name, tracker in self.trackers.items():
            if name == "tensorboard":
                state[name] = {"logdir": os.path.relpath(tracker.logging_dir, self.output_dir)}
            elif name == "wandb":
                state[name] = {"id": tracker.run.id}
            elif name == "mlflow":
                state[name] = {"run_id": tracker.active_run.info.run_id}
            elif name == "trackio":
                state[name] = {"name": tracker.run.name}
        return state

    def finish(self) -> None:
        """Flush and close every tracker; later calls do nothing."""
        trackers, self.trackers = self.trackers, {}
        for tracker in trackers.values():
            tracker.finish()

    def __enter__(self) -> "SearchTracker":
        return self

    def __exit__(self, *exc) -> None:
        self.finish()


def tensorboard_last_step(logdir, prefix: str) -> int:
    """The highest step of a scalar whose tag starts with ``prefix`` in the TensorBoard event
    files directly inside ``logdir`` (0 when there are none)."""
    from pathlib import Path

    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    last = 0
    for path in sorted(Path(logdir).glob("events.out.tfevents.*")):
        try:
            for event in EventFileLoader(str(path)).Load():
                if event.step > last and any(v.tag.startswith(prefix) for v in event.summary.value):
                    last = int(event.step)
        except Exception:  # noqa: BLE001 - a damaged file says nothing more; what was read stands
            continue
    return last
