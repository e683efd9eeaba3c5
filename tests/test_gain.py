"""GAIN-GTEx and its MSE-only ablation: in-place fit, observed values kept, noise draws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gtex_models.cohort import Cohort
from gtex_models.evaluation import mask_cohort, r2_per_gene, summarize
from gtex_models.imputers import make_imputer
from gtex_models.imputers.gain import GAINImputer
from gtex_models.masks import mcar_mask

SMALL = {"hidden_sizes": [128, 128], "batch_size": 64, "lr": 2e-3, "max_epochs": 30, "patience": 5,
         "m_low": 0.2, "m_high": 0.5, "seed": 0}


@pytest.fixture(scope="module")
def inplace(small_cohort: Cohort) -> dict[str, object]:
    """Train and test donors masked at 50% in one cohort (in-place), plus masked validation donors."""
    observed = mcar_mask(small_cohort.x.shape, 0.5, 0.5, seed=5)
    masked = mask_cohort(small_cohort, observed)
    fit_rows = (small_cohort.samples["split"] != "valid").to_numpy()
    test_rows = (masked.samples["split"] == "test").to_numpy()
    return {"cohort": masked.subset_samples(fit_rows), "valid": masked.split("valid"),
            "test": masked.split("test"), "truth": small_cohort.x[test_rows], "observed": observed[test_rows]}


@pytest.fixture(scope="module")
def fitted(inplace: dict) -> GAINImputer:
    return GAINImputer(**SMALL).fit(inplace["cohort"], inplace["valid"])


def _r2(imputer, inplace: dict) -> float:
    filled = imputer.impute(inplace["test"])
    return summarize(r2_per_gene(inplace["truth"], filled, inplace["observed"]))["r2_mean"]


def test_fills_missing_entries_and_keeps_observed_ones(fitted: GAINImputer, inplace: dict) -> None:
    filled = fitted.impute(inplace["test"])
    observed = inplace["observed"]
    assert np.isfinite(filled).all()
    np.testing.assert_array_equal(filled[observed], inplace["test"].x[observed])
    assert set(fitted.history["train_loss"]) == {"discriminator", "generator"}
    assert list(fitted.networks) == ["generator"]  # the discriminator served training only


def test_inplace_gain_beats_per_tissue_means(fitted: GAINImputer, inplace: dict) -> None:
    mean = make_imputer("mean").fit(inplace["cohort"])
    r2_gain, r2_mean = _r2(fitted, inplace), _r2(mean, inplace)
    assert r2_gain > r2_mean + 0.1, (r2_gain, r2_mean)


def test_mse_only_ablation(inplace: dict) -> None:
    imputer = make_imputer("gain-mse", **{**SMALL, "max_epochs": 3})
    assert isinstance(imputer, GAINImputer) and imputer.method == "gain-mse"
    imputer.fit(inplace["cohort"], inplace["valid"])
    assert list(imputer.history["train_loss"]) == ["generator"]
    assert imputer.get_state()[1]["method"] == "gain-mse"


def test_original_gain_loss_path_runs(inplace: dict) -> None:
    imputer = GAINImputer(**{**SMALL, "max_epochs": 2, "pseudo_mask": False}).fit(inplace["cohort"])
    assert np.isfinite(imputer.impute(inplace["test"])).all()


def test_impute_samples_draws_noise_and_keeps_observed(fitted: GAINImputer, inplace: dict) -> None:
    test, observed = inplace["test"], inplace["observed"]
    draws = fitted.impute_samples(test, n_draws=4, seed=1)
    assert draws.shape == (4, *test.x.shape)
    assert fitted.stochastic
    for draw in draws:
        np.testing.assert_array_equal(draw[observed], test.x[observed])
    assert not np.array_equal(draws[0], draws[1])
    np.testing.assert_array_equal(draws, fitted.impute_samples(test, n_draws=4, seed=1))


def test_unknown_tissue_is_refused_with_a_suggestion(fitted: GAINImputer, inplace: dict) -> None:
    test = inplace["test"]
    samples = test.samples.copy()
    samples.loc[0, "tissue"] = "Brain - Cortx"
    renamed = Cohort(test.x, test.genes, samples, test.transform)
    with pytest.raises(ValueError, match="did you mean 'Brain - Cortex'"):
        fitted.impute(renamed)


def test_defaults_follow_the_paper() -> None:
    config = GAINImputer().config
    assert config["hidden_sizes"] == [296, 296, 296] and config["lr"] == 1e-3 and config["batch_size"] == 32
    assert pd.Series(config).loc[["noise", "adversarial"]].tolist() == [0.01, True]
