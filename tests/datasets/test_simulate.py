import os

import numpy as np
import pytest

from perturbx.datasets.cmap_write import write_clue_gctx
from perturbx.datasets.lincs import curate_files
from perturbx.datasets.simulate import SimulationConfig, simulate

SMALL = SimulationConfig(n_compounds=8, n_cells=3, doses_um=(0.1, 1.0, 10.0), times_h=(6.0, 24.0),
                         n_replicates=4, n_programs=6, n_causal_bits=12, seed=1)


@pytest.fixture(scope="module")
def simulation(tmp_path_factory):
    from ..conftest import SHARED_DATA

    mirror = os.environ.get("PERTURBX_DATA_MIRROR") or str(SHARED_DATA)
    if not os.path.isdir(os.path.join(mirror, "lincs")):
        pytest.skip(f"no data mirror at {mirror}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERTURBX_DATA_MIRROR", mirror)
        patch.setenv("PERTURBX_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        return simulate(SMALL)


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
