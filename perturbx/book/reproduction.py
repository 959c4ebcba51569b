"""The book's Reproduction page: every headline number, where it came from, and how long each chapter took.

It reads only what the runner wrote (``book/results/<chapter>/<table>.csv``, ``provenance.json``, ``models.csv``
and ``runs.csv``; see :mod:`perturbx.book`), so the page can never show a number that a chapter did not compute.
A headline names its model by id and its claim by claim id; the chapter's ``models.csv`` gives the label its
tables show, and its ``claims`` table the claim with that id.
The papers' reported numbers appear only in the column ``paper reported`` (from :data:`perturbx.papers.DRP_REPORTED`;
the two L1000 papers report none that match an experiment of this book).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import papers
from .chapter import CLAIMS_TABLE, MODELS_FILE, PROVENANCE_FILE, RESULTS_DIR, RESULTS_ENV, RUNS_LOG
from ..datasets import registry
from ..evaluation.metrics import format_mean_sd
from ..profiles import PROFILE_BUDGETS, PROFILE_PURPOSES


@dataclass(frozen=True)
class Headline:
    """One number of the Reproduction page: ``metric`` in the row of ``chapter``'s table ``table`` where every
    column of ``row`` has the given value (``row["model"]`` is a model id; the table shows its label, from the
    chapter's ``models.csv``). The table holds ``<metric>_mean`` and ``<metric>_sd`` over runs (or ``<metric>`` for
    a single run). ``claim`` is the id of the claim in the chapter's ``claims`` table that this number is evidence
    for (None for a ceiling or a baseline no claim is about)."""

    paper: str
    experiment: str
    data: str
    chapter: str
    table: str
    row: dict[str, str] = field(hash=False)
    metric: str
    paper_value: float | None = None
    claim: str | None = None


def _drp(experiment: str, table: str, model_id: str, metric: str, shown_as: str | None = None) -> Headline:
    """A drug-response headline; ``shown_as`` names the experiment on the page when it differs from the paper's
    (our protocol's rows carry no paper number)."""
    return Headline(papers.DRP.title, shown_as or experiment, "real: DeepDRA labels, GDSC omics, RDKit drug features",
                    papers.DRP.chapter, table, {"model": model_id}, metric,
                    None if shown_as else papers.drp_reported(experiment, model_id, metric),
                    _DRP_CLAIMS[experiment].get(model_id))


# Which claim of chapter 02 each drug-response row bears on (by experiment, then model id); the CCLE claims are
# decided under both protocols.
_DRP_CLAIMS = {
    "5-fold CV on CTRP+GDSC": dict.fromkeys(("deepdra", "cross_attention"), "cv_beats_deepdra"),
    "CTRP+GDSC -> CCLE": dict.fromkeys(("deepdra", "cross_attention"), "ccle_beats_deepdra")
    | {"drug_prior": "ccle_beyond_drug_prior"},
}


_L1000_DATA = {
    "consensus": "real: DrugBank consensus signatures, scaffold-grouped folds",
    "replicates": "real: SKBR3 dose x time plate with replicate wells",
    "simulated": "semi-synthetic: LINCS-scale simulator (real basal profiles and structures, known responses)",
}
_L1000_TABLES = {"consensus": "consensus_results", "replicates": "replicate_results", "simulated": "simulated_results"}


def _expression(paper: papers.Paper, dataset: str, split: str | None, model_id: str, metric: str) -> Headline:
    row = {"model": model_id} | ({"split": split} if split is not None else {})
    claim = (_graph_claim(split, model_id) if paper == papers.GRAPH else _diffusion_claim(model_id, metric))
    return Headline(paper.title, f"{split} split" if split else "5-fold scaffold CV", _L1000_DATA[dataset],
                    paper.chapter, _L1000_TABLES[dataset], row, metric, claim=claim)


_CEILINGS = ("true_mean", "true_distribution", "replicate_ceiling")


def _graph_claim(split: str | None, model_id: str) -> str | None:
    """Chapter 03: rows on compounds never seen in training (unseen-compound split, scaffold CV of the consensus
    signatures) test its generalisation claim, the random split its accuracy claim."""
    if model_id in _CEILINGS:
        return None
    if split in ("unseen compound", None):
        return "generalises_to_unseen"
    return "beats_classical_regressors"


def _diffusion_claim(model_id: str, metric: str) -> str | None:
    """Chapter 04: Pearson rows test the claim on the mean, distance and spread rows the claims on the spread
    (against the single-shot encoder-decoder, or against the cheaper sources of spread)."""
    if model_id in _CEILINGS:
        return None
    if metric == "pearson_change":
        return "mean_beats_cell_line_mean"
    if model_id in ("encoder_decoder_gaussian", "marginal_draws"):
        return "spread_beats_cheaper_sources"
    return "spread_beats_encoder_decoder"


# The page's rows, in reading order. The L1000 papers give no numbers for these experiments: our baselines and the
# ceilings (the simulator's truth, the replicate wells) are the reference instead.
HEADLINES: tuple[Headline, ...] = (
    *(_drp("5-fold CV on CTRP+GDSC", "cv_ctrp_gdsc", model, metric)
      for model in ("deepdra", "cross_attention", "gradient_boosting", "drug_prior", "drug_cell_prior")
      for metric in ("roc_auc", "auprc")),
    *(_drp("CTRP+GDSC -> CCLE", "ccle_paper_protocol", model, metric)
      for model in ("deepdra", "cross_attention", "drug_prior", "drug_cell_prior")
      for metric in ("roc_auc", "auprc")),
    *(_drp("CTRP+GDSC -> CCLE", "ccle_leakage_free", model, metric,
           shown_as="CTRP+GDSC -> CCLE, leakage-free protocol")
      for model in ("deepdra", "cross_attention", "gradient_boosting", "drug_prior")
      for metric in ("roc_auc", "auprc")),
    *(_expression(papers.GRAPH, "consensus", None, model, "pearson")
      for model in ("gat_regressor", "ridge", "nearest_neighbours", "mean_signature")),
    *(_expression(papers.GRAPH, "simulated", split, model, "pearson_change")
      for split in ("random", "unseen compound")
      for model in ("graph_model", "ridge", "cell_line_mean", "true_mean")),
    *(_expression(papers.DIFFUSION, "replicates", split, model, metric)
      for split in ("random", "held-out dose", "held-out time")
      for metric in ("pearson_change", "energy_distance")
      for model in ("diffusion", "encoder_decoder", "encoder_decoder_gaussian", "marginal_draws", "ridge")),
    *(_expression(papers.DIFFUSION, "replicates", split, "replicate_ceiling", "pearson_change")
      for split in ("random", "held-out dose", "held-out time")),
    *(_expression(papers.DIFFUSION, "simulated", split, model, metric)
      for split in ("random", "unseen compound")
      for metric in ("pearson_change", "energy_distance_true", "spread_ratio")
      for model in ("diffusion", "encoder_decoder", "encoder_decoder_gaussian", "true_distribution")),
)


class MissingResultError(LookupError):
    """A headline's chapter, table, row or metric is not in the results folder; the message names the fix."""


@dataclass
class Results:
    """What the runner wrote: per chapter, its provenance record and its tables (read on first use)."""

    folder: Path
    provenance: dict[str, dict]
    _tables: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, folder: Path | str = RESULTS_DIR) -> Results:
        """The provenance records of every chapter under ``folder``; tables are read later, on first use.

        Inside a chapter run (``$PERTURBX_CHAPTER_RESULTS`` set by the runner), that chapter itself is left out:
        what is published for it is its previous run, which this run replaces.
        """
        folder = Path(folder)
        running = Path(os.environ[RESULTS_ENV]).name if os.environ.get(RESULTS_ENV) else None
        records = {path.parent.name: json.loads(path.read_text())
                   for path in sorted(folder.glob(f"*/{PROVENANCE_FILE}")) if path.parent.name != running}
        return cls(folder, records)

    def table(self, chapter: str, name: str) -> pd.DataFrame:
        """The CSV table ``name`` of ``chapter`` (read once; later calls return the same frame)."""
        if (chapter, name) not in self._tables:
            path = self.folder / chapter / f"{name}.csv"
            if not path.exists():
                raise MissingResultError(f"no table {path}: run `perturbx book run --chapters {chapter}` (the runner "
                                         f"writes the tables that the chapter registers with chapter.table)")
            self._tables[(chapter, name)] = pd.read_csv(path)
        return self._tables[(chapter, name)]

    def model_labels(self, chapter: str) -> pd.Series:
        """Model id -> label of ``chapter`` (its ``models.csv``, written by the runner)."""
        path = self.folder / chapter / MODELS_FILE
        if not path.exists():
            raise MissingResultError(f"no {path}: run `perturbx book run --chapters {chapter}` (the chapter registers "
                                     "its models with chapter.models and the runner writes them)")
        return pd.read_csv(path, index_col="id")["label"]

    def label(self, chapter: str, model_id: str) -> str:
        """The label ``chapter``'s tables show for ``model_id``."""
        labels = self.model_labels(chapter)
        if model_id not in labels.index:
            raise MissingResultError(f"{chapter}/{MODELS_FILE} has no model {model_id!r}; it has "
                                     f"{', '.join(labels.index)}")
        return str(labels[model_id])

    def runs(self) -> pd.DataFrame:
        """Every chapter run the runner logged (``runs.csv``), oldest first; empty when none."""
        path = self.folder / RUNS_LOG
        return pd.read_csv(path) if path.exists() else pd.DataFrame()


