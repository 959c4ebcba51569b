"""Tests of :mod:`perturbx.book`, one module per module: chapter, runner, publishing."""
