"""Write small files in the exact formats of the public GTEx v8 release (see data/reference/README.md)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Callable, Sequence

import numpy as np


def write_gtex_files(
    directory: Path,
    genes: Sequence[tuple[str, str]],
    samples: dict[str, tuple[str, str] | None],
    subjects: Sequence[tuple[str, str, str, str]],
    tpm: Callable[[int, int], float] | np.ndarray,
    gz: bool = False,
    bad_cell: tuple[int, str] | None = None,
) -> tuple[Path, Path, Path]:
    """Write the GCT, sample-attributes and subject-phenotypes files; return their paths.

    Parameters
    ----------
    genes : (Name, Description) rows of the GCT, in file order.
    samples : sample ID -> (SMTSD, SMAFRZE), or None to leave it out of the attributes file.
    subjects : (SUBJID, SEX, AGE, DTHHRDY) rows.
    tpm : value of (gene row, sample column), or a genes x samples array.
    bad_cell : ``(row, text)`` puts ``text`` in that gene row's first value.
    """
    names = list(samples)
    lines = ["#1.2", f"{len(genes)}\t{len(names)}", "\t".join(["Name", "Description", *names])]
    for g, (name, symbol) in enumerate(genes):
        cells = [f"{(tpm[g, s] if isinstance(tpm, np.ndarray) else tpm(g, s)):g}" for s in range(len(names))]
        if bad_cell and bad_cell[0] == g:
            cells[0] = bad_cell[1]
        lines.append("\t".join([name, symbol, *cells]))
    text = "\n".join(lines) + "\n"
    gct = directory / ("gene_tpm.gct.gz" if gz else "gene_tpm.gct")
    if gz:
        gct.write_bytes(gzip.compress(text.encode()))
    else:
        gct.write_text(text)

    header = ["SAMPID", "SMATSSCR", "SMCENTER", "SMPTHNTS", "SMRIN", "SMTS", "SMTSD", "SMAFRZE", "SMGEBTCH"]
    rows = [header, ["GTEX-1117F-0003-SM-58Q7G", "", "B1", "", "", "Blood", "Whole Blood", "WGS", ""]]
    for sample, annotation in samples.items():
        if annotation:
            tissue, freeze = annotation
            # free text with a lone quote and a comma, as in the real SMPTHNTS column
            rows.append([sample, "0", "B1, A1", '2 pieces, "mild autolysis', "7.2",
                         tissue.split(" - ")[0], tissue, freeze, "LCSET-4822"])
    attributes = directory / "SampleAttributesDS.txt"
    attributes.write_text("\n".join("\t".join(r) for r in rows) + "\n")

    phenotypes = directory / "SubjectPhenotypesDS.txt"
    phenotypes.write_text("SUBJID\tSEX\tAGE\tDTHHRDY\n" + "\n".join("\t".join(r) for r in subjects) + "\n")
    return gct, attributes, phenotypes
