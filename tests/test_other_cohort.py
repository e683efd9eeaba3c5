"""Another cohort: gene alignment, group map, scale harmonisation, the shift transform, the comparison table."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gtex_models.analysis.evaluation import r2_across_missing_rates, reference_values
from gtex_models.analysis.other_cohort import (
    MIN_COHORT_SAMPLES,
    align_cohort,
    compare_cohorts,
    harmonise,
    read_group_map,
    read_group_map_upload,
    shift_cohort,
    shifted_test_donors,
)
from gtex_models.common.choices import ALL_TISSUES
from gtex_models.data.cohort import Cohort
from gtex_models.data.simulate import simulate_cohort
from gtex_models.models.model_space import ModelSpace
from gtex_models.models.registry import make_imputer
from tests.test_patterns import symbols_only_cohort


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    cohort = simulate_cohort(n_donors=30, n_genes=400, seed=3)
    return cohort.subset_samples(cohort.samples["tissue"].isin(cohort.split("train").tissues).to_numpy())


@pytest.fixture(scope="module")
def space(cohort: Cohort) -> ModelSpace:
    return ModelSpace(cohort.genes, tuple(cohort.split("train").tissues), cohort.transform)


def test_shift_changes_scale_drops_genes_and_keeps_samples(cohort: Cohort) -> None:
    test = cohort.split("test")
    shifted = shift_cohort(test, offset_sd=1.0, drop_share=0.1, seed=0)
    assert shifted.n_genes == 360 and shifted.n_samples == test.n_samples
    assert (shifted.samples["split"] == "test").all() and shifted.meta["shift"]["offset_sd"] == 1.0
    kept = test.genes["symbol"].isin(shifted.genes["symbol"]).to_numpy()
    offsets = shifted.transform.mean - (test.x[:, kept] * test.transform.std[kept] + test.transform.mean[kept]).mean(0)
    assert 0.7 < offsets.std() < 1.3  # per-gene offsets of SD 1


def test_alignment_reports_genes_and_leaves_absent_ones_unobserved(cohort: Cohort, space: ModelSpace) -> None:
    aligned = align_cohort(shift_cohort(cohort.split("test"), seed=0), space)
    assert aligned.report[0].startswith("genes: 360 of the model's 400 in the cohort (360 by Ensembl ID, 0 by symbol)")
    absent = np.isnan(aligned.log).all(axis=0)
    assert absent.sum() == 40 and not np.isnan(aligned.log[:, ~absent]).any()


def test_harmonisations(cohort: Cohort, space: ModelSpace) -> None:
    aligned = align_cohort(shift_cohort(cohort.split("test"), seed=0), space)
    present = ~np.isnan(aligned.log).all(axis=0)
    own = harmonise(aligned, space, "own").x[:, present]
    np.testing.assert_allclose(own.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(own.std(axis=0), 1.0, atol=1e-3)
    training = harmonise(aligned, space, "training").x[:, present]
    expected = (aligned.log[:, present] - space.transform.mean[present]) / space.transform.std[present]
    np.testing.assert_allclose(training, expected, rtol=1e-5, atol=1e-5)
    quantile = harmonise(aligned, space, "quantile")
    log = quantile.x[3, present] * space.transform.std[present] + space.transform.mean[present]
    np.testing.assert_allclose(np.sort(log), np.sort(space.transform.mean[present]), atol=1e-4)
    order = np.argsort(aligned.log[3, present], kind="stable")
    assert (np.diff(log[order]) >= 0).all()  # ranks kept (ties: undetected genes stay 0 on the platform)
    with pytest.raises(ValueError, match="harmonisation"):
        harmonise(aligned, space, "zscore")


def test_the_unshifted_test_donors_score_like_the_models_own(cohort: Cohort, space: ModelSpace) -> None:
    """The model's own test donors are scored against their groups' training means (the group-mean imputer
    scores 0); the same donors as another cohort, without training donors on their platform, against their own
    group means: the same numbers as the own donors scored against those."""
    mean = make_imputer("mean").fit(cohort.split("train"))
    result = compare_cohorts(mean, space, cohort.split("test"), None, ("training",), (0.3, 0.7), own=cohort)
    rows = result.table.set_index("cohort")
    np.testing.assert_allclose(rows.loc["own test donors", ["0.3", "0.7"]].to_numpy(dtype=float), 0.0, atol=1e-4)
    test = cohort.split("test")
    expected = r2_across_missing_rates(mean.impute, test, (0.3, 0.7), reference=reference_values(test, test))
    np.testing.assert_allclose(rows.loc["other cohort", ["0.3", "0.7"]].to_numpy(dtype=float),
                               expected.loc[expected["tissue"] == ALL_TISSUES, "r2_mean"], atol=1e-6)


def test_own_statistics_undo_a_platform_offset(cohort: Cohort, space: ModelSpace) -> None:
    oracle = make_imputer("oracle").fit(cohort.split("train"))
    shifted = shift_cohort(cohort.split("test"), offset_sd=1.0, scale_sd=0.0, noise_sd=0.0, drop_share=0.0, seed=1)
    result = compare_cohorts(oracle, space, shifted, None, ("own", "training"), (0.5,), own=cohort, min_hidden=1)
    r2 = result.table[result.table["cohort"] == "other cohort"].set_index("harmonisation")["0.5"]
    assert r2["own"] > r2["training"] + 0.2
    test = cohort.split("test")  # near the model's own test donors, against the same kind of reference
    own = r2_across_missing_rates(oracle.impute, test, (0.5,), min_hidden=1, reference=reference_values(test, test))
    assert abs(r2["own"] - own.loc[own["tissue"] == ALL_TISSUES, "r2_mean"].item()) < 0.15  # measured 0.29, 0.37


def test_group_map_file(tmp_path, cohort: Cohort, space: ModelSpace) -> None:
    (tmp_path / "map.csv").write_text("group,tissue\n# cancer to tissue\nLAML,Whole Blood\nBRCA,Breast - Mammary Tissue\n")
    assert read_group_map(tmp_path / "map.csv") == {"LAML": "Whole Blood", "BRCA": "Breast - Mammary Tissue"}
    (tmp_path / "bad.csv").write_text("LAML\n")
    with pytest.raises(ValueError, match="line 1: expected two columns"):
        read_group_map(tmp_path / "bad.csv")
    test = cohort.split("test")
    renamed = Cohort(test.x, test.genes, test.samples.assign(tissue="LAML"), test.transform, test.meta)
    aligned = align_cohort(renamed, space, {"LAML": "Whole Blood"})
    assert set(aligned.samples["tissue"]) == {"Whole Blood"} and "LAML -> Whole Blood" in aligned.report[1]
    with pytest.raises(ValueError, match="map them with a group map .*CLI: --group-map FILE"):
        align_cohort(renamed, space)


def test_an_uploaded_group_map_reads_like_the_file_and_names_the_upload() -> None:
    data = "group\ttissue\nLAML\tWhole Blood\n".encode("utf-8-sig")
    assert read_group_map_upload(data, "map.tsv") == {"LAML": "Whole Blood"}
    with pytest.raises(ValueError, match=r"^map\.csv, line 2: expected two columns"):
        read_group_map_upload(b"LAML,Whole Blood\nBRCA\n", "map.csv")
    with pytest.raises(ValueError, match="map.bin is not a text file"):
        read_group_map_upload(b"\xff\xfe\x00\x81", "map.bin")
    with pytest.raises(ValueError, match="maps no group"):
        read_group_map_upload(b"# nothing\n", "empty.csv")


def test_shifted_test_donors_of_some_tissues(cohort: Cohort) -> None:
    tissue = cohort.split("test").tissues[0]
    shifted = shifted_test_donors(cohort, [tissue])
    test = cohort.split("test")
    assert shifted.n_samples == int((test.samples["tissue"] == tissue).sum())
    assert set(shifted.samples["tissue"]) == {tissue} and "shift" in shifted.meta
    with pytest.raises(ValueError, match="no test donor"):
        shifted_test_donors(cohort, ["Nowhere"])


def test_too_few_samples_are_refused(cohort: Cohort, space: ModelSpace) -> None:
    test = cohort.split("test")
    few = test.subset_samples(np.arange(test.n_samples) < MIN_COHORT_SAMPLES - 1)
    with pytest.raises(ValueError, match=f"at least {MIN_COHORT_SAMPLES} are needed"):
        compare_cohorts(make_imputer("mean").fit(cohort.split("train")), space, few)

def test_a_symbols_only_cohort_against_another_one() -> None:
    own = symbols_only_cohort(n_groups=2, seed=4)
    space = ModelSpace(own.genes, tuple(own.split("train").tissues), own.transform)
    other = shift_cohort(own.split("test"), seed=2).subset_genes(np.arange(0, 50))
    knn = make_imputer("knn").fit(own.split("train"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = compare_cohorts(knn, space, other, None, ("own", "training", "quantile"), (0.2, 0.8), own=own,
                                 min_hidden=1)
    assert "by symbol" in result.report and len(result.table) == 4
    long = result.long_table()
    assert list(long.columns[:3]) == ["cohort", "missing_rate", "tissue"] and list(long["cohort"].unique()) == \
        list(result.tables)
    assert result.table[["0.2", "0.8"]].notna().all().all()
