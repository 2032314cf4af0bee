"""SearchTracker: TensorBoard written and read back offline, resume, errors, no-op modes."""

import pytest

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from gptnas_hf.search.tracking import SearchTracker, flatten_config, parse_log_with  # noqa: E402


@pytest.fixture(autouse=True)
def process_state():
    """The search's process state, which SearchTracker needs; left as it was found."""
    from accelerate.state import PartialState

    created = not PartialState._shared_state
    state = PartialState(cpu=True)
    yield state
    if created:
        PartialState._reset_state()


CONFIG = {"population": 4, "generations": 2, "dataset": "cifar10",
          "space": {"max_blocks": 6, "kinds": ["conv", "pool"]}, "seed": None, "mask_rates": [0.1, 0.2], "use_gpt": True}


def _scalars(logdir):
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _candidate(i):
    return {"fitness": 0.5 + i / 100, "parameters": 1000 + i, "macs": 20000 + i, "seconds": 1.5,
            "reconstructed": i % 2 == 1, "genome": [[1, 2]], "origin": "mutation"}


def test_tensorboard_logs_candidates_generations_and_hparams(tmp_path):
    tracker = SearchTracker("tensorboard", tmp_path, "demo", CONFIG, None)
    for i in range(3):
        tracker.log_candidate(_candidate(i), step=i)
    tracker.log_candidate({"fitness": 0.1, "parameters": None, "seconds": "n/a"}, step=3)  # None/str skipped
    tracker.log_generation({"generation": 0, "best": 0.52, "mean": 0.51, "mask_rate": None,
                            "offspring_best": None}, step=0)
    tracker.log_generation({"generation": 1, "best": 0.6, "mean": 0.55, "mask_rate": 0.2,
                            "offspring_best": 0.6}, step=1)
    assert tracker.state_dict() == {"tensorboard": {"logdir": "trackers/demo"}}
    tracker.finish()
    tracker.finish()  # idempotent

    logdir = tmp_path / "trackers" / "demo"
    scalars = _scalars(logdir)
    assert set(scalars) == {"candidate/fitness", "candidate/parameters", "candidate/macs", "candidate/seconds",
                            "candidate/reconstructed", "generation/best", "generation/mean",
                            "generation/mask_rate", "generation/offspring_best"}
    assert [s for s, _ in scalars["candidate/fitness"]] == [0, 1, 2, 3]
    assert scalars["candidate/fitness"][2][1] == pytest.approx(0.52)
    assert [s for s, _ in scalars["candidate/parameters"]] == [0, 1, 2]
    assert [v for _, v in scalars["candidate/reconstructed"]] == [0, 1, 0]
    assert scalars["generation/best"] == [(0, pytest.approx(0.52)), (1, pytest.approx(0.6))]
    assert scalars["generation/mask_rate"] == [(1, pytest.approx(0.2))]
    assert scalars["generation/offspring_best"] == [(1, pytest.approx(0.6))]

    # The hyperparameters: SummaryWriter.add_hparams writes them to a timestamped subfolder.
    hparam_runs = [p for p in logdir.iterdir() if p.is_dir() and any(p.glob("events.out.tfevents.*"))]
    assert len(hparam_runs) == 1
    acc = EventAccumulator(str(hparam_runs[0]))
    acc.Reload()
    plugin = acc.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in plugin
    assert b"space.max_blocks" in plugin["_hparams_/session_start_info"]


