"""Text primitives every table reader shares: plain or gzipped text, delimiters, cell parsing, unique IDs.

Missing values: an empty cell or one of ``NA``, ``NaN``, ``n/a``, ``-``, ``?`` (any case) is
missing (NaN); any other text, and infinite values, raise :class:`~gtex_models.data.readers.errors.InputError`.
"""

from __future__ import annotations

import gzip
import zlib
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence, TextIO

import numpy as np

from gtex_models.common.messages import list_examples
from gtex_models.data.readers.errors import InputError

MISSING_TOKENS = frozenset({"", "na", "nan", "n/a", "-", "?"})
GZIP_MAGIC = b"\x1f\x8b"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
DELIMITER_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon"}


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


def first_line(stream: TextIO, path: Path) -> str:
    line = stream.readline()
    if not line.strip():
        problem = "its first line is blank" if line else "is empty"
        raise InputError(f"{path} {problem}. Put the header on line 1 and the data below it.")
    if "\x00" in line:
        raise InputError(f"{path} contains NUL bytes: it is a binary file, not a text table.")
    return line.rstrip("\r\n")


def sniff_delimiter(header_line: str, path: Path) -> str:
    """The delimiter (tab, comma or semicolon) that occurs most often in the header line."""
    counts = {d: header_line.count(d) for d in DELIMITER_NAMES}
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
