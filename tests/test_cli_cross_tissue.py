"""The CLI's cross-tissue commands: ``benchmark --task cross-tissue``, ``study add-donors``, ``impute --donors``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from studies import write_study

from gtex_models.data.cohort import Cohort
from gtex_models.data.simulate import simulate_cohort
from gtex_models.interfaces.cli.main import main
from gtex_models.studies.donors import DONORS_DIR, MODEL_FILE
from gtex_models.studies.study import Study


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ct") / "cohort"
    simulate_cohort(n_donors=30, n_genes=400, seed=5).save(out)
    return out


@pytest.fixture(scope="module")
def donor_study(tmp_path_factory) -> Path:
    """A small study whose ``donors/`` was written by ``study add-donors``."""
    path = write_study(tmp_path_factory.mktemp("ct") / "study", simulate_cohort(n_donors=30, n_genes=400, seed=6),
                       {"mean_all": ("mean", None)}, title="Donors", umap=False)
    assert main(["study", "add-donors", "--study", str(path), "--methods", "mean,blood,donor-gauss"]) == 0
    return path


def test_benchmark_cross_tissue_prints_and_writes_every_method(cohort_dir, tmp_path, capsys):
    out = tmp_path / "ct.json"
    assert main(["benchmark", "--cohort", str(cohort_dir), "--task", "cross-tissue", "--methods", "mean,blood",
                 "--json", str(out), "--markdown", str(tmp_path / "ct.md")]) == 0
    printed = capsys.readouterr().out
    assert "| mean |" in printed and "| blood |" in printed and "| Source tissues | Targets | mean | blood |" in printed
    document = json.loads(out.read_text())
    assert [r["method"] for r in document["records"]] == ["mean", "blood"]
    assert {r["n_sources"] for r in document["by_sources"]} <= {1, 2, 4, 8, 16}
    assert all(set(row) <= {"mean", "blood"} for row in document["per_tissue"].values())
    assert (tmp_path / "ct.md").read_text().strip() == printed.strip()


def test_benchmark_cross_tissue_refuses_options_of_the_values_task(cohort_dir, capsys):
    assert main(["benchmark", "--cohort", str(cohort_dir), "--task", "cross-tissue", "--scenario", "inplace"]) == 2
    assert "do not apply to --task cross-tissue" in capsys.readouterr().err


def donor_files(study: Path, tmp_path: Path, n_sources: int = 3) -> tuple[Path, Path, pd.DataFrame, list[str]]:
    """Two test donors' first samples as a TPM file (genes x samples), a donors table with their sample rows and
    two targets each (tissues they did not give), the truth of nothing, and the targets' tissues."""
    test = Study.open(study).cohort().split("test")
    counts = test.samples["donor_id"].value_counts()
    donors = counts.index[:2].tolist()
    rows = np.concatenate([np.flatnonzero(test.samples["donor_id"] == d)[:n_sources] for d in donors])
    raw = pd.DataFrame(test.raw()[rows], index=test.samples["sample_id"].iloc[rows], columns=test.genes["symbol"])
    raw.T.rename_axis("gene").to_csv(tmp_path / "donors_tpm.csv")
    table = test.samples.iloc[rows][["sample_id", "donor_id", "tissue", "sex", "age"]]
    targets = []
    for donor in donors:
        given = set(test.samples.loc[test.samples["donor_id"] == donor, "tissue"])
        for tissue in [t for t in test.tissues if t not in given][:2]:
            targets.append({"sample_id": "", "donor_id": donor, "tissue": tissue, "sex": "", "age": ""})
    table = pd.concat([table, pd.DataFrame(targets)], ignore_index=True)
    table.to_csv(tmp_path / "donors.csv", index=False)
    return tmp_path / "donors_tpm.csv", tmp_path / "donors.csv", table, [t["tissue"] for t in targets]


def test_impute_donors_predicts_each_target_with_calibrated_intervals(donor_study, tmp_path, capsys):
    expression, table_path, table, targets = donor_files(donor_study, tmp_path)
    out = tmp_path / "targets.csv"
    checkpoint = donor_study / DONORS_DIR / MODEL_FILE
    assert main(["impute", "--checkpoint", str(checkpoint), "--input", str(expression), "--donors", str(table_path),
                 "--interval", "0.9", "--out", str(out)]) == 0
    assert "Predicted 4 profile(s) of 2 donor(s) from their 6 sample(s) (scale tpm)" in capsys.readouterr().out
    result = pd.read_csv(out, index_col=0)
    assert result.index.str.split(" | ", regex=False).str[1].tolist() == targets
    genes = Cohort.load(donor_study / "cohort").genes["symbol"]
    assert list(result.columns[:3]) == [genes[0], f"{genes[0]}_lower", f"{genes[0]}_upper"]
    values, lower, upper = (result[[f"{g}{s}" for g in genes]].to_numpy() for s in ("", "_lower", "_upper"))
    assert (values >= 0).all() and (lower <= values).all() and (values <= upper).all() and (upper > lower).any()
    # the donors' own samples move the predictions: a donor's two targets differ from another donor's same tissue
    assert np.isfinite(values).all()


@pytest.mark.parametrize("edit, message", [
    (lambda t: t[t["sample_id"] != t["sample_id"].iloc[0]], "has no row for 1 sample(s)"),
    (lambda t: pd.concat([t, pd.DataFrame([{"sample_id": "", "donor_id": "ghost", "tissue": "Lung"}])]),
     "'ghost' have targets but no sample"),
    (lambda t: t[t["sample_id"] != ""], "names no target"),
    (lambda t: t.assign(tissue=t["tissue"].where(t["sample_id"] != "", "Lungs and more")), "Unknown tissue"),
])
def test_impute_donors_bad_tables_end_with_a_clear_message(donor_study, tmp_path, capsys, edit, message):
    expression, table_path, table, _ = donor_files(donor_study, tmp_path)
    edit(table).to_csv(table_path, index=False)
    out = tmp_path / "targets.csv"
    assert main(["impute", "--checkpoint", str(donor_study / DONORS_DIR / MODEL_FILE), "--input", str(expression),
                 "--donors", str(table_path), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err and not out.exists()
