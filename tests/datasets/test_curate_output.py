"""The ``--out`` folder of ``perturbx lincs curate``: written whole or not at all, verified against its summary
before it is reused, and locked while a run writes it."""

import fcntl
import json
import multiprocessing
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perturbx.datasets import DataError, cache_dir, curate, sha256_of
from perturbx.datasets.curate import curate_files
from perturbx.datasets.curated import CuratedFolderError, CuratedL1000
from perturbx.datasets.lincs import load_real_l1000

from .cmap_files import write_clue_inputs

CURATED = {"expression.npy", "basal.npy", "metadata.csv", "genes.csv", "dropped.csv", "summary.json"}


def run(inputs: dict, out: Path, **options) -> tuple[dict, bool]:
    return curate_files(inputs["matrix"], out, meta=inputs["meta"], compounds=inputs["compounds"], **options)


def assert_agrees_with_summary(out: Path) -> None:
    """The folder holds exactly the curated files, in agreement with summary.json, and nothing is left beside it."""
    assert {p.name for p in out.iterdir()} == CURATED
    summary = json.loads((out / "summary.json").read_text())
    data = CuratedL1000.load(out)  # raises when expression, basal and metadata disagree in rows
    assert len(data) == summary["n_profiles"]
    for name, digest in summary.get("files", {}).items():
        assert sha256_of(out / name) == digest, name
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.") and
                 not p.name.endswith(".lock")]
    assert leftovers == []


def folder_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir()}


def test_a_folder_that_disagrees_with_its_summary_is_curated_again(mirror_env, tmp_path):
    inputs = write_clue_inputs(tmp_path / "in")
    out = tmp_path / "out"
    run(inputs, out)
    expected = folder_bytes(out)
    # what an interrupted re-run used to leave: another run's expression.npy beside this run's summary.json
    np.save(out / "expression.npy", np.load(out / "expression.npy")[:4])
    summary, reused = run(inputs, out)
    assert not reused and summary["n_profiles"] == 6
    assert folder_bytes(out) == expected
    assert_agrees_with_summary(out)

    lines = []
    np.save(out / "basal.npy", np.zeros((6, 978), dtype=np.float32))  # same rows, other values
    assert run(inputs, out, notice=lines.append)[1] is False
    assert lines == [f"{out}: not up to date (basal.npy: sha256 differs from summary.json); curating again"]
    lines.clear()
    metadata = (out / "metadata.csv").read_text().splitlines()
    (out / "metadata.csv").write_text("\n".join(metadata[:-1]) + "\n")
    assert run(inputs, out, notice=lines.append)[1] is False
    assert lines == [f"{out}: not up to date (metadata.csv has 5 rows, summary.json says 6); curating again"]
    assert folder_bytes(out) == expected
    assert run(inputs, out, notice=lines.append)[1] is True


