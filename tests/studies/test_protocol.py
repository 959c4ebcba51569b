"""The protocol shared by the three chapters: the model registry, settings per profile, running jobs and tables."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from perturbx.evaluation import metrics
from perturbx.splits import Split
from perturbx.studies import drug_response, generative, graph_model, protocol
from perturbx.studies.protocol import ModelOutput, ModelRegistry, ModelSpec, SplitResult
from perturbx.training import FitConfig, FitReport, fit


def constant(value: float):
    def run(context, seed) -> ModelOutput:
        context.append(value)  # the toy context records which models ran, in order
        return ModelOutput(np.full(3, value))
    return run


def toy_registry() -> ModelRegistry:
    return ModelRegistry("toy", [
        ModelSpec("zero", "always zero", constant(0.0), "baseline", "predicts 0"),
        ModelSpec("one", "always one", constant(1.0), "learned", "predicts 1"),
        ModelSpec("truth", "the truth (oracle)", constant(2.0), "oracle"),
    ])


# --------------------------------------------------------------------------------------------------- registry

def test_registry_ids_labels_and_roles():
    registry = toy_registry()
    assert registry.ids() == ["zero", "one", "truth"]
    assert registry.ids("baseline") == ["zero"] and registry.ids("oracle") == ["truth"]
    assert registry.ids("learned") == ["one"]
    assert registry.labels() == ["always zero", "always one", "the truth (oracle)"]
    assert registry.labels(["truth", "zero"]) == ["the truth (oracle)", "always zero"]
    assert registry.label("one") == "always one"
    assert registry["one"].description == "predicts 1"
    assert "one" in registry and "always one" not in registry  # keyed by id, never by label
    assert [spec.id for spec in registry] == registry.ids()
    assert [spec.id for spec in registry.resolve(["truth", "zero"])] == ["truth", "zero"]


@pytest.mark.parametrize("lookup", [lambda r: r["always one"], lambda r: r.label("two"),
                                    lambda r: r.resolve(["zero", "two"]), lambda r: r.labels(["two"])])
def test_unknown_id_is_an_error_naming_the_known_ids(lookup):
    message = r"unknown model '(always one|two)' in the toy experiments; use one of zero, one, truth$"
    with pytest.raises(ValueError, match=message):
        lookup(toy_registry())


@pytest.mark.parametrize("registry", [drug_response.MODELS, graph_model.MODELS, generative.MODELS],
                         ids=["drp", "expression", "generative"])
def test_every_chapter_names_its_models_when_an_id_is_unknown(registry):
    with pytest.raises(ValueError) as error:
        registry.resolve(["no_such_model"])
    message = str(error.value)
    assert "'no_such_model'" in message and registry.name in message
    assert message.endswith("use one of " + ", ".join(registry.ids()))


@pytest.mark.parametrize("registry", [drug_response.MODELS, graph_model.MODELS, generative.MODELS],
                         ids=["drp", "expression", "generative"])
def test_every_chapter_registry_has_unique_ids_and_labels(registry):
    ids, labels = registry.ids(), registry.labels()
    assert len(set(ids)) == len(ids) and len(set(labels)) == len(labels)
    assert all(i == i.lower() and " " not in i for i in ids)
    assert set(registry.table()["role"]) <= set(protocol.ROLES)


@pytest.mark.parametrize("second", [ModelSpec("zero", "another label", constant(3.0)),
                                    ModelSpec("other", "always zero", constant(3.0))],
                         ids=["same id", "same label"])
def test_duplicate_ids_and_labels_are_rejected(second):
    with pytest.raises(ValueError, match="registered twice"):
        ModelRegistry("toy", [ModelSpec("zero", "always zero", constant(0.0)), second])


@pytest.mark.parametrize("model_id", ["Ridge", "random forest", "drug+cell", ""])
def test_model_ids_are_lower_case_words(model_id):
    with pytest.raises(ValueError, match="lower-case letters, digits and underscores"):
        ModelSpec(model_id, "label", constant(0.0))


def test_roles_are_checked():
    assert ModelSpec("x", "x", constant(0.0)).role == "learned"
    with pytest.raises(ValueError, match="role 'ceiling' is not one of baseline, learned, oracle"):
        ModelSpec("x", "x", constant(0.0), role="ceiling")


def test_registry_table():
    table = toy_registry().table()
    assert table.index.name == "id" and list(table.index) == ["zero", "one", "truth"]
    assert list(table.columns) == ["label", "role", "description"]
    assert table.loc["truth", "role"] == "oracle" and table.loc["zero", "description"] == "predicts 0"
    assert table.loc["one", "label"] == "always one"


# --------------------------------------------------------------------------------------------------- settings

SETTINGS = [drug_response.DRPSettings, graph_model.ExpressionSettings, generative.GenerativeSettings]


def devices(settings) -> set[str]:
    """Devices of every fit configuration of ``settings``."""
    if isinstance(settings, generative.GenerativeSettings):
        return {settings.diffusion_fit.device, settings.encoder_decoder_fit.device, settings.expression.fit.device}
    if isinstance(settings, drug_response.DRPSettings):
        return {settings.fit.device, settings.paper_fit.device}
    return {settings.fit.device}


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("profile", ["smoke", "quick", "full"])
def test_for_profile_accepts_the_three_profiles(cls, profile):
    settings = cls.for_profile(profile, "cuda")
    assert isinstance(settings, cls)
    assert settings == getattr(cls, profile)("cuda")
    assert devices(settings) == {"cuda"}
    assert devices(cls.for_profile(profile)) == {"cpu"}


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("profile", ["medium", "Smoke", "", "for_profile"])
def test_for_profile_rejects_an_unknown_profile(cls, profile):
    with pytest.raises(ValueError, match=f"unknown profile '{profile}'; use one of smoke, quick, full"):
        cls.for_profile(profile)


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__name__)
def test_profiles_do_not_shrink_from_smoke_to_full(cls):
    def epochs(settings):
        if isinstance(settings, generative.GenerativeSettings):
            return settings.diffusion_fit.epochs
        return settings.fit.epochs

    smoke, quick, full = (cls.for_profile(p) for p in ("smoke", "quick", "full"))
    assert epochs(smoke) < epochs(quick) <= epochs(full)  # quick trains the same networks on less data


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("profile", ["smoke", "quick", "full"])
def test_profiles_do_not_share_mutable_defaults(cls, profile):
    first = cls.for_profile(profile, "cuda")
    assert devices(cls.for_profile(profile, "cpu")) == {"cpu"}
    assert devices(first) == {"cuda"}


# --------------------------------------------------------------------------------------------------- running

def test_run_models_runs_the_requested_ids_in_order_and_times_them():
    ran = []
    outputs = protocol.run_models(toy_registry(), ["truth", "zero"], ran, seed=0, split="random")
    assert ran == [2.0, 0.0] and list(outputs) == ["truth", "zero"]
    assert outputs["truth"].prediction.tolist() == [2.0, 2.0, 2.0]
    assert all(o.seconds >= 0 for o in outputs.values())


def test_run_models_checks_every_id_before_running_any():
    ran = []
    with pytest.raises(ValueError, match="unknown model 'two' in the toy experiments"):
        protocol.run_models(toy_registry(), ["zero", "two"], ran, seed=0, split="random")
    assert ran == []


def seeds_seen(registry: ModelRegistry, ids, seed: int, split: str) -> dict[str, int]:
    return {i: o.seed for i, o in protocol.run_models(registry, ids, [], seed=seed, split=split).items()}


def test_each_model_gets_its_own_seed_derived_from_job_split_experiment_and_model():
    registry = toy_registry()
    seeds = seeds_seen(registry, ["zero", "one"], seed=0, split="random")
    assert seeds["zero"] != seeds["one"]
    assert seeds == seeds_seen(registry, ["zero", "one"], seed=0, split="random")  # a rerun is identical
    assert seeds["zero"] == seeds_seen(registry, ["one", "truth", "zero"], 0, "random")["zero"]  # others don't matter
    assert seeds["zero"] != seeds_seen(registry, ["zero"], seed=1, split="random")["zero"]
    assert seeds["zero"] != seeds_seen(registry, ["zero"], seed=0, split="unseen compound")["zero"]
    other = ModelRegistry("another experiment", list(registry))
    assert seeds["zero"] != seeds_seen(other, ["zero"], seed=0, split="random")["zero"]
    assert seeds["zero"] == protocol.model_seed(registry, 0, "random", "zero")


def test_the_model_receives_its_seed():
    received = {}

    def run(context, seed):
        received["seed"] = seed
        return ModelOutput(np.zeros(1))

    registry = ModelRegistry("toy", [ModelSpec("m", "m", run)])
    output = protocol.run_models(registry, ["m"], None, seed=3, split="random")["m"]
    assert received["seed"] == output.seed == protocol.model_seed(registry, 3, "random", "m")


def fit_result(epochs: int, best: int, seconds: float = 2.0, speed: float = 50.0) -> FitReport:
    return FitReport(pd.DataFrame({"epoch": range(1, epochs + 1)}), best, seconds, speed)


def split_result(seed: int, value: float = 0.5) -> SplitResult:
    outputs = {"zero": ModelOutput(np.zeros(3), seconds=0.1),
               "one": ModelOutput(np.ones(3), model="a model", fit=fit_result(4, 3), seconds=2.5)}
    metrics = pd.DataFrame({"model": ["zero", "one"], "score": [value, value + seed]})
    return SplitResult(Split(np.arange(5), np.arange(5, 7), np.arange(7, 10), "random"), seed, metrics, outputs)


def test_split_result_properties_are_keyed_by_model_id():
    result = split_result(0)
    assert result.predictions["one"].tolist() == [1.0, 1.0, 1.0] and set(result.predictions) == {"zero", "one"}
    assert result.models == {"one": "a model"}
    assert set(result.fits) == {"one"} and result.fits["one"].best_epoch == 3
    assert result.seconds == {"zero": 0.1, "one": 2.5}


def test_run_jobs_keys_results_by_job_and_puts_job_columns_first():
    jobs = [{"split": "random", "seed": 0}, {"split": "random", "seed": 1}, {"split": "unseen cell", "seed": 0}]
    seen = []

    def run_one(job):
        seen.append(job)
        return split_result(job["seed"], value=10.0 if job["split"] == "unseen cell" else 0.5)

    runs, results = protocol.run_jobs(jobs, run_one, lambda r: r.metrics, progress=False)
    assert seen == jobs
    assert list(results) == [("random", 0), ("random", 1), ("unseen cell", 0)]
    assert results[("random", 1)].seed == 1
    assert list(runs.columns) == ["split", "seed", "model", "score"]
    assert len(runs) == 6 and runs.index.tolist() == list(range(6))
    assert runs["split"].tolist() == ["random"] * 4 + ["unseen cell"] * 2
    assert runs["seed"].tolist() == [0, 0, 1, 1, 0, 0]
    assert runs["score"].tolist() == [0.5, 0.5, 0.5, 1.5, 10.0, 10.0]


def _squared_error(model, batch):
    return {"loss": ((model(batch[0]) - batch[1]) ** 2).mean()}


def _seeded_fit_job(job):
    """A job that trains a tiny torch model with the job's seed (module level: workers import it)."""
    torch.manual_seed(job["seed"])
    model = torch.nn.Linear(3, 1)
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(job["seed"]))
    fit(model, _squared_error, [x, x.sum(1, keepdim=True)], config=FitConfig(epochs=3, batch_size=8, progress=False,
                                                                   seed=job["seed"]))
    weight = float(model.weight.detach().sum())
    return protocol.SplitResult(Split(np.arange(2), np.arange(0), np.arange(1), "toy"), job["seed"],
                                pd.DataFrame({"model": ["m"], "score": [weight]}), {})


