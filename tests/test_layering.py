"""The package's layering: the model side (what a pushed architecture GPT or searched network
carries as remote code) imports only flat model modules, nothing imports the package's top
level from inside, and no code is committed inside a checkpoint."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gptnas_hf"
#: the modules transformers copies beside a saved model (custom_object_save): flat, and only these
MODEL_SIDE = ("block_labels", "builtin_kinds", "configuration_gptnas", "default_model", "encoding", "genome_budget",
              "genome_network", "genome_sampler", "genome_schema", "kind_registry", "value_checks",
              "image_processing_searched", "mask_schedule", "modeling_gptnas", "modeling_searched",
              "pipeline_nas_reconstruction", "search_space", "tokenization_gptnas", "search_space_protocol",
              "space_blocks", "space_nas_bench_201", "architecture_score", "unit_reconstruction", "seeding")


def _relative_imports(path: Path) -> list[ast.ImportFrom]:
    return [node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ImportFrom) and node.level]


@pytest.mark.parametrize("module", MODEL_SIDE)
def test_model_side_imports_only_flat_model_modules(module):
    for node in _relative_imports(PACKAGE / f"{module}.py"):
        assert node.level == 1 and node.module in MODEL_SIDE, (
            f"{module}.py line {node.lineno} imports from {'.' * node.level}{node.module or ''}")


def test_no_module_imports_the_package_top_level():
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__init__.py":
            continue
        for node in _relative_imports(path):
            assert node.module is not None, f"{path.relative_to(PACKAGE)} line {node.lineno}: 'from {'.' * node.level} import'"
        absolute = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, (ast.Import, ast.ImportFrom))
                    and not getattr(n, "level", 0)]
        for node in absolute:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            assert "gptnas_hf" not in names, f"{path.relative_to(PACKAGE)} line {node.lineno} imports gptnas_hf"


def test_importing_the_package_loads_neither_the_search_nor_the_corpora():
    script = ("import sys, gptnas_hf; print(sorted(m for m in sys.modules if m.split('.')[:2] in "
              "(['gptnas_hf', 'search'], ['gptnas_hf', 'corpora'], ['gptnas_hf', 'training'], ['gptnas_hf', 'hub'], "
              "['datasets'])))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={"HF_HUB_OFFLINE": "1", "PATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_no_code_inside_the_shipped_checkpoint():
    assert not list((PACKAGE / "checkpoints").rglob("*.py"))
