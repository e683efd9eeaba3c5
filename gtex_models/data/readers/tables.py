"""Import of an expression table and its sample table as a :class:`~gtex_models.data.cohort.Cohort`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

from gtex_models.common.choices import NEGATIVE_CHOICES
from gtex_models.data.cohort import DEFAULT_SPLIT_FRACTIONS, Cohort
from gtex_models.data.naming import describe_groups, detect_measurement, group_word, value_scale_label
from gtex_models.data.readers.errors import InputError
from gtex_models.data.readers.expression import apply_gene_map, empty_gene_warnings, merge_same_genes, read_expression
from gtex_models.data.readers.genes import looks_like_probes, map_features, read_gene_map
from gtex_models.data.readers.samples import choose_group_column, default_samples, join_samples, read_samples_table
from gtex_models.data.readers.scale import clip_negative, resolve_scale


def import_table(expression_path: str | Path, samples_path: str | Path | None = None,
                 tissue_column: str | None = None, orientation: str = "auto", scale: str = "auto",
                 seed: int = 0, *, duplicates: str = "error", negatives: str = "error",
                 gene_map: str | Path | None = None, split: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
                 value_scale: str | None = None) -> Cohort:
    """Build a :class:`Cohort` from an expression file and an optional sample table.

    Parameters
    ----------
    expression_path : CSV/TSV/GCT/h5ad, read by :func:`read_expression`.
    samples_path : table read by :func:`read_samples_table`; every expression sample needs a row.
        Without it, each sample is its own donor in tissue ``Unknown``.
    tissue_column : name of the tissue (group) column in the sample table; None: chosen by
        :func:`~gtex_models.data.readers.samples.choose_group_column` (``tissue``, else ``group``; a table with
        other plausible group columns is refused, naming them), ``"none"``: every sample in one group.
    orientation : see :func:`read_expression`.
    scale : ``auto`` (detected, :func:`~gtex_models.data.readers.scale.detect_scale`), ``tpm`` (a linear
        scale: TPM, intensities; must be non-negative) or ``log`` (already log-transformed).
    seed : seed of the donor split, stratified by group (every group of 2 donors or more has training donors).
    split : the train, valid and test shares of the donors.
    duplicates : ``error``, ``first`` or ``mean`` for gene identifiers that occur several times or
        name the same gene (:func:`merge_features`).
    negatives : ``error``, or ``clip`` to set negative values to 0 first (a linear signal whose
        negative values are noise, e.g. MAS5 microarrays).
    gene_map : a probe -> gene file (:func:`read_gene_map`): probes become genes (several probes of
        a gene averaged), so the cohort meets models trained on GTEx genes.
    value_scale : what the values are, for people (``log2 RMA intensity``); default: detected
        (:func:`~gtex_models.data.naming.detect_measurement`).

    Warnings from reading and gene mapping are issued with :func:`warnings.warn` and kept in
    ``cohort.meta["warnings"]``; ``cohort.meta["scale"]`` holds the scale and why,
    ``cohort.meta["negatives_clipped"]`` how many values were clipped, ``value_scale`` the values' label,
    ``groups`` which column became the groups (one line) and ``split`` the donor split's shares.
    """
    if negatives not in NEGATIVE_CHOICES:
        raise InputError(f"Unknown negatives choice {negatives!r}; use one of {', '.join(NEGATIVE_CHOICES)}.")
    path = Path(expression_path)
    table = read_expression(path, orientation, duplicates)
    probes = looks_like_probes(table.feature_ids)  # before a gene map turns them into genes
    if gene_map is not None:
        table = apply_gene_map(table, read_gene_map(gene_map), Path(gene_map).name)
    table = merge_same_genes(table, duplicates)
    genes, gene_messages = map_features(table.feature_ids)
    messages = table.warnings + gene_messages + empty_gene_warnings(table.values, table.feature_ids, path)
    if samples_path is None:
        samples, group_column = default_samples(table.sample_ids), None
    else:
        group_column = choose_group_column(samples_path, tissue_column).require(samples_path).column
        annotation = read_samples_table(samples_path, group_column)
        samples, extra = join_samples(table.sample_ids, annotation, path.name, str(samples_path))
        messages += extra
    values, clipped = clip_negative(table.values) if negatives == "clip" else (table.values, 0)
    if clipped:
        messages.append(f"{clipped:,} negative value(s) set to 0 (--negatives clip).")
    scale, reason = resolve_scale(values, scale, table.sample_ids, table.feature_ids)
    groups = sorted(samples["tissue"].unique().tolist())
    if value_scale is None:
        value_scale = value_scale_label(scale, detect_measurement(values, scale, probes, clipped)[0])
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
        "value_scale": value_scale,
        "groups": describe_groups(groups, group_column, group_word(groups)),
        "split": {"fractions": [float(f) for f in split], "stratified_by": "group"},
        "warnings": messages,
    }
    return Cohort.from_raw(values, genes, samples, scale=scale, split_fractions=split, seed=seed, meta=meta,
                           stratify=True)
