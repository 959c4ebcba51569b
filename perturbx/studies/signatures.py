"""Unseen drugs on real data: a drug's consensus signature predicted from its structure alone.

The data are the LINCS consensus signatures of DrugBank drugs (:func:`perturbx.datasets.consensus.read_consensus`):
one level-5 z-score vector of the 978 landmark genes per drug, no basal, no cell line, dose or time. The question is
how much of a drug's transcriptional effect its structure predicts for a drug whose *scaffold* was never seen.

Splits (:func:`scaffold_folds`): k-fold cross-validation grouped by Bemis-Murcko scaffold
(:func:`perturbx.chem.scaffold_groups` of each drug's ``compound_group``, so salt and stereo forms of one compound
share a group; each acyclic structure is a group of its own); each fold's validation part is a scaffold-grouped
slice of the other folds. A seed changes the fold assignment and every model seed.

Models (:data:`MODELS`):

- ``mean_signature``: the mean signature of the drugs outside the test fold (training + validation);
- ``nearest_neighbours``: similarity-weighted mean signature of the k drugs of highest Morgan-fingerprint Tanimoto
  similarity (scikit-learn ``KNeighborsRegressor`` on precomputed Tanimoto distances); k is chosen on the
  validation drugs with the training drugs as neighbours, then the test drugs use training + validation drugs;
- ``ridge``: scikit-learn ``Ridge`` on the fingerprint bits, alpha chosen by scaffold-grouped cross-validation
  (``GridSearchCV`` with ``GroupKFold``) on training + validation drugs only;
- ``gat_regressor``: :class:`perturbx.models.structure.StructureRegressor` (the graph model's GAT compound encoder
  and an MLP head), trained with :func:`perturbx.training.fit` on the training drugs, early stopping on the
  validation drugs;
- ``diffusion``: :class:`perturbx.models.diffusion.ConditionalDiffusion` conditioned on the fingerprint only
  (:class:`perturbx.models.structure.FingerprintConditioner`); the point prediction is the mean of DDIM samples.

The torch models learn signatures standardised per gene with the training drugs' mean and SD and predict back in
z-score units. Nothing is fitted on test drugs. Per test drug: :data:`SIGNATURE_METRICS` (from
:func:`perturbx.evaluation.metrics.expression_metrics` with a zero basal, so its "change" is the signature) and
``similarity``, the Tanimoto similarity to the most similar drug outside the test fold; :func:`similarity_table`
shows the metrics by similarity bin.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.neighbors import KNeighborsRegressor
from sklearn.preprocessing import StandardScaler

from .. import chem
from ..evaluation import explain
from ..evaluation.metrics import expression_metrics, pearson_rows
from ..models.diffusion import DiffusionConfig
from ..models.structure import SignatureDiffusionEstimator, StructureConfig, StructureEstimator
from ..runtime import parallel_jobs
from ..splits import Split
from ..tasks.consensus_signatures import SignatureFold, SignatureInputs, build_signature_inputs, scaffold_folds
from ..training import FitConfig
from . import protocol
from .protocol import ModelOutput, ModelRegistry, ModelSpec, ProfileSettings, SplitResult

# The inputs of the study (signatures, fingerprints and graphs of the drugs), under the study's name for chapter 03
build_inputs = build_signature_inputs

#: Per-drug metrics (z-score signatures): Pearson and Spearman of the signature, RMSE (z units), R² over the 50
#: genes of largest |z|, and precision@50 of the up- and down-regulated genes.
SIGNATURE_METRICS = ("pearson", "spearman", "rmse", "r2_top_degs", "precision_up", "precision_down")
#: Well-known ATP-competitive kinase inhibitors whose attributions :func:`explain_drugs` checks against the hinge
#: binders of :data:`perturbx.evaluation.explain.HINGE_BINDER_SMARTS`.
KINASE_INHIBITORS = ("Imatinib", "Gefitinib", "Erlotinib", "Dasatinib", "Lapatinib", "Nilotinib")
#: Edges of the Tanimoto-similarity bins of :func:`similarity_table` (left-closed; the last bin is >= 0.7).
SIMILARITY_EDGES = (0.0, 0.3, 0.5, 0.7)


@dataclass
class SignatureSettings(ProfileSettings):
    """Sizes of one experiment: folds, fingerprints, the classical models' grids and the torch models."""

    n_folds: int = 5
    val_size: float = 0.15
    fingerprint_bits: int = 2048
    neighbours: tuple[int, ...] = (1, 5, 10, 20, 50, 100)
    alphas: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)
    ridge_folds: int = 5
    structure: StructureConfig = field(default_factory=lambda: StructureConfig(width=128, layers=3, hidden=512))
    fit: FitConfig = field(default_factory=lambda: FitConfig(epochs=300, batch_size=64, lr=1e-3,
                                                             early_stopping_patience=20, plateau_patience=8,
                                                             plateau_factor=0.5))
    diffusion: DiffusionConfig = field(default_factory=lambda: DiffusionConfig(width=256, depth=4, n_steps=1000))
    diffusion_fit: FitConfig = field(default_factory=lambda: FitConfig(epochs=1000, batch_size=64, lr=1e-3,
                                                                       early_stopping_patience=50,
                                                                       plateau_patience=20, plateau_factor=0.5))
    n_samples: int = 50
    ddim_steps: int = 50
    workers: int = 1  # jobs (seeds x folds) run at once, each in its own process (protocol.run_jobs)

    @classmethod
    def smoke(cls, device: str = "cpu") -> SignatureSettings:
        """Seconds on a CPU: 3 folds, tiny torch models, 3 epochs."""
        def short(epochs: int) -> FitConfig:
            return FitConfig(epochs=epochs, batch_size=32, lr=1e-3, early_stopping_patience=2, device=device,
                             progress=False)
        return cls(n_folds=3, val_size=0.2, fingerprint_bits=256, neighbours=(1, 3), alphas=(1.0, 10.0),
                   ridge_folds=2, structure=StructureConfig(width=16, layers=2, heads=2, hidden=32),
                   fit=short(3), diffusion=DiffusionConfig(width=32, depth=1, n_steps=50), diffusion_fit=short(3),
                   n_samples=2, ddim_steps=5)

    @classmethod
    def quick(cls, device: str = "cpu") -> SignatureSettings:
        """The full profile's models (the chapter runs fewer seeds of them in quick)."""
        return cls.full(device)

    @classmethod
    def full(cls, device: str = "cpu") -> SignatureSettings:
        """Minutes per seed on 2 CPU cores (5 folds; a small ridge grid, a small diffusion model)."""
        return cls(alphas=(10.0, 100.0, 1000.0, 10000.0), ridge_folds=3,
                   structure=StructureConfig(width=64, layers=3, heads=4, hidden=256),
                   fit=FitConfig(epochs=100, batch_size=64, lr=1e-3, early_stopping_patience=10, plateau_patience=4,
                                 plateau_factor=0.5, device=device, progress=False),
                   diffusion=DiffusionConfig(width=128, depth=2, n_steps=200),
                   diffusion_fit=FitConfig(epochs=200, batch_size=128, lr=2e-3, early_stopping_patience=15,
                                           plateau_patience=5, plateau_factor=0.5, device=device, progress=False),
                   n_samples=32, ddim_steps=10, workers=parallel_jobs(device))


