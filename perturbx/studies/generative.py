"""The diffusion chapter's protocol: generative models of drug-induced expression, samples per test condition.

Every model predicts the **change from basal** of the 978 landmark genes; a generated profile is basal + change.
Why the change and not the treated profile: the basal profile explains most of a treated profile (the whole-profile
Pearson of "no change" is above 0.9), so a model of treated profiles spends its capacity re-generating the cell
line; modelling the change puts it on the perturbation, and it makes the classifier-free-guidance branch without a
perturbation mean "this cell line, untreated-like response". Changes are standardised per gene with the mean and
SD of the training profiles of the split (:class:`TargetScaler`).

Models (:data:`MODELS`, by id):

- ``no_change``, ``cell_line_mean``, ``ridge``: point predictions, the baselines of
  :mod:`perturbx.tasks.l1000`;
- ``encoder_decoder``: :class:`PerturbationEncoderDecoder` (PRnet-style), samples from new noise vectors;
- ``encoder_decoder_gaussian``: the same trained model, samples also drawn from its predicted per-gene variance;
- ``diffusion``: :class:`ConditionalDiffusion`, DDIM sampling with guidance weight ``settings.guidance``;
- ``true_distribution``: on the semi-synthetic benchmark only, fresh draws from the generator (the ceiling of
  every distribution metric, and the true mean for the accuracy metrics);
- ``replicate_ceiling``: on real data with replicate wells (e.g. the SKBR3 plate) only, each held-out replicate
  predicted by the mean of the other replicates of its condition
  (:func:`perturbx.evaluation.replicates.leave_one_out_means`): what an independent measurement of the condition
  reaches; it underestimates the ceiling of the true mean (much so where replicates agree poorly, see
  :func:`perturbx.evaluation.replicates.leave_one_out_ceiling`), so a model can exceed it; no distribution metrics.

Evaluation units: a **condition** is (compound structure, cell line, dose, time); its replicates are the test
profiles that share it. Each generative model draws ``settings.n_samples`` profiles per test condition. Accuracy
metrics score the mean of the samples against each test profile
(:func:`perturbx.evaluation.metrics.expression_metrics`).
Distribution metrics, per condition: :mod:`perturbx.evaluation.distributions`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from tqdm.std import tqdm

from ..evaluation import replicates
from ..evaluation.distributions import (
    DISTRIBUTION_METRICS,
    Reference,
    condition_accuracy,
    pooled_replicate_sd,
    score_samples,
)
from ..evaluation.metrics import (
    EXPRESSION_METRICS,
    expression_metrics,
    nan_columns,
)
from ..models.diffusion import ConditionalDiffusion, DiffusionConfig
from ..models.encoder_decoder import EncoderDecoderConfig
from ..models.generative import NETWORKS, L1000GenerativeEstimator, generate
from ..pathways import pathway_agreement, prerank
from ..runtime import parallel_jobs
from ..splits import Split
from ..tasks.l1000 import (
    GenerativePrepared,
    Inputs,
    L1000Fold,
    Truth,
    make_split,
    prepare_generative,
    test_conditions,
)
from ..training import FitConfig
from . import l1000_baselines, protocol
from .graph_model import ExpressionSettings
from .l1000_baselines import L1000Context
from .protocol import ModelOutput, ModelRegistry, ModelSpec, ProfileSettings, SplitResult

ACCURACY_METRICS = ("pearson_change", "r2_top_degs", "rmse")


@dataclass
class GenerativeSettings(ProfileSettings):
    """Sizes, optimisation and sampling of one profile."""

    # gene_scale: without a per-gene multiple of the noisy input, a 256-wide denoiser samples the whole training
    # set's spread for every condition (spread ratio ~1.55 on the simulator; benchmarks/lincs_scale_models.py)
    diffusion: DiffusionConfig = field(default_factory=lambda: DiffusionConfig(gene_scale=True))
    # min_delta: on the simulator the validation loss (about 0.79) still creeps down by 1e-5 per epoch once the
    # plateau schedule has decayed the learning rate; 2e-4 stops there (seed 0, random split: best epoch 102 at
    # 0.7907 against 147 at 0.7902 with 1e-6; at 60 epochs the best epoch was the last)
    diffusion_fit: FitConfig = field(default_factory=lambda: FitConfig(
        epochs=300, batch_size=256, lr=2e-3, weight_decay=1e-5, early_stopping_patience=20, plateau_patience=6,
        plateau_factor=0.5, min_delta=2e-4))
    encoder_decoder: EncoderDecoderConfig = field(default_factory=EncoderDecoderConfig)
    # monitor the MSE of the mean: the Gaussian NLL's validation minimum comes early (it fits the variance first),
    # which stopped the mean under-trained (validation NLL best at epoch 4, MSE still improving at epoch 25)
    encoder_decoder_fit: FitConfig = field(default_factory=lambda: FitConfig(
        epochs=200, batch_size=128, lr=1e-3, weight_decay=1e-5, early_stopping_patience=15, plateau_patience=5,
        plateau_factor=0.5, monitor="mse"))
    min_steps: int = 1000  # optimiser steps at least, whatever the data size (epochs raised for small sets)
    min_patience_steps: int = 200  # early stopping waits this many optimiser steps at least (patience raised)
    n_samples: int = 64  # generated profiles per test condition
    n_reference: int = 64  # fresh true draws per condition (simulator)
    ddim_steps: int = 50
    guidance: float = 1.0
    # sampling temperatures the diffusion model chooses from on the validation conditions (one value: no choice)
    temperatures: tuple[float, ...] = (1.0,)
    expression: ExpressionSettings = field(default_factory=ExpressionSettings)
    workers: int = 1  # jobs (splits x seeds) run at once, each in its own process (protocol.run_jobs)

    def describe(self) -> str:
        """The networks, their optimisation and the sampling settings, one block of lines for the chapter."""
        return (f"diffusion: {self.diffusion}\n  optimisation: {self.diffusion_fit}\nencoder-decoder: "
                f"{self.encoder_decoder}\n  optimisation: {self.encoder_decoder_fit}\n{self.n_samples} samples per "
                f"condition; DDIM {self.ddim_steps} steps, guidance {self.guidance}, temperatures {self.temperatures}")

    def _on(self, device: str, progress: bool) -> GenerativeSettings:
        for config in (self.diffusion_fit, self.encoder_decoder_fit):
            config.device, config.progress = device, progress
        return self

    @classmethod
    def smoke(cls, device: str = "cpu") -> GenerativeSettings:
        """Seconds on a CPU."""
        settings = cls(expression=ExpressionSettings.smoke(device),
                       diffusion=DiffusionConfig(width=64, depth=2, n_steps=100, gene_scale=True),
                       encoder_decoder=EncoderDecoderConfig(width=64, latent=16), n_samples=8, n_reference=8,
                       ddim_steps=10, min_steps=0, min_patience_steps=0)
        settings.diffusion_fit.epochs = settings.encoder_decoder_fit.epochs = 3
        return settings._on(device, progress=False)

    @classmethod
    def quick(cls, device: str = "cpu") -> GenerativeSettings:
        """Minutes on 2 CPU cores: the full profile's optimisation on the quick simulator, with a diffusion network
        half as wide, a floor of 300 optimiser steps instead of 1,000 (the SKBR3 diffusion's best epoch comes
        within it) and 16 samples per condition."""
        return replace(cls.full(device), expression=ExpressionSettings.quick(device), n_samples=16, n_reference=16,
                       diffusion=DiffusionConfig(width=128, gene_scale=True), min_steps=300)

    @classmethod
    def full(cls, device: str = "cpu") -> GenerativeSettings:
        """The published tables, about an hour on 2 CPU cores: 32 samples per condition, three temperatures."""
        settings = cls(expression=ExpressionSettings.full(device), n_samples=32, n_reference=32,
                       temperatures=(1.0, 0.8, 0.6), workers=parallel_jobs(device))
        settings.diffusion_fit.epochs, settings.encoder_decoder_fit.epochs = 150, 60
        settings.diffusion_fit.early_stopping_patience, settings.encoder_decoder_fit.early_stopping_patience = 10, 8
        settings.diffusion_fit.plateau_patience, settings.encoder_decoder_fit.plateau_patience = 4, 3
        return settings._on(device, progress=True)


def generative_estimator(network: str, settings: GenerativeSettings) -> L1000GenerativeEstimator:
    """An untrained ``diffusion`` or ``encoder_decoder`` estimator with the sizes and optimisation of ``settings``
    (its step floors ``min_steps`` and ``min_patience_steps`` too); an unknown network is a ``ValueError``."""
    sizes = {"diffusion": (settings.diffusion, settings.diffusion_fit),
             "encoder_decoder": (settings.encoder_decoder, settings.encoder_decoder_fit)}
    if network not in sizes:
        raise ValueError(f"unknown generative network {network!r}; use one of {', '.join(NETWORKS)}")
    config, fit_config = sizes[network]
    return L1000GenerativeEstimator(network, config, fit_config, settings.min_steps, settings.min_patience_steps,
                                    settings.n_samples)


def evaluate_samples(model_id: str, model: torch.nn.Module, inputs: Inputs, prepared: GenerativePrepared,
                     conditions: pd.DataFrame, n_samples: int, seed: int, reference: Reference,
                     **sampling) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, float]:
    """Generate ``n_samples`` per condition with ``model`` and score them as ``model_id``.

    Returns:
        (accuracy per test profile, distribution metrics per condition (both with ``model`` = ``model_id``),
        (n_conditions, genes) sample means, seconds spent generating (scoring excluded)).
    """
    data, rows = inputs.data, conditions["row"].to_numpy()
    means, scores, generating = np.zeros((len(rows), inputs.n_genes), np.float32), [], 0.0
    chunks = generate(model, inputs, prepared, rows, n_samples, seed, **sampling)
    while True:
        started = time.perf_counter()
        chunk = next(chunks, None)
        generating += time.perf_counter() - started
        if chunk is None:
            break
        part, samples = chunk
        means[part] = samples.mean(axis=1)
        scores.append(score_samples(samples, conditions.iloc[part], data, reference.part(part)))
    return (condition_accuracy(model_id, means, conditions, data),
            pd.concat(scores, ignore_index=True).assign(model=model_id), means, generating)


@dataclass
class GenerativeContext(L1000Context):
    """:class:`~perturbx.studies.l1000_baselines.L1000Context` of the generative protocol: ``prepared`` is this module's
    :class:`GenerativePrepared`; the test conditions, the comparison reference, and the estimators trained so far
    (the encoder-decoder is trained once for both of its samplers)."""

    prepared: GenerativePrepared
    settings: GenerativeSettings
    conditions: pd.DataFrame | None = None
    reference: Reference = field(default_factory=Reference)
    networks: dict[str, L1000GenerativeEstimator] = field(default_factory=dict)

    @property
    def fold(self) -> L1000Fold:
        """The split as an estimator sees it, with the target scaler of the change."""
        return L1000Fold(self.inputs, self.split, self.prepared.features, self.prepared.scaler)


def _scored(model_id: str, change: np.ndarray, context: GenerativeContext, samples: np.ndarray) -> dict:
    data = context.inputs.data
    return {"accuracy": condition_accuracy(model_id, change, context.conditions, data),
            "distribution": score_samples(samples, context.conditions, data, context.reference).assign(
                model=model_id)}


def _point_model(model_id: str) -> Callable[[GenerativeContext], ModelOutput]:
    """A baseline of the L1000 task as a generative model with one sample per condition (its prediction for the
    condition's first test profile)."""
    def run(context: GenerativeContext, seed: int) -> ModelOutput:
        point = L1000Context(context.inputs, context.prepared.features, context.split, context.seed,
                             context.settings.expression)
        position = {row: i for i, row in enumerate(context.split.test)}
        predicted = l1000_models[model_id].run(point, seed).prediction
        change = predicted[[position[r] for r in context.conditions["row"]]]
        return ModelOutput(change, **_scored(model_id, change, context, change[:, None]))
    return run


def _sampled_model(model_id: str, network: str, options: Callable[[GenerativeSettings], dict]):
    """A generative model: train ``network`` once per split (seeded by the network's name, so that the two
    samplers of the encoder-decoder share one trained network), then draw ``settings.n_samples`` per condition
    with the model's own seed. The diffusion model first chooses its sampling temperature on the validation
    conditions (:func:`choose_temperature`)."""
    def run(context: GenerativeContext, seed: int) -> ModelOutput:
        settings, fitted = context.settings, None
        if network not in context.networks:
            network_seed = protocol.model_seed(MODELS, context.seed, context.split.kind, network)
            estimator = generative_estimator(network, settings)
            fitted = estimator.fit(context.fold, network_seed, f"{_LABELS[network]}, {context.split.kind}")
            context.networks[network] = estimator
        estimator = context.networks[network]
        model, sampling, chosen, choice_table = estimator.network, options(settings), {}, None
        n_samples = sampling.pop("n_samples", settings.n_samples)
        if model_id == "diffusion" and len(settings.temperatures) > 1:
            sampling["temperature"], choice_table = choose_temperature(model, context, seed, sampling)
            chosen["temperature"] = sampling["temperature"]
        accuracy, distribution, means, sampling_seconds = evaluate_samples(
            model_id, model, context.inputs, context.prepared, context.conditions, n_samples, seed,
            context.reference, **sampling)
        return ModelOutput(means, model, fitted, estimator=estimator, sampling_seconds=sampling_seconds,
                           accuracy=accuracy, distribution=distribution, chosen=chosen, choice_table=choice_table)
    return run


def choose_temperature(model: ConditionalDiffusion, context: GenerativeContext, seed: int, sampling: dict,
                       max_conditions: int = 64) -> tuple[float, pd.DataFrame]:
    """The sampling temperature (of ``settings.temperatures``) whose samples are closest to the measured validation
    profiles: lowest mean energy distance to the replicates of validation conditions with 2 or more of them, or
    lowest energy score where no validation condition has replicates. Test profiles are never looked at.

    Returns:
        (chosen temperature, one row per temperature with the validation ``criterion`` value).
    """
    conditions = test_conditions(context.inputs, context.split.val).iloc[:max_conditions]
    replicated = conditions["members"].map(len).ge(2).any()
    criterion = "energy_distance" if replicated else "energy_score"
    rows = []
    for temperature in context.settings.temperatures:
        _, scores, _, _ = evaluate_samples("diffusion", model, context.inputs, context.prepared, conditions,
                                           context.settings.n_samples, seed, Reference(),
                                           **(sampling | {"temperature": temperature}))
        rows.append({"temperature": temperature, "criterion": criterion, "value": scores[criterion].mean()})
    table = pd.DataFrame(rows)
    return float(table.loc[table["value"].idxmin(), "temperature"]), table


def _marginal_draws(context: GenerativeContext, seed: int) -> ModelOutput:
    """The condition-blind sampler: ``settings.n_samples`` training changes drawn at random for every condition,
    from its own cell line's training profiles where there are any (all training profiles otherwise). It has the
    data's spread but no knowledge of the compound, dose or time, so a distribution metric that it matches cannot
    tell a conditioned generator from noise of the right size."""
    rng = np.random.default_rng(seed)
    train, change = context.split.train, context.inputs.data.change
    cells = context.inputs.data.metadata["cell_id"].to_numpy()
    samples = np.empty((len(context.conditions), context.settings.n_samples, context.inputs.n_genes), np.float32)
    for i, row in enumerate(context.conditions["row"]):
        own = train[cells[train] == cells[row]]
        samples[i] = change[rng.choice(own if len(own) else train, context.settings.n_samples)]
    mean = samples.mean(axis=1)
    return ModelOutput(mean, **_scored("marginal_draws", mean, context, samples))


def _true_distribution(context: GenerativeContext, seed: int) -> ModelOutput:
    """The ceiling: the true mean for accuracy, fresh true draws (independent of the reference) for distribution."""
    truth, first = context.reference.truth, context.conditions["row"].to_numpy()
    if truth is None:
        raise ValueError("the true distribution is known on simulated data only: pass truth=l1000.Truth(...)")
    own = truth.reference(first, context.seed, offset=1, n=context.settings.n_samples)
    change = truth.moments(first)[0]
    return ModelOutput(change, **_scored("true_distribution", change, context,
                                             own - context.inputs.data.basal[first][:, None]))


def _replicate_ceiling(context: GenerativeContext, seed: int) -> ModelOutput:
    """The measurement ceiling on real data with replicates: each test profile predicted by the mean change of the
    other test replicates of its condition (profiles alone in their condition are left out of the accuracy rows);
    the condition's prediction is the mean of all its test replicates; no distribution metrics (NaN)."""
    conditions, data, model_id = context.conditions, context.inputs.data, "replicate_ceiling"
    if context.reference.replicate_sd is None:
        raise ValueError("the replicate ceiling needs test conditions with 2 or more replicates (e.g. the SKBR3 "
                         "plate); on simulated data use true_distribution")
    members = np.concatenate(conditions["members"].to_list())
    condition = np.repeat(np.arange(len(conditions)), [len(m) for m in conditions["members"]])
    others = replicates.leave_one_out_means(data.change[members], condition)
    replicated = ~np.isnan(others).any(axis=1)
    kept, others = members[replicated], others[replicated]
    accuracy = expression_metrics(data.expression[kept], data.basal[kept] + others,
                                  data.basal[kept]).assign(model=model_id, row=kept)
    means = np.stack([data.change[m].mean(axis=0) for m in conditions["members"]])
    distribution = pd.DataFrame({"condition": conditions["condition"].to_numpy(),
                                 **nan_columns(DISTRIBUTION_METRICS)}).assign(model=model_id)
    return ModelOutput(means, accuracy=accuracy, distribution=distribution)


_LABELS = {"diffusion": "diffusion", "encoder_decoder": "encoder-decoder (PRnet-style)"}
# How each generative model samples (keyword arguments of its network's ``sample``).
SAMPLING = {"encoder_decoder": lambda s: {"from_variance": False},
            "encoder_decoder_gaussian": lambda s: {"from_variance": True},
            "diffusion": lambda s: {"method": "ddim", "steps": s.ddim_steps, "guidance": s.guidance},
            "diffusion_deterministic": lambda s: {"method": "ddim", "steps": s.ddim_steps, "guidance": s.guidance,
                                                  "temperature": 0.0, "n_samples": 1}}
l1000_models = {spec.id: spec for spec in l1000_baselines.BASELINES}
MODELS = ModelRegistry("generative", [
    *(ModelSpec(i, l1000_models[i].label, _point_model(i), "baseline", l1000_models[i].description)
      for i in ("no_change", "cell_line_mean", "ridge")),
    ModelSpec("marginal_draws", "random training changes", _marginal_draws, "baseline",
              "training changes of the cell line drawn at random, blind to compound, dose and time"),
    ModelSpec("encoder_decoder", _LABELS["encoder_decoder"],
              _sampled_model("encoder_decoder", "encoder_decoder", SAMPLING["encoder_decoder"]), "learned",
              "PRnet-style encoder-decoder, samples from new noise vectors"),
    ModelSpec("encoder_decoder_gaussian", "encoder-decoder + Gaussian draws",
              _sampled_model("encoder_decoder_gaussian", "encoder_decoder", SAMPLING["encoder_decoder_gaussian"]),
              "learned", "the same trained encoder-decoder, plus draws from its predicted per-gene variance"),
    ModelSpec("diffusion", _LABELS["diffusion"], _sampled_model("diffusion", "diffusion", SAMPLING["diffusion"]),
              "learned", "conditional DDPM (v-prediction), DDIM sampling with classifier-free guidance"),
    ModelSpec("diffusion_deterministic", "diffusion at temperature 0 (one sample)",
              _sampled_model("diffusion_deterministic", "diffusion", SAMPLING["diffusion_deterministic"]), "learned",
              "the same trained diffusion model, DDIM from zero noise: one deterministic profile per condition"),
    ModelSpec("true_distribution", "true distribution (simulator)", _true_distribution, "oracle",
              "fresh draws from the simulator (a ceiling)"),
    ModelSpec("replicate_ceiling", "replicate ceiling (other replicates' mean)", _replicate_ceiling, "oracle",
              "each held-out replicate predicted by the mean of its condition's other replicates (real data)"),
])
DEFAULT_MODELS = tuple(MODELS.ids("baseline") + MODELS.ids("learned"))
GENERATIVE_MODELS = ("encoder_decoder", "encoder_decoder_gaussian", "diffusion")
"""The models that draw many profiles per condition."""


@dataclass
class GenerativeResult(SplitResult):
    """A :class:`~perturbx.studies.protocol.SplitResult` whose ``metrics`` are the per-profile accuracy
    metrics, plus the per-condition distribution metrics (``model``: the model id in both); ``predictions`` are
    (n_conditions, genes) mean changes."""

    distribution: pd.DataFrame | None = None

    @property
    def conditions(self) -> pd.DataFrame:
        """The test conditions (:func:`test_conditions`)."""
        return self.context.conditions

    @property
    def prepared(self) -> GenerativePrepared:
        """The split's training-fitted scaling."""
        return self.context.prepared


def run_split(inputs: Inputs, split: Split, settings: GenerativeSettings, seed: int,
              models: Sequence[str] = DEFAULT_MODELS, reference_sd: np.ndarray | None = None,
              truth: Truth | None = None) -> GenerativeResult:
    """Fit every model id in ``models`` on ``split.train`` and score it on the conditions of ``split.test``.

    With ``truth`` (simulator) the ``true_distribution`` ceiling is added. Without it, where test conditions have
    2 or more replicates (real replicate wells), the distribution metrics use the pooled replicate SD
    (:func:`pooled_replicate_sd`) and the ``replicate_ceiling`` row is added.
    """
    conditions = test_conditions(inputs, split.test)
    first = conditions["row"].to_numpy()
    replicate_sd = None if truth is not None else pooled_replicate_sd(inputs.data, conditions)
    reference = Reference(reference_sd, truth, None if truth is None else truth.reference(first, seed), replicate_sd)
    context = GenerativeContext(inputs, prepare_generative(inputs, split.train), split, seed, settings, conditions,
                                reference)
    oracle = "true_distribution" if truth is not None else "replicate_ceiling" if replicate_sd is not None else None
    ids = [*models, oracle] if oracle is not None and oracle not in models else list(models)
    outputs = protocol.run_models(MODELS, ids, context, seed, split.kind)
    return GenerativeResult(split, seed, pd.concat([o.accuracy for o in outputs.values()], ignore_index=True),
                            outputs, context,
                            pd.concat([o.distribution for o in outputs.values()], ignore_index=True))


def summarise(result: GenerativeResult) -> pd.DataFrame:
    """One row per model (``model``: its id): mean accuracy over test profiles, mean distribution metrics over
    test conditions, number of conditions, seconds (fit and sample; the second sampler of a network it already
    trained, e.g. the encoder-decoder's Gaussian draws, counts sampling only)."""
    accuracy = result.metrics.groupby("model", sort=False)[list(EXPRESSION_METRICS)].mean()
    distribution = result.distribution.groupby("model", sort=False)[list(DISTRIBUTION_METRICS)].mean()
    table = accuracy.join(distribution).reset_index()
    temperature = {i: o.chosen["temperature"] for i, o in result.outputs.items() if "temperature" in o.chosen}
    table = table.assign(n_conditions=len(result.conditions), seconds=table["model"].map(result.seconds),
                         temperature=table["model"].map(temperature).astype(float))
    return protocol.with_fit_epochs(table, result)


def run_experiments(inputs: Inputs, kinds: Sequence[str], seeds: Sequence[int], settings: GenerativeSettings,
                    models: Sequence[str] = DEFAULT_MODELS, reference_sd: np.ndarray | None = None,
                    truth: Truth | None = None, progress: bool = True
                    ) -> tuple[pd.DataFrame, dict[tuple[str, int], GenerativeResult]]:
    """Every split kind x seed (:func:`perturbx.tasks.l1000.make_split`).

    Returns:
        (runs, results): ``runs`` has one row per (split, seed, model id) with the mean of every accuracy metric over
        the test profiles and of every distribution metric over the test conditions; ``results`` maps
        (split kind, seed) -> :class:`GenerativeResult`.
    """
    def run_one(job: dict) -> GenerativeResult:
        split = make_split(inputs, job["split"], job["seed"])
        return run_split(inputs, split, settings, job["seed"], models, reference_sd, truth)

    jobs = [{"split": kind, "seed": seed} for kind in kinds for seed in seeds]
    return protocol.run_jobs(jobs, run_one, summarise, "splits", progress, settings.workers)


def results_table(runs: pd.DataFrame,
                  metrics: Sequence[str] = (*ACCURACY_METRICS, *DISTRIBUTION_METRICS, "temperature")) -> pd.DataFrame:
    """Mean ± sd over seeds per (split, model id), with the sampling temperature the diffusion model chose on
    validation and the best epoch of the trained networks; metrics that are NaN for every run are left out."""
    return protocol.results_table(runs, ["split", "model"], metrics)


def _resample(result: GenerativeResult, inputs: Inputs, variants: Sequence[tuple[dict, dict]], description: str,
              max_conditions: int | None) -> pd.DataFrame:
    """Re-sample the test conditions of ``result`` with its diffusion model once per (labels, sampling keyword
    arguments) variant; one row per variant: the labels, ``seconds per 1,000 profiles`` (generation only) and the
    mean of ``ACCURACY_METRICS`` and ``DISTRIBUTION_METRICS``."""
    context: GenerativeContext = result.context
    conditions = result.conditions.iloc[:max_conditions]
    reference = context.reference.part(slice(0, max_conditions))  # the draws the split's table was scored on
    n_samples, seed, rows = context.settings.n_samples, result.outputs["diffusion"].seed, []
    chosen = {"temperature": result.outputs["diffusion"].chosen.get("temperature", 1.0)}  # unless a variant sets it
    for labels, sampling in tqdm(variants, desc=description, leave=False):  # the same noise for every variant
        acc, dist, _, elapsed = evaluate_samples("diffusion", result.models["diffusion"], inputs, result.prepared,
                                                 conditions, n_samples, seed, reference, **(chosen | sampling))
        rows.append({**labels, "seconds per 1,000 profiles": 1000 * elapsed / (len(conditions) * n_samples),
                     **acc[list(ACCURACY_METRICS)].mean().to_dict(),
                     **dist[list(DISTRIBUTION_METRICS)].mean().to_dict()})
    return pd.DataFrame(rows)


def guidance_sweep(result: GenerativeResult, inputs: Inputs, weights: Sequence[float],
                   max_conditions: int | None = None) -> pd.DataFrame:
    """Accuracy and distribution metrics of the trained diffusion model of ``result`` for each guidance weight
    (DDIM with the split's ``settings.ddim_steps``; the same reference as the split's table).

    Returns:
        One row per weight: ``guidance``, ``seconds per 1,000 profiles`` and the mean of ``ACCURACY_METRICS`` and
        ``DISTRIBUTION_METRICS``.
    """
    steps = result.context.settings.ddim_steps
    variants = [({"guidance": w}, {"method": "ddim", "steps": steps, "guidance": w}) for w in weights]
    return _resample(result, inputs, variants, "guidance weights", max_conditions)


def temperature_sweep(result: GenerativeResult, inputs: Inputs, temperatures: Sequence[float],
                      max_conditions: int | None = None) -> pd.DataFrame:
    """Accuracy and distribution metrics of the trained diffusion model of ``result`` at each sampling temperature
    (DDIM with the split's steps and guidance), on the split's test conditions: the trade-off the validation
    choice (:func:`choose_temperature`) makes, shown after the fact.

    Returns:
        One row per temperature: ``temperature``, ``seconds per 1,000 profiles`` and the mean metrics.
    """
    settings = result.context.settings
    variants = [({"temperature": t}, {"method": "ddim", "steps": settings.ddim_steps, "guidance": settings.guidance,
                                      "temperature": t}) for t in temperatures]
    return _resample(result, inputs, variants, "temperatures", max_conditions)


def sampler_comparison(result: GenerativeResult, inputs: Inputs, samplers: Sequence[tuple[str, int]],
                       max_conditions: int | None = None) -> pd.DataFrame:
    """Time and metrics of each (method, steps) sampler, e.g. [("ddpm", 0), ("ddim", 50), ("ddim", 20)]
    (guidance weight ``settings.guidance`` of the split).

    Returns:
        One row per sampler: ``sampler``, ``steps``, ``seconds per 1,000 profiles`` and the mean metrics.
    """
    total, guidance = result.models["diffusion"].schedule.n_steps, result.context.settings.guidance
    variants = [({"sampler": method.upper(), "steps": total if method == "ddpm" else steps},
                 {"method": method, "steps": steps, "guidance": guidance}) for method, steps in samplers]
    return _resample(result, inputs, variants, "samplers", max_conditions)


def draw(result: GenerativeResult, inputs: Inputs, model_id: str, rows: np.ndarray, n: int,
         seed: int = 0) -> np.ndarray:
    """(len(rows), n, genes) generated profiles (basal + change, log2) of the conditions of profiles ``rows``,
    sampled from the trained ``model_id`` of ``result`` as the tables sample it (:data:`SAMPLING`)."""
    if model_id not in SAMPLING:
        raise ValueError(f"{model_id!r} does not sample; use one of {', '.join(SAMPLING)}")
    options = SAMPLING[model_id](result.context.settings)
    options.pop("n_samples", None)
    if "temperature" in result.outputs[model_id].chosen:  # the temperature chosen on validation
        options["temperature"] = result.outputs[model_id].chosen["temperature"]
    (_, change), = generate(result.models[model_id], inputs, result.prepared, np.asarray(rows), n, seed=seed,
                            max_batch=max(n * len(rows), 1), **options)
    return inputs.data.basal[np.asarray(rows)][:, None] + change


def gsea_comparison(dataset: str, result: GenerativeResult, inputs: Inputs, reference_change: np.ndarray,
                    gene_sets: dict[str, list[str]], symbols: Sequence[str], permutations: int, seed: int = 0,
                    models: Sequence[str] = ("diffusion", "ridge"), n_compounds: int = 3
                    ) -> tuple[pd.DataFrame, dict[tuple[str, str], pd.DataFrame]]:
    """GSEA prerank of the real (or true) change and of each model's mean predicted change, for the highest-dose
    test condition of the first ``n_compounds`` compound structures, and how well the pathways agree.

    Args:
        reference_change: (n_conditions, genes) the change each test condition is compared with (observed on real
            data, the true mean on the simulator), in the order of ``result.conditions``.
        gene_sets: pathway -> gene symbols; ``symbols`` the (genes,) symbols of the columns.

    Returns:
        (agreement, tables): one row per (condition, model id) with :func:`perturbx.pathways.pathway_agreement`,
        and (compound name, model id or "real") -> the prerank table.
    """
    conditions = result.conditions
    meta = inputs.data.metadata.iloc[conditions["row"]].assign(position=np.arange(len(conditions)))
    picked = (meta.sort_values("dose_um", ascending=False, na_position="last")
              .groupby("compound_group", sort=True).head(1).head(n_compounds))
    rows, tables = [], {}
    for _, condition in picked.iterrows():
        i, name = condition["position"], condition["compound_name"]
        tables[(name, "real")] = prerank(pd.Series(reference_change[i], index=symbols), gene_sets,
                                         permutations=permutations, seed=seed)
        for model_id in models:
            tables[(name, model_id)] = prerank(pd.Series(result.predictions[model_id][i], index=symbols),
                                               gene_sets, permutations=permutations, seed=seed)
            rows.append({"dataset": dataset, "compound": name, "cell line": condition["cell_id"],
                         "dose (µM)": condition["dose_um"], "model": model_id,
                         **pathway_agreement(tables[(name, "real")], tables[(name, model_id)])})
    return pd.DataFrame(rows), tables


"""(model, baseline) ids compared on the accuracy of the mean (Pearson of change)."""
"""(model, baseline) ids compared on a distance between generated and real distributions (lower is better)."""
