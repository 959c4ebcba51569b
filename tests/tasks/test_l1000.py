"""The L1000 task shared by the graph-model and diffusion chapters, on a tiny synthetic dataset (no data files)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from perturbx import chem
from perturbx.datasets.cmap import N_LANDMARKS
from perturbx.datasets.curated import CuratedL1000
from perturbx.models.classical import ExpressionRegressor
from perturbx.pathways import GeneGraph
from perturbx.studies import l1000_baselines
from perturbx.studies.protocol import ModelSpec
from perturbx.tasks import l1000
from perturbx.tasks.l1000 import UNKNOWN_DOSE_UM

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMILES = {"aspirin": "CC(=O)Oc1ccccc1C(=O)O", "aniline": "Nc1ccccc1", "ethanol": "CCO",
          "caffeine": "Cn1cnc2c1c(=O)n(C)c(=O)n2C", "phenol": "Oc1ccccc1", "toluene": "Cc1ccccc1"}
INPUT_FIELDS = ("compounds", "compound_index", "graphs", "fingerprints", "gene_graph")


def tiny_data(level: int = 3, seed: int = 0) -> CuratedL1000:
    """6 compounds x 3 cell lines x 2 doses, one profile each; compound 'aspirin' raises genes 0-9 by 2."""
    rng = np.random.default_rng(seed)
    rows = [(name, cell, dose) for name in SMILES for cell in ("A375", "MCF7", "PC3") for dose in (0.1, 10.0)]
    cell_basal = {c: rng.normal(8, 2, N_LANDMARKS).astype(np.float32) for c in ("A375", "MCF7", "PC3")}
    basal = np.stack([cell_basal[c] for _, c, _ in rows])
    change = rng.normal(0, 0.1, basal.shape).astype(np.float32)
    for i, (name, _, dose) in enumerate(rows):
        if name == "aspirin":
            change[i, :10] += 2.0 * (dose > 1)
    metadata = pd.DataFrame({
        "profile_id": [f"P{i}" for i in range(len(rows))], "source": "test", "level": level,
        "compound_id": [n for n, _, _ in rows], "compound_name": [n for n, _, _ in rows],
        "canonical_smiles": [chem.canonical_smiles(SMILES[n]) for n, _, _ in rows],
        "compound_group": [n for n, _, _ in rows], "smiles_source": "test", "cell_id": [c for _, c, _ in rows],
        "dose_um": [d for _, _, d in rows], "time_h": 24.0, "plate": np.nan, "basal_source": "test"})
    genes = pd.DataFrame({"gene_id": np.arange(N_LANDMARKS), "gene_symbol": [f"G{i}" for i in range(N_LANDMARKS)]})
    return CuratedL1000(basal + change, basal, metadata, pd.DataFrame(columns=["profile_id", "source", "reason"]),
                        genes)


def plate_data(n_replicates: int = 3, noise: float = 0.1, seed: int = 0, doses=(0.08, 0.4, 2.0, 10.0),
               times=(6.0, 24.0), compounds=("aspirin", "aniline", "caffeine", "phenol")) -> CuratedL1000:
    """A replicate plate like SKBR3: one cell line, compounds x doses x times x ``n_replicates`` wells sharing one
    basal; each compound's change is its own direction scaled by log dose, plus well noise of SD ``noise``."""
    rng = np.random.default_rng(seed)
    rows = [(name, dose, time) for name in compounds for dose in doses for time in times for _ in range(n_replicates)]
    basal = np.broadcast_to(rng.normal(8, 2, N_LANDMARKS), (len(rows), N_LANDMARKS)).astype(np.float32)
    direction = {name: rng.normal(0, 1, N_LANDMARKS) for name in compounds}
    change = np.stack([direction[n] * np.log10(d * 100) for n, d, _ in rows])
    change = (change + rng.normal(0, noise, change.shape)).astype(np.float32)
    metadata = pd.DataFrame({
        "profile_id": [f"W{i}" for i in range(len(rows))], "source": "test", "level": 3,
        "compound_id": [n for n, _, _ in rows], "compound_name": [n for n, _, _ in rows],
        "canonical_smiles": [chem.canonical_smiles(SMILES[n]) for n, _, _ in rows],
        "compound_group": [n for n, _, _ in rows], "smiles_source": "test", "cell_id": "SKBR3",
        "dose_um": [d for _, d, _ in rows], "time_h": [t for _, _, t in rows], "plate": "P1", "basal_source": "test"})
    genes = pd.DataFrame({"gene_id": np.arange(N_LANDMARKS), "gene_symbol": [f"G{i}" for i in range(N_LANDMARKS)]})
    return CuratedL1000(basal + change, basal.copy(), metadata,
                        pd.DataFrame(columns=["profile_id", "source", "reason"]), genes)


