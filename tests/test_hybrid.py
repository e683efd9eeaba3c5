"""Deep models with a Gaussian path (``linear=True``): they start as gauss and keep only what training adds."""

from __future__ import annotations

import numpy as np
import pytest

from gtex_models.data.masks import mcar_mask
from gtex_models.data.patterns import mask_cohort
from gtex_models.data.simulate import simulate_cohort
from gtex_models.models.checkpoints import load_checkpoint, save_checkpoint
from gtex_models.models.hybrid import fit_gaussian
from gtex_models.models.registry import make_imputer

FAST = {"hidden_sizes": [64], "batch_size": 64, "lr": 3e-3, "max_epochs": 15, "patience": 4, "seed": 0,
        "m_low": 0.1, "m_high": 0.9, "precision": "fp32"}


@pytest.fixture(scope="module")
def cohort():
    return simulate_cohort(n_donors=24, n_genes=400, seed=4)


def _masked_test(cohort, rate=0.5, seed=1):
    test = cohort.split("test")
    observed = mcar_mask(test.x.shape, rate, rate, seed=seed)
    return test, observed, mask_cohort(test, observed)


@pytest.mark.parametrize("method", ["pmi", "gain-mse"])
def test_an_untrained_hybrid_is_exactly_the_gaussian_conditional_mean(cohort, method):
    train, valid = cohort.split("train"), cohort.split("valid")
    hybrid = make_imputer(method, **FAST, linear=True)
    hybrid.setup(train, valid)  # networks built, nothing trained: the output layer is zero
    gaussian = fit_gaussian(train, valid, seed=0)
    _, _, masked = _masked_test(cohort)
    np.testing.assert_allclose(hybrid.impute(masked), gaussian.impute(masked), atol=1e-4)


def test_a_trained_hybrid_is_no_worse_than_gauss_at_any_rate_and_round_trips(cohort, tmp_path):
    """The weight of what the network adds is chosen on the validation donors: on 24 donors the network
    overfits, and the hybrid falls back (most of the way) to the linear model at every rate."""
    train, valid = cohort.split("train"), cohort.split("valid")
    hybrid = make_imputer("pmi", **FAST, linear=True).fit(train, valid)
    assert hybrid.history["residual_weight"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    gaussian = fit_gaussian(train, valid, seed=0)
    for rate in (0.2, 0.5, 0.8):
        test, observed, masked = _masked_test(cohort, rate)
        error = {name: float(np.mean((model.impute(masked) - test.x)[~observed] ** 2))
                 for name, model in (("hybrid", hybrid), ("gauss", gaussian))}
        assert error["hybrid"] < 1.01 * error["gauss"], (rate, error)
    path = save_checkpoint(hybrid, tmp_path / "hybrid.safetensors", {"genes": cohort.genes})
    loaded, _ = load_checkpoint(path)
    np.testing.assert_array_equal(loaded.impute(masked), hybrid.impute(masked))