def test_run_jobs_in_parallel_workers_gives_the_same_runs_in_job_order():
    jobs = [{"seed": s} for s in (3, 1, 2)]
    serial, _ = protocol.run_jobs(jobs, _seeded_fit_job, lambda r: r.metrics, progress=False)
    parallel, results = protocol.run_jobs(jobs, _seeded_fit_job, lambda r: r.metrics, progress=False, workers=2)
    assert list(results) == [(3,), (1,), (2,)] and parallel["seed"].tolist() == [3, 1, 2]
    np.testing.assert_allclose(parallel["score"], serial["score"], rtol=1e-5)


def test_parallel_jobs_get_writable_arrays():
    """joblib memory-maps large arguments read-only by default, and torch.from_numpy warns on those in every
    worker; the chapters' stored outputs would then show the warning."""
    big = np.zeros(400_000)  # 3.2 MB, above joblib's 1 MB memory-mapping threshold

    def job(spec):
        return protocol.SplitResult(Split(np.arange(1), np.arange(0), np.arange(1), "toy"), spec["seed"],
                                    pd.DataFrame({"model": ["m"], "writable": [float(big.flags.writeable)]}), {})

    runs, _ = protocol.run_jobs([{"seed": 0}, {"seed": 1}], job, lambda r: r.metrics, progress=False, workers=2)
    assert runs["writable"].tolist() == [1.0, 1.0]