def tiny_graph() -> GeneGraph:
    source = np.arange(0, 40, 2)
    edges = np.concatenate([np.stack([source, source + 1]), np.stack([source + 1, source])], axis=1)
    return GeneGraph(edges.astype(np.int64), np.ones(edges.shape[1], np.float32),
                     {"first ten": list(range(10)), "next ten": list(range(10, 20))}, N_LANDMARKS)


def with_data(inputs: l1000.Inputs, data: CuratedL1000) -> l1000.Inputs:
    """``inputs`` with other profiles of the same compounds (the featurisation is reused)."""
    return l1000.Inputs(data, *[getattr(inputs, f) for f in INPUT_FIELDS])


@pytest.fixture(scope="module")
def inputs() -> l1000.Inputs:
    return l1000.build_inputs(tiny_data(), tiny_graph(), fingerprint_bits=256)


# --------------------------------------------------------------------------------------------------- inputs

def test_build_inputs_indexes_compounds_by_structure(inputs):
    meta = inputs.data.metadata
    assert len(inputs.compounds) == len(SMILES) == len(inputs.graphs)
    assert (inputs.compounds["canonical_smiles"].to_numpy()[inputs.compound_index] == meta["canonical_smiles"]).all()
    assert inputs.fingerprints.shape == (len(SMILES), 256)
    assert inputs.n_genes == N_LANDMARKS
    assert inputs.gene_graph is not None and l1000.build_inputs(tiny_data()).gene_graph is None


def test_build_inputs_refuses_z_scores():
    with pytest.raises(ValueError, match="not level-3 log2 expression.*level 5"):
        l1000.build_inputs(tiny_data(level=5), tiny_graph())


def test_build_inputs_names_a_bad_smiles():
    data = tiny_data()
    data.metadata.loc[data.metadata["compound_id"] == "ethanol", "canonical_smiles"] = "C1CC("
    with pytest.raises(chem.InvalidSmilesError, match="ethanol"):
        l1000.build_inputs(data, tiny_graph())


# --------------------------------------------------------------------------------------------------- prepare

def test_prepare_uses_training_rows_only(inputs):
    train = np.arange(0, 24)
    prepared = l1000.prepare(inputs, train)
    np.testing.assert_allclose(prepared.basal[train].mean(axis=0), 0, atol=1e-4)
    altered = tiny_data()
    altered.basal[24:] += 100.0  # test rows: must not move the training statistics
    again = l1000.prepare(with_data(inputs, altered), train)
    np.testing.assert_allclose(again.basal[train], prepared.basal[train], atol=1e-5)
    assert np.all(again.basal[24:] > prepared.basal[24:] + 1)


def test_unknown_dose_gets_flag_zero(inputs):
    data = tiny_data()
    data.metadata.loc[0, "dose_um"] = np.nan
    prepared = l1000.prepare(with_data(inputs, data), np.arange(36))
    assert prepared.dose[0].tolist() == [0.0, 0.0]
    assert prepared.dose[1:, 1].min() == 1.0
    np.testing.assert_allclose(prepared.time[:, 0], 0.0, atol=1e-9)  # one training time: centred, SD guarded
    # the encoder-decoder's dose encoding puts an unknown dose at 1 µM
    assert prepared.dose_scale[0, 0] == pytest.approx(np.log1p(UNKNOWN_DOSE_UM))


def test_dose_scale_is_log1p_of_the_dose_without_training_statistics(inputs):
    doses = inputs.data.metadata["dose_um"].to_numpy()
    everything = l1000.prepare(inputs, np.arange(36))
    few = l1000.prepare(inputs, np.flatnonzero(doses < 1))  # training doses all 0.1 µM
    assert everything.dose_scale.shape == (36, 1) and everything.dose_scale.dtype == np.float32
    np.testing.assert_allclose(everything.dose_scale[:, 0], np.log1p(doses), rtol=1e-6)
    np.testing.assert_array_equal(few.dose_scale, everything.dose_scale)
    assert not np.allclose(few.dose[:, 0], everything.dose[:, 0])  # the standardised dose does depend on them


