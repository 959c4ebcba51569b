"""The kernel side of the chapter convention: what a chapter notebook calls.

Every chapter is a notebook in ``book/`` whose first code cell is tagged ``parameters``::

    profile = "quick"   # smoke | quick | full
    seed = 0

and whose next cell calls :func:`start_chapter`. ``$PERTURBX_PROFILE`` overrides the profile (the test suite sets
it to ``smoke``), :meth:`Chapter.pick` turns the profile into sizes, :meth:`Chapter.seeds` into seed lists,
:meth:`Chapter.table` registers each results table, and the chapter ends with :meth:`Chapter.finish`, which prints
the provenance line (commit, device, profile, seed, wall time) and, under the runner, writes ``provenance.json``.

Profiles:

- ``smoke``: for the test suite; seconds to a couple of minutes per chapter on 2 CPU cores.
- ``quick``: what a student gets by default; the same experiments at a smaller size, minutes on a laptop CPU.
- ``full``: the published tables; at most 90 minutes a chapter on 2 CPU cores (:data:`~perturbx.profiles.PROFILE_BUDGETS`).

Nothing here imports papermill or nbformat: chapter kernels import this module.
"""

from __future__ import annotations

import json
import numbers
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import pandas as pd

from .. import __version__
from ..evaluation.claims import Claim, claims_markdown, claims_table, claims_text, evidence_table
from ..datasets.fetcher import DataLog, use_data_log
from ..profiles import PROFILE_ENV, PROFILES
from ..runtime import describe_device, git_commit, package_versions, peak_memory_mb, seed_everything, select_device

# Set by the runner for each chapter: the folder that receives its tables and provenance record. Unset (e.g. under
# pytest --nbmake) nothing is written, so test runs never overwrite the book's results.
RESULTS_ENV = "PERTURBX_CHAPTER_RESULTS"
BOOK_DIR = Path(__file__).resolve().parent.parent.parent / "book"
# The results folder: RESULTS_DIR/<chapter>/<table>.csv and PROVENANCE_FILE per chapter, RUNS_LOG for every run.
RESULTS_DIR = BOOK_DIR / "results"
PROVENANCE_FILE = "provenance.json"
# Per chapter, the models its tables name: id -> label, role and description (written at Chapter.finish), so the
# Reproduction page can turn a model id into the label a table shows without importing any study.
MODELS_FILE = "models.csv"
RUNS_LOG = "runs.csv"
# The table of a chapter's decided claims (Chapter.claims)
CLAIMS_TABLE = "claims"
EVIDENCE_TABLE = "claims_evidence"  # the claims' paired comparisons as numbers, one row each
# Columns and index levels of a table that hold model ids; Chapter.table shows their labels instead.
MODEL_COLUMNS = ("model", "baseline")
T = TypeVar("T")


