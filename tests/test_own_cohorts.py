"""Own cohorts named as what they are (issue #27): the group column chosen one way for the CLI and the app, the
value scale and the group word, on real cohorts (tests/data: a microarray cohort with probe IDs and a whole-blood
cohort with gene symbols, repeated measures and no tissue column)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gtex_models.data.cohort import Cohort
from gtex_models.data.naming import count_groups, group_word, value_scale_label
from gtex_models.data.readers import InputError, import_table
from gtex_models.data.readers.samples import choose_group_column
from gtex_models.data.simulate import simulate_cohort
from gtex_models.interfaces.cli.main import main
from gtex_models.interfaces.upload import import_uploads, upload_group_column

DATA = Path(__file__).parent / "data"
FLU = DATA / "flu_gse30550"
ARRAY = DATA / "biobase_sample"


def test_the_group_column_is_tissue_else_group_else_a_question(tmp_path):
    both = tmp_path / "both.csv"
    both.write_text("sample_id,Group,Tissue\nS1,a,Liver\nS2,b,Lung\n")
    assert choose_group_column(both).column == "Tissue"  # tissue before group, the header's own spelling
    assert choose_group_column(ARRAY / "samples.csv").column == "group"
    flu = choose_group_column(FLU / "samples.csv")
    assert flu.column is None and flu.needs_answer
    assert dict(flu.candidates) == {"hours": 15, "condition": 2}  # not the sample, subject, gender or age columns
    assert choose_group_column(FLU / "samples.csv", "condition").column == "condition"
    assert choose_group_column(FLU / "samples.csv", "none").column is None
    lone = tmp_path / "lone.csv"
    lone.write_text("sample_id,score\nS1,0.1\nS2,0.4\nS3,0.2\n")
    assert not choose_group_column(lone).needs_answer  # nothing plausible: one group, no question


def test_import_without_a_group_column_refuses_and_names_the_plausible_columns(tmp_path, capsys):
    out = tmp_path / "flu"
    argv = ["import", "--expression", str(FLU / "expression.csv.gz"), "--samples", str(FLU / "samples.csv"),
            "--out", str(out)]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "'hours' (15 values), 'condition' (2 values)" in error and "--tissue-column COLUMN" in error
    assert not out.exists()  # never one silent "Unknown" group
    assert main([*argv, "--tissue-column", "condition"]) == 0
    line = capsys.readouterr().out
    assert "2 groups, 17 donors (groups from column 'condition': asx, sx;" in line
    assert "values log2 intensity" in line
    cohort = Cohort.load(out)
    assert cohort.tissues == ["asx", "sx"] and cohort.group_word == "group"
    assert cohort.value_scale == "log2 intensity"
    assert main(["import", "--expression", str(FLU / "expression.csv.gz"), "--samples", str(FLU / "samples.csv"),
                 "--tissue-column", "none", "--out", str(tmp_path / "one")]) == 0
    assert "1 group, 17 donors (one group for all samples (Unknown);" in capsys.readouterr().out


def test_cli_and_app_choose_the_same_group_column_and_scale(tmp_path):
    """The app's New study page asks `upload_group_column` and imports with `import_uploads`: the same column and
    value scale as the CLI's `import` for the same files."""
    shutil.copy(ARRAY / "samples.csv", tmp_path / "samples.csv")
    expression, samples = ARRAY / "expression.csv", ARRAY / "samples.csv"
    with pytest.warns(UserWarning):
        by_cli = import_table(expression, samples, negatives="clip")
    uploads = [(path.read_bytes(), path.name) for path in (expression, samples)]
    choice = upload_group_column(*uploads[1])
    assert choice.column == "group"
    by_app = import_uploads(uploads[0], uploads[1], tissue_column=choice.column, negatives="clip")
    assert by_cli.tissues == by_app.tissues == ["Case", "Control"]
    assert by_cli.value_scale == by_app.value_scale == "log2(intensity + 1)"  # MAS5 signal, probe IDs
    assert by_cli.meta["groups"] == by_app.meta["groups"] == "groups from column 'group': Case, Control"


def test_value_scale_and_group_word():
    assert value_scale_label("tpm", "rna-seq") == "log2(TPM + 1)"
    assert value_scale_label("log", "array") == "log2 intensity"
    simulated = simulate_cohort(n_donors=8, n_genes=400)
    assert simulated.value_scale == "log2(TPM + 1)" and simulated.group_word == "tissue"
    assert simulated.summary().endswith(f"{len(simulated.tissues)} tissues, 8 donors")
    assert group_word(["Whole Blood", "Case"]) == "group"  # tissue only when every group is a GTEx tissue
    assert count_groups(1, "group") == "1 group" and count_groups(5, "group") == "5 groups"


def test_rna_seq_log_values_with_zeros_are_log2_tpm(tmp_path):
    """The log scale of RNA-seq (zeros where a gene is not detected) is named log2(TPM + 1), not an intensity."""
    rng = np.random.default_rng(0)
    values = np.where(rng.random((8, 10)) < 0.2, 0.0, rng.uniform(0.5, 9.0, (8, 10)))
    genes = ["TP53", "APOE", "APP", "BRCA1", "EGFR", "MYC", "GAPDH", "ACTB", "ALB", "INS"]
    table = pd.DataFrame(values, index=pd.Index([f"S{i}" for i in range(8)], name="sample_id"), columns=genes)
    table.to_csv(tmp_path / "x.csv")
    assert import_table(tmp_path / "x.csv", scale="log").value_scale == "log2(TPM + 1)"
    table.clip(lower=2.0).to_csv(tmp_path / "x.csv")  # no value near 0: array intensities
    assert import_table(tmp_path / "x.csv", scale="log").value_scale == "log2 intensity"


def test_a_study_knows_its_value_scale_and_group_word(tmp_path):
    from gtex_models.studies.build import build_study

    with pytest.warns(UserWarning):
        cohort = import_table(FLU / "expression.csv.gz", FLU / "samples.csv", tissue_column="condition")
    study = build_study(cohort, tmp_path / "study", models=["mean"], baselines=[])
    assert study.value_scale == "log2 intensity" and study.group_word == "group"
    assert study.count_groups() == "2 groups"


def test_impute_with_a_sample_table_takes_its_group_column(tmp_path, capsys):
    """`impute --samples` chooses the group column as `import` does (a `group` column needs no flag)."""
    with pytest.warns(UserWarning):
        cohort = import_table(ARRAY / "expression.csv", ARRAY / "samples.csv", negatives="clip")
    cohort.save(tmp_path / "cohort")
    checkpoint = tmp_path / "mean.safetensors"
    assert main(["train", "--cohort", str(tmp_path / "cohort"), "--method", "mean", "--out", str(checkpoint)]) == 0
    raw = pd.read_csv(ARRAY / "expression.csv", index_col=0).clip(lower=0)
    raw.iloc[:, :50] = np.nan  # samples x probes: the first 50 probes missing
    raw.to_csv(tmp_path / "partial.csv")
    assert main(["impute", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "partial.csv"),
                 "--samples", str(ARRAY / "samples.csv"), "--out", str(tmp_path / "filled.csv")]) == 0
    filled = pd.read_csv(tmp_path / "filled.csv", index_col=0)
    assert not filled.isna().any().any() and filled.shape == raw.shape
    capsys.readouterr()


def test_group_choice_rejects_an_unknown_requested_column(tmp_path):
    with pytest.raises(InputError, match="no tissue column"):
        import_table(FLU / "expression.csv.gz", FLU / "samples.csv", tissue_column="organ")