def test_design_matrix_stacks_fingerprint_basal_dose_time(inputs):
    prepared = l1000.prepare(inputs, np.arange(24))
    design = prepared.design(inputs)
    assert design.shape == (36, 256 + N_LANDMARKS + 4)
    np.testing.assert_array_equal(design[:, :256], inputs.fingerprints[inputs.compound_index])
    np.testing.assert_array_equal(design[:, 256:256 + N_LANDMARKS], prepared.basal)
    np.testing.assert_array_equal(design[:, -4:], np.hstack([prepared.dose, prepared.time]))


# --------------------------------------------------------------------------------------------------- batch

def test_batch_is_a_typed_tuple_of_the_rows(inputs):
    prepared = l1000.prepare(inputs, np.arange(24))
    rows = np.array([30, 2, 7])
    found = l1000.batch(inputs, prepared, rows)
    assert isinstance(found, l1000.L1000Batch)
    assert found._fields == ("compound", "basal", "dose", "time", "dose_scale", "target")
    assert found.compound.dtype == torch.long and found.compound.tolist() == inputs.compound_index[rows].tolist()
    expected = {"basal": prepared.basal[rows], "dose": prepared.dose[rows], "time": prepared.time[rows],
                "dose_scale": prepared.dose_scale[rows], "target": inputs.data.change[rows]}
    for name, values in expected.items():
        tensor = getattr(found, name)
        assert tensor.dtype == torch.float32 and tensor.shape[0] == 3, name
        np.testing.assert_array_equal(tensor.numpy(), values, err_msg=name)
    target = np.full((3, N_LANDMARKS), 7.0, np.float32)
    np.testing.assert_array_equal(l1000.batch(inputs, prepared, rows, target).target.numpy(), target)


# --------------------------------------------------------------------------------------------------- splits

def test_condition_groups_join_compound_cell_dose_time_or_use_condition_id():
    meta = tiny_data().metadata
    groups = l1000.condition_groups(meta)
    assert groups[0] == "aspirin|A375|0.1|24.0"
    assert len(set(groups)) == len(meta)  # one profile per condition in the tiny data
    replicated = pd.concat([meta, meta], ignore_index=True)
    doubled = l1000.condition_groups(replicated)
    np.testing.assert_array_equal(doubled[:len(meta)], doubled[len(meta):])  # replicates share their label
    labelled = meta.assign(condition_id=[f"C{i // 2}" for i in range(len(meta))])
    assert l1000.condition_groups(labelled).tolist()[:4] == ["C0", "C0", "C1", "C1"]


@pytest.mark.parametrize("kind, column", [("random", None), ("unseen compound", "compound_group"),
                                          ("unseen cell", "cell_id")])
def test_splits_hold_out_what_they_say(inputs, kind, column):
    assert kind in l1000.SPLIT_KINDS
    split = l1000.make_split(inputs, kind, seed=1, test_size=0.3, val_size=0.2)
    meta = inputs.data.metadata
    groups = l1000.condition_groups(meta) if column is None else meta[column].to_numpy()
    assert not set(groups[split.test]) & set(groups[split.train])
    assert len(split.test) and len(split.train)


def test_random_split_keeps_replicates_of_a_condition_together(inputs):
    data = tiny_data()
    data.metadata["condition_id"] = [f"C{i // 3}" for i in range(len(data))]  # triples of profiles
    split = l1000.make_split(with_data(inputs, data), "random", seed=0, test_size=0.3, val_size=0.2)
    conditions = data.metadata["condition_id"].to_numpy()
    parts = [set(conditions[p]) for p in (split.train, split.val, split.test)]
    assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]


def test_make_split_rejects_unknown_kind(inputs):
    with pytest.raises(ValueError, match="unknown split kind 'unseen dose'; use one of random, unseen compound, "
                                         "unseen cell, held-out dose, held-out time"):
        l1000.make_split(inputs, "unseen dose", seed=0)
    with pytest.raises(ValueError, match="held-out dose split: no compound has 3 or more known levels"):
        l1000.make_split(inputs, "held-out dose", seed=0)  # the tiny data has two doses per compound


@pytest.fixture(scope="module")
def plate_inputs() -> l1000.Inputs:
    return l1000.build_inputs(plate_data(), fingerprint_bits=256)


