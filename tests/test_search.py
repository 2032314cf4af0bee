import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from gptnas_hf.data import load_image_data
from gptnas_hf.mask_schedule import mask_rate_at
from gptnas_hf.search.searcher import NASSearcher, SearchConfig
from gptnas_hf.search_space import Genome

from conftest import tiny_search

SHARED_CIFAR10 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10"

TINY = tiny_search()


def records(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "evaluations.jsonl").read_text().splitlines()]


def test_tiny_ga_gpt_search_end_to_end_on_digits(tmp_path, digits):
    config = SearchConfig.from_dict({**TINY, "output_dir": str(tmp_path / "run")})
    result = NASSearcher(config, dataset=digits).run()
    run = tmp_path / "run"
    for name in ("state.json", "evaluations.jsonl", "best_genome.json", "report.md", "progress.png", "data.json"):
        assert (run / name).is_file(), name
    assert json.loads((run / "data.json").read_text()) == digits.describe()
    rows = records(run)
    hashes = [r["hash"] for r in rows]
    assert len(hashes) == len(set(hashes)), "a genome was trained twice"
    assert result.evaluations == len(rows) <= 4 * 3
    assert Genome.from_json((run / "best_genome.json").read_text()) == result.best_genome
    assert result.best_fitness == max(r["fitness"] for r in rows)
    # Eq. 3 per generation: 0.4, 0.2, 0.0 for T = 2
    for row in rows:
        assert row["mask_rate"] == pytest.approx(mask_rate_at(row["generation"], 2, 0.4))
        assert row["reconstructed"] == bool(row["predicted_blocks"])
        assert 10 <= len(row["genome"]) <= 12
    assert any(r["reconstructed"] for r in rows)
    assert not any(r["reconstructed"] for r in rows if r["generation"] == 2)  # rate 0 at t = T
    state = json.loads((run / "state.json").read_text())
    assert state["phase"] == "done" and [h["generation"] for h in state["history"]] == [0, 1, 2]
    assert [h["best"] for h in state["history"]] == sorted(h["best"] for h in state["history"])  # elitist
    assert all(h["diversity_edit_distance"] > 0 and h["diversity_kinds_per_position"] >= 1 for h in state["history"])
    assert "best validation top-1" in (run / "report.md").read_text()


def test_random_search_without_the_gpt_on_28x28_grayscale(tmp_path):
    data = load_image_data("digits", image_size=28, max_train_per_class=20, val_fraction=0.25, progress=False,
                           cache_dir=tmp_path / "cache")
    assert (data.channels, data.image_size) == (1, 28)
    config = SearchConfig.from_dict({**TINY, "strategy": "random", "use_gpt": False, "generations": 1,
                                     "output_dir": str(tmp_path / "run")})
    result = NASSearcher(config, dataset=data).run()
    rows = records(tmp_path / "run")
    assert len(rows) == 8 and not any(r["reconstructed"] for r in rows)
    assert all(r["mask_rate"] is None and r["train_scope"] == "full" for r in rows)
    assert 0.0 <= result.best_fitness <= 1.0


def test_nan_and_out_of_memory_candidates_get_fitness_zero(tmp_path, digits, monkeypatch):
    import gptnas_hf.search.candidate as candidate_module

    real_build = candidate_module.build_network
    built = []

    class Failing(torch.nn.Module):
        def __init__(self, network, mode):
            super().__init__()
            self.network, self.mode = network, mode
            self.blocks, self.head = network.blocks, network.head

        def forward(self, x):
            if self.mode == "oom":
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")
            return self.network(x) * float("nan")

    def build(genome, in_channels=3, num_classes=10):
        network = real_build(genome, in_channels=in_channels, num_classes=num_classes)
        built.append(genome)
        mode = {1: "nan", 2: "oom"}.get(len(built))
        return Failing(network, mode) if mode else network

    monkeypatch.setattr(candidate_module, "build_network", build)  # in this process: one worker
    config = SearchConfig.from_dict({**TINY, "use_gpt": False, "generations": 1, "workers": 1,
                                     "output_dir": str(tmp_path / "run")})
    result = NASSearcher(config, dataset=digits).run()
    rows = records(tmp_path / "run")
    statuses = {r["status"]: r for r in rows}
    assert statuses["nan"]["fitness"] == 0.0 and statuses["oom"]["fitness"] == 0.0
    assert "out of memory" in statuses["oom"]["reason"].lower()
    assert json.loads((tmp_path / "run" / "state.json").read_text())["phase"] == "done"
    assert result.best_fitness >= 0.0 and "Failed candidates" in (tmp_path / "run" / "report.md").read_text()


