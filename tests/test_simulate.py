import numpy as np
import pandas as pd

from gtex_models.analysis.evaluation import r2_per_gene, summarize
from gtex_models.data.masks import mcar_mask
from gtex_models.data.patterns import mask_cohort
from gtex_models.data.reference import pathway_genes, tissues
from gtex_models.data.simulate import simulate_cohort
from gtex_models.models.oracle import OracleImputer


def test_simulation_is_deterministic_from_its_seed():
    a = simulate_cohort(n_donors=8, n_genes=400, seed=5)
    b = simulate_cohort(n_donors=8, n_genes=400, seed=5)
    c = simulate_cohort(n_donors=8, n_genes=400, seed=6)
    np.testing.assert_array_equal(a.x, b.x)
    pd.testing.assert_frame_equal(a.samples, b.samples)
    assert not np.array_equal(a.x[:5], c.x[:5])


def test_simulated_cohort_is_gtex_shaped(small_cohort):
    assert set(small_cohort.tissues) <= set(tissues()["smtsd"])
    assert len(small_cohort.tissues) >= 40
    assert small_cohort.samples.groupby("donor_id").size().median() > 5  # donors give several tissues
    symbols = set(small_cohort.genes["symbol"])
    assert set(pathway_genes("alzheimer")) <= symbols and set(pathway_genes("p53")) <= symbols
    assert small_cohort.genes["ensembl_gene_id"].str.match(r"^ENSG\d{11}$").all()
    sex_of_ovary = small_cohort.samples.loc[small_cohort.samples["tissue"] == "Ovary", "sex"]
    assert (sex_of_ovary == "female").all()
    assert small_cohort.meta["source"] == "simulated"


def test_default_demo_size():
    cohort = simulate_cohort()
    assert 5500 <= cohort.n_samples <= 6500 and cohort.n_genes == 2000 and cohort.n_donors == 300


def test_sex_effect_on_chromosome_y_genes(small_cohort):
    y_gene = small_cohort.genes["symbol"].eq("RPS4Y1").to_numpy()
    male = small_cohort.samples["sex"].eq("male").to_numpy()
    values = small_cohort.x[:, y_gene][:, 0]
    assert values[male].mean() > values[~male].mean() + 1.0


def _per_tissue_mean_imputation(train, masked):
    means = pd.DataFrame(train.x).groupby(train.samples["tissue"].to_numpy()).mean()
    return means.reindex(masked.samples["tissue"]).to_numpy()


def test_oracle_beats_per_tissue_mean_at_half_missing(small_cohort):
    test = small_cohort.split("test")
    observed = mcar_mask(test.x.shape, 0.5, 0.5, seed=0)
    masked = mask_cohort(test, observed)
    oracle = OracleImputer().fit(small_cohort).impute(masked)
    mean = np.where(observed, test.x, _per_tissue_mean_imputation(small_cohort.split("train"), masked))
    r2_oracle = summarize(r2_per_gene(test.x, oracle, observed))["r2_mean"]
    r2_mean = summarize(r2_per_gene(test.x, mean, observed))["r2_mean"]
    assert r2_oracle > r2_mean + 0.3
    np.testing.assert_array_equal(oracle[observed], test.x[observed])


def test_oracle_works_on_a_gene_subset_and_refuses_real_data(small_cohort):
    subset = small_cohort.pathway("p53").split("test")
    observed = mcar_mask(subset.x.shape, 0.5, 0.5, seed=0)
    masked = mask_cohort(subset, observed)
    imputed = OracleImputer().fit(small_cohort).impute(masked)
    train = small_cohort.pathway("p53").split("train")
    mean = np.where(observed, subset.x, _per_tissue_mean_imputation(train, masked))
    r2_oracle = summarize(r2_per_gene(subset.x, imputed, observed))["r2_mean"]
    assert r2_oracle > summarize(r2_per_gene(subset.x, mean, observed))["r2_mean"] + 0.1
    real = small_cohort.subset_samples(np.arange(3))
    real.meta = {"source": "gtex_v8"}
    try:
        OracleImputer().fit(real)
    except ValueError as error:
        assert "only works on simulated cohorts" in str(error)
    else:
        raise AssertionError("the oracle accepted a non-simulated cohort")
