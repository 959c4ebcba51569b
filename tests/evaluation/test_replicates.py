import numpy as np
import pandas as pd
import pytest

from perturbx.datasets.curated import CuratedL1000
from perturbx.datasets.lincs import curate
from perturbx.evaluation.replicates import (
    PAIR_KINDS,
    change_correlations,
    dmso_spread,
    leave_one_out_ceiling,
    leave_one_out_means,
    other_compound_agreement,
    replicate_agreement,
    replicate_summary,
    split_half_ceiling,
)

from ..datasets.test_lincs import COMPOUNDS, basal_table, tiny_plate

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


# --------------------------------------------------------------------------------------------------- replicates

def replicate_set(signal: float = 1.0, noise: float = 1.0, n_conditions: int = 12, n_replicates: int = 4,
                  seed: int = 0) -> CuratedL1000:
    """Each condition has its own true change (sd ``signal`` per gene); each well adds independent noise (sd
    ``noise``), so two wells correlate signal² / (signal² + noise²) and means of k wells signal² / (signal² +
    noise² / k)."""
    rng = np.random.default_rng(seed)
    rows = [(c, r) for c in range(n_conditions) for r in range(n_replicates)]
    meta = pd.DataFrame(rows, columns=["condition", "replicate"]).assign(
        compound_id=lambda m: "K" + m["condition"].astype(str), cell_id="SKBR3", dose_um=1.0, time_h=6.0)
    meta["replicate_group"] = meta["compound_id"] + "|1 uM|6 h"
    truth = signal * rng.normal(size=(n_conditions, 978))
    change = truth[meta["condition"].to_numpy()] + noise * rng.normal(size=(len(meta), 978))
    basal = np.full((len(meta), 978), 8.0, dtype=np.float32)
    empty = pd.DataFrame(columns=["profile_id", "source", "reason"])
    return CuratedL1000((basal + change).astype(np.float32), basal, meta, empty, GENES)


def test_identical_replicates_agree_perfectly():
    data = replicate_set(noise=0.0)
    agreement, ceiling = replicate_agreement(data), split_half_ceiling(data)
    assert len(agreement) == len(ceiling) == 12
    np.testing.assert_allclose(agreement["mean_r"], 1, atol=1e-5)
    np.testing.assert_allclose(ceiling["r_split_half"], 1, atol=1e-5)
    np.testing.assert_allclose(ceiling["r_spearman_brown"], 1, atol=1e-5)
    assert (agreement["n_pairs"] == 6).all() and (agreement["n_replicates"] == 4).all()
    assert {"compound_id", "cell_id", "dose_um", "time_h"} <= set(agreement.columns)


def test_independent_noise_agrees_about_zero():
    data = replicate_set(signal=0.0, n_conditions=30)
    assert abs(replicate_agreement(data)["mean_r"].mean()) < 0.02
    assert abs(split_half_ceiling(data)["r_split_half"].mean()) < 0.02


def test_agreement_and_ceiling_match_their_expected_values():
    data = replicate_set(signal=1.0, noise=1.0, n_conditions=20, n_replicates=4)
    assert replicate_agreement(data)["mean_r"].mean() == pytest.approx(0.5, abs=0.03)  # 1 / (1 + 1)
    ceiling = split_half_ceiling(data)
    assert ceiling["r_split_half"].mean() == pytest.approx(2 / 3, abs=0.03)  # means of 2 wells: 1 / (1 + 1/2)
    assert ceiling["r_spearman_brown"].mean() == pytest.approx(0.8, abs=0.03)  # mean of 4 wells: 1 / (1 + 1/4)


def test_split_counts_seed_and_small_conditions():
    counts = {n: int(split_half_ceiling(replicate_set(n_conditions=1, n_replicates=n), n_splits=50)["n_splits"][0])
              for n in (2, 3, 4, 5, 6, 12)}
    assert counts == {2: 1, 3: 3, 4: 3, 5: 10, 6: 10, 12: 50}  # every distinct split, else n_splits random ones
    data = replicate_set(n_replicates=12, n_conditions=2)
    pd.testing.assert_frame_equal(split_half_ceiling(data, n_splits=20, seed=3),
                                  split_half_ceiling(data, n_splits=20, seed=3))
    single = replicate_set(n_replicates=1)
    assert split_half_ceiling(single).empty and replicate_agreement(single).empty
    with pytest.raises(KeyError, match="replicate_group"):
        replicate_agreement(replicated())


