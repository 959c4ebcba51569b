"""The bundle for a GPU machine without internet: what goes in, its checks, and unpacking it."""

from __future__ import annotations

import json
import lzma
import subprocess
from pathlib import Path

import pytest

from perturbx.book import bundle
from perturbx.datasets import Fetcher


def _results(tmp_path: Path, chapters: dict[str, list[str]]) -> Path:
    """A results folder whose chapters' provenance records list ``chapters[name]`` as the data they read."""
    results = tmp_path / "results"
    for chapter, names in chapters.items():
        (results / chapter).mkdir(parents=True)
        record = {"title": chapter, "data": {name: "sha" for name in names}}
        (results / chapter / "provenance.json").write_text(json.dumps(record))
    return results


@pytest.fixture
def written(tmp_path, tiny_mirror) -> bundle.Bundle:
    registry, mirror = tiny_mirror
    results = _results(tmp_path, {"03_gnn": ["alpha"], "04_diffusion": ["beta", "alpha"]})
    return bundle.write_bundle(tmp_path / "bundle", ["03_gnn", "04_diffusion"], wheels=False,
                               fetcher=Fetcher(registry, tmp_path / "cache", mirror), results_dir=results)


def test_names_of_wheels_are_compared_as_pip_does():
    assert bundle.normalise("jupyter_core") == bundle.normalise("Jupyter.Core") == "jupyter-core"
    assert bundle.wheel_project(Path("cmapPy-4.0.1-py2.py3-none-any.whl")) == "cmappy"


def test_the_wheels_are_what_a_chapter_run_needs_and_the_image_lacks_at_the_pinned_versions():
    pins = dict(r.split("==") for r in bundle.run_closure())
    assert {"rdkit", "cmappy", "pooch", "rdata", "papermill", "ipykernel", "gseapy", "myst-nb", "docutils",
            "ipywidgets", "nbclient", "jupyter-client", "traitlets"} <= set(pins)
    assert pins["rdkit"] == "2026.9.1" and pins["papermill"] == "2.7.0"
    assert not set(pins) & {"torch", "numpy", "pandas", "scikit-learn", "torch-geometric"}  # the image has them
    assert not set(pins) & {"pytz", "tzdata"}  # only the image's pandas needs them, and the image has them
    assert not set(pins) & {"jupyter-book", "sphinx", "pytest", "ruff", "jupytext", "widgetsnbextension"}
    assert not set(pins) & bundle.LEFT_OUT


def test_the_data_are_those_the_chapters_read_once_each(tmp_path):
    results = _results(tmp_path, {"03_gnn": ["alpha", "beta"], "04_diffusion": ["beta", "gamma"]})
    assert bundle.chapter_data(["03_gnn", "04_diffusion"], results) == ["alpha", "beta", "gamma"]
    with pytest.raises(bundle.BundleError, match="chapter 02_drp: .*provenance.json is missing.*Fix: run it once"):
        bundle.chapter_data(["02_drp"], results)


