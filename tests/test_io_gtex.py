"""prepare_gtex on small files written exactly in the public GTEx v8 formats."""

import json

import numpy as np
import pytest
from gtex_files import write_gtex_files

from gtex_models.data.cohort import Cohort
from gtex_models.data.readers import InputError, prepare_gtex
from gtex_models.data.readers.gtex import donor_of

# (Name, Description) rows of the GCT, in file order
GCT_GENES = [
    ("ENSG00000141510.16", "TP53"),
    ("ENSG00000223972.5", "DDX11L1"),  # a pseudogene: not protein-coding
    ("ENSG00000111640.14", "GAPDH"),
    ("ENSG00000141510.11", "TP53"),  # the same gene again: the first row wins
    ("ENSG00000075624.13", "ACTB"),
    ("ENSG00000002586.18", "CD99"),
    ("ENSG00000002586.18_PAR_Y", "CD99"),  # its copy on chrY's pseudo-autosomal region
    ("ENSG00000201000.1", "Y_RNA"),
    ("ENSG00000202000.1", "Y_RNA"),  # same symbol, another gene
]
# sample id -> (SMTSD, SMAFRZE); None: not in the attributes file
GCT_SAMPLES = {
    "GTEX-1117F-0011-R10a-SM-AAAA1": ("Brain - Cortex", "RNASEQ"),
    "GTEX-1117F-0005-SM-AAAA2": ("Whole Blood", "RNASEQ"),
    "GTEX-111VG-0011-R10a-SM-AAAA3": ("Brain - Cortex", "EXCLUDE"),  # not in the release
    "GTEX-111CU-0011-R10a-SM-AAAA4": ("Brain - Cortex", "RNASEQ"),
    "GTEX-111FC-0126-SM-AAAA5": ("Liver", "RNASEQ"),  # the only liver sample: below the threshold
    "GTEX-111CU-0005-SM-AAAA6": ("Whole Blood", "RNASEQ"),
    "GTEX-111VG-0126-SM-AAAA7": None,  # missing from the attributes file
    "GTEX-111FC-0011-R10a-SM-AAAA8": ("Brain - Cortex", "RNASEQ"),
    "GTEX-111VG-0005-SM-AAAA9": ("Whole Blood", "RNASEQ"),
}
KEPT_SAMPLES = [s for s, a in GCT_SAMPLES.items() if a and a[1] == "RNASEQ" and a[0] != "Liver"]
SUBJECTS = [  # SUBJID, SEX, AGE, DTHHRDY
    ("GTEX-1117F", "2", "60-69", "4"),
    ("GTEX-111CU", "1", "50-59", ""),  # empty Hardy scale, as in the real file
    ("GTEX-111FC", "1", "20-29", "1"),
    ("GTEX-111VG", "2", "70-79", "0"),
]


def tpm(gene_row: int, sample_column: int) -> float:
    return gene_row * 100 + sample_column + 0.5


def write_gtex(directory, gz=False, genes=GCT_GENES, bad_cell=None):
    """Write the three GTEx files; ``bad_cell=(row, text)`` puts text in that row's first value."""
    return write_gtex_files(directory, genes, GCT_SAMPLES, SUBJECTS, tpm, gz=gz, bad_cell=bad_cell)


@pytest.mark.parametrize("gz", [False, True])
def test_prepare_gtex_keeps_released_samples_and_protein_coding_genes(tmp_path, gz):
    files = write_gtex(tmp_path, gz=gz)
    with pytest.warns(UserWarning) as caught:
        cohort = prepare_gtex(*files, min_samples_per_tissue=3)
    messages = "\n".join(str(w.message) for w in caught)
    assert "GTEX-111VG-0126-SM-AAAA7" in messages and "not in SampleAttributesDS.txt" in messages
    assert "GTEX-111VG-0011-R10a-SM-AAAA3" in messages and "RNA-seq release" in messages
    assert "Liver (1)" in messages
    assert "ENSG00000141510.11" in messages and "first row is kept" in messages

    assert cohort.samples["sample_id"].tolist() == KEPT_SAMPLES  # GCT order
    assert cohort.tissues == ["Brain - Cortex", "Whole Blood"]
    assert cohort.genes["ensembl_gene_id"].tolist() == [
        "ENSG00000141510", "ENSG00000111640", "ENSG00000075624", "ENSG00000002586"]
    assert cohort.genes["symbol"].tolist() == ["TP53", "GAPDH", "ACTB", "CD99"]

    columns = [list(GCT_SAMPLES).index(s) for s in KEPT_SAMPLES]
    expected = np.array([[tpm(g, c) for g in (0, 2, 4, 5)] for c in columns])  # TP53 from row 0
    np.testing.assert_allclose(cohort.raw(), expected, rtol=1e-4)
    assert cohort.x.dtype == np.float32
    assert cohort.meta["source"] == "gtex_v8" and cohort.meta["files"]["gct"] == str(files[0])


