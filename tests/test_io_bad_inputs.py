"""One test per kind of malformed input: each raises InputError saying what, where and how to fix."""

import gzip

import anndata
import numpy as np
import pandas as pd
import pytest

from gtex_models.data.readers import InputError, import_table, map_features, prepare_gtex, read_expression
from gtex_models.data.readers.errors import MAX_INPUT_MB_ENV, check_file_size
from gtex_models.data.readers.samples import read_samples_table

GOOD_CSV = "gene,S1,S2\nTP53,1,2\nGAPDH,3,4\n"


def write(tmp_path, text, name="x.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_input_error_is_a_value_error():
    assert issubclass(InputError, ValueError)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_expression(tmp_path / "nope.csv")


def test_empty_file(tmp_path):
    with pytest.raises(InputError, match="is empty"):
        read_expression(write(tmp_path, ""))


def test_header_only(tmp_path):
    with pytest.raises(InputError, match="header but no data rows"):
        read_expression(write(tmp_path, "gene,S1,S2\n"))


def test_binary_garbage(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(bytes(np.random.default_rng(0).integers(128, 256, 2000, dtype=np.uint8)))
    with pytest.raises(InputError, match="not UTF-8 text.*binary"):
        read_expression(path)


def test_nul_bytes(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"gene,S1\x00\x00,S2\nTP53,1,2\n")
    with pytest.raises(InputError, match="NUL bytes"):
        read_expression(path)


def test_excel_workbook(tmp_path):
    path = tmp_path / "x.xlsx"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(InputError, match="Excel.*Export the sheet as CSV"):
        read_expression(path)


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "x.csv.gz"
    path.write_bytes(gzip.compress(GOOD_CSV.encode())[:-12])  # truncated
    with pytest.raises(InputError, match="gzip stream is corrupt or truncated"):
        read_expression(path)


def test_corrupt_h5ad(tmp_path):
    path = tmp_path / "x.h5ad"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(InputError, match=r"could not be read as an \.h5ad"):
        read_expression(path)


def test_wrong_delimiter_gives_a_single_column(tmp_path):
    with pytest.raises(InputError, match="single column.*no tab, comma or semicolon"):
        read_expression(write(tmp_path, "gene S1 S2\nTP53 1 2\n"))


def test_ragged_row(tmp_path):
    with pytest.raises(InputError, match="line 3: 4 comma-separated fields, but the header has 3"):
        read_expression(write(tmp_path, "gene,S1,S2\nTP53,1,2\nGAPDH,3,4,5\n"))


def test_duplicated_gene_ids(tmp_path):
    text = "gene,S1,S2\nTP53,1,2\nGAPDH,3,4\nTP53,5,6\n"
    with pytest.raises(InputError, match=r"duplicated gene id\(s\) in the first column: 'TP53' \(2x\)"):
        read_expression(write(tmp_path, text))


def test_duplicated_sample_ids(tmp_path):
    with pytest.raises(InputError, match=r"duplicated sample id\(s\) in the header row: 'S1' \(2x\)"):
        read_expression(write(tmp_path, "gene,S1,S2,S1\nTP53,1,2,3\nGAPDH,3,4,5\n"))


def test_duplicated_h5ad_obs_names(tmp_path):
    with pytest.warns(UserWarning, match="not unique"):  # anndata's own warning
        adata = anndata.AnnData(X=np.ones((2, 2), dtype=np.float32), obs=pd.DataFrame(index=["S1", "S1"]),
                                var=pd.DataFrame(index=["TP53", "ACTB"]))
    adata.write_h5ad(tmp_path / "x.h5ad")
    with pytest.raises(InputError, match=r"duplicated sample id\(s\) in the obs_names: 'S1'"):
        read_expression(tmp_path / "x.h5ad")


def test_two_ids_for_the_same_gene():
    with pytest.raises(InputError, match=r"Duplicated gene.*'TP53' and 'ENSG00000141510.5'"):
        map_features(["TP53", "ACTB", "ENSG00000141510.5"])


def test_non_numeric_cell_names_line_row_column_and_value(tmp_path):
    text = "gene,S1,S2\nTP53,1,2\nGAPDH,3,high\n"
    with pytest.raises(InputError, match=r"line 3, row 'GAPDH', column 'S2': 'high' is not a number"):
        read_expression(write(tmp_path, text))


def test_decimal_comma_gets_a_hint(tmp_path):
    text = "gene;S1;S2\nTP53;1,5;2\nGAPDH;3;4\n"
    with pytest.raises(InputError, match=r"'1,5' is not a number\. Use '\.' as the decimal separator"):
        read_expression(write(tmp_path, text))


@pytest.mark.parametrize("value", ["inf", "-Infinity", "1e40"])
def test_infinite_value(tmp_path, value):
    with pytest.raises(InputError, match=rf"line 2, row 'TP53', column 'S2': '{value}' is infinite"):
        read_expression(write(tmp_path, f"gene,S1,S2\nTP53,1,{value}\nGAPDH,3,4\n"))


def test_infinite_value_in_h5ad(tmp_path):
    x = np.ones((2, 2), dtype=np.float32)
    x[1, 0] = np.inf
    anndata.AnnData(X=x, obs=pd.DataFrame(index=["S1", "S2"]),
                    var=pd.DataFrame(index=["TP53", "ACTB"])).write_h5ad(tmp_path / "x.h5ad")
    with pytest.raises(InputError, match="infinite value in .X at sample 'S2', gene 'TP53'"):
        read_expression(tmp_path / "x.h5ad")


def test_ambiguous_orientation_asks_for_it(tmp_path):
    with pytest.raises(InputError, match="cannot tell which axis holds the genes.*--orientation"):
        read_expression(write(tmp_path, "id,a,b\nc,1,2\nd,3,4\n"))


def test_unknown_orientation(tmp_path):
    with pytest.raises(InputError, match="Unknown orientation 'rows'"):
        read_expression(write(tmp_path, GOOD_CSV), orientation="rows")


def test_orientation_that_contradicts_the_format(tmp_path):
    gct = write(tmp_path, "#1.2\n1\t1\nName\tDescription\tS1\nENSG00000141510.1\tTP53\t1\n", "x.gct")
    with pytest.raises(InputError, match="a GCT file always has genes by samples"):
        read_expression(gct, orientation="samples-by-genes")


def test_gct_wrong_version_line(tmp_path):
    with pytest.raises(InputError, match="line 1: '#1.3', expected '#1.2'"):
        read_expression(write(tmp_path, "#1.3\n1\t1\nName\tDescription\tS1\nTP53\tTP53\t1\n", "x.gct"))


def test_gct_dims_line_with_wrong_sample_count(tmp_path):
    text = "#1.2\n2\t3\nName\tDescription\tS1\tS2\nTP53\tTP53\t1\t2\nACTB\tACTB\t3\t4\n"
    with pytest.raises(InputError, match=r"declares 3 samples but the header on line 3 lists 2 .*'2\\t2'"):
        read_expression(write(tmp_path, text, "x.gct"))


def test_gct_dims_line_with_wrong_gene_count(tmp_path):
    text = "#1.2\n5\t2\nName\tDescription\tS1\tS2\nTP53\tTP53\t1\t2\nACTB\tACTB\t3\t4\n"
    with pytest.raises(InputError, match=r"declares 5 genes but the file has 2 data rows.*'2\\t2'"):
        read_expression(write(tmp_path, text, "x.gct"))


def test_gct_dims_line_that_is_not_two_counts(tmp_path):
    with pytest.raises(InputError, match="line 2: 'two genes', expected two counts"):
        read_expression(write(tmp_path, "#1.2\ntwo genes\nName\tDescription\tS1\n", "x.gct"))


def test_gct_row_with_missing_values(tmp_path):
    text = "#1.2\n1\t2\nName\tDescription\tS1\tS2\nENSG00000141510.1\tTP53\t1\n"
    expected = r"line 4 \(row 'ENSG00000141510.1'\): 3 tab-separated fields, expected 4"
    with pytest.raises(InputError, match=expected):
        read_expression(write(tmp_path, text, "x.gct"))


def test_file_above_the_size_limit(tmp_path, monkeypatch):
    path = write(tmp_path, GOOD_CSV + "ACTB,5,6\n" * 200_000)
    monkeypatch.setenv(MAX_INPUT_MB_ENV, "1")
    with pytest.raises(InputError, match=rf"above the input limit of 1 MB.*{MAX_INPUT_MB_ENV}"):
        read_expression(path)
    monkeypatch.setenv(MAX_INPUT_MB_ENV, "10")
    assert check_file_size(path) == path


def test_invalid_size_limit_setting(tmp_path, monkeypatch):
    monkeypatch.setenv(MAX_INPUT_MB_ENV, "lots")
    with pytest.raises(InputError, match=f"{MAX_INPUT_MB_ENV}='lots' is not a positive number"):
        read_expression(write(tmp_path, GOOD_CSV))


def test_negative_tpm_suggests_log_scale(tmp_path):
    path = write(tmp_path, "gene,S1,S2\nTP53,1,2\nGAPDH,-3.5,4\n")
    expected = r"declared TPM, but some are negative \(first at sample 'S1', gene 'GAPDH'; 1 in all\).*--scale log"
    with pytest.raises(InputError, match=expected):
        import_table(path, scale="tpm")
    assert import_table(path).transform.scale == "log"  # auto: small values with a negative one are log values


def test_unknown_scale(tmp_path):
    with pytest.raises(InputError, match="Unknown scale 'raw'"):
        import_table(write(tmp_path, GOOD_CSV), scale="raw")


def test_expression_sample_without_a_samples_row(tmp_path):
    samples = write(tmp_path, "sample_id,tissue\nS1,Lung\n", "samples.csv")
    expected = r"samples\.csv has no row for 1 sample\(s\) of x\.csv, e\.g\. 'S2'"
    with pytest.raises(InputError, match=expected):
        import_table(write(tmp_path, GOOD_CSV), samples)


def test_samples_table_without_sample_column(tmp_path):
    samples = write(tmp_path, "name,tissue\nS1,Lung\n", "samples.csv")
    with pytest.raises(InputError, match="no sample_id column.*accepted names: sample_id, sample, sampid"):
        read_samples_table(samples)


def test_samples_table_without_the_requested_tissue_column(tmp_path):
    samples = write(tmp_path, "sample_id,organ\nS1,Lung\n", "samples.csv")
    with pytest.raises(InputError, match="no tissue column.*Organs.*Did you mean 'organ'"):
        read_samples_table(samples, tissue_column="Organs")


def test_samples_table_with_empty_tissue(tmp_path):
    samples = write(tmp_path, "sample_id,tissue\nS1,Lung\nS2,\n", "samples.csv")
    with pytest.raises(InputError, match=r"no tissue for sample\(s\) 'S2'"):
        read_samples_table(samples)


def test_samples_table_with_duplicated_samples(tmp_path):
    samples = write(tmp_path, "sample_id,tissue\nS1,Lung\nS1,Liver\n", "samples.csv")
    with pytest.raises(InputError, match=r"duplicated sample id\(s\) in the samples table: 'S1'"):
        read_samples_table(samples)


def _gtex_files(tmp_path, attributes_header="SAMPID\tSMTSD\tSMAFRZE"):
    gct = write(tmp_path, "#1.2\n1\t2\nName\tDescription\tGTEX-A-1\tGTEX-B-1\n"
                          "ENSG00000141510.16\tTP53\t1\t2\n", "x.gct")
    attributes = write(tmp_path, f"{attributes_header}\nGTEX-A-1\tLung\tRNASEQ\nGTEX-B-1\tLung\tRNASEQ\n",
                       "attributes.txt")
    subjects = write(tmp_path, "SUBJID\tSEX\tAGE\tDTHHRDY\nGTEX-A\t1\t20-29\t\nGTEX-B\t2\t30-39\t1\n",
                     "subjects.txt")
    return gct, attributes, subjects


def test_gtex_files_fit_together(tmp_path):  # the base case of the GTEx errors below
    cohort = prepare_gtex(*_gtex_files(tmp_path), min_samples_per_tissue=2)
    assert cohort.n_samples == 2 and cohort.n_genes == 1


def test_gtex_attributes_without_freeze_column(tmp_path):
    files = _gtex_files(tmp_path, attributes_header="SAMPID\tSMTSD\tSMAFRZ")
    with pytest.raises(InputError, match="attributes.txt: no freeze column.*SMAFRZE.*Did you mean 'SMAFRZ'"):
        prepare_gtex(*files, min_samples_per_tissue=2)


def test_gtex_no_sample_left(tmp_path):
    with pytest.raises(InputError, match=r"No sample left.*Lung \(2\).*lower --min-samples-per-tissue"):
        prepare_gtex(*_gtex_files(tmp_path))


def test_gtex_duplicated_sample_in_gct_header(tmp_path):
    gct, attributes, subjects = _gtex_files(tmp_path)
    gct.write_text(gct.read_text().replace("GTEX-B-1", "GTEX-A-1"))
    expected = r"duplicated sample id\(s\) in the GCT header \(line 3\): 'GTEX-A-1'"
    with pytest.raises(InputError, match=expected):
        prepare_gtex(gct, attributes, subjects, min_samples_per_tissue=1)


def test_gtex_genes_neither_a_set_nor_a_file(tmp_path):
    expected = "genes='coding' is neither 'protein_coding' nor 'all' nor an existing file"
    with pytest.raises(InputError, match=expected):
        prepare_gtex(*_gtex_files(tmp_path), genes="coding")


def test_gtex_no_gene_in_the_gene_set(tmp_path):
    genes = write(tmp_path, "BRCA1\n", "genes.txt")
    with pytest.raises(InputError, match="none of its genes is in the gene set"):
        prepare_gtex(*_gtex_files(tmp_path), min_samples_per_tissue=1, genes=genes)
