"""Saved models: a bundle is written whole, read back exactly, and refused when edited, of another kind or fitted on
another task; the graph model's estimator round-trips through it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from perturbx.models.estimator import (
    MANIFEST_FILE,
    SCALERS_FILE,
    WEIGHTS_FILE,
    SavedModelError,
    load_bundle,
    save_bundle,
)
from perturbx.models.generative import L1000GenerativeEstimator
from perturbx.models.gnn import GraphModelEstimator
from perturbx.studies import generative, graph_model
from perturbx.tasks import l1000

from ..tasks.test_l1000 import tiny_data, tiny_graph

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_bundle(folder):
    state = {"weight": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    return save_bundle(folder, "toy", {"width": 3}, state, {"mean": np.array([1.5, 2.5])})


def test_a_bundle_reads_back_what_was_saved(tmp_path):
    folder = small_bundle(tmp_path / "model")
    bundle = load_bundle(folder, "toy")
    assert bundle.config == {"width": 3}
    torch.testing.assert_close(bundle.state_dict["weight"], torch.arange(6, dtype=torch.float32).reshape(2, 3))
    np.testing.assert_array_equal(bundle.arrays["mean"], [1.5, 2.5])
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert manifest["kind"] == "toy" and set(manifest["files"]) == {"config.json", WEIGHTS_FILE, SCALERS_FILE}
    assert manifest["commit"]  # a commit, or the note that this is not a git checkout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging folder left behind


def test_saving_again_replaces_the_bundle(tmp_path):
    folder = small_bundle(tmp_path / "model")
    save_bundle(folder, "toy", {"width": 4}, {}, {})
    assert load_bundle(folder, "toy").config == {"width": 4}


def test_an_edited_file_is_refused(tmp_path):
    folder = small_bundle(tmp_path / "model")
    np.savez(folder / SCALERS_FILE, mean=np.array([9.0, 9.0]))
    with pytest.raises(SavedModelError, match=r"scalers.npz: sha256 differs .* save the model again"):
        load_bundle(folder, "toy")


@pytest.mark.parametrize("damage, message", [
    ("no manifest", "no manifest.json, so this is not a saved perturbx model"),
    ("other kind", "a saved 'toy' model, not a 'graph_model' one"),
    ("missing weights", "weights.pt: missing from the saved model"),
    ("bad manifest", "manifest.json: not valid JSON"),
])
def test_a_damaged_bundle_is_one_error_naming_the_file(tmp_path, damage, message):
    folder = small_bundle(tmp_path / "model")
    kind = "graph_model" if damage == "other kind" else "toy"
    if damage == "no manifest":
        (folder / MANIFEST_FILE).unlink()
    elif damage == "missing weights":
        (folder / WEIGHTS_FILE).unlink()
    elif damage == "bad manifest":
        (folder / MANIFEST_FILE).write_text("{")
    with pytest.raises(SavedModelError, match=message):
        load_bundle(folder, kind)


@pytest.fixture(scope="module")
def fitted():
    inputs = l1000.build_inputs(tiny_data(), tiny_graph(), fingerprint_bits=256)
    split = inputs.split("random", seed=0, test_size=0.3, val_size=0.15)
    fold = inputs.fold(split)
    estimator = graph_model.graph_estimator(graph_model.ExpressionSettings.smoke())
    report = estimator.fit(fold, seed=3)
    return inputs, split, fold, estimator, report


def test_fitting_reports_its_epochs(fitted):
    *_, report = fitted
    assert report.epochs_run == 2 and 1 <= report.best_epoch <= 2  # the smoke profile's 2 epochs


def test_a_saved_graph_model_predicts_what_it_predicted(fitted, tmp_path):
    inputs, split, fold, estimator, _ = fitted
    loaded = GraphModelEstimator.load(estimator.save(tmp_path / "graph"), inputs)
    assert loaded.config == estimator.config and loaded.min_steps == estimator.min_steps
    np.testing.assert_array_equal(loaded.scalers.basal_mean, fold.scalers.basal_mean)
    np.testing.assert_array_equal(loaded.predict(loaded.fold(inputs, split), split.test),
                                  estimator.predict(fold, split.test))


def test_a_saved_model_refuses_another_task(fitted, tmp_path):
    inputs, _, _, estimator, _ = fitted
    data = tiny_data()
    fewer = l1000.build_inputs(data.subset(data.metadata["compound_name"] != data.metadata["compound_name"][0]),
                               tiny_graph(), fingerprint_bits=256)
    with pytest.raises(SavedModelError, match="fitted on a task whose compounds_sha256 was"):
        GraphModelEstimator.load(estimator.save(tmp_path / "graph"), fewer)


def test_an_unfitted_estimator_cannot_predict_or_save(fitted, tmp_path):
    inputs, split, fold, *_ = fitted
    fresh = GraphModelEstimator()
    with pytest.raises(RuntimeError, match="not fitted: call fit"):
        fresh.predict(fold, split.test)
    with pytest.raises(RuntimeError, match="not fitted"):
        fresh.save(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


@pytest.mark.parametrize("network", ["diffusion", "encoder_decoder"])
def test_a_saved_generative_model_samples_what_it_sampled(fitted, tmp_path, network):
    inputs, split, *_ = fitted
    fold = inputs.fold(split, standardise_target=True)
    estimator = generative.generative_estimator(network, generative.GenerativeSettings.smoke())
    report = estimator.fit(fold, seed=5)
    assert report.epochs_run == 3  # the smoke profile's 3 epochs
    samples = estimator.sample(fold, split.test[:4], n=3, seed=1)
    assert samples.shape == (4, 3, inputs.n_genes)
    np.testing.assert_array_equal(estimator.sample(fold, split.test[:4], n=3, seed=1), samples)  # seeded
    loaded = L1000GenerativeEstimator.load(estimator.save(tmp_path / network), inputs)
    assert loaded.network_name == network and type(loaded.config) is type(estimator.config)
    np.testing.assert_array_equal(loaded.target_scaler.sd, fold.target_scaler.sd)
    np.testing.assert_array_equal(loaded.sample(loaded.fold(inputs, split), split.test[:4], n=3, seed=1), samples)
    assert loaded.predict(fold, split.test[:4]).shape == (4, inputs.n_genes)


def test_a_generative_fold_needs_its_target_scaler(fitted):
    _, _, fold, *_ = fitted
    with pytest.raises(ValueError, match="no target scaler: build it with inputs.fold"):
        _ = fold.generative
