"""Drug-induced expression experiments: inputs, preprocessing fitted on training profiles, every model on one split.

The interpretable-graph chapter calls :func:`build_inputs` once per dataset and :func:`run_experiments` for its
splits; everything between a split and the metrics is here, so every model sees the same inputs and nothing is
fitted on test profiles (basal standardisation, dose/time scaling, target PCA, feature scaling, early stopping).

Models compared (all predict the change from basal; the predicted profile is basal + change):

- ``basal (no change)``: the paired basal profile itself;
- ``training mean per cell line``: the mean training change of the profile's cell line (all training profiles
  for an unseen cell line);
- ``ridge``, ``random forest``, ``gradient boosting``, ``MLP``: scikit-learn on [Morgan fingerprint, standardised
  basal, dose, time] (:class:`perturbx.models.classical.ExpressionRegressor`);
- ``graph model``: :class:`perturbx.models.gnn.PerturbationGNN`;
- ``true mean (simulator)``: on simulated data only, the generator's exact conditional mean, the best any model
  can do against noisy replicates (a ceiling, not a competitor).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.std import tqdm

from . import chem
from .datasets.lincs import CuratedL1000
from .metrics import EXPRESSION_METRICS, expression_metrics, summarise_runs
from .models.classical import EXPRESSION_REGRESSORS, ExpressionRegressor
from .models.gnn import GNNConfig, PerturbationGNN, gnn_loss
from .pathways import GeneGraph
from .splits import Split, group_split, unseen_cell_split, unseen_compound_split
from .training import FitConfig, FitResult, fit

TRIVIAL = ("basal (no change)", "training mean per cell line")
GRAPH_MODEL = "graph model"
ORACLE = "true mean (simulator)"
ALL_MODELS = (*TRIVIAL, *EXPRESSION_REGRESSORS, GRAPH_MODEL)
SPLIT_KINDS = ("random", "unseen compound", "unseen cell")


@dataclass
class ExpressionSettings:
    """How much work one split costs: the graph model's sizes and optimisation, the classical models' sizes."""

    fit: FitConfig = field(default_factory=lambda: FitConfig(epochs=60, batch_size=64, lr=1e-3,
                                                             early_stopping_patience=8, plateau_patience=3,
                                                             plateau_factor=0.5))
    gnn: GNNConfig = field(default_factory=GNNConfig)
    n_target_components: int = 32
    n_estimators: int = 200


def settings_for(profile: str, device: str = "cpu") -> ExpressionSettings:
    """Settings of a chapter profile: ``smoke`` (seconds), ``quick`` (minutes on a CPU), ``full`` (a GPU)."""
    if profile == "smoke":
        return ExpressionSettings(FitConfig(epochs=2, batch_size=64, lr=1e-3, device=device, progress=False),
                                  GNNConfig(width=16, compound_layers=2, compound_heads=2, transformer_heads=2,
                                            head_hidden=64), n_target_components=8, n_estimators=20)
    if profile == "quick":
        return ExpressionSettings(FitConfig(epochs=20, batch_size=64, lr=1e-3, early_stopping_patience=5,
                                            plateau_patience=2, plateau_factor=0.5, device=device),
                                  GNNConfig(width=32, transformer_heads=4, head_hidden=256), n_target_components=16,
                                  n_estimators=100)
    settings = ExpressionSettings()
    settings.fit.device = device
    return settings


def simulation_for(profile: str, seed: int = 0):
    """The semi-synthetic benchmark size of a profile (compounds x cell lines x 6 doses x 2 times x replicates):
    smoke 12 x 3 x 2 replicates (864 profiles), quick 60 x 6 x 2 (8,640), full 100 x 12 x 3 (43,200)."""
    from .datasets.simulate import SimulationConfig

    sizes = {"smoke": (12, 3, 2), "quick": (60, 6, 2), "full": (100, 12, 3)}[profile]
    return SimulationConfig(n_compounds=sizes[0], n_cells=sizes[1], n_replicates=sizes[2], seed=seed)


@dataclass
class Inputs:
    """Split-independent inputs of one dataset.

    Attributes:
        data: the curated profiles (level-3 log2 expression with paired basal).
        compounds: one row per distinct compound structure (canonical SMILES): compound_name, compound_group.
        compound_index: (n,) row of ``compounds`` of each profile.
        graphs: molecular graphs in ``compounds`` order.
        fingerprints: uint8 (n_compounds, bits) Morgan fingerprints (radius 2).
        gene_graph: the pathway gene graph (None for models that do not use it).
    """

    data: CuratedL1000
    compounds: pd.DataFrame
    compound_index: np.ndarray
    graphs: list
    fingerprints: np.ndarray
    gene_graph: GeneGraph | None


def build_inputs(data: CuratedL1000, gene_graph: GeneGraph | None = None, fingerprint_bits: int = 1024) -> Inputs:
    """Featurise the compounds of ``data`` (graphs and fingerprints); checks that values are log2 expression.

    Raises:
        ValueError: profiles that are not level 3 (z-scores have no basal to add a change to), naming them.
        chem.InvalidSmilesError: a SMILES that cannot be featurised, naming the compound.
    """
    meta = data.metadata
    not_level3 = meta.index[meta["level"] != 3]
    if len(not_level3):
        raise ValueError(f"{len(not_level3)} profiles are not level-3 log2 expression (e.g. "
                         f"{meta.at[not_level3[0], 'profile_id']}, level {meta.at[not_level3[0], 'level']}); "
                         "expression models need treated and basal profiles in the same units. "
                         "Fix: data.subset(data.metadata['level'] == 3).")
    compounds = (meta.groupby("canonical_smiles", sort=True)
                 .agg(compound_name=("compound_name", "first"), compound_group=("compound_group", "first"),
                      compound_id=("compound_id", "first"), profiles=("profile_id", "size")).reset_index())
    compound_index = compounds.reset_index().set_index("canonical_smiles").loc[meta["canonical_smiles"], "index"]
    records = [f"compound {c} ({n})" for c, n in zip(compounds["compound_id"], compounds["compound_name"])]
    graphs = [chem.molecule_graph(s, r) for s, r in zip(compounds["canonical_smiles"], records)]
    fingerprints = chem.morgan_fingerprints(compounds["canonical_smiles"].tolist(), n_bits=fingerprint_bits,
                                            records=records)
    return Inputs(data, compounds, compound_index.to_numpy(), graphs, fingerprints, gene_graph)


@dataclass
class Prepared:
    """Inputs scaled with statistics of the training profiles of one split.

    Attributes:
        basal: float32 (n, genes) basal expression standardised per gene (training mean and SD).
        dose, time: float32 (n, 2): standardised log10 dose (µM) / log2 time (h), 0 when unknown, and a 1/0
            "known" flag.
    """

    basal: np.ndarray
    dose: np.ndarray
    time: np.ndarray

    def design(self, inputs: Inputs) -> np.ndarray:
        """Design matrix of the classical models: [fingerprint bits, basal, dose, time], (n, bits + genes + 4)."""
        return np.hstack([inputs.fingerprints[inputs.compound_index], self.basal, self.dose, self.time])


def _scaled_log(values: np.ndarray, train: np.ndarray, log) -> np.ndarray:
    known = np.isfinite(values) & (values > 0)
    logged = np.where(known, log(np.where(known, values, 1.0)), np.nan)
    reference = logged[train][known[train]]
    mean = reference.mean() if len(reference) else 0.0
    sd = reference.std() if len(reference) > 1 and reference.std() > 1e-6 else 1.0  # one value: centring only
    return np.stack([np.where(known, (logged - mean) / sd, 0.0), known.astype(float)], axis=1).astype(np.float32)


def prepare(inputs: Inputs, train: np.ndarray) -> Prepared:
    """Scale basal, dose and time with statistics of the profiles at positions ``train`` only."""
    basal = inputs.data.basal
    mean, sd = basal[train].mean(axis=0), basal[train].std(axis=0)
    sd = np.where(sd > 1e-6, sd, 1.0)  # one training cell line: centring only
    meta = inputs.data.metadata
    return Prepared(((basal - mean) / sd).astype(np.float32),
                    _scaled_log(meta["dose_um"].to_numpy(float), train, np.log10),
                    _scaled_log(meta["time_h"].to_numpy(float), train, np.log2))


def condition_groups(metadata: pd.DataFrame) -> np.ndarray:
    """One label per condition (compound structure, cell line, dose, time): replicates share it.

    Simulated data has ``condition_id``; for real data the label is built from the four columns.
    """
    if "condition_id" in metadata.columns:
        return metadata["condition_id"].to_numpy()
    parts = [metadata[c].astype(str) for c in ("compound_group", "cell_id", "dose_um", "time_h")]
    return (parts[0] + "|" + parts[1] + "|" + parts[2] + "|" + parts[3]).to_numpy()


def make_split(inputs: Inputs, kind: str, seed: int, test_size: float = 0.2, val_size: float = 0.1) -> Split:
    """``random`` (whole conditions: replicates of a test condition are never trained on), ``unseen compound``
    (compound structure groups held out) or ``unseen cell`` (cell lines held out)."""
    meta = inputs.data.metadata
    sizes = {"test_size": test_size, "val_size": val_size, "seed": seed}
    if kind == "random":
        return group_split(condition_groups(meta), kind="random", **sizes)
    if kind == "unseen compound":
        return unseen_compound_split(meta, **sizes)
    if kind == "unseen cell":
        return unseen_cell_split(meta, **sizes)
    raise ValueError(f"unknown split kind {kind!r}; use one of {', '.join(SPLIT_KINDS)}")


def tensors(inputs: Inputs, prepared: Prepared, rows: np.ndarray) -> list[torch.Tensor]:
    """The graph model's inputs at ``rows``: compound index, basal, dose, time, change (target)."""
    return [torch.as_tensor(inputs.compound_index[rows], dtype=torch.long), torch.as_tensor(prepared.basal[rows]),
            torch.as_tensor(prepared.dose[rows]), torch.as_tensor(prepared.time[rows]),
            torch.as_tensor(inputs.data.change[rows])]


