"""The experiment protocol shared by the three chapters: a model registry, settings per profile, one result shape.

Every experiment of the book has the same shape: for each *job* (a split kind and seed, a fold, a held-out
dataset), prepare the inputs with statistics of the training rows only, run every requested model, score the
test rows, and summarise over seeds. A protocol instance (:mod:`~perturbx.studies.drug_response`,
:mod:`~perturbx.studies.graph_model`, :mod:`~perturbx.studies.generative`) supplies:

- a :class:`ModelRegistry` of :class:`ModelSpec` entries, keyed by stable ids (``"ridge"``, ``"deepdra"``); the
  label a table shows (``"DeepDRA"``) is data of the entry, never a key. Adding a model is one entry whose
  ``run`` function builds, fits and predicts, plus the model's own module under :mod:`perturbx.models`;
- one run policy: each model of a job gets its own seed, derived by :func:`perturbx.runtime.derive_seed` from the
  job's seed, the experiment (the registry's name), the split and the model id (:func:`run_models`), so that
  adding a model or a split never changes the numbers of another;
- a settings class derived from :class:`ProfileSettings`, whose :meth:`ProfileSettings.for_profile` turns a
  chapter profile (``smoke``, ``quick``, ``full``) and a device into sizes, and rejects any other profile;
- its ``run_split`` returning a :class:`SplitResult`; :func:`run_jobs` runs many of them, :func:`results_table`
  summarises them and :func:`speed_table` reports how fast each trained model fitted.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pandas as pd
import torch
from joblib import Parallel, delayed
from tqdm.std import tqdm

from ..evaluation.metrics import Comparison, compare_models, summarise_runs
from ..models.estimator import Estimator
from ..profiles import check_profile
from ..runtime import derive_seed
from ..splits import Split
from ..training import FitReport

ROLES = ("baseline", "learned", "oracle")
Context = TypeVar("Context")


@dataclass
class ModelOutput:
    """What one model produced on one split.

    Attributes:
        prediction: the model's test predictions (shape set by the protocol, e.g. (n_test,) scores or
            (n_test, genes) changes).
        model: the trained torch model, if any (kept for attributions and re-sampling).
        fit: the fit record of a torch model (:class:`~perturbx.training.FitReport`).
        seconds: wall time of fitting and predicting.
        seed: the model's seed (:func:`run_models`), e.g. to re-sample a generative model with the same noise.
        estimator: the fitted :class:`~perturbx.models.estimator.Estimator` of a learned model (it can be saved).
        sampling_seconds: time spent generating samples (generative models; None for the others).
        accuracy, distribution: a generative protocol's scores, per test profile and per test condition.
        chosen: hyper-parameters chosen on validation rows (e.g. ``k``, ``alpha``, ``temperature``), and
            choice_table: the validation scores they were chosen by.
    """

    prediction: Any = None
    model: torch.nn.Module | None = None
    fit: FitReport | None = None
    seconds: float = 0.0
    seed: int | None = None
    estimator: Estimator | None = None
    sampling_seconds: float | None = None
    accuracy: pd.DataFrame | None = None
    distribution: pd.DataFrame | None = None
    chosen: dict[str, float] = field(default_factory=dict)
    choice_table: pd.DataFrame | None = None


@dataclass(frozen=True)
class ModelSpec(Generic[Context]):
    """One model of a protocol.

    Attributes:
        id: stable key used in code and settings (lower-case, underscores), e.g. ``"cross_attention"``.
        label: what tables and figures show, e.g. ``"cross-attention"``.
        run: ``run(context, seed) -> ModelOutput``: build, fit on the training rows of the protocol's context,
            predict its test rows; ``seed`` seeds everything stochastic in the model (initial weights, batches,
            sampling).
        role: ``baseline`` (trivial or classical reference), ``learned`` (a model of a paper) or ``oracle``
            (a ceiling that uses the simulator's truth).
        description: one line for the registry table.
    """

    id: str
    label: str
    run: Callable[[Context, int], ModelOutput]
    role: str = "learned"
    description: str = ""

    def __post_init__(self) -> None:
        if not self.id.replace("_", "").isalnum() or self.id != self.id.lower():
            raise ValueError(f"model id {self.id!r}: use lower-case letters, digits and underscores")
        if self.role not in ROLES:
            raise ValueError(f"model {self.id!r}: role {self.role!r} is not one of {', '.join(ROLES)}")


class ModelRegistry(Generic[Context]):
    """The models of one protocol, in table order, by stable id."""

    def __init__(self, name: str, specs: Iterable[ModelSpec[Context]]):
        """``name`` names the experiment in messages and in every model seed (:func:`run_models`): renaming it
        changes the seeds."""
        self.name = name
        self._specs: dict[str, ModelSpec[Context]] = {}
        for spec in specs:
            if spec.id in self._specs or spec.label in self.labels():
                raise ValueError(f"{name}: model {spec.id!r} ({spec.label!r}) is registered twice")
            self._specs[spec.id] = spec

    def __getitem__(self, model_id: str) -> ModelSpec[Context]:
        try:
            return self._specs[model_id]
        except KeyError:
            raise ValueError(f"unknown model {model_id!r} in the {self.name} experiments; use one of "
                             f"{', '.join(self._specs)}") from None

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._specs

    def __iter__(self):
        return iter(self._specs.values())

    def ids(self, role: str | None = None) -> list[str]:
        """Model ids in registry order, optionally only those of one ``role``."""
        return [s.id for s in self._specs.values() if role is None or s.role == role]

    def labels(self, ids: Sequence[str] | None = None) -> list[str]:
        """Display labels of ``ids`` (default: all)."""
        return [self[i].label for i in ids] if ids is not None else [s.label for s in self._specs.values()]

    def label(self, model_id: str) -> str:
        """The display label of one model."""
        return self[model_id].label

    def resolve(self, ids: Sequence[str]) -> list[ModelSpec[Context]]:
        """The entries of ``ids``, in the order given; an unknown id is a ``ValueError`` naming the known ones."""
        return [self[i] for i in ids]

    def table(self) -> pd.DataFrame:
        """One row per model: id (index), label, role, description."""
        return pd.DataFrame([{"id": s.id, "label": s.label, "role": s.role, "description": s.description}
                             for s in self._specs.values()]).set_index("id")


class ProfileSettings:
    """Mixin of a protocol's settings dataclass: one constructor per chapter profile.

    A subclass defines the class methods ``smoke(device)``, ``quick(device)`` and ``full(device)``; chapters call
    ``Settings.for_profile(chapter.profile, chapter.device)``.
    """

    @classmethod
    def for_profile(cls, profile: str, device: str = "cpu"):
        """The settings of ``profile`` on ``device``; an unknown profile is a ``ValueError``."""
        return getattr(cls, check_profile(profile))(device)


def model_seed(registry: ModelRegistry, seed: int, split: str, model_id: str) -> int:
    """The seed of model ``model_id`` in the job with ``seed`` on split ``split`` of ``registry``'s experiment."""
    return derive_seed(seed, registry.name, split, model_id)


def run_models(registry: ModelRegistry[Context], ids: Sequence[str], context: Context, seed: int,
               split: str) -> dict[str, ModelOutput]:
    """Run the models ``ids`` of ``registry`` on one prepared split.

    Args:
        context: the protocol's prepared inputs of the split.
        seed: the job's seed (the seed of the split); each model runs with its own seed derived from it, the
            experiment, ``split`` (its name) and the model id (:func:`model_seed`).

    Returns:
        Model id -> output, each with its seed and wall time.
    """
    outputs = {}
    for spec in registry.resolve(ids):
        started = time.perf_counter()
        own_seed = model_seed(registry, seed, split, spec.id)
        output = spec.run(context, own_seed)
        output.seconds, output.seed = time.perf_counter() - started, own_seed
        outputs[spec.id] = output
    return outputs


@dataclass
class SplitResult(Generic[Context]):
    """One job of one protocol: the split, the models' outputs and their metrics.

    Attributes:
        split: positions of the train, validation and test rows (``kind`` names the split).
        seed: the seed of the job.
        metrics: one row per (model, test unit) or (model, subset) with a ``model`` column holding the model id
            (a chapter shows the label: ``Chapter.table``).
        outputs: model id -> :class:`ModelOutput`.
        context: the prepared inputs the models saw (the protocol's context type; e.g. scaled features).
    """

    split: Split
    seed: int
    metrics: pd.DataFrame
    outputs: dict[str, ModelOutput]
    context: Context | None = None

    @property
    def predictions(self) -> dict[str, Any]:
        """Model id -> its test predictions."""
        return {i: o.prediction for i, o in self.outputs.items()}

    @property
    def models(self) -> dict[str, torch.nn.Module]:
        """Model id -> trained torch model, for the models that have one."""
        return {i: o.model for i, o in self.outputs.items() if o.model is not None}

    @property
    def fits(self) -> dict[str, FitReport]:
        """Model id -> fit record, for the torch models."""
        return {i: o.fit for i, o in self.outputs.items() if o.fit is not None}

    @property
    def seconds(self) -> dict[str, float]:
        """Model id -> wall time of fitting and predicting."""
        return {i: o.seconds for i, o in self.outputs.items()}


def _run_in_worker(run_one: Callable[[dict], SplitResult], job: dict, threads: int) -> SplitResult:
    """``run_one(job)`` in a worker process with ``threads`` torch threads (workers share the machine's cores)."""
    torch.set_num_threads(threads)
    return run_one(job)


# loky retires a worker whose memory grew by more than 300 MB since it started (a leak check) and starts a new one
# for the remaining jobs; every job still completes, but the executor warns in this process, where a chapter's
# stored output would show it.
WORKER_RETIRED_WARNING = "A worker stopped while some jobs were given to the executor"


def run_jobs(jobs: Sequence[dict], run_one: Callable[[dict], SplitResult],
             summarise: Callable[[SplitResult], pd.DataFrame], description: str = "splits",
             progress: bool = True, workers: int = 1) -> tuple[pd.DataFrame, dict[tuple, SplitResult]]:
    """Run ``run_one(job)`` for every job and stack ``summarise(result)`` with the job's keys.

    Args:
        jobs: one dict of keys per job (e.g. ``{"split": "random", "seed": 0}``); the keys become columns of the
            runs table and, as a tuple of values, the key of the results dict.
        run_one: runs one job.
        summarise: one row per model of a result (must include ``model``).
        workers: jobs run at once, each in its own process (joblib's loky backend) with an equal share of this
            process's torch threads; small CPU models train faster as parallel jobs than with more threads. Every
            job seeds its own models, so the numbers do not depend on ``workers`` beyond floating-point order.

    Returns:
        (runs, results): the stacked summaries with the job keys first, and job key tuple -> :class:`SplitResult`.
    """
    workers = max(1, min(workers, len(jobs)))
    if workers > 1:
        threads = max(1, torch.get_num_threads() // workers)
        # max_nbytes=None: send arrays whole; memory-mapped ones arrive read-only, which torch.from_numpy warns about
        outcomes = Parallel(n_jobs=workers, backend="loky", return_as="generator", max_nbytes=None)(
            delayed(_run_in_worker)(run_one, job, threads) for job in jobs)
    else:
        outcomes = (run_one(job) for job in jobs)
    frames, results = [], {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=WORKER_RETIRED_WARNING, category=UserWarning)
        for job, result in zip(jobs, tqdm(outcomes, desc=description, total=len(jobs), disable=not progress,
                                          leave=False, mininterval=5.0)):
            results[tuple(job.values())] = result
            summary = summarise(result)
            frames.append(summary.assign(**job)[[*job, *summary.columns]])
    return pd.concat(frames, ignore_index=True), results


FIT_COLUMNS = ("best_epoch", "epochs_run")


def results_table(runs: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Mean ± sd over runs of ``metrics`` per group ``by`` (numbers in ``<metric>_mean`` / ``_sd`` too), then the
    best and last epoch of the trained models (:data:`FIT_COLUMNS`, from :func:`with_fit_epochs`) where the runs
    have them; metrics that are NaN for every run are left out."""
    present = [m for m in (*metrics, *FIT_COLUMNS) if m in runs.columns and runs[m].notna().any()]
    return summarise_runs(runs, list(by), present)


def with_fit_epochs(summary: pd.DataFrame, result: SplitResult) -> pd.DataFrame:
    """``summary`` (one row per model id) with ``best_epoch`` and ``epochs_run`` of each model that was trained
    by :func:`perturbx.training.fit` (NaN for the others), so every results table shows whether training converged
    (a best epoch equal to the epochs run means it stopped while still improving)."""
    best = {i: fit.best_epoch for i, fit in result.fits.items()}
    runs = {i: fit.epochs_run for i, fit in result.fits.items()}
    return summary.assign(best_epoch=summary["model"].map(best).astype(float),
                          epochs_run=summary["model"].map(runs).astype(float))


def paired_comparisons(runs: pd.DataFrame, pairs: Sequence[tuple[str, str]], metric: str,
                       by: Sequence[str] = ("split",), pair_on: Sequence[str] = ("seed",),
                       higher_is_better: bool = True) -> list[tuple[dict, Comparison]]:
    """:func:`perturbx.evaluation.metrics.compare_models` of each (model, baseline) id pair within each group ``by``.

    Args:
        runs: one row per (job, model), as :func:`run_jobs` returns.
        pairs: (model id, baseline id) pairs; a pair with a model absent from a group is skipped.

    Returns:
        (group keys, comparison) per group and pair, in order.
    """
    found = []
    for key, part in runs.groupby(list(by), sort=False):
        keys = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        present = set(part["model"])
        found += [(keys, compare_models(part, model, baseline, metric, pair_on, higher_is_better))
                  for model, baseline in pairs if model in present and baseline in present]
    return found


def comparisons_table(found: Sequence[tuple[dict, Comparison]]) -> pd.DataFrame:
    """One row per comparison of :func:`paired_comparisons`: its group keys, then model, baseline, metric, the
    mean paired difference, its sd and 95% interval, wins, pairs and the verdict."""
    return pd.DataFrame([keys | comparison.row() for keys, comparison in found])


def speed_table(results: Mapping[tuple, SplitResult], keys: Sequence[str], per: str = "profiles") -> pd.DataFrame:
    """How each trained torch model fitted: one row per (job, model).

    Args:
        results: job key tuple -> :class:`SplitResult` (as :func:`run_jobs` returns), e.g. keyed by
            (dataset, split, seed).
        keys: names of the job key parts, the first columns.
        per: what a training sample is (``"profiles"`` or ``"pairs"``), for the throughput column.

    Returns:
        Columns ``*keys``, ``model`` (id), ``epochs_run``, ``best_epoch``, ``<per> / s``, ``fit seconds``, and
        ``sampling seconds`` where a model reports one.
    """
    rows = []
    for job, result in results.items():
        for model_id, output in result.outputs.items():
            if output.fit is None:
                continue
            row = dict(zip(keys, job)) | {
                "model": model_id, "epochs_run": output.fit.epochs_run,
                "best_epoch": output.fit.best_epoch, f"{per} / s": output.fit.samples_per_second,
                "fit seconds": output.fit.seconds}
            if output.sampling_seconds is not None:
                row["sampling seconds"] = output.sampling_seconds
            rows.append(row)
    return pd.DataFrame(rows)


def stack_results(results: Mapping[str, Mapping[tuple, SplitResult]]) -> dict[tuple, SplitResult]:
    """Results of several datasets in one dict keyed by (dataset, *job key), for :func:`speed_table`."""
    return {(name, *key): result for name, part in results.items() for key, result in part.items()}


def mean_by_model(frame: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Mean of ``metrics`` per ``model`` (in order of appearance), ``model`` as a column."""
    return frame.groupby("model", sort=False)[list(metrics)].mean().reset_index()
