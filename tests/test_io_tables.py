"""Generic import: CSV, TSV, GCT and h5ad in both orientations; gene mapping; sample tables."""

import gzip

import numpy as np
import pandas as pd
import pytest
import scipy.sparse

from gtex_models.data.readers import import_table, map_features, read_expression, read_samples_table

SYMBOLS = ["TP53", "GAPDH", "ACTB"]
ENSEMBL = ["ENSG00000141510", "ENSG00000111640", "ENSG00000075624"]
SAMPLES = ["S1", "S2", "S3", "S4"]
# samples x genes
VALUES = np.array([[1.5, 20.0, 300.0], [2.5, 21.0, 301.0], [3.5, 22.0, 302.0], [4.5, 23.0, 303.0]],
                  dtype=np.float32)


def write_table(path, row_ids, column_ids, matrix, delimiter=",", corner="id", newline="\n", bom=False):
    lines = [delimiter.join([corner, *column_ids])]
    lines += [delimiter.join([r, *(f"{v:g}" for v in row)]) for r, row in zip(row_ids, matrix)]
    text = ("\ufeff" if bom else "") + newline.join(lines) + newline
    path.write_bytes(text.encode())
    return path


def test_csv_samples_by_genes_with_symbols(tmp_path):
    path = write_table(tmp_path / "x.csv", SAMPLES, SYMBOLS, VALUES)
    table = read_expression(path)
    assert table.orientation == "samples-by-genes"
    assert table.sample_ids == SAMPLES and table.feature_ids == SYMBOLS
    assert table.values.dtype == np.float32
    np.testing.assert_array_equal(table.values, VALUES)


def test_tsv_genes_by_samples_with_versioned_ensembl_ids(tmp_path):
    ids = [f"{g}.7" for g in ENSEMBL]
    path = write_table(tmp_path / "x.tsv", ids, SAMPLES, VALUES.T, delimiter="\t", corner="gene_id")
    table = read_expression(path)
    assert table.orientation == "genes-by-samples"
    assert table.sample_ids == SAMPLES and table.feature_ids == ids
    np.testing.assert_array_equal(table.values, VALUES)
    assert table.values.flags["C_CONTIGUOUS"]


def test_bom_and_windows_line_endings_simply_work(tmp_path):
    path = write_table(tmp_path / "x.csv", SAMPLES, SYMBOLS, VALUES, newline="\r\n", bom=True,
                       corner="sample")
    table = read_expression(path)
    assert table.sample_ids == SAMPLES and table.feature_ids == SYMBOLS
    np.testing.assert_array_equal(table.values, VALUES)


