"""RunDirectory: the one owner of a search run's files (state, evaluations, data, reports,
final training), with the errors a damaged run gives."""

import json
from pathlib import Path

import pytest

from gptnas_hf.search.run_directory import STATE_KEYS, RunDirectory
from gptnas_hf.search_space import sample_genome


def _state(**extra) -> dict:
    return {**{key: [] for key in STATE_KEYS}, "config": {}, "generation": 0, "phase": "evaluate", "rng": [],
            "strategy": {}, **extra}


def test_state_round_trip_and_wall_seconds(tmp_path):
    run = RunDirectory(tmp_path)
    assert not run.has_state()
    run.write_state(_state(wall_seconds=12.5))
    assert run.has_state() and run.read_state()["wall_seconds"] == 12.5
    assert run.wall_seconds(run.read_state()) == 12.5
    assert run.wall_seconds(_state()) is None  # a run written before the key existed
    assert not list(tmp_path.glob("*.tmp"))  # written through a temporary file


@pytest.mark.parametrize("text, problem", [("", "is empty"), ('{"config": {', "is cut or corrupt"),
                                           ('{"config": {}}', "is not a search state")])
def test_a_damaged_state_names_the_way_out(tmp_path, text, problem):
    run = RunDirectory(tmp_path)
    run.state_path.write_text(text)
    with pytest.raises(ValueError, match=problem) as err:
        run.read_state()
    assert "mv " in str(err.value) and "evaluations.jsonl" in str(err.value)


def test_records_append_read_by_key_and_cut_lines_repaired(tmp_path, capsys):
    run = RunDirectory(tmp_path)
    assert run.read_records() == []
    run.append_record({"hash": "a", "fitness": 0.5, "key": "k1"})
    run.append_record({"hash": "b", "fitness": 0.6, "key": "k2"})
    with open(run.evaluations_path, "a") as handle:  # a write cut by a kill
        handle.write('{"hash": "c", "fitn')
    assert [r["hash"] for r in run.read_records()] == ["a", "b"]
    assert [r["hash"] for r in run.read_records("k2")] == ["b"]
    run.append_record({"hash": "d", "fitness": 0.7, "key": "k1"})  # closes the cut line first
    assert [r["hash"] for r in run.read_records("k1")] == ["a", "d"]
    assert run.repair_evaluations() == 1
    assert "cut by a crash" in capsys.readouterr().err
    assert (tmp_path / "evaluations.jsonl.partial-1").read_text().startswith('{"hash": "c"')
    assert [json.loads(line)["hash"] for line in run.evaluations_path.read_text().splitlines()] == ["a", "b", "d"]
    assert run.repair_evaluations() == 0


def test_data_best_genome_and_retrain(tmp_path):
    run = RunDirectory(tmp_path)
    assert run.read_data() is None and run.read_retrain() is None and not run.has_retrained_weights()
    run.write_data({"channels": 3, "image_size": 16})
    assert run.read_data() == {"channels": 3, "image_size": 16}
    with pytest.raises(FileNotFoundError, match="no best genome yet"):
        run.read_best_genome()
    genome = sample_genome(3)
    run.write_best_genome(genome)
    assert run.read_best_genome() == genome
    run.retrain_path.write_text("{not json")
    with pytest.raises(ValueError, match="retrain.json is corrupt"):
        run.read_retrain()


def test_load_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RunDirectory(tmp_path / "nowhere").load()
    with pytest.raises(FileNotFoundError, match="is not a search run"):
        RunDirectory(tmp_path).load()


# -- the lock: two real processes -------------------------------------------------------------------
_HOLDER = """
import sys, time
from gptnas_hf.search.run_directory import RunDirectory
with RunDirectory(sys.argv[1]).lock():
    print("holding", flush=True)
    time.sleep(120)
"""


def _hold(path):
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    return holder


def test_a_second_process_is_refused_with_the_holders_pid_and_a_killed_holders_lock_is_taken_over(tmp_path):
    import signal

    from gptnas_hf.search.run_directory import RunDirectoryLocked

    run = RunDirectory(tmp_path / "run")
    holder = _hold(run.path)
    try:
        with pytest.raises(RunDirectoryLocked, match=rf"in use by another gptnas process \(pid {holder.pid} on "):
            with run.lock():
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert f"pid {holder.pid}" in (run.path / ".lock").read_text()  # what the killed holder left
    with run.lock():  # the kernel dropped its lock: taken over, and the stale text replaced
        assert (run.path / ".lock").read_text().startswith(f"pid {__import__('os').getpid()} ")
    with run.lock():  # released on exit
        pass


def test_a_search_on_a_held_run_directory_trains_nothing_and_the_command_line_says_one_line(tmp_path, digits):
    import subprocess
    import sys

    from conftest import tiny_search
    from gptnas_hf.search.run_directory import RunDirectoryLocked
    from gptnas_hf.search.searcher import NASSearcher, SearchConfig

    out = tmp_path / "run"
    holder = _hold(out)
    try:
        config = SearchConfig.from_dict(tiny_search(use_gpt=False, output_dir=str(out)))
        with pytest.raises(RunDirectoryLocked, match=f"pid {holder.pid}"):
            NASSearcher(config, dataset=digits).run()
        assert not (out / "evaluations.jsonl").exists() and not (out / "state.json").exists()
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root holds bench/
        from bench.nas_bench_201 import synthetic_table

        table = synthetic_table(tmp_path / "table.csv")
        cli = subprocess.run([sys.executable, "-m", "gptnas_hf.cli", "search", "--recipe", "recipes/nas-bench-201.yaml",
                              "--output-dir", str(out), "--use-gpt", "false", "--proposal-filter", "none",
                              "--table", str(table)],
                             capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    finally:
        holder.kill()
        holder.wait()
    assert cli.returncode == 2 and "Traceback" not in cli.stderr
    assert cli.stderr.startswith(f"gptnas search: error: {out} is in use by another gptnas process (pid {holder.pid} ")
