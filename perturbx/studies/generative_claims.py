"""The diffusion chapter's verdicts: paired comparisons of its runs, the sentences that quote them, its claims.

Everything here reads the runs tables of :mod:`perturbx.studies.generative` (one row per model, split and seed) and
decides each claim of the paper from paired per-seed differences (:func:`perturbx.studies.protocol.paired_comparisons`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .. import papers
from ..evaluation.claims import Claim, Evidence
from ..evaluation.metrics import Comparison
from . import protocol
from .generative import GENERATIVE_MODELS, MODELS

ACCURACY_PAIRS = (("diffusion", "cell_line_mean"), ("diffusion", "ridge"), ("diffusion", "encoder_decoder"))


DIVERSITY_PAIRS = (("diffusion", "encoder_decoder"), ("diffusion", "encoder_decoder_gaussian"),
                   ("diffusion", "marginal_draws"))


def comparisons(runs: pd.DataFrame, metric: str, pairs: Sequence[tuple[str, str]] = ACCURACY_PAIRS,
                higher_is_better: bool = True) -> list[tuple[dict, Comparison]]:
    """Paired per-seed comparisons (:func:`perturbx.studies.protocol.paired_comparisons`) of model-id
    ``pairs`` on ``metric`` within each split of a runs table (:func:`run_experiments`; ``model``: ids); each
    comparison's ``model`` and ``baseline`` are ids."""
    return protocol.paired_comparisons(runs, pairs, metric, higher_is_better=higher_is_better)


def verdict_lines(runs: pd.DataFrame, dataset: str, distance: str = "energy_distance") -> list[str]:
    """One computed sentence per split: the diffusion model against :data:`ACCURACY_PAIRS` in Pearson of change
    and against :data:`DIVERSITY_PAIRS` in ``distance`` (``energy_distance`` to the held-out replicates, or
    ``energy_distance_true`` to fresh draws of the simulator), each by paired per-seed differences; ``runs`` holds
    model ids, the sentences name the models by label."""
    lines = []
    accuracy = comparisons(runs, "pearson_change")
    spread = comparisons(runs, distance, DIVERSITY_PAIRS, higher_is_better=False)
    for split in runs["split"].unique():
        mean = runs.loc[(runs["split"] == split) & (runs["model"] == "diffusion"), "pearson_change"]
        found = [f"{c.verdict} {MODELS.label(c.baseline)} ({c.details})" for keys, c in accuracy
                 if keys["split"] == split]
        close = [f"{c.verdict} {MODELS.label(c.baseline)} ({c.details})" for keys, c in spread
                 if keys["split"] == split]
        lines.append(f"{dataset}, {split}: diffusion Pearson of change {mean.mean():.3f}; it "
                     + "; it ".join(found) + f". In {distance} (lower is better) it " + "; it ".join(close) + ".")
    return lines


def fewest_steps(samplers: pd.DataFrame, tolerance: float = 0.02,
                 metrics: Sequence[str] = ("pearson_change", "energy_distance_true")) -> pd.DataFrame:
    """Which DDIM step counts keep every metric within ``tolerance`` (relative) of the DDPM row of a
    :func:`sampler_comparison` table, and the fewest that does.

    Returns:
        The DDIM rows with ``<metric> vs DDPM`` (relative change) per metric present, ``within tolerance`` and
        ``fewest within tolerance`` (True on one row at most).
    """
    reference = samplers.loc[samplers["sampler"] == "DDPM"]
    if len(reference) != 1:
        raise ValueError("fewest_steps needs exactly one DDPM row in the sampler table (the 1,000-step reference)")
    ddim = samplers.loc[samplers["sampler"] == "DDIM"].copy()
    present = [m for m in metrics if m in samplers.columns and samplers[m].notna().all()]
    for metric in present:
        base = float(reference[metric].iat[0])
        ddim[f"{metric} vs DDPM"] = (ddim[metric] - base) / abs(base)
    ddim["within tolerance"] = (ddim[[f"{m} vs DDPM" for m in present]].abs() <= tolerance).all(axis=1)
    fewest = ddim.loc[ddim["within tolerance"], "steps"].min()
    return ddim.assign(**{"fewest within tolerance": ddim["steps"].eq(fewest) & ddim["within tolerance"]})