def test_an_existing_run_needs_resume_and_the_same_settings(tmp_path, digits):
    config = SearchConfig.from_dict({**TINY, "use_gpt": False, "generations": 0, "output_dir": str(tmp_path / "run")})
    NASSearcher(config, dataset=digits).run()
    with pytest.raises(FileExistsError, match="resume"):
        NASSearcher(config, dataset=digits).run()
    other = SearchConfig.from_dict({**TINY, "use_gpt": False, "generations": 0, "seed": 5,
                                    "output_dir": str(tmp_path / "run")})
    with pytest.raises(ValueError, match="other settings"):
        NASSearcher(other, dataset=digits).run(resume=True)
    with pytest.raises(ValueError, match="populaton_size: unknown setting .did you mean 'population_size'"):
        SearchConfig.from_dict({"populaton_size": 3})


def _search_command(recipe, out, resume=False):
    command = [sys.executable, "-m", "gptnas_hf.cli", "search", "--recipe", str(recipe), "--output-dir", str(out)]
    return command + (["--resume"] if resume else [])


def _start_and_wait_inside_generation_1(recipe, out, env, poll=0.05):
    """Start a search and return its process once 6 records are written (inside generation 1)."""
    process = subprocess.Popen(_search_command(recipe, out), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    log = out / "evaluations.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if log.is_file() and len(log.read_text().splitlines()) >= 6:
            break
        time.sleep(poll)
    assert process.poll() is None, "the search ended before it could be killed"
    return process


def test_a_killed_search_resumes_to_the_uninterrupted_result(tmp_path):
    """kill -9 in mid-write: the last line of evaluations.jsonl is cut in half. The unfinished
    run exports with a card that says so; the resume sets the cut line aside, trains that
    candidate again and ends exactly where the uninterrupted run ends."""
    from huggingface_hub import ModelCard

    from gptnas_hf.hub import export_run

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({**TINY, "data": {**TINY["data"], "cache_dir": str(tmp_path / "cache")},
                                      "workers": 2}))  # candidates trained by two worker processes
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_search_command(recipe, straight), env=env, check=True, capture_output=True, timeout=600)

    process = _start_and_wait_inside_generation_1(recipe, killed, env)
    log = killed / "evaluations.jsonl"
    workers = subprocess.run(["ps", "-o", "pid=", "--ppid", str(process.pid)], capture_output=True,
                             text=True).stdout.split()  # the candidate-training processes (workers.py)
    assert workers, "no worker processes to kill"
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.2)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "a worker outlived the killed search"
    state = json.loads((killed / "state.json").read_text())
    assert state["phase"] != "done"
    lines = log.read_bytes().splitlines(keepends=True)
    cut = json.loads(lines[-1])
    assert cut["generation"] == state["generation"], "the kill landed between generations"
    log.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # the write the kill cut
    done_before = len(lines) - 1

    with pytest.warns(UserWarning, match="UNTRAINED"):
        export_run(killed, tmp_path / "unfinished")
    card = ModelCard.load(tmp_path / "unfinished" / "README.md")
    assert "**Warning: this search did not finish.**" in card.text
    assert f"generation {state['generation']} of 2" in card.text
    assert not card.data.eval_results and "model-index" not in card.content  # untrained: no accuracy claimed

    resumed = subprocess.run(_search_command(recipe, killed, resume=True), env=env, check=True, capture_output=True,
                             text=True, timeout=600)
    assert "evaluations.jsonl.partial-1" in resumed.stderr
    assert "evaluates again every candidate it still needs" in resumed.stderr
    assert (killed / "evaluations.jsonl.partial-1").read_bytes() == lines[-1][: len(lines[-1]) // 2] + b"\n"
    a, b = records(straight), records(killed)  # every line parses
    assert cut["hash"] in [r["hash"] for r in b]  # trained again
    assert len(b) >= done_before
    key = lambda rows: sorted((r["hash"], r["fitness"], r["generation"]) for r in rows)
    assert key(a) == key(b)
    assert (straight / "best_genome.json").read_text() == (killed / "best_genome.json").read_text()
    state_a = json.loads((straight / "state.json").read_text())
    state_b = json.loads((killed / "state.json").read_text())
    assert state_a["population"] == state_b["population"] and state_a["history"] == [
        {**h} for h in state_b["history"]]


@pytest.mark.skipif(not SHARED_CIFAR10.is_dir(), reason=f"shared CIFAR-10 not found at {SHARED_CIFAR10}")
def test_tiny_search_on_the_shared_cifar10(tmp_path):
    data = load_image_data(str(SHARED_CIFAR10), max_train_per_class=10, val_fraction=0.3, max_test=100,
                           progress=False, cache_dir=tmp_path / "cache")
    assert (data.channels, data.image_size, data.num_classes) == (3, 32, 10)
    config = SearchConfig.from_dict({**TINY, "generations": 1, "dataset": str(SHARED_CIFAR10),
                                     "output_dir": str(tmp_path / "run")})
    result = NASSearcher(config, dataset=data).run()
    assert len(records(tmp_path / "run")) <= 8 and 0.0 <= result.best_fitness <= 1.0


def test_retrain_the_best_genome_of_a_run(tmp_path, digits):
    import safetensors.torch

    from gptnas_hf.search.retrain import retrain_run

    config = SearchConfig.from_dict({**TINY, "use_gpt": False, "generations": 0,
                                     "data": {**TINY["data"], "cache_dir": str(tmp_path / "cache")},
                                     "retrain": {"epochs": 1, "batch_size": 32, "lr": 0.05},
                                     "output_dir": str(tmp_path / "run")})
    NASSearcher(config, dataset=digits).run()
    summary = retrain_run(tmp_path / "run")
    assert 0.0 <= summary["test_top1"] <= summary["test_top5"] <= 1.0 and summary["parameters"] > 0
    weights = safetensors.torch.load_file(str(tmp_path / "run" / "retrained.safetensors"))
    assert any(key.startswith("head.") for key in weights)
    assert json.loads((tmp_path / "run" / "retrain.json").read_text())["epochs"] == 1


def test_two_processes_under_accelerate_launch_split_a_generation_and_agree(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({**TINY, "generations": 1,
                                      "data": {**TINY["data"], "cache_dir": str(tmp_path / "cache")}}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    # torchrun: `accelerate launch --cpu --num_processes 2` starts a single process on a CPU machine
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
              "gptnas_hf.cli"]
    two = subprocess.run(launch + _search_command(recipe, tmp_path / "two")[3:], env=env, capture_output=True,
                         text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    subprocess.run(_search_command(recipe, tmp_path / "one"), env=env, check=True, capture_output=True, timeout=600)
    key = lambda rows: sorted((r["hash"], r["fitness"]) for r in rows)
    assert {r["process"] for r in records(tmp_path / "two")} == {0, 1}  # both processes trained candidates
    assert key(records(tmp_path / "two")) == key(records(tmp_path / "one"))
    assert (tmp_path / "two" / "best_genome.json").read_text() == (tmp_path / "one" / "best_genome.json").read_text()


def test_prefilter_trains_only_the_top_share_and_records_the_rest_untrained(tmp_path, digits):
    config = SearchConfig.from_dict({**TINY, "use_gpt": False, "population_size": 6, "generations": 2,
                                     "prefilter": "naswot", "prefilter_keep": 0.5, "output_dir": str(tmp_path / "run")})
    result = NASSearcher(config, dataset=digits).run()
    rows = records(tmp_path / "run")
    for generation in (1, 2):
        mine = [r for r in rows if r["generation"] == generation]
        skipped = [r for r in mine if r["status"] == "prefiltered"]
        trained = [r for r in mine if r["status"] == "ok"]
        assert skipped and len(trained) <= 3
        assert all(r["seconds"] == 0.0 and r["fitness"] == 0.0 and r["proxy"] == "naswot" for r in skipped)
        # the trained ones are the best proxy scores of the generation
        scores = {r["hash"]: r["proxy_score"] for r in skipped}
        from gptnas_hf.search.candidate import candidate_seed
        from gptnas_hf.zero_cost import score_genome

        for r in trained:
            s = score_genome(Genome(r["genome"]), digits, "naswot", seed=candidate_seed(0, r["genome"]))
            assert all(s >= v for v in scores.values() if v == v)
            # a trained candidate's record keeps what the proxy said of it, and what that cost
            assert r["proxy"] == "naswot" and r["proxy_score"] == pytest.approx(s, rel=1e-6) and r["proxy_seconds"] >= 0
        assert all(r["proxy_seconds"] >= 0 for r in skipped)
    assert all(r["status"] == "ok" for r in rows if r["generation"] == 0)  # the initial population is trained
    best = next(r for r in rows if r["hash"] == result.best_genome.hash())
    assert best["status"] == "ok"
    report = (tmp_path / "run" / "report.md").read_text()
    assert "left untrained by the naswot pre-filter" in report and "Failed candidates" not in report
    with pytest.raises(ValueError, match="prefilter"):
        SearchConfig.from_dict({**TINY, "prefilter": "magic"})


def test_parallel_workers_give_the_same_records_as_one_process(tmp_path, digits):
    """Candidates trained by 2 worker processes (1 thread each) score exactly as in-process."""
    results, threads_before = {}, torch.get_num_threads()
    for workers in (1, 2):
        config = SearchConfig.from_dict({**TINY, "use_gpt": False, "workers": workers, "threads": 1,
                                         "output_dir": str(tmp_path / f"w{workers}")})
        results[workers] = NASSearcher(config, dataset=digits).run()
    key = lambda rows: sorted((r["hash"], r["fitness"], r["top5"], r["status"], r["threads"]) for r in rows)
    one, two = records(tmp_path / "w1"), records(tmp_path / "w2")
    assert key(one) == key(two) and all(r["threads"] == 1 for r in two)
    assert results[1].best_genome == results[2].best_genome
    assert torch.get_num_threads() == threads_before  # the search put the threads back


def _tensorboard_candidate_steps(out) -> list[int]:
    """Every step of candidate/fitness in a run's TensorBoard event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps = []
    for logdir in sorted({p.parent for p in (out / "trackers").rglob("events.out.tfevents.*")}):
        acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
        acc.Reload()
        if "candidate/fitness" in acc.Tags()["scalars"]:
            steps += [e.step for e in acc.Scalars("candidate/fitness")]
    return steps


def test_trackers_log_every_record_once_across_a_kill_and_a_resume(tmp_path):
    """kill -9 inside a generation, then --resume: TensorBoard holds candidate/fitness for every
    record of evaluations.jsonl exactly once, at steps 1..N (the records finished before the
    kill but never logged are logged on resume)."""
    pytest.importorskip("tensorboard")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({**TINY, "data": {**TINY["data"], "cache_dir": str(tmp_path / "cache")},
                                      "use_gpt": False, "log_with": "tensorboard"}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "run"
    process = _start_and_wait_inside_generation_1(recipe, out, env, poll=0.02)
    log = out / "evaluations.jsonl"
    process.send_signal(signal.SIGKILL)
    process.wait()
    subprocess.run(_search_command(recipe, out, resume=True), env=env, check=True, capture_output=True, timeout=600)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    steps = _tensorboard_candidate_steps(out)
    assert sorted(steps) == list(range(1, len(records) + 1))
    assert json.loads((out / "tracked.json").read_text()) == {"candidates": len(records)}


def test_a_kill_between_tensorboards_write_and_the_count_logs_nothing_twice(tmp_path, digits):
    """The window the kill test above can hit by chance, made certain: TensorBoard already holds
    every record but ``tracked.json`` is behind (as a kill between the two leaves it). The resume
    reads TensorBoard's own event files and logs nothing again."""
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    config = SearchConfig.from_dict({**TINY, "use_gpt": False, "log_with": "tensorboard", "output_dir": str(out),
                                     "progress": False})
    NASSearcher(config, dataset=digits).run()
    n = len(records(out))
    (out / "tracked.json").write_text(json.dumps({"candidates": 2}))
    NASSearcher(config, dataset=digits).run(resume=True)
    steps = _tensorboard_candidate_steps(out)
    assert sorted(steps) == list(range(1, n + 1))
    assert json.loads((out / "tracked.json").read_text()) == {"candidates": n}


def test_ctrl_c_is_one_line_exit_130_at_once_and_the_resume_finishes_the_run(tmp_path):
    """A real SIGINT inside a generation with two worker processes: no traceback, exit status 130
    within a few seconds (the candidates in flight are dropped, not waited for), the workers gone;
    --resume ends the run with every candidate recorded once."""
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({**TINY, "data": {**TINY["data"], "cache_dir": str(tmp_path / "cache")},
                                      "use_gpt": False, "workers": 2}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "run"
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "w") as stderr_file:
        process = subprocess.Popen(_search_command(recipe, out), env=env, stdout=subprocess.DEVNULL, stderr=stderr_file,
                                   # as from a terminal: a test runner's worker may ignore SIGINT, and children inherit that
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log = out / "evaluations.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if log.is_file() and len(log.read_text().splitlines()) >= 5:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the search ended before it could be interrupted"
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(process.pid)], capture_output=True,
                              text=True).stdout.split()
    workers = [pid for pid in children  # the candidate-training processes, not multiprocessing's resource tracker
               if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert workers
    sent = time.time()
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    waited = time.time() - sent
    time.sleep(1)  # multiprocessing's resource tracker, which would report leaks, ends after the search
    stderr = stderr_path.read_text()
    assert process.returncode == 130 and waited < 5, (process.returncode, waited, stderr)
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == (
        "gptnas search: interrupted (nothing is lost: run the same command with --resume)")
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "a worker outlived the interrupted search"
    subprocess.run(_search_command(recipe, out, resume=True), env=env, check=True, capture_output=True, timeout=600)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert json.loads((out / "state.json").read_text())["phase"] == "done"
    assert len(records) == len({r["hash"] for r in records}) == 12


def test_prefilter_works_on_another_search_space_and_its_batch_holds_every_class(tmp_path, digits):
    from gptnas_hf.search.candidate import candidate_seed
    from gptnas_hf.search_space_protocol import create_space
    from gptnas_hf.zero_cost import score_genome, zero_cost_batch

    config = SearchConfig.from_dict({**TINY, "space": "nas-bench-201", "use_gpt": False, "population_size": 4,
                                     "generations": 1, "prefilter": "naswot", "prefilter_keep": 0.5,
                                     "output_dir": str(tmp_path / "run")})
    NASSearcher(config, dataset=digits).run()
    rows = records(tmp_path / "run")
    offspring = [r for r in rows if r["generation"] == 1]
    assert {r["status"] for r in offspring} == {"ok", "prefiltered"}
    space = create_space("nas-bench-201")
    for r in offspring:  # each score is the cell's own network scored on the search's batch
        expected = score_genome(space.load(r["genome"]), digits, "naswot", space=space, batch_seed=0,
                                seed=candidate_seed(0, r["genome"], space))
        assert r["proxy_score"] == pytest.approx(expected, rel=1e-6)
    assert len(set(digits.train_y[zero_cost_batch(len(digits.train_y), 64)].tolist())) == digits.num_classes
    with pytest.raises(ValueError, match="table"):
        SearchConfig.from_dict({**TINY, "space": "nas-bench-201", "prefilter": "naswot",
                                "fitness": {"table": str(tmp_path / "t.csv")}})