@pytest.mark.parametrize("seed", [0, 3])
def test_held_out_dose_and_time_splits_of_a_dose_time_plate(plate_inputs, seed):
    meta = plate_inputs.data.metadata
    conditions, compounds = l1000.condition_groups(meta), meta["compound_group"].to_numpy()
    dose, time = meta["dose_um"].to_numpy(), meta["time_h"].to_numpy()
    for kind in ("held-out dose", "held-out time"):
        assert kind in l1000.SPLIT_KINDS
        split = l1000.make_split(plate_inputs, kind, seed=seed, test_size=0.25, val_size=0.125)
        assert split.kind == kind and len(split.train) + len(split.val) + len(split.test) == len(meta)
        parts = [set(conditions[p]) for p in (split.train, split.val, split.test)]
        assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]  # whole conditions
        assert all(np.sum(conditions == c) == 3 for c in parts[2])  # all 3 replicates of a test condition
        for rows in (split.test, split.val):  # validation: the same kind of hold-out
            for compound in np.unique(compounds[rows]):
                mine = rows[compounds[rows] == compound]
                trained = split.train[compounds[split.train] == compound]
                if kind == "held-out dose":
                    assert set(dose[mine]) <= {0.4, 2.0} and len(set(dose[mine])) == 1
                    assert set(time[mine]) == {6.0, 24.0} and {0.08, 10.0} <= set(dose[trained])
                else:
                    assert len(set(time[mine])) == 1 and set(dose[mine]) == set(dose)
                    assert set(time[trained]) == {6.0, 24.0} - set(time[mine])
    dose_split = l1000.make_split(plate_inputs, "held-out dose", seed=seed)
    assert set(compounds[dose_split.test]) == set(compounds)  # an interior dose of every compound


def test_highest_dose_rows_picks_per_compound(inputs):
    meta = inputs.data.metadata
    rows = np.arange(len(meta))
    picked = l1000.highest_dose_rows(inputs, rows)
    assert len(picked) == len(SMILES) and (np.diff(picked) > 0).all()
    assert (meta.loc[picked, "dose_um"] == 10.0).all()
    assert sorted(meta.loc[picked, "compound_group"]) == sorted(SMILES)
    two = l1000.highest_dose_rows(inputs, rows, per_compound=2, limit=5)
    assert len(two) == 5 and (meta.loc[two, "dose_um"] == 10.0).all()
    low = np.flatnonzero(meta["dose_um"] < 1)
    assert set(l1000.highest_dose_rows(inputs, low)) <= set(low)


# --------------------------------------------------------------------------------------------------- baselines

def test_cell_line_means_fall_back_to_overall_mean(inputs):
    meta = inputs.data.metadata
    train = np.flatnonzero(meta["cell_id"] != "PC3")
    test = np.flatnonzero(meta["cell_id"].isin(["PC3", "A375"]))
    predicted = l1000.cell_line_means(inputs, train, test)
    change = inputs.data.change
    a375 = change[np.flatnonzero(meta["cell_id"] == "A375")].mean(axis=0)
    for row, position in enumerate(test):
        expected = a375 if meta.at[position, "cell_id"] == "A375" else change[train].mean(axis=0)
        np.testing.assert_allclose(predicted[row], expected, rtol=1e-5, atol=1e-6)


def test_baselines_are_registered_by_id():
    assert all(isinstance(spec, ModelSpec) and spec.role == "baseline" for spec in l1000_baselines.BASELINES)
    assert [spec.id for spec in l1000_baselines.BASELINES] == ["no_change", "cell_line_mean", "ridge", "random_forest",
                                                    "gradient_boosting", "mlp"]
    labels = [spec.label for spec in l1000_baselines.BASELINES]
    assert labels == ["basal (no change)", "training mean per cell line", "ridge", "random forest",
                      "gradient boosting", "MLP"]


@pytest.fixture(scope="module")
def context(inputs) -> l1000_baselines.L1000Context:
    split = l1000.make_split(inputs, "unseen cell", seed=0, test_size=0.3, val_size=0.0)
    settings = SimpleNamespace(n_target_components=4, n_estimators=5)
    return l1000_baselines.L1000Context(inputs, l1000.prepare(inputs, split.train), split, 0, settings)


