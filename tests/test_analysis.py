import numpy as np
import pandas as pd

from perturbx.analysis import PAIR_KINDS, change_correlations
from perturbx.datasets.lincs import CuratedL1000, curate

from .datasets.test_lincs import COMPOUNDS, basal_table, tiny_plate

GENES = pd.DataFrame({"gene_id": np.arange(978), "gene_symbol": [f"G{i}" for i in range(978)]})


def replicated(n_compounds: int = 4, doses=(0.1, 1.0, 10.0), n_replicates: int = 3, noise: float = 0.2,
               condition_ids: bool = True) -> CuratedL1000:
    """One cell line and time; each compound has its own response direction, scaled by dose, plus noise."""
    rng = np.random.default_rng(0)
    rows = [(f"K{c}", dose, r) for c in range(n_compounds) for dose in doses for r in range(n_replicates)]
    meta = pd.DataFrame(rows, columns=["compound_id", "dose_um", "replicate"]).assign(
        cell_id="A375", time_h=24.0)
    meta["compound_group"] = meta["compound_id"]
    meta["condition_id"] = meta["compound_id"] + "@" + meta["dose_um"].astype(str)
    direction = rng.normal(size=(n_compounds, 978))
    compound = meta["compound_id"].str[1:].astype(int).to_numpy()
    change = direction[compound] * np.log10(meta["dose_um"].to_numpy() * 100)[:, None]
    change += noise * rng.normal(size=change.shape)
    basal = np.full((len(meta), 978), 7.0, dtype=np.float32)
    meta = meta if condition_ids else meta.drop(columns="condition_id")
    empty = pd.DataFrame(columns=["profile_id", "source", "reason"])
    return CuratedL1000((basal + change).astype(np.float32), basal, meta, empty, GENES)


def test_pairs_that_should_agree_correlate_and_unrelated_pairs_do_not():
    pairs = change_correlations(replicated())
    assert list(pairs.columns) == ["kind", "r"]
    assert list(pairs["kind"].unique()) == list(PAIR_KINDS)
    median = pairs.groupby("kind")["r"].median()
    assert median["replicates"] > 0.9 and median["same compound, adjacent doses"] > 0.9
    assert abs(median["different compounds, same dose"]) < 0.2
    assert pairs["r"].between(-1, 1).all()


def test_pair_counts_cap_and_seed():
    data = replicated()
    pairs = change_correlations(data)
    counts = pairs["kind"].value_counts()
    assert counts["replicates"] == 4 * 3 * 2  # consecutive replicates of 12 conditions
    assert counts["same compound, adjacent doses"] == 4 * 2  # first profile at each dose, neighbouring doses
    pd.testing.assert_frame_equal(change_correlations(data, seed=0), pairs)
    capped = change_correlations(data, max_pairs=5)
    assert capped["kind"].value_counts().max() == 5


def test_no_replicate_pairs_without_condition_ids():
    pairs = change_correlations(replicated(condition_ids=False))
    assert "replicates" not in set(pairs["kind"])


def test_adjacent_doses_of_curated_real_layout(mirror_env):
    curated = curate(tiny_plate(), compounds=COMPOUNDS, basal=basal_table(), level=3)
    signal = np.random.default_rng(1).normal(size=978).astype(np.float32) * 3
    curated.expression[:4] = curated.basal[:4] + signal  # aspirin (both ids): one shared response
    pairs = change_correlations(curated)
    adjacent = pairs.loc[pairs["kind"] == "same compound, adjacent doses", "r"]
    assert len(adjacent) == 2 and (adjacent > 0.9).all()  # one pair per aspirin id
