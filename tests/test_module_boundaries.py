"""The boundaries between the package's modules, read from their source with ``ast``: no import
circle among gptnas_hf's modules, and no module reaching into another's private names.

Import circles. An edge is every ``import`` / ``from ... import`` of a gptnas_hf module: the
module named and, for ``from package import name``, the submodule ``name`` when there is one.
Module-level imports (inside a module-level ``if`` or ``try`` too) may close no circle at all.
A function-local (lazy) import runs after both modules are loaded, so it cannot break the import
order, but a circle through it still ties two modules to each other; it may close a circle only
where :data:`LAZY_CIRCLE_EDGES` lists it with its reason. The parent packages Python imports
before a submodule are not edges (``tests/test_layering.py`` keeps modules from importing the
package's top level).

Private names. A module does not import another gptnas_hf module's ``_name``
(``from .x import _name``) nor read one through it (``x._name``, or ``Name._name`` of a name it
imported from there). Dunders are not private names."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gptnas_hf"

#: (importer, imported): lazy imports allowed to close a circle, with the reason
LAZY_CIRCLE_EDGES = {
    ("gptnas_hf.search.strategies", "gptnas_hf.search.regularized_evolution"):
        "the strategy registry loads its built-in 'rea', which registers itself with the registry's decorator",
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom) -> str | None:
    """The absolute name ``from ... import`` reads from."""
    if not node.level:
        return node.module
    base = module.split(".")
    if MODULES[module].name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> list[tuple[ast.AST, str, list[str], bool]]:
    """``(node, source module, {local name: imported name}, lazy)`` of every import of a
    gptnas_hf module in ``module``."""
    tree = ast.parse(MODULES[module].read_text())
    lazy_nodes = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                  for n in ast.walk(f)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _resolve(module, node)
            if source in MODULES:
                out.append((node, source, {a.asname or a.name: a.name for a in node.names}, id(node) in lazy_nodes))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    out.append((node, alias.name, {}, id(node) in lazy_nodes))
    return out


def _edges(lazy: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for _, source, names, is_lazy in _imports(module):
            if is_lazy and not lazy:
                continue
            targets = {source} | {f"{source}.{name}" for name in names.values() if f"{source}.{name}" in MODULES}
            graph[module] |= targets - {module}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_module_level_imports_close_no_circle():
    assert _circles(_edges(lazy=False)) == []


def test_lazy_imports_close_no_circle_but_the_listed_ones():
    graph = _edges(lazy=True)
    for importer, imported in LAZY_CIRCLE_EDGES:
        assert imported in graph[importer], f"{importer} no longer imports {imported}: drop it from LAZY_CIRCLE_EDGES"
        graph[importer].discard(imported)
    assert _circles(graph) == []


def test_the_checks_see_a_circle_and_a_lazy_edge():
    graph = _edges(lazy=True)
    assert "gptnas_hf.search.regularized_evolution" in graph["gptnas_hf.search.strategies"]
    assert "gptnas_hf.search.strategies" in graph["gptnas_hf.search.regularized_evolution"]
    assert "gptnas_hf.search.regularized_evolution" not in _edges(lazy=False)["gptnas_hf.search.strategies"]
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_reaches_into_another_modules_private_names(module):
    tree = ast.parse(MODULES[module].read_text())
    problems = []
    foreign: dict[str, str] = {}  # local name -> the other module it came from (the module itself or one of its names)
    for node, source, names, _ in _imports(module):
        if source == module:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == source:
                    foreign[alias.asname or alias.name.split(".")[0]] = source
            continue
        for local, name in names.items():
            if _private(name) and f"{source}.{name}" not in MODULES:
                problems.append(f"line {node.lineno}: from {source} import {name}")
            foreign[local] = f"{source}.{name}" if f"{source}.{name}" in MODULES else source
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                and node.value.id in foreign and foreign[node.value.id] != module):
            problems.append(f"line {node.lineno}: {node.value.id}.{node.attr} (of {foreign[node.value.id]})")
    assert not problems, f"{module} reaches into private names: " + "; ".join(problems)