def test_a_bundle_holds_the_data_compressed_with_a_manifest_and_checksums(written, tiny_mirror):
    registry, mirror = tiny_mirror
    folder = written.folder
    assert [d["name"] for d in written.manifest["data"]] == ["alpha", "beta"]
    assert lzma.decompress((folder / "data" / "group/alpha.txt.xz").read_bytes()) == \
        (mirror / "group/alpha.txt").read_bytes()
    manifest = json.loads((folder / bundle.MANIFEST).read_text())
    assert manifest["chapters"] == ["03_gnn", "04_diffusion"] and manifest["size"] == written.size
    assert {r["path"] for r in manifest["files"]} == {"data/group/alpha.txt.xz", "data/group/sub/beta.csv.xz",
                                                      "run.sh"}
    checked = subprocess.run(["sha256sum", "--strict", "-c", bundle.CHECKSUMS], cwd=folder, capture_output=True,
                             text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (folder / "run.sh").stat().st_mode & 0o111


def test_unpacking_gives_the_registered_bytes(written, tiny_mirror, tmp_path):
    registry, mirror = tiny_mirror
    unpacked = bundle.unpack(written.folder, tmp_path / "unpacked")
    assert [p.relative_to(tmp_path / "unpacked").as_posix() for p in unpacked] == ["group/alpha.txt",
                                                                                  "group/sub/beta.csv"]
    for path in unpacked:
        assert path.read_bytes() == (mirror / path.relative_to(tmp_path / "unpacked")).read_bytes()
    # the unpacked folder serves as a data mirror: the fetcher verifies it against the registry
    Fetcher(registry, tmp_path / "other cache", tmp_path / "unpacked").fetch("beta")


def test_a_damaged_bundle_is_named_and_nothing_is_unpacked(written, tmp_path):
    packed = written.folder / "data" / "group/sub/beta.csv.xz"
    packed.write_bytes(packed.read_bytes()[:-1])
    with pytest.raises(bundle.BundleError, match=r"bundle file .*beta\.csv\.xz is missing or damaged"):
        bundle.unpack(written.folder, tmp_path / "unpacked")
    assert not (tmp_path / "unpacked").exists()
    run = subprocess.run([str(written.folder / "run.sh"), str(tmp_path)], capture_output=True, text=True,
                         check=False)
    assert run.returncode == 1 and "a file does not match SHA256SUMS" in run.stderr
    (written.folder / bundle.MANIFEST).unlink()
    with pytest.raises(bundle.BundleError, match="bundle.json: cannot be read"):
        bundle.unpack(written.folder, tmp_path / "unpacked")


def test_a_bundle_over_the_limit_or_into_a_full_folder_is_refused(tmp_path, tiny_mirror, written):
    registry, mirror = tiny_mirror
    results = _results(tmp_path / "other", {"03_gnn": ["alpha", "beta"]})
    fetcher = Fetcher(registry, tmp_path / "cache", mirror)
    with pytest.raises(bundle.BundleError, match=r"is not empty\. Fix: give a new folder"):
        bundle.write_bundle(written.folder, ["03_gnn"], wheels=False, fetcher=fetcher, results_dir=results)
    with pytest.raises(bundle.BundleError, match=r"bundle of 03_gnn is .* MiB, over 1e-06 MiB \(largest, MiB: "):
        bundle.write_bundle(tmp_path / "big", ["03_gnn"], limit_mib=1e-6, wheels=False, fetcher=fetcher,
                            results_dir=results)
    assert not (tmp_path / "big").exists()


def test_wheels_of_the_image_and_unneeded_ones_are_dropped(tmp_path, monkeypatch):
    def fake_pip(command, **kwargs):
        folder = Path(command[command.index("-d") + 1])
        for name in ("rdkit-2026.9.1-cp312-cp312-manylinux_2_28_x86_64.whl", "numpy-2.4.6-cp312-cp312-x.whl",
                     "debugpy-1.8.22-py2.py3-none-any.whl", "jupyter_core-5.9.1-py3-none-any.whl"):
            (folder / name).write_bytes(b"wheel")
        assert command[command.index("--python-version") + 1] == "3.12"
        commands.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    commands = []

    monkeypatch.setattr(bundle.subprocess, "run", fake_pip)
    kept = bundle.download_wheels(["rdkit==2026.9.1"], tmp_path / "wheels")
    assert [p.name.split("-")[0] for p in kept] == ["jupyter_core", "rdkit"]
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "wheels").iterdir()) == ["jupyter_core", "rdkit"]
    bundle.download_wheels(["myst-nb"], tmp_path / "wheels", dependencies=False)
    assert "--no-deps" not in commands[0] and commands[1][-2:] == ["myst-nb", "--no-deps"]

    monkeypatch.setattr(bundle.subprocess, "run", lambda command, **kwargs: subprocess.CompletedProcess(
        command, 1, "", "WARNING: Location 'x' is ignored\nERROR: No matching distribution found for rdkit==9\n"))
    with pytest.raises(bundle.BundleError, match="pip download for Python 3.12 failed: ERROR: No matching"):
        bundle.download_wheels(["rdkit==9"], tmp_path / "wheels")
