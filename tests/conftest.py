"""Shared fixtures: small simulated cohorts (seconds to build, deterministic)."""

from __future__ import annotations

import pytest

from gtex_models.simulate import simulate_cohort


@pytest.fixture(scope="session")
def small_cohort():
    """~600 samples x 400 genes x 49 tissues."""
    return simulate_cohort(n_donors=30, n_genes=400, seed=1)
