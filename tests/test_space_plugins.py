"""A search space from another package: declared in the ``gptnas_hf.search_spaces`` entry-point
group, found by name from recipes and the command line, and searched end to end although its
architectures are plain lists (nothing may assume the block genome)."""

import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PLUGIN = textwrap.dedent('''
    """A toy space: three ops from a, b, c, written "a-b-c"."""
    import hashlib
    import json

    from torch import nn

    from gptnas_hf.search_space_protocol import InvalidArchitectureError, SearchSpace

    OPS = ("a", "b", "c")


    class ToySpace(SearchSpace):
        name = "toy-plugin"

        def load(self, data):
            if isinstance(data, str):
                data = json.loads(data) if data.startswith("[") else data.split("-")
            if not isinstance(data, list) or len(data) != 3 or any(op not in OPS for op in data):
                raise InvalidArchitectureError(f"a toy architecture is three of {OPS}, got {data!r}")
            return list(data)

        def dump(self, arch):
            return list(arch)

        def hash(self, arch):
            return hashlib.sha256("-".join(arch).encode()).hexdigest()[:16]

        def sample(self, rng):
            return [rng.choice(OPS) for _ in range(3)]

        def build_network(self, arch, in_channels=3, num_classes=10):
            net = nn.Module()
            net.blocks = nn.ModuleList([nn.Conv2d(in_channels, 4 * (1 + OPS.index(op)), 1) for op in arch[:1]])
            net.head = nn.Linear(4, num_classes)
            return net

        def parameters(self, arch, in_channels=3, num_classes=10):
            return sum(1 + OPS.index(op) for op in arch)

        def tokens(self, arch):
            return list(arch)

        def mutate(self, arch, rng):
            child = list(arch)
            i = rng.randrange(3)
            child[i] = rng.choice([op for op in OPS if op != arch[i]])
            return child, "alter"

        def crossover(self, a, b, rng):
            cut = rng.randrange(1, 3)
            return a[:cut] + b[cut:], b[:cut] + a[cut:]
''')


@pytest.fixture()
def plugin(tmp_path):
    """An installed package in all but the installing: its module and its dist-info on the path."""
    root = tmp_path / "site"
    (root / "toy_spaces-0.1.dist-info").mkdir(parents=True)
    (root / "toy_spaces.py").write_text(PLUGIN)
    (root / "toy_spaces-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-spaces\nVersion: 0.1\n")
    (root / "toy_spaces-0.1.dist-info" / "entry_points.txt").write_text(
        "[gptnas_hf.search_spaces]\ntoy-plugin = toy_spaces:ToySpace\nbroken-plugin = toy_spaces_missing:Nothing\n")
    table = tmp_path / "toy.csv"
    rows = ["arch,test_accuracy"] + [f"{'-'.join(ops)},{50 + 10 * ops.count('c') + ops.count('b')}"
                                     for ops in itertools.product("abc", repeat=3)]
    table.write_text("\n".join(rows) + "\n")
    return root, table


def _run(args, root, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([str(root), str(REPO)])}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_a_declared_space_is_found_by_name_and_searched_end_to_end(plugin, tmp_path):
    root, table = plugin
    sampled = _run(["-m", "gptnas_hf.cli", "sample-genome", "--space", "toy-plugin", "--seed", "1"], root, tmp_path)
    assert sampled.returncode == 0, sampled.stderr
    assert all(op in "abc" for op in json.loads(sampled.stdout)) and len(json.loads(sampled.stdout)) == 3
    recipe = {"space": "toy-plugin", "strategy": "ga", "population_size": 4, "generations": 100, "max_queries": 12,
              "use_gpt": False, "fitness": {"table": str(table)}, "output_dir": str(tmp_path / "run"), "seed": 0}
    (tmp_path / "toy.yaml").write_text(json.dumps(recipe))  # JSON is YAML
    searched = _run(["-m", "gptnas_hf.cli", "search", "--recipe", "toy.yaml"], root, tmp_path)
    assert searched.returncode == 0, searched.stderr[-3000:]
    best = json.loads((tmp_path / "run" / "best_genome.json").read_text())
    assert best == ["c", "c", "c"]  # the space writes its architectures as lists; 12 queries of 27 find the best
    records = [json.loads(line) for line in (tmp_path / "run" / "evaluations.jsonl").read_text().splitlines()]
    assert len({r["hash"] for r in records}) == 12


def test_a_declared_space_that_cannot_load_is_named(plugin, tmp_path):
    root, _ = plugin
    listed = _run(["-c", "from gptnas_hf.search_space_protocol import space_names; print(space_names())"], root,
                  tmp_path)
    assert "toy-plugin" in listed.stdout and "broken-plugin" in listed.stdout and "nas-bench-201" in listed.stdout
    broken = _run(["-m", "gptnas_hf.cli", "sample-genome", "--space", "broken-plugin"], root, tmp_path)
    assert broken.returncode != 0
    assert "broken-plugin" in broken.stderr and "toy_spaces_missing:Nothing" in broken.stderr
    assert "Traceback" not in broken.stderr
