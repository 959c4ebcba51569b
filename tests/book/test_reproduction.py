import json

import numpy as np
import pandas as pd
import pytest

from perturbx import papers
from perturbx.book import reproduction
from perturbx.book import BOOK_DIR, RESULTS_DIR
from perturbx.evaluation.claims import VERDICTS
from perturbx.book.reproduction import Headline, MissingResultError, Results


def write_chapter_results(folder, chapter, tables, profile="quick", device_name="CPU test (2 cores)", data=None,
                          packages=None, models=None):
    (folder / chapter).mkdir(parents=True)
    labels = models if models is not None else {"deepdra": "DeepDRA", "ridge": "ridge", "diffusion": "diffusion"}
    pd.DataFrame({"id": list(labels), "label": list(labels.values())}).to_csv(folder / chapter / "models.csv",
                                                                             index=False)
    for name, table in tables.items():
        table.to_csv(folder / chapter / f"{name}.csv", index=False)
    record = {"title": chapter, "profile": profile, "seed": 0, "seeds": {"main": [0, 1]}, "device": "cpu",
              "device_name": device_name, "commit": "abc123", "finished_utc": "2026-11-22 10:00:00 UTC",
              "kernel_wall_time_s": 1.0, "wall_time_s": 2.5, "packages": packages or {"torch": "2.13.0"},
              "data": data or {"plate": "aa"}, "tables": list(tables)}
    (folder / chapter / "provenance.json").write_text(json.dumps(record))


@pytest.fixture
def results(tmp_path):
    scores = pd.DataFrame({"model": ["DeepDRA", "ridge"], "roc_auc": ["0.900 ± 0.010", "0.800"],
                           "roc_auc_mean": [0.9, 0.8], "roc_auc_sd": [0.01, np.nan], "runs": [3, 1]})
    write_chapter_results(tmp_path, "02_drp", {"cv": scores})
    single = pd.DataFrame({"split": ["random"], "model": ["diffusion"], "spread_ratio": [1.4]})
    write_chapter_results(tmp_path, "04_diffusion", {"samples": single}, profile="full", device_name="GPU H100")
    return Results.load(tmp_path)


def headline(table="cv", row=None, metric="roc_auc", paper_value=0.883, chapter="02_drp", claim=None):
    return Headline("paper", "experiment", "real", chapter, table, row or {"model": "deepdra"}, metric, paper_value,
                    claim)


def test_headline_value_reads_mean_sd_and_runs(results):
    assert reproduction.headline_value(results, headline()) == {"mean": 0.9, "sd": 0.01, "runs": 3}
    single = reproduction.headline_value(results, headline("samples", {"split": "random", "model": "diffusion"},
                                                           "spread_ratio", chapter="04_diffusion"))
    assert single["mean"] == 1.4 and np.isnan(single["sd"]) and single["runs"] == 1


@pytest.mark.parametrize("broken, message", [
    (dict(table="missing"), r"perturbx book run --chapters 02_drp"),
    (dict(row={"model": "nope"}), "models.csv has no model 'nope'"),
    (dict(row={"model": "deepdra", "dataset": "x"}), "no column 'dataset'"),
    (dict(metric="auprc"), "no metric 'auprc'"),
])
def test_a_missing_result_is_named(results, broken, message):
    with pytest.raises(MissingResultError, match=message):
        reproduction.headline_value(results, headline(**broken))


def test_headline_table_sets_ours_beside_the_paper_with_the_chapters_provenance(results):
    table = reproduction.headline_table(results, [headline(), headline(row={"model": "ridge"}, paper_value=None)])
    assert table["ours"].tolist() == ["0.900 ± 0.010", "0.800"]
    assert table["model"].tolist() == ["DeepDRA", "ridge"], "the page shows the chapter's labels"
    assert table.loc[0, "ours − paper"] == pytest.approx(0.9 - 0.883)
    assert np.isnan(table.loc[1, "paper reported"]) and np.isnan(table.loc[1, "ours − paper"])
    assert table.loc[0, "profile"] == "quick" and table.loc[0, "device"] == "CPU test (2 cores)"
    assert table.loc[0, "verdict"] == "" and table.loc[0, "claim"] == "", "no claim named, no verdict"


