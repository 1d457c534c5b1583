"""The layout's rules, checked on the source: commands on top that nothing imports, leaves that import
neither Lightning nor (for CSV checking) torch, and no import cycle between the modules of `src`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
#: The commands (`python -m ...`): thin shells over the library; no module of `src` imports them.
COMMANDS = {
    "src.cli",
    "src.predict",
    "src.export",
    "src.serve",
    "src.sweep",
    "src.lr_find",
    "src.cross_validate",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def src_imports(path: Path) -> list[tuple[str, bool]]:
    """The `src.*` modules imported by the file at `path`, each with whether the import runs at module
    level (not inside a function); imports under `if TYPE_CHECKING:` are left out."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test) == "TYPE_CHECKING":
                continue  # for the type checker only; never runs
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom) and child.module and child.module.startswith("src"):
                found.append((child.module, top))
            elif isinstance(child, ast.Import):
                found.extend((alias.name, top) for alias in child.names if alias.name.startswith("src"))
            visit(child, inner)

    visit(ast.parse(path.read_text()), True)
    return found


MODULES = {module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def test_no_module_imports_a_command():
    importers = {
        name: sorted({imported for imported, _ in src_imports(path) if imported in COMMANDS})
        for name, path in MODULES.items()
    }
    assert {name: found for name, found in importers.items() if found} == {}


def test_modules_import_each_other_at_module_level_only():
    """A function-level import of a `src` module would hide a cycle (only the lazy package
    `__getattr__`s of `src.data` and `src.models` import on first use)."""
    hidden = {
        name: sorted(imported for imported, top in src_imports(path) if not top)
        for name, path in MODULES.items()
    }
    assert {name: found for name, found in hidden.items() if found} == {}


def test_no_import_cycle():
    graph = {
        name: {imported for imported, _ in src_imports(path) if imported in MODULES}
        for name, path in MODULES.items()
    }
    # A package's `__init__` re-exports its modules; the cycle rule is about the modules themselves.
    graph = {name: {m for m in deps if MODULES[m].name != "__init__.py"} for name, deps in graph.items()}
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def walk(name: str, stack: list[str]) -> None:
        state[name] = "open"
        for dep in sorted(graph[name]):
            if state.get(dep) == "open":
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                walk(dep, [*stack, dep])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])
    assert cycles == []


@pytest.mark.parametrize(
    ("module", "not_imported"),
    [
        ("src.models.components", ["lightning"]),
        ("src.data.images", ["lightning"]),
        ("src.data.decode", ["lightning"]),
        ("src.data.csv_lists", ["lightning", "torch"]),
        ("src.data.labels", ["lightning", "torch"]),
        ("src.files", ["lightning", "torch"]),
        ("src.errors", ["lightning", "torch"]),
    ],
)
def test_leaves_do_not_import_the_frameworks(module, not_imported):
    code = f"import sys, {module}; print(' '.join(m for m in {not_imported!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=SRC.parent, check=True
    )
    assert out.stdout.strip() == ""


def test_no_src_file_is_long():
    lengths = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {name: n for name, n in lengths.items() if n > 300} == {}
