import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from perturbx import cli
from perturbx.book.runner import ChapterFailed
from perturbx.cli import main
from perturbx.datasets import registry
from perturbx.datasets.cmap import landmark_genes

from .datasets.cmap_files import write_clue_inputs, write_gctx


def started_from_a_terminal() -> None:
    """``preexec_fn`` of a child that must see Ctrl-C: SIGINT at its default disposition and unblocked, as for a
    command typed at a terminal. A test run started in the background of a non-interactive shell (``pytest &`` in
    a script, ``nohup``) inherits SIGINT ignored, and Python and the command rightly keep ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_data_list_names_every_file(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for entry in registry():
        assert entry.name in out and entry.licence in out
    assert "25 files" in out


def test_fetch_needs_all_or_names(capsys):
    assert main(["data", "fetch"]) == 2
    assert "--all" in capsys.readouterr().err


def test_fetch_tiny_registry(tiny_mirror, tmp_path, monkeypatch, capsys):
    registry_, mirror = tiny_mirror
    monkeypatch.setattr("perturbx.datasets.fetcher.default_registry", lambda: registry_)
    monkeypatch.setenv("PERTURBX_DATA_MIRROR", str(mirror))
    assert main(["data", "fetch", "--all"]) == 0
    assert "2 files verified" in capsys.readouterr().out
    assert main(["data", "fetch", "gamma"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("perturbx: error: 'gamma' is not a registered data file")


def test_fetch_all_fails_on_a_corrupt_mirror_copy(real_mirror, tmp_path):
    """The command a user runs: one corrupted file in an otherwise good mirror makes it exit 1, naming the file."""
    mirror = tmp_path / "mirror"
    for source in real_mirror.rglob("*"):
        if source.is_file():
            target = mirror / source.relative_to(real_mirror)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)
    corrupt = mirror / "drp/deepdra/drug_data/drug_desc_raw.tsv"
    corrupt.unlink()
    corrupt.write_bytes((real_mirror / "drp/deepdra/drug_data/drug_desc_raw.tsv").read_bytes()[:-1] + b"X")
    env = os.environ | {"PERTURBX_DATA_MIRROR": str(mirror), "PERTURBX_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-m", "perturbx.cli", "data", "fetch", "--all"], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 1
    reason = result.stderr.strip().splitlines()[-1]
    assert reason.startswith("perturbx: error: deepdra_drug_descriptors: checksum mismatch")
    assert str(corrupt) in reason
    assert registry()["deepdra_drug_descriptors"].sha256 in reason
    assert not (tmp_path / "cache" / "drp/deepdra/drug_data/drug_desc_raw.tsv").exists()


def error_line(capsys, path) -> str:
    """The one line a failed command wrote last on stderr (after any progress bar), checked for its shape."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"perturbx: error: {path}") and "Fix: " in line, line
    return line


@pytest.fixture
def clue(mirror_env, tmp_path) -> dict:
    return write_clue_inputs(tmp_path / "in")


def curate_args(inputs: dict, out, **changes) -> list[str]:
    paths = inputs | changes
    return ["lincs", "curate", "--matrix", str(paths["matrix"]), "--meta", str(paths["meta"]), "--compounds",
            str(paths["compounds"]), "--out", str(out)]


def test_curate_errors_in_the_matrix_are_one_line(clue, tmp_path, capsys):
    matrix = clue["matrix"].read_bytes()
    truncated = tmp_path / "truncated.gctx"
    truncated.write_bytes(matrix[: len(matrix) // 2])
    assert main(curate_args(clue, tmp_path / "out", matrix=truncated)) == 1
    assert "HDF5 cannot read the file" in error_line(capsys, truncated)
    duplicated = write_gctx(tmp_path / "dup.gctx", np.zeros((978, 3)), landmark_genes()["gene_id"], ["A", "B", "A"])
    assert main(curate_args(clue, tmp_path / "out", matrix=duplicated)) == 1
    assert "appear more than once: 'A'" in error_line(capsys, duplicated)
    gct = tmp_path / "bad.gct"
    gct.write_text("#1.3\n978\tfive\t1\t6\n")
    assert main(curate_args(clue, tmp_path / "out", matrix=gct)) == 1
    assert "is not 4 whole numbers" in error_line(capsys, gct)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, expected", [(b"", "empty file, not a table"),
                                               (b"\x89HDF\r\n\x1a\n\x00binary", "a binary file, not a text table"),
                                               (b"sig_id\tpert_id\n", "no rows"),
                                               (b"sig_id\tpert_id\nSIG0\tBRD-K00000001\n", "no pert_type column")])
