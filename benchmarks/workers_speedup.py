"""Benchmark: the speed-up of running a chapter's seeds and splits as parallel jobs against one job at a time.

    .venv/bin/python benchmarks/workers_speedup.py [--profile quick] [--seeds 2]

Runs chapter 04's SKBR3 experiment (3 splits x ``--seeds`` seeds, every model of the chapter, the profile's sizes)
twice on this machine's CPU cores: one job at a time with every core as a torch thread, then one job per core
(:func:`perturbx.runtime.parallel_jobs`) with one torch thread each, as the chapters run it
(:func:`perturbx.studies.protocol.run_jobs`). It prints both wall times, the speed-up, and the largest difference
between the two runs' metrics (the jobs seed their own models, so only floating-point order may differ).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import torch

from perturbx.runtime import parallel_jobs
from perturbx.studies import generative, l1000_data

SPLITS = ["random", "held-out dose", "held-out time"]


def timed_run(inputs, settings: generative.GenerativeSettings, seeds: list[int], workers: int, threads: int):
    """(seconds, runs table) of the SKBR3 experiment with ``workers`` jobs at once and ``threads`` torch threads."""
    torch.set_num_threads(threads)
    start = time.perf_counter()
    runs, _ = generative.run_experiments(inputs, SPLITS, seeds, replace(settings, workers=workers), progress=False)
    return time.perf_counter() - start, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("smoke", "quick", "full"))
    parser.add_argument("--seeds", type=int, default=2)
    arguments = parser.parse_args()
    cores, seeds = os.cpu_count() or 1, list(range(arguments.seeds))
    workers = parallel_jobs("cpu")
    settings = generative.GenerativeSettings.for_profile(arguments.profile, "cpu")
    _, inputs = l1000_data.replicate_plate()
    one_s, one = timed_run(inputs, settings, seeds, workers=1, threads=cores)
    parallel_s, parallel = timed_run(inputs, settings, seeds, workers=workers, threads=cores)
    metrics = one.select_dtypes("number").columns.difference(["seed", "best_epoch", "epochs_run"])
    difference = (one[metrics] - parallel[metrics]).abs().max().max()
    print(f"{cores} CPU cores; profile {arguments.profile}; SKBR3, {len(SPLITS)} splits x {len(seeds)} seeds")
    print(f"one job at a time, {cores} torch threads: {one_s:.1f} s")
    print(f"{workers} jobs at once, {max(1, cores // workers)} torch thread(s) each: {parallel_s:.1f} s")
    print(f"speed-up {one_s / parallel_s:.2f}x; largest metric difference between the runs {difference:.2e}")


if __name__ == "__main__":
    main()
