"""A corpus of malformed (and tricky but valid) input files, shared by the CLI and app tests.

Each ``case_*`` function writes one file into a directory and returns a :class:`Case`: the path,
the regular expression the error message must match (``None`` for inputs that must simply work),
and the file name to upload it under. Expression files use genes of the model they are meant for:
pass the model's gene table (``ensembl_gene_id``, ``symbol``), e.g. a simulated cohort's ``genes``.

The reader-level behaviour is covered by ``tests/test_io_bad_inputs.py``; this corpus drives the
entry points (CLI ``import``/``impute``/``prepare-gtex``/``evaluate``, the app's upload) end to end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from gtex_models.data.readers.errors import MAX_INPUT_MB_ENV


@dataclass(frozen=True)
class Case:
    """One input file and what an entry point must answer.

    Attributes
    ----------
    path : the file written.
    error : regex the error message must match; ``None`` when the input must be accepted.
    warning : regex of a warning that must be shown (accepted inputs only), or ``None``.
    env : environment variables the case needs (e.g. a lowered size limit).
    """

    path: Path
    error: str | None = None
    warning: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    impute_error: str | None = None
    impute_warning: str | None = "same"

    @property
    def name(self) -> str:
        return self.path.name

    def expected_error(self, entry: str) -> str | None:
        """The error regex for entry point ``entry`` (``import``, ``impute``; the app's upload is ``impute``)."""
        return self.impute_error if entry == "impute" and self.impute_error else self.error

    def expected_warning(self, entry: str) -> str | None:
        """The warning regex for ``entry``; for ``impute``, ``impute_warning`` unless it is ``"same"``."""
        return self.warning if entry != "impute" or self.impute_warning == "same" else self.impute_warning


def _symbols(genes: pd.DataFrame, n: int = 6) -> list[str]:
    return genes["symbol"].iloc[:n].tolist()


def _tpm(n_samples: int, n_genes: int, seed: int = 0) -> np.ndarray:
    return np.round(np.random.default_rng(seed).lognormal(3.0, 1.0, (n_samples, n_genes)), 3)


def _samples_by_genes(genes: list[str], values: np.ndarray | None = None,
                      samples: list[str] | None = None) -> pd.DataFrame:
    values = _tpm(4, len(genes)) if values is None else values
    samples = samples or [f"S{i + 1}" for i in range(values.shape[0])]
    return pd.DataFrame(values, index=pd.Index(samples, name="sample_id"), columns=genes)


def _write(directory: Path, name: str, text: str | bytes) -> Path:
    path = Path(directory) / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _csv(directory: Path, name: str, frame: pd.DataFrame) -> Path:
    return _write(directory, name, frame.to_csv())


# ------------------------------------------------------------------------------------- structure
def case_empty(directory: Path, genes: pd.DataFrame) -> Case:
    return Case(_write(directory, "empty.csv", b""), r"empty\.csv is empty\. Put the header on line 1")


def case_header_only(directory: Path, genes: pd.DataFrame) -> Case:
    text = "sample_id," + ",".join(_symbols(genes)) + "\n"
    return Case(_write(directory, "header_only.csv", text), r"header_only\.csv has a header but no data rows")


def case_binary(directory: Path, genes: pd.DataFrame) -> Case:
    data = bytes(np.random.default_rng(0).integers(128, 256, 4000, dtype=np.uint8))
    return Case(_write(directory, "garbage.csv", data), r"garbage\.csv is not UTF-8 text.*binary file")


def case_wrong_delimiter(directory: Path, genes: pd.DataFrame) -> Case:
    frame = _samples_by_genes(_symbols(genes))
    text = frame.to_csv(sep=" ")  # space-separated: one column per line
    return Case(_write(directory, "spaces.csv", text),
                r"spaces\.csv: the header line parses into a single column.*no tab, comma or semicolon")


def case_gct_wrong_dims(directory: Path, genes: pd.DataFrame) -> Case:
    rows = genes.iloc[:3]
    lines = ["#1.2", "5\t2", "Name\tDescription\tS1\tS2"]
    lines += [f"{g}.1\t{s}\t{i + 1}\t{i + 2}" for i, (g, s) in enumerate(zip(rows["ensembl_gene_id"], rows["symbol"]))]
    return Case(_write(directory, "dims.gct", "\n".join(lines) + "\n"),
                r"dims\.gct: line 2 declares 5 genes but the file has 3 data rows\. Correct line 2 to '3\\t2'")


def case_duplicated_genes(directory: Path, genes: pd.DataFrame) -> Case:
    symbols = _symbols(genes)
    frame = _samples_by_genes(symbols + [symbols[1]])
    return Case(_csv(directory, "dup_genes.csv", frame),
                rf"duplicated gene id\(s\) in the header row: '{symbols[1]}' \(2x\).*remove or rename")


def case_duplicated_samples(directory: Path, genes: pd.DataFrame) -> Case:
    frame = _samples_by_genes(_symbols(genes), samples=["S1", "S2", "S1", "S3"])
    return Case(_csv(directory, "dup_samples.csv", frame),
                r"duplicated sample id\(s\) in the first column: 'S1' \(2x\)")


def case_non_numeric(directory: Path, genes: pd.DataFrame) -> Case:
    symbols = _symbols(genes)
    frame = _samples_by_genes(symbols).astype(object)
    frame.iloc[2, 3] = "high"
    return Case(_csv(directory, "text_cell.csv", frame),
                rf"text_cell\.csv, line 4, row 'S3', column '{symbols[3]}': 'high' is not a number.*leave the cell empty")


def case_missing_tokens(directory: Path, genes: pd.DataFrame) -> Case:
    """``NA``, ``n/a``, ``-`` and empty cells are missing values: accepted."""
    frame = _samples_by_genes(genes["symbol"].tolist()).astype(object)
    frame.iloc[0, 0], frame.iloc[1, 1], frame.iloc[2, 2], frame.iloc[3, 3] = "NA", "n/a", "-", ""
    return Case(_csv(directory, "missing_tokens.csv", frame))


def case_negative_tpm(directory: Path, genes: pd.DataFrame) -> Case:
    symbols = _symbols(genes)
    values = _tpm(4, len(symbols))
    values[1, 2] = -3.5
    return Case(_csv(directory, "negative.csv", _samples_by_genes(symbols, values)),
                rf"negative values \(first at sample 'S2', gene '{symbols[2]}'; 1 in all\), down to -3\.5"
                r".*TPM cannot be negative.*--scale log.*--negatives clip")


def case_infinite(directory: Path, genes: pd.DataFrame) -> Case:
    symbols = _symbols(genes)
    frame = _samples_by_genes(symbols).astype(object)
    frame.iloc[1, 0] = "inf"
    return Case(_csv(directory, "infinite.csv", frame),
                rf"infinite\.csv, line 3, row 'S2', column '{symbols[0]}': 'inf' is infinite")


def case_sample_all_missing(directory: Path, genes: pd.DataFrame) -> Case:
    symbols = genes["symbol"].tolist()
    values = _tpm(4, len(symbols))
    values[2] = np.nan
    return Case(_csv(directory, "empty_sample.csv", _samples_by_genes(symbols, values)),
                warning=r"empty_sample\.csv: 1 sample\(s\) have no observed value at all \('S3'\)")


def case_gene_all_missing(directory: Path, genes: pd.DataFrame) -> Case:
    symbols = genes["symbol"].tolist()
    values = _tpm(4, len(symbols))
    values[:, 1] = np.nan
    return Case(_csv(directory, "empty_gene.csv", _samples_by_genes(symbols, values)),
                warning=rf"empty_gene\.csv: 1 gene\(s\) have no observed value in any sample \('{symbols[1]}'\)",
                impute_warning=None)


def case_all_missing(directory: Path, genes: pd.DataFrame) -> Case:
    frame = _samples_by_genes(_symbols(genes), np.full((3, 6), np.nan))
    return Case(_csv(directory, "all_missing.csv", frame),
                r"all_missing\.csv has no observed value at all: every one of its 18 cells is empty")


def case_no_model_gene(directory: Path, genes: pd.DataFrame) -> Case:
    frame = _samples_by_genes(["probe_1_at", "probe_2_at", "probe_3_at"])
    return Case(_csv(directory, "no_model_gene.csv", frame),
                r"None of the 3 gene identifiers of the upload \(e\.g\. probe_1_at.*is one of the model's")


def case_low_coverage(directory: Path, genes: pd.DataFrame) -> Case:
    """1% of the model's genes: accepted with a warning saying the imputation is unreliable."""
    n = max(1, len(genes) // 100)
    frame = _samples_by_genes(genes["symbol"].iloc[:n].tolist())
    return Case(_csv(directory, "low_coverage.csv", frame),
                warning=r"Only 1\.0% of the model's .* gene values are observed.*unreliable")


def case_mixed_ids(directory: Path, genes: pd.DataFrame) -> Case:
    """Symbols and Ensembl IDs (some versioned) in one header: accepted."""
    ids = [f"{g}.7" if i % 3 == 0 else g if i % 3 == 1 else s
           for i, (g, s) in enumerate(zip(genes["ensembl_gene_id"], genes["symbol"]))]
    return Case(_csv(directory, "mixed_ids.csv", _samples_by_genes(ids)))


def case_same_gene_twice(directory: Path, genes: pd.DataFrame) -> Case:
    """A symbol and the versioned Ensembl ID of the same gene."""
    symbol, gene_id = genes["symbol"].iloc[0], genes["ensembl_gene_id"].iloc[0]
    frame = _samples_by_genes([symbol, f"{gene_id}.4"] + genes["symbol"].iloc[1:6].tolist())
    return Case(_csv(directory, "same_gene_twice.csv", frame),
                rf"Duplicated gene.*'{symbol}' and '{gene_id}\.4'.*Keep one row per gene")


def case_versioned_ids(directory: Path, genes: pd.DataFrame) -> Case:
    """Versioned Ensembl IDs, genes as rows (genes x samples): accepted."""
    frame = _samples_by_genes([f"{g}.12" for g in genes["ensembl_gene_id"]]).T
    return Case(_write(directory, "versioned.tsv", frame.rename_axis("gene_id").to_csv(sep="\t")))


def case_square_genes_by_samples(directory: Path, genes: pd.DataFrame) -> Case:
    """Genes x samples with as many samples as genes: the shape says nothing, the identifiers do."""
    symbols = _symbols(genes, 5)
    frame = pd.DataFrame(_tpm(5, 5), index=pd.Index(symbols, name="gene"), columns=[f"S{i}" for i in range(5)])
    return Case(_csv(directory, "square.csv", frame))


def case_ambiguous_orientation(directory: Path, genes: pd.DataFrame) -> Case:
    frame = pd.DataFrame(_tpm(3, 3), index=pd.Index(["a", "b", "c"], name="id"), columns=["x", "y", "z"])
    return Case(_csv(directory, "ambiguous.csv", frame),
                r"cannot tell which axis holds the genes.*--orientation")


def case_too_large(directory: Path, genes: pd.DataFrame) -> Case:
    symbols = genes["symbol"].tolist()
    frame = _samples_by_genes(symbols, _tpm(40, len(symbols)))
    path = _csv(directory, "too_large.csv", frame)
    limit = max(path.stat().st_size / 2**20 / 4, 1e-3)
    return Case(path, r"too_large\.csv is [\d.]+ MB, above the (input|upload) limit of [\d.e-]+ MB.*GTEX_MAX_INPUT_MB",
                env=((MAX_INPUT_MB_ENV, f"{limit:.4f}"),))


def case_bom_crlf(directory: Path, genes: pd.DataFrame) -> Case:
    """A UTF-8 BOM and Windows line endings (Excel's "CSV UTF-8"): accepted."""
    text = _samples_by_genes(genes["symbol"].tolist()).to_csv(lineterminator="\r\n")
    return Case(_write(directory, "excel.csv", b"\xef\xbb\xbf" + text.encode()))


def case_unclosed_quote(directory: Path, genes: pd.DataFrame) -> Case:
    """A quote that opens a field and never closes: the csv module's field-size limit is hit."""
    symbols = _symbols(genes, 5)
    rows = [f"S{i + 2}," + ",".join(str(v) for v in range(5)) for i in range(30_000)]
    text = "sample_id," + ",".join(symbols) + "\n" + 'S1,"1,2,3,4,5\n' + "\n".join(rows) + "\n"
    return Case(_write(directory, "unclosed_quote.csv", text),
                r"unclosed_quote\.csv, the row starting on line 2: the table cannot be parsed \(field larger than "
                r"field limit.*a quote \(\"\) that opens a field is never closed")


def case_text_named_h5ad(directory: Path, genes: pd.DataFrame) -> Case:
    """A CSV saved under an .h5ad name."""
    return Case(_csv(directory, "profiles.h5ad", _samples_by_genes(_symbols(genes))),
                r"profiles\.h5ad is named like an \.h5ad \(AnnData\) file but is not an HDF5 file")


Builder = Callable[[Path, pd.DataFrame], Case]

EXPRESSION_ERRORS: dict[str, Builder] = {
    "empty": case_empty,
    "header_only": case_header_only,
    "binary": case_binary,
    "wrong_delimiter": case_wrong_delimiter,
    "gct_wrong_dims": case_gct_wrong_dims,
    "duplicated_genes": case_duplicated_genes,
    "duplicated_samples": case_duplicated_samples,
    "non_numeric": case_non_numeric,
    "negative_tpm": case_negative_tpm,
    "infinite": case_infinite,
    "all_missing": case_all_missing,
    "same_gene_twice": case_same_gene_twice,
    "ambiguous_orientation": case_ambiguous_orientation,
    "too_large": case_too_large,
    "unclosed_quote": case_unclosed_quote,
    "text_named_h5ad": case_text_named_h5ad,
}
"""Malformed expression files that every entry point (import, impute, the app's upload) must refuse."""

ACCEPTED: dict[str, Builder] = {
    "missing_tokens": case_missing_tokens,
    "sample_all_missing": case_sample_all_missing,
    "gene_all_missing": case_gene_all_missing,
    "mixed_ids": case_mixed_ids,
    "versioned_ids": case_versioned_ids,
    "square_genes_by_samples": case_square_genes_by_samples,
    "bom_crlf": case_bom_crlf,
}
"""Tricky but valid expression files that must simply work (some with a warning)."""

MODEL_CASES: dict[str, Builder] = {
    "no_model_gene": case_no_model_gene,
    "low_coverage": case_low_coverage,
}
"""Files whose problem is only with respect to a model (impute and the app's upload)."""


# ------------------------------------------------------------------------------------- checkpoints
def checkpoint_foreign(directory: Path) -> Case:
    """A safetensors file that is not ours (no metadata), and a plain pickle."""
    import safetensors.numpy

    path = Path(directory) / "foreign.safetensors"
    path.write_bytes(safetensors.numpy.save({"weight": np.ones((2, 2), dtype=np.float32)}))
    return Case(path, r"foreign\.safetensors is not a GTEx Imputation Studio checkpoint \(a safetensors file without our metadata\)")


def checkpoint_pickle(directory: Path) -> Case:
    """A pickle (e.g. a torch.save file): refused, never unpickled."""
    import pickle

    path = Path(directory) / "model.pt"
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    return Case(path, r"model\.pt is not a GTEx Imputation Studio checkpoint \(no safetensors header\)")


def checkpoint_truncated(directory: Path, good: Path) -> Case:
    data = Path(good).read_bytes()
    path = Path(directory) / "truncated.safetensors"
    path.write_bytes(data[: len(data) - 100])
    return Case(path, r"truncated\.safetensors is truncated: [\d,]+ bytes expected, [\d,]+ found")
