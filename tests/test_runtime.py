import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from perturbx.runtime import derive_seed, describe_device, git_commit, select_device


def test_select_device_honours_request_and_environment(monkeypatch):
    monkeypatch.delenv("PERTURBX_DEVICE", raising=False)
    assert select_device("cpu") == "cpu"
    monkeypatch.setenv("PERTURBX_DEVICE", "cpu")
    assert select_device() == "cpu"
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        select_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_request_without_cuda_is_an_error():
    with pytest.raises(ValueError, match="no CUDA device"):
        select_device("cuda")


def test_describe_cpu():
    assert describe_device("cpu").startswith("CPU ") and "cores" in describe_device("cpu")


def test_git_commit_outside_and_inside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.delenv("PERTURBX_COMMIT", raising=False)
    assert git_commit(tmp_path) == "unknown (not a git checkout)"
    monkeypatch.setenv("PERTURBX_COMMIT", "abc1234567")  # a bundle's run.sh, in a copy without .git
    assert git_commit(tmp_path) == "abc1234567"

    def run(*args):
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    run("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    run("add", "a.txt")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    clean = git_commit(tmp_path)
    assert len(clean) == 10 and "+" not in clean and clean != "abc1234567"  # a checkout's own commit wins
    (tmp_path / "a.txt").write_text("2")
    assert git_commit(tmp_path) == clean + "+dirty"


# --------------------------------------------------------------------------------------------------- derive_seed

def test_derived_seeds_are_stable_across_calls_and_processes():
    seed = derive_seed(0, "cross-validation", 3, "ridge")
    assert seed == derive_seed(0, "cross-validation", 3, "ridge")
    assert isinstance(seed, int) and 0 <= seed < 2**31
    code = "from perturbx.runtime import derive_seed; print(derive_seed(0, 'cross-validation', 3, 'ridge'))"
    for hash_seed in ("1", "2"):  # Python's str hash differs between these processes; the derived seed must not
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                env=os.environ | {"PYTHONHASHSEED": hash_seed})
        assert int(result.stdout) == seed


def test_different_keys_give_different_seeds():
    seeds = {derive_seed(base, experiment, split, model) for base in range(5) for experiment in ("ccle", "gdsc")
             for split in range(20) for model in ("ridge", "mlp", "gnn")}
    assert len(seeds) == 5 * 2 * 20 * 3
    assert derive_seed(0) != derive_seed(0, 0) != derive_seed(0, 0, 0)
    assert derive_seed(0, 1) != derive_seed(0, "1"), "a key's type is part of it"
    assert derive_seed(1, 0) != derive_seed(0, 100_003), "no collision like seed * 100_003 + n"


def test_the_order_of_the_keys_matters():
    assert derive_seed(0, "ccle", "ridge") != derive_seed(0, "ridge", "ccle")
    assert derive_seed(0, 1, 2) != derive_seed(0, 2, 1)
    assert derive_seed(0, "ab", "c") != derive_seed(0, "a", "bc")


def test_derive_seed_rejects_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        derive_seed(-1, "x")
    with pytest.raises(TypeError, match="str or an int"):
        derive_seed(0, 1.5)


def test_numpy_integers_derive_the_seed_of_the_same_python_int():
    assert derive_seed(0, "fold", np.int64(3)) == derive_seed(0, "fold", 3)
    with pytest.raises(TypeError):
        derive_seed(0, np.bool_(True))