def test_leave_one_out_means_average_the_other_replicates():
    change = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0], [7.0, 7.0]])
    others = leave_one_out_means(change, np.array(["a", "a", "a", "b"]))
    np.testing.assert_allclose(others[:3], [[4.0, 3.0], [3.0, 2.0], [2.0, 1.0]])
    assert np.isnan(others[3]).all()  # alone in its condition: no other replicate


def test_leave_one_out_ceiling_is_one_without_noise_and_matches_its_expected_value():
    exact = replicate_set(noise=0.0)
    groups = exact.metadata["replicate_group"].to_numpy()
    ceiling = leave_one_out_ceiling(exact.change, groups)
    assert len(ceiling) == len(exact) and (ceiling["n_replicates"] == 4).all()
    np.testing.assert_allclose(ceiling["pearson_change"], 1, atol=1e-5)
    noisy = replicate_set(signal=1.0, noise=1.0, n_conditions=20, n_replicates=4)
    found = leave_one_out_ceiling(noisy.change, noisy.metadata["replicate_group"].to_numpy())["pearson_change"]
    # one well (reliability 1/2) against the mean of 3 (3/4): sqrt(1/2 * 3/4); below the noise-free mean's sqrt(1/2)
    assert found.mean() == pytest.approx(np.sqrt(0.5 * 0.75), abs=0.03)
    assert found.mean() < np.sqrt(0.5) - 0.03
    lonely = leave_one_out_ceiling(noisy.change[:5], groups=np.array(["a", "a", "b", "c", "d"]))
    assert lonely["position"].tolist() == [0, 1] and lonely["condition"].tolist() == ["a", "a"]


def test_dmso_spread_per_gene_and_within_plates():
    rng = np.random.default_rng(0)
    scale = np.linspace(0.2, 1.0, 978)
    plates = np.repeat(["P1", "P2", "P3", "P4"], 50)
    offsets = {p: rng.normal(scale=2.0, size=978) for p in np.unique(plates)}
    wells = 8 + np.stack([offsets[p] for p in plates]) + scale * rng.normal(size=(200, 978))
    per_gene, summary = dmso_spread(wells, plates=plates, genes=GENES)
    assert list(per_gene.columns) == ["gene_id", "gene_symbol", "sd", "sd_within_plate"]
    np.testing.assert_allclose(per_gene["sd_within_plate"], scale, rtol=0.25)
    assert (per_gene["sd"] > per_gene["sd_within_plate"]).mean() > 0.95  # plate offsets inflate the overall SD
    assert summary["n_wells"] == 200 and summary["n_plates"] == 4
    assert summary["sd_within_plate_median"] == pytest.approx(0.6, abs=0.05)
    only_total, summary = dmso_spread(wells[:50])
    assert list(only_total.columns) == ["sd"] and summary["n_plates"] is None
    np.testing.assert_allclose(only_total["sd"], scale, rtol=0.35)
    with pytest.raises(ValueError, match="n_wells >= 2"):
        dmso_spread(wells[:1])


def test_other_compound_agreement_measures_what_the_plate_shares():
    data = replicate_set(signal=1.0, noise=1.0, n_conditions=20, n_replicates=4)
    data.metadata["compound_group"] = data.metadata["compound_id"]
    independent = other_compound_agreement(data)
    assert len(independent) == 20 and (independent["n_pairs"] == 4 * 76).all()
    assert abs(independent["mean_r_other"].mean()) < 0.02
    shared = np.random.default_rng(5).normal(size=978).astype(np.float32)  # one shift every well of the plate has
    data.expression += shared
    assert other_compound_agreement(data)["mean_r_other"].mean() == pytest.approx(1 / 3, abs=0.03)  # 1 / (1 + 1 + 1)
    assert replicate_agreement(data)["mean_r"].mean() == pytest.approx(2 / 3, abs=0.03)  # (1 + 1) / (1 + 1 + 1)


def test_replicate_summary_gathers_the_three_measures():
    data = replicate_set(signal=1.0, noise=1.0, n_conditions=20, n_replicates=4)
    data.metadata["compound_group"] = data.metadata["compound_id"]
    row = replicate_summary(data)
    assert row["conditions"] == 20 and row["wells per condition (median)"] == 4
    assert row["pairwise r of replicate wells, mean"] == pytest.approx(replicate_agreement(data)["mean_r"].mean())
    assert row["split-half r (ceiling), mean"] == pytest.approx(split_half_ceiling(data)["r_split_half"].mean())
    assert abs(row["r of two wells of different compounds, mean"]) < 0.02
