import h5py
import numpy as np
import pandas as pd

from perturbx.datasets.cmap import landmark_genes, read_gctx_ids, read_matrix, read_table
from perturbx.datasets.cmap_write import write_clue_gctx
from perturbx.datasets.curate import curate_files

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
CAFFEINE = "Cn1c(=O)c2c(ncn2C)n(C)c1=O"


def profiles(with_replicates: bool = True) -> tuple[np.ndarray, pd.DataFrame]:
    """Two compounds x two cell lines x two doses x two times x two replicates of landmark expression."""
    rows = [(compound, cell, dose, time, r) for compound in ("BRD-K1", "BRD-K2") for cell in ("A375", "MCF7")
            for dose in (0.1, 10.0) for time in (6.0, 24.0) for r in (1, 2)]
    meta = pd.DataFrame(rows, columns=["compound_id", "cell_id", "dose_um", "time_h", "replicate"])
    meta["compound_name"] = meta["compound_id"].map({"BRD-K1": "aspirin", "BRD-K2": "caffeine"})
    meta["canonical_smiles"] = meta["compound_id"].map({"BRD-K1": ASPIRIN, "BRD-K2": CAFFEINE})
    expression = np.random.default_rng(0).uniform(4, 12, size=(len(meta), 978)).astype(np.float32)
    return expression, meta if with_replicates else meta.drop(columns="replicate")


def test_clue_layout_is_ids_only_with_interleaved_landmarks(mirror_env, tmp_path):
    expression, meta = profiles()
    paths = write_clue_gctx(expression, meta, tmp_path / "clue", n_genes=1100, progress=False)
    assert paths["matrix"].name == "level3_sim_n32x1100.gctx"
    row_meta, col_meta = read_gctx_ids(paths["matrix"])
    assert len(row_meta) == 1100 and len(col_meta) == 32 and col_meta.shape[1] == 0  # ids only
    with h5py.File(paths["matrix"], "r") as handle:
        assert handle["0/DATA/0/matrix"].shape == (32, 1100)
    landmarks = set(landmark_genes()["gene_id"].astype(str))
    assert not set(row_meta.index[:978]) <= landmarks  # landmark rows are not simply the first 978
    genes = read_table(paths["geneinfo"])
    assert (genes["feature_space"] == "landmark").sum() == 978 and len(genes) == 1100
    compounds = read_table(paths["compoundinfo"])
    assert compounds["pert_id"].tolist() == ["BRD-K1", "BRD-K2"]
    assert compounds["inchi_key"].iloc[0] == "BSYNRYMUTXBXSQ-UHFFFAOYSA-N"
    siginfo = read_table(paths["siginfo"])
    assert siginfo["sig_id"].iloc[0] == "PXSIM_A375_6H:BRD-K1:0.1:1" and siginfo["sig_id"].is_unique


def test_round_trip_through_the_readers_and_the_curation_command(mirror_env, tmp_path):
    expression, meta = profiles()
    paths = write_clue_gctx(expression, meta, tmp_path / "clue", n_genes=1100, progress=False)
    genes = read_table(paths["geneinfo"]).set_index("gene_id")
    np.testing.assert_array_equal(read_matrix(paths["matrix"], genes=genes).values, expression)
    summary, _ = curate_files(paths["matrix"], tmp_path / "out", meta=paths["siginfo"],
                              compounds=paths["compoundinfo"], genes=paths["geneinfo"], level=3)
    assert summary["n_profiles"] == 32 and summary["dropped"] == {} and summary["doses_um"] == [0.1, 10.0]
    np.testing.assert_array_equal(np.load(tmp_path / "out/expression.npy"), expression)
    curated = pd.read_csv(tmp_path / "out/metadata.csv")
    assert (curated["cell_id"] == meta["cell_id"]).all() and (curated["time_h"] == meta["time_h"]).all()


def test_replicates_are_numbered_when_the_metadata_has_none(mirror_env, tmp_path):
    expression, meta = profiles(with_replicates=False)
    paths = write_clue_gctx(expression, meta, tmp_path / "clue", n_genes=978, progress=False, name="real")
    assert paths["matrix"].name == "level3_real_n32x978.gctx"
    sig_ids = read_table(paths["siginfo"])["sig_id"]
    assert sig_ids.is_unique and sig_ids.str.startswith("PXREAL_").all()
    assert sig_ids.str.rsplit(":", n=1).str[1].tolist() == [str(r) for r in profiles()[1]["replicate"]]
