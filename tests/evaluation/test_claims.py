import pandas as pd
import pytest

from perturbx.evaluation.claims import (
    Claim,
    Evidence,
    claims_markdown,
    claims_table,
    claims_text,
    evidence_table,
    verdict,
)
from perturbx.evaluation.metrics import compare_models


def _runs(model_values, baseline_values):
    return pd.DataFrame([{"seed": s, "model": "m", "r": v} for s, v in enumerate(model_values)]
                        + [{"seed": s, "model": "b", "r": v} for s, v in enumerate(baseline_values)])


def test_verdict_from_evidence():
    yes, no, unknown = Evidence("a", True), Evidence("b", False), Evidence("c", None)
    assert verdict([yes, yes]) == "holds"
    assert verdict([no, unknown]) == "does not hold"
    assert verdict([yes, no]) == "partly"
    assert verdict([unknown]) == verdict([]) == "undecided"


def test_evidence_from_comparison_and_bound():
    win = Evidence.from_comparison(compare_models(_runs([0.6, 0.7, 0.65], [0.5, 0.6, 0.55]), "m", "b", "r"))
    assert win.supports is True and "beats" in win.text and "b in r" in win.text
    labelled = Evidence.from_comparison(compare_models(_runs([0.6, 0.7, 0.65], [0.5, 0.6, 0.55]), "m", "b", "r"),
                                        label={"m": "Model M", "b": "Baseline B"}.get)
    assert labelled.text.startswith("Model M beats Baseline B in r ("), "texts show labels, runs hold ids"
    one = Evidence.from_comparison(compare_models(_runs([0.9], [0.1]), "m", "b", "r"))
    assert one.supports is None
    assert Evidence.bound("relative change", 0.01, 0.02).supports is True
    assert Evidence.bound("relative change", 0.03, 0.02).supports is False
    assert Evidence.bound("share of ceiling", 0.7, 0.6, below=False).supports is True


def test_claims_table_carries_the_computed_verdict():
    claim = Claim("c1", "paper", "m beats b", "toy", (Evidence("x", True), Evidence("y", False)))
    table = claims_table([claim])
    assert table.loc[0, "verdict"] == "partly" and table.loc[0, "evidence"] == "x; y"


def test_evidence_table_gives_each_comparison_as_numbers_and_bounds_as_text_only():
    comparison = compare_models(_runs([0.6, 0.7, 0.65], [0.5, 0.6, 0.56]), "m", "b", "r")
    claim = Claim("c1", "paper", "m beats b", "toy",
                  (Evidence.from_comparison(comparison), Evidence.bound("share", 0.7, 0.6, below=False)))
    table = evidence_table([claim])
    assert list(table["claim_id"]) == ["c1", "c1"] and list(table["supports"]) == [True, True]
    first = table.iloc[0]
    assert (first["model"], first["baseline"], first["metric"], first["pairs"], first["wins"]) == ("m", "b", "r", 3, 3)
    assert first["difference"] == pytest.approx(0.0966667) and first["ci_low"] < first["difference"] < first["ci_high"]
    assert table.iloc[1]["evidence"].startswith("share: 0.700") and pd.isna(table.iloc[1]["difference"])


def test_claims_markdown_lists_verdict_claim_data_and_result():
    table = claims_table([Claim("c2", "P", "A beats B", "toy data, 3 seeds",
                                (Evidence("A beats B (+0.04)", True), Evidence("A ties with C", False)))])
    text = claims_markdown(table)
    assert text.startswith("*Data and scale:* toy data, 3 seeds\n\n- **partly**: A beats B\n")
    assert "*Our result:* A beats B (+0.04); A ties with C" in text
    two = claims_table([Claim("c3", "P", "A beats B", "set 1"), Claim("c4", "P", "C beats D", "set 2")])
    assert "  - *Data:* set 2" in claims_markdown(two) and "Data and scale" not in claims_markdown(two)


def test_claims_text_puts_each_finding_on_its_own_line():
    table = claims_table([Claim("c5", "P", "A beats B", "toy", (Evidence("A beats B (+0.04)", True),
                                                          Evidence("A ties with C", False))),
                          Claim("c6", "P", "C beats D", "toy")])
    assert claims_text(table) == ("[PARTLY] A beats B\n    A beats B (+0.04)\n    A ties with C\n"
                                  f"[{table.loc[1, 'verdict'].upper()}] C beats D\n    ")


def test_a_claim_has_a_stable_id_that_the_table_carries_and_that_must_be_unique():
    table = claims_table([Claim("beats_b", "P", "A beats B", "toy"), Claim("fast", "P", "A is fast", "toy")])
    assert table["claim_id"].tolist() == ["beats_b", "fast"] and table.columns[0] == "claim_id"
    with pytest.raises(ValueError, match="repeated: \\['beats_b'\\]"):
        claims_table([Claim("beats_b", "P", "A beats B", "toy"), Claim("beats_b", "P", "A beats C", "toy")])
    with pytest.raises(ValueError, match="claim id 'A beats B'"):
        Claim("A beats B", "P", "A beats B", "toy")