def headline_value(results: Results, headline: Headline) -> dict:
    """``mean``, ``sd`` (NaN for one run) and ``runs`` of one headline.

    Raises:
        MissingResultError: naming the chapter, table and row that were not found.
    """
    table = results.table(headline.chapter, headline.table)
    mask = np.ones(len(table), dtype=bool)
    shown = headline.row | {"model": results.label(headline.chapter, headline.row["model"])}
    for column, value in shown.items():
        if column not in table.columns:
            raise MissingResultError(f"{headline.chapter}/{headline.table}.csv has no column {column!r}")
        mask &= (table[column] == value).to_numpy()
    if mask.sum() != 1:
        raise MissingResultError(f"{headline.chapter}/{headline.table}.csv: {int(mask.sum())} rows match "
                                 f"{shown}, expected exactly one")
    row = table[mask].iloc[0]
    for mean_column, sd_column in ((f"{headline.metric}_mean", f"{headline.metric}_sd"), (headline.metric, None)):
        if mean_column in table.columns:
            mean = float(row[mean_column])
            sd = float(row[sd_column]) if sd_column in table.columns else np.nan
            return {"mean": mean, "sd": sd, "runs": int(row["runs"]) if "runs" in table.columns else 1}
    raise MissingResultError(f"{headline.chapter}/{headline.table}.csv has no metric {headline.metric!r}")