def new_graph_model(inputs: Inputs, config: GNNConfig) -> PerturbationGNN:
    graph = inputs.gene_graph
    if graph is None:
        raise ValueError("these inputs have no gene graph; build them with expression.build_inputs(data, gene_graph)")
    return PerturbationGNN(inputs.graphs, graph.edge_index, graph.edge_weight, graph.n_genes, config)


def fit_graph_model(inputs: Inputs, prepared: Prepared, split: Split, settings: ExpressionSettings,
                    seed: int, description: str = "graph model") -> tuple[PerturbationGNN, FitResult]:
    """Train :class:`PerturbationGNN` on ``split.train`` with early stopping on ``split.val``."""
    torch.manual_seed(seed)
    model = new_graph_model(inputs, settings.gnn)
    config = FitConfig(**{**settings.fit.__dict__, "seed": seed, "description": description})
    val = tensors(inputs, prepared, split.val) if len(split.val) else None
    result = fit(model, gnn_loss, tensors(inputs, prepared, split.train), val, config)
    return model, result


@torch.no_grad()
def predict_graph_model(model: PerturbationGNN, inputs: Inputs, prepared: Prepared, rows: np.ndarray,
                        batch_size: int = 256) -> np.ndarray:
    """(len(rows), genes) predicted changes, in batches, model in eval mode on its own device."""
    model.eval()
    device = next(model.parameters()).device
    parts = []
    for start in range(0, len(rows), batch_size):
        batch = [t.to(device) for t in tensors(inputs, prepared, rows[start:start + batch_size])[:4]]
        parts.append(model(*batch).cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, inputs.data.expression.shape[1]), np.float32)


