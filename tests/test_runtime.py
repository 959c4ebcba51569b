import subprocess

import pytest
import torch

from perturbx.runtime import describe_device, git_commit, select_device


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


def test_git_commit_outside_and_inside_a_checkout(tmp_path):
    assert git_commit(tmp_path) == "unknown (not a git checkout)"
    run = lambda *args: subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)
    run("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    run("add", "a.txt")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    clean = git_commit(tmp_path)
    assert len(clean) == 10 and "+" not in clean
    (tmp_path / "a.txt").write_text("2")
    assert git_commit(tmp_path) == clean + "+dirty"
