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


# --------------------------------------------------------------------------------------------------- layering

MAX_MODULE_LINES = 600
# Each module's layer; a module imports only from its own layer or lower ones (lazy imports included).
LAYERS = {
    "runtime": 0, "profiles": 0, "papers": 0, "chem": 0, "pathways": 0, "__init__": 0,
    "datasets": 1,
    "tasks": 2, "splits": 2,
    "models": 3, "training": 3,
    "evaluation": 4,
    "studies": 5,
    "book": 6, "plots": 6,
    "cli": 7, "sphinxext": 7,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    return LAYERS[top]


def package_imports(path: Path) -> set[str]:
    """Every perturbx module ``path`` imports, at the top or inside a function."""
    module, found = module_name(path), set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            names = [f"{target}.{a.name}" for a in node.names]
            found |= {n if (PACKAGE.parent / n.replace(".", "/")).with_suffix(".py").exists()
                      or (PACKAGE.parent / n.replace(".", "/")).is_dir() else target for n in names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m == "perturbx" or m.startswith("perturbx.")} - {module}


def test_every_import_goes_down_the_layers():
    upward = [f"{module_name(path)} (layer {layer_of(module_name(path))}) imports {target} "
              f"(layer {layer_of(target)})"
              for path in sorted(PACKAGE.rglob("*.py")) for target in sorted(package_imports(path))
              if target != "perturbx" and layer_of(target) > layer_of(module_name(path))]
    assert upward == [], "; ".join(upward)


def test_the_package_has_no_import_cycles():
    graph = {module_name(p): {t for t in package_imports(p) if t != "perturbx"} for p in PACKAGE.rglob("*.py")}
    import graphlib

    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None


def test_no_module_is_longer_than_600_lines():
    long = [f"{path.relative_to(PACKAGE.parent)} ({n} lines)" for path in sorted(PACKAGE.rglob("*.py"))
            if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES]
    assert long == [], "split these by what they do: " + "; ".join(long)