def headline_verdict(claims: pd.DataFrame, headline: Headline) -> tuple[str, str]:
    """The claim (full text) that ``headline`` is evidence for and its verdict, from :func:`claims_table`;
    ``("", "")`` when the headline bears on no claim.

    Raises:
        MissingResultError: when the chapter decided no claim with the id ``headline.claim``.
    """
    if headline.claim is None:
        return "", ""
    mine = (claims[(claims["chapter"] == headline.chapter) & (claims["claim_id"] == headline.claim)]
            if "claim_id" in claims.columns else claims.iloc[:0])
    if len(mine) != 1:
        raise MissingResultError(f"{headline.chapter}/{CLAIMS_TABLE}.csv: {len(mine)} claims with the id "
                                 f"{headline.claim!r}, expected exactly one; run the chapter again or correct the "
                                 f"headline's claim id in perturbx/book/reproduction.py")
    return mine.iloc[0]["claim"], mine.iloc[0]["verdict"]


def headline_table(results: Results, headlines: Sequence[Headline] = HEADLINES) -> pd.DataFrame:
    """One row per headline: paper, experiment, data, model, metric, ``paper reported``, ``ours`` (mean ± sd over
    runs as text; numbers in ``ours (mean)`` / ``ours (sd)``), ``ours − paper``, runs, the ``claim`` the number is
    evidence for with its ``verdict`` (empty for ceilings and unclaimed baselines), and the chapter's profile,
    device and commit from its provenance record."""
    rows, claims = [], claims_table(results)
    for headline in headlines:
        value = headline_value(results, headline)
        record = results.provenance.get(headline.chapter, {})
        rows.append({
            "paper": headline.paper, "experiment": headline.experiment, "data": headline.data,
            "model": results.label(headline.chapter, headline.row["model"]), "metric": headline.metric,
            "paper reported": headline.paper_value if headline.paper_value is not None else np.nan,
            "ours": format_mean_sd(value["mean"], value["sd"]), "ours (mean)": value["mean"], "ours (sd)": value["sd"],
            "ours − paper": value["mean"] - headline.paper_value if headline.paper_value is not None else np.nan,
            "runs": value["runs"], **dict(zip(("claim", "verdict"), headline_verdict(claims, headline))),
            "chapter": headline.chapter, "profile": record.get("profile", "unknown"),
            "device": record.get("device_name", "unknown"), "commit": record.get("commit", "unknown"),
        })
    return pd.DataFrame(rows)