def test_a_headline_carries_the_verdict_of_the_claim_it_is_evidence_for(tmp_path):
    scores = pd.DataFrame({"model": ["DeepDRA"], "roc_auc": [0.9]})
    claims = pd.DataFrame({"claim_id": ["beats_deepdra", "fast"],
                           "paper": ["p", "p"], "claim": ["Ours beats DeepDRA on CCLE (paper: 0.91)", "Ours is fast"],
                           "data": ["toy"] * 2, "verdict": ["does not hold", "holds"], "evidence": ["x", "y"]})
    write_chapter_results(tmp_path, "02_drp", {"cv": scores, "claims": claims})
    results = Results.load(tmp_path)
    table = reproduction.headline_table(results, [headline(claim="beats_deepdra")])
    assert table.loc[0, "verdict"] == "does not hold"
    assert table.loc[0, "claim"] == "Ours beats DeepDRA on CCLE (paper: 0.91)"
    for missing in ("beats_nobody", "Ours beats DeepDRA"):  # an unknown id; the wording is not an id
        with pytest.raises(MissingResultError, match=f"0 claims with the id '{missing}'"):
            reproduction.headline_table(results, [headline(claim=missing)])


def test_provenance_and_run_time_tables(results, tmp_path):
    chapters = reproduction.provenance_table(results)
    assert chapters.loc["04_diffusion", "device"] == "GPU H100"
    assert chapters.loc["02_drp", "seeds"] == "main: 2" and chapters.loc["02_drp", "wall time (s)"] == 2.5
    pd.DataFrame([
        {"chapter": "02_drp", "status": "ok", "profile": "quick", "device": "cpu", "wall_time_s": 900.0},
        {"chapter": "02_drp", "status": "ok", "profile": "quick", "device": "cpu", "wall_time_s": 800.0},
        {"chapter": "02_drp", "status": "failed", "profile": "full", "device": "cuda", "wall_time_s": 5.0},
        {"chapter": "04_diffusion", "status": "ok", "profile": "full", "device": "cuda", "wall_time_s": 300.0},
    ]).to_csv(tmp_path / "runs.csv", index=False)
    times = reproduction.run_times(results)
    assert times.loc["02_drp", "quick on cpu"] == 800.0, "the latest successful run"
    assert times.loc["04_diffusion", "full on cuda"] == 300.0
    assert np.isnan(times.loc["02_drp", "full on cuda"]), "a failed run has no time"


def test_table_index_lists_every_registered_table(results):
    index = reproduction.table_index(results)
    assert index[["chapter", "table", "rows"]].values.tolist() == [["02_drp", "cv", 2], ["04_diffusion", "samples", 1]]
    assert index.loc[0, "csv"] == "02_drp/cv.csv" and index.loc[0, "columns"] == 5


def test_data_and_package_tables(tmp_path):
    write_chapter_results(tmp_path, "01_a", {}, data={"plate": "aa", "genes": "bb"})
    write_chapter_results(tmp_path, "02_b", {}, data={"plate": "aa"})
    results = Results.load(tmp_path)
    data = reproduction.data_table(results)
    assert data.loc["plate", "chapters"] == "01_a, 02_b" and data.loc["genes", "sha256"] == "bb"
    assert list(reproduction.package_table(results).columns) == ["every chapter"]
    write_chapter_results(tmp_path, "03_c", {}, data={"plate": "zz"}, packages={"torch": "2.14.0"})
    results = Results.load(tmp_path)
    with pytest.raises(ValueError, match="plate: chapter 03_c verified sha256 zz"):
        reproduction.data_table(results)
    assert list(reproduction.package_table(results).columns) == ["01_a", "02_b", "03_c"]


