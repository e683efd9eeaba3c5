"""ARCHS4 import: a small file written here in ARCHS4's layout, streamed into an on-disk store."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from gtex_models.data.readers.archs4 import import_archs4
from gtex_models.data.readers.errors import InputError
from gtex_models.data.reference import protein_coding_genes
from gtex_models.interfaces.cli.main import main

N_SERIES, PER_SERIES = 8, 9


def write_archs4(path: Path, ensembl: bool = True) -> dict:
    """genes x samples counts with ARCHS4's meta/genes and meta/samples fields (strings as bytes)."""
    reference = protein_coding_genes().iloc[:120]
    symbols = reference["symbol"].tolist() + ["MIR21", reference["symbol"].iloc[0], "LINC00001"]
    ids = reference["ensembl_gene_id"].tolist() + ["ENSG00000284190", reference["ensembl_gene_id"].iloc[0],
                                                   "ENSG00000000001"]
    n_samples = N_SERIES * PER_SERIES
    rng = np.random.default_rng(0)
    counts = rng.poisson(rng.gamma(2.0, 50.0, size=(len(symbols), 1)), size=(len(symbols), n_samples))
    tissue = ["liver" if i % 3 else "whole blood" for i in range(n_samples)]
    series = [f"GSE{1000 + i // PER_SERIES}" for i in range(n_samples)]
    characteristics = [f"tissue: {t},Sex: {'male' if i % 2 else 'F'},age: {20 + i}" for i, t in enumerate(tissue)]
    single_cell = np.where(np.arange(n_samples) % 10 == 7, 0.9, 0.1)
    with h5py.File(path, "w") as f:
        f.create_dataset("data/expression", data=counts.astype(np.uint32), chunks=(len(symbols), 4),
                         compression="gzip")
        f.create_dataset("meta/genes/symbol" if ensembl else "meta/genes/gene_symbol",
                         data=np.asarray(symbols, dtype="S"))
        if ensembl:
            f.create_dataset("meta/genes/ensembl_gene", data=np.asarray(ids, dtype="S"))
        samples = f.create_group("meta/samples")
        samples["geo_accession"] = np.asarray([f"GSM{5000 + i}" for i in range(n_samples)], dtype="S")
        samples["series_id"] = np.asarray(series, dtype="S")
        samples["source_name_ch1"] = np.asarray(tissue, dtype="S")
        samples["characteristics_ch1"] = np.asarray(characteristics, dtype="S")
        samples["title"] = np.asarray([f"sample {i}" for i in range(n_samples)], dtype="S")
        samples["singlecellprobability"] = single_cell
    return {"counts": counts, "tissue": tissue, "series": series, "single_cell": single_cell, "symbols": symbols}


@pytest.fixture()
def archs4_file(tmp_path: Path) -> tuple[Path, dict]:
    path = tmp_path / "human_gene_small.h5"
    return path, write_archs4(path)


def test_query_streams_the_matching_samples_as_log_cpm(archs4_file, tmp_path: Path) -> None:
    path, truth = archs4_file
    cohort = import_archs4(path, tmp_path / "store", samples_query="LIVER")
    expected = [f"GSM{5000 + i}" for i, t in enumerate(truth["tissue"])
                if t == "liver" and truth["single_cell"][i] < 0.5]
    assert cohort.stored and sorted(cohort.samples["sample_id"].astype(str)) == sorted(expected)
    assert set(cohort.samples["tissue"].astype(str)) == {"liver"}
    # the reference's 120 protein-coding genes, each once (non-coding and the repeated row left out)
    assert cohort.n_genes == 120 and cohort.genes["ensembl_gene_id"].is_unique
    # log2(CPM + 1), CPM over the sample's total of all genes, for one sample checked by hand
    sample = cohort.samples["sample_id"].astype(str).tolist().index(expected[0])
    column = int(expected[0][3:]) - 5000
    cpm = truth["counts"][:120, column] / truth["counts"][:, column].sum() * 1e6
    stored = np.asarray(cohort.x.log_values()[[sample]])[0]
    np.testing.assert_allclose(stored, np.log2(cpm + 1), rtol=1e-5)


def test_series_are_donors_and_characteristics_give_sex_and_age(archs4_file, tmp_path: Path) -> None:
    path, _ = archs4_file
    samples = import_archs4(path, tmp_path / "store").samples
    assert samples.groupby("donor_id", observed=True)["split"].nunique().max() == 1
    assert set(samples["donor_id"].astype(str)) <= {f"GSE{1000 + i}" for i in range(N_SERIES)}
    first = samples.set_index(samples["sample_id"].astype(str)).loc["GSM5001"]
    assert first["sex"] == "male" and first["age"] == 21
    assert samples.set_index(samples["sample_id"].astype(str)).loc["GSM5002", "sex"] == "female"
    # train, valid and test each in one run of rows
    runs = (samples["split"].astype(str) != samples["split"].astype(str).shift()).sum()
    assert runs == samples["split"].nunique()


def test_sample_list_and_symbols_only_file(tmp_path: Path) -> None:
    path = tmp_path / "old_layout.h5"
    write_archs4(path, ensembl=False)
    cohort = import_archs4(path, tmp_path / "store", sample_list=["GSM5003", "GSM5010", "GSM9999"])
    assert sorted(cohort.samples["sample_id"].astype(str)) == ["GSM5003", "GSM5010"]
    assert cohort.n_genes == 120


def test_bad_requests_say_what_to_change(archs4_file, tmp_path: Path) -> None:
    path, _ = archs4_file
    with pytest.raises(InputError, match="no sample field 'organ'.*source_name_ch1"):
        import_archs4(path, tmp_path / "a", tissue_column="organ")
    with pytest.raises(InputError, match="No sample .* matches"):
        import_archs4(path, tmp_path / "b", samples_query="kidney")
    with pytest.raises(InputError, match="None of the 1 listed samples"):
        import_archs4(path, tmp_path / "c", sample_list=["GSM1"])
    text = tmp_path / "not.h5"
    text.write_text("gene,sample\n")
    with pytest.raises(InputError, match="not an HDF5 file"):
        import_archs4(text, tmp_path / "d")
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_cli_import_archs4(archs4_file, tmp_path: Path, capsys) -> None:
    path, _ = archs4_file
    listing = tmp_path / "gsm.txt"
    listing.write_text("GSM5001\nGSM5004\n")
    assert main(["import", "--archs4", str(path), "--sample-list", str(listing), "--out", str(tmp_path / "s")]) == 0
    assert "on-disk store: 2 samples x 120 genes" in capsys.readouterr().out
    assert main(["import", "--archs4", str(path), "--samples-query", "(", "--out", str(tmp_path / "t")]) == 2
    assert "not a valid regular expression" in capsys.readouterr().err
