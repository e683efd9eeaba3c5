"""A donor's uncollected tissues from an upload of the tissues they gave (CLI ``impute --donors``, the Donors page).

The **donors table** (CSV / TSV; columns matched case-insensitively) says whose samples the expression file
holds and what to predict:

- ``donor_id`` (or ``donor``, ``subject``, ``SUBJID``) and the group column (``tissue``, or the name given):
  required on every row;
- ``sample_id``: on the rows of the expression file's samples (every sample needs one); a row with an empty
  ``sample_id``, or one that the file lacks, is a **target**: that donor's profile in that group is predicted;
- ``sex``, ``age``: optional (a donor's first given value serves all their rows).

The file's samples are read, mapped onto the model's genes and scaled as on the Impute page
(:func:`~gtex_models.interfaces.upload.prepare_upload`); each target becomes an empty sample of its donor,
which the model fills from the donor's observed samples (a donor model: ``donor-gauss``, ``donor-net``).

Example
-------
>>> table = read_donor_table("donors.csv")                                   # doctest: +SKIP
>>> result = impute_donors("expression.csv", imputer, space, table)          # doctest: +SKIP
>>> donor_result_frame(result).to_csv("targets.csv")                         # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from gtex_models.common.messages import list_examples
from gtex_models.data.cohort import Cohort
from gtex_models.data.cohort_format import SAMPLE_COLUMNS
from gtex_models.data.covariates import parse_age, parse_sex
from gtex_models.data.readers.errors import InputError
from gtex_models.data.readers.samples import GROUP_COLUMNS, read_annotation
from gtex_models.interfaces.upload import (
    NO_CALIBRATION,
    PreparedUpload,
    prepare_upload,
    resolve_tissues,
    upload_transform,
)
from gtex_models.models.base import Imputer
from gtex_models.models.calibration import Calibration, CalibrationError
from gtex_models.models.model_space import ModelSpace

DONOR_MODELS = ("donor-gauss", "donor-net", "donor-oracle")
"""Methods that predict a sample from the donor's other samples; any other model fills an empty sample with
what it expects of the group alone."""
TARGET_SEPARATOR = " | "  # a target's name: DONOR | GROUP


def read_donor_table(path: str | Path, tissue_column: str | None = None) -> pd.DataFrame:
    """Read a donors table (module docstring): ``sample_id`` ('' for targets), ``donor_id``, ``tissue``, ``sex``,
    ``age``; the group column is ``tissue_column``, else the first of :data:`GROUP_COLUMNS`. Raises
    :class:`InputError` naming what is missing."""
    aliases = {"sample_id": ("sample_id", "sample", "sampid"),
               "donor_id": ("donor_id", "donor", "subject", "subject_id", "subjid"),
               "tissue": GROUP_COLUMNS if tissue_column is None else (tissue_column,),
               "sex": ("sex", "gender"), "age": ("age",)}
    table = read_annotation(path, aliases, ["donor_id", "tissue"])
    for column in ("donor_id", "tissue"):
        empty = np.flatnonzero(table[column] == "")
        if len(empty):
            raise InputError(f"{path}: line(s) {list_examples([str(i + 2) for i in empty], quote=False)} have no "
                             f"{column}. Every row names a donor and a group ({tissue_column or ' or '.join(GROUP_COLUMNS)}).")
    table = table.reindex(columns=["sample_id", "donor_id", "tissue", "sex", "age"], fill_value="")
    given = table["sample_id"][table["sample_id"] != ""]
    if given.duplicated().any():
        raise InputError(f"{path}: sample id(s) {list_examples(given[given.duplicated()].unique().tolist())} occur "
                         "twice. Give each sample of the expression file one row.")
    return table


@dataclass
class DonorImputation:
    """The predicted targets, on the upload's scale.

    Attributes
    ----------
    values : targets x genes (index: the target's name, ``DONOR | GROUP``); the model's genes, named as in the
        upload (symbols or Ensembl IDs).
    lower, upper : calibrated interval bounds at ``interval_level`` (None without ``interval``).
    grid : donors x groups: ``collected`` (a sample of the upload), ``imputed`` (a target) or ``''``.
    scale, scale_reason : the upload's scale and why.
    warnings : what the user should know.
    """

    values: pd.DataFrame
    lower: pd.DataFrame | None
    upper: pd.DataFrame | None
    grid: pd.DataFrame
    scale: str
    scale_reason: str = ""
    interval_level: float | None = None
    warnings: list[str] = field(default_factory=list)


def donor_cohort(upload: PreparedUpload, table: pd.DataFrame, space: ModelSpace) -> tuple[Cohort, np.ndarray]:
    """The upload's samples and one empty sample per target, in model space; and which rows are targets."""
    ids = list(upload.table.sample_ids)
    rows = table.set_index("sample_id", drop=False)
    listed = table["sample_id"].isin(ids)
    absent = [s for s in ids if s not in rows.index]
    if absent:
        raise InputError(f"The donors table has no row for {len(absent)} sample(s) of the expression file, e.g. "
                         f"{list_examples(absent)}. Add a row (sample_id, donor, group) for each.")
    targets = table[~listed].reset_index(drop=True)
    if targets.empty:
        raise InputError("The donors table names no target: add a row with a donor, a group and no sample_id for "
                         "each profile to predict.")
    collected = rows.loc[ids].reset_index(drop=True)
    orphan = sorted(set(targets["donor_id"]) - set(collected["donor_id"]))
    if orphan:
        raise InputError(f"Donor(s) {list_examples(orphan)} have targets but no sample in the expression file: "
                         "there is nothing to predict their groups from. Add their samples, or drop those rows.")
    everyone = pd.concat([collected, targets], ignore_index=True)
    given = everyone[["sex", "age"]].where(everyone[["sex", "age"]] != "")
    firsts = given.groupby(everyone["donor_id"]).transform("first").fillna("")
    samples = pd.DataFrame({
        "sample_id": collected["sample_id"].tolist() + (targets["donor_id"] + TARGET_SEPARATOR + targets["tissue"]).tolist(),
        "donor_id": everyone["donor_id"].to_numpy(),
        "tissue": resolve_tissues(everyone["tissue"].tolist(), space.tissues),
        "sex": parse_sex(firsts["sex"].replace("", "unknown")),
        "age": np.asarray(parse_age(firsts["age"].replace("", "nan")), dtype=float),
    })[SAMPLE_COLUMNS]
    samples["split"] = "test"
    transform = upload_transform(space, upload.scale)
    values = np.vstack([upload.alignment.values, np.full((len(targets), space.n_genes), np.nan, np.float32)])
    cohort = Cohort(transform.forward(values), space.genes, samples, transform, {"source": "upload"})
    return cohort, np.arange(len(collected), len(everyone))


def impute_donors(source: str | Path | bytes, imputer: Imputer, space: ModelSpace, table: pd.DataFrame, *,
                  filename: str | None = None, orientation: str = "auto", scale: str = "auto",
                  duplicates: str = "error", gene_map: Mapping[str, str] | str | Path | None = None,
                  calibration: Calibration | None = None, interval: float | None = None) -> DonorImputation:
    """Predict the targets of a donors table from the donors' samples in an expression file (module docstring)."""
    upload = prepare_upload(source, space, filename=filename, orientation=orientation, scale=scale,
                            duplicates=duplicates, gene_map=gene_map)
    cohort, targets = donor_cohort(upload, table, space)
    notes = list(upload.alignment.coverage.warnings)
    if getattr(imputer, "method", "") not in DONOR_MODELS:
        notes.append(f"This is a {imputer.method} model: it imputes a sample from its own values, so a target gets its "
                     "group's expected profile, not the donor's. Use a donor model (python -m gtex_models study "
                     "add-donors, then its donors/model.safetensors).")
    same = cohort.samples.iloc[targets].merge(cohort.samples.drop(targets), on=["donor_id", "tissue"])
    if len(same):
        notes.append(f"{len(same)} target(s) name a group the donor already has a sample of (e.g. "
                     f"{same['donor_id'].iloc[0]!r}, {same['tissue'].iloc[0]!r}); they are predicted from all the "
                     "donor's samples, that one included.")
    model_values = imputer.impute(cohort)
    names = cohort.samples["sample_id"].iloc[targets].tolist()
    genes = space.genes["ensembl_gene_id" if _uses_ensembl(upload) else "symbol"].tolist()

    def frame(values: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(upload_transform(space, upload.scale).inverse(values[targets]),
                            index=pd.Index(names, name="target"), columns=genes)

    lower = upper = None
    if interval is not None:
        if calibration is None:
            raise CalibrationError(NO_CALIBRATION)
        if calibration.info.get("scenario") != "cross-tissue":
            notes.append("The model's intervals were calibrated for values missing within samples, not for whole "
                         "samples predicted from a donor's others: they may be too narrow here.")
        low, high = calibration.interval(imputer, cohort, model_values, interval)
        lower, upper = frame(low), frame(high)
    grid = cohort.samples.assign(status=np.where(np.isin(np.arange(cohort.n_samples), targets), "imputed",
                                                 "collected"))
    grid = grid.pivot_table(index="donor_id", columns="tissue", values="status", aggfunc="first").fillna("")
    return DonorImputation(frame(model_values), lower, upper, grid, upload.scale, upload.scale_reason, interval, notes)


def _uses_ensembl(upload: PreparedUpload) -> bool:
    from gtex_models.data.readers.genes import is_ensembl_gene_id

    ids = upload.table.feature_ids
    return sum(is_ensembl_gene_id(f) for f in ids) > len(ids) / 2


def donor_result_frame(result: DonorImputation, uncertainty: bool = False) -> pd.DataFrame:
    """Targets x genes, with ``GENE_lower`` and ``GENE_upper`` after each gene when ``uncertainty`` (and intervals)."""
    if not uncertainty or result.lower is None or result.upper is None:
        return result.values
    parts = {}
    for gene in result.values.columns:
        parts[gene], parts[f"{gene}_lower"], parts[f"{gene}_upper"] = (result.values[gene], result.lower[gene],
                                                                       result.upper[gene])
    return pd.DataFrame(parts, index=result.values.index)
