"""Every benchmark script still imports: they are not run by the test suite, so a renamed module would otherwise
break them silently."""

import importlib.util

import pytest

from .conftest import REPO_ROOT

SCRIPTS = sorted((REPO_ROOT / "benchmarks").glob("*.py"))


def _load(stem):
    spec = importlib.util.spec_from_file_location(f"benchmark_{stem}", REPO_ROOT / "benchmarks" / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports only; main() runs under `python benchmarks/<name>.py`
    return module


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_a_benchmark_imports_and_has_a_main(script):
    module = _load(script.stem)
    assert callable(getattr(module, "main", None)), f"{script.name} has no main()"
    assert module.__doc__ and "benchmarks/" in module.__doc__, f"{script.name}: the docstring gives its command"


def test_size_curve_reads_the_headline_comparison_and_projects_its_interval(tmp_path):
    import json

    import pandas as pd
    from scipy import stats

    size_curve = _load("size_curve")
    for profile, seeds, minutes, sd in [("quick", 3, 6.0, 0.02), ("full", 10, 60.0, 0.01)]:
        folder = tmp_path / profile / "02_drp"
        folder.mkdir(parents=True)
        (folder / "provenance.json").write_text(json.dumps({"profile": profile, "kernel_wall_time_s": minutes * 60}))
        pd.DataFrame([{"claim_id": "ccle_beats_deepdra", "metric": "roc_auc", "pairs": seeds, "difference": 0.01,
                       "sd": sd, "ci_low": -0.01, "ci_high": 0.03,
                       "evidence": "cross-attention (paper protocol) ties with DeepDRA in roc_auc (paired ...)"},
                      {"claim_id": "ccle_beats_deepdra", "metric": "roc_auc", "pairs": seeds, "difference": 0.5,
                       "sd": sd, "ci_low": 0.4, "ci_high": 0.6,
                       "evidence": "cross-attention (leakage-free protocol) beats DeepDRA in roc_auc (paired ...)"}],
                     ).to_csv(folder / "claims_evidence.csv", index=False)
    table = size_curve.size_curve([tmp_path / "quick", tmp_path / "full"], [5, 20])
    measured = table[table["kind"] == "measured"].set_index("profile")
    assert list(measured["seeds"]) == [3, 10] and measured["ci_width"].tolist() == pytest.approx([0.04, 0.04])
    assert measured.loc["full", "comparison"] == "cross-attention (paper protocol) ties with DeepDRA in roc_auc"
    projected = table[table["kind"] == "projected"].set_index("seeds")  # from the largest run: full, sd 0.01
    assert projected.loc[20, "ci_width"] == pytest.approx(2 * stats.t.ppf(0.975, 19) * 0.01 / 20 ** 0.5)
    assert projected.loc[5, "minutes"] == pytest.approx(30.0)