def test_tensorboard_resume_continues_the_same_logdir(tmp_path):
    first = SearchTracker("tensorboard", tmp_path, "demo", CONFIG, None)
    for i in range(2):
        first.log_candidate(_candidate(i), step=i)
    first.log_generation({"best": 0.51, "mean": 0.5}, step=0)
    state = first.state_dict()
    first.finish()

    second = SearchTracker("tensorboard", tmp_path, "demo", CONFIG, run_state=state)
    assert second.state_dict() == state
    assert second.last_step("candidate") == 1 and second.last_step("generation") == 0  # what the files hold
    for i in range(2, 4):
        second.log_candidate(_candidate(i), step=i)
    second.log_generation({"best": 0.53, "mean": 0.52}, step=1)
    second.finish()

    logdir = tmp_path / "trackers" / "demo"
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 2
    assert len(list(logdir.glob("*/events.out.tfevents.*"))) == 1  # config logged once, not again on resume
    scalars = _scalars(logdir)
    assert [s for s, _ in scalars["candidate/fitness"]] == [0, 1, 2, 3]
    newest = max(logdir.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
    with open(newest, "ab") as f:  # a record cut by a kill at the end of a file
        f.write(b"\x17\x00\x00\x00partial")
    third = SearchTracker("tensorboard", tmp_path, "demo", CONFIG, run_state=state)
    assert third.last_step("candidate") == 3 and third.last_step("generation") == 1
    third.finish()
    assert SearchTracker(None, tmp_path, "demo", CONFIG, None).last_step("candidate") == 0
    assert scalars["generation/best"] == [(0, pytest.approx(0.51)), (1, pytest.approx(0.53))]


def test_log_with_parsing():
    assert parse_log_with(None) == [] and parse_log_with([]) == [] and parse_log_with("") == []
    assert parse_log_with("tensorboard") == ["tensorboard"]
    assert parse_log_with(" TensorBoard , tensorboard") == ["tensorboard"]
    assert parse_log_with(["tensorboard"]) == ["tensorboard"]
    assert "tensorboard" in parse_log_with("all")


def test_unknown_tracker_is_named(tmp_path):
    with pytest.raises(ValueError, match="'neptune'"):
        SearchTracker("tensorboard,neptune", tmp_path, "demo", CONFIG, None)
    assert not (tmp_path / "trackers").exists()


@pytest.mark.parametrize("name", ["wandb", "mlflow", "trackio"])
def test_missing_tracker_package_names_the_extra(tmp_path, monkeypatch, name):
    from accelerate.utils import imports

    monkeypatch.setattr(imports, f"is_{name}_available", lambda: False)
    with pytest.raises(ValueError, match=rf'pip install "gptnas-hf\[{name}\]"'):
        SearchTracker(["tensorboard", name], tmp_path, "demo", CONFIG, None)
    assert not (tmp_path / "trackers").exists()


def test_all_with_nothing_installed_names_the_extras(tmp_path, monkeypatch):
    from accelerate.utils import imports

    for name in ("tensorboard", "wandb", "mlflow", "trackio"):
        monkeypatch.setattr(imports, f"is_{name}_available", lambda: False)
    with pytest.raises(ValueError, match=r'gptnas-hf\[tensorboard\]'):
        SearchTracker("all", tmp_path, "demo", CONFIG, None)


def _assert_inert(tracker, run_dir):
    """A tracker that logs nothing and writes nothing."""
    assert not tracker.enabled
    tracker.log_candidate(_candidate(0), step=0)
    tracker.log_generation({"best": 1.0}, step=0)
    assert tracker.state_dict() == {}
    tracker.finish()
    assert not run_dir.exists()


@pytest.mark.parametrize("log_with", [None, [], ""])
def test_no_tracking_is_a_no_op(tmp_path, log_with):
    _assert_inert(SearchTracker(log_with, tmp_path / "run", "demo", CONFIG, None), tmp_path / "run")


def test_needs_the_process_state(tmp_path, process_state):
    from accelerate.state import PartialState

    saved = dict(PartialState._shared_state)
    PartialState._shared_state.clear()
    try:
        with pytest.raises(RuntimeError, match="process state"):
            SearchTracker("tensorboard", tmp_path, "demo", CONFIG, None)
        SearchTracker(None, tmp_path, "demo", CONFIG, None).finish()  # nothing to log: no state needed
    finally:
        PartialState._shared_state.update(saved)
    assert not (tmp_path / "trackers").exists()


def test_non_main_process_writes_nothing(tmp_path):
    tracker = SearchTracker("tensorboard", tmp_path / "run", "demo", CONFIG, None, is_main_process=False)
    _assert_inert(tracker, tmp_path / "run")


def test_flatten_config_makes_tracker_safe_values():
    flat = flatten_config(CONFIG)
    assert flat["space.max_blocks"] == 6
    assert flat["space.kinds"] == "['conv', 'pool']"
    assert flat["seed"] == "None"
    assert flat["use_gpt"] is True
    assert all(isinstance(v, (bool, int, float, str)) for v in flat.values())
