"""Import of an expression table and its sample table as a :class:`~gtex_models.data.cohort.Cohort`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from gtex_models.common.choices import NEGATIVE_CHOICES
from gtex_models.data.cohort import Cohort
from gtex_models.data.readers.errors import InputError
from gtex_models.data.readers.expression import apply_gene_map, empty_gene_warnings, merge_same_genes, read_expression
from gtex_models.data.readers.genes import map_features, read_gene_map
from gtex_models.data.readers.samples import default_samples, join_samples, read_samples_table
from gtex_models.data.readers.scale import clip_negative, resolve_scale


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
    scale : ``auto`` (detected, :func:`~gtex_models.data.readers.scale.detect_scale`), ``tpm`` (a linear
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
    if negatives not in NEGATIVE_CHOICES:
        raise InputError(f"Unknown negatives choice {negatives!r}; use one of {', '.join(NEGATIVE_CHOICES)}.")
    path = Path(expression_path)
    table = read_expression(path, orientation, duplicates)
    if gene_map is not None:
        table = apply_gene_map(table, read_gene_map(gene_map), Path(gene_map).name)
    table = merge_same_genes(table, duplicates)
    genes, gene_messages = map_features(table.feature_ids)
    messages = table.warnings + gene_messages + empty_gene_warnings(table.values, table.feature_ids, path)
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
