"""Generative models of drug-induced expression: the diffusion chapter's experiments.

Every model predicts the **change from basal** of the 978 landmark genes; a generated profile is basal + change.
Why the change and not the treated profile: the basal profile explains most of a treated profile (the whole-profile
Pearson of "no change" is above 0.9), so a model of treated profiles spends its capacity re-generating the cell
line; modelling the change puts it on the perturbation, and it makes the classifier-free-guidance branch without a
perturbation mean "this cell line, untreated-like response". Changes are standardised per gene with the mean and
SD of the training profiles of the split (:class:`TargetScaler`).

Models (names as in the tables):

- ``basal (no change)``, ``training mean per cell line``, ``ridge``: point predictions, from
  :func:`perturbx.expression.run_split`;
- ``encoder-decoder (PRnet-style)``: :class:`PerturbationEncoderDecoder`, samples from new noise vectors;
- ``encoder-decoder + Gaussian draws``: the same model, samples also drawn from its predicted per-gene variance;
- ``diffusion``: :class:`ConditionalDiffusion`, DDIM sampling with guidance weight ``settings.guidance``;
- ``true distribution (simulator)``: on the semi-synthetic benchmark only, fresh draws from the generator (the
  ceiling of every distribution metric, and the true mean for the accuracy metrics).

Evaluation units: a **condition** is (compound structure, cell line, dose, time); its replicates are the test
profiles that share it (the real L1000 data staged for the book has one profile per condition). Each generative
model draws ``settings.n_samples`` profiles per test condition. Accuracy metrics score the mean of the samples
against each test profile (:func:`perturbx.metrics.expression_metrics`). Distribution metrics, per condition:

- ``energy_score``: energy score of the samples for each observed replicate (a proper scoring rule; works with a
  single profile; a point prediction scores its Euclidean error), lower is better;
- ``energy_distance``: samples vs the observed replicates (simulator, 2-3 replicates);
- ``energy_distance_true``: samples vs ``n_reference`` fresh draws from the true distribution (simulator);
- ``variance_r2``: R² of per-gene sample variances against the true variances (simulator);
- ``spread_ratio``: mean over genes of sample SD / true SD (simulator); on real data the reference SD is the
  well-to-well SD of the 26 DMSO wells of the A375 plate, a lower bound of the real spread (technical noise only).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.std import tqdm

from . import expression
from .metrics import (EXPRESSION_METRICS, energy_distance, energy_score, expression_metrics, spread_ratio,
                      summarise_runs, variance_r2)
from .models.diffusion import ConditionalDiffusion, DiffusionConfig, PerturbationConditioner, diffusion_loss
from .models.encoder_decoder import (EncoderDecoderConfig, PerturbationEncoderDecoder, dose_scale,
                                     encoder_decoder_loss)
from .splits import Split
from .training import FitConfig, FitResult, fit

POINT_MODELS = ("basal (no change)", "training mean per cell line", "ridge")
ENCODER_DECODER = "encoder-decoder (PRnet-style)"
ENCODER_DECODER_GAUSSIAN = "encoder-decoder + Gaussian draws"
DIFFUSION = "diffusion"
GENERATIVE_MODELS = (ENCODER_DECODER, ENCODER_DECODER_GAUSSIAN, DIFFUSION)
ALL_MODELS = (*POINT_MODELS, *GENERATIVE_MODELS)
ORACLE = "true distribution (simulator)"
DISTRIBUTION_METRICS = ("energy_score", "energy_distance", "energy_distance_true", "variance_r2", "spread_ratio")
ACCURACY_METRICS = ("pearson_change", "r2_top_degs", "rmse")


@dataclass
class GenerativeSettings:
    """Sizes, optimisation and sampling of one profile."""

    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    diffusion_fit: FitConfig = field(default_factory=lambda: FitConfig(
        epochs=400, batch_size=128, lr=1e-3, weight_decay=1e-5, early_stopping_patience=40, plateau_patience=15,
        plateau_factor=0.5))
    encoder_decoder: EncoderDecoderConfig = field(default_factory=EncoderDecoderConfig)
    encoder_decoder_fit: FitConfig = field(default_factory=lambda: FitConfig(
        epochs=200, batch_size=128, lr=1e-3, weight_decay=1e-5, early_stopping_patience=15, plateau_patience=5,
        plateau_factor=0.5))
    min_steps: int = 1000  # optimiser steps at least, whatever the data size (epochs raised for small sets)
    n_samples: int = 64  # generated profiles per test condition
    n_reference: int = 64  # fresh true draws per condition (simulator)
    ddim_steps: int = 50
    guidance: float = 1.0
    expression: expression.ExpressionSettings = field(default_factory=expression.ExpressionSettings)


def settings_for(profile: str, device: str = "cpu") -> GenerativeSettings:
    """``smoke`` (seconds), ``quick`` (minutes on 2 CPU cores), ``full`` (longer training, more samples; a GPU)."""
    settings = GenerativeSettings(expression=expression.settings_for(profile, device))
    if profile == "smoke":
        settings.diffusion = DiffusionConfig(width=64, depth=2, n_steps=100)
        settings.encoder_decoder = EncoderDecoderConfig(width=64, latent=16)
        settings.diffusion_fit.epochs = settings.encoder_decoder_fit.epochs = 3
        settings.n_samples = settings.n_reference = 8
        settings.ddim_steps = 10
        settings.min_steps = 0
    elif profile == "quick":
        settings.diffusion_fit.epochs, settings.encoder_decoder_fit.epochs = 60, 40
        settings.diffusion_fit.early_stopping_patience = settings.encoder_decoder_fit.early_stopping_patience = 10
        settings.diffusion_fit.plateau_patience = 4
        settings.n_samples = settings.n_reference = 32
    elif profile != "full":
        raise ValueError(f"unknown profile {profile!r}; use smoke, quick or full")
    for config in (settings.diffusion_fit, settings.encoder_decoder_fit):
        config.device = device
        config.progress = profile != "smoke"
    return settings


@dataclass
class TargetScaler:
    """Per-gene standardisation of changes from basal, fitted on training profiles only."""

    mean: np.ndarray
    sd: np.ndarray

    @classmethod
    def fit(cls, change: np.ndarray) -> TargetScaler:
        """change: (n_train, genes) log2 changes of the training profiles."""
        sd = change.std(axis=0)
        return cls(change.mean(axis=0).astype(np.float32), np.where(sd > 1e-6, sd, 1.0).astype(np.float32))

    def transform(self, change: np.ndarray) -> np.ndarray:
        return ((change - self.mean) / self.sd).astype(np.float32)

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        """Standardised values (..., genes) back to log2 changes."""
        return scaled * self.sd + self.mean


@dataclass
class Prepared:
    """Inputs of one split: :class:`perturbx.expression.Prepared` (basal, dose, time) and the target scaler."""

    features: expression.Prepared
    scaler: TargetScaler
    dose_scale: np.ndarray  # (n, 1) PRnet's log(1 + dose) of every profile


def prepare(inputs: expression.Inputs, train: np.ndarray) -> Prepared:
    """Every statistic from the profiles at positions ``train`` only."""
    return Prepared(expression.prepare(inputs, train), TargetScaler.fit(inputs.data.change[train]),
                    dose_scale(inputs.data.metadata["dose_um"].to_numpy(float)))


def condition_inputs(inputs: expression.Inputs, prepared: Prepared, rows: np.ndarray,
                     model: str = DIFFUSION) -> list[torch.Tensor]:
    """The conditioning tensors of ``rows`` for ``model``: compound index, basal, dose (diffusion: features;
    encoder-decoder: log(1 + dose) scale), time."""
    compound, basal, dose, time_ = expression.tensors(inputs, prepared.features, rows)[:4]
    if model != DIFFUSION:
        dose = torch.as_tensor(prepared.dose_scale[rows])
    return [compound, basal, dose, time_]


def training_tensors(inputs: expression.Inputs, prepared: Prepared, rows: np.ndarray,
                     model: str) -> list[torch.Tensor]:
    """[*condition inputs, standardised change (target)] of ``rows``."""
    target = torch.as_tensor(prepared.scaler.transform(inputs.data.change[rows]))
    return [*condition_inputs(inputs, prepared, rows, model), target]


def fit_generative(inputs: expression.Inputs, prepared: Prepared, split: Split, settings: GenerativeSettings,
                   seed: int, model: str = DIFFUSION) -> tuple[torch.nn.Module, FitResult]:
    """Train the diffusion model or the encoder-decoder on ``split.train``, early stopping on ``split.val``."""
    torch.manual_seed(seed)
    n_genes = inputs.data.expression.shape[1]
    if model == DIFFUSION:
        net = ConditionalDiffusion(n_genes, PerturbationConditioner(inputs.fingerprints, n_genes,
                                                                    settings.diffusion.width,
                                                                    settings.diffusion.dropout), settings.diffusion)
        loss, base = diffusion_loss, settings.diffusion_fit
    elif model == ENCODER_DECODER:
        net = PerturbationEncoderDecoder(inputs.fingerprints, n_genes, settings.encoder_decoder)
        loss, base = encoder_decoder_loss, settings.encoder_decoder_fit
    else:
        raise ValueError(f"unknown generative model {model!r}; use {DIFFUSION!r} or {ENCODER_DECODER!r}")
    steps_per_epoch = max(1, -(-len(split.train) // base.batch_size))
    epochs = max(base.epochs, -(-settings.min_steps // steps_per_epoch))
    config = FitConfig(**{**base.__dict__, "seed": seed, "epochs": epochs,
                          "description": f"{model}, {split.kind}, seed {seed}"})
    val = training_tensors(inputs, prepared, split.val, model) if len(split.val) else None
    train = training_tensors(inputs, prepared, split.train, model)
    if model == DIFFUSION:
        net.set_range(train[-1])
    return net, fit(net, loss, train, val, config)


def generate(model: torch.nn.Module, inputs: expression.Inputs, prepared: Prepared, rows: np.ndarray,
             n_samples: int, seed: int = 0, max_batch: int = 4096, **sampling) -> Iterator[tuple[slice, np.ndarray]]:
    """Samples of the change from basal for the conditions of ``rows``, in chunks of at most ``max_batch`` profiles.

    Args:
        model: a trained :class:`ConditionalDiffusion` or :class:`PerturbationEncoderDecoder`.
        sampling: keyword arguments of the model's ``sample`` (``method``, ``steps``, ``guidance``,
            ``from_variance``, ...).

    Yields:
        (positions in ``rows``, float32 (chunk, n_samples, genes) log2 changes).
    """
    kind = DIFFUSION if isinstance(model, ConditionalDiffusion) else ENCODER_DECODER
    device = next(model.parameters()).device
    per_chunk = max(1, max_batch // n_samples)
    for number, start in enumerate(range(0, len(rows), per_chunk)):
        part = slice(start, min(start + per_chunk, len(rows)))
        condition = [t.to(device) for t in condition_inputs(inputs, prepared, rows[part], kind)]
        generator = torch.Generator(device).manual_seed(seed * 100_003 + number)
        scaled = model.sample(*condition, n_samples=n_samples, generator=generator, **sampling)
        yield part, prepared.scaler.inverse(scaled.cpu().numpy())


def test_conditions(inputs: expression.Inputs, test: np.ndarray) -> pd.DataFrame:
    """One row per condition among the ``test`` profiles: ``condition``, ``row`` (the first test profile, whose
    compound, basal, dose and time stand for the condition), ``members`` (array of its test profile positions)."""
    test = np.asarray(test)
    codes, labels = pd.factorize(expression.condition_groups(inputs.data.metadata.iloc[test]))
    members = [test[codes == i] for i in range(len(labels))]
    return pd.DataFrame({"condition": labels, "row": [m[0] for m in members], "members": members})


@dataclass
class Truth:
    """What the simulator knows about test conditions: exact moments and fresh draws."""

    simulation: object  # perturbx.datasets.simulate.Simulation
    n_reference: int
    seed: int = 0

    def moments(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """True mean change and SD (each (len(rows), genes)) of the conditions of profiles ``rows``."""
        truth, index = self.simulation.truth, self.simulation.condition_rows(rows)
        return truth.mean[index] - self.simulation.data.basal[rows], truth.sd[index]

    def draws(self, rows: np.ndarray, n: int, seed: int) -> np.ndarray:
        """(len(rows), n, genes) fresh profiles (log2 expression) of the conditions of profiles ``rows``."""
        ids = self.simulation.data.metadata["condition_id"].to_numpy()[rows]
        return self.simulation.sample(ids, n, seed=seed)

    def reference(self, rows: np.ndarray, split_seed: int, offset: int = 0, n: int | None = None) -> np.ndarray:
        """The draws every model of one split is compared with (``n_reference`` per condition unless ``n``);
        ``offset`` gives an independent set from the same split seed."""
        return self.draws(rows, self.n_reference if n is None else n, self.seed + 7919 * split_seed + offset)


def score_samples(samples: np.ndarray, conditions: pd.DataFrame, data, reference_sd: np.ndarray | None = None,
                  truth: Truth | None = None, true_draws: np.ndarray | None = None) -> pd.DataFrame:
    """Distribution metrics of each condition's samples (see the module docstring).

    Args:
        samples: (n_conditions, n_samples, genes) generated log2 changes (n_samples = 1: a point prediction).
        conditions: :func:`test_conditions` table.
        data: the curated profiles (expression, basal).
        reference_sd: (genes,) SD for ``spread_ratio`` when there is no truth (real data: DMSO well-to-well SD).
        truth: the simulator; ``true_draws`` (n_conditions, n_reference, genes) its fresh draws.

    Returns:
        One row per condition: ``condition`` and every name in ``DISTRIBUTION_METRICS`` (NaN where undefined).
    """
    rows = []
    true_sd = truth.moments(conditions["row"].to_numpy())[1] if truth is not None else None
    for i, (members, first) in enumerate(zip(conditions["members"], conditions["row"])):
        profiles = data.basal[first] + samples[i]
        observed = data.expression[members]
        row = {"condition": conditions["condition"].iat[i],
               "energy_score": np.mean([energy_score(profiles, y) for y in observed])}
        row |= dict.fromkeys(DISTRIBUTION_METRICS[1:], np.nan)
        several = len(profiles) > 1
        if truth is not None:
            row["energy_distance"] = energy_distance(profiles, observed)
            row["energy_distance_true"] = energy_distance(profiles, true_draws[i])
            if several:
                row["variance_r2"] = variance_r2(profiles.var(axis=0, ddof=1), true_sd[i] ** 2)
                row["spread_ratio"] = spread_ratio(profiles, true_sd[i])
        elif reference_sd is not None and several:
            row["spread_ratio"] = spread_ratio(profiles, reference_sd)
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class GenerativeResult:
    """One split of one seed: per-profile accuracy, per-condition distribution metrics, the trained models."""

    split: Split
    seed: int
    prepared: Prepared
    conditions: pd.DataFrame
    accuracy: pd.DataFrame  # one row per (model, test profile): model, row, *EXPRESSION_METRICS
    distribution: pd.DataFrame  # one row per (model, test condition): model, condition, *DISTRIBUTION_METRICS
    sample_means: dict[str, np.ndarray]  # model -> (n_conditions, genes) mean generated change
    models: dict[str, torch.nn.Module]
    fits: dict[str, FitResult]
    seconds: dict[str, float]


def evaluate_samples(name: str, model: torch.nn.Module, inputs: expression.Inputs, prepared: Prepared,
                     conditions: pd.DataFrame, n_samples: int, seed: int, reference_sd: np.ndarray | None = None,
                     truth: Truth | None = None, true_draws: np.ndarray | None = None,
                     **sampling) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, float]:
    """Generate ``n_samples`` per condition with ``model`` and score them.

    Returns:
        (accuracy per test profile, distribution metrics per condition, (n_conditions, genes) sample means,
        seconds spent generating (scoring excluded)).
    """
    data, rows = inputs.data, conditions["row"].to_numpy()
    means, scores, generating = np.zeros((len(rows), data.expression.shape[1]), np.float32), [], 0.0
    chunks = generate(model, inputs, prepared, rows, n_samples, seed, **sampling)
    while True:
        started = time.perf_counter()
        chunk = next(chunks, None)
        generating += time.perf_counter() - started
        if chunk is None:
            break
        part, samples = chunk
        means[part] = samples.mean(axis=1)
        scores.append(score_samples(samples, conditions.iloc[part], data, reference_sd, truth,
                                    None if true_draws is None else true_draws[part]))
    return (_accuracy(name, means, conditions, data), pd.concat(scores, ignore_index=True).assign(model=name),
            means, generating)


def _accuracy(name: str, condition_change: np.ndarray, conditions: pd.DataFrame, data) -> pd.DataFrame:
    """Per-profile accuracy of one predicted change per condition, broadcast to the condition's profiles."""
    members = np.concatenate(conditions["members"].to_list())
    change = np.repeat(condition_change, [len(m) for m in conditions["members"]], axis=0)
    return expression_metrics(data.expression[members], data.basal[members] + change,
                              data.basal[members]).assign(model=name, row=members)