def test_every_headline_is_found_in_the_books_results():
    """The published Reproduction page can be rebuilt: every headline points at a table, row and metric that the
    last run of its chapter wrote."""
    assert RESULTS_DIR == BOOK_DIR / "results"
    results = Results.load()
    for item in reproduction.HEADLINES:
        value = reproduction.headline_value(results, item)
        assert np.isfinite(value["mean"]), item
    claims = reproduction.claims_table(results)
    verdicts = [reproduction.headline_verdict(claims, item)[1] for item in reproduction.HEADLINES]
    assert set(verdicts) - {""} <= set(VERDICTS) and len(set(verdicts) - {""}) > 1
    drp = [h for h in reproduction.HEADLINES if h.paper_value is not None]
    assert {h.metric for h in drp} == {"roc_auc", "auprc"} and len(drp) == 8
    # the paper's CCLE numbers sit beside the paper's protocol only
    assert {h.table for h in drp if h.experiment == "CTRP+GDSC -> CCLE"} == {"ccle_paper_protocol"}


def test_headlines_name_models_and_claims_by_id_and_take_the_papers_numbers_by_id():
    """HEADLINES are keyed by model ids of the chapters' registries (the page takes the labels from models.csv),
    the paper's number comes from papers.DRP_REPORTED by id, and each paper's rows point at its chapter."""
    from perturbx.studies import drug_response, graph_model, generative, signatures

    registries = {papers.DRP.title: drug_response.MODELS, papers.GRAPH.title: graph_model.MODELS,
                  papers.DIFFUSION.title: generative.MODELS}
    chapters = {p.title: p.chapter for p in papers.PAPERS}
    for item in reproduction.HEADLINES:
        assert item.chapter == chapters[item.paper], item
        registry = signatures.MODELS if item.table == "consensus_results" else registries[item.paper]
        assert item.row["model"] in registry.ids(), item
    by_id = {(h.experiment, h.row["model"], h.metric): h.paper_value for h in reproduction.HEADLINES}
    assert by_id[("5-fold CV on CTRP+GDSC", "deepdra", "roc_auc")] == \
        papers.DRP_REPORTED["5-fold CV on CTRP+GDSC"]["deepdra"]["roc_auc"]
    assert by_id[("CTRP+GDSC -> CCLE", "cross_attention", "auprc")] == \
        papers.drp_reported("CTRP+GDSC -> CCLE", "cross_attention", "auprc")
    assert by_id[("CTRP+GDSC -> CCLE", "drug_cell_prior", "roc_auc")] is None  # the paper has no priors
    assert ("random split", "true_distribution", "spread_ratio") in by_id
    assert papers.drp_reported("5-fold CV on CTRP+GDSC", "DeepDRA", "roc_auc") is None  # a label is not an id


def test_headline_dots_draws_one_panel_per_group_with_paper_crosses():
    import matplotlib

    matplotlib.use("Agg")
    from perturbx.plots import headline_dots

    table = pd.DataFrame({"experiment": ["cv", "cv", "ccle"], "model": ["a", "b", "a"], "metric": ["auc"] * 3,
                          "ours (mean)": [0.9, 0.8, 0.7], "ours (sd)": [0.01, np.nan, 0.02],
                          "paper reported": [0.95, np.nan, np.nan]})
    fig = headline_dots(table, "title", panel="experiment")
    first, second = fig.axes
    assert [t.get_text() for t in first.get_yticklabels()] == ["a", "b"]
    assert first.get_title() == "cv" and second.get_title() == "ccle"
    assert "paper (reported)" in first.get_legend_handles_labels()[1]
    assert "paper (reported)" not in second.get_legend_handles_labels()[1]


def test_claims_table_collects_every_chapters_claims(tmp_path):
    claims = pd.DataFrame({"paper": ["p"], "claim": ["m beats b"], "data": ["toy"], "verdict": ["partly"],
                           "evidence": ["x; y"]})
    write_chapter_results(tmp_path, "03_gnn", {"claims": claims, "other": pd.DataFrame({"a": [1]})})
    write_chapter_results(tmp_path, "02_drp", {"other": pd.DataFrame({"a": [1]})})
    table = reproduction.claims_table(Results.load(tmp_path))
    assert list(table["chapter"]) == ["03_gnn"] and table.loc[0, "verdict"] == "partly"
    assert table.loc[0, "commit"] == "abc123"
    assert reproduction.claims_table(Results.load(tmp_path / "02_drp")).empty