# ------------------------------------------------------------------------------------------------ inputs and splits


@dataclass
class SignatureContext:
    """What the models of one split see.

    Attributes:
        inputs: the drugs; split: positions of training, validation and test drugs; seed: the job's seed.
        scaler: per-gene ``StandardScaler`` fitted on the training drugs' signatures (torch models' targets).
    """

    inputs: SignatureInputs
    split: Split
    seed: int
    settings: SignatureSettings
    scaler: StandardScaler

    @property
    def rest(self) -> np.ndarray:
        """Positions outside the test fold (training + validation), sorted."""
        return np.union1d(self.split.train, self.split.val)

    @property
    def fold(self) -> SignatureFold:
        """The split as an estimator sees it."""
        return SignatureFold(self.inputs, self.split, self.scaler)


# ------------------------------------------------------------------------------------------------ classical models

def signature_metrics(signatures: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    """Per drug :data:`SIGNATURE_METRICS` of ``predicted`` (n, genes) against ``signatures`` (n, genes), both
    z-scores: :func:`perturbx.evaluation.metrics.expression_metrics` with a zero basal (precision@50 of up and down
    genes)."""
    signatures = np.asarray(signatures, dtype=np.float64)
    return expression_metrics(signatures, predicted, np.zeros_like(signatures))[list(SIGNATURE_METRICS)]


def _similarity_weights(distance: np.ndarray) -> np.ndarray:
    """Neighbour weights = Tanimoto similarity (1 - distance), plus 1e-6 so that all-dissimilar neighbours
    average evenly instead of dividing by zero."""
    return 1.0 - distance + 1e-6


def nearest_neighbours(train_fingerprints: np.ndarray, train_signatures: np.ndarray, query: np.ndarray,
                       k: int) -> np.ndarray:
    """Similarity-weighted mean signature of the ``k`` most Tanimoto-similar training drugs of each query drug.

    Args:
        train_fingerprints: (m, bits); train_signatures: (m, genes); query: (n, bits) fingerprints.
        k: neighbours (at most m are used).

    Returns:
        float64 (n, genes).
    """
    model = KNeighborsRegressor(n_neighbors=min(k, len(train_signatures)), metric="precomputed",
                                weights=_similarity_weights, algorithm="brute")
    model.fit(1.0 - chem.tanimoto_matrix(train_fingerprints, train_fingerprints), train_signatures)
    return model.predict(1.0 - chem.tanimoto_matrix(query, train_fingerprints))


def choose_neighbours(context: SignatureContext, candidates: Sequence[int]) -> tuple[int, dict[int, float]]:
    """The k of ``candidates`` with the best mean Pearson on the validation drugs, training drugs as neighbours.

    Returns:
        (k, {k: validation mean Pearson}); without validation drugs, the first candidate.
    """
    split, fingerprints, signatures = context.split, context.inputs.fingerprints, context.inputs.signatures
    if not len(split.val):
        return candidates[0], {}
    scores = {}
    for k in candidates:
        predicted = nearest_neighbours(fingerprints[split.train], signatures[split.train], fingerprints[split.val], k)
        scores[k] = float(np.nanmean(pearson_rows(predicted, signatures[split.val])))
    return max(scores, key=lambda k: (scores[k], -k)), scores


def _nearest_neighbours(context: SignatureContext, seed: int) -> ModelOutput:
    k, scores = choose_neighbours(context, context.settings.neighbours)
    rest, test, inputs = context.rest, context.split.test, context.inputs
    predicted = nearest_neighbours(inputs.fingerprints[rest], inputs.signatures[rest], inputs.fingerprints[test], k)
    return ModelOutput(predicted, chosen={"k": k},
                       choice_table=pd.DataFrame({"k": list(scores), "validation_pearson": list(scores.values())}))


def fit_ridge(fingerprints: np.ndarray, signatures: np.ndarray, groups: np.ndarray, alphas: Sequence[float],
              folds: int = 5) -> GridSearchCV:
    """Ridge on fingerprint bits with alpha chosen by scaffold-grouped cross-validation, refitted on all rows.

    Args:
        fingerprints: (n, bits); signatures: (n, genes) targets; groups: (n,) scaffold groups (inner folds keep
            each group whole). Pass training rows only.
        alphas: the grid; folds: inner folds (at most the number of groups).

    Returns:
        The fitted ``GridSearchCV`` (``best_params_["alpha"]``, ``predict``).
    """
    n_splits = min(folds, len(np.unique(groups)))
    if n_splits < 2:
        raise ValueError("ridge needs at least 2 scaffold groups among the training drugs to choose alpha")
    search = GridSearchCV(Ridge(), {"alpha": list(alphas)}, cv=GroupKFold(n_splits=n_splits),
                          scoring="neg_mean_squared_error")
    return search.fit(np.asarray(fingerprints, dtype=np.float32), signatures, groups=groups)


def _ridge(context: SignatureContext, seed: int) -> ModelOutput:
    rest, inputs, settings = context.rest, context.inputs, context.settings
    search = fit_ridge(inputs.fingerprints[rest], inputs.signatures[rest], inputs.scaffolds[rest], settings.alphas,
                       settings.ridge_folds)
    predicted = search.predict(inputs.fingerprints[context.split.test].astype(np.float32))
    return ModelOutput(predicted, chosen={"alpha": float(search.best_params_["alpha"])})


def _mean_signature(context: SignatureContext, seed: int) -> ModelOutput:
    mean = context.inputs.signatures[context.rest].mean(axis=0, dtype=np.float64)
    return ModelOutput(np.tile(mean, (len(context.split.test), 1)))


# ------------------------------------------------------------------------------------------------ torch models

def _gat_regressor(context: SignatureContext, seed: int) -> ModelOutput:
    estimator = StructureEstimator(context.settings.structure, context.settings.fit)
    fold = context.fold
    report = estimator.fit(fold, seed, f"GAT regressor, {fold.split.kind}, seed {context.seed}")
    return ModelOutput(estimator.predict(fold, fold.split.test), estimator.network, report, estimator=estimator)


def _diffusion(context: SignatureContext, seed: int) -> ModelOutput:
    settings, fold = context.settings, context.fold
    estimator = SignatureDiffusionEstimator(settings.diffusion, settings.diffusion_fit, settings.n_samples,
                                            settings.ddim_steps)
    report = estimator.fit(fold, seed, f"diffusion, {fold.split.kind}, seed {context.seed}")
    started = time.perf_counter()
    predicted = estimator.predict(fold, fold.split.test, seed)
    return ModelOutput(predicted, estimator.network, report, estimator=estimator,
                       sampling_seconds=time.perf_counter() - started)


MODELS = ModelRegistry("consensus signatures from structure", [
    ModelSpec("mean_signature", "mean signature", _mean_signature, "baseline",
              "the mean signature of the drugs outside the test fold"),
    ModelSpec("nearest_neighbours", "Tanimoto kNN", _nearest_neighbours, "baseline",
              "similarity-weighted mean of the k most similar drugs (Morgan fingerprints), k chosen on validation"),
    ModelSpec("ridge", "ridge", _ridge, "baseline",
              "ridge regression on fingerprint bits, alpha by scaffold-grouped CV on training drugs"),
    ModelSpec("gat_regressor", "GAT regressor", _gat_regressor, "learned",
              "the graph model's GAT compound encoder and an MLP head"),
    ModelSpec("diffusion", "diffusion (fingerprint)", _diffusion, "learned",
              "conditional diffusion on the fingerprint only, mean of DDIM samples"),
])
DEFAULT_MODELS = tuple(MODELS.ids())


# ------------------------------------------------------------------------------------------------ running and tables

def run_split(inputs: SignatureInputs, split: Split, settings: SignatureSettings, seed: int,
              models: Sequence[str] = DEFAULT_MODELS) -> SplitResult:
    """Fit every model of ``models`` without the test drugs of ``split`` and score it on them.

    Returns:
        :class:`~perturbx.studies.protocol.SplitResult`; ``metrics`` has one row per (model id, test drug)
        with ``row``, ``compound_id``, ``similarity`` (Tanimoto to the most similar drug outside the test fold)
        and :data:`SIGNATURE_METRICS`; ``context`` is the :class:`SignatureContext`.
    """
    scaler = StandardScaler().fit(inputs.signatures[split.train].astype(np.float64))
    context = SignatureContext(inputs, split, seed, settings, scaler)
    outputs = protocol.run_models(MODELS, list(models), context, seed, split.kind)
    test = split.test
    similarity = chem.nearest_similarity(inputs.fingerprints[test], inputs.fingerprints[context.rest])
    compound_id = inputs.data.metadata["compound_id"].to_numpy()[test]
    frames = [signature_metrics(inputs.signatures[test], output.prediction)
              .assign(model=model_id, row=test, compound_id=compound_id, similarity=similarity)
              for model_id, output in outputs.items()]
    metrics = pd.concat(frames, ignore_index=True)
    metrics = metrics[["model", "row", "compound_id", "similarity", *SIGNATURE_METRICS]]
    return SplitResult(split, seed, metrics, outputs, context)


def summarise(result: SplitResult) -> pd.DataFrame:
    """One row per model (``model``: its id): mean of each metric over the test drugs, test size, fit-and-predict
    seconds."""
    means = protocol.mean_by_model(result.metrics, SIGNATURE_METRICS)
    return means.assign(n_test=len(result.split.test), seconds=means["model"].map(result.seconds).fillna(0.0))


def run_experiments(inputs: SignatureInputs, seeds: Sequence[int], settings: SignatureSettings,
                    models: Sequence[str] = DEFAULT_MODELS, progress: bool = True
                    ) -> tuple[pd.DataFrame, dict[tuple[int, int], SplitResult]]:
    """k-fold scaffold cross-validation per seed (a new fold assignment and new model seeds per seed).

    Returns:
        (runs, results): ``runs`` has one row per (seed, fold, model id) with the mean of each metric over the fold's
        test drugs, ``n_test`` and the fit time; ``results`` maps (seed, fold number from 1) -> result.
    """
    folds: dict[int, list[Split]] = {}

    def run_one(job: dict) -> SplitResult:
        seed = job["seed"]
        if seed not in folds:
            folds[seed] = scaffold_folds(inputs, settings.n_folds, seed, settings.val_size)
        return run_split(inputs, folds[seed][job["fold"] - 1], settings, seed, models)

    jobs = [{"seed": seed, "fold": fold} for seed in seeds for fold in range(1, settings.n_folds + 1)]
    return protocol.run_jobs(jobs, run_one, summarise, "scaffold folds", progress, settings.workers)


def seed_means(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (seed, model id): the mean of each metric over all test drugs of the seed's folds (fold means weighted by
    their test sizes; every drug is tested once per seed)."""
    metrics = [m for m in SIGNATURE_METRICS if m in runs.columns]
    weights = runs["n_test"].to_numpy()[:, None] * runs[metrics].notna()
    weighted = (runs[metrics].fillna(0.0) * weights).assign(seed=runs["seed"], model=runs["model"])
    totals = weighted.groupby(["seed", "model"], sort=False)[metrics].sum()
    counts = weights.assign(seed=runs["seed"], model=runs["model"]).groupby(["seed", "model"], sort=False).sum()
    return (totals / counts.replace(0, np.nan)).reset_index()


def epochs_table(results: dict[tuple, SplitResult]) -> pd.DataFrame:
    """Per torch model (index ``model``: ids): the best epoch and the epochs run over all jobs as text, mean
    (min-max) (``best_epoch``, ``epochs_run``), the mean best epoch (``best_epoch_mean``) and the mean fit seconds
    (``fit seconds_mean``)."""
    speed = protocol.speed_table(results, ["seed", "fold"])
    if speed.empty:
        return pd.DataFrame()
    grouped = speed.groupby("model", sort=False)
    return pd.DataFrame({
        "best_epoch": grouped["best_epoch"].agg(lambda e: f"{e.mean():.0f} ({e.min()}-{e.max()})"),
        "best_epoch_mean": grouped["best_epoch"].mean(),
        "epochs_run": grouped["epochs_run"].agg(lambda e: f"{e.mean():.0f} ({e.min()}-{e.max()})"),
        "fit seconds_mean": grouped["fit seconds"].mean()})


def results_table(runs: pd.DataFrame, results: dict[tuple, SplitResult] | None = None) -> pd.DataFrame:
    """Mean ± sd over seeds of the per-seed means of each metric per model id (numbers in ``<metric>_mean`` /
    ``_sd``); with ``results``, ``best_epoch`` and ``epochs_run`` of the torch models (mean (min-max) over folds and
    seeds, :func:`epochs_table`)."""
    table = protocol.results_table(seed_means(runs), ["model"], SIGNATURE_METRICS)
    if results is not None:
        table = table.join(epochs_table(results))
    return table


def drug_table(results: dict[tuple, SplitResult]) -> pd.DataFrame:
    """Every test drug of every job: the per-drug metrics with the job's ``seed`` and ``fold``."""
    return pd.concat([result.metrics.assign(seed=key[0], fold=key[1]) for key, result in results.items()],
                     ignore_index=True)


def similarity_bins(similarity: np.ndarray, edges: Sequence[float] = SIMILARITY_EDGES) -> pd.Categorical:
    """Bin labels of Tanimoto similarities: ``"<0.3"``, ``"0.3-0.5"``, ..., ``">=0.7"`` for the default edges
    (left-closed)."""
    edges = list(edges)
    labels = [f"<{edges[1]}"] + [f"{a}-{b}" for a, b in zip(edges[1:-1], edges[2:])] + [f">={edges[-1]}"]
    return pd.cut(np.asarray(similarity), [-np.inf, *edges[1:], np.inf], right=False, labels=labels)


def similarity_table(results: dict[tuple, SplitResult], metric: str = "pearson",
                     edges: Sequence[float] = SIMILARITY_EDGES) -> pd.DataFrame:
    """Mean ``metric`` per model (rows in the order run; index ``model``, ids) and bin of similarity to the nearest
    drug outside the test fold (columns), over every test drug of every seed; the last row, ``drugs``, counts the
    drug-seed pairs per bin."""
    drugs = drug_table(results)
    if metric not in drugs.columns:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(SIGNATURE_METRICS)}")
    drugs["similarity bin"] = similarity_bins(drugs["similarity"].to_numpy(), edges)
    table = drugs.pivot_table(index="model", columns="similarity bin", values=metric, aggfunc="mean",
                              observed=False, sort=False).reindex(drugs["model"].unique())  # models in run order
    first = drugs[drugs["model"] == drugs["model"].iloc[0]]
    counts = first.groupby("similarity bin", observed=False).size().rename("drugs")
    table = pd.concat([table, counts.to_frame().T])
    return table[list(drugs["similarity bin"].cat.categories)].rename_axis(index="model", columns="similarity")


