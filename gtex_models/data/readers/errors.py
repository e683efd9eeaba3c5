"""The error type for malformed user input, and the input-size limit.

Readers raise :class:`InputError` and nothing else for bad input, with a message that says what is
wrong, where (file, line, column, gene or sample) and how to fix it. The CLI and the app show that
message as it is, without a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_INPUT_MB = 200
MAX_INPUT_MB_ENV = "GTEX_MAX_INPUT_MB"


class InputError(ValueError):
    """Malformed user input; the message says what is wrong, where, and how to fix it."""


def max_input_mb() -> float:
    """The input-size limit in MB: ``$GTEX_MAX_INPUT_MB`` if set, else :data:`MAX_INPUT_MB`."""
    raw = os.environ.get(MAX_INPUT_MB_ENV, "").strip()
    if not raw:
        return float(MAX_INPUT_MB)
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise InputError(
            f"The environment variable {MAX_INPUT_MB_ENV}={raw!r} is not a positive number of MB. "
            f"Set it to e.g. {MAX_INPUT_MB_ENV}=500, or unset it for the default {MAX_INPUT_MB} MB."
        )
    return value


def require_file(path: str | Path) -> Path:
    """Return ``path`` as a :class:`~pathlib.Path`; raise :class:`InputError` if it is not a file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file. Check the path (it is relative to {Path.cwd()}).")
    if not path.is_file():
        raise InputError(f"{path} is not a regular file (a directory?). Give the path of the file itself.")
    return path


def check_file_size(path: str | Path) -> Path:
    """Check that ``path`` is a file no larger than :func:`max_input_mb`; return it as a Path.

    Raises
    ------
    InputError
        If the file is missing or above the limit (the message names the limit and how to raise it).
    """
    path = require_file(path)
    limit = max_input_mb()
    size_mb = path.stat().st_size / 2**20
    if size_mb > limit:
        raise InputError(
            f"{path} is {size_mb:.1f} MB, above the input limit of {limit:g} MB. Split the file, "
            f"or raise the limit with the environment variable {MAX_INPUT_MB_ENV} "
            f"(e.g. {MAX_INPUT_MB_ENV}={int(size_mb * 2) + 1})."
        )
    return path
