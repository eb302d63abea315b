"""The package's import graph, built from the source (every import, lazy ones inside functions included), has no
cycle: a module's dependencies can be read, tested and replaced without pulling in the modules that use it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    mods = {_module(p): p for p in (SRC / "mira_select").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if sub in mods else target)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[mod] = {d for d in deps if d in mods and d != mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 40 and graph["mira_select.stages.label"]  # the graph is really built
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_bench_does_not_import_tests():
    """Benchmarks are product measurements: they may use the package and bench helpers, never test fixtures."""
    offenders = [p.name for p in (ROOT / "bench").glob("*.py")
                 if re.search(r"^\s*(from|import)\s+tests\b", p.read_text(), re.M)]
    assert offenders == []


def test_the_declared_test_dependencies_are_what_make_installs():
    """conftest's strict check (missing dependency = failed run) knows the same extras the Makefile installs."""
    from .conftest import TEST_EXTRAS, TEST_PACKAGES

    make = (ROOT / "Makefile").read_text()
    installed = re.search(r"^TEST_EXTRAS\s*:=\s*([a-z,]+)$", make, re.M).group(1).split(",")
    assert "pip install --quiet -e '.[$(TEST_EXTRAS)]'" in make
    assert sorted(installed) == sorted(TEST_EXTRAS)
    for pkg in TEST_PACKAGES:
        assert f"{pkg}==" in make
    assert "MIRA_STRICT_DEPS=1" in make


def test_a_missing_declared_dependency_is_reported(monkeypatch):
    from . import conftest

    monkeypatch.setattr(conftest, "TEST_PACKAGES", ("no-such-package-for-mira",))
    assert "no-such-package-for-mira" in conftest.missing_test_dependencies()
