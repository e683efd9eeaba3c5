"""Settings for running the app on a shared server (environment variables); a local run changes nothing.

==========================  =====================================================================================
``GTEX_READ_ONLY``          ``1``: visitors browse the studies but cannot build one (no New study page)
``GTEX_COHORT_ROOT``        the folder under which the New study page may read cohort folders (symbolic links and
                            ``..`` may not lead out of it; relative paths are taken inside it); ``off``: no
                            cohort-folder source at all (uploads only). Unset: any folder of the machine
``GTEX_STUDIES_MAX_MB``     the most the studies folder may hold (MB): no new build starts once it holds that much
``GTEX_MAX_BUILDS``         how many study builds may run at once on the server (default 1)
==========================  =====================================================================================

Example
-------
>>> settings = Deployment.from_environ({"GTEX_COHORT_ROOT": "/srv/cohorts", "GTEX_MAX_BUILDS": "2"})
>>> settings.max_builds, settings.cohort_root
(2, PosixPath('/srv/cohorts'))
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

READ_ONLY_ENV = "GTEX_READ_ONLY"
COHORT_ROOT_ENV = "GTEX_COHORT_ROOT"
STUDIES_MAX_MB_ENV = "GTEX_STUDIES_MAX_MB"
MAX_BUILDS_ENV = "GTEX_MAX_BUILDS"
OFF = "off"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


class DeploymentError(ValueError):
    """A setting of the environment that cannot be used, or a request the settings refuse."""


@dataclass(frozen=True)
class Deployment:
    """What this server allows (see the module docstring for the variables).

    Attributes
    ----------
    read_only : no study can be built (the New study page is left out).
    cohort_folders : whether the New study page reads cohort folders of the machine at all.
    cohort_root : the only folder they may be in (resolved), or None for any folder.
    studies_max_bytes : the studies folder's cap, or None.
    max_builds : study builds running at once.
    """

    read_only: bool = False
    cohort_folders: bool = True
    cohort_root: Path | None = None
    studies_max_bytes: int | None = None
    max_builds: int = 1

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> "Deployment":
        """The settings of ``environ``.

        Raises
        ------
        DeploymentError
            For a value that is not understood (it names the variable and what it accepts).
        """
        read_only = environ.get(READ_ONLY_ENV, "").strip().lower()
        if read_only not in _TRUE + _FALSE:
            raise DeploymentError(f"${READ_ONLY_ENV} is {read_only!r}: use 1 (read-only) or 0.")
        root = environ.get(COHORT_ROOT_ENV, "").strip()
        cohort_root = None
        if root and root.lower() != OFF:
            cohort_root = Path(root).expanduser().resolve()
            if not cohort_root.is_dir():
                raise DeploymentError(f"${COHORT_ROOT_ENV} is {root!r}, which is not a folder: give the folder that "
                                      f"holds the cohorts the New study page may read, or {OFF!r} for none.")
        return cls(read_only=read_only in _TRUE, cohort_folders=root.lower() != OFF, cohort_root=cohort_root,
                   studies_max_bytes=_positive(environ, STUDIES_MAX_MB_ENV, "a size in MB", 2**20),
                   max_builds=_positive(environ, MAX_BUILDS_ENV, "a whole number of builds") or 1)

    def cohort_folder(self, typed: str) -> Path:
        """The cohort folder a visitor typed, resolved (symbolic links and ``..`` followed); inside
        :attr:`cohort_root` when there is one (a relative path is taken inside it).

        Raises
        ------
        DeploymentError
            When cohort folders are off, or the folder is outside the root.
        """
        if not self.cohort_folders:
            raise DeploymentError("This server reads no cohort folders (it was started with "
                                  f"{COHORT_ROOT_ENV}={OFF}): upload the files instead.")
        path = Path(typed.strip()).expanduser()
        if self.cohort_root is None:
            return path.resolve()
        resolved = (self.cohort_root / path).resolve()
        if not resolved.is_relative_to(self.cohort_root):
            raise DeploymentError(f"{typed.strip()!r} is outside the folder this server reads cohorts from "
                                  f"({self.cohort_root}): give a cohort folder inside it, e.g. a name relative to it.")
        return resolved

    def check_room(self, studies_dir: Path, adding: int = 0) -> None:
        """Refuse a new build of at least ``adding`` bytes when the studies folder would then hold more than
        :attr:`studies_max_bytes`.

        Raises
        ------
        DeploymentError
            Saying how much it holds, what the cap is and what to do.
        """
        if self.studies_max_bytes is None:
            return
        used = folder_bytes(studies_dir)
        if used + adding > self.studies_max_bytes:
            raise DeploymentError(f"The studies folder holds {used / 2**20:,.1f} MB and this study needs at least "
                                  f"{adding / 2**20:,.1f} MB more, beyond the {self.studies_max_bytes / 2**20:,.0f} MB "
                                  f"this server allows (${STUDIES_MAX_MB_ENV}): ask its administrator to remove "
                                  "studies, or build a smaller one.")


def folder_bytes(folder: Path) -> int:
    """The size of the files under ``folder`` (0 when it does not exist; symbolic links not followed)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:  # removed meanwhile
                continue
    return total


def _positive(environ: Mapping[str, str], name: str, what: str, unit: int | None = None) -> int | None:
    """The variable ``name`` as a positive number (times ``unit``; without one, a whole number), or None when unset."""
    text = environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text) if unit else int(text)
    except ValueError:
        value = 0
    if not (value > 0 and math.isfinite(value)):
        raise DeploymentError(f"${name} is {text!r}: give {what} above 0, or leave it unset.")
    return int(value * (unit or 1))
