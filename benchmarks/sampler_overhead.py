"""Benchmark: DDIM sampling against the bare denoiser calls it makes (target: at least 0.95 of their speed).

    .venv/bin/python benchmarks/sampler_overhead.py [--profile full] [--device cpu|cuda] [--threads 1]
                                                    [--conditions 128] [--steps 50] [--repeats 3]

Builds chapter 04's diffusion network at the profile's sizes (untrained: the cost of a step does not depend on
the weights) and draws ``--conditions`` x the profile's samples per condition in one chunk, as
:func:`perturbx.models.generative.generate` does. It times ``ConditionalDiffusion.sample`` (DDIM, guidance 1 and 2)
against the same number of bare denoiser calls on tensors of the same shape, and prints both and their ratio
(bare / sampler; 1 means the sampler adds nothing). Each figure is the fastest of ``--repeats`` runs, the two
kinds of run interleaved.
"""

from __future__ import annotations

import argparse
import time

import torch

from perturbx.models.diffusion import ConditionalDiffusion
from perturbx.runtime import describe_device, select_device
from perturbx.studies import generative

N_GENES = 978


class FixedConditioner(torch.nn.Module):
    """(context, perturbation) embeddings from a (B, width) tensor: the conditioner runs once per draw, so its
    cost is not the sampler's."""

    def forward(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embedding, zeros) for a (B, width) embedding."""
        return embedding, torch.zeros_like(embedding)


def fastest(runs: list, repeats: int) -> list[float]:
    """The fastest wall time of ``repeats`` calls of each of ``runs`` (seconds), the calls interleaved so that a
    change in the machine's speed during the benchmark affects every run alike."""
    times = [[] for _ in runs]
    for _ in range(repeats):
        for run, spent in zip(runs, times):
            start = time.perf_counter()
            run()
            spent.append(time.perf_counter() - start)
    return [min(spent) for spent in times]


def compare(model: ConditionalDiffusion, embedding: torch.Tensor, n_samples: int, steps: int, guidance: float,
            repeats: int) -> tuple[float, float]:
    """(bare denoiser seconds, sampler seconds) for one draw of ``n_samples`` per row of ``embedding``."""
    rows = len(embedding) * n_samples * (1 if guidance == 1 else 2)  # guidance != 1 runs both branches at once
    x = torch.randn(rows, model.n_features, device=embedding.device)
    timestep = torch.full((rows,), 10, dtype=torch.long, device=embedding.device)
    context = torch.randn(rows, embedding.shape[1], device=embedding.device)

    def bare():
        with torch.no_grad():
            for _ in range(steps):
                model.denoiser(x, timestep, context)

    def sampler():
        model.sample(embedding, n_samples=n_samples, method="ddim", steps=steps, guidance=guidance,
                     generator=torch.Generator(embedding.device).manual_seed(0))

    bare_s, sampler_s = fastest([bare, sampler], repeats)
    return bare_s, sampler_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="full", choices=("smoke", "quick", "full"))
    parser.add_argument("--device", default=None, choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--conditions", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    device = select_device(arguments.device)
    settings = generative.GenerativeSettings.for_profile(arguments.profile, device)
    model = ConditionalDiffusion(N_GENES, FixedConditioner(), settings.diffusion).to(device).eval()
    embedding = torch.randn(arguments.conditions, settings.diffusion.width, device=device)
    print(f"{describe_device(device)}, {arguments.threads} torch thread(s); profile {arguments.profile}: "
          f"{settings.diffusion}; {arguments.conditions} conditions x {settings.n_samples} samples")
    for guidance in (1.0, 2.0):
        bare, sampler = compare(model, embedding, settings.n_samples, arguments.steps, guidance, arguments.repeats)
        print(f"DDIM-{arguments.steps}, guidance {guidance:g}: bare denoiser {bare:.3f} s, sampler {sampler:.3f} s, "
              f"bare / sampler {bare / sampler:.3f}")


if __name__ == "__main__":
    main()
