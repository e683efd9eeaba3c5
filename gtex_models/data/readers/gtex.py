"""The public GTEx v8 release into a :class:`~gtex_models.data.cohort.Cohort`.

Reads the three files described in ``data/reference/README.md``:

- ``GTEx_Analysis_2017-06-05_v8_RNASeQCv1.1.9_gene_tpm.gct.gz``: TPM, GCT 1.2, genes x samples;
- ``GTEx_Analysis_v8_Annotations_SampleAttributesDS.txt``: ``SAMPID``, ``SMTSD`` (tissue),
  ``SMAFRZE`` (``RNASEQ`` for samples of the release);
- ``GTEx_Analysis_v8_Annotations_SubjectPhenotypesDS.txt``: ``SUBJID``, ``SEX``, ``AGE``.

The GCT (~56k genes x 17k samples) is streamed: a row is accepted or skipped from its unversioned
Ensembl ID before its values are parsed, and only the kept samples' values are stored, as float32.
Peak memory is about twice the kept matrix (the parsed rows, then the stacked samples x genes array).
"""

from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from gtex_models.common.messages import list_examples
from gtex_models.data.cohort import Cohort
from gtex_models.data.cohort_format import SAMPLE_COLUMNS
from gtex_models.data.covariates import parse_age, parse_sex
from gtex_models.data.readers.errors import InputError, require_file
from gtex_models.data.readers.gct import read_gct, read_gct_header
from gtex_models.data.readers.genes import is_ensembl_gene_id, reference_lookup, strip_version, unique_symbols
from gtex_models.data.readers.samples import read_annotation
from gtex_models.data.readers.scale import check_non_negative
from gtex_models.data.readers.text import check_unique, open_text

RNASEQ_FREEZE = "RNASEQ"
GENE_SETS = ("protein_coding", "all")
_GENE_LIST_HEADERS = {"symbol", "gene", "genes", "gene_id", "gene_symbol", "ensembl_gene_id", "name"}


def donor_of(sample_id: str) -> str:
    """GTEx donor of a sample: its first two dash-separated fields.

    ``GTEX-1117F-0226-SM-5GZZ7`` -> ``GTEX-1117F``.
    """
    return "-".join(sample_id.split("-")[:2])


def _read_gene_list(genes: str | Path) -> dict[str, str]:
    """Entries of a gene file mapped to their unversioned Ensembl ID ("" for an unknown symbol).

    The file has one symbol or Ensembl ID per line; blank lines, ``#`` comments and a header word
    such as ``symbol`` are skipped, and only the first field of a delimited line is read.
    """
    path = Path(genes)
    if not path.is_file():
        raise InputError(
            f"genes={str(genes)!r} is neither {' nor '.join(repr(g) for g in GENE_SETS)} nor an existing "
            "file of gene symbols or Ensembl IDs (one per line)."
        )
    with open_text(path) as stream:
        entries = [re.split(r"[\t,; ]", line.strip())[0] for line in stream
                   if line.strip() and not line.lstrip().startswith("#")]
    if entries and entries[0].lower() in _GENE_LIST_HEADERS:
        entries = entries[1:]
    if not entries:
        raise InputError(f"{path} lists no genes. Write one gene symbol or Ensembl ID per line.")
    symbol_to_id, _ = reference_lookup()
    return {e: strip_version(e) if is_ensembl_gene_id(e) else symbol_to_id.get(e, "") for e in entries}