def test_curate_meta_that_is_not_a_usable_table(clue, tmp_path, capsys, content, expected):
    meta = tmp_path / "siginfo.txt"
    meta.write_bytes(content)
    assert main(curate_args(clue, tmp_path / "out", meta=meta)) == 1
    assert expected in error_line(capsys, meta)
    assert capsys.readouterr().err == ""  # checked before the matrix is read: no progress bar either


def test_curate_out_that_cannot_be_used(clue, tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    for out in (tmp_path / "a_file", tmp_path / "a_file" / "out"):
        assert main(curate_args(clue, out)) == 1
        assert error_line(capsys, f"--out {out}: ")
    with open(tmp_path / ".out.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(curate_args(clue, tmp_path / "out")) == 1
        assert "another perturbx run is writing it" in error_line(capsys, f"--out {tmp_path / 'out'}: ")


def test_curate_that_drops_every_profile_exits_1(mirror_env, tmp_path, capsys):
    inputs = write_clue_inputs(tmp_path / "in", times=["-6 h"] * 6)
    assert main(curate_args(inputs, tmp_path / "out")) == 1
    line = error_line(capsys, inputs["matrix"])
    assert "every profile was dropped (invalid dose/time: 6)" in line
    assert not (tmp_path / "out").exists()


def test_curate_reports_why_a_folder_is_not_reused(clue, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(curate_args(clue, out)) == 0
    assert "written; 6 profiles" in capsys.readouterr().out
    assert main(curate_args(clue, out)) == 0
    assert "up to date" in capsys.readouterr().out
    np.save(out / "expression.npy", np.zeros((6, 978), dtype=np.float32))
    assert main(curate_args(clue, out)) == 0
    captured = capsys.readouterr()
    assert "written; 6 profiles" in captured.out
    assert (f"perturbx: {out}: not up to date (expression.npy: sha256 differs from summary.json); curating again"
            in captured.err.splitlines())


@pytest.mark.parametrize("argv", [["data", "list"], ["lincs", "curate", "--matrix", "m.gctx", "--out", "o"]])
def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys, argv):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("perturbx.cli.registry", interrupted)
    monkeypatch.setattr("perturbx.cli.curate_files", interrupted)
    assert main(argv) == 130
    assert capsys.readouterr().err == "perturbx: interrupted\n"


def test_ctrl_c_signal_in_a_real_process(mirror_env, tmp_path):
    """SIGINT delivered to the command itself while it curates: one line, status 130, nothing left in --out."""
    inputs = write_clue_inputs(tmp_path / "in")
    script = ("import os, signal, sys\n"
              "import numpy as np\n"
              "from perturbx import cli\n"
              "real_save = np.save\n"
              "def save(*args, **kwargs):\n"
              "    real_save(*args, **kwargs)\n"
              "    os.kill(os.getpid(), signal.SIGINT)\n"
              "np.save = save\n"
              "sys.exit(cli.main(sys.argv[1:]))\n")
    result = subprocess.run([sys.executable, "-c", script, *curate_args(inputs, tmp_path / "out")],
                            capture_output=True, text=True, env=os.environ | {"PYTHONPATH": str(Path.cwd())},
                            preexec_fn=started_from_a_terminal)
    assert result.returncode == 130
    assert result.stderr.strip().splitlines()[-1] == "perturbx: interrupted" and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "cache", "in"]


def test_fetch_into_a_cache_that_is_a_file_is_one_line(tmp_path, monkeypatch, capsys, tiny_mirror):
    registry_, mirror = tiny_mirror
    monkeypatch.setattr("perturbx.datasets.fetcher.default_registry", lambda: registry_)
    monkeypatch.setenv("PERTURBX_DATA_MIRROR", str(mirror))
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setenv("PERTURBX_CACHE_DIR", str(tmp_path / "a_file"))
    assert main(["data", "fetch", "--all"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("perturbx: error: ") and str(tmp_path / "a_file") in err


def test_ctrl_c_swallowed_by_a_finaliser_still_stops_the_command(tmp_path):
    """Python swallows a KeyboardInterrupt raised inside ``__del__`` or a weakref callback (after a long HDF5 read
    the first Python code to run is often one of h5py's): the command must stop all the same, with one line."""
    script = ("import os, signal, sys, time\n"
              "from perturbx import cli\n"
              "class Finaliser:\n"
              "    def __del__(self):\n"
              "        os.kill(os.getpid(), signal.SIGINT)\n"
              "        len([])  # the handler runs here, inside __del__\n"
              "def work(*args, **kwargs):\n"
              "    Finaliser()\n"
              "    deadline = time.monotonic() + 20\n"
              "    while time.monotonic() < deadline:\n"
              "        pass\n"
              "    print('not interrupted')\n"
              "    sys.exit(3)\n"
              "cli.curate_files = work\n"
              "sys.exit(cli.main(['lincs', 'curate', '--matrix', 'm.gctx', '--out', 'out']))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env=os.environ | {"PYTHONPATH": str(Path.cwd())}, preexec_fn=started_from_a_terminal)
    assert "not interrupted" not in result.stdout
    assert result.returncode == 130
    assert result.stderr == "perturbx: interrupted\n"


def test_a_failed_chapter_keeps_its_traceback_on_separate_lines(monkeypatch, capsys):
    def fail(args):
        raise ChapterFailed("chapter 02_bad.ipynb failed in cell 3: RuntimeError: broke\n    line one\n    line two")

    monkeypatch.setattr(cli, "_book_run", fail)
    assert main(["book", "run", "--chapters", "00_intro"]) == 1
    err = capsys.readouterr().err
    assert "failed in cell 3" in err and "\n    line one\n    line two" in err


HEAVY_MODULES = ("torch", "torch_geometric", "rdkit", "papermill")


@pytest.mark.parametrize("argv", [["--help"], ["data", "list"], ["data"], ["lincs", "curate", "--bogus"]])
def test_help_listing_and_argument_errors_import_no_heavy_module(argv):
    script = ("import sys\n"
              "from perturbx import cli\n"
              "try:\n"
              "    cli.main(sys.argv[1:])\n"
              "except SystemExit:\n"
              "    pass\n"
              f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True,
                            env=os.environ | {"PYTHONPATH": str(Path.cwd())})
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr


SIGINT_TO_SELF = ("import os, signal, sys\n"
                  "from perturbx import cli\n"
                  "def work(*args, **kwargs):\n"
                  "    os.kill(os.getpid(), signal.SIGINT)\n"
                  "    print('not interrupted')\n"
                  "    sys.exit(0)\n"
                  "cli.curate_files = work\n"
                  "sys.exit(cli.main(['lincs', 'curate', '--matrix', 'm.gctx', '--out', 'out']))\n")


def test_ctrl_c_arrives_even_when_the_parent_blocked_sigint(tmp_path):
    """The signal mask is inherited across fork and exec: a command started by a parent that blocks SIGINT (as the
    book runner does while it logs a run) must still stop on Ctrl-C."""
    def blocked():
        started_from_a_terminal()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

    result = subprocess.run([sys.executable, "-c", SIGINT_TO_SELF], capture_output=True, text=True, cwd=tmp_path,
                            env=os.environ | {"PYTHONPATH": str(Path.cwd())}, preexec_fn=blocked)
    assert "not interrupted" not in result.stdout
    assert result.returncode == 130 and result.stderr == "perturbx: interrupted\n"


def test_a_command_started_with_sigint_ignored_keeps_ignoring_it(tmp_path):
    """``nohup perturbx ...`` or ``perturbx ... &`` in a script starts the command with SIGINT ignored: it is meant
    to outlive a Ctrl-C, so the command does not install its handler over that choice."""
    def ignored():
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    result = subprocess.run([sys.executable, "-c", SIGINT_TO_SELF], capture_output=True, text=True, cwd=tmp_path,
                            env=os.environ | {"PYTHONPATH": str(Path.cwd())}, preexec_fn=ignored)
    assert result.returncode == 0 and "not interrupted" in result.stdout
