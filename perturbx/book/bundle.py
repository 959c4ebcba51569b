"""A bundle: what a chapter run needs on a GPU machine that has no internet and a Python of its own.

``perturbx book bundle --out DIR --chapters 03_gnn`` writes into ``DIR``:

- ``data/``: the registered files the chapters read (their ``provenance.json`` lists them), verified against the
  registry, each xz-compressed (``<registry path>.xz``; the GDSC pickles shrink from 52 MB to 22 MB);
- ``wheels/``: the wheels of the packages a chapter run imports that the GPU image lacks (RDKit, cmapPy, pooch,
  rdata, gseapy, papermill, ipykernel and their dependencies; myst-nb and docutils without the Sphinx stack), at
  this environment's pinned versions, for the image's Python and platform (:func:`run_closure`);
- ``bundle.json`` (chapters, commit, Python, every file's sha256 and size, every data file's registered sha256)
  and ``SHA256SUMS`` (for ``sha256sum -c``);
- ``run.sh``: on the GPU machine, ``DIR/run.sh REPO CHAPTER...`` checks every checksum, installs the wheels with
  no package index into a folder of their own, unpacks the data into a mirror folder (:func:`unpack`, which checks
  every file against the manifest before it is used) and runs ``perturbx book run --profile full --device cuda``.

The whole bundle must fit the 64 MiB that travel with one command to the lent GPU machine
(:data:`LIMIT_MIB`); :func:`write_bundle` refuses a larger one and says which parts are largest.
"""

from __future__ import annotations

import json
import lzma
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from ..datasets.fetcher import Fetcher, sha256_of
from ..runtime import git_commit
from .chapter import PROVENANCE_FILE, RESULTS_DIR

