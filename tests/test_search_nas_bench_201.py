"""NAS-Bench-201 through the same searcher, strategies, run directory and CLI as the block space,
with fitness looked up in a table."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gptnas_hf.search.searcher import NASSearcher, SearchConfig
from gptnas_hf.search.table_fitness import ArchitectureNotInTableError, TableError
from gptnas_hf.space_nas_bench_201 import Cell

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root holds bench/
from bench.nas_bench_201 import synthetic_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_TABLE = REPO.parent / "shared" / "data" / "nas-bench-201" / "cifar10.csv"


def synthetic_accuracy(cell: Cell) -> float:
    """A known landscape: 3x3 convolutions help, 1x1 a little, `none` on the output edges hurts."""
    ops = cell.ops
    return round(40 + 8 * ops.count("nor_conv_3x3") + 3 * ops.count("nor_conv_1x1") - 4 * (ops[5] == "none")
                 + (sum(map(ord, str(cell))) % 7) / 10, 4)


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    return synthetic_table(tmp_path_factory.mktemp("table") / "synthetic.csv", synthetic_accuracy)


def recipe(table, tmp_path, **overrides) -> dict:
    return {"space": "nas-bench-201", "strategy": "ga", "population_size": 6, "generations": 100,
            "max_queries": 30, "use_gpt": False, "fitness": {"table": str(table)}, "output_dir": str(tmp_path / "run"),
            "progress": False, "seed": 0, **overrides}


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "evaluations.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("strategy, options", [("ga", {}), ("random", {}),
                                               ("rea", {"strategy_options": {"sample_size": 3}})])
def test_a_table_search_counts_queries_and_writes_the_run_of_a_trained_one(table, tmp_path, strategy, options):
    config = SearchConfig.from_dict(recipe(table, tmp_path, strategy=strategy, **options))
    result = NASSearcher(config).run()
    records = rows(tmp_path / "run")
    assert len(records) == 30 == result.evaluations and len({r["hash"] for r in records}) == 30
    for record in records:
        cell = Cell.from_json(record["genome"])
        assert record["metric"] == synthetic_accuracy(cell) and record["fitness"] == pytest.approx(record["metric"] / 100)
        assert record["status"] == "ok" and record["train_scope"] == "table" and record["parameters"] > 70_000
    best = max(records, key=lambda r: r["fitness"])
    assert result.best_fitness == best["fitness"] and str(result.best_genome) == best["genome"]
    assert json.loads((tmp_path / "run" / "best_genome.json").read_text()) == best["genome"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "nas-bench-201 (synthetic.csv)" in report and best["genome"] in report and "budget" not in report
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["phase"] == "done" and state["data"]["source"] == str(table)
    # resume of a finished run: nothing is looked up again
    again = NASSearcher(config).run(resume=True)
    assert len(rows(tmp_path / "run")) == 30 and again.best_genome == result.best_genome


def test_rea_keeps_its_population_in_age_order_and_returns_the_best_of_the_run(table, tmp_path):
    config = SearchConfig.from_dict(recipe(table, tmp_path, strategy="rea", population_size=5, max_queries=40))
    result = NASSearcher(config).run()
    records = rows(tmp_path / "run")
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    population = [Cell.from_json(d["genome"]) for d in state["population"]]
    order = {r["hash"]: i for i, r in enumerate(records)}
    ages = [order[NASSearcher(config).space.hash(c)] for c in population]
    assert ages == sorted(ages)  # oldest first: the last five looked up (or repeats of them)
    assert result.best_fitness == max(r["fitness"] for r in records)


def test_the_same_seed_gives_the_same_search_and_another_seed_another(table, tmp_path):
    first = NASSearcher(SearchConfig.from_dict(recipe(table, tmp_path / "a"))).run()
    second = NASSearcher(SearchConfig.from_dict(recipe(table, tmp_path / "b"))).run()
    third = NASSearcher(SearchConfig.from_dict(recipe(table, tmp_path / "c", seed=1))).run()
    assert [r["hash"] for r in rows(tmp_path / "a" / "run")] == [r["hash"] for r in rows(tmp_path / "b" / "run")]
    assert first.best_genome == second.best_genome
    assert [r["hash"] for r in rows(tmp_path / "c" / "run")] != [r["hash"] for r in rows(tmp_path / "a" / "run")]


def test_table_errors_name_the_file_and_the_problem(table, tmp_path):
    no_metric = tmp_path / "no-metric.csv"
    no_metric.write_text("arch,accuracy\n" + f"{Cell(('none',) * 6)},10\n")
    with pytest.raises(TableError, match=r"no-metric\.csv.*test_accuracy.*'arch', 'accuracy'"):
        NASSearcher(SearchConfig.from_dict(recipe(no_metric, tmp_path)))
    partial = tmp_path / "partial.csv"
    lines = table.read_text().splitlines()
    partial.write_text("\n".join(lines[:40]) + "\n")  # 39 cells of 15,625
    with pytest.raises(ArchitectureNotInTableError, match=r"partial\.csv") as err:
        NASSearcher(SearchConfig.from_dict(recipe(partial, tmp_path))).run()
    assert "|" in str(err.value)  # the architecture, in the benchmark's string form
    with pytest.raises(ValueError, match="fitness: table: the path"):
        SearchConfig.from_dict(recipe(table, tmp_path, fitness={"metric": "test_accuracy"}))
    with pytest.raises(ValueError, match="space"):
        SearchConfig.from_dict(recipe(table, tmp_path, space="nas-bench-999"))


def _cli(*args, cwd=REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "gptnas_hf.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_the_command_line_samples_encodes_and_searches_nas_bench_201(table, tmp_path):
    sampled = _cli("sample-genome", "--space", "nas-bench-201", "--seed", "3")
    assert sampled.returncode == 0, sampled.stderr
    cell = Cell.from_string(sampled.stdout.strip())
    encoded = _cli("encode", "--space", "nas-bench-201", "--genome", str(cell), "--input-shape", "3,32,32")
    assert encoded.returncode == 0, encoded.stderr
    lines = encoded.stdout.splitlines()
    assert lines[0].startswith("id:1;in_size:32-32-3;out_size:32-32-16;kernel:3-3") and lines[-1].endswith("out_size:1-1-10")
    bad = _cli("encode", "--space", "nas-bench-201", "--genome", "|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert bad.returncode == 2 and "conv_7x7" in bad.stderr and "Traceback" not in bad.stderr
    run = tmp_path / "cli-run"
    searched = _cli("search", "--recipe", "recipes/nas-bench-201.yaml", "--table", str(table), "--use-gpt", "false",
                    "--proposal-filter", "none", "--max-queries", "20", "--output-dir", str(run))
    assert searched.returncode == 0, searched.stderr[-2000:]
    result = json.loads(searched.stdout.strip().splitlines()[-1])
    assert result["evaluations"] == 20 and Cell.from_string(result["best_genome"])
    state = json.loads((run / "state.json").read_text())
    assert state["config"]["fitness"]["table"] == str(table)  # --table is recorded with the run
    assert state["config"]["proposal_filter"] is None  # --proposal-filter none turned the recipe's filter off
    bad = _cli("search", "--recipe", "recipes/nas-bench-201.yaml", "--table", str(table), "--proposal-filter", "gtp",
               "--output-dir", str(tmp_path / "bad-run"))
    assert bad.returncode != 0 and "--proposal-filter" in bad.stderr and "parameters>gpt" in bad.stderr


@pytest.mark.skipif(not SHARED_TABLE.is_file(), reason=f"NAS-Bench-201's table not found at {SHARED_TABLE}")
def test_the_shipped_recipe_searches_the_real_table(tmp_path):
    """The shipped design (the GA, proposals rated by size with the GPT breaking ties) as it is."""
    config = SearchConfig.from_yaml(REPO / "recipes" / "nas-bench-201.yaml",
                                    output_dir=str(tmp_path / "run"), progress=False,
                                    fitness={"table": str(SHARED_TABLE)})
    result = NASSearcher(config).run()
    records = rows(tmp_path / "run")
    assert len(records) == 100 and 90.0 < max(r["metric"] for r in records) <= 94.3733  # the optimum, 94.37
    assert result.best_fitness == pytest.approx(max(r["metric"] for r in records) / 100)


def test_wall_seconds_count_running_time_only_across_resumes(table, tmp_path):
    """A resumed run adds the time it runs, not the time it sat stopped."""
    config = SearchConfig.from_dict(recipe(table, tmp_path))
    NASSearcher(config).run()
    state_path = tmp_path / "run" / "state.json"
    state = json.loads(state_path.read_text())
    first = state["wall_seconds"]
    assert 0 <= first < 120
    state["started"] -= 3600  # as if the run had stopped an hour ago
    state_path.write_text(json.dumps(state))
    NASSearcher(config).run(resume=True)
    again = json.loads(state_path.read_text())["wall_seconds"]
    assert first <= again < first + 60


def test_a_damaged_best_genome_is_named_and_rebuilt_by_resuming_the_finished_run(table, tmp_path, capsys):
    from gptnas_hf.search.run_directory import RunDirectory
    from gptnas_hf.search_space_protocol import create_space

    config = SearchConfig.from_dict(recipe(table, tmp_path))
    result = NASSearcher(config).run()
    run = RunDirectory(tmp_path / "run")
    good = run.best_genome_path.read_text()
    run.best_genome_path.write_text("{garbage")
    with pytest.raises(ValueError, match=r"best_genome.json is damaged .*--resume"):
        run.read_best_genome(create_space("nas-bench-201"))
    capsys.readouterr()
    NASSearcher(config).run(resume=True)
    assert run.best_genome_path.read_text() == good
    assert str(run.read_best_genome(create_space("nas-bench-201"))) == str(result.best_genome)
    assert "best_genome.json was unreadable; rebuilt from evaluations.jsonl" in capsys.readouterr().err


def test_a_cut_record_of_a_finished_run_is_evaluated_again_on_resume(table, tmp_path, capsys):
    config = SearchConfig.from_dict(recipe(table, tmp_path))
    NASSearcher(config).run()
    run = tmp_path / "run"
    lines = (run / "evaluations.jsonl").read_text().splitlines()
    state = json.loads((run / "state.json").read_text())
    kept = {json.dumps(ind["genome"]) for ind in state["population"]}
    cut = next(i for i, line in enumerate(lines) if json.dumps(json.loads(line)["genome"]) in kept)
    others = lines[:cut] + lines[cut + 1:]
    (run / "evaluations.jsonl").write_text("\n".join(others) + "\n" + lines[cut][:40])  # a write cut by a kill
    capsys.readouterr()
    NASSearcher(config).run(resume=True)
    after = rows(run)
    assert len(after) == len(lines) == 30 and {r["hash"] for r in after} == {json.loads(line)["hash"] for line in lines}
    said = capsys.readouterr().err
    assert "evaluated again 1 candidate of its final population whose record was cut" in said
    assert (run / "evaluations.jsonl.partial-1").read_text().startswith(lines[cut][:40])