def cell_line_means(inputs: Inputs, train: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Mean training change of each row's cell line; the mean of all training changes for unseen cell lines."""
    change, cells = inputs.data.change, inputs.data.metadata["cell_id"].to_numpy()
    means = pd.DataFrame(change[train]).groupby(cells[train]).mean()
    overall = change[train].mean(axis=0)
    return np.stack([means.loc[c].to_numpy() if c in means.index else overall for c in cells[rows]])


@dataclass
class SplitResult:
    """One split of one seed: per-profile metrics of every model, predicted changes, the trained graph model."""

    split: Split
    seed: int
    metrics: pd.DataFrame  # one row per (model, test profile): model, row, *EXPRESSION_METRICS
    predictions: dict[str, np.ndarray]  # model -> (n_test, genes) predicted change
    graph_model: PerturbationGNN | None
    prepared: Prepared
    fit: FitResult | None
    seconds: dict[str, float]


def run_split(inputs: Inputs, split: Split, settings: ExpressionSettings, seed: int,
              models: Sequence[str] = ALL_MODELS, true_change: np.ndarray | None = None) -> SplitResult:
    """Fit every model in ``models`` on ``split.train`` and score it on ``split.test``.

    Args:
        true_change: (n, genes) the simulator's exact mean change of each profile's condition; adds the
            ``true mean (simulator)`` row.
    """
    import time

    prepared = prepare(inputs, split.train)
    test, data = split.test, inputs.data
    predictions, seconds, graph_model, fit_result = {}, {}, None, None
    for name in models:
        started = time.perf_counter()
        if name == "basal (no change)":
            predictions[name] = np.zeros((len(test), data.expression.shape[1]), np.float32)
        elif name == "training mean per cell line":
            predictions[name] = cell_line_means(inputs, split.train, test)
        elif name in EXPRESSION_REGRESSORS:
            design = prepared.design(inputs)
            model = ExpressionRegressor(name, settings.n_target_components, seed, settings.n_estimators)
            predictions[name] = model.fit(design[split.train], data.change[split.train]).predict(design[test])
        elif name == GRAPH_MODEL:
            graph_model, fit_result = fit_graph_model(inputs, prepared, split, settings, seed,
                                                      f"graph model, {split.kind}, seed {seed}")
            predictions[name] = predict_graph_model(graph_model, inputs, prepared, test)
        else:
            raise ValueError(f"unknown model {name!r}; use any of {', '.join(ALL_MODELS)}")
        seconds[name] = time.perf_counter() - started
    if true_change is not None:
        predictions[ORACLE] = true_change[test]
    frames = [expression_metrics(data.expression[test], data.basal[test] + change, data.basal[test])
              .assign(model=name, row=test) for name, change in predictions.items()]
    return SplitResult(split, seed, pd.concat(frames, ignore_index=True), predictions, graph_model, prepared,
                       fit_result, seconds)


def run_experiments(inputs: Inputs, kinds: Sequence[str], seeds: Sequence[int], settings: ExpressionSettings,
                    models: Sequence[str] = ALL_MODELS, true_change: np.ndarray | None = None,
                    progress: bool = True) -> tuple[pd.DataFrame, dict[tuple[str, int], SplitResult]]:
    """Every split kind x seed (a new split and new model seeds per seed).

    Returns:
        (runs, results): ``runs`` has one row per (split, seed, model) with the mean of each metric over the
        test profiles, the test size and the fit time; ``results`` maps (split kind, seed) -> :class:`SplitResult`.
    """
    rows, results = [], {}
    jobs = [(kind, seed) for kind in kinds for seed in seeds]
    for kind, seed in tqdm(jobs, desc="splits", disable=not progress, leave=False):
        result = run_split(inputs, make_split(inputs, kind, seed), settings, seed, models, true_change)
        results[(kind, seed)] = result
        means = result.metrics.groupby("model", sort=False)[list(EXPRESSION_METRICS)].mean()
        for model, values in means.iterrows():
            rows.append({"split": kind, "seed": seed, "model": model, **values.to_dict(),
                         "n_test": len(result.split.test), "seconds": result.seconds.get(model, 0.0)})
    return pd.DataFrame(rows), results


def results_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sd over seeds of each metric per (split, model) (numbers in ``<metric>_mean`` / ``_sd`` too)."""
    return summarise_runs(runs, ["split", "model"], list(EXPRESSION_METRICS))


def true_changes(simulation) -> np.ndarray:
    """The simulator's exact mean change of each simulated profile's condition, float32 (n, genes)."""
    return simulation.truth.mean[simulation.condition_rows()] - simulation.data.basal
