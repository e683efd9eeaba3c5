"""Expression tables (CSV, TSV, GCT 1.2, h5ad) read into an :class:`ExpressionTable`, in either orientation.

Features that share an identifier (or resolve to the same gene) are refused, kept once or averaged;
a probe-to-gene map turns probe IDs into genes.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from gtex_models.common.choices import DUPLICATE_CHOICES, ORIENTATIONS
from gtex_models.common.messages import list_examples
from gtex_models.data.readers.errors import InputError, check_file_size
from gtex_models.data.readers.gct import read_gct
from gtex_models.data.readers.genes import gene_like_fraction, is_ensembl_gene_id, reference_lookup, strip_version
from gtex_models.data.readers.text import (
    DELIMITER_NAMES,
    HDF5_MAGIC,
    check_unique,
    first_line,
    open_text,
    parse_values,
    sniff_delimiter,
)


@dataclass
class ExpressionTable:
    """An expression matrix as read from a file, before gene mapping and transformation.

    Attributes
    ----------
    values : float32 array, samples x features; NaN marks a missing value.
    sample_ids, feature_ids : identifiers as written in the file (whitespace stripped).
    orientation : ``samples-by-genes`` or ``genes-by-samples``, the file's layout.
    warnings : things the reader noticed and the user should know.
    merges : one line per merge of features (duplicated identifiers, probes of one gene), e.g.
        ``"305 -> 300 features (duplicated gene id(s): mean)"``, for one-line summaries.
    """

    values: np.ndarray
    sample_ids: list[str]
    feature_ids: list[str]
    orientation: str
    warnings: list[str] = field(default_factory=list)
    merges: list[str] = field(default_factory=list)


def _detect_orientation(row_ids: Sequence[str], column_ids: Sequence[str], path: Path) -> str:
    rows, columns = gene_like_fraction(row_ids), gene_like_fraction(column_ids)
    if rows >= 0.5 and columns <= 0.2:
        return "genes-by-samples"
    if columns >= 0.5 and rows <= 0.2:
        return "samples-by-genes"
    raise InputError(
        f"{path}: cannot tell which axis holds the genes ({rows:.0%} of the row ids and {columns:.0%} "
        "of the column ids look like gene symbols, Ensembl IDs or probe IDs). Say which: genes-by-samples or "
        "samples-by-genes (CLI: --orientation)."
    )


# --------------------------------------------------------------------------- expression files
def _file_kind(path: Path) -> str:
    with open(path, "rb") as raw:
        magic = raw.read(len(HDF5_MAGIC))
    if magic == HDF5_MAGIC:
        return "h5ad"
    if path.name.lower().endswith((".h5ad", ".h5")):
        raise InputError(
            f"{path} is named like an .h5ad (AnnData) file but is not an HDF5 file (it starts with {magic[:8]!r}). "
            "Write it with AnnData's write_h5ad, or give a CSV/TSV/GCT file a matching extension."
        )
    with open_text(path) as stream:
        first = stream.readline(64)
    is_gct = first.startswith("#1.") or path.name.lower().endswith((".gct", ".gct.gz"))
    return "gct" if is_gct else "delimited"


def _fixed_orientation(requested: str, actual: str, what: str, path: Path) -> str:
    if requested not in ("auto", actual):
        raise InputError(
            f"{path}: {what} always has {actual.replace('-', ' ')}, but orientation={requested!r} "
            "was requested. Leave the orientation on 'auto' for this format."
        )
    return actual


def _read_delimited(path: Path) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    """Rows ids, column ids, the rows x columns matrix, and warnings, of a CSV/TSV file."""
    messages: list[str] = []
    rows: list[np.ndarray] = []
    row_ids: list[str] = []
    with open_text(path) as stream:
        header_line = first_line(stream, path)
        delimiter = sniff_delimiter(header_line, path)
        header = [h.strip() for h in next(csv.reader([header_line], delimiter=delimiter))]
        column_ids = header[1:]
        reader = csv.reader(stream, delimiter=delimiter)
        for record in _records(reader, path):
            line_number = reader.line_num + 1
            if not any(cell.strip() for cell in record):
                continue
            if not rows and len(record) == len(header) + 1:
                column_ids = header
                messages.append(
                    f"{path}: the header has one field fewer than the rows (as R's write.table writes "
                    "it); the first column is read as row ids."
                )
            if len(record) != len(column_ids) + 1:
                raise InputError(
                    f"{path}, line {line_number}: {len(record)} {DELIMITER_NAMES[delimiter]}-separated "
                    f"fields, but the header has {len(column_ids) + 1}. Every row needs an id followed "
                    "by one value per column; check the delimiter and quoting of this line."
                )
            row_ids.append(record[0].strip())
            rows.append(parse_values(record[1:], path, line_number, row_ids[-1], column_ids))
    if not rows:
        raise InputError(f"{path} has a header but no data rows. Add one row per gene or per sample.")
    return row_ids, column_ids, np.stack(rows), messages


def _records(reader: Any, path: Path) -> Iterator[list[str]]:
    """The rows of a :func:`csv.reader`; its errors (a field beyond the field-size limit, ...) become
    :class:`InputError` naming the line."""
    while True:
        start = reader.line_num + 2  # the file line where the next record starts (line 1 is the header)
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            hint = (" This usually means a quote (\") that opens a field is never closed, so the rest of the file is "
                    "read as one field: remove the stray quote or close it.") if "field larger" in str(error) else ""
            raise InputError(f"{path}, the row starting on line {start}: the table cannot be parsed ({error}).{hint}"
                             ) from None


def _read_h5ad(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    import anndata  # heavy: imported only for .h5ad files

    try:
        with warnings.catch_warnings():  # duplicated names get an InputError below instead
            warnings.filterwarnings("ignore", message=".*names are not unique")
            adata = anndata.read_h5ad(path)
    except Exception as error:  # h5py/anndata raise many types for a broken file
        raise InputError(
            f"{path} could not be read as an .h5ad (AnnData) file ({type(error).__name__}: {error}). "
            "Write it again with AnnData's write_h5ad, or export a CSV."
        ) from None
    if adata.X is None:
        raise InputError(f"{path}: the AnnData object has no .X matrix. Put the expression values in .X.")
    matrix = adata.X.toarray() if hasattr(adata.X, "toarray") else adata.X
    try:
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, reported below
            values = np.asarray(matrix, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise InputError(f"{path}: .X is not numeric ({error}). Store numbers in .X.") from None
    samples = [str(s).strip() for s in adata.obs_names]
    features = [str(f).strip() for f in adata.var_names]
    infinite = np.argwhere(np.isinf(values))
    if infinite.size:
        i, j = infinite[0]
        raise InputError(
            f"{path}: infinite value in .X at sample {samples[i]!r}, gene {features[j]!r} "
            f"({len(infinite)} in all). Replace them with finite numbers, or NaN if missing."
        )
    return samples, features, values


def read_expression(path: str | Path, orientation: str = "auto", duplicates: str = "error") -> ExpressionTable:
    """Read an expression matrix from CSV, TSV, GCT 1.2 (plain or gzipped) or h5ad.

    The format is recognised from the content. Text tables have identifiers in the first column
    and a header row; their delimiter (tab, comma or semicolon) is sniffed. GCT files hold genes in
    rows; h5ad files hold samples in ``obs`` and genes in ``var``.

    Parameters
    ----------
    path : the file; at most :func:`~gtex_models.data.readers.errors.max_input_mb` MB.
    orientation : ``auto`` (decided from which axis looks like gene identifiers),
        ``samples-by-genes`` or ``genes-by-samples``.
    duplicates : a gene identifier that occurs several times is an ``error``, or its ``first``
        occurrence is kept, or the occurrences are averaged (``mean``, on the file's scale); reported
        in the table's warnings.

    Raises
    ------
    InputError
        For any malformed input, naming the place and the fix.
    """
    if orientation not in ORIENTATIONS:
        raise InputError(f"Unknown orientation {orientation!r}; use one of {', '.join(ORIENTATIONS)}.")
    path = check_file_size(path)
    kind = _file_kind(path)
    messages: list[str] = []
    if kind == "h5ad":
        orientation = _fixed_orientation(orientation, "samples-by-genes", "an .h5ad file", path)
        sample_ids, feature_ids, values = _read_h5ad(path)
        where = {"sample": "obs_names", "gene": "var_names"}
    elif kind == "gct":
        orientation = _fixed_orientation(orientation, "genes-by-samples", "a GCT file", path)
        gct = read_gct(path)
        sample_ids, feature_ids, values = gct.columns, gct.names, gct.values
        where = {"sample": "header (line 3)", "gene": "Name column"}
    else:
        row_ids, column_ids, matrix, messages = _read_delimited(path)
        if orientation == "auto":
            orientation = _detect_orientation(row_ids, column_ids, path)
        if orientation == "genes-by-samples":
            sample_ids, feature_ids, values = column_ids, row_ids, np.ascontiguousarray(matrix.T)
            where = {"sample": "header row", "gene": "first column"}
        else:
            sample_ids, feature_ids, values = row_ids, column_ids, matrix
            where = {"sample": "first column", "gene": "header row"}
    if duplicates not in DUPLICATE_CHOICES:
        raise InputError(f"Unknown duplicates choice {duplicates!r}; use one of {', '.join(DUPLICATE_CHOICES)}.")
    check_unique(sample_ids, "sample", where["sample"], path)
    if duplicates == "error":
        check_unique(feature_ids, "gene", where["gene"], path, DUPLICATES_HINT)
    else:
        check_unique(list(dict.fromkeys(feature_ids)), "gene", where["gene"], path)  # empty ids only
    messages += empty_sample_warnings(values, sample_ids, path)
    table = ExpressionTable(values, list(sample_ids), list(feature_ids), orientation, messages)
    if duplicates != "error":
        table = merge_features(table, table.feature_ids, duplicates, f"{path}: duplicated gene id(s)")
    return table
DUPLICATES_HINT = " Or choose what to do with them: keep the first, or average them (CLI: --duplicates first|mean)."


def merge_features(table: ExpressionTable, keys: Sequence[str], how: str, what: str) -> ExpressionTable:
    """Combine the features of ``table`` that share a key: keep the ``first`` one, or the ``mean`` of
    their observed values (on the table's scale). The merged feature keeps its first identifier; a
    warning says what was merged.

    Example
    -------
    >>> table = ExpressionTable(np.array([[1.0, 3.0, 5.0]], dtype=np.float32), ["S1"], ["a", "b", "a"],
    ...                         "samples-by-genes")
    >>> merge_features(table, table.feature_ids, "mean", "duplicated ids").values.tolist()
    [[3.0, 3.0]]
    """
    index = pd.Index(list(keys))
    if not index.has_duplicates:
        return table
    counts = index.value_counts(sort=False)
    repeated = [f"{key!r} ({n}x)" for key, n in counts.items() if n > 1]
    first = ~index.duplicated()
    if how == "first":
        values = table.values[:, first]
    else:
        frame = pd.DataFrame(table.values.T, index=index)
        values = frame.groupby(level=0, sort=False).mean().loc[index[first]].to_numpy(dtype=np.float32).T
    features = [f for f, keep in zip(table.feature_ids, first) if keep]
    action = "kept the first" if how == "first" else "averaged the observed values of each"
    message = (f"{what}: {len(repeated)} identifier(s) occur several times ({list_examples(repeated, quote=False)}); "
               f"{action} ({len(table.feature_ids):,} features -> {len(features):,}).")
    merge = f"{len(table.feature_ids):,} -> {len(features):,} features ({what.split(': ')[-1]}: {how})"
    return ExpressionTable(np.ascontiguousarray(values, dtype=np.float32), table.sample_ids, features,
                           table.orientation, [*table.warnings, message], [*table.merges, merge])


def merge_same_genes(table: ExpressionTable, duplicates: str) -> ExpressionTable:
    """Merge features that name the same gene differently (``TP53`` and ``ENSG00000141510.11``) as
    ``duplicates`` says (``first`` or ``mean``); with ``error`` the table is returned unchanged and
    :func:`map_features` refuses it."""
    if duplicates == "error":
        return table
    symbol_to_id, _ = reference_lookup()
    keys = [strip_version(f) if is_ensembl_gene_id(f) else symbol_to_id.get(f.strip(), f.strip())
            for f in table.feature_ids]
    return merge_features(table, keys, duplicates, "features naming the same gene")


def apply_gene_map(table: ExpressionTable, mapping: Mapping[str, str], name: str = "the gene map") -> ExpressionTable:
    """Re-express a probe-level table at gene level: each feature renamed to its gene; probes of the
    same gene averaged (observed values, the file's scale); unmapped probes dropped. Reported in the
    table's warnings.

    Raises
    ------
    InputError
        When no feature of the table is in the map.
    """
    mapped = [mapping.get(f) for f in table.feature_ids]
    keep = np.array([g is not None for g in mapped])
    if not keep.any():
        raise InputError(
            f"None of the {len(table.feature_ids):,} identifiers of the expression file (e.g. "
            f"{list_examples(table.feature_ids, 3)}) is in {name} (e.g. {list_examples(list(mapping), 3)}). "
            "Its first column must hold the file's probe IDs."
        )
    genes = [g for g in mapped if g is not None]
    kept = ExpressionTable(np.ascontiguousarray(table.values[:, keep]), table.sample_ids, genes,
                           table.orientation, list(table.warnings), list(table.merges))
    merged = merge_features(kept, genes, "mean", f"{name}: several probes of one gene")
    dropped = [f for f, k in zip(table.feature_ids, keep) if not k]
    note = f"{name}: {int(keep.sum()):,} probe(s) -> {len(merged.feature_ids):,} gene(s)"
    if dropped:
        note += f", {len(dropped):,} probe(s) not in the map dropped (e.g. {list_examples(dropped, 3)})"
    merged.warnings.append(note + ".")
    merged.merges[len(table.merges):] = [note]  # the map's line replaces merge_features' own
    return merged


def empty_sample_warnings(values: np.ndarray, sample_ids: Sequence[str], path: Path) -> list[str]:
    """A warning naming the samples without a single observed value (kept, not dropped).

    Genes without one are normal in an upload of a few samples (they are imputed, like absent
    genes); :func:`import_table` reports them, as a training cohort cannot learn them.

    Raises
    ------
    InputError
        If no cell at all is observed.
    """
    if values.size == 0:
        return []
    observed = ~np.isnan(values)
    if not observed.any():
        raise InputError(
            f"{path} has no observed value at all: every one of its {values.size:,} cells is empty or "
            "a missing-value token (NA, n/a, -). Check the file's content (and the delimiter)."
        )
    messages = []
    empty_samples = [sample_ids[i] for i in np.flatnonzero(~observed.any(axis=1))]
    if empty_samples:
        messages.append(
            f"{path}: {len(empty_samples)} sample(s) have no observed value at all "
            f"({list_examples(empty_samples)}): they are kept, but their imputation is only the model's "
            "average for their tissue, and they add nothing to a training cohort. Fill in some values or "
            "remove them."
        )
    return messages


def empty_gene_warnings(values: np.ndarray, feature_ids: Sequence[str], path: Path) -> list[str]:
    """For a training cohort: genes without a single observed value (kept; a model cannot learn them)."""
    empty_genes = [feature_ids[j] for j in np.flatnonzero(np.isnan(values).all(axis=0))]
    if not empty_genes:
        return []
    return [
        f"{path}: {len(empty_genes)} gene(s) have no observed value in any sample "
        f"({list_examples(empty_genes)}): they are kept (and imputed), but a model trained on this "
        "cohort cannot learn them. Fill in some values or remove them."
    ]
