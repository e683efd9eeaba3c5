"""ARCHS4 import: stream chosen samples of an ARCHS4 gene-count HDF5 file into an on-disk store.

ARCHS4 (Lachmann et al. 2018, > 1.5 M uniformly processed human RNA-seq samples from GEO) ships one
HDF5 file per species, laid out as its own reader (the ``archs4py`` package) expects:

``data/expression``
    genes x samples, read counts (integers), chunked.
``meta/genes/symbol``
    gene symbols (``meta/genes/gene_symbol`` in older files); ``meta/genes/ensembl_gene`` (or
    ``ensembl_gene_id``) where present.
``meta/samples/<field>``
    one string per sample: ``geo_accession`` (GSM), ``series_id`` (GSE), ``title``,
    ``source_name_ch1``, ``characteristics_ch1`` ("tissue: liver,Sex: male,age: 45"), and the
    number ``singlecellprobability``.

What the import does: samples are chosen by a regular expression over their metadata or by a list
of GSM accessions; samples predicted single-cell (``singlecellprobability > 0.5``) are left out.
Counts become counts per million of the sample's total over all genes (TPM-like: the gene files
carry no gene lengths), stored as ``log2(CPM + 1)``. Genes are the reference's protein-coding genes
(by Ensembl ID when the file has them, else by symbol; a gene listed twice keeps its first row). A
sample's series is its donor, so a study never straddles two splits; the tissue is a metadata field
(``source_name_ch1`` unless chosen); sex and age are read from ``characteristics_ch1`` when stated.
Samples are read in blocks of :data:`READ_BLOCK`, train, valid and test donors each in one run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from gtex_models.common.messages import list_examples
from gtex_models.common.progress import ProgressCallback
from gtex_models.data.cohort import DEFAULT_SPLIT_FRACTIONS, Cohort, assign_donor_split
from gtex_models.data.cohort_format import COHORT_FOLDER, SAMPLE_COLUMNS
from gtex_models.data.covariates import parse_age, parse_sex
from gtex_models.data.readers.errors import InputError, require_file
from gtex_models.data.readers.genes import reference_lookup, strip_version
from gtex_models.data.readers.text import HDF5_MAGIC
from gtex_models.data.store import StoreWriter, split_order

READ_BLOCK = 512
QUERY_FIELDS = ("title", "source_name_ch1", "characteristics_ch1", "series_id")
DEFAULT_TISSUE_FIELD = "source_name_ch1"
_SYMBOL_FIELDS = ("symbol", "gene_symbol")
_ENSEMBL_FIELDS = ("ensembl_gene", "ensembl_gene_id")
_SEX = re.compile(r"(?:^|[,;|])\s*(?:sex|gender)\s*:\s*([^,;|]+)", re.IGNORECASE)
_AGE = re.compile(r"(?:^|[,;|])\s*age(?:\s*\(?(?:years?|yrs?)\)?)?\s*:\s*([0-9]+(?:\.[0-9]+)?)", re.IGNORECASE)


def _strings(dataset) -> list[str]:
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in dataset[:]]


def _field(group, names: Sequence[str]) -> str | None:
    return next((name for name in names if name in group), None)


def import_archs4(path: str | Path, out: str | Path, samples_query: str | None = None,
                  sample_list: Sequence[str] | None = None, tissue_column: str = DEFAULT_TISSUE_FIELD,
                  seed: int = 0, progress: ProgressCallback | None = None, overwrite: bool = False) -> Cohort:
    """Write the chosen samples of an ARCHS4 file as a store at ``out`` and open it (lazily).

    Parameters
    ----------
    path : the ARCHS4 gene-count HDF5 file (e.g. ``human_gene_v2.latest.h5``).
    out : the store directory to write (an existing store only with ``overwrite``; a folder that is not
        ours, or a file, is refused before the ARCHS4 file is read).
    samples_query : case-insensitive regular expression, matched against :data:`QUERY_FIELDS`.
    sample_list : GSM accessions to import (exclusive with ``samples_query``; neither: every sample).
    tissue_column : the ``meta/samples`` field that names the tissue.
    seed : seed of the donor (series) split.
    progress : ``progress(fraction, message)`` after every block read.
    """
    import h5py

    path = require_file(path)
    COHORT_FOLDER.check(out, overwrite)
    with open(path, "rb") as stream:
        if stream.read(8) != HDF5_MAGIC:
            raise InputError(f"{path} is not an HDF5 file; ARCHS4 gene counts come as one .h5 file.")
    if samples_query is not None and sample_list is not None:
        raise InputError("Choose samples either by --samples-query or by --sample-list, not both.")
    with h5py.File(path, "r") as handle:
        layout = [name for name in ("data/expression", "meta/genes", "meta/samples/geo_accession")
                  if name not in handle]
        if layout:
            raise InputError(f"{path} is not in the ARCHS4 layout: it lacks {', '.join(layout)}.")
        meta = handle["meta/samples"]
        if tissue_column not in meta:
            raise InputError(f"{path}: no sample field {tissue_column!r} for the tissue; the file has "
                             f"{list_examples(sorted(meta), 12)}. Choose one with --tissue-column.")
        counts = handle["data/expression"]
        accessions = _strings(meta["geo_accession"])
        if counts.shape[1] != len(accessions):
            raise InputError(f"{path}: data/expression has {counts.shape[1]:,} samples but "
                             f"meta/samples/geo_accession {len(accessions):,}.")
        chosen = _choose_samples(meta, accessions, samples_query, sample_list, path)
        gene_rows, genes = _choose_genes(handle["meta/genes"], path)
        samples = _sample_table(meta, chosen, accessions, tissue_column, seed)
        order = split_order(samples)
        samples, chosen = samples.iloc[order].reset_index(drop=True), chosen[order]
        source = {"source": "archs4", "file": str(path), "query": samples_query,
                  "values": "log2(CPM + 1): counts per million of each sample's total over all genes",
                  "value_scale": "log2(CPM + 1)"}
        with StoreWriter(out, genes, samples, scale="tpm", meta=source, overwrite=overwrite) as writer:
            for start in range(0, len(chosen), READ_BLOCK):
                block = _read_block(counts, chosen[start:start + READ_BLOCK])
                total = block.sum(axis=0, dtype=np.float64)
                cpm = block[gene_rows] / np.maximum(total, 1.0) * 1e6
                writer.append(cpm.T.astype(np.float32))
                if progress is not None:
                    done = min(start + READ_BLOCK, len(chosen))
                    progress(done / len(chosen), f"{done:,} of {len(chosen):,} samples")
    return Cohort.load(out)


def _read_block(counts, columns: np.ndarray) -> np.ndarray:
    """Counts of some samples (genes x samples); ``columns`` increasing within a split's run."""
    if len(columns) > 1 and np.all(np.diff(columns) > 0):
        return counts[:, columns]
    return np.stack([counts[:, int(c)] for c in columns], axis=1)


