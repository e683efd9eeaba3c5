"""Shared fixtures: small simulated cohorts (seconds to build, deterministic) and what is fitted on them."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from gtex_models.analysis.evaluation import r2_per_gene, summarize
from gtex_models.data.cohort import Cohort
from gtex_models.data.masks import mcar_mask
from gtex_models.data.patterns import mask_cohort
from gtex_models.data.readers.tables import import_table
from gtex_models.data.simulate import simulate_cohort
from gtex_models.models.registry import make_imputer

if TYPE_CHECKING:
    from gtex_models.models.pmi import PMIImputer

# A PMI trained for a few seconds on the small cohort (one thread): the deep model the accuracy,
# upload and "try it" tests use.
SMALL_PMI = {"hidden_sizes": [128], "batch_size": 64, "lr": 3e-3, "max_epochs": 30, "patience": 5, "seed": 0}
# MICE cheap enough for the suite (the default, 5 rounds on 30 neighbours, takes ~5x longer)
FAST_MICE = {"max_iter": 2, "n_nearest_features": 10}
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def small_cohort():
    """~600 samples x 400 genes x 49 tissues."""
    return simulate_cohort(n_donors=30, n_genes=400, seed=1)


@pytest.fixture(scope="session")
def influenza() -> Cohort:
    """Real whole blood (GSE30550, 300 genes by symbol, 17 subjects as donors, two conditions as groups)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # symbols outside the protein-coding list
        return import_table(DATA / "flu_gse30550_300" / "expression.csv.gz", DATA / "flu_gse30550_300" / "samples.csv",
                            tissue_column="condition")


@dataclass(frozen=True)
class MaskedTest:
    """The inductive scenario: complete training donors, test donors with values hidden at random."""

    train: Cohort
    valid: Cohort
    truth: Cohort      # the complete test donors
    masked: Cohort     # the same, NaN where hidden
    observed: np.ndarray

    def r2(self, imputed: np.ndarray) -> float:
        """Mean per-gene R² over the hidden entries."""
        return summarize(r2_per_gene(self.truth.x, imputed, self.observed))["r2_mean"]


@pytest.fixture(scope="session")
def inductive(small_cohort: Cohort) -> MaskedTest:
    """Train / valid donors of the small cohort, test donors at 50% MCAR (seed 3).

    Test samples of a tissue no training or validation donor gave are left out (a deep model refuses
    tissues it was not trained on; with 30 donors a rare tissue can be in the test split only).
    """
    seen = set(small_cohort.samples.loc[small_cohort.samples["split"] != "test", "tissue"])
    test = small_cohort.split("test")
    test = test.subset_samples(test.samples["tissue"].isin(seen).to_numpy())
    observed = mcar_mask(test.x.shape, 0.5, 0.5, seed=3)
    return MaskedTest(small_cohort.split("train"), small_cohort.split("valid"), test, mask_cohort(test, observed),
                      observed)


@pytest.fixture(scope="session")
def small_pmi(inductive: MaskedTest) -> PMIImputer:
    """PMI with :data:`SMALL_PMI`, fitted on the training donors (early stopping on the valid ones)."""
    return make_imputer("pmi", **SMALL_PMI).fit(inductive.train, inductive.valid)


@pytest.fixture(scope="session")
def reference_r2(inductive: MaskedTest) -> dict[str, float]:
    """R² of the per-tissue mean, KNN, MICE (:data:`FAST_MICE`) and the oracle on ``inductive``."""
    methods = {"mean": {}, "knn": {}, "mice": FAST_MICE, "oracle": {}}
    return {name: inductive.r2(make_imputer(name, **config).fit(inductive.train).impute(inductive.masked))
            for name, config in methods.items()}