def claims_table(results: Results) -> pd.DataFrame:
    """Every claim a chapter decided (its ``claims`` table, :func:`perturbx.evaluation.claims.claims_table`), in chapter
    order, with the chapter, profile and commit it was decided in; empty when no chapter registered one."""
    frames = [results.table(chapter, CLAIMS_TABLE).assign(chapter=chapter, profile=record.get("profile", "unknown"),
                                                          commit=record.get("commit", "unknown"))
              for chapter, record in results.provenance.items() if CLAIMS_TABLE in record.get("tables", [])]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def provenance_table(results: Results) -> pd.DataFrame:
    """One row per chapter: title, profile, device, commit, seeds, data files verified, tables, wall time (s)."""
    rows = [{"chapter": chapter, "title": record["title"], "profile": record["profile"],
             "device": record["device_name"], "commit": record["commit"], "finished (UTC)": record["finished_utc"],
             "seeds": "; ".join(f"{label}: {len(seeds)}" for label, seeds in record["seeds"].items()) or "-",
             "data files verified": len(record["data"]), "tables": len(record["tables"]),
             "wall time (s)": record.get("wall_time_s", record["kernel_wall_time_s"])}
            for chapter, record in results.provenance.items()]
    return pd.DataFrame(rows).set_index("chapter") if rows else pd.DataFrame()


def table_index(results: Results) -> pd.DataFrame:
    """Every table the chapters registered: chapter, table, its CSV file (relative to the results folder), rows
    and columns. (Profile and device are the chapter's: :func:`provenance_table`.)"""
    rows = []
    for chapter, record in results.provenance.items():
        for name in record["tables"]:
            table = results.table(chapter, name)
            rows.append({"chapter": chapter, "table": name, "csv": f"{chapter}/{name}.csv", "rows": len(table),
                         "columns": table.shape[1]})
    return pd.DataFrame(rows, columns=["chapter", "table", "csv", "rows", "columns"])


def run_times(results: Results) -> pd.DataFrame:
    """Wall time (s) of the latest successful run of each chapter per profile and device kind, chapters as rows
    and ``<profile> on <device>`` as columns (NaN where that combination was never run)."""
    runs = results.runs()
    if runs.empty:
        return pd.DataFrame()
    runs = runs[runs["status"] == "ok"].assign(run=lambda r: r["profile"] + " on " + r["device"])
    latest = runs.groupby(["chapter", "run"], sort=False)["wall_time_s"].last()
    return latest.unstack("run")