def run_split(inputs: expression.Inputs, split: Split, settings: GenerativeSettings, seed: int,
              models: Sequence[str] = ALL_MODELS, reference_sd: np.ndarray | None = None,
              truth: Truth | None = None) -> GenerativeResult:
    """Fit every model in ``models`` on ``split.train`` and score it on the conditions of ``split.test``."""
    prepared = prepare(inputs, split.train)
    conditions = test_conditions(inputs, split.test)
    data, first = inputs.data, conditions["row"].to_numpy()
    accuracy, distribution, means, trained, fits, seconds = [], [], {}, {}, {}, {}
    true_draws = None if truth is None else truth.reference(first, seed)

    point = [m for m in models if m in POINT_MODELS]
    if point:  # the expression chapter's baselines, one prediction per profile: use each condition's first
        started = time.perf_counter()
        result = expression.run_split(inputs, split, settings.expression, seed, point)
        position = {row: i for i, row in enumerate(split.test)}
        for name in point:
            change = result.predictions[name][[position[r] for r in first]]
            means[name] = change
            accuracy.append(_accuracy(name, change, conditions, data))
            distribution.append(score_samples(change[:, None], conditions, data, reference_sd, truth, true_draws)
                                .assign(model=name))
            seconds[name] = result.seconds[name]
        seconds["point models (total)"] = time.perf_counter() - started

    sampled = {ENCODER_DECODER: {"from_variance": False}, ENCODER_DECODER_GAUSSIAN: {"from_variance": True},
               DIFFUSION: {"method": "ddim", "steps": settings.ddim_steps, "guidance": settings.guidance}}
    for name in [m for m in models if m in GENERATIVE_MODELS]:
        kind = DIFFUSION if name == DIFFUSION else ENCODER_DECODER
        started = time.perf_counter()
        if kind not in trained:
            trained[kind], fits[kind] = fit_generative(inputs, prepared, split, settings, seed, kind)
        acc, dist, means[name], sampling_seconds = evaluate_samples(name, trained[kind], inputs, prepared, conditions,
                                                  settings.n_samples, seed, reference_sd, truth, true_draws,
                                                  **sampled[name])
        accuracy.append(acc)
        distribution.append(dist)
        seconds[name] = time.perf_counter() - started
        seconds[f"{name}: sampling"] = sampling_seconds
    for name in models:
        if name not in ALL_MODELS:
            raise ValueError(f"unknown model {name!r}; use any of {', '.join(ALL_MODELS)}")

    if truth is not None:  # the ceiling: true mean for accuracy, fresh true draws for the distribution
        true_change = truth.moments(first)[0]
        means[ORACLE] = true_change
        accuracy.append(_accuracy(ORACLE, true_change, conditions, data))
        own = truth.reference(first, seed, offset=1, n=settings.n_samples) - data.basal[first][:, None]
        distribution.append(score_samples(own, conditions, data, reference_sd, truth, true_draws).assign(model=ORACLE))
    return GenerativeResult(split, seed, prepared, conditions, pd.concat(accuracy, ignore_index=True),
                            pd.concat(distribution, ignore_index=True), means, trained, fits, seconds)