def test_missing_tokens_become_nan(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("gene,S1,S2,S3,S4,S5,S6,S7\nTP53,1,,NA,NaN,n/a,-,?\nGAPDH,2,3,4,5,6,7,na\n")
    table = read_expression(path)
    assert table.orientation == "genes-by-samples"
    np.testing.assert_array_equal(np.isnan(table.values[:, 0]), [False, True, True, True, True, True, True])
    assert np.isnan(table.values[6, 1]) and table.values[5, 1] == 7


def test_semicolons_quotes_and_r_style_header(tmp_path):
    path = tmp_path / "x.csv"  # R's write.table: quoted names, no corner cell in the header
    path.write_text('"S1";"S2"\n"TP53";1;2\n"GAPDH";3;4\n')
    table = read_expression(path)
    assert table.feature_ids == ["TP53", "GAPDH"] and table.sample_ids == ["S1", "S2"]
    np.testing.assert_array_equal(table.values, [[1, 3], [2, 4]])
    assert any("write.table" in w for w in table.warnings)


def test_explicit_orientation_for_identifiers_that_look_like_nothing(tmp_path):
    path = write_table(tmp_path / "x.csv", ["g1", "g2", "g3"], SAMPLES, VALUES.T)
    table = read_expression(path, orientation="genes-by-samples")
    assert table.feature_ids == ["g1", "g2", "g3"]
    np.testing.assert_array_equal(table.values, VALUES)
    table = read_expression(path, orientation="samples-by-genes")
    assert table.sample_ids == ["g1", "g2", "g3"] and table.values.shape == (3, 4)


def _gct_text():
    lines = ["#1.2", f"{len(SYMBOLS)}\t{len(SAMPLES)}", "\t".join(["Name", "Description", *SAMPLES])]
    lines += ["\t".join([f"{e}.3", s, *(f"{v:g}" for v in VALUES[:, g])])
              for g, (e, s) in enumerate(zip(ENSEMBL, SYMBOLS))]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("gz", [False, True])
def test_gct_plain_and_gzipped(tmp_path, gz):
    path = tmp_path / "x.gct"
    if gz:
        path.write_bytes(gzip.compress(_gct_text().encode()))  # gzip found by magic bytes, not the name
    else:
        path.write_text(_gct_text())
    table = read_expression(path)
    assert table.orientation == "genes-by-samples"
    assert table.feature_ids == [f"{e}.3" for e in ENSEMBL] and table.sample_ids == SAMPLES
    np.testing.assert_array_equal(table.values, VALUES)


@pytest.mark.parametrize("sparse", [False, True])
def test_h5ad_dense_and_sparse(tmp_path, sparse):
    import anndata

    x = scipy.sparse.csr_matrix(VALUES) if sparse else VALUES
    adata = anndata.AnnData(X=x, obs=pd.DataFrame(index=SAMPLES), var=pd.DataFrame(index=SYMBOLS))
    adata.write_h5ad(tmp_path / "x.h5ad")
    table = read_expression(tmp_path / "x.h5ad")
    assert table.orientation == "samples-by-genes"
    assert table.sample_ids == SAMPLES and table.feature_ids == SYMBOLS
    np.testing.assert_array_equal(table.values, VALUES)


def test_map_features_resolves_symbols_and_versioned_ensembl_ids():
    genes, warnings = map_features(["TP53", "ENSG00000111640.14", "ENSG00000075624"])
    assert genes["ensembl_gene_id"].tolist() == ENSEMBL
    assert genes["symbol"].tolist() == SYMBOLS
    assert warnings == []


def test_map_features_keeps_probe_ids_and_non_coding_genes_with_a_warning():
    genes, warnings = map_features(["1007_s_at", "TP53", "1053_at", "ENSG00000223972.5"])
    assert genes["symbol"].tolist() == ["1007_s_at", "TP53", "1053_at", "ENSG00000223972"]
    assert genes["ensembl_gene_id"].tolist() == ["", "ENSG00000141510", "", "ENSG00000223972"]
    assert any("2 of 4 feature(s)" in w and "'1007_s_at'" in w and "probes" in w for w in warnings)
    assert any("not protein-coding" in w and "ENSG00000223972.5" in w for w in warnings)


def test_probe_tables_are_recognised_by_orientation_auto(tmp_path):
    path = write_table(tmp_path / "x.csv", ["1007_s_at", "1053_at", "117_at"], SAMPLES, VALUES.T)
    assert read_expression(path).orientation == "genes-by-samples"


def test_samples_table_accepts_common_column_names(tmp_path):
    path = tmp_path / "samples.tsv"
    path.write_text("SAMPID\tSubject\tTissue\tGender\tAGE\textra\n"
                    "S1\tD1\tLiver\tF\t60-69\tx\nS2\t\tLung\t1\t42\ty\nS3\tD1\tLung\t?\t\tz\n")
    samples = read_samples_table(path)
    assert samples.columns.tolist() == ["sample_id", "donor_id", "tissue", "sex", "age"]
    assert samples["donor_id"].tolist() == ["D1", "S2", "D1"]  # empty donor: the sample is its own
    assert samples["tissue"].tolist() == ["Liver", "Lung", "Lung"]
    assert samples["sex"].tolist() == ["female", "male", "unknown"]
    np.testing.assert_array_equal(samples["age"], [65.0, 42.0, np.nan])


def test_samples_table_defaults_and_custom_tissue_column(tmp_path):
    path = tmp_path / "samples.csv"
    path.write_text("sample,organ\nS1,Liver\nS2,Lung\n")
    samples = read_samples_table(path)
    assert samples["tissue"].tolist() == ["Unknown", "Unknown"]
    assert samples["donor_id"].tolist() == ["S1", "S2"]
    assert samples["sex"].tolist() == ["unknown", "unknown"] and samples["age"].isna().all()
    assert read_samples_table(path, tissue_column="Organ")["tissue"].tolist() == ["Liver", "Lung"]


def test_import_table_builds_a_cohort_with_the_samples_table(tmp_path):
    expression = write_table(tmp_path / "x.csv", SYMBOLS, SAMPLES, VALUES.T)
    samples = tmp_path / "samples.csv"
    samples.write_text("sample_id,donor,tissue,sex\nS4,D2,Lung,2\nS3,D2,Liver,2\nS2,D1,Lung,1\n"
                       "S1,D1,Liver,1\nS9,D3,Lung,1\n")
    with pytest.warns(UserWarning, match="1 sample"):
        cohort = import_table(expression, samples, seed=1)
    assert cohort.samples["sample_id"].tolist() == SAMPLES  # expression order
    assert cohort.samples["tissue"].tolist() == ["Liver", "Lung", "Liver", "Lung"]
    assert cohort.samples["sex"].tolist() == ["male", "male", "female", "female"]
    assert cohort.genes["ensembl_gene_id"].tolist() == ENSEMBL
    np.testing.assert_allclose(cohort.raw(), VALUES, rtol=1e-4)
    assert cohort.meta["orientation"] == "genes-by-samples"


def test_import_table_without_samples_and_with_log_scale(tmp_path):
    log_values = np.log2(VALUES) - 2.0  # some negative: fine on the log scale
    expression = write_table(tmp_path / "x.csv", SAMPLES, ["1007_s_at", *SYMBOLS[1:]], log_values)
    with pytest.warns(UserWarning, match="1007_s_at"):
        cohort = import_table(expression, scale="log")
    assert cohort.tissues == ["Unknown"] and cohort.n_donors == 4
    assert cohort.transform.scale == "log"
    np.testing.assert_allclose(cohort.raw(), log_values, rtol=1e-4, atol=1e-5)
    assert "1007_s_at" in cohort.meta["warnings"][0]
