"""What the app calls a study's groups and values: the words come from the data, not from GTEx.

"tissue" only when every group is a GTEx tissue name (else "group"); "log2(TPM + 1)" only for RNA-seq
TPM (GTEx, ARCHS4, the simulator); a microarray's log values are "log2 intensity"; anything else
imported is named by what the import did to it. The app derives every label from one :class:`Words`.

Example
-------
>>> words = words_for(["Whole Blood", "Liver"], scale="tpm", source="gtex_v8")
>>> words.all_groups, words.log_unit
('All tissues', 'log2(TPM + 1)')
>>> words_for(["case", "control"], scale="log", source="import", probes=True).log_unit
'log2 intensity'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from gtex_models.data.reference import are_gtex_tissues

RNA_SEQ_SOURCES = ("gtex_v8", "simulated", "archs4")  # cohort.meta["source"] of RNA-seq TPM cohorts


@dataclass(frozen=True)
class Words:
    """The names of a study's groups and value scales.

    Attributes
    ----------
    group : ``"tissue"`` or ``"group"``.
    log_unit : the model's log scale, e.g. ``"log2(TPM + 1)"`` (axes, widths, the Scale metric of log values).
    linear_unit : the linear scale, e.g. ``"TPM"`` (an upload or a download of linear values).
    """

    group: str = "tissue"
    log_unit: str = "log2(TPM + 1)"
    linear_unit: str = "TPM"

    @property
    def groups(self) -> str:
        return f"{self.group}s"

    @property
    def Group(self) -> str:  # the capitalised word, for titles and labels
        return self.group.capitalize()

    @property
    def Groups(self) -> str:
        return self.groups.capitalize()

    @property
    def all_groups(self) -> str:
        """The pooled curve's and the choosers' label: ``"All tissues"``."""
        return f"All {self.groups}"

    def count(self, n: int) -> str:
        """``"1 tissue"``, ``"5 groups"``."""
        return f"{n:,} {self.group if n == 1 else self.groups}"

    def scale_name(self, scale: str) -> str:
        """The name of a cohort or upload scale (``tpm``: linear values; ``log``: the log scale)."""
        return self.linear_unit if scale == "tpm" else self.log_unit


def group_word(groups: Iterable[str]) -> str:
    """``tissue`` when there are groups and all are GTEx tissue names, else ``group``."""
    names = [str(g) for g in groups]
    return "tissue" if names and are_gtex_tissues(names) else "group"


def words_for(groups: Iterable[str], scale: str | None = "tpm", source: str | None = None,
              probes: bool = False) -> Words:
    """The words for a cohort with these ``groups``, values on ``scale`` (``tpm``: linear, log2(x + 1) is
    modelled; ``log``: as imported), from ``source`` (``cohort.meta["source"]``); ``probes``: its features are
    (or were mapped from) microarray probes."""
    group = group_word(groups)
    if source in RNA_SEQ_SOURCES and not probes:
        return Words(group, "log2(TPM + 1)", "TPM")
    if probes:
        return Words(group, "log2(signal + 1)" if scale == "tpm" else "log2 intensity",
                     "signal" if scale == "tpm" else "linear intensity")
    if scale == "tpm":
        return Words(group, "log2(value + 1)", "linear values")
    return Words(group, "log scale (as imported)", "linear values")
