"""Check: a bundle installs and runs a chapter with no package index, in a fresh venv that holds only what the GPU
image holds.

    .venv/bin/python benchmarks/bundle_offline.py [--chapter 03_gnn] [--profile smoke] [--keep DIR]

Steps (each timed):
1. ``perturbx book bundle`` for this machine's Python (the GPU image's is 3.12; this one plays it);
2. a fresh venv with only packages of the GPU image's list (:data:`perturbx.book.bundle.IMAGE_PACKAGES`) that the
   project uses, from the package index: the stand-in for the image;
3. a copy of the working tree's tracked files (so the run does not publish into this checkout);
4. ``bundle/run.sh COPY CHAPTER`` with ``PROFILE`` and ``DEVICE=cpu``, pip forbidden to use an index, no data
   mirror or cache of this machine: wheels, data and checks come from the bundle alone.

Prints the bundle's size, each step's seconds and the copy's runs-log line of the chapter. Exits non-zero when a
step fails or the run is not logged as ok.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# the image's packages the project imports (the rest of the image is not needed to stand in for it)
IMAGE_STAND_IN = ["torch==2.13.0", "torch-geometric", "numpy", "pandas", "h5py", "scipy", "scikit-learn",
                  "matplotlib", "seaborn", "tqdm", "pyyaml", "requests", "xarray", "psutil", "pygments", "click",
                  "attrs", "packaging", "python-dateutil", "typing-extensions"]


def step(name: str, command: list[str], **kwargs) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, check=False, **kwargs)
    seconds = time.perf_counter() - started
    print(f"{name}: {seconds:.0f} s" + ("" if done.returncode == 0 else f"  FAILED (exit {done.returncode})"),
          flush=True)
    if done.returncode != 0:
        sys.exit(done.returncode)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapter", default="03_gnn")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="perturbx-bundle-check-"))
    work.mkdir(parents=True, exist_ok=True)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    bundle, image, copy = work / "bundle", work / "image", work / "repo"
    step("bundle", [sys.executable, "-m", "perturbx.cli", "book", "bundle", "--out", str(bundle), "--chapters",
                    args.chapter, "--python", python])
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    print(f"bundle size: {size / 2**20:.1f} MiB", flush=True)
    step("image stand-in venv", [sys.executable, "-m", "venv", str(image)])
    step("image stand-in packages", [str(image / "bin" / "python"), "-m", "pip", "install", "--quiet",
                                     "--disable-pip-version-check", "-c", str(REPO / "constraints.txt"),
                                     *IMAGE_STAND_IN])
    copy.mkdir(exist_ok=True)
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    step("working tree copy", ["tar", "--null", "-T", "-", "-cf", str(work / "tree.tar")], cwd=REPO, input=files)
    step("working tree unpack", ["tar", "-xf", str(work / "tree.tar"), "-C", str(copy)])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERTURBX_", "PIP_", "PYTHONPATH"))}
    env |= {"PYTHON": str(image / "bin" / "python"), "PROFILE": args.profile, "DEVICE": "cpu", "PIP_NO_INDEX": "1",
            "PERTURBX_BUNDLE_SITE": str(work / "site"), "PERTURBX_BUNDLE_MIRROR": str(work / "mirror"),
            "PERTURBX_CACHE_DIR": str(work / "cache")}
    step(f"run.sh {args.chapter} ({args.profile})", [str(bundle / "run.sh"), str(copy), args.chapter], env=env)
    logged = (copy / "book" / "results" / "runs.csv").read_text().splitlines()[-1]
    print(f"the copy's runs log ends with: {logged}\nwork folder: {work}")
    if not logged.startswith(f"{args.chapter},ok,{args.profile},cpu"):
        sys.exit(f"the run of {args.chapter} is not logged as ok")


if __name__ == "__main__":
    main()