def test_run_jobs_silences_only_the_retired_worker_warning():
    """loky warns when its memory check retires a worker while jobs wait (every job still runs); other warnings
    of the jobs still reach the chapter."""
    def job(spec):
        retired = protocol.WORKER_RETIRED_WARNING + ". This can be caused by a memory leak."
        warnings.warn(retired, UserWarning, stacklevel=1)
        warnings.warn("a warning of the job itself", UserWarning, stacklevel=1)
        return split_result(spec["seed"])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs, _ = protocol.run_jobs([{"seed": 0}, {"seed": 1}], job, lambda r: r.metrics, progress=False)
    assert [str(w.message) for w in caught] == ["a warning of the job itself"] * 2
    assert runs["seed"].tolist() == [0, 0, 1, 1]


def test_results_table_summarises_per_group_and_drops_all_nan_metrics():
    runs = pd.DataFrame({"split": ["a"] * 4, "model": ["m", "m", "n", "n"], "score": [1.0, 3.0, 2.0, 2.0],
                         "partial": [np.nan, 1.0, np.nan, np.nan], "empty": [np.nan] * 4})
    table = protocol.results_table(runs, ["split", "model"], ["score", "partial", "empty", "not a column"])
    assert "empty" not in table.columns and "empty_mean" not in table.columns
    assert "not a column" not in table.columns
    assert {"score", "score_mean", "score_sd", "partial", "partial_mean", "runs"} <= set(table.columns)
    assert table.loc[("a", "m"), "score_mean"] == 2.0
    assert table.loc[("a", "m"), "score_sd"] == pytest.approx(np.sqrt(2))
    assert table.loc[("a", "n"), "score_sd"] == 0.0
    assert table["runs"].tolist() == [2, 2]
    assert table.loc[("a", "m"), "partial_mean"] == 1.0 and np.isnan(table.loc[("a", "n"), "partial_mean"])


