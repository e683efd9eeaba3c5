"""Checkpoints: exact round trips, float16 storage, clear errors for foreign, truncated or mismatched files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import safetensors.numpy

from gtex_models.data.cohort import Cohort
from gtex_models.data.masks import mcar_mask
from gtex_models.data.patterns import mask_cohort
from gtex_models.models.base import Imputer
from gtex_models.models.checkpoints import (
    CheckpointError,
    IncompatibleCohortError,
    check_compatible,
    load_checkpoint,
    save_checkpoint,
)
from gtex_models.models.registry import make_imputer

TINY = {"hidden_sizes": [64], "batch_size": 64, "lr": 3e-3, "max_epochs": 3, "seed": 0}


@pytest.fixture(scope="module")
def masked(small_cohort: Cohort) -> Cohort:
    test = small_cohort.split("test")
    return mask_cohort(test, mcar_mask(test.x.shape, 0.5, 0.5, seed=7))


@pytest.fixture(scope="module", params=["pmi", "gain"])
def fitted(request: pytest.FixtureRequest, small_cohort: Cohort) -> Imputer:
    return make_imputer(request.param, **TINY).fit(small_cohort.split("train"), small_cohort.split("valid"))


def test_round_trip_gives_identical_imputations_and_metadata(
    fitted: Imputer, small_cohort: Cohort, masked: Cohort, tmp_path: Path
) -> None:
    path = save_checkpoint(fitted, tmp_path / "model.safetensors",
                           {"transform": small_cohort.transform, "evaluation": {"r2_mean": np.float64(0.5)},
                            "scenario": "inductive"})
    loaded, metadata = load_checkpoint(path)
    assert type(loaded) is type(fitted) and loaded.method == fitted.method
    np.testing.assert_array_equal(loaded.impute(masked), fitted.impute(masked))
    assert metadata["method"] == fitted.method and metadata["dtype"] == "float32"
    pd.testing.assert_frame_equal(metadata["genes"], small_cohort.genes[["ensembl_gene_id", "symbol"]])
    assert metadata["tissues"] == list(fitted.tissues)
    np.testing.assert_array_equal(metadata["transform"].mean, small_cohort.transform.mean)
    assert metadata["history"]["epochs"] == fitted.history["epochs"]
    assert metadata["evaluation"] == {"r2_mean": 0.5} and metadata["scenario"] == "inductive"
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left nothing behind


def test_float16_storage_is_close_and_smaller(fitted: Imputer, masked: Cohort, tmp_path: Path) -> None:
    full = save_checkpoint(fitted, tmp_path / "full.safetensors")
    half = save_checkpoint(fitted, tmp_path / "half.safetensors", dtype="float16")
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, metadata = load_checkpoint(half)
    assert metadata["dtype"] == "float16"
    np.testing.assert_allclose(loaded.impute(masked), fitted.impute(masked), atol=0.05)


def test_any_imputer_round_trips(small_cohort: Cohort, masked: Cohort, tmp_path: Path) -> None:
    mean = make_imputer("mean").fit(small_cohort.split("train"))
    path = save_checkpoint(mean, tmp_path / "mean.safetensors", {"genes": small_cohort.genes})
    loaded, metadata = load_checkpoint(path)
    np.testing.assert_array_equal(loaded.impute(masked), mean.impute(masked))
    assert len(metadata["genes"]) == small_cohort.n_genes


def test_mismatched_genes_are_named(fitted: Imputer, small_cohort: Cohort, masked: Cohort, tmp_path: Path) -> None:
    _, metadata = load_checkpoint(save_checkpoint(fitted, tmp_path / "m.safetensors"))
    fewer = masked.subset_genes(np.arange(10, masked.n_genes))
    dropped = ", ".join(small_cohort.genes["symbol"][:5])
    for source in (metadata, fitted):
        expected = f"of which 390 match.*Missing from the cohort: {dropped} and 5 more"
        with pytest.raises(IncompatibleCohortError, match=expected):
            check_compatible(source, fewer)
    with pytest.raises(IncompatibleCohortError, match="trained on 400 genes"):
        fitted.impute(fewer)
    check_compatible(metadata, masked)  # the right genes, in any order, pass
    check_compatible(metadata, masked.subset_genes(np.arange(masked.n_genes)[::-1]))


def test_unknown_tissues_get_suggestions(fitted: Imputer, masked: Cohort) -> None:
    samples = masked.samples.copy()
    samples.loc[:, "tissue"] = "Whole Blod"
    wrong = Cohort(masked.x, masked.genes, samples, masked.transform)
    with pytest.raises(IncompatibleCohortError, match="1 tissue.*'Whole Blod' \\(did you mean 'Whole Blood'"):
        check_compatible(fitted, wrong)


def test_truncated_file(fitted: Imputer, tmp_path: Path) -> None:
    data = save_checkpoint(fitted, tmp_path / "model.safetensors").read_bytes()
    for cut in (len(data) - 100, 200):
        (tmp_path / "cut.safetensors").write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated"):
            load_checkpoint(tmp_path / "cut.safetensors")


@pytest.mark.parametrize("content", [b"", b"hello world, not a model", b"\x89PNG\r\n\x1a\n" + bytes(100)])
def test_foreign_files(content: bytes, tmp_path: Path) -> None:
    (tmp_path / "foreign.safetensors").write_bytes(content)
    with pytest.raises(CheckpointError, match="not a GTEx Imputation Studio checkpoint"):
        load_checkpoint(tmp_path / "foreign.safetensors")


def test_someone_elses_safetensors_file(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    path.write_bytes(safetensors.numpy.save({"w": np.zeros(3, dtype=np.float32)}, metadata={"format": "pt"}))
    with pytest.raises(CheckpointError, match="without our metadata"):
        load_checkpoint(path)


class _Nonsense(Imputer):
    method = "nonsense"

    def fit(self, cohort: Cohort, valid: Cohort | None = None, progress: Any = None) -> "_Nonsense":
        return self

    def _predict(self, cohort: Cohort) -> np.ndarray:
        return np.zeros_like(cohort.x)

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> "_Nonsense":
        return cls()


def test_unknown_method(tmp_path: Path) -> None:
    path = save_checkpoint(_Nonsense(), tmp_path / "nonsense.safetensors")
    with pytest.raises(CheckpointError, match=r"nonsense\.safetensors, metadata: method: Input should be 'pmi'.*\(got 'nonsense'\)"):
        load_checkpoint(path)


def test_bad_arguments_write_nothing(fitted: Imputer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(fitted, tmp_path / "a.safetensors", {"method": "x"})
    with pytest.raises(ValueError, match="dtype"):
        save_checkpoint(fitted, tmp_path / "a.safetensors", dtype="int8")
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        save_checkpoint(fitted, tmp_path / "a.safetensors", {"thing": object()})
    assert list(tmp_path.iterdir()) == []


def test_header_is_plain_json(fitted: Imputer, tmp_path: Path) -> None:
    data = save_checkpoint(fitted, tmp_path / "m.safetensors").read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(json.loads(data[8:8 + size])["__metadata__"]["gtex_imputation"])
    assert header["format_version"] == 1 and header["config"]["params"]["hidden_sizes"] == [64]