def test_prepare_gtex_parses_donor_sex_and_age_with_empty_hardy_scale(tmp_path):
    with pytest.warns(UserWarning):
        cohort = prepare_gtex(*write_gtex(tmp_path), min_samples_per_tissue=3)
    by_sample = cohort.samples.set_index("sample_id")
    cu = by_sample.loc["GTEX-111CU-0011-R10a-SM-AAAA4"]  # the donor with an empty DTHHRDY
    assert (cu["donor_id"], cu["sex"], cu["age"]) == ("GTEX-111CU", "male", 55.0)
    f = by_sample.loc["GTEX-1117F-0005-SM-AAAA2"]
    assert (f["donor_id"], f["sex"], f["age"]) == ("GTEX-1117F", "female", 65.0)
    assert by_sample.loc["GTEX-111VG-0005-SM-AAAA9", "age"] == 75.0
    # no donor is in two splits
    assert (cohort.samples.groupby("donor_id")["split"].nunique() == 1).all()


def test_donor_missing_from_the_phenotypes_keeps_its_samples_with_unknown_covariates(tmp_path):
    gct, attributes, subjects = write_gtex(tmp_path)
    subjects.write_text("\n".join(line for line in subjects.read_text().splitlines()
                                  if not line.startswith("GTEX-111VG")) + "\n")
    with pytest.warns(UserWarning) as caught:
        cohort = prepare_gtex(gct, attributes, subjects, min_samples_per_tissue=3)
    assert "1 donor(s) are not in SubjectPhenotypesDS.txt; their sex is unknown and age missing: " \
           "'GTEX-111VG'." in [str(w.message) for w in caught]
    row = cohort.samples.set_index("sample_id").loc["GTEX-111VG-0005-SM-AAAA9"]
    assert row["sex"] == "unknown" and np.isnan(row["age"])


def test_donor_is_the_first_two_dash_separated_fields():
    assert donor_of("GTEX-1117F-0226-SM-5GZZ7") == "GTEX-1117F"
    assert donor_of("K-562-SM-26GMQ") == "K-562"


def test_genes_all_keeps_every_gene_and_makes_duplicate_symbols_unique(tmp_path):
    with pytest.warns(UserWarning):
        cohort = prepare_gtex(*write_gtex(tmp_path), min_samples_per_tissue=3, genes="all")
    genes = cohort.genes
    assert len(genes) == len(GCT_GENES) - 1  # only the repeated TP53 row is dropped
    assert genes["symbol"].is_unique
    symbol = dict(zip(genes["ensembl_gene_id"], genes["symbol"]))
    assert symbol["ENSG00000223972"] == "DDX11L1"  # from Description: not in the reference
    assert symbol["ENSG00000201000"] == "Y_RNA"
    assert symbol["ENSG00000202000"] == "Y_RNA_ENSG00000202000"
    assert symbol["ENSG00000002586"] == "CD99"
    assert symbol["ENSG00000002586_PAR_Y"] == "CD99_ENSG00000002586_PAR_Y"


def test_gene_list_file_mixes_symbols_and_ensembl_ids(tmp_path):
    files = write_gtex(tmp_path)
    gene_list = tmp_path / "genes.txt"
    gene_list.write_text("symbol\n# my genes\nGAPDH\nENSG00000075624.99\nY_RNA\nBRCA1\n")
    with pytest.warns(UserWarning) as caught:
        cohort = prepare_gtex(*files, min_samples_per_tissue=3, genes=gene_list)
    assert cohort.genes["symbol"].tolist() == ["GAPDH", "ACTB", "Y_RNA", "Y_RNA_ENSG00000202000"]
    assert any("listed gene(s) are not in the GCT: 'BRCA1'" in str(w.message) for w in caught)


def test_rows_outside_the_gene_set_are_skipped_before_parsing(tmp_path):
    files = write_gtex(tmp_path, bad_cell=(1, "oops"))  # in DDX11L1, not protein-coding
    with pytest.warns(UserWarning):
        cohort = prepare_gtex(*files, min_samples_per_tissue=3)
    assert cohort.n_genes == 4
    with pytest.raises(InputError, match=r"line 5, row 'ENSG00000223972.5', column 'GTEX-1117F-.*'oops'"):
        prepare_gtex(*files, min_samples_per_tissue=3, genes="all")


def test_prepared_cohort_saves_and_loads(tmp_path):
    with pytest.warns(UserWarning):
        cohort = prepare_gtex(*write_gtex(tmp_path), min_samples_per_tissue=3)
    cohort.save(tmp_path / "cohort")
    loaded = Cohort.load(tmp_path / "cohort")
    np.testing.assert_array_equal(loaded.x, cohort.x)
    assert loaded.meta == json.loads(json.dumps(cohort.meta))
    assert loaded.samples["tissue"].tolist() == cohort.samples["tissue"].tolist()