def run_experiments(inputs: expression.Inputs, kinds: Sequence[str], seeds: Sequence[int],
                    settings: GenerativeSettings, models: Sequence[str] = ALL_MODELS,
                    reference_sd: np.ndarray | None = None, truth: Truth | None = None,
                    progress: bool = True) -> tuple[pd.DataFrame, dict[tuple[str, int], GenerativeResult]]:
    """Every split kind x seed (:func:`perturbx.expression.make_split`: whole conditions held out at random, or
    whole compound structures).

    Returns:
        (runs, results): ``runs`` has one row per (split, seed, model) with the mean of every accuracy metric over
        the test profiles and of every distribution metric over the test conditions; ``results`` maps
        (split kind, seed) -> :class:`GenerativeResult`.
    """
    rows, results = [], {}
    for kind, seed in tqdm([(k, s) for k in kinds for s in seeds], desc="splits", disable=not progress, leave=False):
        result = run_split(inputs, expression.make_split(inputs, kind, seed), settings, seed, models,
                           reference_sd, truth)
        results[(kind, seed)] = result
        accuracy = result.accuracy.groupby("model", sort=False)[list(EXPRESSION_METRICS)].mean()
        distribution = result.distribution.groupby("model", sort=False)[list(DISTRIBUTION_METRICS)].mean()
        for model, values in accuracy.join(distribution).iterrows():
            rows.append({"split": kind, "seed": seed, "model": model, **values.to_dict(),
                         "n_conditions": len(result.conditions), "seconds": result.seconds.get(model, np.nan)})
    return pd.DataFrame(rows), results