LIMIT_MIB = 64  # what travels with one command to the lent GPU machine, working tree included
MANIFEST = "bundle.json"
CHECKSUMS = "SHA256SUMS"
#: The GPU image's python3 (``/opt/torch/.venv/bin/python3``), for which the wheels are chosen.
IMAGE_PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
#: Packages the GPU image already holds (its package list as read on 2026-11-17, normalised names): not bundled.
IMAGE_PACKAGES = frozenset("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer click cloudpickle cmake colorama contourpy coverage cycler cython einops filelock fonttools
frozenlist fsspec h11 h5py hf-xet httpcore httpx huggingface-hub idna imageio iniconfig jinja2 joblib kiwisolver
lazy-loader lxml markdown markdown-it-py markupsafe matplotlib mdurl mpmath msgpack multidict narwhals networkx
ninja numba numpy packaging pandas pathspec patsy pillow pip pluggy portalocker prometheus-client propcache protobuf
psutil pyarrow pybind11 pygments pyparsing pytest python-dateutil pyyaml regex requests rich safetensors
scikit-image scikit-learn scipy seaborn setuptools shellingham simplejson six sortedcontainers statsmodels sympy
tabulate threadpoolctl tifffile toolz torch torch-geometric torchaudio torchvision tqdm triton typer
typing-extensions typing-inspect urllib3 werkzeug wheel wrapt xarray xxhash yarl zipp
""".split())
#: What IPython and ipykernel run without (the debugger, tab completion); left out to keep the bundle small.
LEFT_OUT = frozenset({"debugpy", "jedi", "parso"})
#: The project's optional packages that executing a chapter needs (the rest of the ``book`` extra renders HTML).
RUN_EXTRAS = ("papermill", "ipykernel", "gseapy")
#: Bundled without their dependencies: a chapter kernel imports only ``myst_nb.glue``, which needs docutils but
#: none of the rest of myst-nb's Sphinx stack (the HTML build runs elsewhere), and ``tqdm.auto`` needs ipywidgets'
#: Python side (without it tqdm warns into the chapter), not its browser extensions.
WITHOUT_DEPENDENCIES = ("myst-nb", "docutils", "ipywidgets")


class BundleError(ValueError):
    """A bundle cannot be written or used; the message names the file or chapter and the fix."""


def normalise(name: str) -> str:
    """A distribution name as pip compares them: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_project(path: Path) -> str:
    """The normalised project name of a wheel file (``jupyter_core-5.9.1-py3-none-any.whl`` -> ``jupyter-core``)."""
    return normalise(path.name.split("-", 1)[0])


def run_closure(python: str = IMAGE_PYTHON) -> list[str]:
    """``name==version`` of every distribution a chapter run needs that the GPU image lacks, sorted.

    Walks the installed metadata from perturbx's own dependencies and :data:`RUN_EXTRAS` (so the versions are the
    pinned ones of this environment), with environment markers evaluated for ``python``. It stops at the image's
    packages (whose own dependencies the image has) and :data:`LEFT_OUT`, and does not follow the dependencies of
    :data:`WITHOUT_DEPENDENCIES`.
    """
    environment = {"python_version": python, "python_full_version": f"{python}.0", "extra": ""}
    wanted, queue = {}, [Requirement(r) for r in metadata.requires("perturbx") or []]
    queue = [r for r in queue if r.marker is None or r.marker.evaluate(environment) or
             normalise(r.name) in RUN_EXTRAS]
    queue += [Requirement(name) for name in WITHOUT_DEPENDENCIES]
    while queue:
        name = normalise(queue.pop().name)
        if name in wanted or name in IMAGE_PACKAGES | LEFT_OUT:
            continue
        wanted[name] = metadata.version(name)
        if name not in WITHOUT_DEPENDENCIES:
            queue += [r for r in map(Requirement, metadata.requires(name) or [])
                      if r.marker is None or r.marker.evaluate(environment)]
    return [f"{name}=={version}" for name, version in sorted(wanted.items())]


def chapter_data(chapters: list[str], results_dir: Path = RESULTS_DIR) -> list[str]:
    """The registry names of the data files ``chapters`` read in their last published run (their provenance
    records), each once, in order; a chapter without a record is a :class:`BundleError` naming the fix."""
    names: dict[str, None] = {}
    for chapter in chapters:
        record = results_dir / chapter / PROVENANCE_FILE
        if not record.is_file():
            raise BundleError(f"chapter {chapter}: {record} is missing, so the data it reads is unknown. Fix: run it "
                              f"once here (perturbx book run --profile smoke --chapters {chapter}), or check the name")
        names.update(dict.fromkeys(json.loads(record.read_text()).get("data", {})))
    return list(names)


def download_wheels(requirements: list[str], folder: Path, python: str = IMAGE_PYTHON,
                    dependencies: bool = True) -> list[Path]:
    """``pip download`` the binary wheels of ``requirements`` (and of their dependencies, unless
    ``dependencies`` is false) for ``python`` on x86-64 Linux into ``folder``, then remove those of
    :data:`IMAGE_PACKAGES` and :data:`LEFT_OUT`; returns the wheels in ``folder``, sorted. A failed download is a
    :class:`BundleError` with pip's last line."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--only-binary=:all:", "--python-version", python, "--implementation", "cp", "-d", str(folder),
               *[arg for platform in (*PLATFORMS, "any") for arg in ("--platform", platform)], *requirements,
               *([] if dependencies else ["--no-deps"])]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = [line for line in done.stderr.splitlines() if line.strip() and "is ignored" not in line][-1:]
        raise BundleError(f"pip download for Python {python} failed: {' '.join(last) or done.returncode}. "
                          f"Fix: check access to the package index")
    kept = []
    for wheel in sorted(folder.glob("*.whl")):
        if wheel_project(wheel) in IMAGE_PACKAGES | LEFT_OUT:
            wheel.unlink()
        else:
            kept.append(wheel)
    return kept


def pack_data(names: list[str], folder: Path, fetcher: Fetcher | None = None) -> list[dict]:
    """Fetch (and so verify) every registered file ``names`` and write it xz-compressed under ``folder`` at its
    registry path + ``.xz``; returns one record per file: name, path, sha256 and size of the registered bytes."""
    fetcher = fetcher or Fetcher()
    records = []
    for name in names:
        entry, source = fetcher.registry[name], fetcher.fetch(name)
        packed = folder / f"{entry.path}.xz"
        packed.parent.mkdir(parents=True, exist_ok=True)
        with open(source, "rb") as raw, lzma.open(packed, "wb", preset=9) as out:
            shutil.copyfileobj(raw, out)
        records.append({"name": name, "path": entry.path, "sha256": entry.sha256, "size": entry.size})
    return records


@dataclass
class Bundle:
    """A written bundle: its folder, its manifest (as in ``bundle.json``) and its size in bytes."""

    folder: Path
    manifest: dict
    size: int


def write_bundle(out: Path, chapters: list[str], python: str = IMAGE_PYTHON, limit_mib: float = LIMIT_MIB,
                 wheels: bool = True, fetcher: Fetcher | None = None, results_dir: Path = RESULTS_DIR) -> Bundle:
    """Write the bundle of ``chapters`` into the new or empty folder ``out`` (see the module notes).

    Args:
        python: the target machine's Python (``major.minor``), for which the wheels are chosen.
        limit_mib: the largest bundle allowed (MiB).
        wheels: bundle the wheels (False: data only, for a machine that has the packages).

    Raises:
        BundleError: ``out`` holds files, a chapter has no provenance record, a download failed, or the bundle is
            larger than ``limit_mib`` (the folder is then removed; the message lists the largest parts).
    """
    if out.exists() and any(out.iterdir()):
        raise BundleError(f"{out} is not empty. Fix: give a new folder to --out")
    out.mkdir(parents=True, exist_ok=True)
    try:
        data = pack_data(chapter_data(chapters, results_dir), out / "data", fetcher)
        if wheels:
            download_wheels(run_closure(python), out / "wheels", python, dependencies=False)
        shutil.copyfile(Path(__file__).with_name("bundle_run.sh"), out / "run.sh")
        (out / "run.sh").chmod(0o755)
        files = sorted(p for p in out.rglob("*") if p.is_file())
        records = [{"path": p.relative_to(out).as_posix(), "sha256": sha256_of(p), "size": p.stat().st_size}
                   for p in files]
        size = sum(r["size"] for r in records)
        if size > limit_mib * 2**20:
            largest = ", ".join(f"{r['path']} {r['size'] / 2**20:.1f}" for r in
                                sorted(records, key=lambda r: -r["size"])[:4])
            raise BundleError(f"the bundle of {' '.join(chapters)} is {size / 2**20:.1f} MiB, over {limit_mib} MiB "
                              f"(largest, MiB: {largest}). Fix: bundle fewer chapters at once")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    manifest = {"chapters": chapters, "commit": git_commit(), "python": python, "size": size, "files": records,
                "data": data}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    (out / CHECKSUMS).write_text("".join(f"{r['sha256']}  {r['path']}\n" for r in records))
    return Bundle(out, manifest, size)


def unpack(bundle: Path, mirror: Path) -> list[Path]:
    """Check every file of ``bundle`` against its manifest, then decompress its data into ``mirror`` (laid out
    like the shared data folder, for ``$PERTURBX_DATA_MIRROR``); returns the unpacked files.

    Raises:
        BundleError: the manifest is missing, or a file is missing, of another size or sha256 (named; nothing is
            unpacked then), or an unpacked file does not have its registered sha256.
    """
    try:
        manifest = json.loads((bundle / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        raise BundleError(f"{bundle / MANIFEST}: cannot be read ({error}). Fix: copy the whole bundle") from None
    for record in manifest["files"]:
        path = bundle / record["path"]
        if not path.is_file() or path.stat().st_size != record["size"] or sha256_of(path) != record["sha256"]:
            raise BundleError(f"bundle file {path} is missing or damaged (not the size and sha256 of {MANIFEST}). "
                              f"Fix: copy the bundle again, or write a new one")
    unpacked = []
    for record in manifest["data"]:
        target = mirror / record["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as staged:
            with lzma.open(bundle / "data" / f"{record['path']}.xz") as packed:
                shutil.copyfileobj(packed, staged)
        if sha256_of(Path(staged.name)) != record["sha256"]:
            Path(staged.name).unlink()
            raise BundleError(f"{record['name']}: unpacked bytes do not have the registered sha256. Fix: write a new "
                              f"bundle")
        Path(staged.name).replace(target)
        unpacked.append(target)
    return unpacked
