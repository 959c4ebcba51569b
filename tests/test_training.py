from dataclasses import replace
from typing import NamedTuple

import numpy as np
import pytest
import torch

from perturbx.training import FitConfig, batch_like, evaluate_loss, fit, step_budget, to_device


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


def loss_with_a_slope_part(model, batch):
    """The MSE, plus a part that is smallest when the slope is 1 (training pulls it to 2)."""
    return mse_loss(model, batch) | {"slope_gap": (model.weight - 1.0).abs().sum()}


def test_the_monitored_loss_part_chooses_the_kept_epoch():
    """monitor = "slope_gap": the kept weights are those of the epoch whose slope was nearest 1 on the way to 2,
    not those of the best validation loss (near the end); an unknown part is refused, naming the parts."""
    config = FitConfig(epochs=30, batch_size=32, lr=0.1, progress=False, early_stopping_patience=None)
    val = regression_data(n=16, seed=1)
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    start = float(model.weight.detach())
    result = fit(model, loss_with_a_slope_part, regression_data(), val, replace(config, monitor="slope_gap"))
    history = result.history
    assert start < 0.9
    assert result.best_epoch == history.loc[history["val_slope_gap"].idxmin(), "epoch"]
    assert 1 < result.best_epoch < len(history)
    assert history.loc[history["val_loss"].idxmin(), "epoch"] > result.best_epoch + 5  # the loss keeps a later one
    assert abs(float(model.weight.detach()) - 1.0) == pytest.approx(history["val_slope_gap"].min(), rel=1e-5)
    with pytest.raises(KeyError, match="slope_gap"):
        fit(torch.nn.Linear(1, 1), loss_with_a_slope_part, regression_data(), val,
            replace(config, epochs=1, monitor="mse"))


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


def test_improvements_below_min_delta_do_not_reset_patience():
    """A tiny learning rate lowers the validation loss a little every epoch: with min_delta above that step the
    fit stops after its patience and keeps the first epoch; with the default it runs on."""
    tiny = FitConfig(epochs=10, batch_size=32, lr=1e-4, progress=False, early_stopping_patience=2)
    val = regression_data(n=8, seed=1)
    history = train_linear(tiny, val)[1].history
    assert history["val_loss"].diff().iloc[1:].lt(0).all()  # it does improve, slowly
    step = float(-history["val_loss"].diff().iloc[1:].max())
    assert len(history) == 10
    stopped = train_linear(replace(tiny, min_delta=2 * step * 10), val)[1]
    assert len(stopped.history) == 3 and stopped.best_epoch == 1


def test_no_early_stopping_without_validation_or_patience():
    config = FitConfig(epochs=6, batch_size=8, lr=0.0, progress=False, early_stopping_patience=2)
    assert len(train_linear(config)[1].history) == 6
    config = FitConfig(epochs=6, batch_size=8, lr=0.0, progress=False, early_stopping_patience=None)
    assert len(train_linear(config, val=regression_data(n=8, seed=1))[1].history) == 6


def test_logged_validation_keeps_the_last_weights_and_never_stops_early():
    """DeepDRA's protocol: the validation loss rises after a few epochs (it wants slope 1), yet every epoch runs,
    the last epoch's weights are kept and the plateau follows the training loss (which keeps falling: no cut)."""
    config = FitConfig(epochs=30, batch_size=32, lr=0.1, progress=False, early_stopping_patience=2,
                       plateau_patience=1, validation="log")
    val = regression_data(n=16, slope=1.0, seed=1)
    model, result = train_linear(config, val)
    history = result.history
    assert len(history) == 30 and result.best_epoch == 30
    assert history["val_loss"].idxmin() < 29  # the validation optimum was earlier, and it was not restored
    assert evaluate_loss(model, mse_loss, val, config)["loss"] == pytest.approx(history["val_loss"].iloc[-1],
                                                                                 rel=1e-5)
    selected = replace(config, validation="select")
    assert len(train_linear(selected, val)[1].history) < 30  # the same settings select: early stopping


def test_a_validation_mode_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="validation must be 'select' or 'log'"):
        train_linear(FitConfig(epochs=1, progress=False, validation="ignore"))


