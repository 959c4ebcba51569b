"""Distribution scores of generated profiles, per test condition (the diffusion chapter's metrics).

A generative model draws samples of the change from basal for each test condition
(:func:`perturbx.tasks.l1000.test_conditions`); :func:`score_samples` compares them with the condition's measured
replicates, or on the simulator with its exact moments and fresh draws (:class:`Reference`), and
:func:`condition_accuracy` scores their mean.

Distribution metrics, per condition:

- ``energy_score``: energy score of the samples for each observed replicate (a proper scoring rule; works with a
  single profile; a point prediction scores its Euclidean error), lower is better;
- ``energy_distance``: samples vs the observed replicates of the condition (simulator, 2-3 replicates; real data
  with replicate wells, 3-5 on the SKBR3 plate; NaN for a condition measured once); defined for a point
  prediction too;
- ``energy_distance_true``: samples vs ``n_reference`` fresh draws from the true distribution (simulator);
- ``variance_r2``: R² of per-gene sample variances against the true variances (simulator), or on real data with
  replicates against the pooled replicate variance (below);
- ``spread_ratio``: mean over genes of sample SD / true SD (simulator). On real data with replicates the reference
  SD is the **pooled replicate SD** (:func:`pooled_replicate_sd`): per gene, the within-condition SD of the change
  pooled over every test condition with 2 or more replicates (n_wells - n_conditions degrees of freedom). It is
  pooled because one condition's 3-5 wells give an SD too noisy to compare with (2-4 degrees of freedom per gene:
  a relative standard error of 35-50 %), and pooling assumes the spread is about the same across conditions of
  the plate. Without replicates the reference SD is the well-to-well SD of the DMSO wells of the A375 plate, a
  lower bound of the real spread (technical noise only). Point predictions (one sample) have no spread metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..tasks.l1000 import Truth
from .metrics import energy_distance, energy_score, expression_metrics, nan_columns, spread_ratio, variance_r2

DISTRIBUTION_METRICS = ("energy_score", "energy_distance", "energy_distance_true", "variance_r2", "spread_ratio")


def pooled_replicate_sd(data, conditions: pd.DataFrame, floor: float = 1e-6) -> np.ndarray | None:
    """Per-gene replicate SD pooled over the test conditions with at least 2 replicates.

    The within-condition deviations of the change from basal (each replicate minus its condition's mean change)
    are pooled over conditions: sqrt(sum of squares / (n_replicates - n_conditions)). Pooled rather than per
    condition: 3-5 wells give a per-condition SD with only 2-4 degrees of freedom per gene (see the module
    docstring).

    Args:
        data: the curated profiles (``change``, (n, genes) log2).
        conditions: :func:`test_conditions` table (``members``: test profile positions per condition).
        floor: the smallest SD returned (log2 units), so that a gene constant over replicates cannot divide by 0.

    Returns:
        float64 (genes,) SD in log2 units, or None when no condition has 2 replicates (nothing to pool).
    """
    replicated = [m for m in conditions["members"] if len(m) >= 2]
    if not replicated:
        return None
    squares = sum(((data.change[m] - data.change[m].mean(axis=0)) ** 2).sum(axis=0, dtype=np.float64)
                  for m in replicated)
    dof = sum(len(m) - 1 for m in replicated)
    return np.maximum(np.sqrt(squares / dof), floor)


@dataclass
class Reference:
    """What the samples of a split are compared with: the simulator's truth and its fresh draws per test condition
    (n_conditions, n_reference, genes), or on real data the per-gene reference SD: ``replicate_sd`` (pooled over
    the test conditions' replicates, :func:`pooled_replicate_sd`) where the test conditions have replicates, else
    ``reference_sd`` (DMSO well-to-well). ``replicate_sd`` takes precedence over ``reference_sd``."""

    reference_sd: np.ndarray | None = None
    truth: Truth | None = None
    true_draws: np.ndarray | None = None
    replicate_sd: np.ndarray | None = None

    def part(self, rows: slice) -> Reference:
        """The reference of the conditions at positions ``rows``."""
        return replace(self, true_draws=None if self.true_draws is None else self.true_draws[rows])


def score_samples(samples: np.ndarray, conditions: pd.DataFrame, data, reference: Reference) -> pd.DataFrame:
    """Distribution metrics of each condition's samples (see the module docstring).

    Args:
        samples: (n_conditions, n_samples, genes) generated log2 changes (n_samples = 1: a point prediction).
        conditions: :func:`test_conditions` table.
        data: the curated profiles (expression, basal).
        reference: the truth and its draws (simulator), or the replicate SD and/or reference SD (real data).

    Returns:
        One row per condition: ``condition`` and every name in ``DISTRIBUTION_METRICS`` (NaN where undefined).
    """
    rows, truth = [], reference.truth
    true_sd = truth.moments(conditions["row"].to_numpy())[1] if truth is not None else None
    for i, (members, first) in enumerate(zip(conditions["members"], conditions["row"])):
        profiles = data.basal[first] + samples[i]
        observed = data.expression[members]
        row = {"condition": conditions["condition"].iat[i],
               "energy_score": np.mean([energy_score(profiles, y) for y in observed])}
        row |= nan_columns(DISTRIBUTION_METRICS[1:])
        if truth is not None:
            row |= _against_truth(profiles, observed, reference.true_draws[i], true_sd[i])
        else:
            row |= _against_measurements(profiles, observed, reference)
        rows.append(row)
    return pd.DataFrame(rows)


def _against_truth(profiles: np.ndarray, observed: np.ndarray, draws: np.ndarray, true_sd: np.ndarray) -> dict:
    """Simulator: (n_samples, genes) generated profiles against the observed replicates, fresh true draws
    (n_reference, genes) and the true SD (genes,)."""
    row = {"energy_distance": energy_distance(profiles, observed), "energy_distance_true": energy_distance(
        profiles, draws)}
    if len(profiles) > 1:
        row["variance_r2"] = variance_r2(profiles.var(axis=0, ddof=1), true_sd ** 2)
        row["spread_ratio"] = spread_ratio(profiles, true_sd)
    return row


def _against_measurements(profiles: np.ndarray, observed: np.ndarray, reference: Reference) -> dict:
    """Real data: (n_samples, genes) generated profiles against the condition's measured replicates
    (n_replicates, genes) and the pooled replicate SD, or without replicates the DMSO reference SD."""
    row = {}
    if len(observed) > 1:
        row["energy_distance"] = energy_distance(profiles, observed)
    if len(profiles) > 1 and reference.replicate_sd is not None:
        row["variance_r2"] = variance_r2(profiles.var(axis=0, ddof=1), reference.replicate_sd ** 2)
        row["spread_ratio"] = spread_ratio(profiles, reference.replicate_sd)
    elif len(profiles) > 1 and reference.reference_sd is not None:
        row["spread_ratio"] = spread_ratio(profiles, reference.reference_sd)
    return row


def condition_accuracy(label: str, condition_change: np.ndarray, conditions: pd.DataFrame, data) -> pd.DataFrame:
    """Per-profile accuracy of one predicted change per condition (n_conditions, genes), broadcast to the
    condition's profiles; ``model`` = ``label``."""
    members = np.concatenate(conditions["members"].to_list())
    change = np.repeat(condition_change, [len(m) for m in conditions["members"]], axis=0)
    return expression_metrics(data.expression[members], data.basal[members] + change,
                              data.basal[members]).assign(model=label, row=members)