class _GeneFilter:
    """Accepts GCT rows by Name (unversioned Ensembl ID) or Description; a repeated gene's first row wins.

    A listed symbol also matches by Description, since Ensembl IDs can differ between the GCT's
    GENCODE release and the reference.

    Parameters
    ----------
    genes : ``protein_coding`` (reference genes, by Ensembl ID), ``all``, or a gene-list file.
    """

    def __init__(self, genes: str | Path) -> None:
        self.ids: set[str] | None = None  # None: every gene
        self.symbols: set[str] = set()
        self.listed: dict[str, str] = {}
        self.seen: set[str] = set()
        self.duplicates: list[str] = []
        if genes == "protein_coding":
            self.ids = set(reference_lookup()[1])
        elif genes != "all":
            self.listed = _read_gene_list(genes)
            self.ids = {g for g in self.listed.values() if g}
            self.symbols = {e for e in self.listed if not is_ensembl_gene_id(e)}

    def __call__(self, name: str, description: str) -> bool:
        gene_id = strip_version(name)
        if self.ids is not None and gene_id not in self.ids and description not in self.symbols:
            return False
        if gene_id in self.seen:
            self.duplicates.append(name)
            return False
        self.seen.add(gene_id)
        return True

    def not_found(self, descriptions: list[str]) -> list[str]:
        """Entries of the gene list matched neither by Ensembl ID nor by symbol."""
        kept = set(descriptions)
        return [e for e, g in self.listed.items() if g not in self.seen and e not in kept]


def _select_samples(sample_ids: list[str], path: Path, min_per_tissue: int,
                    messages: list[str]) -> pd.DataFrame:
    """GCT samples of the RNASEQ release in tissues with enough samples.

    Columns: ``sample_id``, ``column`` (index in the GCT header) and ``tissue``.
    """
    attributes = read_annotation(
        path, {"sample_id": ("SAMPID",), "tissue": ("SMTSD",), "freeze": ("SMAFRZE",)},
        required=("sample_id", "tissue", "freeze"), quoting=csv.QUOTE_NONE, limit_size=False,
    ).drop_duplicates("sample_id").set_index("sample_id")
    table = pd.DataFrame({"sample_id": sample_ids, "column": np.arange(len(sample_ids))})
    known = table["sample_id"].isin(attributes.index).to_numpy()
    if not known.all():
        absent = table["sample_id"][~known].tolist()
        messages.append(f"{len(absent)} sample(s) of the GCT are not in {path.name} and are dropped: "
                        f"{list_examples(absent)}.")
        table = table[known]
    annotation = attributes.loc[table["sample_id"]]
    table = table.assign(tissue=annotation["tissue"].to_numpy())
    released = (annotation["freeze"] == RNASEQ_FREEZE).to_numpy() & (table["tissue"] != "").to_numpy()
    if not released.all():
        dropped = table["sample_id"][~released].tolist()
        messages.append(f"{len(dropped)} sample(s) are not in the RNA-seq release (SMAFRZE is not "
                        f"{RNASEQ_FREEZE!r}, or no SMTSD) and are dropped: {list_examples(dropped)}.")
        table = table[released]
    counts = table["tissue"].value_counts()
    small = counts[counts < min_per_tissue]
    if len(small):
        listed = [f"{tissue} ({n})" for tissue, n in small.sort_index().items()]
        messages.append(f"{len(small)} tissue(s) have fewer than {min_per_tissue} samples and are dropped: "
                        f"{list_examples(listed, 10, quote=False)}.")
        table = table[~table["tissue"].isin(small.index)]
    if table.empty:
        raise InputError(
            f"No sample left: none of the {len(sample_ids)} GCT samples is in the {RNASEQ_FREEZE} release "
            f"of {path} within a tissue of at least {min_per_tissue} samples ({' '.join(messages)}). "
            "Check that the files belong together, or lower --min-samples-per-tissue (min_samples_per_tissue)."
        )
    return table.reset_index(drop=True)


def _add_donors(table: pd.DataFrame, path: Path, messages: list[str]) -> pd.DataFrame:
    """Add ``donor_id``, ``sex`` and ``age`` from the subject phenotypes file."""
    subjects = read_annotation(
        path, {"donor_id": ("SUBJID",), "sex": ("SEX",), "age": ("AGE",)},
        required=("donor_id", "sex", "age"), quoting=csv.QUOTE_NONE, limit_size=False,
    ).drop_duplicates("donor_id").set_index("donor_id")
    donors = table["sample_id"].map(donor_of)
    unknown = sorted(set(donors) - set(subjects.index))
    if unknown:
        messages.append(f"{len(unknown)} donor(s) are not in {path.name}; their sex is unknown and age "
                        f"missing: {list_examples(unknown)}.")
    phenotypes = subjects.reindex(donors).fillna("")
    return table.assign(donor_id=donors.to_numpy(), sex=parse_sex(phenotypes["sex"]),
                        age=parse_age(phenotypes["age"]))