def test_speed_table_has_one_row_per_trained_model_and_job():
    results = {("random", 0): split_result(0), ("random", 1): split_result(1)}
    results[("random", 1)].outputs["one"].sampling_seconds = 0.25
    table = protocol.speed_table(results, ["split", "seed"])
    assert list(table.columns) == ["split", "seed", "model", "epochs_run", "best_epoch", "profiles / s",
                                   "fit seconds", "sampling seconds"]
    assert table["model"].tolist() == ["one", "one"]  # ids; the untrained model is left out
    assert table["seed"].tolist() == [0, 1] and table["epochs_run"].tolist() == [4, 4]
    assert table["best_epoch"].tolist() == [3, 3] and table["fit seconds"].tolist() == [2.0, 2.0]
    assert np.isnan(table.loc[0, "sampling seconds"]) and table.loc[1, "sampling seconds"] == 0.25
    pairs = protocol.speed_table({("x",): split_result(0)}, ["fold"], per="pairs")
    assert list(pairs.columns) == ["fold", "model", "epochs_run", "best_epoch", "pairs / s", "fit seconds"]
    assert pairs["pairs / s"].tolist() == [50.0]


def test_stack_results_keys_by_dataset_then_job():
    stacked = protocol.stack_results({"real": {("random", 0): split_result(0)},
                                      "simulated": {("random", 0): split_result(1), ("random", 1): split_result(2)}})
    assert list(stacked) == [("real", "random", 0), ("simulated", "random", 0), ("simulated", "random", 1)]
    table = protocol.speed_table(stacked, ["dataset", "split", "seed"])
    assert table["dataset"].tolist() == ["real", "simulated", "simulated"]


def test_mean_by_model_keeps_the_order_of_appearance():
    frame = pd.DataFrame({"model": ["b", "a", "b", "a"], "x": [1.0, 2.0, 3.0, 4.0]})
    means = protocol.mean_by_model(frame, ["x"])
    assert means["model"].tolist() == ["b", "a"] and means["x"].tolist() == [2.0, 3.0]
    assert all(np.isnan(v) for v in metrics.nan_columns(["p", "q"]).values())


def test_model_output_defaults_are_not_shared():
    first, second = ModelOutput(), ModelOutput()
    first.chosen["a"] = 1
    assert second.chosen == {}


def test_paired_comparisons_per_split_and_fit_epochs_in_results_table():
    rows = []
    for split in ("random", "unseen compound"):
        for seed in range(3):
            gap = 0.1 if split == "random" else -0.1
            rows += [{"split": split, "seed": seed, "model": "m", "r": 0.5 + gap + 0.01 * seed,
                      "best_epoch": 4.0 + seed, "epochs_run": 10.0},
                     {"split": split, "seed": seed, "model": "b", "r": 0.5, "best_epoch": np.nan,
                      "epochs_run": np.nan}]
    runs = pd.DataFrame(rows)
    found = protocol.paired_comparisons(runs, [("m", "b"), ("absent", "b")], "r")
    assert [(keys["split"], c.verdict) for keys, c in found] == [("random", "beats"),
                                                                  ("unseen compound", "does NOT beat")]
    table = protocol.comparisons_table(found)
    assert list(table["split"]) == ["random", "unseen compound"] and (table["pairs"] == 3).all()
    summary = protocol.results_table(runs, ["split", "model"], ["r"])
    assert summary.loc[("random", "m"), "best_epoch_mean"] == 5.0
    assert np.isnan(summary.loc[("random", "b"), "best_epoch_mean"])
