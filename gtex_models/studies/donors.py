"""A study's cross-tissue results: the Donors page's model, scores and curves, kept in ``STUDY/donors/``.

Layout (written by :func:`add_donors`, CLI ``python -m gtex_models study add-donors``)::

    STUDY/donors/
      model.safetensors     the best donor model (method, genes, groups, transform, its cross-tissue record)
                            with its cross-tissue interval calibration
      benchmark.json        every method's cross-tissue record (:func:`~gtex_models.analysis.cross_tissue.run_cross_tissue`)
      boxes.csv             per method and target tissue: quartiles, fences, mean of the per-gene R² (box plots)
      by_sources.csv        per method: R² against the number of source tissues

The folder is written beside its place and renamed (atomic); the study's manifest is not touched, so the
study stays readable by versions without the Donors page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from gtex_models.analysis.cross_tissue import DEFAULT_METHODS, CrossTissueResult, has_donors, run_cross_tissue
from gtex_models.common.atomic import OutputFolder
from gtex_models.common.progress import ProgressCallback
from gtex_models.data.cohort import Cohort
from gtex_models.models.calibration import DEFAULT_LEVEL
from gtex_models.models.checkpoints import load_checkpoint, save_checkpoint
from gtex_models.studies.study import Study

DONORS_DIR = "donors"
MODEL_FILE = "model.safetensors"
DONORS_FOLDER = OutputFolder("cross-tissue results", ("benchmark.json",))
BOX_COLUMNS = ("method", "tissue", "q1", "median", "q3", "lowerfence", "upperfence", "mean", "n_genes", "n_donors")
NOT_A_MODEL = ("donor-oracle",)  # scored, never saved as the model (it only reads simulated cohorts)


def box_statistics(per_tissue: pd.DataFrame) -> pd.DataFrame:
    """Per method and tissue: quartiles, Tukey fences (1.5 IQR, within the data), mean, genes and test donors."""
    rows = []
    for (method, tissue), group in per_tissue.dropna(subset=["r2"]).groupby(["method", "tissue"], sort=False):
        r2 = group["r2"]
        q1, median, q3 = r2.quantile([0.25, 0.5, 0.75])
        iqr = q3 - q1
        rows.append((method, tissue, q1, median, q3, r2[r2 >= q1 - 1.5 * iqr].min(), r2[r2 <= q3 + 1.5 * iqr].max(),
                     r2.mean(), len(r2), int(group["n_donors"].iloc[0])))
    return pd.DataFrame(rows, columns=list(BOX_COLUMNS))


def best_method(records: Sequence[dict[str, Any]]) -> str:
    """The method with the highest mean R² over target tissues, the oracle aside."""
    usable = [r for r in records if r["method"] not in NOT_A_MODEL and pd.notna(r.get("r2_mean"))]
    if not usable:
        raise ValueError("No method gave a cross-tissue score to choose the model from.")
    return max(usable, key=lambda r: r["r2_mean"])["method"]


def write_donor_results(study_dir: str | Path, result: CrossTissueResult, cohort: Cohort, overwrite: bool = True
                        ) -> Path:
    """Write ``STUDY/donors/`` (module docstring) from a cross-tissue benchmark of the study's cohort."""
    method = best_method(result.records)
    record = next(r for r in result.records if r["method"] == method)
    imputer = result.imputers[method]
    target = Path(study_dir) / DONORS_DIR
    with DONORS_FOLDER.write(target, overwrite) as tmp:
        save_checkpoint(imputer, tmp / MODEL_FILE,
                        {"genes": cohort.genes, "tissues": getattr(imputer, "tissues", None) or cohort.tissues,
                         "transform": cohort.transform, "evaluation": record, "task": "cross-tissue"},
                        dtype="float16", calibration=result.calibrations.get(method))
        (tmp / "benchmark.json").write_text(json.dumps({"model": method, "records": result.records}, indent=2) + "\n")
        box_statistics(result.per_tissue).to_csv(tmp / "boxes.csv", index=False)
        result.by_sources.to_csv(tmp / "by_sources.csv", index=False)
    return target


def add_donors(study: Study, methods: Sequence[str] | None = None, configs: dict[str, dict[str, Any]] | None = None,
               interval: float = DEFAULT_LEVEL, seed: int = 0, progress: ProgressCallback | None = None,
               cache_dir: Path | None = None) -> CrossTissueResult:
    """Run the cross-tissue benchmark on the study's cohort (its donor split) and store it for the Donors page.

    ``methods`` default to :data:`~gtex_models.analysis.cross_tissue.DEFAULT_METHODS`, plus the donor oracle
    on a simulated cohort.
    """
    if not study.has_cohort:
        raise ValueError(f"Study {study.title!r} has no cohort to fit a cross-tissue model on.")
    cohort = study.cohort(cache_dir)
    if not has_donors(cohort):
        raise ValueError(f"The cohort of study {study.title!r} has no donor with samples in two or more groups, so "
                         "no donor's group can be predicted from their others. Import it with a donor column "
                         "(donor_id, subject, SUBJID) in the sample table.")
    if methods is None:
        methods = [*DEFAULT_METHODS, *(["donor-oracle"] if cohort.meta.get("simulation") else [])]
    result = run_cross_tissue(cohort, methods, configs, seed, interval, progress=progress)
    write_donor_results(study.path, result, cohort)
    return result


@dataclass(frozen=True)
class DonorResults:
    """What ``STUDY/donors/`` holds, read (module docstring)."""

    path: Path
    model: str
    records: list[dict[str, Any]]
    boxes: pd.DataFrame
    by_sources: pd.DataFrame

    @classmethod
    def open(cls, study: Study) -> "DonorResults | None":
        """The study's cross-tissue results, or None when it has none."""
        path = study.path / DONORS_DIR
        if not (path / "benchmark.json").is_file():
            return None
        summary = json.loads((path / "benchmark.json").read_text(encoding="utf-8"))
        return cls(path, str(summary["model"]), list(summary["records"]), pd.read_csv(path / "boxes.csv"),
                   pd.read_csv(path / "by_sources.csv"))

    def load_model(self) -> tuple[Any, dict[str, Any]]:
        """The stored donor model and its checkpoint metadata (its calibration under ``calibration``)."""
        return load_checkpoint(self.path / MODEL_FILE)