def prepare_gtex(gct: str | Path, samples: str | Path, subjects: str | Path,
                 min_samples_per_tissue: int = 70, genes: str | Path = "protein_coding",
                 seed: int = 0) -> Cohort:
    """Build a cohort from the public GTEx v8 TPM, sample-attribute and subject-phenotype files.

    Parameters
    ----------
    gct : the gene TPM file, GCT 1.2, gzipped or not.
    samples : the sample attributes file; samples with ``SMAFRZE != "RNASEQ"`` are dropped, and so
        (with a warning) are GCT samples it does not list.
    subjects : the subject phenotypes file; sex 1/2 becomes male/female, the age bracket its centre.
    min_samples_per_tissue : tissues with fewer kept samples are dropped, with a warning.
    genes : ``protein_coding`` (the reference's genes, matched by unversioned Ensembl ID), ``all``,
        or a file of gene symbols / Ensembl IDs, one per line.
    seed : seed of the donor split.

    Returns
    -------
    Cohort with samples in GCT order (tissue = full ``SMTSD`` name) and genes in GCT order. A gene
    listed twice keeps its first row; symbols come from the reference (else the GCT's Description)
    and are made unique as ``SYMBOL_ENSG...``. Warnings are also kept in ``meta["warnings"]``.

    Examples
    --------
    >>> cohort = prepare_gtex("GTEx_Analysis_2017-06-05_v8_RNASeQCv1.1.9_gene_tpm.gct.gz",
    ...                       "GTEx_Analysis_v8_Annotations_SampleAttributesDS.txt",
    ...                       "GTEx_Analysis_v8_Annotations_SubjectPhenotypesDS.txt")  # doctest: +SKIP
    """
    gct, samples, subjects = require_file(gct), require_file(samples), require_file(subjects)
    if min_samples_per_tissue < 0:
        raise InputError(f"--min-samples-per-tissue (min_samples_per_tissue) must be >= 0, got {min_samples_per_tissue}.")
    keep_gene = _GeneFilter(genes)
    with open_text(gct) as stream:
        header = read_gct_header(stream, gct)
    check_unique(header.columns, "sample", "GCT header (line 3)", gct)
    messages: list[str] = []
    table = _add_donors(_select_samples(header.columns, samples, min_samples_per_tissue, messages),
                        subjects, messages)
    matrix = read_gct(gct, keep_gene, table["column"].tolist())
    if not matrix.names:
        raise InputError(f"{gct}: none of its genes is in the gene set {str(genes)!r}. Check the gene "
                         "list, or use all genes (CLI: --genes all).")
    if keep_gene.duplicates:
        messages.append(f"{len(keep_gene.duplicates)} gene row(s) repeat an Ensembl ID already seen; the "
                        f"first row is kept: {list_examples(keep_gene.duplicates)}.")
    not_found = keep_gene.not_found(matrix.descriptions)
    if not_found:
        messages.append(f"{len(not_found)} listed gene(s) are not in the GCT: {list_examples(not_found)}.")
    check_non_negative(matrix.values, matrix.columns, matrix.names, where=f"{gct}: ")
    gene_ids = [strip_version(name) for name in matrix.names]
    _, id_to_symbol = reference_lookup()
    symbols = [id_to_symbol.get(g) or d or g for g, d in zip(gene_ids, matrix.descriptions)]
    gene_table = pd.DataFrame({"ensembl_gene_id": gene_ids, "symbol": unique_symbols(symbols, gene_ids)})
    for message in messages:
        warnings.warn(message, stacklevel=2)
    meta = {
        "source": "gtex_v8",
        "files": {"gct": str(gct), "samples": str(samples), "subjects": str(subjects)},
        "genes": str(genes),
        "min_samples_per_tissue": min_samples_per_tissue,
        "warnings": messages,
    }
    return Cohort.from_raw(matrix.values, gene_table, table[SAMPLE_COLUMNS], scale="tpm", seed=seed,
                           meta=meta)
