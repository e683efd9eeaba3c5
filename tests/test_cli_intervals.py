"""The command line's calibrated intervals: impute --interval, evaluate --interval, benchmark --interval, calibrate."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gtex_models.data.cohort import Cohort
from gtex_models.interfaces.cli.main import main
from gtex_models.models.checkpoints import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_intervals") / "cohort"
    assert main(["simulate", "--out", str(out), "--donors", "30", "--genes", "400", "--seed", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def checkpoints(cohort_dir, tmp_path_factory):
    """PMI (3 epochs) and KNN trained by the CLI: both calibrated on the validation donors when saved."""
    folder = tmp_path_factory.mktemp("checkpoints")
    paths = {"pmi": folder / "pmi.safetensors", "knn": folder / "knn.safetensors"}
    assert main(["train", "--cohort", str(cohort_dir), "--method", "pmi", "--max-epochs", "3",
                 "--out", str(paths["pmi"])]) == 0
    assert main(["train", "--cohort", str(cohort_dir), "--method", "knn", "--out", str(paths["knn"])]) == 0
    return paths


@pytest.fixture(scope="module")
def partial_file(cohort_dir, tmp_path_factory):
    """Three test samples as TPM, genes x samples, every other gene blank; and their tissue."""
    cohort = Cohort.load(cohort_dir).split("test")
    raw = pd.DataFrame(cohort.raw()[:3], index=cohort.samples["sample_id"][:3], columns=cohort.genes["symbol"])
    raw.index.name = "sample_id"
    raw.iloc[:, ::2] = np.nan
    path = tmp_path_factory.mktemp("upload") / "partial.csv"
    raw.T.to_csv(path)
    return path, raw, cohort.samples["tissue"].iloc[0]


@pytest.mark.parametrize("method", ["pmi", "knn"])
def test_impute_interval_writes_lower_and_upper_around_every_value(method, checkpoints, partial_file, tmp_path, capsys):
    path, raw, tissue = partial_file
    assert load_checkpoint(checkpoints[method])[1]["calibration"] is not None  # made at training time
    out = tmp_path / "filled.csv"
    assert main(["impute", "--checkpoint", str(checkpoints[method]), "--input", str(path), "--tissue", tissue,
                 "--interval", "0.9", "--out", str(out)]) == 0
    filled = pd.read_csv(out, index_col=0)  # genes x samples, like the input
    samples = list(raw.index)
    assert list(filled.columns) == [f"{s}{suffix}" for s in samples for suffix in ("", "_lower", "_upper")]
    values, lower, upper = (filled[[f"{s}{suffix}" for s in samples]].to_numpy() for suffix in ("", "_lower", "_upper"))
    hidden = raw.T.isna().to_numpy()
    assert (lower <= values + 1e-4).all() and (values <= upper + 1e-4).all()
    assert (upper - lower)[hidden].min() > 0 and np.allclose((upper - lower)[~hidden], 0)  # observed: zero width
    assert main(["impute", "--checkpoint", str(checkpoints[method]), "--input", str(path), "--tissue", tissue,
                 "--interval", "0.99", "--out", str(tmp_path / "wide.csv")]) == 0
    wide = pd.read_csv(tmp_path / "wide.csv", index_col=0)
    widths = {name: (frame[[f"{s}_upper" for s in samples]].to_numpy() - frame[[f"{s}_lower" for s in samples]].to_numpy())[hidden]
              for name, frame in (("0.9", filled), ("0.99", wide))}
    assert (widths["0.99"] >= widths["0.9"] - 1e-4).all() and widths["0.99"].mean() > widths["0.9"].mean()


def test_evaluate_and_benchmark_report_coverage_and_width(cohort_dir, checkpoints, tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(checkpoints["pmi"]), "--cohort", str(cohort_dir), "--interval", "0.9",
                 "--json", str(tmp_path / "e.json")]) == 0
    assert "90% intervals cover" in capsys.readouterr().out
    record = json.loads((tmp_path / "e.json").read_text())[0]
    assert record["interval_level"] == 0.9 and 0.8 < record["coverage"] < 1 and record["width_median"] > 0
    assert min(record["coverage_per_group"].values()) == record["coverage_min_group"]
    assert main(["benchmark", "--cohort", str(cohort_dir), "--methods", "mean,knn", "--interval", "0.9",
                 "--json", str(tmp_path / "b.json"), "--markdown", str(tmp_path / "b.md")]) == 0
    records = json.loads((tmp_path / "b.json").read_text())
    assert [r["method"] for r in records] == ["mean", "knn"] and all(0.8 < r["coverage"] < 1 for r in records)
    header = (tmp_path / "b.md").read_text().splitlines()[0]
    assert "Coverage" in header and "Median width (log2)" in header and "per_group" not in header


def test_a_checkpoint_without_calibration_is_refused_clearly_then_calibrated(cohort_dir, checkpoints, partial_file,
                                                                             tmp_path, capsys):
    path, _, tissue = partial_file
    imputer, metadata = load_checkpoint(checkpoints["knn"])
    bare = save_checkpoint(imputer, tmp_path / "bare.safetensors",
                           {k: metadata[k] for k in ("genes", "tissues", "transform")})
    out = tmp_path / "filled.csv"
    command = ["impute", "--checkpoint", str(bare), "--input", str(path), "--tissue", tissue, "--interval", "0.9",
               "--out", str(out)]
    assert main(command) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "no interval calibration" in error and "gtex_models calibrate" in error
    assert not out.exists()
    assert main(["impute", "--checkpoint", str(bare), "--input", str(path), "--tissue", tissue, "--interval", "1.2",
                 "--out", str(out)]) == 2
    assert "argument --interval: must be an interval level between 0.5 and 0.99" in capsys.readouterr().err
    assert main(["calibrate", "--checkpoint", str(bare), "--cohort", str(cohort_dir)]) == 0
    assert "Calibrated knn intervals" in capsys.readouterr().out
    assert main(command) == 0 and "_lower" in out.read_text().splitlines()[0]
