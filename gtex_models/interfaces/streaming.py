"""Streaming imputation: fill an on-disk store's missing values block by block, in bounded memory.

Each storage block of the store (a few MiB) is mapped onto the model's genes (genes the store lacks
are missing, hence imputed), standardised with the model's transform, imputed, and written out at
once: to a CSV (samples x genes, the store's scale) or to a new store. Memory holds one block and
the model, whatever the number of samples.

Example
-------
>>> imputer, metadata = load_checkpoint("pmi.safetensors")                        # doctest: +SKIP
>>> impute_store(imputer, ModelSpace.from_metadata(metadata), Cohort.load("big"), "big_imputed.csv")  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from gtex_models.common.atomic import atomic_file, check_output_file
from gtex_models.common.progress import ProgressCallback
from gtex_models.data.cohort import Cohort
from gtex_models.data.store import StoreWriter
from gtex_models.interfaces.upload import upload_transform
from gtex_models.models.base import Imputer
from gtex_models.models.checkpoints import check_compatible
from gtex_models.models.model_space import ModelSpace


@dataclass(frozen=True)
class StreamSummary:
    """What a streaming imputation did."""

    n_samples: int
    n_imputed: int
    n_model_genes: int
    n_genes_absent: int


def writes_store(out: str | Path) -> bool:
    """Whether :func:`impute_store` writes ``out`` as a new store (a folder) rather than a CSV file."""
    return Path(out).suffix.lower() != ".csv"


def impute_store(imputer: Imputer, space: ModelSpace, cohort: Cohort, out: str | Path,
                 progress: ProgressCallback | None = None, overwrite: bool = False) -> StreamSummary:
    """Impute every sample of a stored ``cohort`` and write the result block by block.

    Parameters
    ----------
    imputer, space : a fitted model and its genes, tissues and transform.
    cohort : a cohort opened from a store (:meth:`gtex_models.data.cohort.Cohort.load`).
    out : ``*.csv`` (samples x the model's genes, by symbol, on the store's scale) or a directory,
        written as a new store (compressed as the input). Written atomically: a failure leaves
        nothing behind. An existing CSV file or store is replaced only with ``overwrite``; a folder
        that is not a store of ours is never replaced.
    progress : ``progress(fraction, message)`` after every block.
    """
    if not cohort.stored:
        raise ValueError("impute_store streams an on-disk store; impute an in-memory cohort with imputer.impute.")
    check_compatible({"tissues": list(space.tissues)}, cohort)
    columns = pd.Index(cohort.genes["ensembl_gene_id"]).get_indexer(space.genes["ensembl_gene_id"])
    present = columns >= 0
    if not present.any():
        raise ValueError("The store has none of the model's genes (matched by Ensembl ID); nothing to impute from.")
    transform = upload_transform(space, cohort.transform.scale)
    summary = {"n_imputed": 0}
    out = Path(out)

    def imputed_blocks() -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        log_values = cohort.x.log_values()[:, columns[present]]
        start = 0
        for block in log_values.blocks():
            samples = cohort.samples.iloc[start:start + len(block)]
            x = np.full((len(block), space.n_genes), np.nan, dtype=np.float32)
            x[:, present] = (block - transform.mean[present]) / transform.std[present]
            filled = imputer.impute(Cohort(x, space.genes, samples, transform))
            summary["n_imputed"] += int(np.isnan(x).sum())
            start += len(block)
            if progress is not None:
                progress(start / cohort.n_samples, f"{start:,} of {cohort.n_samples:,} samples")
            yield samples, filled

    if not writes_store(out):
        check_output_file(out, overwrite)
        with atomic_file(out) as tmp, open(tmp, "w", newline="") as stream:
            for i, (samples, filled) in enumerate(imputed_blocks()):
                frame = pd.DataFrame(transform.inverse(filled), columns=space.genes["symbol"],
                                     index=pd.Index(samples["sample_id"].astype(str), name="sample_id"))
                frame.to_csv(stream, header=i == 0)
    else:
        with StoreWriter(out, space.genes, cohort.samples, transform.scale, transform.pseudocount,
                         {"source": "imputed", "from": str(cohort.meta.get("source", "unknown"))},
                         compression=cohort.x.compression, overwrite=overwrite) as writer:
            for _, filled in imputed_blocks():
                writer.append(filled * transform.std + transform.mean, log=True)
    return StreamSummary(cohort.n_samples, summary["n_imputed"], space.n_genes, int((~present).sum()))
