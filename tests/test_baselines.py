"""Baselines (mean, blood, KNN, MICE, MissForest) and the method registry."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import numpy as np
import pandas as pd
import pytest

from gtex_models.cohort import Cohort, Transform
from gtex_models.evaluation import mask_cohort
from gtex_models.imputers import METHODS, imputer_class, make_imputer
from gtex_models.imputers.baselines import BloodImputer, MeanImputer, TissueMeans
from gtex_models.masks import mcar_mask
from gtex_models.reference import WHOLE_BLOOD
from gtex_models.simulate import simulate_cohort

FAST_CONFIGS = {
    "mean": {},
    "blood": {},
    "knn": {"k": 5},
    "mice": {"max_iter": 2, "n_nearest_features": 10},
    "missforest": {"n_estimators": 3, "max_iter": 1, "n_nearest_features": 5},
}


@pytest.fixture(scope="module")
def tiny() -> Cohort:
    """About 400 samples x 100 genes (the chained imputers' cost grows with the genes)."""
    return simulate_cohort(n_donors=20, n_genes=400).subset_genes(np.arange(100))


def _masked(cohort: Cohort, rate: float = 0.5, seed: int = 0) -> Cohort:
    return mask_cohort(cohort, mcar_mask(cohort.x.shape, rate, rate, seed=seed))


def _cohort(x: list[list[float]], donors: list[str], tissues: list[str]) -> Cohort:
    """A hand-made cohort in model space (identity transform)."""
    x = np.asarray(x, dtype=np.float32)
    genes = pd.DataFrame({"ensembl_gene_id": [f"ENSG{i:011d}" for i in range(x.shape[1])],
                          "symbol": [f"G{i}" for i in range(x.shape[1])]})
    samples = pd.DataFrame({"sample_id": [f"{d}-{t}-{i}" for i, (d, t) in enumerate(zip(donors, tissues))],
                            "donor_id": donors, "tissue": tissues, "sex": "female", "age": 50.0,
                            "split": "train"})
    transform = Transform(np.zeros(x.shape[1]), np.ones(x.shape[1]), scale="log")
    return Cohort(x, genes, samples, transform)


@pytest.mark.parametrize("method", list(FAST_CONFIGS))
@pytest.mark.parametrize("scenario", ["inductive", "inplace"])
def test_imputes_every_missing_entry_and_keeps_observed_ones(tiny: Cohort, method: str, scenario: str) -> None:
    test = _masked(tiny.split("test"))
    train = tiny.split("train") if scenario == "inductive" else test
    filled = make_imputer(method, **FAST_CONFIGS[method]).fit(train).impute(test)
    assert filled.shape == test.x.shape and filled.dtype == np.float32
    assert not np.isnan(filled).any()
    np.testing.assert_array_equal(filled[test.observed], test.x[test.observed])


@pytest.mark.parametrize("method", list(FAST_CONFIGS))
def test_state_round_trip_gives_identical_imputations(tiny: Cohort, method: str) -> None:
    imputer = make_imputer(method, **FAST_CONFIGS[method]).fit(_masked(tiny.split("train"), 0.2, seed=3))
    arrays, config = imputer.get_state()
    assert all(isinstance(a, np.ndarray) and a.dtype.kind in "fiub" for a in arrays.values())
    restored = imputer_class(method).from_state({k: a.copy() for k, a in arrays.items()},
                                                json.loads(json.dumps(config)))
    test = _masked(tiny.split("test"))
    np.testing.assert_array_equal(restored.impute(test), imputer.impute(test))


def test_mean_uses_tissue_means_and_global_fallbacks() -> None:
    train = _cohort([[1, np.nan], [3, np.nan], [5, 6]], ["A", "B", "C"], ["Lung", "Lung", "Liver"])
    query = _cohort([[np.nan, np.nan], [np.nan, np.nan], [np.nan, 0]], ["D", "E", "F"],
                    ["Lung", "Liver", "Brain"])
    filled = MeanImputer().fit(train).impute(query)
    # gene 1 is never observed in lung: its global mean (6); Brain is unseen: global means (3, 6)
    np.testing.assert_array_equal(filled, [[2, 6], [5, 6], [3, 0]])


def test_tissue_means_of_a_gene_never_observed_is_zero() -> None:
    means = TissueMeans.fit(np.array([[np.nan, 1.0]], dtype=np.float32), ["Lung"])
    np.testing.assert_array_equal(means.expand(["Lung", "Liver"]), [[0, 1], [0, 1]])


def test_blood_uses_the_donors_blood_sample_shifted_to_the_target_tissue() -> None:
    blood, lung = WHOLE_BLOOD, "Lung"
    train = _cohort([[1, 2, 3], [3, 4, np.nan], [0, 0, 0], [2, 2, 2]], ["A", "B", "A", "B"],
                    [blood, blood, lung, lung])
    # blood means (2, 3, 3); lung means (1, 1, 1)
    nan = np.nan
    query = _cohort([[nan, nan, nan], [nan, nan, nan], [5, nan, 7], [nan, nan, nan], [nan, nan, nan]],
                    ["A", "B", "D", "D", "C"], [lung, lung, blood, lung, lung])
    filled = BloodImputer().fit(train).impute(query)
    expected = [
        [0, 0, 1],     # training blood of A: lung mean + (blood - blood mean)
        [2, 2, 1],     # B's blood misses gene 2: lung mean there
        [5, 3, 7],     # D's own blood sample: observed values kept, blood mean for the gap
        [4, 1, 5],     # D's blood sample from the query itself
        [1, 1, 1],     # C has no blood sample: lung mean
    ]
    np.testing.assert_allclose(filled, expected)


def test_blood_averages_several_blood_samples_of_a_donor() -> None:
    train = _cohort([[0.0], [2.0], [4.0]], ["A", "A", "B"], [WHOLE_BLOOD] * 3)
    query = _cohort([[np.nan]], ["A"], ["Lung"])  # unseen tissue: global mean 2
    np.testing.assert_allclose(BloodImputer().fit(train).impute(query), [[2 + (1 - 2)]])


def test_chained_imputers_use_training_rows_as_context(tiny: Cohort) -> None:
    test = _masked(tiny.split("test"))
    config = {**FAST_CONFIGS["mice"], "max_iter": 1}
    with_context = make_imputer("mice", **config).fit(tiny.split("train")).impute(test)
    alone = make_imputer("mice", **config).fit(test).impute(test)
    assert not np.array_equal(with_context, alone)


def test_registry_lists_methods_in_order() -> None:
    assert METHODS == ("pmi", "gain", "gain-mse", "mean", "knn", "mice", "missforest", "blood", "oracle")
    assert imputer_class("oracle").__name__ == "OracleImputer"
    assert make_imputer("knn", k=3).k == 3


def test_unknown_method_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="missforest"):
        make_imputer("softimpute")


def test_gain_mse_is_gain_without_the_adversarial_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeGAIN:
        def __init__(self, **config: object) -> None:
            self.config = config

    fake = types.ModuleType("gtex_models.imputers.gain")
    fake.GAINImputer = FakeGAIN
    monkeypatch.setitem(sys.modules, "gtex_models.imputers.gain", fake)
    assert make_imputer("gain-mse", adversarial=True, epochs=3).config == {"adversarial": False, "epochs": 3}
    assert make_imputer("gain").config == {}


def test_importing_the_registry_imports_no_estimators() -> None:
    code = ("import sys, gtex_models, gtex_models.imputers; "
            "print(sorted(m for m in sys.modules if m.startswith(('sklearn', 'gtex_models.imputers.'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['gtex_models.imputers.base']"
