"""Reference data shipped in ``data/reference``: tissues, pathways, protein-coding genes."""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

import pandas as pd

from gtex_models.common.paths import DATA_DIR

REFERENCE_DIR = DATA_DIR / "reference"
PATHWAYS = {
    "alzheimer": "alzheimer_kegg_hsa05010.txt",
    "p53": "p53_kegg_hsa04115.txt",
}
PATHWAY_TITLES = {
    "alzheimer": "Alzheimer's disease (KEGG hsa05010)",
    "p53": "p53 signalling (KEGG hsa04115)",
}
WHOLE_BLOOD = "Whole Blood"


@lru_cache(maxsize=1)
def tissues() -> pd.DataFrame:
    """The 49 GTEx v8 tissues: ``smtsd``, ``tissue_id``, ``color``, ``approx_v8_rnaseq_samples``."""
    return pd.read_csv(REFERENCE_DIR / "gtex_v8_tissues.csv")


def tissue_colors() -> dict[str, str]:
    """GTEx display colour of each tissue, keyed by its full (SMTSD) name."""
    table = tissues()
    return dict(zip(table["smtsd"], table["color"]))


def are_gtex_tissues(groups: Iterable[str]) -> bool:
    """Whether every name is a GTEx v8 tissue name (``"Whole Blood"``), not a cohort's own group."""
    known = set(tissues()["smtsd"])
    return all(str(group) in known for group in groups)


@lru_cache(maxsize=1)
def protein_coding_genes() -> pd.DataFrame:
    """Protein-coding genes: ``ensembl_gene_id`` (unversioned), ``symbol``, ``chromosome``."""
    return pd.read_csv(REFERENCE_DIR / "protein_coding_genes.csv.gz", dtype=str)


def pathway_genes(name: str) -> list[str]:
    """Gene symbols of a named pathway (``alzheimer`` or ``p53``)."""
    if name not in PATHWAYS:
        raise ValueError(f"Unknown pathway {name!r}; choose one of {sorted(PATHWAYS)}.")
    text = (REFERENCE_DIR / "pathways" / PATHWAYS[name]).read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]
