"""GCT 1.2 files (the GTEx v8 expression format): the header and the body, rows filtered while reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Callable, Sequence, TextIO

import numpy as np

from gtex_models.data.readers.errors import InputError
from gtex_models.data.readers.text import first_line, open_text, parse_values


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


# --------------------------------------------------------------------------- GCT
def read_gct_header(stream: TextIO, path: Path) -> GctHeader:
    """Read and validate lines 1-3 of a GCT 1.2 file: ``#1.2``, dimensions, ``Name Description ...``."""
    version = first_line(stream, path).strip()
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
