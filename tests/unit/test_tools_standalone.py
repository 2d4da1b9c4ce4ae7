"""tools/ and benchmarks/ stand on their own: nothing in them reaches into tests/ (issue 15, item 5).

The test suite may use the tools (tests/conftest.py puts tools/ on sys.path), never the other
way round: a tool or a benchmark that imports a test helper breaks when tests/ changes, and
ships test code wherever the tool goes. Each Python file is read as a syntax tree, so a comment
or a docstring that mentions tests/ is fine; what fails is

- an import of `tests` or of any module that exists only under tests/ (a conftest, a helper
  like `playbook_support`, a package like the fakes once were);
- a change to sys.path (insert, append, extend, assignment) whose value names `tests`;
- loading a file under tests/ as a module (importlib, runpy);
- a path to a Python file under tests/ (`ROOT / "tests" / ... / "x.py"`, "tests/.../x.py"): copying
  or running a test helper is depending on it too (the fleet once ran tests/fakes/voice_server.py).
  Other files under tests/ are data (ansible-test reads its ignores from tests/sanity/).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("tools", "benchmarks")
SKIP_DIRS = {"__pycache__", "results"}
TEST_FILE = re.compile(r"^(?:.*/)?tests/\S*\.py$")
LOADERS = {"spec_from_file_location", "SourceFileLoader", "run_path", "load_source"}


def python_files(*tops: str) -> list[Path]:
    return sorted(
        path
        for top in tops
        for path in (ROOT / top).rglob("*.py")
        if not SKIP_DIRS & set(path.relative_to(ROOT).parts)
    )


def module_names(top: Path) -> set[str]:
    """Every name under `top` that an import could mean once some folder of it is on sys.path."""
    names = {top.name}
    for path in top.rglob("*"):
        if path.suffix == ".py":
            names.add(path.stem)
        elif path.is_dir() and (path / "__init__.py").exists():
            names.add(path.name)
    return names - {"__init__"}


# Names that tests/ provides and tools/ or benchmarks/ do not (a tool's own `stack` stays its own).
TEST_ONLY = module_names(ROOT / "tests") - set().union(*(module_names(ROOT / top) for top in SCANNED)) | {
    "tests"
}


def names_tests(node: ast.AST) -> bool:
    """True when an expression spells a path into tests/: ROOT / "tests", "tests/...", ".../tests"."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            parts = sub.value.replace("\\", "/").strip("/").split("/")
            if "tests" in parts:
                return True
    return False


def is_sys_path(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "path"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
    )


def python_file_in_tests(node: ast.AST, parent: ast.AST | None) -> bool:
    """A whole path expression (not a docstring) that ends in a .py file under tests/."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and not isinstance(parent, ast.BinOp):
        last = node.right
        is_py = isinstance(last, ast.Constant) and isinstance(last.value, str) and last.value.endswith(".py")
        return is_py and names_tests(node)
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and not isinstance(parent, ast.Expr):
        return bool(TEST_FILE.search(node.value))
    return False


def reaches_tests(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for every place in a module's syntax tree that reaches into tests/."""
    found = []
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if python_file_in_tests(node, parents.get(node)):
            found.append((node.lineno, f"{ast.unparse(node)} is a Python file under tests/"))
        if isinstance(node, ast.Import):
            found += [
                (node.lineno, f"import {a.name}") for a in node.names if a.name.split(".")[0] in TEST_ONLY
            ]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in TEST_ONLY:
                found.append((node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            func = node.func
            edits_path = is_sys_path(func.value) and func.attr in ("insert", "append", "extend")
            loads_file = func.attr in LOADERS
            if (edits_path or loads_file) and any(names_tests(arg) for arg in node.args):
                found.append((node.lineno, f"{ast.unparse(func)}(...) names tests/"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in LOADERS:
            if any(names_tests(arg) for arg in node.args):
                found.append((node.lineno, f"{node.func.id}(...) names tests/"))
        elif isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(is_sys_path(t) for t in targets) and names_tests(node.value):
                found.append((node.lineno, "sys.path = ... names tests/"))
    return found


@pytest.mark.parametrize("path", python_files(*SCANNED), ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_outside_tests_reaches_into_tests(path: Path):
    found = reaches_tests(ast.parse(path.read_text(), filename=str(path)))
    where = "\n".join(f"  {path.relative_to(ROOT)}:{line}: {what}" for line, what in found)
    assert not found, f"reaches into tests/ (move what it needs out of tests/, e.g. to tools/):\n{where}"


@pytest.mark.parametrize(
    "source",
    [
        "import tests.fakes.audio",
        "from conftest import ROOT",
        "from playbook_support import run_play",
        "sys.path.insert(0, str(ROOT / 'tests'))",
        "sys.path.append('tests/fakes')",
        "sys.path += [str(ROOT / 'tests' / 'e2e')]",
        "spec = importlib.util.spec_from_file_location('x', ROOT / 'tests' / 'local_play.py')",
        "SERVER = ROOT / 'tests' / 'fakes' / 'voice_server.py'",
        "subprocess.run(['python3', 'tests/fakes/voice_server.py'])",
    ],
)
def test_the_scan_sees_each_way_in(source: str):
    assert reaches_tests(ast.parse(source)), source


@pytest.mark.parametrize(
    "source",
    [
        '"""Runs like the tests/e2e fixtures do."""',
        "from stack import read_env_file",
        "from fakes.audio import FakeAudioBackend",
        "sys.path.insert(0, str(ROOT / 'tools'))",
        "IGNORES = ROOT / 'tests' / 'sanity' / 'ignore-2.19.txt'",  # data ansible-test reads there
        "SERVER = ROOT / 'tools' / 'fakes' / 'voice_server.py'",
    ],
)
def test_the_scan_lets_the_rest_be(source: str):
    assert not reaches_tests(ast.parse(source)), source
