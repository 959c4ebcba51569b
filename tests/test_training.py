import numpy as np
import pytest
import torch

from perturbx.training import FitConfig, evaluate_loss, fit


def mse_loss(model, batch):
    return {"loss": torch.nn.functional.mse_loss(model(batch[0]), batch[1])}


def regression_data(n: int = 32, slope: float = 2.0, seed: int = 0):
    x = torch.randn(n, 1, generator=torch.Generator().manual_seed(seed))
    return [x, slope * x]


def train_linear(config: FitConfig, val=None, init_seed: int = 0):
    torch.manual_seed(init_seed)
    model = torch.nn.Linear(1, 1)
    return model, fit(model, mse_loss, regression_data(), val, config)


def weights(model) -> np.ndarray:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).numpy()


def test_fit_is_deterministic_for_a_seed():
    config = FitConfig(epochs=4, batch_size=8, lr=0.05, progress=False, seed=3)
    model_a, result_a = train_linear(config)
    model_b, result_b = train_linear(config)
    np.testing.assert_array_equal(weights(model_a), weights(model_b))
    np.testing.assert_array_equal(result_a.history["train_loss"], result_b.history["train_loss"])


def test_fit_with_another_seed_shuffles_differently():
    """Same initial weights; only the batch order (the fit seed) differs."""
    model_a, _ = train_linear(FitConfig(epochs=4, batch_size=8, lr=0.05, progress=False, seed=3))
    model_b, _ = train_linear(FitConfig(epochs=4, batch_size=8, lr=0.05, progress=False, seed=4))
    assert not np.allclose(weights(model_a), weights(model_b))


def test_best_validation_epoch_weights_are_restored():
    """Training pulls the slope to 2, validation wants 1: validation loss falls, then rises again."""
    config = FitConfig(epochs=30, batch_size=32, lr=0.1, progress=False, early_stopping_patience=None)
    val = regression_data(n=16, slope=1.0, seed=1)
    model, result = train_linear(config, val)
    history = result.history
    best = int(history["val_loss"].idxmin())
    assert result.best_epoch == history.loc[best, "epoch"]
    assert 1 < result.best_epoch < len(history)  # neither the first nor the last epoch
    assert history["val_loss"].iloc[-1] > history["val_loss"].min()
    restored = evaluate_loss(model, mse_loss, val, config)["loss"]
    assert restored == pytest.approx(history["val_loss"].min(), rel=1e-5)
    assert not model.training


def test_without_validation_the_last_weights_are_kept():
    config = FitConfig(epochs=5, batch_size=32, lr=0.1, progress=False)
    model, result = train_linear(config)
    assert result.best_epoch == 5
    final = evaluate_loss(model, mse_loss, regression_data(), config)["loss"]
    assert final < result.history["train_loss"].iloc[0]


def test_early_stopping_when_validation_loss_cannot_improve():
    """lr = 0: nothing changes, so epochs 2 and 3 are not better than epoch 1; patience 2 stops after epoch 3."""
    config = FitConfig(epochs=10, batch_size=8, lr=0.0, progress=False, early_stopping_patience=2)
    model, result = train_linear(config, val=regression_data(n=8, seed=1))
    assert len(result.history) == 3
    assert result.best_epoch == 1
    assert result.history["val_loss"].nunique() == 1


def test_no_early_stopping_without_validation_or_patience():
    config = FitConfig(epochs=6, batch_size=8, lr=0.0, progress=False, early_stopping_patience=2)
    assert len(train_linear(config)[1].history) == 6
    config = FitConfig(epochs=6, batch_size=8, lr=0.0, progress=False, early_stopping_patience=None)
    assert len(train_linear(config, val=regression_data(n=8, seed=1))[1].history) == 6


def test_fit_result_reports_history_and_throughput():
    config = FitConfig(epochs=3, batch_size=8, lr=0.05, progress=False)
    _, result = train_linear(config, val=regression_data(n=8, seed=1))
    history = result.history
    assert list(history["epoch"]) == [1, 2, 3]
    assert {"train_loss", "val_loss", "lr"} <= set(history.columns)
    assert result.samples_per_second > 0 and result.seconds > 0
    # 32 training samples per epoch
    assert result.samples_per_second * result.seconds == pytest.approx(32 * 3)
