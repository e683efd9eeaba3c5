"""Generic expression import: CSV, TSV, GCT 1.2 and h5ad files into a table or a :class:`Cohort`.

This module also holds the text primitives that the GTEx loader (:mod:`gtex_models.io.gtex`)
shares: opening plain or gzipped text, the GCT header and body, cell parsing, gene-ID resolution.

Missing values: an empty cell or one of ``NA``, ``NaN``, ``n/a``, ``-``, ``?`` (any case) is
missing (NaN); any other text, and infinite values, raise :class:`InputError`.

Gene symbols are made unique: when two different Ensembl IDs carry the same symbol, the first keeps
it and later ones become ``SYMBOL_ENSG...`` (see :func:`unique_symbols`).
"""

from __future__ import annotations

import csv
import gzip
import re
import warnings
import zlib
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, TextIO

import numpy as np
import pandas as pd

from gtex_models.choices import DUPLICATE_CHOICES, NEGATIVE_CHOICES, ORIENTATIONS
from gtex_models.cohort import SAMPLE_COLUMNS, Cohort
from gtex_models.covariates import parse_age, parse_sex
from gtex_models.io.errors import InputError, check_file_size, require_file
from gtex_models.messages import closest_names, list_examples
from gtex_models.reference import protein_coding_genes

MISSING_TOKENS = frozenset({"", "na", "nan", "n/a", "-", "?"})
UNKNOWN_TISSUE = "Unknown"
GZIP_MAGIC = b"\x1f\x8b"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
_ENSEMBL_GENE = re.compile(r"^(ENS[A-Z]*G\d{6,})(?:\.\d+)?(_PAR_Y)?$")
_PROBE = re.compile(r"(_at$|^ILMN_\d+$|^A_\d+_P\d+$)")  # Affymetrix, Illumina, Agilent probe IDs
_DELIMITER_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon"}
_SAMPLE_COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "sample_id": ("sample_id", "sample", "sampid"),
    "donor_id": ("donor_id", "donor", "subject", "subject_id", "subjid"),
    "sex": ("sex", "gender"),
    "age": ("age",),
}


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


@dataclass(frozen=True)
class GctHeader:
    """The first three lines of a GCT 1.2 file: declared dimensions and the sample IDs."""

    n_rows: int
    n_columns: int
    columns: list[str]


@dataclass
class GctMatrix:
    """The body of a GCT file (or the selected part of it), transposed to samples x genes."""

    names: list[str]
    descriptions: list[str]
    columns: list[str]
    values: np.ndarray


# --------------------------------------------------------------------------- text primitives
@contextmanager
def open_text(path: Path) -> Iterator[TextIO]:
    """Open a plain or gzipped (detected by magic bytes) UTF-8 text file; BOM and CRLF are handled.

    Undecodable bytes and corrupt gzip streams, met anywhere while the block reads, become
    :class:`InputError`.
    """
    with open(path, "rb") as raw:
        magic = raw.read(4)
    if magic == ZIP_MAGIC:
        raise InputError(
            f"{path} is a ZIP archive (an Excel .xlsx workbook?), not a text table. "
            "Export the sheet as CSV (UTF-8) or unzip the file first."
        )
    opener = gzip.open if magic[:2] == GZIP_MAGIC else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline=None) as stream:
            yield stream
    except UnicodeDecodeError as error:
        raise InputError(
            f"{path} is not UTF-8 text (undecodable byte at position {error.start}): it looks like a "
            "binary file or another text encoding. Save it as a UTF-8 CSV/TSV/GCT, or upload an .h5ad file."
        ) from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise InputError(
            f"{path}: the gzip stream is corrupt or truncated ({error}). Download or compress it again."
        ) from None


def _first_line(stream: TextIO, path: Path) -> str:
    line = stream.readline()
    if not line.strip():
        problem = "its first line is blank" if line else "is empty"
        raise InputError(f"{path} {problem}. Put the header on line 1 and the data below it.")
    if "\x00" in line:
        raise InputError(f"{path} contains NUL bytes: it is a binary file, not a text table.")
    return line.rstrip("\r\n")


