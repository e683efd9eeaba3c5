import re

import numpy as np
import pandas as pd
import pytest

from gtex_models.common.atomic import OutputPathError
from gtex_models.data.cohort import Cohort, assign_donor_split
from gtex_models.data.cohort_format import CohortFormatError
from gtex_models.data.reference import pathway_genes
from gtex_models.data.transform import Transform


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


def test_save_replaces_an_existing_cohort_only_with_overwrite(tmp_path, small_cohort):
    small_cohort.save(tmp_path / "c")
    smaller = small_cohort.subset_samples(np.arange(10))
    with pytest.raises(OutputPathError, match="already holds a cohort.*--overwrite"):
        smaller.save(tmp_path / "c")
    assert Cohort.load(tmp_path / "c").n_samples == small_cohort.n_samples
    smaller.save(tmp_path / "c", overwrite=True)
    assert Cohort.load(tmp_path / "c").n_samples == 10
    assert [p.name for p in tmp_path.iterdir()] == ["c"]  # no temporary or backup leftovers


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


def _break(directory, name: str, how):
    """Damage one file of a saved cohort folder."""
    path = directory / name
    if how == "delete":
        path.unlink()
    elif callable(how):
        how(path)
    else:
        path.write_bytes(how if isinstance(how, bytes) else how.encode())


def _drop_column(column: str):
    return lambda path: pd.read_csv(path, dtype=str).drop(columns=column).to_csv(path, index=False)


def _set_cell(column: str, value: str):
    def change(path):
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        table.loc[0, column] = value
        table.to_csv(path, index=False)
    return change


# file -> damage -> what the message must say (after "<folder>/<file>")
DAMAGED_COHORTS = {
    "json_not_json": ("cohort.json", "{scale: tpm", r"cohort\.json is not valid JSON"),
    "json_list": ("cohort.json", "[1, 2]", r"cohort\.json: \(the whole document\): should be a mapping"),
    "json_no_pseudocount": ("cohort.json", '{"format_version": 1, "scale": "tpm"}', r"cohort\.json: pseudocount: is required"),
    "json_scale": ("cohort.json", '{"format_version": 1, "scale": "ln", "pseudocount": 1}', r"cohort\.json: scale: Input should be 'tpm' or 'log'"),
    "json_pseudocount_text": ("cohort.json", '{"format_version": 1, "scale": "tpm", "pseudocount": "large"}',
                              r"cohort\.json: pseudocount: Input should be a valid number.*\(got 'large'\)"),
    "json_version_text": ("cohort.json", '{"format_version": "1", "scale": "tpm", "pseudocount": 1}',
                          r"cohort\.json: format_version: Input should be a valid integer"),
    "json_meta_list": ("cohort.json", '{"format_version": 1, "scale": "tpm", "pseudocount": 1, "meta": [1]}',
                       r"cohort\.json: meta: should be a mapping"),
    "expression_pickled": ("expression.npy", lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True),
                           r"expression\.npy holds pickled Python objects"),
    "expression_text": ("expression.npy", "1,2,3\n", r"expression\.npy is not a readable \.npy array"),
    "expression_1d": ("expression.npy", lambda p: np.save(p, np.zeros(5, dtype=np.float32)), r"expression\.npy is not a 2-D floating-point matrix"),
    "expression_shape": ("expression.npy", lambda p: np.save(p, np.zeros((3, 3), dtype=np.float32)),
                         r"its files do not fit together \(Matrix \(3, 3\) does not match 50 samples"),
    "transform_text": ("transform.npz", "mean,std\n", r"transform\.npz is not a readable \.npz archive"),
    "transform_no_std": ("transform.npz", lambda p: np.savez(p.with_suffix(""), mean=np.zeros(400, dtype=np.float32)),
                         r"transform\.npz lacks the array\(s\) \['std'\]"),
    "samples_no_split": ("samples.csv", _drop_column("split"), r"samples\.csv lacks the column\(s\) \['split'\]"),
    "samples_age_text": ("samples.csv", _set_cell("age", "old"), r"samples\.csv has age 'old' on line 2, not a number"),
    "samples_split_value": ("samples.csv", _set_cell("split", "training"), r"samples\.csv has split value\(s\) 'training'; allowed: train, valid, test"),
    "samples_sex_value": ("samples.csv", _set_cell("sex", "M"), r"samples\.csv has sex value\(s\) 'M'; allowed: female, male, unknown"),
    "genes_no_symbol": ("genes.csv", _drop_column("symbol"), r"genes\.csv lacks the column\(s\) \['symbol'\]"),
    "genes_missing": ("genes.csv", "delete", r"genes\.csv is missing"),
    "samples_missing": ("samples.csv", "delete", r"samples\.csv is missing"),
}


@pytest.mark.parametrize("case", list(DAMAGED_COHORTS))
def test_a_damaged_cohort_folder_names_the_file(case, tmp_path, small_cohort):
    small_cohort.subset_samples(np.arange(50)).save(tmp_path / "c")
    name, how, pattern = DAMAGED_COHORTS[case]
    _break(tmp_path / "c", name, how)
    with pytest.raises(CohortFormatError) as error:
        Cohort.load(tmp_path / "c")
    message = str(error.value)
    assert message.startswith(str(tmp_path / "c")), message
    assert re.search(pattern, message), message
    assert "write it again" in message or "Update the project" in message


def test_a_newer_cohort_format_says_so(tmp_path, small_cohort):
    small_cohort.subset_samples(np.arange(10)).save(tmp_path / "c")
    (tmp_path / "c" / "cohort.json").write_text('{"format_version": 9, "scale": "tpm", "pseudocount": 1}')
    with pytest.raises(CohortFormatError, match=r"cohort\.json has format_version 9; this version of the project reads up to 1"):
        Cohort.load(tmp_path / "c")


@pytest.mark.parametrize("donors, problem", [
    (1, r"no donor in the valid and test split\(s\) \(donors: train 1, valid 0, test 0\)"),
    (3, r"no donor in the valid split\(s\) \(donors: train 2, valid 0, test 1\)"),
])
def test_too_few_donors_to_train_and_evaluate(donors, problem, small_cohort):
    keep = small_cohort.samples["donor_id"].isin(sorted(small_cohort.samples["donor_id"].unique())[:donors])
    samples = small_cohort.samples.loc[keep].drop(columns="split")
    cohort = Cohort.from_raw(small_cohort.raw()[keep.to_numpy()], small_cohort.genes, samples)
    assert re.search(problem, "; ".join(cohort.size_problems()))
    with pytest.raises(ValueError, match=rf"is too small to train and evaluate a model: {problem}.*at least 4 donors"):
        cohort.require_trainable()


def test_four_donors_and_two_genes_are_enough(small_cohort):
    keep = small_cohort.samples["donor_id"].isin(sorted(small_cohort.samples["donor_id"].unique())[:4]).to_numpy()
    cohort = small_cohort.subset_samples(keep).subset_genes([0, 1])
    cohort.samples["split"] = Cohort.from_raw(cohort.raw(), cohort.genes, cohort.samples.drop(columns="split")).samples["split"]
    assert cohort.size_problems() == []
    assert "1 gene(s), at least 2" in cohort.subset_genes([0]).size_problems()[0]