def test_run_box_gives_the_command_measured_times_memory_and_data(results, tmp_path):
    pd.DataFrame([
        {"chapter": "02_drp", "status": "ok", "profile": "quick", "device": "cpu", "wall_time_s": 900.0},
        {"chapter": "02_drp", "status": "ok", "profile": "smoke", "device": "cpu", "wall_time_s": 60.0},
        {"chapter": "02_drp", "status": "failed", "profile": "full", "device": "cuda", "wall_time_s": 5.0},
    ]).to_csv(tmp_path / "runs.csv", index=False)
    record = json.loads((tmp_path / "02_drp" / "provenance.json").read_text()) | {"peak_memory_mb": 3072.0}
    (tmp_path / "02_drp" / "provenance.json").write_text(json.dumps(record))
    box = reproduction.run_box(Results.load(tmp_path), "02_drp", sizes_mb={"plate": 12.4})
    assert "`perturbx book run --chapters 02_drp --profile quick`" in box
    assert "quick on cpu: 15.0 min" in box and "smoke on cpu: 1.0 min" in box and "full on cuda" not in box
    assert "3.0 GB" in box and "1 registered files, 12 MB" in box
    assert "`quick` the same experiments at a smaller size" in box and "inconclusive here, at most 10 min on 2 CPU" in box
    assert "`full` the published tables, at most 90 min on 2 CPU cores, 10 min on one GPU" in box


def test_a_running_chapter_does_not_read_its_own_previous_results(tmp_path, monkeypatch):
    write_chapter_results(tmp_path, "02_drp", {})
    write_chapter_results(tmp_path, "05_reproduction", {})
    assert set(Results.load(tmp_path).provenance) == {"02_drp", "05_reproduction"}
    monkeypatch.setenv("PERTURBX_CHAPTER_RESULTS", str(tmp_path / ".05_reproduction.tmp-1" / "05_reproduction"))
    assert set(Results.load(tmp_path).provenance) == {"02_drp"}  # its published results are its previous run's


def test_the_reproduction_page_reads_results_not_studies(tmp_path):
    """The page imports no study: labels come from each chapter's models.csv, claims from its claims table."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(reproduction))
    imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert not [name for name in imported if "studies" in name], imported
    write_chapter_results(tmp_path, "02_drp", {"cv": pd.DataFrame({"model": ["DeepDRA"], "roc_auc": [0.9]})})
    (tmp_path / "02_drp" / "models.csv").unlink()
    with pytest.raises(MissingResultError, match="no .*models.csv: run `perturbx book run --chapters 02_drp`"):
        reproduction.headline_value(Results.load(tmp_path), headline())


def test_budget_table_checks_each_latest_run_against_its_profiles_budget():
    runs = pd.DataFrame([
        {"chapter": "02_drp", "status": "ok", "profile": "quick", "device": "cpu", "wall_time_s": 1200.0},
        {"chapter": "02_drp", "status": "ok", "profile": "quick", "device": "cpu", "wall_time_s": 540.0},
        {"chapter": "02_drp", "status": "failed", "profile": "full", "device": "cuda", "wall_time_s": 5.0},
        {"chapter": "03_gnn", "status": "ok", "profile": "full", "device": "cuda", "wall_time_s": 900.0},
        {"chapter": "03_gnn", "status": "ok", "profile": "quick", "device": "cuda", "wall_time_s": 60.0},
    ]).assign(commit="abc", device_name="test")
    table = reproduction.budget_table(runs).set_index(["chapter", "profile", "device"])
    assert table.loc[("02_drp", "quick", "cpu"), "minutes"] == 9.0, "the latest run counts"
    assert bool(table.loc[("02_drp", "quick", "cpu"), "within budget"])
    assert ("02_drp", "full", "cuda") not in table.index, "failed runs are not measurements"
    assert table.loc[("03_gnn", "full", "cuda"), "budget"] == 10 and not table.loc[("03_gnn", "full", "cuda"),
                                                                                    "within budget"]
    assert pd.isna(table.loc[("03_gnn", "quick", "cuda"), "within budget"]), "quick has no GPU budget"