def sniff_delimiter(header_line: str, path: Path) -> str:
    """The delimiter (tab, comma or semicolon) that occurs most often in the header line."""
    counts = {d: header_line.count(d) for d in _DELIMITER_NAMES}
    delimiter = max(counts, key=counts.__getitem__)
    if counts[delimiter] == 0:
        raise InputError(
            f"{path}: the header line parses into a single column ({header_line[:60]!r}): no tab, "
            "comma or semicolon found. Save the table as CSV (comma-separated) or TSV (tab-separated) "
            "with identifiers in the first column and a header row."
        )
    return delimiter


def parse_values(cells: Sequence[str], path: Path, line: int, row_id: str,
                 column_ids: Sequence[str]) -> np.ndarray:
    """Parse one row of cells into float32; missing tokens become NaN.

    Raises
    ------
    InputError
        Naming the line, row and column of the first non-numeric or infinite cell.
    """
    with np.errstate(over="ignore"):  # 1e40 overflows float32 to inf, reported below
        try:
            values = np.asarray(cells, dtype=np.float32)
        except ValueError:
            values = np.empty(len(cells), dtype=np.float32)
            for j, cell in enumerate(cells):
                try:
                    values[j] = float(cell)
                except ValueError:
                    if cell.strip().lower() not in MISSING_TOKENS:
                        hint = " Use '.' as the decimal separator." if "," in cell else ""
                        raise InputError(
                            f"{path}, line {line}, row {row_id!r}, column {column_ids[j]!r}: {cell!r} "
                            f"is not a number.{hint} Write a number, or leave the cell empty (or NA) "
                            "if the value is missing."
                        ) from None
                    values[j] = np.nan
    infinite = np.flatnonzero(np.isinf(values))
    if infinite.size:
        j = int(infinite[0])
        raise InputError(
            f"{path}, line {line}, row {row_id!r}, column {column_ids[j]!r}: {cells[j]!r} is infinite "
            "(or too large for float32). Replace it with a finite number, or NA if the value is missing."
        )
    return values


def check_unique(ids: Sequence[str], kind: str, where: str, path: Path, hint: str = "") -> None:
    """Raise :class:`InputError` naming the duplicated (or empty) ``kind`` IDs found in ``where``
    (``hint`` is appended to the duplicates' message)."""
    if any(not i for i in ids):
        position = [n + 1 for n, i in enumerate(ids) if not i][:5]
        raise InputError(
            f"{path}: empty {kind} id in the {where} (position {', '.join(map(str, position))}). "
            f"Give every {kind} an identifier."
        )
    counts = Counter(ids)
    duplicated = [i for i, n in counts.items() if n > 1]
    if duplicated:
        shown = list_examples([f"{i!r} ({counts[i]}x)" for i in duplicated], quote=False)
        raise InputError(
            f"{path}: duplicated {kind} id(s) in the {where}: {shown}. Each {kind} must appear "
            f"once: remove or rename the duplicates (or aggregate them, e.g. sum their TPM).{hint}"
        )


# --------------------------------------------------------------------------- GCT
def read_gct_header(stream: TextIO, path: Path) -> GctHeader:
    """Read and validate lines 1-3 of a GCT 1.2 file: ``#1.2``, dimensions, ``Name Description ...``."""
    version = _first_line(stream, path).strip()
    if version != "#1.2":
        raise InputError(
            f"{path}, line 1: {version[:40]!r}, expected '#1.2'. Only GCT version 1.2 is supported: "
            "line 1 '#1.2', line 2 '<genes>\\t<samples>', line 3 'Name\\tDescription\\t<sample ids>'."
        )
    dims = stream.readline().split()
    if len(dims) != 2 or not all(d.isdigit() for d in dims):
        raise InputError(
            f"{path}, line 2: {' '.join(dims)[:40]!r}, expected two counts '<genes>\\t<samples>'. "
            "Fix line 2 of the GCT file."
        )
    header = stream.readline().rstrip("\r\n").split("\t")
    if len(header) < 3 or [h.strip().lower() for h in header[:2]] != ["name", "description"]:
        raise InputError(
            f"{path}, line 3: the header must start with 'Name\\tDescription' followed by the sample "
            f"ids, found {header[:3]}."
        )
    n_rows, n_columns = int(dims[0]), int(dims[1])
    columns = [c.strip() for c in header[2:]]
    if n_columns != len(columns):
        raise InputError(
            f"{path}: line 2 declares {n_columns} samples but the header on line 3 lists {len(columns)} "
            f"sample ids. Correct line 2 to '{n_rows}\\t{len(columns)}'."
        )
    return GctHeader(n_rows, n_columns, columns)


