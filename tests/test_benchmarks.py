"""Every benchmark script still imports: they are not run by the test suite, so a renamed module would otherwise
break them silently."""

import importlib.util

import pytest

from .conftest import REPO_ROOT

SCRIPTS = sorted((REPO_ROOT / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_a_benchmark_imports_and_has_a_main(script):
    spec = importlib.util.spec_from_file_location(f"benchmark_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports only; main() runs under `python benchmarks/<name>.py`
    assert callable(getattr(module, "main", None)), f"{script.name} has no main()"
    assert module.__doc__ and "benchmarks/" in module.__doc__, f"{script.name}: the docstring gives its command"
