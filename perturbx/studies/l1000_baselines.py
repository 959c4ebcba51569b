"""The baselines every L1000 chapter (03 graph model, 04 diffusion) compares against, and the context they see.

- :class:`L1000Context`: what a model of the L1000 task sees on one split;
- :data:`BASELINES`: no change, the training mean per cell line (:data:`TRIVIAL`), and scikit-learn regressors on
  [fingerprint, basal, dose, time] (:data:`perturbx.models.classical.EXPRESSION_REGRESSORS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..models.classical import EXPRESSION_REGRESSORS, ExpressionRegressor
from ..splits import Split
from ..tasks.l1000 import Inputs, L1000Fold, Prepared, cell_line_means
from .protocol import ModelOutput, ModelSpec


class BaselineSizes(Protocol):
    """The sizes the classical regressors read from a protocol's settings."""

    n_target_components: int
    n_estimators: int


@dataclass
class L1000Context:
    """What a model of the L1000 task sees on one split: inputs, training-fitted scaling, split, seed and the
    protocol's settings (``n_target_components`` and ``n_estimators`` for the classical regressors)."""

    inputs: Inputs
    prepared: Prepared
    split: Split
    seed: int
    settings: BaselineSizes

    @property
    def fold(self) -> L1000Fold:
        """The split as an estimator sees it (:class:`perturbx.tasks.l1000.L1000Fold`)."""
        return L1000Fold(self.inputs, self.split, self.prepared)


def _no_change(context: L1000Context, seed: int) -> ModelOutput:
    return ModelOutput(np.zeros((len(context.split.test), context.inputs.n_genes), np.float32))


def _cell_line_mean(context: L1000Context, seed: int) -> ModelOutput:
    return ModelOutput(cell_line_means(context.inputs, context.split.train, context.split.test))


def _regressor(kind: str):
    def run(context: L1000Context, seed: int) -> ModelOutput:
        design, split, settings = context.prepared.design(context.inputs), context.split, context.settings
        model = ExpressionRegressor(kind, settings.n_target_components, seed, settings.n_estimators)
        model.fit(design[split.train], context.inputs.data.change[split.train])
        return ModelOutput(model.predict(design[split.test]))
    return run


TRIVIAL = (ModelSpec("no_change", "basal (no change)", _no_change, "baseline",
                     "the paired basal profile itself"),
           ModelSpec("cell_line_mean", "training mean per cell line", _cell_line_mean, "baseline",
                     "mean training change of the cell line (all training profiles for an unseen cell line)"))


BASELINES = (*TRIVIAL, *(ModelSpec(kind, label, _regressor(kind), "baseline",
                                   f"scikit-learn {label} on [fingerprint, basal, dose, time]")
                         for kind, label in EXPRESSION_REGRESSORS.items()))