def spread_lines(table: pd.DataFrame, dataset: str, reference: str) -> list[str]:
    """One sentence per split of a :func:`results_table` (indexed by split and model id): each generative model's
    spread ratio (1 = the reference's spread) and which is closest to 1, named by label."""
    lines = []
    for split, part in table.groupby(level="split", sort=False):
        ratios = part.droplevel("split").loc[list(GENERATIVE_MODELS), "spread_ratio_mean"]
        closest = MODELS.label((ratios - 1).abs().idxmin())
        lines.append(f"{dataset}, {split}: spread ratio (generated SD / {reference}) "
                     + ", ".join(f"{MODELS.label(m)} {r:.2f}" for m, r in ratios.items())
                     + f"; closest to 1: {closest}.")
    return lines


def _evidence(runs: pd.DataFrame, dataset: str, metric: str, pairs: Sequence[tuple[str, str]],
              higher_is_better: bool = True) -> list[Evidence]:
    """One :class:`~perturbx.evaluation.claims.Evidence` per split and pair of model ids, from paired per-seed
    differences; the texts name the models by label."""
    return [Evidence.from_comparison(c, f"{dataset}, {keys['split']}: {MODELS.label(c.model)}", label=MODELS.label)
            for keys, c in comparisons(runs, metric, pairs, higher_is_better)]


def decide_claims(replicate_runs: pd.DataFrame, simulated_runs: pd.DataFrame, steps: pd.DataFrame,
                  data: str) -> list[Claim]:
    """The diffusion paper's claims, decided from this chapter's runs.

    Args:
        replicate_runs: :func:`run_experiments` runs (``model``: ids) on real replicate wells (distance:
            ``energy_distance`` to the held-out replicates).
        simulated_runs: runs on the simulator (distance: ``energy_distance_true`` to fresh true draws).
        steps: :func:`fewest_steps` table of a sampler comparison.
        data: what the claims were tested on, for the table.

    Returns:
        Four :class:`~perturbx.evaluation.claims.Claim` (ids ``spread_beats_encoder_decoder``,
        ``spread_beats_cheaper_sources``, ``mean_beats_cell_line_mean``, ``few_step_ddim``): diversity against the
        single-shot encoder-decoder; diversity against cheaper sources of spread (Gaussian draws, condition-blind
        random training changes); accuracy of the mean against the trivial baselines; and few-step DDIM sampling.
        Evidence texts name the models by label.
    """
    title = papers.DIFFUSION.title
    single = [("diffusion", "encoder_decoder")]
    cheaper = [("diffusion", "encoder_decoder_gaussian"), ("diffusion", "marginal_draws")]
    distances = [("real replicates", replicate_runs, "energy_distance"), ("simulator", simulated_runs,
                                                                           "energy_distance_true")]
    fewest = steps.loc[steps["fewest within tolerance"]]
    fastest = (Evidence(f"fewest DDIM steps within 2% of DDPM-1000 in Pearson of change and energy distance: "
                        f"{int(fewest['steps'].iat[0])}", True) if len(fewest)
               else Evidence("no DDIM step count tried stays within 2% of DDPM-1000", False))
    return [
        Claim("spread_beats_encoder_decoder", title, "Diffusion samples match the spread of real responses better "
              "than a single-shot encoder-decoder (energy distance)", data,
              tuple(e for name, runs, metric in distances for e in _evidence(runs, name, metric, single, False))),
        Claim("spread_beats_cheaper_sources", title, "... and better than cheaper sources of spread: the "
              "encoder-decoder's Gaussian draws and random training changes of the cell line", data,
              tuple(e for name, runs, metric in distances for e in _evidence(runs, name, metric, cheaper, False))),
        Claim("mean_beats_cell_line_mean", title, "The mean of the generated profiles predicts the response better "
              "than the per-cell-line mean (Pearson of change)", data,
              tuple(e for name, runs, _ in distances
                    for e in _evidence(runs, name, "pearson_change", [("diffusion", "cell_line_mean")]))),
        Claim("few_step_ddim", title, "Future work: few-step DDIM sampling keeps the quality of 1,000-step DDPM",
              data, (fastest,)),
    ]