def _column_picker(columns: Sequence[int] | None) -> Callable[[list[str]], Sequence[str]]:
    """The value cells of a GCT row's fields: all of them, or the given sample columns (fast)."""
    if columns is None:
        return itemgetter(slice(2, None))
    offsets = [2 + i for i in columns]
    if len(offsets) < 2:  # itemgetter needs an index, and returns a bare value for one
        return lambda fields: [fields[i] for i in offsets]
    return itemgetter(*offsets)


def read_gct(path: Path, keep_row: Callable[[str, str], bool] | None = None,
             columns: Sequence[int] | None = None) -> GctMatrix:
    """Stream a GCT 1.2 file, keeping the rows accepted by ``keep_row`` and the given columns.

    ``keep_row(name, description)`` sees each row before its values are parsed, so skipped rows
    cost almost nothing. Only the kept values are held, as float32.

    Parameters
    ----------
    path : GCT file, plain or gzipped.
    keep_row : row filter; ``None`` keeps every row.
    columns : indices (into the header's sample IDs) of the samples to keep; ``None`` keeps all.

    Returns
    -------
    GctMatrix with ``values`` as samples x genes.
    """
    names: list[str] = []
    descriptions: list[str] = []
    rows: list[np.ndarray] = []
    with open_text(path) as stream:
        header = read_gct_header(stream, path)
        n_fields = 2 + header.n_columns
        kept = header.columns if columns is None else [header.columns[i] for i in columns]
        pick = _column_picker(columns)
        n_data = 0
        for line_number, line in enumerate(stream, start=4):
            if line.isspace():
                continue
            n_data += 1
            if keep_row is not None:
                name, description = (line.rstrip("\r\n").split("\t", 2) + ["", ""])[:2]
                if not keep_row(name.strip(), description.strip()):
                    continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != n_fields:
                raise InputError(
                    f"{path}, line {line_number} (row {fields[0][:40]!r}): {len(fields)} tab-separated "
                    f"fields, expected {n_fields} (Name, Description and {header.n_columns} samples). "
                    "Fix or remove this line."
                )
            cells = pick(fields)
            names.append(fields[0].strip())
            descriptions.append(fields[1].strip())
            rows.append(parse_values(cells, path, line_number, names[-1], kept))
    if n_data != header.n_rows:
        raise InputError(
            f"{path}: line 2 declares {header.n_rows} genes but the file has {n_data} data rows. "
            f"Correct line 2 to '{n_data}\\t{header.n_columns}' (or download the file again if it "
            "was truncated)."
        )
    values = np.stack(rows, axis=1) if rows else np.empty((len(kept), 0), dtype=np.float32)
    return GctMatrix(names, descriptions, list(kept), values)


# --------------------------------------------------------------------------- gene identifiers
def strip_version(gene_id: str) -> str:
    """``ENSG00000223972.5`` -> ``ENSG00000223972`` (``_PAR_Y`` kept); other IDs unchanged."""
    match = _ENSEMBL_GENE.match(gene_id.strip())
    if not match:
        return gene_id.strip()
    return match.group(1) + (match.group(2) or "")


def is_ensembl_gene_id(gene_id: str) -> bool:
    """Whether ``gene_id`` looks like an Ensembl gene ID, versioned or not."""
    return _ENSEMBL_GENE.match(gene_id.strip()) is not None


@lru_cache(maxsize=1)
def reference_lookup() -> tuple[dict[str, str], dict[str, str]]:
    """``(symbol -> Ensembl ID, Ensembl ID -> symbol)`` for the protein-coding reference genes."""
    table = protein_coding_genes()
    return (dict(zip(table["symbol"], table["ensembl_gene_id"])),
            dict(zip(table["ensembl_gene_id"], table["symbol"])))


def unique_symbols(symbols: Sequence[str], ensembl_ids: Sequence[str]) -> list[str]:
    """Make symbols unique: a repeated symbol becomes ``SYMBOL_<Ensembl ID>`` after its first use."""
    seen: set[str] = set()
    out = []
    for n, (symbol, gene_id) in enumerate(zip(symbols, ensembl_ids)):
        if symbol in seen:
            symbol = f"{symbol}_{gene_id or n}"
        seen.add(symbol)
        out.append(symbol)
    return out


