"""The cohort folder's format: its files, table columns, version and the schema of ``cohort.json``.

Shared by the in-memory cohort (:mod:`gtex_models.data.cohort`) and the on-disk store
(:mod:`gtex_models.data.store`), which write the same folder layout.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt
from pydantic import Strict

from gtex_models.common.atomic import OutputFolder
from gtex_models.common.choices import COMPRESSIONS
from gtex_models.common.schema import Schema

SAMPLE_COLUMNS = ["sample_id", "donor_id", "tissue", "sex", "age"]
GENE_COLUMNS = ["ensembl_gene_id", "symbol"]
SPLITS = ("train", "valid", "test")
SCALES = ("tpm", "log")
COHORT_FORMAT_VERSION = 1
COHORT_FILES = ("cohort.json", "expression.npy", "transform.npz", "samples.csv", "genes.csv")
COHORT_FOLDER = OutputFolder("cohort", ("cohort.json",))


class CohortFormatError(ValueError):
    """A cohort folder that is damaged, incomplete, or was not written by this project."""


class StoreSettings(Schema):
    """The ``store`` section of an on-disk store's ``cohort.json`` (see :class:`gtex_models.data.store.StoreWriter`)."""

    block_rows: Annotated[int, Strict(), Ge(1)]
    dataset: str
    compression: Literal[COMPRESSIONS] = "gzip"  # type: ignore[valid-type]


class CohortInfo(Schema):
    """``cohort.json`` of a cohort folder (see :meth:`gtex_models.data.cohort.Cohort.save`) or of a store."""

    format_version: Annotated[int, Strict(), Ge(1)]
    scale: Literal[SCALES]  # type: ignore[valid-type]
    pseudocount: Annotated[float, Gt(0.0)]
    meta: dict[str, Any] = {}
    store: StoreSettings | None = None
