"""RunDirectory: the one owner of a search run's files (state, evaluations, data, reports,
final training), with the errors a damaged run gives."""

import json

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