def selection_table(results: dict[tuple, SplitResult]) -> pd.DataFrame:
    """The hyper-parameters chosen without test drugs, per job: kNN's k and ridge's alpha."""
    rows = []
    for (seed, fold), result in results.items():
        row = {"seed": seed, "fold": fold}
        for model_id, key in (("nearest_neighbours", "k"), ("ridge", "alpha")):
            if model_id in result.outputs:
                row[f"{model_id} {key}"] = result.outputs[model_id].chosen[key]
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ attributions

def _held_out_result(results: dict[tuple, SplitResult], row: int) -> tuple[tuple, SplitResult] | None:
    """The first job whose test fold holds drug ``row`` and that trained a GAT regressor."""
    for key, result in results.items():
        if "gat_regressor" in result.models and row in set(result.split.test.tolist()):
            return key, result
    return None


def explain_drugs(inputs: SignatureInputs, results: dict[tuple, SplitResult], names: Sequence[str] = KINASE_INHIBITORS,
                  n_masked: int = 3, n_random: int = 20) -> pd.DataFrame:
    """Atom attributions of the GAT regressor for named drugs, each by the model of a fold that held it out.

    For each drug of ``names`` present in ``inputs`` (case-insensitive ``compound_name``): gradient x input per
    atom (:func:`perturbx.evaluation.explain.structure_atom_attributions`), the overlap of the top atoms with the
    hinge-binder motifs (:func:`perturbx.evaluation.explain.motif_overlap`; top-k = motif size) and faithfulness:
    masking the ``n_masked`` top atoms against random atoms
    (:func:`perturbx.evaluation.explain.structure_faithfulness`).

    Returns:
        One row per drug found: drug, seed, fold, atoms, :func:`~perturbx.evaluation.explain.motif_overlap` columns,
        ``top_atoms`` (RDKit indices, largest |attribution| first) and the faithfulness columns.
    """
    meta = inputs.data.metadata
    lower = meta["compound_name"].str.lower()
    rows = []
    for name in names:
        found = np.flatnonzero(lower.to_numpy() == name.lower())
        held_out = _held_out_result(results, int(found[0])) if len(found) else None
        if held_out is None:
            continue
        (seed, fold), result = held_out
        row, model = int(found[0]), result.models["gat_regressor"]
        scores, _ = explain.structure_atom_attributions(model, np.array([row]))
        motif = explain.motif_atoms(meta.at[row, "canonical_smiles"], record=f"drug {meta.at[row, 'compound_id']}")
        faithful = explain.structure_faithfulness(model, np.array([row]), scores, n_masked, n_random, seed)
        rows.append({"drug": meta.at[row, "compound_name"], "seed": seed, "fold": fold, "atoms": len(scores[0]),
                     **explain.motif_overlap(scores[0], motif),
                     "top_atoms": np.argsort(-np.abs(scores[0]), kind="stable")[:5].tolist(),
                     **faithful.iloc[0].to_dict()})
    return pd.DataFrame(rows)
