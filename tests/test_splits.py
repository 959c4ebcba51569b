import numpy as np
import pandas as pd
import pytest

from perturbx.splits import (
    Split,
    assert_disjoint,
    group_split,
    kfold,
    level_split,
    plate_transfer_split,
    random_split,
    unseen_cell_split,
    unseen_compound_split,
)


def test_random_split_partitions_everything():
    split = random_split(1000, test_size=0.2, val_size=0.1, seed=0)
    assert split.sizes() == {"train": 700, "val": 100, "test": 200}
    assert np.array_equal(np.sort(np.concatenate([split.train, split.val, split.test])), np.arange(1000))


def test_same_seed_same_split_other_seed_other_split():
    assert np.array_equal(random_split(100, seed=1).test, random_split(100, seed=1).test)
    assert not np.array_equal(random_split(100, seed=1).test, random_split(100, seed=2).test)


def test_unseen_compound_and_cell_splits_hold_out_whole_groups():
    rng = np.random.default_rng(0)
    meta = pd.DataFrame({"compound_group": rng.choice([f"c{i}" for i in range(30)], 600),
                         "cell_id": rng.choice([f"k{i}" for i in range(12)], 600)})
    for split, column in ((unseen_compound_split(meta, seed=0), "compound_group"),
                          (unseen_cell_split(meta, seed=0), "cell_id")):
        groups = meta[column].to_numpy()
        assert not set(groups[split.test]) & set(groups[split.train])
        assert not set(groups[split.val]) & set(groups[split.train])
        assert len(split.train) + len(split.val) + len(split.test) == 600


def test_assert_disjoint_catches_overlaps():
    with pytest.raises(AssertionError, match="positions in both train and test"):
        assert_disjoint(Split(np.array([0, 1]), np.array([2]), np.array([1, 3])))
    groups = np.array(["a", "a", "b", "c"])
    with pytest.raises(AssertionError, match="groups in both train and test"):
        assert_disjoint(Split(np.array([0]), np.array([2]), np.array([1, 3])), groups)


def test_group_split_needs_groups():
    with pytest.raises(ValueError, match="at least 3 distinct groups"):
        group_split(np.array(["a", "a", "b"]))


def test_kfold_tests_every_item_once_and_keeps_class_balance():
    labels = np.r_[np.zeros(700), np.ones(300)]
    seen = np.zeros(1000, dtype=int)
    for split in kfold(1000, k=5, labels=labels, seed=0):
        seen[split.test] += 1
        assert abs(labels[split.test].mean() - 0.3) < 0.01
        assert not np.intersect1d(split.val, split.test).size
    assert (seen == 1).all()


def test_grouped_kfold_keeps_groups_together():
    groups = np.repeat(np.arange(50), 4)
    for split in kfold(200, k=5, groups=groups, seed=0):
        assert not set(groups[split.test]) & set(groups[split.train])
    with pytest.raises(ValueError, match="not both"):
        next(kfold(200, labels=np.zeros(200), groups=groups))


def dose_time_design(n_compounds: int = 10, doses=(0.08, 0.4, 2.0, 10.0), times=(6.0, 24.0), n_replicates: int = 3):
    """(compounds, doses, times, conditions) of a plate: every compound at every dose and time, in replicate."""
    rows = [(f"K{c}", d, t) for c in range(n_compounds) for d in doses for t in times for _ in range(n_replicates)]
    compounds, dose, time = (np.array(x) for x in zip(*rows))
    return compounds, dose.astype(float), time.astype(float), np.array([f"{c}|{d}|{t}" for c, d, t in rows])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_level_split_holds_out_one_interior_dose_of_every_compound(seed):
    compounds, dose, time, conditions = dose_time_design()
    split = level_split(compounds, dose, val_size=0.1, seed=seed, interior=True, kind="held-out dose",
                        groups=conditions)
    assert split.kind == "held-out dose"
    assert sorted(np.concatenate([split.train, split.val, split.test]).tolist()) == list(range(len(compounds)))
    assert not set(conditions[split.test]) & set(conditions[split.train])  # replicates together
    for compound in np.unique(compounds):
        mine = compounds == compound
        held = set(dose[split.test[mine[split.test]]])
        assert len(held) == 1 and held <= {0.4, 2.0}  # one interior dose, never the lowest or highest
        assert set(time[split.test[mine[split.test]]]) == {6.0, 24.0}  # at all times
        trained = set(dose[split.train[mine[split.train]]])
        assert {0.08, 10.0} <= trained  # the model has seen the compound at its other doses
    val_doses = {c: set(dose[split.val[compounds[split.val] == c]]) for c in np.unique(compounds[split.val])}
    assert val_doses and all(len(v) == 1 and v <= {0.4, 2.0} for v in val_doses.values())  # the same kind
    assert len(val_doses) == 4  # 10 % of the 40 (compound, dose) blocks


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_level_split_holds_out_times_balanced_and_keeps_each_compound_seen(seed):
    compounds, dose, time, conditions = dose_time_design()
    split = level_split(compounds, time, test_size=0.2, val_size=0.1, seed=seed, kind="held-out time",
                        groups=conditions)
    held = {c: set(time[split.test[compounds[split.test] == c]]) for c in np.unique(compounds[split.test])}
    assert len(held) == 4 and all(len(t) == 1 for t in held.values())  # 20 % of the 20 (compound, time) blocks
    assert sorted(t for ts in held.values() for t in ts) == [6.0, 6.0, 24.0, 24.0]  # balanced across compounds
    for compound, (t,) in held.items():
        mine = split.test[compounds[split.test] == compound]
        assert set(dose[mine]) == set(dose)  # every dose of that (compound, time)
        other = split.train[compounds[split.train] == compound]
        assert len(other) and t not in set(time[other])  # seen at the other time only
        assert t in set(time[split.train])  # other compounds at this time
    val = {c: set(time[split.val[compounds[split.val] == c]]) for c in np.unique(compounds[split.val])}
    assert len(val) == 2 and not set(val) & set(held) and sorted(t for ts in val.values() for t in ts) == [6.0, 24.0]
    again = level_split(compounds, time, test_size=0.2, val_size=0.1, seed=seed, kind="held-out time")
    np.testing.assert_array_equal(again.test, split.test)


def test_level_split_needs_enough_levels_and_trains_on_unknown_ones():
    compounds, dose, _, _ = dose_time_design(doses=(0.1, 10.0))
    with pytest.raises(ValueError, match="held-out dose split: no compound has 3 or more known levels"):
        level_split(compounds, dose, interior=True, kind="held-out dose")
    compounds, dose, _, _ = dose_time_design(n_compounds=3)
    dose[compounds == "K0"] = np.nan  # unknown doses: never held out
    split = level_split(compounds, dose, interior=True, val_size=0.0)
    assert "K0" not in set(compounds[split.test]) and len(split.val) == 0


def test_plate_transfer_split_tests_only_compounds_the_training_plate_lacks():
    meta = pd.DataFrame({"source": ["A"] * 6 + ["B"] * 4,
                         "compound_group": ["c1", "c1", "c2", "c3", "c4", "c5", "c1", "n1", "n2", "n2"]})
    split = plate_transfer_split(meta, "A", "B", val_size=0.2, seed=0)
    assert split.test.tolist() == [7, 8, 9]  # c1 was measured on A: not a test of an unseen compound
    assert set(split.train) | set(split.val) == set(range(6)) and len(split.val) > 0
    assert not set(meta["compound_group"][split.val]) & set(meta["compound_group"][split.train])
    with pytest.raises(ValueError, match="every compound of 'A' is also in 'A'"):
        plate_transfer_split(meta, "A", "A")
