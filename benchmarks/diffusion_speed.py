"""Benchmark: sampling time of the diffusion model (DDPM with all steps vs DDIM with 50 and 20) with the metric change
each costs, training throughput of the diffusion model and the encoder-decoder, and the smoke chapter's time.

    .venv/bin/python benchmarks/diffusion_speed.py [--profile quick|full] [--device cpu|cuda] [--epochs 20]
                                                   [--conditions 32] [--smoke-chapter]

Trains both generative models of chapter 04 (the profile's sizes) for a fixed number of epochs without early
stopping on the semi-synthetic benchmark of that profile and prints training profiles per second; then samples
``--conditions`` test conditions x the profile's samples per condition with each sampler and prints seconds per
1,000 generated profiles next to Pearson of the change, energy distance to the true distribution and spread ratio.
With few epochs the metrics are those of an under-trained model: compare samplers with each other, not with the
chapter. ``--smoke-chapter`` also executes ``book/04_diffusion.ipynb`` in the smoke profile (target: under 3
minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from perturbx.book.runner import time_chapter
from perturbx.datasets.simulate import simulate
from perturbx.runtime import describe_device, select_device
from perturbx.studies import generative
from perturbx.tasks import l1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("smoke", "quick", "full"), default="quick")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--conditions", type=int, default=32)
    parser.add_argument("--smoke-chapter", action="store_true")
    args = parser.parse_args()
    device = select_device(args.device)
    settings = generative.GenerativeSettings.for_profile(args.profile, device=device)
    for config in (settings.diffusion_fit, settings.encoder_decoder_fit):
        config.epochs, config.early_stopping_patience, config.progress = args.epochs, None, False
    settings.min_steps = 0  # exactly --epochs

    simulation = simulate(l1000.simulation_for(args.profile))
    inputs = l1000.build_inputs(simulation.data)
    split = l1000.make_split(inputs, "random", seed=0)
    split = type(split)(split.train, np.array([], dtype=int), split.test, split.kind)  # no validation passes
    truth = l1000.Truth(simulation, settings.n_reference)
    print(f"{describe_device(device)}; profile {args.profile}: {len(split.train):,} training profiles, "
          f"{args.epochs} epochs, batch {settings.diffusion_fit.batch_size}")
    result = generative.run_split(inputs, split, settings, seed=0, models=["diffusion", "encoder_decoder"],
                                  truth=truth)
    for name, fitted in result.fits.items():
        parameters = sum(p.numel() for p in result.models[name].parameters())
        print(f"{name} ({parameters:,} parameters): training {fitted.samples_per_second:,.0f} profiles/s "
              f"({fitted.seconds / len(fitted.history):.2f} s per epoch, {len(fitted.history)} epochs)")
    samplers = generative.sampler_comparison(result, inputs, [("ddpm", 0), ("ddim", 50), ("ddim", 20)],
                                             max_conditions=args.conditions)
    print(f"sampling {min(args.conditions, len(result.conditions))} conditions x {settings.n_samples} profiles:")
    with pd.option_context("display.width", 160, "display.precision", 3):
        print(samplers[["sampler", "steps", "seconds per 1,000 profiles", "pearson_change", "energy_distance_true",
                        "spread_ratio"]].to_string(index=False))
    if args.smoke_chapter:
        print(f"chapter 04 in the smoke profile: {time_chapter('04_diffusion'):.1f} s wall time")


if __name__ == "__main__":
    main()