def test_a_run_interrupted_while_saving_leaves_the_previous_result_whole(mirror_env, tmp_path, monkeypatch):
    inputs = write_clue_inputs(tmp_path / "in")
    out = tmp_path / "out"
    run(inputs, out)
    before = folder_bytes(out)
    real_save = np.save

    def interrupted_save(file, array, *args, **kwargs):
        if Path(file).name == "basal.npy":
            raise KeyboardInterrupt
        return real_save(file, array, *args, **kwargs)

    monkeypatch.setattr(np, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        run(inputs, out, min_compound_count=3)  # a re-run with other parameters, stopped mid-way through saving
    monkeypatch.setattr(np, "save", real_save)
    assert folder_bytes(out) == before
    assert_agrees_with_summary(out)
    summary, reused = run(inputs, out, min_compound_count=3)
    assert not reused and summary["n_profiles"] == 4
    assert_agrees_with_summary(out)


def _killed_while_saving(inputs: dict, out: Path) -> None:
    real_save = np.save

    def save_then_die(file, array, *args, **kwargs):
        real_save(file, array, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    np.save = save_then_die
    run(inputs, out, min_compound_count=3)


def test_a_killed_run_leaves_no_half_folder(mirror_env, tmp_path):
    inputs = write_clue_inputs(tmp_path / "in")
    out = tmp_path / "out"
    run(inputs, out)
    before = folder_bytes(out)
    child = multiprocessing.get_context("fork").Process(target=_killed_while_saving, args=(inputs, out))
    child.start()
    child.join(120)
    assert child.exitcode == -signal.SIGKILL
    assert folder_bytes(out) == before
    summary, reused = run(inputs, out, min_compound_count=3)
    assert not reused and summary["n_profiles"] == 4
    assert_agrees_with_summary(out)  # the killed run's temporary folder is gone too


def _slow_writer(inputs: dict, out: Path, in_save, may_finish) -> None:
    real_save = np.save

    def slow_save(file, array, *args, **kwargs):
        real_save(file, array, *args, **kwargs)
        if Path(file).name == "expression.npy":
            in_save.set()
            may_finish.wait(120)

    np.save = slow_save
    run(inputs, out)


def test_a_second_run_into_the_same_out_fails_at_once(mirror_env, tmp_path):
    inputs = write_clue_inputs(tmp_path / "in")
    out = tmp_path / "out"
    run(inputs, tmp_path / "warm")  # registry files in the cache before two processes need them
    context = multiprocessing.get_context("fork")
    in_save, may_finish = context.Event(), context.Event()
    child = context.Process(target=_slow_writer, args=(inputs, out, in_save, may_finish))
    child.start()
    # A second run that waited for the lock would wait for the first to finish: the timer lets the first finish
    # after a while, so that such a run ends (and fails the assertions below) instead of hanging. No wall time is
    # asserted: failing at once means raising OutputLockedError while the first run still holds the lock.
    release = threading.Timer(60, may_finish.set)
    error = None
    try:
        assert in_save.wait(120)
        release.start()
        run(inputs, out, min_compound_count=3)
    except Exception as caught:  # noqa: BLE001 - inspected below
        error = caught
    finally:
        holding = not may_finish.is_set()  # the first run was still holding the lock when this one returned
        release.cancel()
        may_finish.set()
        child.join(120)
    assert child.exitcode == 0
    assert_agrees_with_summary(out)
    assert len(CuratedL1000.load(out)) == 6  # the first run's result, unmixed
    assert isinstance(error, DataError) and type(error).__name__ == "OutputLockedError"
    assert str(error).startswith(f"--out {out}: another perturbx run is writing it")
    assert holding


def test_the_lock_is_the_documented_lock_file(mirror_env, tmp_path):
    inputs = write_clue_inputs(tmp_path / "in")
    out = tmp_path / "out"
    with open(tmp_path / ".out.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(DataError, match="another perturbx run is writing it"):
            run(inputs, out)
    assert not out.exists()
    assert run(inputs, out)[1] is False


@pytest.fixture
def unwritable_folder(tmp_path):
    """A folder this user cannot create files in (a read-only folder; for root, whom modes do not stop, /sys)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / ".probe").touch()
    except PermissionError:
        yield folder
    else:
        (folder / ".probe").unlink()
        if not Path("/sys/kernel").is_dir() or os.access("/sys", os.W_OK) and _can_create("/sys"):
            pytest.skip("no folder here that this user cannot write")
        yield Path("/sys")
    finally:
        folder.chmod(0o755)


def _can_create(folder: str) -> bool:
    try:
        (Path(folder) / ".perturbx-probe").touch()
    except OSError:
        return False
    (Path(folder) / ".perturbx-probe").unlink()
    return True


@pytest.mark.parametrize("case", ["a file", "inside a file", "a folder of other files", "unwritable"])
def test_unusable_out_is_refused_before_any_curation(mirror_env, tmp_path, monkeypatch, case, request):
    inputs = write_clue_inputs(tmp_path / "in")
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    out = {"a file": lambda: tmp_path / "a_file", "inside a file": lambda: tmp_path / "a_file" / "out",
           "a folder of other files": lambda: tmp_path / "mine",
           "unwritable": lambda: request.getfixturevalue("unwritable_folder") / "out"}[case]()

    def no_curation(*args, **kwargs):
        raise AssertionError("curation work started before --out was checked")

    monkeypatch.setattr(curate, "sha256_of", no_curation)
    monkeypatch.setattr(curate, "read_matrix", no_curation)
    with pytest.raises(DataError) as caught:
        run(inputs, out)
    message = str(caught.value)
    assert message.startswith(f"--out {out}: ") and "Fix: " in message and "\n" not in message
    assert (tmp_path / "a_file").read_text() == "x" and (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_run_that_drops_every_profile_is_an_error(mirror_env, tmp_path):
    inputs = write_clue_inputs(tmp_path / "in", doses=["10 ug/ml"] * 6)
    out = tmp_path / "out"
    with pytest.raises(DataError) as caught:
        run(inputs, out)
    message = str(caught.value)
    assert message.startswith(f"{inputs['matrix']}: every profile was dropped (unreadable dose/time: 6); "
                              "nothing written. Fix: ")
    assert "known units" in message and "\n" not in message
    assert not out.exists()


def test_real_dataset_cache_is_verified_before_reuse(mirror_env):
    data = load_real_l1000()
    folder = next((cache_dir() / "curated").glob("real_l1000-*"))
    np.save(folder / "expression.npy", data.expression[:10])  # a damaged cached copy
    again = load_real_l1000()
    np.testing.assert_array_equal(again.expression, data.expression)
    assert_agrees_with_summary(folder)


def test_a_run_killed_between_its_two_renames_gets_the_previous_result_back(mirror_env, tmp_path):
    inputs = write_clue_inputs(tmp_path / "in")
    out = tmp_path / "out"
    run(inputs, out)
    before = folder_bytes(out)
    out.rename(tmp_path / ".out.old-4242")  # the old result renamed aside, the new one never renamed in
    summary, reused = run(inputs, out)
    assert reused and folder_bytes(out) == before  # restored, checked against its summary, and reused
    assert not (tmp_path / ".out.old-4242").exists()
    assert_agrees_with_summary(out)


@pytest.mark.parametrize("change, file", [("edited array", "expression.npy"), ("reordered rows", "metadata.csv")])
def test_loading_refuses_a_folder_changed_after_curation(mirror_env, tmp_path, change, file):
    inputs = write_clue_inputs(tmp_path / "in")
    out = tmp_path / "out"
    run(inputs, out)
    if change == "edited array":
        values = np.load(out / file)
        values[0, 0] += 1.0
        np.save(out / file, values)
    else:
        metadata = pd.read_csv(out / file)
        metadata.iloc[::-1].to_csv(out / file, index=False)
    with pytest.raises(CuratedFolderError, match=rf"{out}: {file}: sha256 differs from summary.json") as caught:
        CuratedL1000.load(out)
    assert "Fix: curate it again" in str(caught.value) and "\n" not in str(caught.value)
    (out / "summary.json").unlink()
    with pytest.raises(CuratedFolderError, match="not a curated folder \\(no summary.json\\)"):
        CuratedL1000.load(out)
