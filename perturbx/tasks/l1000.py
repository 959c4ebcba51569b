"""The L1000 task shared by the graph-model and diffusion chapters.

Every model of drug-induced expression predicts the **change from basal** of the 978 landmark genes of one
profile from its compound, its cell line's basal expression, its dose and its time. This module holds what both
chapters need for that task:

- :class:`Inputs` (:func:`build_inputs`): split-independent inputs of one curated dataset (compound structures,
  graphs, fingerprints, the pathway gene graph);
- :class:`Prepared` (:func:`prepare`): basal, dose and time scaled with statistics of the training rows only;
- :class:`L1000Batch` (:func:`batch`): the typed batch every torch model of the task is trained on;
- :func:`make_split`: random (whole conditions), unseen-compound and unseen-cell splits, and for a dose x time
  design held-out dose (interpolation) and held-out time;
- the baselines every chapter compares against (:data:`BASELINES`): no change, the training mean per cell line,
  and scikit-learn regressors on [fingerprint, basal, dose, time];
- simulator helpers: :func:`simulation_for` (the benchmark size of a profile), :func:`true_changes` and
  :class:`Truth` (exact moments and fresh draws of the simulated conditions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from .. import chem
from ..datasets.curated import CuratedL1000
from ..datasets.simulate import Simulation, SimulationConfig
from ..pathways import GeneGraph
from ..profiles import check_profile
from ..runtime import derive_seed
from ..splits import Split, group_split, level_split, unseen_cell_split, unseen_compound_split
from . import digest

SPLIT_KINDS = ("random", "unseen compound", "unseen cell", "held-out dose", "held-out time")


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

    @property
    def n_genes(self) -> int:
        """Genes per profile (978 landmarks)."""
        return self.data.expression.shape[1]

    def split(self, kind: str, seed: int, **sizes: float) -> Split:
        """:func:`make_split` of these inputs."""
        return make_split(self, kind, seed, **sizes)

    def fold(self, split: Split, standardise_target: bool = False, scalers: FeatureScalers | None = None,
             target_scaler: TargetScaler | None = None) -> L1000Fold:
        """What a model sees of ``split``: the inputs scaled with statistics of ``split.train`` (or with the given
        ``scalers``, e.g. a saved model's), and with ``standardise_target`` the per-gene scaler of the change."""
        scalers = FeatureScalers.fit(self, split.train) if scalers is None else scalers
        if standardise_target and target_scaler is None:
            target_scaler = TargetScaler.fit(self.data.change[split.train])
        return L1000Fold(self, split, scalers.transform(self), target_scaler)

    def fingerprint(self) -> dict[str, str]:
        """What a model fitted on these inputs depends on: the sha256 of the compound structures (in order) and of
        the genes (in order); a saved model checks it when loaded."""
        return {"compounds_sha256": digest(self.compounds["canonical_smiles"]),
                "genes_sha256": digest(self.data.genes["gene_id"])}


def build_inputs(data: CuratedL1000, gene_graph: GeneGraph | None = None, fingerprint_bits: int = 1024) -> Inputs:
    """Featurise the compounds of ``data`` (graphs and fingerprints); checks that values are log2 expression.

    Raises:
        ValueError: profiles that are not level 3 (z-scores have no basal to add a change to), naming them,
            or landmark genes the data did not measure.
        chem.InvalidSmilesError: a SMILES that cannot be featurised, naming the compound.
    """
    data.require_level(3, "level-3 log2 expression",
                       "expression models need treated and basal profiles in the same units",
                       "data.subset(data.metadata['level'] == 3)")
    data.require_all_genes("the expression models take and predict all 978 landmark genes")
    meta = data.metadata
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
        dose_scale: float32 (n, 1) PRnet's log(1 + dose in µM), unknown doses as 1 µM (no statistics involved).
        scalers: the statistics the values were scaled with (what a saved model keeps).
    """

    basal: np.ndarray
    dose: np.ndarray
    time: np.ndarray
    dose_scale: np.ndarray
    scalers: FeatureScalers | None = None

    def design(self, inputs: Inputs) -> np.ndarray:
        """Design matrix of the classical models: [fingerprint bits, basal, dose, time], (n, bits + genes + 4)."""
        return np.hstack([inputs.fingerprints[inputs.compound_index], self.basal, self.dose, self.time])


def _logged(values: np.ndarray, log) -> tuple[np.ndarray, np.ndarray]:
    """(log of the known values, NaN elsewhere; the known mask): a dose or time is known when finite and > 0."""
    known = np.isfinite(values) & (values > 0)
    return np.where(known, log(np.where(known, values, 1.0)), np.nan), known


def _log_statistics(values: np.ndarray, train: np.ndarray, log) -> tuple[float, float]:
    """Mean and SD of the logged known values of the training rows (0 and 1 when there are none to use)."""
    logged, known = _logged(values, log)
    reference = logged[train][known[train]]
    mean = reference.mean() if len(reference) else 0.0
    sd = reference.std() if len(reference) > 1 and reference.std() > 1e-6 else 1.0  # one value: centring only
    return float(mean), float(sd)


def _scaled_log(values: np.ndarray, log, mean: float, sd: float) -> np.ndarray:
    logged, known = _logged(values, log)
    return np.stack([np.where(known, (logged - mean) / sd, 0.0), known.astype(float)], axis=1).astype(np.float32)


@dataclass
class FeatureScalers:
    """The statistics of one split's training profiles that scale every model input of the task.

    Attributes:
        basal_mean, basal_sd: float32 (genes,) per-gene mean and SD of basal expression (SD 1 where constant).
        log_dose: (mean, SD) of log10 dose in µM of the known doses; log_time: the same for log2 time in h.
    """

    basal_mean: np.ndarray
    basal_sd: np.ndarray
    log_dose: tuple[float, float]
    log_time: tuple[float, float]

    @classmethod
    def fit(cls, inputs: Inputs, train: np.ndarray) -> FeatureScalers:
        """Statistics of the profiles at positions ``train`` only."""
        basal = inputs.data.basal
        mean, sd = basal[train].mean(axis=0), basal[train].std(axis=0)
        sd = np.where(sd > 1e-6, sd, 1.0)  # one training cell line: centring only
        meta = inputs.data.metadata
        return cls(mean, sd, _log_statistics(meta["dose_um"].to_numpy(float), train, np.log10),
                   _log_statistics(meta["time_h"].to_numpy(float), train, np.log2))

    def transform(self, inputs: Inputs) -> Prepared:
        """Every profile of ``inputs`` scaled with these statistics."""
        doses = inputs.data.metadata["dose_um"].to_numpy(float)
        return Prepared(((inputs.data.basal - self.basal_mean) / self.basal_sd).astype(np.float32),
                        _scaled_log(doses, np.log10, *self.log_dose),
                        _scaled_log(inputs.data.metadata["time_h"].to_numpy(float), np.log2, *self.log_time),
                        dose_scale(doses), self)

    def arrays(self) -> dict[str, np.ndarray]:
        """The statistics as named arrays (for a saved model's ``scalers.npz``)."""
        return {"basal_mean": self.basal_mean, "basal_sd": self.basal_sd, "log_dose": np.array(self.log_dose),
                "log_time": np.array(self.log_time)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> FeatureScalers:
        """The inverse of :meth:`arrays`."""
        return cls(arrays["basal_mean"], arrays["basal_sd"], tuple(float(v) for v in arrays["log_dose"]),
                   tuple(float(v) for v in arrays["log_time"]))


def prepare(inputs: Inputs, train: np.ndarray) -> Prepared:
    """Scale basal, dose and time with statistics of the profiles at positions ``train`` only."""
    return FeatureScalers.fit(inputs, train).transform(inputs)


class L1000Batch(NamedTuple):
    """The inputs and target of a batch of profiles, as tensors with one first dimension ``b``.

    Attributes:
        compound: long (b,): row of :attr:`Inputs.compounds` (index into the graphs and fingerprints).
        basal: float32 (b, genes): standardised basal expression.
        dose: float32 (b, 2): standardised log10 dose and a known flag.
        time: float32 (b, 2): standardised log2 time and a known flag.
        dose_scale: float32 (b, 1): log(1 + dose µM), the encoder-decoder's dose encoding.
        target: float32 (b, genes): the change from basal the model is trained on (log2 for the graph model,
            standardised per gene for the generative models).
    """

    compound: torch.Tensor
    basal: torch.Tensor
    dose: torch.Tensor
    time: torch.Tensor
    dose_scale: torch.Tensor
    target: torch.Tensor


def batch(inputs: Inputs, prepared: Prepared, rows: np.ndarray, target: np.ndarray | None = None) -> L1000Batch:
    """The :class:`L1000Batch` of the profiles at ``rows``; ``target`` (len(rows), genes) defaults to their log2
    change from basal."""
    target = inputs.data.change[rows] if target is None else target
    return L1000Batch(torch.as_tensor(inputs.compound_index[rows], dtype=torch.long),
                      torch.as_tensor(prepared.basal[rows]), torch.as_tensor(prepared.dose[rows]),
                      torch.as_tensor(prepared.time[rows]), torch.as_tensor(prepared.dose_scale[rows]),
                      torch.as_tensor(target))


def condition_groups(metadata: pd.DataFrame) -> np.ndarray:
    """One label per condition (compound structure, cell line, dose, time): replicates share it.

    Simulated data has ``condition_id``; for real data the label is built from the four columns.
    """
    if "condition_id" in metadata.columns:
        return metadata["condition_id"].to_numpy()
    parts = [metadata[c].astype(str) for c in ("compound_group", "cell_id", "dose_um", "time_h")]
    return (parts[0] + "|" + parts[1] + "|" + parts[2] + "|" + parts[3]).to_numpy()


def make_split(inputs: Inputs, kind: str, seed: int, test_size: float = 0.2, val_size: float = 0.1) -> Split:
    """One split of the profiles of ``inputs`` (positions into ``inputs.data``); whole conditions (all replicates)
    are always on one side.

    Kinds (:data:`SPLIT_KINDS`):

    - ``random``: whole conditions at random (replicates of a test condition are never trained on);
    - ``unseen compound`` / ``unseen cell``: compound structure groups / cell lines held out;
    - ``held-out dose`` (interpolation): for each compound, one interior dose (neither its lowest nor its highest)
      held out at all times and cell lines, seeded and balanced over the interior doses; ``test_size`` is not
      used (one dose per compound). Validation: another interior dose (of the doses left) of a ``val_size``
      fraction of the (compound, dose) blocks' worth of compounds;
    - ``held-out time``: for a ``test_size`` fraction of the (compound, time) blocks, one compound's time held out
      at all doses, the held-out times balanced across compounds; each such compound is trained on at its other
      time(s), and other compounds at this time. Validation: the same from the remaining compounds (a compound
      keeps at least one time in training, so with two times a compound is held out in test or validation, not
      both; holding out a time of *every* compound would leave none for a validation of the same kind).

    Raises:
        ValueError: an unknown kind, naming the known ones; a dose or time design with too few levels per compound.
    """
    meta = inputs.data.metadata
    sizes = {"test_size": test_size, "val_size": val_size, "seed": seed}
    if kind == "random":
        return group_split(condition_groups(meta), kind="random", **sizes)
    if kind == "unseen compound":
        return unseen_compound_split(meta, **sizes)
    if kind == "unseen cell":
        return unseen_cell_split(meta, **sizes)
    if kind in ("held-out dose", "held-out time"):
        dose = kind == "held-out dose"
        levels = meta["dose_um" if dose else "time_h"].to_numpy(float)
        levels = np.where(levels > 0, levels, np.nan)  # unknown (NaN, -666) doses and times: always trained on
        return level_split(meta["compound_group"].to_numpy(), levels, None if dose else test_size, val_size, seed,
                           interior=dose, kind=kind, groups=condition_groups(meta))
    raise ValueError(f"unknown split kind {kind!r}; use one of {', '.join(SPLIT_KINDS)}")


def highest_dose_rows(inputs: Inputs, rows: np.ndarray, per_compound: int = 1, limit: int | None = None
                      ) -> np.ndarray:
    """Sorted positions among ``rows`` of the ``per_compound`` highest-dose profiles of each compound structure
    (unknown doses last; compound groups in sorted order), at most ``limit`` of them."""
    rows = np.asarray(rows)
    table = inputs.data.metadata.iloc[rows].assign(row=rows)
    picked = (table.sort_values("dose_um", ascending=False, na_position="last")
              .groupby("compound_group", sort=True).head(per_compound)["row"].to_numpy()[:limit])
    return np.sort(picked)


def cell_line_means(inputs: Inputs, train: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Mean training change of each row's cell line; the mean of all training changes for unseen cell lines."""
    change, cells = inputs.data.change, inputs.data.metadata["cell_id"].to_numpy()
    means = pd.DataFrame(change[train]).groupby(cells[train]).mean()
    overall = change[train].mean(axis=0)
    return np.stack([means.loc[c].to_numpy() if c in means.index else overall for c in cells[rows]])


def simulation_for(profile: str, seed: int = 0) -> SimulationConfig:
    """The semi-synthetic benchmark size of a profile (compounds x cell lines x 6 doses x 2 times x replicates):
    smoke 12 x 3 x 2 replicates (864 profiles), quick 60 x 6 x 2 (8,640), full 100 x 12 x 3 (43,200)."""
    sizes = {"smoke": (12, 3, 2), "quick": (60, 6, 2), "full": (100, 12, 3)}[check_profile(profile)]
    return SimulationConfig(n_compounds=sizes[0], n_cells=sizes[1], n_replicates=sizes[2], seed=seed)


def true_changes(simulation: Simulation) -> np.ndarray:
    """The simulator's exact mean change of each simulated profile's condition, float32 (n, genes)."""
    return simulation.truth.mean[simulation.condition_rows()] - simulation.data.basal


@dataclass
class Truth:
    """What the simulator knows about test conditions: exact moments and fresh draws."""

    simulation: Simulation
    n_reference: int
    seed: int = 0

    def moments(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """True mean change and SD (each (len(rows), genes)) of the conditions of profiles ``rows``."""
        truth, index = self.simulation.truth, self.simulation.condition_rows(rows)
        return truth.mean[index] - self.simulation.data.basal[rows], truth.sd[index]

    def draws(self, rows: np.ndarray, n: int, seed: int) -> np.ndarray:
        """(len(rows), n, genes) fresh profiles (log2 expression) of the conditions of profiles ``rows``."""
        ids = self.simulation.data.metadata["condition_id"].to_numpy()[rows]
        return self.simulation.sample(ids, n, seed=seed)

    def reference(self, rows: np.ndarray, split_seed: int, offset: int = 0, n: int | None = None) -> np.ndarray:
        """The draws every model of one split is compared with (``n_reference`` per condition unless ``n``);
        ``offset`` gives an independent set from the same split seed."""
        return self.draws(rows, self.n_reference if n is None else n,
                          derive_seed(self.seed, "reference draws", split_seed, offset))


UNKNOWN_DOSE_UM = 1.0  # dose used for the scaling of profiles whose dose is not recorded


def dose_scale(dose_um: np.ndarray) -> np.ndarray:
    r"""PRnet's dose scaling :math:`\log(1 + d)`, d in µM; unknown (NaN or non-positive) doses count as 1 µM.

    Returns:
        float32 (n, 1).
    """
    dose = np.asarray(dose_um, dtype=float)
    dose = np.where(np.isfinite(dose) & (dose > 0), dose, UNKNOWN_DOSE_UM)
    return np.log1p(dose).astype(np.float32)[:, None]


@dataclass
class TargetScaler:
    """Per-gene standardisation of changes from basal, fitted on training profiles only."""

    mean: np.ndarray
    sd: np.ndarray

    @classmethod
    def fit(cls, change: np.ndarray) -> TargetScaler:
        """change: (n_train, genes) log2 changes of the training profiles."""
        sd = change.std(axis=0)
        return cls(change.mean(axis=0).astype(np.float32), np.where(sd > 1e-6, sd, 1.0).astype(np.float32))

    def transform(self, change: np.ndarray) -> np.ndarray:
        """(n, genes) log2 changes -> standardised values."""
        return ((change - self.mean) / self.sd).astype(np.float32)

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        """Standardised values (..., genes) back to log2 changes."""
        return scaled * self.sd + self.mean

    def arrays(self) -> dict[str, np.ndarray]:
        """The scaler as named arrays (for a saved model's ``scalers.npz``)."""
        return {"target_mean": self.mean, "target_sd": self.sd}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> TargetScaler:
        """The inverse of :meth:`arrays`."""
        return cls(arrays["target_mean"], arrays["target_sd"])


@dataclass
class GenerativePrepared:
    """Inputs of one split for the generative models: :class:`Prepared` (basal, dose, time) and the scaler of the
    change from basal, both fitted on the training profiles."""

    features: Prepared
    scaler: TargetScaler


def prepare_generative(inputs: Inputs, train: np.ndarray) -> GenerativePrepared:
    """Every statistic from the profiles at positions ``train`` only."""
    return GenerativePrepared(prepare(inputs, train), TargetScaler.fit(inputs.data.change[train]))


def generative_batch(inputs: Inputs, prepared: GenerativePrepared, rows: np.ndarray) -> L1000Batch:
    """The :class:`L1000Batch` of ``rows`` with the standardised change as target."""
    return batch(inputs, prepared.features, rows, prepared.scaler.transform(inputs.data.change[rows]))


@dataclass
class L1000Fold:
    """One split of the task as a model sees it (:meth:`Inputs.fold`).

    Attributes:
        inputs: the split-independent inputs.
        split: positions of the train, validation and test profiles.
        features: basal, dose and time scaled with the training statistics (:class:`Prepared`).
        target_scaler: for the generative models, the per-gene standardisation of the change (None: the models
            are trained on the log2 change itself).
    """

    inputs: Inputs
    split: Split
    features: Prepared
    target_scaler: TargetScaler | None = None

    @property
    def scalers(self) -> FeatureScalers:
        """The statistics the features were scaled with."""
        return self.features.scalers

    @property
    def generative(self) -> GenerativePrepared:
        """The fold's scaling in the form the generative helpers take; a ``ValueError`` without a target scaler."""
        if self.target_scaler is None:
            raise ValueError("this fold has no target scaler: build it with inputs.fold(split, "
                             "standardise_target=True)")
        return GenerativePrepared(self.features, self.target_scaler)

    def batch(self, rows: np.ndarray) -> L1000Batch:
        """The :class:`L1000Batch` of the profiles at ``rows`` (target: standardised change with a target scaler,
        else the log2 change)."""
        if self.target_scaler is None:
            return batch(self.inputs, self.features, rows)
        return generative_batch(self.inputs, self.generative, rows)


def test_conditions(inputs: Inputs, test: np.ndarray) -> pd.DataFrame:
    """One row per condition among the ``test`` profiles: ``condition``, ``row`` (the first test profile, whose
    compound, basal, dose and time stand for the condition), ``members`` (array of its test profile positions)."""
    test = np.asarray(test)
    codes, labels = pd.factorize(condition_groups(inputs.data.metadata.iloc[test]))
    members = [test[codes == i] for i in range(len(labels))]
    return pd.DataFrame({"condition": labels, "row": [m[0] for m in members], "members": members})
