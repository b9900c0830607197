"""The house rules, checked on the source (docs/architecture.md): modules of one concern under 450 lines with a
docstring, no import cycle among project modules (function-level imports included), the engine never imports
streamlit and no page imports torch."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ganlab", "ui")
MAX_LINES = 450


def modules() -> dict[str, Path]:
    """Project module name -> file, for ganlab/ and ui/."""
    return {".".join(p.relative_to(ROOT).with_suffix("").parts): p
            for pkg in PACKAGES for p in sorted((ROOT / pkg).glob("*.py"))}


def imported(path: Path, name: str) -> set[str]:
    """Every module `path` imports anywhere in it (top level, in functions, under TYPE_CHECKING), resolved."""
    package = name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:       # from .x import y: relative to this module's package (level 1 = the package)
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)   # `from ganlab import data`
    return found


def project_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: {m for m in imported(path, name) if m in mods and m != name} for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}          # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_among_project_modules():
    assert find_cycle(project_graph()) is None, " -> ".join(find_cycle(project_graph()) or [])


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_is_short_and_says_what_it_is_for(name):
    path = modules()[name]
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines < MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it by concern"
    if path.name != "__init__.py" or path.stat().st_size:
        assert ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))), f"{name} has no docstring"


def test_the_engine_never_imports_streamlit_and_no_page_imports_torch():
    for name, path in modules().items():
        if name.startswith("ganlab."):
            assert not {m for m in imported(path, name) if m.split(".")[0] == "streamlit"}, name
    for path in [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]:
        assert not {m for m in imported(path, "pages.x") if m.split(".")[0] == "torch"}, path.name
