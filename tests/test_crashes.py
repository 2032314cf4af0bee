"""A supported CPU never crashes the candidate training, and a candidate whose process dies
is a record, not a dead search."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from gptnas_hf import evaluation
from gptnas_hf.search import workers
from gptnas_hf.search.searcher import NASSearcher, SearchConfig

from conftest import tiny_search
import crashing_evaluation


@pytest.mark.parametrize("capability, limit, safe", [
    ("AVX512", None, True), ("AVX512", "AVX512_CORE_AMX", True), ("AVX512", "avx10_1_512", True),
    ("AVX512", "ALL", True), ("AVX512", "AVX2", False), ("AVX512", "avx2_vnni", False), ("AVX2", None, False),
    ("DEFAULT", None, False), ("AVX2", "AVX512_CORE", False),
])
def test_channels_last_only_where_onednn_runs_its_avx512_kernels(monkeypatch, capability, limit, safe):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if limit is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", limit)
    assert evaluation.channels_last_is_safe("cpu") is safe
    assert evaluation.channels_last_is_safe("cuda") is True  # never limited on a GPU
    config = evaluation._safe_layout(evaluation.EvalConfig(channels_last=True), torch.device("cpu"))
    assert config.channels_last is safe
    assert evaluation._safe_layout(evaluation.EvalConfig(channels_last=False), torch.device("cpu")).channels_last is False


#: the genome the budget repair narrowed to 4 channels: the stride-2 BasicBlock's 1x1 shortcut
#: convolution (4 -> 4 channels, stride 2) is the shape whose channels-last weight gradient
#: corrupted the heap in oneDNN's AVX2 kernel
CRASHING_SHAPE = [{"kind": "BasicBlock", "width": 4, "stride": 1}, {"kind": "BasicBlock", "width": 4, "stride": 2},
                  {"kind": "BasicBlock", "width": 4, "stride": 2}, {"kind": "Conv", "width": 3, "stride": 2, "kernel": 1}]


def test_the_shape_that_crashed_onednn_trains_through_the_evaluation_on_one_thread(tmp_path):
    """In a fresh process with oneDNN held to its AVX2 kernels (what an AVX2-only CPU runs), on
    one thread, the default evaluation trains that genome to the end: NCHW is chosen there."""
    code = textwrap.dedent(f"""
        import json, torch
        torch.set_num_threads(1)
        from gptnas_hf.data import load_image_data
        from gptnas_hf.evaluation import EvalConfig
        from gptnas_hf.search.candidate import evaluate_candidate
        data = load_image_data("digits", max_train_per_class=20, val_fraction=0.25, image_size=16, progress=False,
                               cache_dir={str(tmp_path / "cache")!r})
        config = EvalConfig(epochs=2, batch_size=64, progress=False, train_scope="full")
        result = evaluate_candidate({CRASHING_SHAPE!r}, data, config)
        print(json.dumps(result))
    """)
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, f"the evaluation died ({done.returncode}): {done.stderr[-2000:]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "ok" and result["channels_last"] is False and result["threads"] == 1


def test_a_worker_that_dies_mid_candidate_is_a_crashed_record_and_the_search_goes_on(tmp_path, digits, monkeypatch,
                                                                                    capsys):
    """Worker processes whose candidate kills them (SIGSEGV): each such candidate is recorded
    "crashed" with the signal and the last words, a fresh worker takes over, the search ends
    with a trained best, and resume trains nothing again."""
    monkeypatch.setattr(workers, "evaluate_candidate", crashing_evaluation.evaluate_or_die)
    config = SearchConfig.from_dict({**tiny_search(use_gpt=False, generations=2), "workers": 2, "threads": 1,
                                     "output_dir": str(tmp_path / "run")})
    result = NASSearcher(config, dataset=digits).run()
    rows = [json.loads(line) for line in (tmp_path / "run" / "evaluations.jsonl").read_text().splitlines()]
    crashed = [r for r in rows if r["status"] == "crashed"]
    assert crashed and len(crashed) < len(rows)
    assert {r["hash"] for r in crashed} == {r["hash"] for r in rows if crashing_evaluation.dies_for(r["genome"])}
    for row in crashed:
        assert row["fitness"] == 0.0 and row["signal"] == "SIGSEGV"
        assert crashing_evaluation.LAST_WORDS in row["reason"] and "Fatal Python error" in row["reason"]
    best = next(r for r in rows if r["hash"] == result.best_genome.hash())
    assert best["status"] == "ok" and best["fitness"] > 0
    assert crashing_evaluation.LAST_WORDS in capsys.readouterr().err  # relayed as it happened
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Failed candidates" in report and "crashed" in report
    again = NASSearcher(SearchConfig.from_dict({**config.to_dict(), "generations": 2}), dataset=digits).run(resume=True)
    assert len((tmp_path / "run" / "evaluations.jsonl").read_text().splitlines()) == len(rows)
    assert again.best_genome == result.best_genome