def map_features(feature_ids: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """Resolve gene symbols and (versioned) Ensembl IDs, mixed freely, against the reference.

    Identifiers that are neither (microarray probes such as ``1007_s_at``, unknown symbols) are kept
    as given, with an empty Ensembl ID, and reported in a warning.

    Returns
    -------
    genes : DataFrame with ``ensembl_gene_id`` and ``symbol``, one row per feature, in order.
    warnings : messages for the user.

    Raises
    ------
    InputError
        If two features resolve to the same gene (e.g. ``TP53`` and ``ENSG00000141510.11``).
    """
    symbol_to_id, id_to_symbol = reference_lookup()
    ensembl, symbols, non_coding, unresolved = [], [], [], []
    for feature in (f.strip() for f in feature_ids):
        if is_ensembl_gene_id(feature):
            gene_id = strip_version(feature)
            symbol = id_to_symbol.get(gene_id)
            if symbol is None:
                non_coding.append(feature)
            ensembl.append(gene_id)
            symbols.append(symbol or gene_id)
        elif feature in symbol_to_id:
            ensembl.append(symbol_to_id[feature])
            symbols.append(feature)
        else:
            unresolved.append(feature)
            ensembl.append("")
            symbols.append(feature)
    by_gene: dict[str, list[str]] = defaultdict(list)
    for feature, gene_id in zip(feature_ids, ensembl):
        if gene_id:
            by_gene[gene_id].append(feature.strip())
    clashes = [f"{' and '.join(repr(f) for f in fs)} -> {g}" for g, fs in by_gene.items() if len(fs) > 1]
    if clashes:
        raise InputError(
            f"Duplicated gene: several features resolve to the same gene ({'; '.join(clashes[:5])}). "
            "Keep one row per gene."
        )
    messages = []
    if non_coding:
        messages.append(
            f"{len(non_coding)} Ensembl ID(s) are not protein-coding genes of the reference "
            f"(e.g. {list_examples(non_coding, 3)}); they are kept, with the ID as symbol."
        )
    if unresolved:
        messages.append(
            f"{len(unresolved)} of {len(symbols)} feature(s) are neither protein-coding gene symbols nor "
            f"Ensembl gene IDs (e.g. {list_examples(unresolved, 3)}; microarray probes?); they are kept as "
            "given, with no Ensembl ID, so models trained on GTEx genes will not recognise them."
        )
    genes = pd.DataFrame({"ensembl_gene_id": ensembl, "symbol": unique_symbols(symbols, ensembl)})
    return genes, messages


def looks_like_probes(ids: Sequence[str]) -> bool:
    """Whether most identifiers are microarray probe IDs (Affymetrix ``1007_s_at``, Illumina, Agilent)."""
    return sum(1 for i in ids if _PROBE.search(i.strip())) > len(ids) / 2


def _gene_like_fraction(ids: Sequence[str]) -> float:
    symbol_to_id, _ = reference_lookup()
    hits = sum(1 for i in ids if i in symbol_to_id or is_ensembl_gene_id(i) or _PROBE.search(i))
    return hits / max(len(ids), 1)


def _detect_orientation(row_ids: Sequence[str], column_ids: Sequence[str], path: Path) -> str:
    rows, columns = _gene_like_fraction(row_ids), _gene_like_fraction(column_ids)
    if rows >= 0.5 and columns <= 0.2:
        return "genes-by-samples"
    if columns >= 0.5 and rows <= 0.2:
        return "samples-by-genes"
    raise InputError(
        f"{path}: cannot tell which axis holds the genes ({rows:.0%} of the row ids and {columns:.0%} "
        "of the column ids look like gene symbols, Ensembl IDs or probe IDs). Say it explicitly: "
        "orientation='genes-by-samples' or 'samples-by-genes' (CLI: --orientation)."
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
        header_line = _first_line(stream, path)
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
                    f"{path}, line {line_number}: {len(record)} {_DELIMITER_NAMES[delimiter]}-separated "
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
    path : the file; at most :func:`~gtex_models.io.errors.max_input_mb` MB.
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
    messages += _empty_sample_warnings(values, sample_ids, path)
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


_GENE_MAP_HEADERS = {"probe", "probe_id", "probeid", "probeset", "probe_set", "probe_set_id", "id", "id_ref",
                     "feature", "feature_id", "gene", "symbol", "gene_symbol", "ensembl_gene_id", "gene_id"}


def read_gene_map(path: str | Path) -> dict[str, str]:
    """A probe -> gene mapping: two columns (probe ID, gene symbol or Ensembl ID), CSV or TSV, header
    optional (recognised by names such as ``probe``/``ID_REF`` and ``gene``/``symbol``).

    Rows with an empty gene are skipped (the probe maps to nothing).

    Raises
    ------
    InputError
        For a file with fewer than two columns, no mapping row, or a probe mapped to two genes.
    """
    path = check_file_size(path)
    with open_text(path) as stream:
        first = _first_line(stream, path)
        delimiter = sniff_delimiter(first, path)
        rows = list(csv.reader([first, *stream], delimiter=delimiter))
    rows = [[cell.strip() for cell in row] for row in rows if any(cell.strip() for cell in row)]
    if any(len(row) < 2 for row in rows):
        line = next(n for n, row in enumerate(rows, start=1) if len(row) < 2)
        raise InputError(f"{path}, line {line}: a gene map has two columns, the probe ID and its gene "
                         "(symbol or Ensembl ID).")
    if rows and (rows[0][0].lower() in _GENE_MAP_HEADERS or rows[0][1].lower() in _GENE_MAP_HEADERS):
        rows = rows[1:]
    mapping: dict[str, str] = {}
    clashes = []
    for probe, gene, *_ in rows:
        if not gene:
            continue
        if mapping.get(probe, gene) != gene:
            clashes.append(f"{probe!r} -> {mapping[probe]!r} and {gene!r}")
        mapping[probe] = gene
    if clashes:
        raise InputError(f"{path}: probe(s) mapped to several genes: {list_examples(clashes, quote=False)}. "
                         "Map each probe to one gene.")
    if not mapping:
        raise InputError(f"{path} maps no probe to a gene. Write one 'probe,gene' pair per line.")
    return mapping


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


def _empty_sample_warnings(values: np.ndarray, sample_ids: Sequence[str], path: Path) -> list[str]:
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


def _empty_gene_warnings(values: np.ndarray, feature_ids: Sequence[str], path: Path) -> list[str]:
    """For a training cohort: genes without a single observed value (kept; a model cannot learn them)."""
    empty_genes = [feature_ids[j] for j in np.flatnonzero(np.isnan(values).all(axis=0))]
    if not empty_genes:
        return []
    return [
        f"{path}: {len(empty_genes)} gene(s) have no observed value in any sample "
        f"({list_examples(empty_genes)}): they are kept (and imputed), but a model trained on this "
        "cohort cannot learn them. Fill in some values or remove them."
    ]


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
        header_line = _first_line(stream, path)
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
                f"{path}: could not be parsed as a {_DELIMITER_NAMES[delimiter]}-separated table "
                f"({error}). Every row needs as many fields as the header."
            ) from None
    return pd.DataFrame({name: table[i].fillna("").str.strip() for name, i in found.items()})


def table_columns(path: str | Path) -> list[str]:
    """The column names of a delimited table (CSV/TSV, plain or gzipped), e.g. to offer them as choices."""
    path = check_file_size(path)
    with open_text(path) as stream:
        header_line = _first_line(stream, path)
        delimiter = sniff_delimiter(header_line, path)
    return [h.strip() for h in next(csv.reader([header_line], delimiter=delimiter))]


def default_samples(sample_ids: Sequence[str]) -> pd.DataFrame:
    """A sample table with defaults: each sample its own donor, tissue Unknown, sex unknown, no age."""
    return pd.DataFrame({
        "sample_id": list(sample_ids),
        "donor_id": list(sample_ids),
        "tissue": UNKNOWN_TISSUE,
        "sex": "unknown",
        "age": np.full(len(sample_ids), np.nan),
    })[SAMPLE_COLUMNS]


def read_samples_table(path: str | Path, tissue_column: str = "tissue") -> pd.DataFrame:
    """Read a sample table: ``sample_id``, ``donor_id``, ``tissue``, ``sex``, ``age``.

    Column names are matched case-insensitively (``sample``/``SAMPID``, ``donor``/``subject``/
    ``SUBJID``, ``gender``, ...). Only the sample ID is required: without a donor column each sample
    is its own donor; without a tissue column all samples are in tissue ``Unknown``; sex defaults to
    unknown and age to NaN. Sex is parsed by :func:`~gtex_models.covariates.parse_sex`, age by
    :func:`~gtex_models.covariates.parse_age` (GTEx brackets become their centre).
    """
    default_tissue = tissue_column.lower() == "tissue"
    tissue_aliases = (tissue_column, "smtsd") if default_tissue else (tissue_column,)
    aliases = {**_SAMPLE_COLUMN_ALIASES, "tissue": tissue_aliases}
    required = ["sample_id"] if default_tissue else ["sample_id", "tissue"]
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


def import_table(expression_path: str | Path, samples_path: str | Path | None = None,
                 tissue_column: str = "tissue", orientation: str = "auto", scale: str = "auto",
                 seed: int = 0, *, duplicates: str = "error", negatives: str = "error",
                 gene_map: str | Path | None = None) -> Cohort:
    """Build a :class:`Cohort` from an expression file and an optional sample table.

    Parameters
    ----------
    expression_path : CSV/TSV/GCT/h5ad, read by :func:`read_expression`.
    samples_path : table read by :func:`read_samples_table`; every expression sample needs a row.
        Without it, each sample is its own donor in tissue ``Unknown``.
    tissue_column : name of the tissue (group) column in the sample table.
    orientation : see :func:`read_expression`.
    scale : ``auto`` (detected, :func:`~gtex_models.io.scale.detect_scale`), ``tpm`` (a linear
        scale: TPM, intensities; must be non-negative) or ``log`` (already log-transformed).
    seed : seed of the donor split.
    duplicates : ``error``, ``first`` or ``mean`` for gene identifiers that occur several times or
        name the same gene (:func:`merge_features`).
    negatives : ``error``, or ``clip`` to set negative values to 0 first (a linear signal whose
        negative values are noise, e.g. MAS5 microarrays).
    gene_map : a probe -> gene file (:func:`read_gene_map`): probes become genes (several probes of
        a gene averaged), so the cohort meets models trained on GTEx genes.

    Warnings from reading and gene mapping are issued with :func:`warnings.warn` and kept in
    ``cohort.meta["warnings"]``; ``cohort.meta["scale"]`` holds the scale and why, and
    ``cohort.meta["negatives_clipped"]`` how many values were clipped.
    """
    from gtex_models.io.scale import clip_negative, resolve_scale

    if negatives not in NEGATIVE_CHOICES:
        raise InputError(f"Unknown negatives choice {negatives!r}; use one of {', '.join(NEGATIVE_CHOICES)}.")
    path = Path(expression_path)
    table = read_expression(path, orientation, duplicates)
    if gene_map is not None:
        table = apply_gene_map(table, read_gene_map(gene_map), Path(gene_map).name)
    table = merge_same_genes(table, duplicates)
    genes, gene_messages = map_features(table.feature_ids)
    messages = table.warnings + gene_messages + _empty_gene_warnings(table.values, table.feature_ids, path)
    if samples_path is None:
        samples = default_samples(table.sample_ids)
    else:
        annotation = read_samples_table(samples_path, tissue_column)
        samples, extra = join_samples(table.sample_ids, annotation, path.name, str(samples_path))
        messages += extra
    values, clipped = clip_negative(table.values) if negatives == "clip" else (table.values, 0)
    if clipped:
        messages.append(f"{clipped:,} negative value(s) set to 0 (--negatives clip).")
    scale, reason = resolve_scale(values, scale, table.sample_ids, table.feature_ids)
    for message in messages:
        warnings.warn(message, stacklevel=2)
    meta = {
        "source": "import",
        "files": {"expression": str(path), "samples": None if samples_path is None else str(samples_path),
                  "gene_map": None if gene_map is None else str(gene_map)},
        "orientation": table.orientation,
        "scale": {"scale": scale, "reason": reason},
        "merges": table.merges,
        "negatives_clipped": clipped,
        "warnings": messages,
    }
    return Cohort.from_raw(values, genes, samples, scale=scale, seed=seed, meta=meta)
