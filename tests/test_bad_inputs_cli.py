"""Every malformed input through the CLI: exit status 2, ``error: <specific message>``, no output left.

The corpus is in ``tests/bad_inputs.py``; reader-level details are in ``tests/test_io_bad_inputs.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import bad_inputs as corpus
import numpy as np
import pandas as pd
import pytest

from gtex_models.data.simulate import simulate_cohort
from gtex_models.interfaces.cli.main import main
from gtex_models.models.checkpoints import save_checkpoint
from gtex_models.models.registry import make_imputer

TISSUE = "Whole Blood"


@pytest.fixture(scope="session")
def model(tmp_path_factory):
    """A mean-imputer checkpoint on a small simulated cohort (400 genes), the cohort, and its path."""
    cohort = simulate_cohort(n_donors=20, n_genes=400, seed=1)
    imputer = make_imputer("mean").fit(cohort.split("train"))
    directory = tmp_path_factory.mktemp("model")
    path = save_checkpoint(imputer, directory / "mean.safetensors",
                           {"genes": cohort.genes, "transform": cohort.transform, "tissues": cohort.tissues})
    cohort.save(directory / "cohort")
    return path, cohort, directory / "cohort"


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_refused(capsys, argv: list[str], pattern: str, out: Path) -> None:
    status, stdout, stderr = run(capsys, argv)
    assert status == 2, stderr
    assert stderr.startswith("error: "), stderr
    assert "Traceback" not in stderr
    assert re.search(pattern, stderr, re.S), stderr
    assert not stdout
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]  # no temp leftovers


def import_argv(case: corpus.Case, out: Path) -> list:
    return ["import", "--expression", case.path, "--out", out]


def impute_argv(case: corpus.Case, checkpoint: Path, out: Path, *extra) -> list:
    return ["impute", "--checkpoint", checkpoint, "--input", case.path, "--out", out, "--tissue", TISSUE, *extra]


def build(builder, tmp_path: Path, genes: pd.DataFrame, monkeypatch) -> corpus.Case:
    case = builder(tmp_path, genes)
    for key, value in case.env:
        monkeypatch.setenv(key, value)
    return case


# ------------------------------------------------------------------------------------- expression files
@pytest.mark.parametrize("name", list(corpus.EXPRESSION_ERRORS))
def test_import_refuses(name, model, tmp_path, capsys, monkeypatch):
    case = build(corpus.EXPRESSION_ERRORS[name], tmp_path, model[1].genes, monkeypatch)
    out = tmp_path / "cohort"
    assert_refused(capsys, import_argv(case, out), case.expected_error("import"), out)


@pytest.mark.parametrize("name", list(corpus.EXPRESSION_ERRORS))
def test_impute_refuses(name, model, tmp_path, capsys, monkeypatch):
    case = build(corpus.EXPRESSION_ERRORS[name], tmp_path, model[1].genes, monkeypatch)
    out = tmp_path / "imputed.csv"
    assert_refused(capsys, impute_argv(case, model[0], out), case.expected_error("impute"), out)


def test_impute_refuses_negative_values_declared_tpm(model, tmp_path, capsys):
    case = corpus.case_negative_tpm(tmp_path, model[1].genes)
    out = tmp_path / "imputed.csv"
    symbol = model[1].genes["symbol"].iloc[2]
    expected = rf"declared TPM, but some are negative \(first at sample 'S2', gene '{symbol}'; 1 in all\)"
    assert_refused(capsys, impute_argv(case, model[0], out, "--scale", "tpm"), expected, out)


def test_a_failed_run_keeps_the_previous_output(model, tmp_path, capsys):
    """A bad input never destroys what an earlier run wrote at --out, even with --overwrite."""
    out = tmp_path / "imputed.csv"
    out.write_text("earlier result\n")
    case = corpus.case_non_numeric(tmp_path, model[1].genes)
    status, _, stderr = run(capsys, impute_argv(case, model[0], out, "--overwrite"))
    assert status == 2 and "'high' is not a number" in stderr
    assert out.read_text() == "earlier result\n"
    cohort_dir = tmp_path / "cohort"
    model[1].save(cohort_dir)
    before = {p.name: p.read_bytes() for p in cohort_dir.iterdir()}
    status, _, stderr = run(capsys, import_argv(case, cohort_dir) + ["--overwrite"])
    assert status == 2 and "'high' is not a number" in stderr
    assert {p.name: p.read_bytes() for p in cohort_dir.iterdir()} == before


@pytest.mark.parametrize("name", list(corpus.ACCEPTED))
def test_accepted_inputs_import_and_impute(name, model, tmp_path, capsys):
    case = corpus.ACCEPTED[name](tmp_path, model[1].genes)
    status, stdout, stderr = run(capsys, import_argv(case, tmp_path / "cohort"))
    assert status == 0, stderr
    assert "Imported cohort" in stdout and (tmp_path / "cohort" / "cohort.json").is_file()
    if case.warning:
        assert re.search(case.warning, stderr), stderr
    out = tmp_path / "imputed.csv"
    status, stdout, stderr = run(capsys, impute_argv(case, model[0], out))
    assert status == 0, stderr
    assert "error" not in stderr
    if case.expected_warning("impute"):
        assert re.search(case.expected_warning("impute"), stderr), stderr
    result = pd.read_csv(out, index_col=0)
    assert not result.isna().any().any()  # every missing value filled


def test_warnings_are_printed_once(model, tmp_path, capsys):
    case = corpus.case_sample_all_missing(tmp_path, model[1].genes)
    status, _, stderr = run(capsys, impute_argv(case, model[0], tmp_path / "imputed.csv"))
    assert status == 0
    assert stderr.count("have no observed value at all") == 1, stderr


def test_missing_tokens_are_missing_and_observed_values_kept(model, tmp_path, capsys):
    case = corpus.case_missing_tokens(tmp_path, model[1].genes)
    out = tmp_path / "imputed.csv"
    assert run(capsys, impute_argv(case, model[0], out))[0] == 0
    given = pd.read_csv(case.path, index_col=0, na_values=["NA", "n/a", "-"])
    result = pd.read_csv(out, index_col=0)[given.columns]
    observed = given.notna().to_numpy()
    assert (~observed).sum() == 4
    np.testing.assert_allclose(result.to_numpy()[observed], given.to_numpy()[observed], rtol=1e-5)


def test_bom_and_crlf_read_like_a_plain_file(model, tmp_path, capsys):
    case = corpus.case_bom_crlf(tmp_path, model[1].genes)
    out = tmp_path / "imputed.csv"
    assert run(capsys, impute_argv(case, model[0], out))[0] == 0
    result = pd.read_csv(out, index_col=0)
    assert result.index.name == "sample_id"  # no BOM glued to the first header cell
    assert list(result.columns[:3]) == model[1].genes["symbol"].iloc[:3].tolist()


def test_versioned_ids_and_genes_by_samples_layout_are_kept(model, tmp_path, capsys):
    case = corpus.case_versioned_ids(tmp_path, model[1].genes)
    out = tmp_path / "imputed.csv"
    assert run(capsys, impute_argv(case, model[0], out))[0] == 0
    result = pd.read_csv(out, index_col=0)
    assert result.index[0] == f"{model[1].genes['ensembl_gene_id'].iloc[0]}.12"  # genes stay rows, as given
    assert list(result.columns) == ["S1", "S2", "S3", "S4"]


# ------------------------------------------------------------------------------------- model-specific
def test_no_gene_matching_the_model(model, tmp_path, capsys):
    case = corpus.case_no_model_gene(tmp_path, model[1].genes)
    out = tmp_path / "imputed.csv"
    assert_refused(capsys, impute_argv(case, model[0], out), case.error, out)


def test_one_percent_of_the_genes_warns_and_still_imputes(model, tmp_path, capsys):
    case = corpus.case_low_coverage(tmp_path, model[1].genes)
    out = tmp_path / "imputed.csv"
    status, stdout, stderr = run(capsys, impute_argv(case, model[0], out))
    assert status == 0, stderr
    assert re.search(case.warning, stderr), stderr
    assert "(4/400 model genes in the input" in stdout
    result = pd.read_csv(out, index_col=0)
    assert result.shape == (4, 400) and not result.isna().any().any()


def test_unknown_tissue_suggests_the_closest_names(model, tmp_path, capsys):
    case = corpus.case_bom_crlf(tmp_path, model[1].genes)
    out = tmp_path / "imputed.csv"
    argv = ["impute", "--checkpoint", model[0], "--input", case.path, "--out", out, "--tissue", "Whole Blod"]
    assert_refused(capsys, argv, r"Unknown tissue 'Whole Blod' \(did you mean 'Whole Blood'", out)


def test_unknown_tissue_in_a_sample_table(model, tmp_path, capsys):
    case = corpus.case_bom_crlf(tmp_path, model[1].genes)
    samples = tmp_path / "samples.csv"
    samples.write_text("sample_id,tissue\nS1,Lung\nS2,Lung\nS3,Brain - Cortx\nS4,Lung\n")
    out = tmp_path / "imputed.csv"
    argv = ["impute", "--checkpoint", model[0], "--input", case.path, "--out", out, "--samples", samples]
    assert_refused(capsys, argv, r"Unknown tissue 'Brain - Cortx' \(did you mean 'Brain - Cortex'", out)


# ------------------------------------------------------------------------------------- checkpoints
def checkpoint_cases(tmp_path: Path, good: Path) -> dict[str, corpus.Case]:
    return {"foreign": corpus.checkpoint_foreign(tmp_path), "pickle": corpus.checkpoint_pickle(tmp_path),
            "truncated": corpus.checkpoint_truncated(tmp_path, good)}


@pytest.mark.parametrize("kind", ["foreign", "pickle", "truncated"])
def test_impute_and_evaluate_refuse_a_bad_checkpoint(kind, model, tmp_path, capsys, monkeypatch):
    case = checkpoint_cases(tmp_path, model[0])[kind]
    upload = corpus.case_bom_crlf(tmp_path, model[1].genes)
    out = tmp_path / "imputed.csv"
    argv = ["impute", "--checkpoint", case.path, "--input", upload.path, "--out", out, "--tissue", TISSUE]
    assert_refused(capsys, argv, case.error, out)
    out = tmp_path / "record.json"
    argv = ["evaluate", "--checkpoint", case.path, "--cohort", model[2], "--json", out]
    assert_refused(capsys, argv, case.error, out)


def test_a_pickle_checkpoint_is_never_unpickled(model, tmp_path, capsys):
    import pickle

    flag = tmp_path / "executed"

    class Payload:  # unpickling this would create the flag file
        def __reduce__(self):
            return (Path.touch, (flag,))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Payload()))
    upload = corpus.case_bom_crlf(tmp_path, model[1].genes)
    out = tmp_path / "imputed.csv"
    argv = ["impute", "--checkpoint", path, "--input", upload.path, "--out", out, "--tissue", TISSUE]
    assert_refused(capsys, argv, r"evil\.safetensors is not a GTEx Imputation Studio checkpoint", out)
    assert not flag.exists()


@pytest.fixture(scope="module")
def other_gene_set(model, tmp_path_factory):
    """A checkpoint trained on another gene set (another simulated cohort, other genes)."""
    cohort = simulate_cohort(n_donors=20, n_genes=400, seed=7)
    imputer = make_imputer("mean").fit(cohort.split("train"))
    path = tmp_path_factory.mktemp("other") / "other.safetensors"
    save_checkpoint(imputer, path, {"genes": cohort.genes, "transform": cohort.transform, "tissues": cohort.tissues})
    return path, cohort


def test_evaluate_on_a_cohort_without_the_models_genes_scores_it_as_another_cohort(model, other_gene_set, capsys):
    """A cohort that is not the model's own is scored as another cohort (issue #14): the gene overlap is
    reported and the model genes it lacks count as unobserved."""
    argv = ["evaluate", "--checkpoint", other_gene_set[0], "--cohort", model[2]]
    code = main([str(a) for a in argv])
    out = capsys.readouterr().out
    n_shared = len(set(other_gene_set[1].genes["symbol"]) & set(model[1].genes["symbol"]))
    n_model = other_gene_set[1].n_genes
    assert code == 0
    assert f"genes: {n_shared} of the model's {n_model} in the cohort" in out
    assert f"{n_model - n_shared} absent, unobserved in every sample" in out and "other cohort" in out


def test_impute_with_a_checkpoint_for_another_gene_set(model, other_gene_set, tmp_path, capsys):
    """An upload made for one model, imputed with another: only the shared genes count."""
    model_genes = set(other_gene_set[1].genes["symbol"])
    only_ours = model[1].genes[~model[1].genes["symbol"].isin(model_genes)]
    case = corpus.case_mixed_ids(tmp_path, only_ours.reset_index(drop=True))
    out = tmp_path / "imputed.csv"
    argv = ["impute", "--checkpoint", other_gene_set[0], "--input", case.path, "--out", out, "--tissue", TISSUE]
    assert_refused(capsys, argv, r"None of the \d+ gene identifiers of the upload .* is one of the model's 400 genes", out)


# ------------------------------------------------------------------------------------- prepare-gtex
def gtex_annotations(tmp_path: Path) -> tuple[Path, Path]:
    attributes = tmp_path / "attributes.txt"
    attributes.write_text("SAMPID\tSMTSD\tSMAFRZE\nS1\tLung\tRNASEQ\nS2\tLung\tRNASEQ\n")
    subjects = tmp_path / "subjects.txt"
    subjects.write_text("SUBJID\tSEX\tAGE\tDTHHRDY\nS1\t1\t20-29\t\nS2\t2\t30-39\t1\n")
    return attributes, subjects


@pytest.mark.parametrize("name", ["empty", "binary", "gct_wrong_dims"])  # no size limit: GTEx files are GBs
def test_prepare_gtex_refuses(name, model, tmp_path, capsys, monkeypatch):
    case = build(corpus.EXPRESSION_ERRORS[name], tmp_path, model[1].genes, monkeypatch)
    attributes, subjects = gtex_annotations(tmp_path)
    out = tmp_path / "cohort"
    argv = ["prepare-gtex", "--gct", case.path, "--samples", attributes, "--subjects", subjects, "--out", out,
            "--min-samples-per-tissue", "1"]
    assert_refused(capsys, argv, case.error, out)


# ------------------------------------------------------------------------------------- studies
def test_study_build_refusals(model, tmp_path, capsys):
    cohort = model[2]
    out = tmp_path / "study"
    build = ["study", "build", "--cohort", cohort, "--out", out]
    assert_refused(capsys, [*build, "--models", "pmi,magic"], r"argument --models: 'magic' given; choose among pmi, gain", out)
    assert_refused(capsys, [*build, "--models", ""], r"argument --models: no method given; choose among pmi", out)
    assert_refused(capsys, build, r"Give at least one model: --models pmi,gain and/or --config", out)
    assert_refused(capsys, [*build, "--models", "mean", "--baselines", "mean,nope"], r"argument --baselines: 'nope' given", out)
    assert_refused(capsys, ["study", "build", "--cohort", tmp_path / "nowhere", "--out", out, "--models", "mean"],
                   r"nowhere is not a cohort directory \(no cohort.json\)", out)
    assert_refused(capsys, [*build, "--models", "mean", "--max-epochs", "0"], r"argument --max-epochs: must be at least 1, got 0", out)


def test_study_build_never_replaces_what_is_not_a_study(model, tmp_path, capsys):
    cohort = model[2]
    file = tmp_path / "report.txt"
    file.write_text("mine")
    status, _, stderr = run(capsys, ["study", "build", "--cohort", cohort, "--out", file, "--models", "mean",
                                     "--overwrite"])
    assert status == 2 and re.search(r"^error: .*report\.txt is a file, not a folder", stderr)
    assert file.read_text() == "mine"
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "keep.csv").write_text("x")
    status, _, stderr = run(capsys, ["study", "build", "--cohort", cohort, "--out", folder, "--models", "mean",
                                     "--overwrite"])
    assert status == 2 and "files this project did not write (it has no study.json)" in stderr
    assert [p.name for p in folder.iterdir()] == ["keep.csv"]
    study = tmp_path / "study"
    assert run(capsys, ["study", "build", "--cohort", cohort, "--out", study, "--models", "mean", "--baselines", ""])[0] == 0
    manifest = (study / "study.json").read_text()
    again = ["study", "build", "--cohort", cohort, "--out", study, "--models", "mean", "--baselines", "",
             "--title", "Second"]
    status, _, stderr = run(capsys, again)
    assert status == 2 and "already holds a study. Replace it with --overwrite" in stderr
    assert (study / "study.json").read_text() == manifest
    assert run(capsys, [*again, "--overwrite"])[0] == 0
    assert '"title": "Second"' in (study / "study.json").read_text()


def test_study_add_model_and_info_refusals(model, tmp_path, capsys):
    cohort = model[2]
    study = tmp_path / "study"
    assert run(capsys, ["study", "build", "--cohort", cohort, "--out", study, "--models", "mean", "--baselines", ""])[0] == 0
    manifest = (study / "study.json").read_text()
    for argv, pattern in [
        (["--method", "knn", "--checkpoint", model[0]], r"Give exactly one of --method, --config and --checkpoint"),
        ([], r"Give exactly one of --method, --config and --checkpoint"),
        (["--method", "mean"], r"already has a model 'mean_all'; choose another key \(--key\)"),
        (["--checkpoint", tmp_path / "none.safetensors"], r"none\.safetensors"),
        (["--method", "magic"], r"argument --method: invalid choice: 'magic'"),
    ]:
        status, stdout, stderr = run(capsys, ["study", "add-model", "--study", study, *argv])
        assert status == 2 and stderr.startswith("error: ") and re.search(pattern, stderr), stderr
        assert (study / "study.json").read_text() == manifest
    status, _, stderr = run(capsys, ["study", "info", "--study", tmp_path])
    assert status == 2 and "is not a study folder (no study.json)" in stderr


def test_import_of_a_real_mas5_matrix_needs_a_treatment_of_negative_values(tmp_path, capsys):
    data = Path(__file__).parent / "data" / "biobase_sample"
    out = tmp_path / "cohort"
    argv = ["import", "--expression", data / "expression.csv", "--samples", data / "samples.csv",
            "--tissue-column", "group", "--out", out]
    assert_refused(capsys, argv, r"negative values \(first at sample 'A', gene 'AFFX-BioDn-5_st'; 327 in all\)"
                                 r".*--negatives clip", out)
    status, stdout, _ = run(capsys, [*argv, "--negatives", "clip"])
    assert status == 0
    assert ("26 samples x 200 genes, 2 groups, 26 donors (groups from column 'group': Case, Control; scale tpm: "
            "values up to 1.04e+04") in stdout
    assert "327 negative value(s) set to 0" in stdout
