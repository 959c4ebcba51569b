"""The chapter profiles: one name per size of run, from a laptop check to the published book.

``smoke`` checks every chapter in seconds to two minutes on a CPU (the test suite), ``quick`` is the student's
run on a laptop (the same experiments at a smaller size), ``full`` the published tables. Every layer that sizes
work by profile uses these names, and :data:`PROFILE_BUDGETS` says how long a chapter of each may take.
"""

from __future__ import annotations

from typing import NamedTuple

PROFILES = ("smoke", "quick", "full")


class Budget(NamedTuple):
    """The most wall time one chapter of a profile may take: on 2 CPU cores, and on one GPU (H100/H200) where the
    profile is meant for one (None: no GPU budget), in minutes."""

    cpu_minutes: float
    gpu_minutes: float | None = None

    def describe(self) -> str:
        """E.g. ``"at most 90 min on 2 CPU cores, 10 min on one GPU"``."""
        gpu = f", {self.gpu_minutes:g} min on one GPU" if self.gpu_minutes is not None else ""
        return f"at most {self.cpu_minutes:g} min on 2 CPU cores{gpu}"


# A chapter's budget per profile; benchmarks/chapter_times.py checks the logged runs against it.
PROFILE_BUDGETS = {"smoke": Budget(2), "quick": Budget(10), "full": Budget(90, 10)}
# What each profile is for, as the chapters' run boxes say it.
PROFILE_PURPOSES = {
    "smoke": "checks that the chapter runs; its numbers mean nothing",
    "quick": "the same experiments at a smaller size, so a verdict that full decides may be inconclusive here",
    "full": "the published tables",
}
# Overrides every chapter's ``profile`` parameter when set (``perturbx book run`` validates it before it runs).
PROFILE_ENV = "PERTURBX_PROFILE"


def check_profile(profile: str) -> str:
    """``profile`` if it is one of :data:`PROFILES`, else a ``ValueError`` naming them."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)}")
    return profile