def results_table(runs: pd.DataFrame, metrics: Sequence[str] = (*ACCURACY_METRICS, *DISTRIBUTION_METRICS)
                  ) -> pd.DataFrame:
    """Mean ± sd over seeds per (split, model); metrics that are NaN for every run are left out."""
    present = [m for m in metrics if runs[m].notna().any()]
    return summarise_runs(runs, ["split", "model"], present)


def _resample(result: GenerativeResult, inputs: expression.Inputs, settings: GenerativeSettings,
              variants: Sequence[tuple[dict, dict]], description: str, reference_sd: np.ndarray | None,
              truth: Truth | None, max_conditions: int | None) -> pd.DataFrame:
    """Re-sample the test conditions of ``result`` with its diffusion model once per (labels, sampling keyword
    arguments) variant; one row per variant: the labels, ``seconds per 1,000 profiles`` (generation only) and the
    mean of ``ACCURACY_METRICS`` and ``DISTRIBUTION_METRICS``."""
    conditions = result.conditions.iloc[:max_conditions]
    true_draws = None if truth is None else truth.reference(conditions["row"].to_numpy(), result.seed)
    rows = []
    for labels, sampling in tqdm(variants, desc=description, leave=False):
        acc, dist, _, elapsed = evaluate_samples(DIFFUSION, result.models[DIFFUSION], inputs, result.prepared,
                                                 conditions, settings.n_samples, result.seed, reference_sd, truth,
                                                 true_draws, **sampling)
        rows.append({**labels, "seconds per 1,000 profiles": 1000 * elapsed / (len(conditions) * settings.n_samples),
                     **acc[list(ACCURACY_METRICS)].mean().to_dict(),
                     **dist[list(DISTRIBUTION_METRICS)].mean().to_dict()})
    return pd.DataFrame(rows)


