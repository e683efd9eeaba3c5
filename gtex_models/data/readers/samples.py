"""Sample tables: the group column, donors, sex and age read from an annotation file and joined to the expression.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from gtex_models.common.messages import closest_names, list_examples
from gtex_models.data.cohort_format import SAMPLE_COLUMNS
from gtex_models.data.covariates import parse_age, parse_sex
from gtex_models.data.readers.errors import InputError, check_file_size, require_file
from gtex_models.data.readers.text import DELIMITER_NAMES, check_unique, first_line, open_text, sniff_delimiter

UNKNOWN_TISSUE = "Unknown"
GROUP_COLUMNS = ("tissue", "smtsd", "group")
"""Columns taken as the groups without asking, in this order (matched case-insensitively)."""
ONE_GROUP = "none"
"""The group column that puts every sample in one group (CLI: ``--tissue-column none``)."""
_SAMPLE_COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "sample_id": ("sample_id", "sample", "sampid"),
    "donor_id": ("donor_id", "donor", "subject", "subject_id", "subjid"),
    "sex": ("sex", "gender"),
    "age": ("age",),
}


# --------------------------------------------------------------------------- sample tables
def read_annotation(path: str | Path, columns: Mapping[str, Sequence[str]], required: Sequence[str],
                    quoting: int = csv.QUOTE_MINIMAL, limit_size: bool = True) -> pd.DataFrame:
    """Read the wanted columns of a delimited annotation table, as strings, under canonical names.

    Parameters
    ----------
    path : CSV/TSV file, plain or gzipped; delimiter sniffed from the header.
    columns : canonical name -> accepted header names (matched case-insensitively).
    required : canonical names that must be present; the others are left out when absent.
    quoting : :mod:`csv` quoting mode (``QUOTE_NONE`` for GTEx files, whose free text has quotes).
    limit_size : apply the input-size limit (off for the large public GTEx files).
    """
    path = check_file_size(path) if limit_size else require_file(path)
    with open_text(path) as stream:
        header_line = first_line(stream, path)
        delimiter = sniff_delimiter(header_line, path)
        header = [h.strip() for h in next(csv.reader([header_line], delimiter=delimiter, quoting=quoting))]
        lowered = [h.lower() for h in header]
        found: dict[str, int] = {}
        for name, aliases in columns.items():
            index = next((lowered.index(a.lower()) for a in aliases if a.lower() in lowered), None)
            if index is not None:
                found[name] = index
            elif name in required:
                suggestions = closest_names(aliases[0], header)
                hint = f" Did you mean {list_examples(suggestions, 3)}?" if suggestions else ""
                raise InputError(
                    f"{path}: no {name} column (accepted names: {', '.join(aliases)}; the header has "
                    f"{list_examples(header, 8)}).{hint} Rename the column or choose another one."
                )
        try:
            table = pd.read_csv(stream, sep=delimiter, header=None, dtype=str, keep_default_na=False,
                                quoting=quoting, usecols=sorted(set(found.values())))
        except pd.errors.EmptyDataError:
            raise InputError(f"{path} has a header but no data rows. Add one row per sample.") from None
        except (pd.errors.ParserError, ValueError) as error:
            raise InputError(
                f"{path}: could not be parsed as a {DELIMITER_NAMES[delimiter]}-separated table "
                f"({error}). Every row needs as many fields as the header."
            ) from None
    return pd.DataFrame({name: table[i].fillna("").str.strip() for name, i in found.items()})


def table_columns(path: str | Path) -> list[str]:
    """The column names of a delimited table (CSV/TSV, plain or gzipped), e.g. to offer them as choices."""
    path = check_file_size(path)
    with open_text(path) as stream:
        header_line = first_line(stream, path)
        delimiter = sniff_delimiter(header_line, path)
    return [h.strip() for h in next(csv.reader([header_line], delimiter=delimiter))]


@dataclass(frozen=True)
class GroupColumnChoice:
    """Which column of a sample table holds the groups (:func:`choose_group_column`).

    Attributes
    ----------
    column : the column's name as written in the table, or None: every sample in one group.
    reason : how it was chosen, e.g. ``"the table's 'group' column"``.
    candidates : the table's plausible group columns (values that repeat), to offer or list when none was
        chosen; with their numbers of distinct values.
    """

    column: str | None
    reason: str
    candidates: tuple[tuple[str, int], ...] = ()

    @property
    def needs_answer(self) -> bool:
        """No column was chosen although the table has plausible ones: ask the user (the app) or refuse (CLI)."""
        return self.column is None and bool(self.candidates)

    def require(self, path: str | Path) -> "GroupColumnChoice":
        """This choice, or an :class:`InputError` listing the plausible columns when :attr:`needs_answer`."""
        if self.needs_answer:
            listed = ", ".join(f"{name!r} ({n} values)" for name, n in self.candidates)
            raise InputError(
                f"{path} has no {', '.join(GROUP_COLUMNS[:-1])} or {GROUP_COLUMNS[-1]} column, so it is not clear "
                f"which column holds the sample groups; plausible ones: {listed}. Name it (CLI: --tissue-column COLUMN), "
                f"or put every sample in one group (CLI: --tissue-column {ONE_GROUP}).")
        return self


def choose_group_column(path: str | Path, requested: str | None = None) -> GroupColumnChoice:
    """The group column of a sample table, chosen the same way by the CLI's ``import`` and the app's New study page.

    ``requested`` (a column name, or :data:`ONE_GROUP`) is taken as given. Otherwise the first of
    :data:`GROUP_COLUMNS` the table has; failing that, no column, with the table's plausible group columns
    (besides the sample, donor, sex and age columns: text whose values repeat, 2 to half as many distinct
    values as rows) as ``candidates``: the app asks which one, the CLI refuses (:meth:`GroupColumnChoice.require`).
    Without any plausible column, every sample is in one group.
    """
    header = table_columns(path)
    lowered = {name.lower(): name for name in reversed(header)}
    if requested is not None:
        if requested.lower() == ONE_GROUP and ONE_GROUP not in lowered:
            return GroupColumnChoice(None, "every sample in one group, as asked")
        return GroupColumnChoice(lowered.get(requested.lower(), requested), f"column {requested!r}, as asked")
    for name in GROUP_COLUMNS:
        if name in lowered:
            return GroupColumnChoice(lowered[name], f"the table's {lowered[name]!r} column")
    candidates = tuple(plausible_group_columns(path))
    reason = "no plausible group column in the table, so every sample is in one group"
    return GroupColumnChoice(None, "" if candidates else reason, candidates)


def plausible_group_columns(path: str | Path) -> list[tuple[str, int]]:
    """Columns of a sample table that could hold groups, with their numbers of distinct values: not the sample,
    donor, sex or age column, and values that repeat (at least 2 distinct ones, at most half as many as rows)."""
    header = table_columns(path)
    known = {alias for aliases in _SAMPLE_COLUMN_ALIASES.values() for alias in aliases}
    others = [name for name in header if name.lower() not in known]
    if not others:
        return []
    table = read_annotation(path, {name: (name,) for name in others}, required=[])
    found = []
    for name in others:
        values = table[name][table[name] != ""] if name in table else pd.Series([], dtype=str)
        distinct = values.nunique()
        if 2 <= distinct <= len(table) / 2:
            found.append((name, int(distinct)))
    return found


def default_samples(sample_ids: Sequence[str]) -> pd.DataFrame:
    """A sample table with defaults: each sample its own donor, tissue Unknown, sex unknown, no age."""
    return pd.DataFrame({
        "sample_id": list(sample_ids),
        "donor_id": list(sample_ids),
        "tissue": UNKNOWN_TISSUE,
        "sex": "unknown",
        "age": np.full(len(sample_ids), np.nan),
    })[SAMPLE_COLUMNS]


def read_samples_table(path: str | Path, tissue_column: str | None = "tissue") -> pd.DataFrame:
    """Read a sample table: ``sample_id``, ``donor_id``, ``tissue``, ``sex``, ``age``.

    Column names are matched case-insensitively (``sample``/``SAMPID``, ``donor``/``subject``/
    ``SUBJID``, ``gender``, ...). Only the sample ID is required: without a donor column each sample
    is its own donor; without a tissue column (or with ``tissue_column`` None, see :func:`choose_group_column`)
    all samples are in tissue ``Unknown``; sex defaults to unknown and age to NaN. Sex is parsed by
    :func:`~gtex_models.data.covariates.parse_sex`, age by :func:`~gtex_models.data.covariates.parse_age`
    (GTEx brackets become their centre).
    """
    default_tissue = tissue_column is not None and tissue_column.lower() == "tissue"
    tissue_aliases = (tissue_column, "smtsd") if default_tissue else (tissue_column,)
    aliases = {**_SAMPLE_COLUMN_ALIASES, "tissue": tissue_aliases} if tissue_column else dict(_SAMPLE_COLUMN_ALIASES)
    required = ["sample_id"] if default_tissue or tissue_column is None else ["sample_id", "tissue"]
    table = read_annotation(path, aliases, required)
    samples = default_samples(table["sample_id"].tolist())
    check_unique(samples["sample_id"].tolist(), "sample", "samples table", Path(path))
    if "donor_id" in table:
        samples["donor_id"] = table["donor_id"].where(table["donor_id"] != "", samples["sample_id"])
    if "tissue" in table:
        empty = samples["sample_id"][table["tissue"] == ""].tolist()
        if empty:
            raise InputError(
                f"{path}: no tissue for sample(s) {list_examples(empty)} in column {tissue_column!r}. "
                "Fill in every sample's tissue, or leave out the column (all samples become 'Unknown')."
            )
        samples["tissue"] = table["tissue"]
    if "sex" in table:
        samples["sex"] = parse_sex(table["sex"])
    if "age" in table:
        samples["age"] = parse_age(table["age"])
    return samples


# --------------------------------------------------------------------------- cohort
def join_samples(sample_ids: Sequence[str], annotation: pd.DataFrame, expression_name: str,
                 samples_name: str) -> tuple[pd.DataFrame, list[str]]:
    """The rows of a sample table (:func:`read_samples_table`) for ``sample_ids``, in their order.

    Returns the rows and warnings (sample-table rows that are not in the expression file).

    Raises
    ------
    InputError
        When a sample of the expression file has no row.
    """
    indexed = annotation.set_index("sample_id", drop=False)
    absent = [s for s in sample_ids if s not in indexed.index]
    if absent:
        raise InputError(
            f"{samples_name} has no row for {len(absent)} sample(s) of {expression_name}, e.g. "
            f"{list_examples(absent)}. Add a row for each (the sample id must match the expression file exactly)."
        )
    extra = len(indexed) - len(set(sample_ids))
    messages = [f"{extra} sample(s) of the samples table are not in {expression_name}; ignored."] if extra else []
    return indexed.loc[list(sample_ids)].reset_index(drop=True), messages
