"""The shape the package keeps: short functions (a long one is stages that want names)."""

from __future__ import annotations

import ast
from pathlib import Path

import perturbx

PACKAGE = Path(perturbx.__file__).parent
MAX_FUNCTION_LINES = 60


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """(name, lines) of every function or method in ``source`` longer than ``limit`` lines (decorators and
    docstring included)."""
    return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > limit]


def test_the_check_finds_a_long_function():
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    assert long_functions(f"def f():\n{body}\n") == [("f", 62)]
    assert long_functions("def g():\n    return 1\n") == []


def test_no_function_in_the_package_is_longer_than_60_lines():
    found = [f"{path.relative_to(PACKAGE.parent)}: {name} ({lines} lines)" for path in sorted(PACKAGE.rglob("*.py"))
             for name, lines in long_functions(path.read_text())]
    assert found == [], "cut these into the stages their comments name: " + "; ".join(found)