def test_epoch_metrics_are_logged_per_epoch_with_the_model_in_eval_mode():
    seen = []

    def slope(model):
        seen.append(model.training)
        return {"slope": float(model.weight.detach())}

    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    result = fit(model, mse_loss, regression_data(), None, FitConfig(epochs=4, batch_size=8, lr=0.1, progress=False),
                 epoch_metrics=slope)
    assert list(result.history.columns[-1:]) == ["slope"] and len(result.history) == 4
    assert seen == [False] * 4
    assert result.history["slope"].iloc[-1] == pytest.approx(float(model.weight.detach()))


def test_fit_result_reports_history_and_throughput():
    config = FitConfig(epochs=3, batch_size=8, lr=0.05, progress=False)
    _, result = train_linear(config, val=regression_data(n=8, seed=1))
    history = result.history
    assert list(history["epoch"]) == [1, 2, 3]
    assert {"train_loss", "val_loss", "lr"} <= set(history.columns)
    assert result.samples_per_second > 0 and result.seconds > 0
    # 32 training samples per epoch
    assert result.samples_per_second * result.seconds == pytest.approx(32 * 3)


class XY(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor


def test_a_named_tuple_batch_reaches_the_loss_as_the_same_named_tuple():
    """Training and validation mini-batches keep the type and field names of the batch given to fit, and the rows of
    the fields stay aligned through the shuffle (y = 2 x in every mini-batch)."""
    seen = []

    def loss(model, batch):
        seen.append((type(batch), batch._fields, len(batch.x), model.training))
        torch.testing.assert_close(batch.y, 2 * batch.x)
        return {"loss": torch.nn.functional.mse_loss(model(batch.x), batch.y)}

    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    train, val = XY(*regression_data(n=20)), XY(*regression_data(n=6, seed=1))
    config = FitConfig(epochs=2, batch_size=8, lr=0.05, progress=False)
    result = fit(model, loss, train, val, config)
    assert len(result.history) == 2
    assert {(kind, fields) for kind, fields, _, _ in seen} == {(XY, ("x", "y"))}
    assert [n for *_, n, training in seen if training] == [8, 8, 4] * 2  # three training mini-batches per epoch
    assert [n for *_, n, training in seen if not training] == [6, 6]  # one validation batch per epoch
    assert evaluate_loss(model, loss, val, config)["loss"] == pytest.approx(result.history["val_loss"].min())


def test_a_list_batch_stays_a_list():
    kinds = []

    def loss(model, batch):
        kinds.append(type(batch))
        return mse_loss(model, batch)

    fit(torch.nn.Linear(1, 1), loss, regression_data(), None, FitConfig(epochs=1, batch_size=16, progress=False))
    assert kinds == [list, list]


def test_batch_like_and_to_device_keep_the_batch_type():
    batch = XY(torch.zeros(3, 1), torch.ones(3, 1))
    rebuilt = batch_like(batch, [torch.full((2, 1), 5.0), torch.full((2, 1), 6.0)])
    assert isinstance(rebuilt, XY) and rebuilt.y.tolist() == [[6.0], [6.0]]
    plain = batch_like([torch.zeros(1)], [torch.ones(1)])
    assert isinstance(plain, list) and len(plain) == 1 and torch.equal(plain[0], torch.ones(1))
    moved = to_device(batch, "cpu")
    assert isinstance(moved, XY) and torch.equal(moved.x, batch.x) and moved.y.device.type == "cpu"


def test_step_budget_raises_epochs_and_patience_for_small_training_sets():
    config = FitConfig(epochs=20, batch_size=256, early_stopping_patience=3, plateau_patience=2)
    small = step_budget(config, n_train=380, min_steps=200, min_patience_steps=60)  # 2 steps per epoch
    assert (small.epochs, small.early_stopping_patience, small.plateau_patience) == (100, 30, 10)
    large = step_budget(config, n_train=12_000, min_steps=200, min_patience_steps=60)  # 47 steps per epoch
    assert (large.epochs, large.early_stopping_patience, large.plateau_patience) == (20, 3, 2)
    never = step_budget(replace(config, early_stopping_patience=None), 380, 200, 60)
    assert never.early_stopping_patience is None and never.epochs == 100
    assert config.epochs == 20  # the given config is not changed
