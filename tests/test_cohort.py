import numpy as np
import pandas as pd
import pytest

from gtex_models.cohort import Cohort, Transform, assign_donor_split
from gtex_models.reference import pathway_genes


def test_save_load_round_trip_is_exact(tmp_path, small_cohort):
    cohort = small_cohort.subset_samples(np.arange(50))
    cohort.x[0, :3] = np.nan  # missing values survive the round trip
    cohort.samples.loc[1, "age"] = np.nan
    cohort.save(tmp_path / "c")
    loaded = Cohort.load(tmp_path / "c")
    np.testing.assert_array_equal(loaded.x, cohort.x)
    pd.testing.assert_frame_equal(loaded.samples, cohort.samples)
    pd.testing.assert_frame_equal(loaded.genes, cohort.genes)
    np.testing.assert_array_equal(loaded.transform.mean, cohort.transform.mean)
    np.testing.assert_array_equal(loaded.transform.std, cohort.transform.std)
    assert loaded.transform.scale == cohort.transform.scale
    assert loaded.meta == cohort.meta


def test_save_replaces_existing_directory_atomically(tmp_path, small_cohort):
    small_cohort.save(tmp_path / "c")
    smaller = small_cohort.subset_samples(np.arange(10))
    smaller.save(tmp_path / "c")
    assert Cohort.load(tmp_path / "c").n_samples == 10
    assert [p.name for p in tmp_path.iterdir()] == ["c"]  # no temporary leftovers


def test_load_of_a_non_cohort_directory_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="simulate"):
        Cohort.load(tmp_path)


def test_donor_split_is_disjoint_seeded_and_close_to_fractions():
    donors = [f"D{i // 7}" for i in range(7 * 200)]  # 200 donors with 7 samples each
    split = assign_donor_split(donors, seed=3)
    table = pd.DataFrame({"donor": donors, "split": split})
    assert (table.groupby("donor")["split"].nunique() == 1).all()
    per_split = table.drop_duplicates("donor")["split"].value_counts()
    assert per_split.to_dict() == {"train": 120, "test": 50, "valid": 30}
    np.testing.assert_array_equal(split, assign_donor_split(donors, seed=3))
    assert not np.array_equal(split, assign_donor_split(donors, seed=4))


def test_split_fractions_are_validated():
    with pytest.raises(ValueError, match="summing to 1"):
        assign_donor_split(["a", "b"], fractions=(0.5, 0.5, 0.5))


def test_cohort_splits_share_no_donor(small_cohort):
    donors = {name: set(small_cohort.split(name).samples["donor_id"]) for name in ("train", "valid", "test")}
    assert not donors["train"] & donors["valid"]
    assert not donors["train"] & donors["test"]
    assert not donors["valid"] & donors["test"]
    assert sum(small_cohort.split(n).n_samples for n in donors) == small_cohort.n_samples


def test_transform_fitted_on_training_donors_only():
    raw = np.array([[1.0, 3.0], [3.0, 7.0], [1000.0, 1000.0]], dtype=np.float32)
    samples = pd.DataFrame({"sample_id": ["a", "b", "c"], "donor_id": ["d1", "d2", "d3"],
                            "tissue": "Lung", "sex": "unknown", "age": np.nan,
                            "split": ["train", "train", "test"]})
    genes = pd.DataFrame({"ensembl_gene_id": ["E1", "E2"], "symbol": ["A", "B"]})
    cohort = Cohort.from_raw(raw, genes, samples, scale="tpm")
    np.testing.assert_allclose(cohort.transform.mean, [(1 + 2) / 2, (2 + 3) / 2])  # log2(raw + 1)
    np.testing.assert_allclose(cohort.x[:2].mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(cohort.raw(), raw, rtol=1e-5)


def test_transform_handles_constant_genes_and_log_scale():
    raw = np.array([[2.0, 5.0], [2.0, 7.0]], dtype=np.float32)
    transform = Transform.fit(raw, scale="log")
    x = transform.forward(raw)
    assert np.isfinite(x).all()
    np.testing.assert_allclose(x[:, 0], 0.0)
    np.testing.assert_allclose(transform.inverse(x), raw)
    assert Transform.from_dict(transform.to_dict()).to_dict() == transform.to_dict()


def test_pathway_subsets_keep_every_pathway_gene(small_cohort):
    alzheimer = small_cohort.pathway("alzheimer")
    assert set(alzheimer.genes["symbol"]) == set(pathway_genes("alzheimer"))
    assert alzheimer.n_genes == len(set(pathway_genes("alzheimer")))
    assert alzheimer.transform.mean.shape == (alzheimer.n_genes,)
    with pytest.raises(ValueError, match="None of the requested"):
        small_cohort.select_genes(["NOT_A_GENE"])