def guidance_sweep(result: GenerativeResult, inputs: expression.Inputs, weights: Sequence[float],
                   settings: GenerativeSettings, reference_sd: np.ndarray | None = None,
                   truth: Truth | None = None, max_conditions: int | None = None) -> pd.DataFrame:
    """Accuracy and distribution metrics of the trained diffusion model of ``result`` for each guidance weight
    (DDIM with ``settings.ddim_steps``).

    Returns:
        One row per weight: ``guidance``, ``seconds per 1,000 profiles`` and the mean of ``ACCURACY_METRICS`` and
        ``DISTRIBUTION_METRICS``.
    """
    variants = [({"guidance": w}, {"method": "ddim", "steps": settings.ddim_steps, "guidance": w}) for w in weights]
    return _resample(result, inputs, settings, variants, "guidance weights", reference_sd, truth, max_conditions)


def sampler_comparison(result: GenerativeResult, inputs: expression.Inputs, samplers: Sequence[tuple[str, int]],
                       settings: GenerativeSettings, reference_sd: np.ndarray | None = None,
                       truth: Truth | None = None, max_conditions: int | None = None) -> pd.DataFrame:
    """Time and metrics of each (method, steps) sampler, e.g. [("ddpm", 1000), ("ddim", 50), ("ddim", 20)]
    (guidance weight ``settings.guidance``).

    Returns:
        One row per sampler: ``sampler``, ``steps``, ``seconds per 1,000 profiles`` and the mean metrics.
    """
    total = result.models[DIFFUSION].schedule.n_steps
    variants = [({"sampler": method.upper(), "steps": total if method == "ddpm" else steps},
                 {"method": method, "steps": steps, "guidance": settings.guidance}) for method, steps in samplers]
    return _resample(result, inputs, settings, variants, "samplers", reference_sd, truth, max_conditions)