def _choose_samples(meta, accessions: list[str], query: str | None, sample_list: Sequence[str] | None,
                    path: Path) -> np.ndarray:
    """Indices (increasing) of the requested samples, single-cell ones left out."""
    keep = np.ones(len(accessions), dtype=bool)
    if query is not None:
        try:
            pattern = re.compile(query, re.IGNORECASE)
        except re.error as error:
            raise InputError(f"--samples-query {query!r} is not a valid regular expression ({error}).") from error
        matched = np.zeros(len(accessions), dtype=bool)
        for field in (f for f in QUERY_FIELDS if f in meta):
            matched |= np.fromiter((bool(pattern.search(v)) for v in _strings(meta[field])), bool, len(accessions))
        keep &= matched
    if sample_list is not None:
        wanted = {s.strip() for s in sample_list if s.strip()}
        listed = np.fromiter((a in wanted for a in accessions), bool, len(accessions))
        absent = wanted - set(np.asarray(accessions, dtype=object)[listed])
        if absent and len(absent) == len(wanted):
            raise InputError(f"None of the {len(wanted):,} listed samples is in {path.name} "
                             f"(e.g. {list_examples(sorted(absent))}); list GSM accessions, one per line.")
        keep &= listed
    if "singlecellprobability" in meta:
        keep &= ~(np.asarray(meta["singlecellprobability"][:], dtype=float) > 0.5)
    chosen = np.flatnonzero(keep)
    if not len(chosen):
        raise InputError(f"No sample of {path.name} matches (single-cell samples are left out); "
                         "widen --samples-query or check --sample-list.")
    return chosen


def _choose_genes(group, path: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """Rows of the reference's protein-coding genes in the file, and their gene table."""
    symbol_to_id, id_to_symbol = reference_lookup()
    symbol_field, ensembl_field = _field(group, _SYMBOL_FIELDS), _field(group, _ENSEMBL_FIELDS)
    if symbol_field is None and ensembl_field is None:
        raise InputError(f"{path}: meta/genes has neither gene symbols ({'/'.join(_SYMBOL_FIELDS)}) nor "
                         f"Ensembl IDs ({'/'.join(_ENSEMBL_FIELDS)}).")
    if ensembl_field is not None:
        ids = [strip_version(g) for g in _strings(group[ensembl_field])]
    else:
        ids = [symbol_to_id.get(s.strip(), "") for s in _strings(group[symbol_field])]
    rows, seen = [], set()
    for row, gene_id in enumerate(ids):
        if gene_id in id_to_symbol and gene_id not in seen:
            seen.add(gene_id)
            rows.append(row)
    if not rows:
        raise InputError(f"{path}: none of its genes is a protein-coding gene of the reference (human, Ensembl).")
    kept = [ids[r] for r in rows]
    return np.asarray(rows), pd.DataFrame({"ensembl_gene_id": kept, "symbol": [id_to_symbol[g] for g in kept]})


def _sample_table(meta, chosen: np.ndarray, accessions: list[str], tissue_column: str, seed: int) -> pd.DataFrame:
    """Sample id, series as donor, tissue, sex and age parsed from the characteristics, split."""
    def values(field: str) -> list[str]:
        return [v for i, v in enumerate(_strings(meta[field])) if keep[i]] if field in meta else [""] * len(chosen)

    keep = np.zeros(len(accessions), dtype=bool)
    keep[chosen] = True
    ids = [accessions[i] for i in chosen]
    series = [s.split(",")[0].strip() or i for s, i in zip(values("series_id"), ids)]
    characteristics = values("characteristics_ch1")
    sex = [m.group(1) if (m := _SEX.search(c)) else "" for c in characteristics]
    age = [m.group(1) if (m := _AGE.search(c)) else "" for c in characteristics]
    tissues = [t.strip() or "Unknown" for t in values(tissue_column)]
    samples = pd.DataFrame({"sample_id": ids, "donor_id": series, "tissue": tissues, "sex": parse_sex(sex),
                            "age": parse_age(age)})[SAMPLE_COLUMNS]
    samples["split"] = assign_donor_split(samples["donor_id"], DEFAULT_SPLIT_FRACTIONS, seed)
    return samples