def utc_now() -> str:
    """The current UTC time as ``YYYY-MM-DD HH:MM:SS UTC`` (the format of the provenance record and runs log)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def resolve_profile(profile: str) -> str:
    """The profile in force: ``$PERTURBX_PROFILE`` when set, else ``profile``.

    Args:
        profile: the chapter's own ``profile`` parameter.

    Returns:
        One of :data:`PROFILES`.

    Raises:
        ValueError: the chosen profile is not one of :data:`PROFILES` (the message names where it came from).
    """
    chosen = os.environ.get(PROFILE_ENV) or profile
    if chosen not in PROFILES:
        source = f"${PROFILE_ENV}" if os.environ.get(PROFILE_ENV) else "the chapter's `profile` parameter"
        raise ValueError(f"unknown profile {chosen!r} from {source}; use one of {', '.join(PROFILES)}")
    return chosen


@dataclass
class Chapter:
    """The run of one chapter: its profile, seed and device, its tables, its data, and the clock.

    When the runner executes the chapter, ``results_dir`` (from ``$PERTURBX_CHAPTER_RESULTS``) receives each table
    registered with :meth:`table` as CSV and, at :meth:`finish`, the provenance record ``provenance.json``.
    ``data_log`` records the sha256 of every data file fetched while the chapter is the current one (see
    :func:`start_chapter`).
    """

    title: str
    profile: str
    seed: int
    device: str
    results_dir: Path | None = None
    seed_lists: dict[str, list[int]] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)
    model_registry: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["label", "role", "description"], index=pd.Index([], name="id")))
    data_log: DataLog = field(default_factory=DataLog)
    started: float = field(default_factory=time.perf_counter)
    started_utc: str = field(default_factory=utc_now)
    # taken when the chapter starts: the code it imported then is the code that ran, whatever is committed later
    commit: str = field(default_factory=lambda: git_commit())

    def pick(self, *, smoke: T, quick: T, full: T) -> T:
        """The value for the profile in force, e.g. ``n_epochs = chapter.pick(smoke=1, quick=20, full=200)``."""
        return {"smoke": smoke, "quick": quick, "full": full}[self.profile]

    def seeds(self, label: str, *, smoke: int, quick: int, full: int) -> list[int]:
        """The seeds ``[seed, seed + 1, ...]`` of an experiment, as many as the profile asks for.

        Recorded under ``label`` in the provenance record, e.g. ``chapter.seeds("CCLE", smoke=1, quick=2, full=5)``.
        """
        chosen = [self.seed + i for i in range(self.pick(smoke=smoke, quick=quick, full=full))]
        self.seed_lists[label] = chosen
        return chosen

    def glue_markdown(self, name: str, text: str) -> None:
        """Store ``text`` (Markdown) under ``name`` for the chapter's prose: a Markdown cell shows it with
        ``{glue:md}`` (myst-nb), before or after the cell that computed it, so a verdict box or a sentence that
        quotes a number is filled from the computation and cannot drift from it. Returns nothing, so that a cell
        ending with it shows no copy of the text as its output."""
        from IPython.display import Markdown
        from myst_nb import glue

        glue(name, Markdown(text), display=False)

    def models(self, *registries) -> None:
        """Register the model registries (:class:`perturbx.studies.protocol.ModelRegistry`) whose ids this
        chapter's tables and figures name; :meth:`table` and :meth:`labelled` show their labels, and :meth:`finish`
        writes them to ``models.csv`` under the runner.

        Raises:
            ValueError: one id registered with two different labels.
        """
        for registry in registries:
            table = registry.table()
            known = table.index.intersection(self.model_registry.index)
            clash = [i for i in known if self.model_registry.at[i, "label"] != table.at[i, "label"]]
            if clash:
                raise ValueError(f"{self.title}: model ids {clash} are registered twice with different labels")
            self.model_registry = pd.concat([self.model_registry, table.drop(index=known)])
        self.model_registry.index.name = "id"

    def labelled(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` as a reader sees it: the model ids in its columns and index levels named in
        :data:`MODEL_COLUMNS` replaced by the labels of the registries given to :meth:`models` (a copy; a frame
        without such columns is returned as it is). Other values of those columns (a row that is no registered
        model, e.g. an oracle computed in place) are kept as they are. Figures take their frames through here."""
        names = [c for c in MODEL_COLUMNS if c in frame.columns or c in (frame.index.names or [])]
        if not names or not len(self.model_registry):
            return frame
        labels = self.model_registry["label"].to_dict()
        shown = frame.copy()
        for column in names:
            if column in shown.columns:
                shown[column] = shown[column].map(lambda value: labels.get(value, value))
            else:
                shown = shown.rename(index=labels, level=column)
        return shown

    def table(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Register a results table, saved as ``<name>.csv`` (every column, index included) under the runner.

        Args:
            name: a file stem of lower-case letters, digits and underscores, unique within the chapter.
            frame: the table; model ids in its ``model`` / ``baseline`` columns or index levels are shown (and
                saved) as their labels (:meth:`labelled`).

        Returns:
            What the chapter shows: the labelled ``frame`` without the numeric twins ``<m>_mean`` / ``<m>_sd``
            of a column ``<m>`` that already shows them as text ("0.912 ± 0.004").

        Raises:
            ValueError: ``name`` is not a valid file stem or was registered before in this chapter.
        """
        frame = self.labelled(frame)
        if not re.fullmatch(r"[a-z0-9_]+", name):
            raise ValueError(f"table name {name!r}: use lower-case letters, digits and underscores (it is a file name)")
        if name in self.tables:
            raise ValueError(f"table {name!r} is registered twice in {self.title!r}; give each table its own name")
        self.tables.append(name)
        if self.results_dir is not None:
            self.results_dir.mkdir(parents=True, exist_ok=True)
            flat = frame if _is_default_index(frame) else frame.reset_index()
            flat.to_csv(self.results_dir / f"{name}.csv", index=False)
            _show_download_link(self.results_dir.name, name, flat.shape)
        twins = [c for c in frame.columns if isinstance(c, str) and c.endswith(("_mean", "_sd"))
                 and c.rsplit("_", 1)[0] in frame.columns]
        return frame.drop(columns=twins)

    def claims(self, decided: list[Claim]) -> pd.DataFrame:
        """Register the chapter's decided claims: the table ``claims``
        (:func:`perturbx.evaluation.claims.claims_table`, which the Reproduction page reads by claim id), the
        table ``claims_evidence`` (:func:`~perturbx.evaluation.claims.evidence_table`: the comparisons as numbers), the
        Markdown of its verdict box under the glue name ``claims_box``, and the claims printed as text.

        Returns:
            The claims table as shown.
        """
        table = self.table(CLAIMS_TABLE, claims_table(decided))
        self.table(EVIDENCE_TABLE, evidence_table(decided))
        self.glue_markdown("claims_box", claims_markdown(table))
        print(claims_text(table))
        return table

    def record(self) -> dict:
        """The provenance record: what ran (title, profile, seeds, tables), where (device, commit), with what
        (package versions, sha256 of every data file the chapter verified), how long (seconds) and how much memory
        (the peak resident memory of the chapter's process or of its largest worker, MB)."""
        return {"title": self.title, "profile": self.profile, "seed": self.seed, "seeds": self.seed_lists,
                "device": self.device, "device_name": describe_device(self.device), "commit": self.commit,
                "started_utc": self.started_utc, "finished_utc": utc_now(),
                "kernel_wall_time_s": round(time.perf_counter() - self.started, 1),
                "peak_memory_mb": peak_memory_mb(),
                "packages": package_versions(), "data": self.data_log.as_dict(), "tables": list(self.tables)}

    def provenance(self, record: dict | None = None) -> str:
        """One line of :meth:`record` (default: taken now): commit, device, profile, seed, wall time since
        :func:`start_chapter`, package version, date."""
        record = record if record is not None else self.record()
        return (f"{self.title} | commit {record['commit']} | device {record['device_name']} | "
                f"profile {self.profile} | seed {self.seed} | wall time {record['kernel_wall_time_s']:.1f} s | "
                f"perturbx {__version__} | {record['finished_utc'][:16]} UTC")

    def finish(self) -> None:
        """Print the provenance line and, under the runner, write ``provenance.json`` and the registered models
        (``models.csv``: id, label, role, description); the last call of every chapter."""
        record = self.record()
        print(f"Provenance: {self.provenance(record)}")
        if self.results_dir is not None:
            self.results_dir.mkdir(parents=True, exist_ok=True)
            (self.results_dir / PROVENANCE_FILE).write_text(json.dumps(record, indent=1) + "\n")
            if len(self.model_registry):
                self.model_registry.to_csv(self.results_dir / MODELS_FILE)



def _is_default_index(frame: pd.DataFrame) -> bool:
    """True for an unnamed 0, 1, 2, ... index, which carries no information and is left out of the CSV."""
    index = frame.index
    return (isinstance(index, pd.RangeIndex) and index.name is None and index.start == 0 and index.step == 1)


def shown_float(value: float) -> str:
    """How a chapter's table shows a float: four significant digits, never in powers of ten between 1e-4 and 1e4
    (a paired difference of 0.00096 reads as such, not 9.576e-04), thousands with separators and no decimals.
    The CSVs keep every digit."""
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


def start_chapter(title: str, profile: str = "quick", seed: int = 0, device: str | None = None) -> Chapter:
    """Start a chapter: resolve the profile, seed every generator, pick the device, start the clock, show tables'
    floats with :func:`shown_float`.

    The chapter's :class:`~perturbx.datasets.fetcher.DataLog` becomes the one the module-level data functions
    (``datasets.fetch``, ``read_pickle``, ``fetch_all``) record into, so its provenance record lists exactly the
    data files fetched from here on; a later :func:`start_chapter` in the same process starts an empty one.

    Args:
        title: the chapter's title, shown in the provenance line.
        profile: the chapter's ``profile`` parameter (``$PERTURBX_PROFILE`` wins).
        seed: seed of Python's, NumPy's and torch's generators.
        device: ``"cpu"`` or ``"cuda"``; default ``$PERTURBX_DEVICE``, else CUDA when available.

    Returns:
        The chapter, whose :meth:`Chapter.finish` is the last call of the notebook.

    Raises:
        ValueError: an unknown profile or device, CUDA requested where there is none, or a seed that is not a
            non-negative integer.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:  # "x" and 1.5 are not seeds
        raise ValueError(f"seed {seed!r} is not a non-negative integer. Fix: give an integer, e.g. "
                         "`papermill ... -p seed 0`.")
    results = os.environ.get(RESULTS_ENV)
    chapter = Chapter(title=title, profile=resolve_profile(profile), seed=int(seed), device=select_device(device),
                      results_dir=Path(results) if results else None)
    use_data_log(chapter.data_log)
    seed_everything(chapter.seed)
    pd.set_option("display.float_format", shown_float)
    print(f"{title}: profile {chapter.profile}, seed {chapter.seed}, {describe_device(chapter.device)}")
    return chapter


TABLE_LINK_CLASS = "perturbx-table-csv"


def table_link_html(chapter: str, name: str, shape: tuple[int, int]) -> str:
    """The HTML of a table's download link as the book shows it: the CSV the runner wrote, copied into the
    rendered book at ``results/<chapter>/<name>.csv`` (relative to a chapter page, ``../results/...``)."""
    return (f'<p class="{TABLE_LINK_CLASS}">Full table ({shape[0]} rows x {shape[1]} columns): '
            f'<a href="../results/{chapter}/{name}.csv" download>{name}.csv</a></p>')


def _show_download_link(chapter: str, name: str, shape: tuple[int, int]) -> None:
    """Display :func:`table_link_html` in the running notebook (nothing outside IPython)."""
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        return
    if get_ipython() is not None:
        display(HTML(table_link_html(chapter, name, shape)))
