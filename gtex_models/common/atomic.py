"""Write outputs safely: never replace what the project did not write, never leave partial output.

Rules (the CLI's ``--out`` and the app follow them through this module):

- A **folder** output (a cohort, a study, the demo) is written beside its final place and renamed
  in one step. An existing folder is replaced only if it is empty, or if it is one of ours (it holds
  the kind's marker file, e.g. ``cohort.json``) **and** ``overwrite`` is given. A non-empty folder
  that is not ours, a file or a symbolic link at that path is never touched: :class:`OutputPathError`.
- A **file** output is written to a temporary file beside it and renamed. A folder at that path is
  refused; an existing file is replaced only with ``overwrite`` (:func:`check_output_file`; library
  writers such as ``save_checkpoint`` replace files, the CLI checks first).
- New files and folders get the user's umask (like any other tool), not the 0600 of ``mkstemp``.
- Errors name the user's path, never a temporary one.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


class OutputPathError(OSError, ValueError):
    """An output path that cannot be written without losing something (or at all); says how to fix it.

    Both an ``OSError`` (callers that tolerate an unwritable place, such as caches, catch it) and a
    ``ValueError`` (bad input: the CLI answers ``error: ...`` and exit status 2).
    """


@dataclass(frozen=True)
class OutputFolder:
    """A kind of folder the project writes, recognised by its marker file(s).

    Example
    -------
    >>> COHORT = OutputFolder("cohort", ("cohort.json",))
    >>> with COHORT.write("runs/cohort", overwrite=False) as tmp:   # doctest: +SKIP
    ...     (tmp / "cohort.json").write_text("{}")
    """

    kind: str
    markers: tuple[str, ...]

    def is_ours(self, path: Path) -> bool:
        """Whether ``path`` holds one of this kind's marker files."""
        return any((path / marker).is_file() for marker in self.markers)

    def check(self, path: str | Path, overwrite: bool = False) -> Path:
        """Raise :class:`OutputPathError` unless ``path`` can receive this kind of folder; returns it as a Path."""
        path = Path(path)
        _check_parents(path)
        if path.is_symlink():
            raise OutputPathError(
                f"{path} is a symbolic link; the {self.kind} would replace the link, not what it points to. "
                f"Give the real folder path ({path.resolve()}) or a new one.")
        if path.exists() and not path.is_dir():
            raise OutputPathError(
                f"{path} is a file, not a folder: writing the {self.kind} there would replace it. "
                f"Choose a folder path that does not exist yet (e.g. {_suggestion(path, self.kind)}).")
        if path.is_dir() and any(path.iterdir()):
            if not self.is_ours(path):
                raise OutputPathError(
                    f"{path} is a folder with files this project did not write (it has no "
                    f"{' or '.join(self.markers)}): writing the {self.kind} there would delete them. "
                    f"Choose a new or empty folder (e.g. {_suggestion(path, self.kind)}).")
            if not overwrite:
                raise OutputPathError(
                    f"{path} already holds a {self.kind}. Replace it with --overwrite "
                    "(everything in that folder is replaced), or choose another folder.")
        return path

    @contextmanager
    def write(self, path: str | Path, overwrite: bool = False) -> Iterator[Path]:
        """Yield a new temporary folder beside ``path``; it becomes ``path`` only if the block succeeds.

        ``path`` is checked (:meth:`check`) before the block and again before it is replaced.
        """
        path = self.check(path, overwrite)
        tmp = _new_sibling(path, os.mkdir, 0o777)
        try:
            try:
                yield tmp
            except OSError as error:
                raise _naming(error, path, tmp) from None
            self.check(path, overwrite)  # the block may have run for minutes
            _swap_in(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def check_output_file(path: str | Path, overwrite: bool = False) -> Path:
    """Raise :class:`OutputPathError` if ``path`` is a folder, or an existing file without ``overwrite``."""
    path = Path(path)
    _check_parents(path)
    if path.is_dir():
        raise OutputPathError(
            f"{path} is a folder; give the path of a file to write (e.g. {path / 'output'}{path.suffix}).")
    if path.exists() and not overwrite:
        raise OutputPathError(
            f"{path} already exists. Replace it with --overwrite, or choose another file name.")
    return path


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    An existing file is replaced; a folder at ``path`` is refused (:class:`OutputPathError`).
    """
    path = check_output_file(path, overwrite=True)
    tmp = _new_sibling(path, _create_file, 0o666)
    try:
        try:
            yield tmp
        except OSError as error:
            raise _naming(error, path, tmp) from None
        check_output_file(path, overwrite=True)
        try:
            os.replace(tmp, path)
        except OSError as error:
            raise _naming(error, path, tmp) from None
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


# ------------------------------------------------------------------------------------- helpers
def _check_parents(path: Path) -> None:
    """Raise :class:`OutputPathError` if an ancestor of ``path`` is a file (its folder cannot be made)."""
    for ancestor in reversed(path.absolute().parents):
        if ancestor.exists() and not ancestor.is_dir():
            raise OutputPathError(f"Cannot write {path}: {ancestor} is a file, not a folder. Choose another path.")


def _create_file(name: str, mode: int) -> None:
    os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))


def _new_sibling(path: Path, create, mode: int) -> Path:
    """A new hidden file or folder beside ``path`` (parents created), with ``mode`` minus the umask."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputPathError(f"Cannot create the folder {path.parent} for {path}: {error.strerror}.") from None
    for _ in range(100):
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            create(str(candidate), mode)
            return candidate
        except FileExistsError:
            continue
        except OSError as error:
            raise OutputPathError(f"Cannot write {path}: {error.strerror} (in {path.parent}).") from None
    raise OutputPathError(f"Cannot create a temporary file beside {path}.")


def _swap_in(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` onto ``path``; an existing (checked) folder is moved aside first, then deleted."""
    if not os.path.lexists(path):
        os.replace(tmp, path)
        return
    backup = _new_sibling(path, os.mkdir, 0o700)
    os.rmdir(backup)  # a unique free name: never an existing folder of the user's
    os.replace(path, backup)
    try:
        os.replace(tmp, path)
    except OSError as error:
        os.replace(backup, path)
        raise _naming(error, path, tmp) from None
    shutil.rmtree(backup, ignore_errors=True)


def _naming(error: OSError, path: Path, tmp: Path) -> OSError:
    """``error`` reworded to name ``path`` where it named the temporary ``tmp``."""
    names = " ".join(str(n) for n in (error.filename, error.filename2) if n)
    if str(tmp) not in names:
        return error
    reason = error.strerror or str(error)
    hint = " Free some disk space and run again." if error.errno == errno.ENOSPC else ""
    return OutputPathError(f"Cannot write {path}: {reason}.{hint}")


def _suggestion(path: Path, kind: str) -> Path:
    return path.with_name(f"{path.stem}_{kind.replace(' ', '_')}")
