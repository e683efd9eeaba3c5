"""What the app calls groups and values (gtex_models.interfaces.naming): GTEx words only for GTEx data."""

from __future__ import annotations

import pytest

from gtex_models.interfaces.naming import Words, group_word, words_for


def test_gtex_tissues_of_rna_seq_are_tissues_in_log2_tpm():
    words = words_for(["Whole Blood", "Liver"], "tpm", "gtex_v8")
    assert words == Words("tissue", "log2(TPM + 1)", "TPM")
    assert (words.Group, words.all_groups, words.count(1), words.count(49)) == \
        ("Tissue", "All tissues", "1 tissue", "49 tissues")
    assert words.scale_name("tpm") == "TPM" and words.scale_name("log") == "log2(TPM + 1)"


@pytest.mark.parametrize("groups", [["Case", "Control"], ["Whole Blood", "tumour"], []])
def test_anything_but_gtex_tissue_names_is_a_group(groups):
    assert group_word(groups) == "group"
    assert words_for(groups, "tpm", "simulated").all_groups == "All groups"


def test_a_microarray_is_never_tpm():
    log_probes = words_for(["adjacent", "tumour"], "log", "import", probes=True)
    assert (log_probes.log_unit, log_probes.scale_name("log")) == ("log2 intensity", "log2 intensity")
    linear_probes = words_for(["Case", "Control"], "tpm", "import", probes=True)
    assert (linear_probes.log_unit, linear_probes.linear_unit) == ("log2(signal + 1)", "signal")
    assert "TPM" not in " ".join([*vars(log_probes).values(), *vars(linear_probes).values()])


def test_imported_values_are_named_by_what_the_import_did():
    assert words_for(["sx", "asx"], "log", "import").log_unit == "log scale (as imported)"
    assert words_for(["sx", "asx"], "tpm", "import").log_unit == "log2(value + 1)"
    assert words_for(["Whole Blood"], "tpm", "archs4").log_unit == "log2(TPM + 1)"  # RNA-seq TPM
