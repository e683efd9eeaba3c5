"""A model's space: its genes, tissue (group) vocabulary and value transform, and how cohorts meet it.

Genes are matched by a unique key: the Ensembl ID where both sides have one, else the symbol (the
feature identifier of a cohort without Ensembl IDs: probe IDs, symbols only). So a model trained on
a microarray cohort of probe IDs meets that cohort again, and a GTEx model meets any cohort that
names its genes by Ensembl ID or symbol.

Example
-------
>>> space = ModelSpace.from_metadata(metadata)                 # doctest: +SKIP
>>> cohort = cohort_for_model(full_cohort, space)              # the model's genes, in its order
>>> check_compatible(metadata, cohort)                         # raises if genes or tissues differ
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from gtex_models.common.messages import describe_unknown_tissues, list_examples
from gtex_models.data.cohort import Cohort
from gtex_models.data.transform import Transform
from gtex_models.models.base import Imputer


class IncompatibleCohortError(ValueError):
    """A cohort's genes or tissues are not the ones a model was trained on."""


@dataclass(frozen=True)
class ModelSpace:
    """What a cohort or an upload is mapped onto: the model's genes, tissue vocabulary and value transform."""

    genes: pd.DataFrame
    tissues: tuple[str, ...]
    transform: Transform

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> "ModelSpace":
        """From :func:`~gtex_models.models.checkpoints.load_checkpoint`'s metadata."""
        missing = [key for key in ("genes", "tissues", "transform") if metadata.get(key) is None]
        if missing:
            raise ValueError(f"The checkpoint lacks {', '.join(missing)}; it cannot impute uploads.")
        return cls(pd.DataFrame(metadata["genes"]).reset_index(drop=True), tuple(metadata["tissues"]),
                   metadata["transform"])

    @property
    def n_genes(self) -> int:
        return len(self.genes)


def gene_indexer(source: pd.DataFrame, target: pd.DataFrame) -> np.ndarray:
    """For each gene of ``target``, its row in ``source`` (-1 when absent).

    Both tables have ``ensembl_gene_id`` (may be empty) and ``symbol``. A gene is matched by Ensembl
    ID when both sides have one, else by symbol (so symbol-only and probe-ID cohorts match too).

    Raises
    ------
    IncompatibleCohortError
        When a key of ``target`` occurs several times in ``source`` (ambiguous).
    """
    source_ids = [str(g) for g in source["ensembl_gene_id"].fillna("")]
    source_symbols = [str(s) for s in source["symbol"].fillna("")]
    id_counts, symbol_counts = Counter(g for g in source_ids if g), Counter(source_symbols)
    by_id = {g: i for i, g in enumerate(source_ids) if g}
    by_symbol = {s: i for i, s in enumerate(source_symbols)}
    index = np.full(len(target), -1, dtype=np.int64)
    ambiguous = []
    for j, (gene_id, symbol) in enumerate(zip(target["ensembl_gene_id"].fillna(""), target["symbol"].fillna(""))):
        gene_id, symbol = str(gene_id), str(symbol)
        if gene_id and gene_id in by_id:
            key, counts, lookup = gene_id, id_counts, by_id
        elif symbol in by_symbol and (not gene_id or not source_ids[by_symbol[symbol]]):
            key, counts, lookup = symbol, symbol_counts, by_symbol
        else:
            continue
        if counts[key] > 1:
            ambiguous.append(f"{key} ({counts[key]}x)")
        index[j] = lookup[key]
    if ambiguous:
        raise IncompatibleCohortError(
            f"Several genes of the cohort share an identifier the model uses: {list_examples(ambiguous, quote=False)}. "
            "Keep one row per gene (re-import with --duplicates first or mean)."
        )
    return index


def cohort_for_model(cohort: Cohort, space: ModelSpace) -> Cohort:
    """``cohort`` in the model's space: the model's genes in its order (e.g. a pathway model on the full
    cohort), standardised with the model's transform when it differs from the cohort's own.

    Both transforms share one log space, log2(TPM + 1) (a ``log`` cohort is taken to be on it), so a
    model trained on another cohort sees values standardised as it was trained.
    """
    columns = gene_indexer(cohort.genes, space.genes)
    if (columns < 0).any():
        absent = space.genes.loc[columns < 0, "symbol"].tolist()
        raise IncompatibleCohortError(
            f"The cohort lacks {len(absent)} of the model's genes: {list_examples(absent, quote=False)}.")
    subset = cohort.subset_genes(columns)
    ours, theirs = subset.transform, space.transform
    if np.array_equal(ours.mean, theirs.mean) and np.array_equal(ours.std, theirs.std):
        return subset
    log = subset.x * ours.std + ours.mean
    x = ((log - theirs.mean) / theirs.std).astype(np.float32)
    return Cohort(x, subset.genes, subset.samples, theirs, subset.meta)


def check_compatible(source: Mapping[str, Any] | Imputer, cohort: Cohort) -> None:
    """Raise :class:`IncompatibleCohortError` unless ``cohort`` has the genes and tissues of the model.

    ``source`` is a fitted imputer or the metadata returned by
    :func:`~gtex_models.models.checkpoints.load_checkpoint`. Genes are matched by :func:`gene_indexer`
    (any order); the cohort's tissues must all be in the model's vocabulary.
    """
    if isinstance(source, Imputer):
        genes, tissues = getattr(source, "genes", None), getattr(source, "tissues", None)
    else:
        genes, tissues = source.get("genes"), source.get("tissues")
    if genes is not None:
        _check_genes(pd.DataFrame(genes), cohort.genes)
    if tissues is not None:
        _check_tissues(list(tissues), cohort.samples["tissue"].unique().tolist())


def _check_genes(model: pd.DataFrame, cohort: pd.DataFrame) -> None:
    columns = gene_indexer(cohort, model)
    present = columns >= 0
    extra = np.ones(len(cohort), dtype=bool)
    extra[columns[present]] = False
    if present.all() and not extra.any():
        return
    message = (f"The model was trained on {len(model):,} genes; the cohort has {len(cohort):,}, "
               f"of which {int(present.sum()):,} match (by Ensembl ID, or symbol where either lacks one).")
    if not present.all():
        message += f" Missing from the cohort: {list_examples(model.loc[~present, 'symbol'].tolist(), quote=False)}."
    if extra.any():
        message += (f" Unknown to the model: {list_examples(cohort.loc[extra, 'symbol'].tolist(), quote=False)}; "
                    "keep only the model's genes.")
    raise IncompatibleCohortError(message)


def _check_tissues(known: list[str], used: list[str]) -> None:
    unknown = sorted(set(used) - set(known))
    if unknown:
        raise IncompatibleCohortError(
            f"{len(unknown)} tissue(s) of the cohort are unknown to the model, which knows {len(known)}: "
            f"{describe_unknown_tissues(unknown, known)}."
        )
