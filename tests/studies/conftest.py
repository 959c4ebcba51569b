"""Fixtures of the study tests."""

from __future__ import annotations

import pytest

from perturbx.studies import protocol


@pytest.fixture
def jobs_workers(monkeypatch) -> list[int]:
    """The ``workers`` of every :func:`perturbx.studies.protocol.run_jobs` call the test makes, in order (a study
    that dropped its settings' workers would pass 1)."""
    seen: list[int] = []
    run_jobs = protocol.run_jobs

    def spy(jobs, run_one, summarise, description="splits", progress=True, workers=1):
        seen.append(workers)
        return run_jobs(jobs, run_one, summarise, description, progress, workers)

    monkeypatch.setattr(protocol, "run_jobs", spy)
    return seen