def budget_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (chapter, profile, device) of the latest successful run in ``runs`` (the runs log's columns):
    minutes, budget minutes (NaN where the profile has no budget on that device), ``within budget``, commit and
    device name."""
    ok = runs[runs["status"] == "ok"]
    latest = ok.groupby(["chapter", "profile", "device"], sort=True).tail(1)
    budget = [getattr(PROFILE_BUDGETS[profile], "gpu_minutes" if device == "cuda" else "cpu_minutes")
              for profile, device in zip(latest["profile"], latest["device"])]
    table = latest.assign(minutes=latest["wall_time_s"] / 60, budget=pd.array(budget, dtype="Float64"))
    table["within budget"] = (table["minutes"] <= table["budget"]).where(table["budget"].notna())
    columns = ["chapter", "profile", "device", "minutes", "budget", "within budget", "commit", "device_name"]
    return table[columns].sort_values(["chapter", "profile", "device"]).reset_index(drop=True)


def data_table(results: Results) -> pd.DataFrame:
    """One row per data file that any chapter verified: its sha256 and the chapters that used it. Raises
    ``ValueError`` when two chapters recorded different checksums for one file (they ran on different data)."""
    rows: dict[str, dict] = {}
    for chapter, record in results.provenance.items():
        for name, sha256 in record["data"].items():
            row = rows.setdefault(name, {"file": name, "sha256": sha256, "chapters": []})
            if row["sha256"] != sha256:
                raise ValueError(f"{name}: chapter {chapter} verified sha256 {sha256}, "
                                 f"another chapter {row['sha256']}; run the chapters again on one copy of the data")
            row["chapters"].append(chapter)
    table = pd.DataFrame(rows.values(), columns=["file", "sha256", "chapters"])
    return table.assign(chapters=table["chapters"].str.join(", ")).set_index("file")


def package_table(results: Results) -> pd.DataFrame:
    """Package versions recorded by each chapter (packages as rows, chapters as columns); one column ``every
    chapter`` when they all ran with the same versions."""
    table = pd.DataFrame({chapter: record["packages"] for chapter, record in results.provenance.items()})
    if table.shape[1] > 1 and table.nunique(axis=1, dropna=False).eq(1).all():
        return table.iloc[:, :1].set_axis(["every chapter"], axis=1)
    return table


def run_box(results: Results, chapter: str, sizes_mb: dict[str, float] | None = None) -> str:
    """Markdown for a chapter's "Run this chapter" box, from what earlier runs measured: the command per profile,
    each profile's budget (:data:`perturbx.profiles.PROFILE_BUDGETS`), the wall time of the latest successful run per profile and device (``runs.csv``), the peak memory of the
    published run and the data files it verified with their total size (its provenance record).

    Args:
        sizes_mb: data file name -> size in MB (default: the registry's sizes).
    """
    if sizes_mb is None:
        sizes_mb = registry().table().set_index("name")["size_mb"].to_dict()
    record = results.provenance.get(chapter, {})
    profile = record.get("profile", "quick")
    lines = [f"- **Command:** `perturbx book run --chapters {chapter} --profile {profile}` (the published run's "
             f"profile; `smoke` checks the chapter in minutes, `--device cuda` trains on a GPU); "
             f"`make book CHAPTERS={chapter} PROFILE={profile}` does the same after setting up the environment."]
    lines.append("- **Profiles:** " + "; ".join(f"`{name}` {PROFILE_PURPOSES[name]}, {budget.describe()}"
                                              for name, budget in PROFILE_BUDGETS.items()) + ".")
    times = run_times(results)
    if chapter in times.index:
        measured = [f"{run}: {seconds / 60:.1f} min" for run, seconds in times.loc[chapter].dropna().items()]
        lines.append(f"- **Measured wall time** (latest successful run per profile and device): {'; '.join(measured)}.")
    if record.get("peak_memory_mb"):
        lines.append(f"- **Peak memory** of the published run ({record['profile']}, {record['device_name']}): "
                     f"{record['peak_memory_mb'] / 1024:.1f} GB.")
    files = sorted(record.get("data", {}))
    if files:
        total = sum(sizes_mb.get(name, 0.0) for name in files)
        lines.append(f"- **Data:** {len(files)} registered files, {total:.0f} MB in all, fetched and verified on first "
                     f"use (`perturbx data fetch {' '.join(files)}`).")
    return "\n".join(lines)


def run_box_for(chapter: str) -> str:
    """:func:`run_box` of ``chapter`` from the book's results folder (for the chapter's own setup cell)."""
    return run_box(Results.load(), chapter)
