import os
from dataclasses import replace

import numpy as np
import pytest

from perturbx.datasets.cmap_write import write_clue_gctx
from perturbx.datasets.curate import curate_files
from perturbx.datasets.reference_tables import compound_table
from perturbx.datasets.simulate import LINCS_CORE_CELLS, SimulationConfig, lincs_scale_config, simulate

SMALL = SimulationConfig(n_compounds=8, n_cells=3, doses_um=(0.1, 1.0, 10.0), times_h=(6.0, 24.0),
                         n_replicates=4, n_programs=6, n_causal_bits=12, seed=1)
SMOKE = lincs_scale_config("smoke", seed=0)


def _simulate_from_mirror(tmp_path_factory, config):
    from ..conftest import SHARED_DATA

    mirror = os.environ.get("PERTURBX_DATA_MIRROR") or str(SHARED_DATA)
    if not os.path.isdir(os.path.join(mirror, "lincs")):
        pytest.skip(f"no data mirror at {mirror}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERTURBX_DATA_MIRROR", mirror)
        patch.setenv("PERTURBX_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        return simulate(config)


@pytest.fixture(scope="module")
def simulation(tmp_path_factory):
    return _simulate_from_mirror(tmp_path_factory, SMALL)


@pytest.fixture(scope="module")
def lincs_simulation(tmp_path_factory):
    return _simulate_from_mirror(tmp_path_factory, SMOKE)


def test_factorial_design_unchanged_by_the_sparse_design(simulation):
    # values of SMALL drawn by simulate.py before the "lincs" design existed (every draw must stay the same)
    data, truth = simulation.data, simulation.truth
    assert truth.compounds.index.tolist() == ["BRD-K38588505", "BRD-K37949327", "BRD-K06890060", "BRD-K28284219",
                                              "BRD-K74534237", "BRD-K94390040", "BRD-K97961692", "BRD-K14428604"]
    assert truth.cell_modulation.index.tolist() == ["COV434", "NCIH1563", "XC.P922"]
    assert truth.causal_bits.tolist() == [76, 102, 322, 369, 422, 577, 607, 698, 831, 841, 853, 985]
    np.testing.assert_allclose(data.expression[[0, 57, 191], [0, 400, 977]],
                               [9.40080451965332, 9.012030601501465, 8.723657608032227], rtol=1e-6)
    sums = [x.sum(dtype=np.float64) for x in (data.expression, truth.mean, truth.sd)]
    np.testing.assert_allclose(sums, [4740539.611064985, 1184350.6381671429, 70933.27676315606], rtol=1e-6)


def test_explicit_factorial_design_is_the_default(simulation, mirror_env):
    again = simulate(replace(SMALL, design="factorial", n_reference=5, p_second_dose=0.9))  # lincs-only fields
    np.testing.assert_array_equal(again.data.expression, simulation.data.expression)
    np.testing.assert_array_equal(again.truth.sd, simulation.truth.sd)


def test_shapes_and_metadata(simulation):
    n_conditions = 8 * 3 * 3 * 2
    assert simulation.data.expression.shape == (n_conditions * 4, 978)
    assert simulation.truth.mean.shape == simulation.truth.sd.shape == (n_conditions, 978)
    meta = simulation.data.metadata
    assert meta["condition_id"].nunique() == n_conditions and set(meta["replicate"]) == {1, 2, 3, 4}
    assert meta["compound_group"].nunique() == 8 and meta["cell_id"].nunique() == 3
    assert meta["canonical_smiles"].notna().all()


def test_same_seed_same_data(simulation, mirror_env):
    again = simulate(SMALL)
    np.testing.assert_array_equal(again.data.expression, simulation.data.expression)


def test_true_moments_match_fresh_samples(simulation, mirror_env):
    ids = simulation.truth.conditions["condition_id"].to_numpy()[:6]
    draws = simulation.sample(ids, n=3000, seed=3)
    mean_z = (draws.mean(axis=1) - simulation.truth.mean[:6]) / (simulation.truth.sd[:6] / np.sqrt(3000))
    assert np.abs(mean_z).max() < 5.5  # 5,868 z-scores: |z| > 5.5 has probability ~ 2e-4 under the truth
    ratio = draws.std(axis=1) / simulation.truth.sd[:6]
    assert 0.9 < ratio.min() and ratio.max() < 1.1


def test_dose_response_is_monotone_in_the_mean(simulation):
    cond = simulation.truth.conditions
    first = np.flatnonzero(simulation.data.metadata["replicate"] == 1)  # one profile per condition
    rows = simulation.condition_rows(first)
    size = np.empty(len(cond))
    size[rows] = np.abs(simulation.truth.mean[rows] - simulation.data.basal[first]).sum(axis=1)
    by_dose = cond.assign(size=size).groupby(["compound_id", "cell_id", "time_h"])["size"].apply(list)
    assert all(np.all(np.diff(sizes) >= -1e-4) for sizes in by_dose)


def test_condition_rows_map_profiles_to_their_condition(simulation):
    rows = simulation.condition_rows()
    meta, cond = simulation.data.metadata, simulation.truth.conditions
    assert rows.shape == (len(meta),)
    assert (cond["condition_id"].to_numpy()[rows] == meta["condition_id"].to_numpy()).all()
    np.testing.assert_array_equal(simulation.condition_rows(np.arange(3, 7)), rows[3:7])


def test_causal_genes_carry_the_structure_effect(simulation):
    truth = simulation.truth
    compound = truth.compounds.index[0]
    causal = truth.causal_genes(compound)
    assert 0 < len(causal) < 978
    assert set(causal) <= {g for genes in truth.programs.values() for g in genes}


def test_clue_layout_round_trip_through_the_curation_command(simulation, mirror_env, tmp_path):
    data = simulation.data
    paths = write_clue_gctx(data.expression, data.metadata, tmp_path / "clue", n_genes=1200, progress=False)
    summary, _ = curate_files(paths["matrix"], tmp_path / "out", meta=paths["siginfo"],
                              compounds=paths["compoundinfo"], genes=paths["geneinfo"], level=3)
    assert summary["n_profiles"] == len(simulation.data) and summary["dropped"] == {}
    assert summary["doses_um"] == [0.1, 1.0, 10.0]
    np.testing.assert_array_equal(np.load(tmp_path / "out/expression.npy"), simulation.data.expression)


def _expected_profiles(config: SimulationConfig) -> float:
    """Expected profile count of the lincs design (ignoring the cap at n_cells cell lines)."""
    grid = config.n_cells * len(config.doses_um) * len(config.times_h)
    other = (1 + config.extra_cells_mean) * (1 + config.p_second_dose) * (1 + config.p_second_time)
    return config.n_replicates * (config.n_reference * grid + (config.n_compounds - config.n_reference) * other)


def test_lincs_presets_are_lincs_sized():
    quick, full = lincs_scale_config("quick"), lincs_scale_config("full")
    assert quick.design == full.design == "lincs"
    assert 300 <= quick.n_compounds < full.n_compounds and 3_000 <= _expected_profiles(quick) <= 8_000
    assert full.n_compounds >= 1000 and 15_000 <= _expected_profiles(full) <= 25_000
    assert lincs_scale_config("quick", seed=3, n_replicates=2).n_replicates == 2
    with pytest.raises(ValueError, match="unknown profile"):
        lincs_scale_config("huge")


@pytest.mark.parametrize("changes, message", [({"design": "grid"}, "unknown design"),
                                              ({"n_conditions": 10}, "n_conditions"),
                                              ({"main_dose_um": 5.0}, "main_dose_um"),
                                              ({"n_reference": 1000}, "n_reference")])
def test_lincs_design_rejects_bad_configs(changes, message):
    with pytest.raises(ValueError, match=message):
        simulate(replace(SMOKE, **changes))


def test_lincs_design_shape(lincs_simulation, mirror_env):
    data, truth = lincs_simulation.data, lincs_simulation.truth
    cond, meta = truth.conditions, data.metadata
    assert cond["compound_id"].nunique() == SMOKE.n_compounds
    assert set(cond["compound_id"]) <= set(compound_table().index)  # real LINCS structures
    assert not cond.duplicated(["compound_id", "cell_id", "dose_um", "time_h"]).any()
    assert data.expression.shape == (len(cond) * SMOKE.n_replicates, 978) and data.expression.dtype == np.float32
    assert truth.mean.shape == truth.sd.shape == (len(cond), 978)
    assert 0.8 < len(meta) / _expected_profiles(SMOKE) < 1.2
    assert set(cond["cell_id"]) == set(truth.cell_modulation.index) == set(LINCS_CORE_CELLS[:SMOKE.n_cells])
    per_compound = cond.groupby("compound_id").agg(cells=("cell_id", "nunique"), doses=("dose_um", "nunique"),
                                                   times=("time_h", "nunique"), n=("row", "size"))
    reference = truth.compounds.index[:SMOKE.n_reference]  # the first compounds drawn are the reference ones
    assert (per_compound.loc[reference, "n"] == SMOKE.n_cells * len(SMOKE.doses_um) * len(SMOKE.times_h)).all()
    others = per_compound.drop(reference)
    assert (others["cells"] <= 3).mean() > 0.8 and others["cells"].median() <= 2
    assert (others["doses"] <= 2).all() and (others["times"] <= 2).all() and (others["n"] < 24).all()
    assert cond.loc[~cond["compound_id"].isin(reference), "dose_um"].value_counts().idxmax() == SMOKE.main_dose_um


def test_lincs_truth_methods_work_on_the_sparse_design(lincs_simulation, mirror_env):
    rows = lincs_simulation.condition_rows()
    cond, meta = lincs_simulation.truth.conditions, lincs_simulation.data.metadata
    assert (cond["condition_id"].to_numpy()[rows] == meta["condition_id"].to_numpy()).all()
    picked = np.flatnonzero(~cond["compound_id"].isin(lincs_simulation.truth.compounds.index[:SMOKE.n_reference]))[:4]
    draws = lincs_simulation.sample(cond["condition_id"].to_numpy()[picked], n=2000, seed=1)
    assert draws.shape == (4, 2000, 978)
    truth = lincs_simulation.truth
    mean_z = (draws.mean(axis=1) - truth.mean[picked]) / (truth.sd[picked] / np.sqrt(2000))
    assert np.abs(mean_z).max() < 5.5
    assert len(truth.causal_genes(cond["compound_id"].iloc[picked[0]])) < 978


def test_lincs_smoke_is_deterministic(lincs_simulation, mirror_env):  # its speed: benchmarks/reader_speed.py
    again = simulate(SMOKE)
    np.testing.assert_array_equal(again.data.expression, lincs_simulation.data.expression)
    assert again.truth.conditions.equals(lincs_simulation.truth.conditions)
    other = simulate(replace(SMOKE, seed=1))
    assert not other.truth.conditions[["compound_id", "cell_id"]].equals(
        lincs_simulation.truth.conditions[["compound_id", "cell_id"]])
