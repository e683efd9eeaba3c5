"""Which donors a step used: a compact, checkable record (:class:`DonorSet`), so that no donor is scored by a
model or calibration that was fitted on it.

A record holds the split its donors came from (``valid``, ``test``, or several joined by ``+``), their
number, a digest of their sorted IDs (two records are of the same donors exactly when their digests are
equal) and, unless it is a :meth:`~DonorSet.summary`, a short hash of each donor ID: enough to count the
donors of another cohort that it holds without storing the IDs themselves.

Example
-------
>>> fitted = DonorSet.of(["D1", "D2", "D3"], "valid")
>>> fitted.count, fitted.digest == DonorSet.of(["D3", "D1", "D2"], "valid").digest
(3, True)
>>> fitted.seen(["D3", "D4"])
['D3']
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:
    from gtex_models.data.cohort import Cohort

HASH_CHARS = 16  # 64 bits per donor: a chance collision among a million donors is about 3e-8


class DonorLeakError(ValueError):
    """A step would score donors that a model or calibration was fitted on (its scores would look too good)."""


def donor_hash(donor_id: str) -> str:
    """The short hash of one donor ID (hex)."""
    return hashlib.sha256(str(donor_id).encode("utf-8")).hexdigest()[:HASH_CHARS]


@dataclass(frozen=True)
class DonorSet:
    """The donors of one step (see the module docstring).

    Attributes
    ----------
    split : the split(s) of the cohort the donors came from, e.g. ``valid`` or ``test+train``.
    count : how many donors.
    digest : SHA-256 of the sorted donor IDs, one per line.
    hashes : the sorted short hashes of the donor IDs (empty in a summary: then only the digest can be compared).
    """

    split: str
    count: int
    digest: str
    hashes: tuple[str, ...] = ()

    @classmethod
    def of(cls, donor_ids: Iterable[Any], split: str) -> "DonorSet":
        """The record of ``donor_ids`` (repeats count once) taken from ``split``."""
        donors = sorted({str(d) for d in donor_ids})
        digest = hashlib.sha256("\n".join(donors).encode("utf-8")).hexdigest()
        return cls(split, len(donors), digest, tuple(sorted(donor_hash(d) for d in donors)))

    @classmethod
    def of_cohort(cls, cohort: "Cohort") -> "DonorSet":
        """The donors of ``cohort``'s samples, with the split(s) the samples are in."""
        splits = sorted(set(cohort.samples["split"].astype(str)))
        return cls.of(cohort.samples["donor_id"], "+".join(splits))

    def seen(self, donor_ids: Iterable[Any]) -> list[str]:
        """The donors among ``donor_ids`` that this record holds (sorted, each once); ``ValueError`` for a summary."""
        if self.count and not self.hashes:
            raise ValueError("A donor summary holds only the digest; it cannot be checked donor by donor.")
        held = set(self.hashes)
        return sorted(d for d in {str(d) for d in donor_ids} if donor_hash(d) in held)

    def summary(self) -> dict[str, Any]:
        """Split, count and digest (what a study manifest records)."""
        return {"split": self.split, "count": self.count, "digest": self.digest}

    def to_dict(self) -> dict[str, Any]:
        """The full record, JSON-ready (what a checkpoint records)."""
        return {**self.summary(), "hashes": list(self.hashes)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "DonorSet | None":
        """The record written by :meth:`to_dict` or :meth:`summary`; None when there is none (unknown donors)."""
        if not data:
            return None
        try:
            return cls(str(data["split"]), int(data["count"]), str(data["digest"]),
                       tuple(str(h) for h in data.get("hashes") or ()))
        except (KeyError, TypeError, ValueError):
            return None


def require_unseen(fitted_on: DonorSet | None, cohort: "Cohort", fitted: str, scored: str, fix: str) -> str | None:
    """Refuse scoring ``cohort``'s donors (``scored``, e.g. "the test donors") with what was fitted on the donors
    ``fitted_on`` (``fitted``, e.g. "The interval calibration"): :class:`DonorLeakError`, naming the donors seen
    and the ``fix``. Without a record (``None``: stored before donors were recorded), the note saying that this
    cannot be checked; else None."""
    if fitted_on is None:
        return (f"{fitted} was stored before donors were recorded, so whether it was fitted on {scored} cannot be "
                f"checked; {fix} to record them.")
    seen = fitted_on.seen(cohort.samples["donor_id"])
    if not seen:
        return None
    examples = ", ".join(repr(d) for d in seen[:3]) + (f" and {len(seen) - 3} more" if len(seen) > 3 else "")
    raise DonorLeakError(f"{fitted} was fitted on {len(seen)} of {scored} ({examples}; it used {fitted_on.count} "
                         f"donor(s) of the {fitted_on.split} split), so their scores would look better than they "
                         f"are. Score donors it never saw, or {fix}.")