def test_trivial_baselines_predict_no_change_and_the_cell_line_mean(inputs, context):
    specs = {spec.id: spec for spec in l1000_baselines.BASELINES}
    split = context.split
    none = specs["no_change"].run(context, 0).prediction
    assert none.shape == (len(split.test), N_LANDMARKS) and not none.any()
    np.testing.assert_allclose(specs["cell_line_mean"].run(context, 0).prediction,
                               l1000.cell_line_means(inputs, split.train, split.test))


@pytest.mark.parametrize("model_id", ["ridge", "random_forest"])
def test_regressor_baselines_fit_training_rows_and_predict_test_rows(inputs, context, model_id):
    spec = {spec.id: spec for spec in l1000_baselines.BASELINES}[model_id]
    output = spec.run(context, 0)
    split, design = context.split, context.prepared.design(inputs)
    assert output.prediction.shape == (len(split.test), N_LANDMARKS) and np.isfinite(output.prediction).all()
    # the same regressor, by id, fitted on the training rows with the context's sizes and the given seed
    expected = ExpressionRegressor(model_id, 4, 0, 5).fit(design[split.train], inputs.data.change[split.train])
    np.testing.assert_allclose(output.prediction, expected.predict(design[split.test]), rtol=1e-6, atol=1e-6)
    # fitted on other rows, it predicts something else
    other = ExpressionRegressor(model_id, 4, 0, 5).fit(design[split.test], inputs.data.change[split.test])
    assert not np.allclose(output.prediction, other.predict(design[split.test]), atol=1e-4)


# --------------------------------------------------------------------------------------------------- simulator

def test_simulation_for_profile_sizes():
    sizes = {}
    for profile in ("smoke", "quick", "full"):
        config = l1000.simulation_for(profile, seed=3)
        assert config.seed == 3
        sizes[profile] = (config.n_compounds * config.n_cells * len(config.doses_um) * len(config.times_h)
                          * config.n_replicates)
    assert sizes == {"smoke": 864, "quick": 8640, "full": 43200}


def fake_simulation(n_conditions: int = 4, n_genes: int = 5):
    """Two profiles per condition; condition c has true mean 10 + c and SD 0.1 * (c + 1) in every gene."""
    rows = np.repeat(np.arange(n_conditions), 2)
    basal = np.arange(len(rows) * n_genes, dtype=np.float32).reshape(len(rows), n_genes) / 100
    truth = SimpleNamespace(mean=(10 + np.arange(n_conditions, dtype=np.float32))[:, None].repeat(n_genes, 1),
                            sd=(0.1 * (np.arange(n_conditions) + 1))[:, None].repeat(n_genes, 1))

    def sample(ids, n, seed=0):
        rng = np.random.default_rng(seed)
        index = np.array([int(i[1:]) for i in ids])
        return truth.mean[index][:, None] + truth.sd[index][:, None] * rng.normal(size=(len(ids), n, n_genes))

    metadata = pd.DataFrame({"condition_id": [f"C{r}" for r in rows]})
    return SimpleNamespace(truth=truth, data=SimpleNamespace(basal=basal, metadata=metadata), sample=sample,
                           condition_rows=lambda profiles=None: rows if profiles is None else rows[profiles])


def test_true_changes_and_truth_moments():
    simulation = fake_simulation()
    changes = l1000.true_changes(simulation)
    np.testing.assert_allclose(changes, 10 + np.repeat(np.arange(4), 2)[:, None] - simulation.data.basal)
    truth = l1000.Truth(simulation, n_reference=6, seed=1)
    mean, sd = truth.moments(np.array([7, 0]))
    np.testing.assert_allclose(mean, changes[[7, 0]])
    np.testing.assert_allclose(sd[:, 0], [0.4, 0.1])


def test_truth_reference_is_reproducible_per_split_and_offset():
    truth = l1000.Truth(fake_simulation(), n_reference=6, seed=1)
    rows = np.array([0, 3, 5])
    first = truth.reference(rows, split_seed=2)
    assert first.shape == (3, 6, 5)
    np.testing.assert_array_equal(truth.reference(rows, split_seed=2), first)
    assert not np.allclose(truth.reference(rows, split_seed=2, offset=1), first)
    assert not np.allclose(truth.reference(rows, split_seed=3), first)
    assert truth.reference(rows, split_seed=2, n=2).shape == (3, 2, 5)
    np.testing.assert_allclose(first.mean(axis=(1, 2)), [10, 11, 12], atol=0.5)  # conditions 0, 1, 2
