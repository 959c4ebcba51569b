import numpy as np
import pandas as pd
import pytest

from perturbx.splits import (
    Split,
    assert_disjoint,
    group_split,
    kfold,
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
