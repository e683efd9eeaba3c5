"""PMI: fits and imputes a tiny cohort, keeps observed values, beats per-tissue means."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gtex_models.cohort import Cohort
from gtex_models.evaluation import mask_cohort, r2_per_gene, summarize
from gtex_models.imputers import make_imputer
from gtex_models.imputers.pmi import PMIImputer
from gtex_models.masks import mcar_mask

SMALL = {"hidden_sizes": [128], "batch_size": 64, "lr": 3e-3, "max_epochs": 30, "patience": 5, "seed": 0}


@pytest.fixture(scope="module")
def masked_test(small_cohort: Cohort) -> tuple[Cohort, np.ndarray]:
    test = small_cohort.split("test")
    observed = mcar_mask(test.x.shape, 0.5, 0.5, seed=3)
    return mask_cohort(test, observed), observed


@pytest.fixture(scope="module")
def fitted(small_cohort: Cohort) -> PMIImputer:
    return PMIImputer(**SMALL).fit(small_cohort.split("train"), small_cohort.split("valid"))


def test_imputes_missing_entries_and_keeps_observed_ones(fitted: PMIImputer, masked_test) -> None:
    masked, observed = masked_test
    filled = fitted.impute(masked)
    assert filled.shape == masked.x.shape and filled.dtype == np.float32
    assert np.isfinite(filled).all()
    np.testing.assert_array_equal(filled[observed], masked.x[observed])


def test_beats_per_tissue_means(fitted: PMIImputer, small_cohort: Cohort, masked_test) -> None:
    masked, observed = masked_test
    truth = small_cohort.split("test").x
    mean = make_imputer("mean").fit(small_cohort.split("train"))
    r2_pmi = summarize(r2_per_gene(truth, fitted.impute(masked), observed))["r2_mean"]
    r2_mean = summarize(r2_per_gene(truth, mean.impute(masked), observed))["r2_mean"]
    assert r2_pmi > r2_mean + 0.1, (r2_pmi, r2_mean)
    assert fitted.history["best_epoch"] is not None
    assert len(fitted.history["valid_loss"]) == fitted.history["epochs"]


def test_gene_order_of_the_cohort_does_not_matter(fitted: PMIImputer, masked_test) -> None:
    masked, _ = masked_test
    order = np.random.default_rng(0).permutation(masked.n_genes)
    shuffled = fitted.impute(masked.subset_genes(order))
    np.testing.assert_allclose(shuffled, fitted.impute(masked)[:, order], atol=1e-5)


def test_inplace_training_on_a_cohort_with_missing_values(small_cohort: Cohort, masked_test) -> None:
    train = small_cohort.split("train")
    masked_train = mask_cohort(train, mcar_mask(train.x.shape, 0.3, 0.6, seed=4))
    imputer = PMIImputer(**{**SMALL, "max_epochs": 3}).fit(masked_train)
    assert np.isfinite(imputer.history["train_loss"]["reconstruction"]).all()
    assert np.isfinite(imputer.impute(masked_test[0])).all()


def test_bf16_precision_path_runs(small_cohort: Cohort, masked_test) -> None:
    imputer = PMIImputer(**{**SMALL, "max_epochs": 2, "precision": "bf16"})
    imputer.fit(small_cohort.split("train"), small_cohort.split("valid"))
    assert imputer.history["precision"] == "bf16"
    assert np.isfinite(imputer.impute(masked_test[0])).all()


def test_bf16_precision_imputes_with_a_bf16_copy_close_to_fp32(
    fitted: PMIImputer, small_cohort: Cohort, masked_test
) -> None:
    masked, observed = masked_test
    arrays, config = fitted.get_state()
    bf16 = PMIImputer.from_state(arrays, {**config, "params": {**config["params"], "precision": "bf16"}})
    filled32, filled16 = fitted.impute(masked), bf16.impute(masked)
    assert next(bf16._inference_networks().parameters()).dtype == torch.bfloat16
    assert next(bf16.networks.parameters()).dtype == torch.float32  # what a checkpoint saves
    assert filled16.dtype == np.float32
    np.testing.assert_array_equal(filled16[observed], masked.x[observed])
    assert 0 < np.abs(filled16 - filled32).max() < 0.1
    truth = small_cohort.split("test").x
    r2_16, r2_32 = (summarize(r2_per_gene(truth, f, observed))["r2_mean"] for f in (filled16, filled32))
    assert abs(r2_16 - r2_32) < 0.005, (r2_16, r2_32)


def test_registry_config_and_errors() -> None:
    imputer = make_imputer("pmi", hidden_sizes=[64], lr="1e-3")
    assert isinstance(imputer, PMIImputer) and imputer.method == "pmi"
    assert imputer.config["hidden_sizes"] == [64] and imputer.config["lr"] == 1e-3
    assert PMIImputer().config["hidden_sizes"] == [3072]  # the paper's default
    with pytest.raises(ValueError, match="Unknown setting"):
        PMIImputer(hiden_sizes=[64])
    with pytest.raises(RuntimeError, match="Fit the pmi imputer"):
        imputer.get_state()
