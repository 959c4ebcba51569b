import numpy as np

from perturbx.datasets.simulate import lincs_scale_config, simulate
from perturbx.evaluation.learnability import learnability_table


def test_the_smoke_benchmark_is_learnable_from_structure_on_unseen_compounds(mirror_env):
    table = learnability_table(simulate(lincs_scale_config("smoke", seed=0)), seed=0).set_index("predictor")
    r = table["r_profiles"]
    mean, ridge, causal, ceiling = r.to_numpy()
    assert np.isclose(table["r_true_mean"].iloc[-1], 1.0)  # the ceiling is the true mean itself
    assert ridge > mean + 0.05  # structure carries signal the cell-line mean cannot see
    assert mean < ridge <= causal + 0.02 and causal < ceiling  # knowing the causal bits helps; nothing beats truth
    assert "compounds" in table.attrs["test"] and "profiles" in table.attrs["train"]
