"""Gene identifiers: Ensembl IDs and symbols resolved against the reference, probe IDs recognised, gene maps.

Gene symbols are made unique: when two different Ensembl IDs carry the same symbol, the first keeps
it and later ones become ``SYMBOL_ENSG...`` (see :func:`unique_symbols`).
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import pandas as pd

from gtex_models.common.messages import list_examples
from gtex_models.data.readers.errors import InputError, check_file_size
from gtex_models.data.readers.text import first_line, open_text, sniff_delimiter
from gtex_models.data.reference import protein_coding_genes

_ENSEMBL_GENE = re.compile(r"^(ENS[A-Z]*G\d{6,})(?:\.\d+)?(_PAR_Y)?$")
_PROBE = re.compile(r"(_at$|^ILMN_\d+$|^A_\d+_P\d+$)")  # Affymetrix, Illumina, Agilent probe IDs


# --------------------------------------------------------------------------- gene identifiers
def strip_version(gene_id: str) -> str:
    """``ENSG00000223972.5`` -> ``ENSG00000223972`` (``_PAR_Y`` kept); other IDs unchanged."""
    match = _ENSEMBL_GENE.match(gene_id.strip())
    if not match:
        return gene_id.strip()
    return match.group(1) + (match.group(2) or "")


def is_ensembl_gene_id(gene_id: str) -> bool:
    """Whether ``gene_id`` looks like an Ensembl gene ID, versioned or not."""
    return _ENSEMBL_GENE.match(gene_id.strip()) is not None


@lru_cache(maxsize=1)
def reference_lookup() -> tuple[dict[str, str], dict[str, str]]:
    """``(symbol -> Ensembl ID, Ensembl ID -> symbol)`` for the protein-coding reference genes."""
    table = protein_coding_genes()
    return (dict(zip(table["symbol"], table["ensembl_gene_id"])),
            dict(zip(table["ensembl_gene_id"], table["symbol"])))


def unique_symbols(symbols: Sequence[str], ensembl_ids: Sequence[str]) -> list[str]:
    """Make symbols unique: a repeated symbol becomes ``SYMBOL_<Ensembl ID>`` after its first use."""
    seen: set[str] = set()
    out = []
    for n, (symbol, gene_id) in enumerate(zip(symbols, ensembl_ids)):
        if symbol in seen:
            symbol = f"{symbol}_{gene_id or n}"
        seen.add(symbol)
        out.append(symbol)
    return out


def map_features(feature_ids: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """Resolve gene symbols and (versioned) Ensembl IDs, mixed freely, against the reference.

    Identifiers that are neither (microarray probes such as ``1007_s_at``, unknown symbols) are kept
    as given, with an empty Ensembl ID, and reported in a warning.

    Returns
    -------
    genes : DataFrame with ``ensembl_gene_id`` and ``symbol``, one row per feature, in order.
    warnings : messages for the user.

    Raises
    ------
    InputError
        If two features resolve to the same gene (e.g. ``TP53`` and ``ENSG00000141510.11``).
    """
    symbol_to_id, id_to_symbol = reference_lookup()
    ensembl, symbols, non_coding, unresolved = [], [], [], []
    for feature in (f.strip() for f in feature_ids):
        if is_ensembl_gene_id(feature):
            gene_id = strip_version(feature)
            symbol = id_to_symbol.get(gene_id)
            if symbol is None:
                non_coding.append(feature)
            ensembl.append(gene_id)
            symbols.append(symbol or gene_id)
        elif feature in symbol_to_id:
            ensembl.append(symbol_to_id[feature])
            symbols.append(feature)
        else:
            unresolved.append(feature)
            ensembl.append("")
            symbols.append(feature)
    by_gene: dict[str, list[str]] = defaultdict(list)
    for feature, gene_id in zip(feature_ids, ensembl):
        if gene_id:
            by_gene[gene_id].append(feature.strip())
    clashes = [f"{' and '.join(repr(f) for f in fs)} -> {g}" for g, fs in by_gene.items() if len(fs) > 1]
    if clashes:
        raise InputError(
            f"Duplicated gene: several features resolve to the same gene ({'; '.join(clashes[:5])}). "
            "Keep one row per gene."
        )
    messages = []
    if non_coding:
        messages.append(
            f"{len(non_coding)} Ensembl ID(s) are not protein-coding genes of the reference "
            f"(e.g. {list_examples(non_coding, 3)}); they are kept, with the ID as symbol."
        )
    if unresolved:
        messages.append(
            f"{len(unresolved)} of {len(symbols)} feature(s) are neither protein-coding gene symbols nor "
            f"Ensembl gene IDs (e.g. {list_examples(unresolved, 3)}; microarray probes?); they are kept as "
            "given, with no Ensembl ID, so models trained on GTEx genes will not recognise them."
        )
    genes = pd.DataFrame({"ensembl_gene_id": ensembl, "symbol": unique_symbols(symbols, ensembl)})
    return genes, messages


def looks_like_probes(ids: Sequence[str]) -> bool:
    """Whether most identifiers are microarray probe IDs (Affymetrix ``1007_s_at``, Illumina, Agilent)."""
    return sum(1 for i in ids if _PROBE.search(i.strip())) > len(ids) / 2


def gene_like_fraction(ids: Sequence[str]) -> float:
    symbol_to_id, _ = reference_lookup()
    hits = sum(1 for i in ids if i in symbol_to_id or is_ensembl_gene_id(i) or _PROBE.search(i))
    return hits / max(len(ids), 1)
_GENE_MAP_HEADERS = {"probe", "probe_id", "probeid", "probeset", "probe_set", "probe_set_id", "id", "id_ref",
                     "feature", "feature_id", "gene", "symbol", "gene_symbol", "ensembl_gene_id", "gene_id"}


def read_gene_map(path: str | Path) -> dict[str, str]:
    """A probe -> gene mapping: two columns (probe ID, gene symbol or Ensembl ID), CSV or TSV, header
    optional (recognised by names such as ``probe``/``ID_REF`` and ``gene``/``symbol``).

    Rows with an empty gene are skipped (the probe maps to nothing).

    Raises
    ------
    InputError
        For a file with fewer than two columns, no mapping row, or a probe mapped to two genes.
    """
    path = check_file_size(path)
    with open_text(path) as stream:
        first = first_line(stream, path)
        delimiter = sniff_delimiter(first, path)
        rows = list(csv.reader([first, *stream], delimiter=delimiter))
    rows = [[cell.strip() for cell in row] for row in rows if any(cell.strip() for cell in row)]
    if any(len(row) < 2 for row in rows):
        line = next(n for n, row in enumerate(rows, start=1) if len(row) < 2)
        raise InputError(f"{path}, line {line}: a gene map has two columns, the probe ID and its gene "
                         "(symbol or Ensembl ID).")
    if rows and (rows[0][0].lower() in _GENE_MAP_HEADERS or rows[0][1].lower() in _GENE_MAP_HEADERS):
        rows = rows[1:]
    mapping: dict[str, str] = {}
    clashes = []
    for probe, gene, *_ in rows:
        if not gene:
            continue
        if mapping.get(probe, gene) != gene:
            clashes.append(f"{probe!r} -> {mapping[probe]!r} and {gene!r}")
        mapping[probe] = gene
    if clashes:
        raise InputError(f"{path}: probe(s) mapped to several genes: {list_examples(clashes, quote=False)}. "
                         "Map each probe to one gene.")
    if not mapping:
        raise InputError(f"{path} maps no probe to a gene. Write one 'probe,gene' pair per line.")
    return mapping
