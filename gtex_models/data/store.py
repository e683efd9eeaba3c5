"""On-disk cohort store: expression in an HDF5 file, read in sample blocks, for cohorts larger than memory.

A store is a cohort directory like :meth:`Cohort.save <gtex_models.data.cohort.Cohort.save>` writes, with
``expression.h5`` in place of ``expression.npy``:

``expression.h5``, dataset ``log``
    samples x genes, float32, the **log-scale** values (``log2(TPM + pseudocount)``, or the values
    themselves for ``scale='log'``), NaN where missing; chunked in blocks of whole samples
    (``block_rows`` rows, about 4 MiB each), compressed with gzip level 1 and byte shuffle by default
    (``compression="none"`` trades disk for speed: see :data:`COMPRESSIONS`).
``transform.npz``
    per-gene mean and SD of the log values over the training donors, accumulated while the blocks
    were written (one streaming pass). Model space, ``(log - mean) / sd``, is applied on reading.
``samples.csv``, ``genes.csv``, ``cohort.json``
    as for an in-memory cohort; ``cohort.json`` has ``"store": {"block_rows": ...}``. Rows are kept
    in the order they were written (writers put the train, valid and test donors each in one run, so
    that a split reads contiguous blocks).

:meth:`Cohort.load <gtex_models.data.cohort.Cohort.load>` returns a :class:`~gtex_models.data.cohort.Cohort` whose ``x``
is a :class:`StoredMatrix`: its row and gene selections (``cohort.split("train")``,
``subset_samples``) are views, nothing is read until blocks are asked for. :class:`~gtex_models.data.batches.BlockBatches`
feeds the training loop from it, one shuffle buffer of blocks at a time (and one share of the blocks
per rank in data-parallel training).

Why HDF5 (h5py) rather than zarr or AnnData's backed mode: one file per cohort (renamed into place
atomically, copied like any file, no thousands of chunk files on shared file systems); the same
library reads ARCHS4, itself an HDF5 file; gzip is readable by every HDF5 tool (R's rhdf5, HDFView),
unlike zarr's codecs outside Python; and AnnData's backed mode cannot append rows while writing nor
compute statistics on the way, so it would need the same h5py code underneath.

Example
-------
>>> with StoreWriter("runs/big", genes, samples, scale="tpm") as writer:       # doctest: +SKIP
...     for raw_block in blocks_of_tpm:                                       # doctest: +SKIP
...         writer.append(raw_block)                                          # doctest: +SKIP
>>> cohort = Cohort.load("runs/big")     # lazily read; cohort.x is a StoredMatrix   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple, Sequence

import numpy as np
import pandas as pd

from gtex_models.common.choices import COMPRESSIONS
from gtex_models.data.cohort_format import COHORT_FOLDER, COHORT_FORMAT_VERSION, GENE_COLUMNS, SAMPLE_COLUMNS, SCALES
from gtex_models.data.transform import Transform

if TYPE_CHECKING:
    from gtex_models.data.cohort import Cohort

EXPRESSION_FILE = "expression.h5"
DATASET = "log"
BLOCK_BYTES = 4 * 2**20
SHUFFLE_BUFFER_BYTES = 64 * 2**20
_SPLIT_ORDER = {"train": 0, "valid": 1, "test": 2}


def block_rows_for(n_genes: int) -> int:
    """Rows per block (HDF5 chunk): about 4 MiB of float32, between 16 and 4,096 samples."""
    return int(np.clip(BLOCK_BYTES // (4 * max(n_genes, 1)), 16, 4096))


def is_store(directory: str | Path) -> bool:
    """Whether ``directory`` holds an on-disk store (``expression.h5``) rather than an in-memory cohort."""
    return (Path(directory) / EXPRESSION_FILE).is_file()


def split_order(samples: pd.DataFrame) -> np.ndarray:
    """Row order that puts the train, valid and test samples each in one run (stable within a split)."""
    rank = samples["split"].map(_SPLIT_ORDER).fillna(len(_SPLIT_ORDER)).to_numpy()
    return np.argsort(rank, kind="stable")


# ------------------------------------------------------------------------------------- statistics
class RunningMoments:
    """Per-gene count, mean and sum of squared deviations, merged block by block (NaN ignored).

    Chan et al.'s pairwise update in float64: one pass, any block sizes, the same result as
    ``np.nanmean`` / ``np.nanstd`` over all rows to rounding.
    """

    def __init__(self, n_genes: int) -> None:
        self.count = np.zeros(n_genes)
        self.mean = np.zeros(n_genes)
        self.m2 = np.zeros(n_genes)

    def update(self, block: np.ndarray) -> None:
        """Add the rows of ``block`` (samples x genes)."""
        if not len(block):
            return
        if np.isnan(block).any():
            observed = ~np.isnan(block)
            count = observed.sum(axis=0)
            values = np.where(observed, block, 0.0).astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(count > 0, values.sum(axis=0) / np.maximum(count, 1), 0.0)
            m2 = (np.where(observed, values - mean, 0.0) ** 2).sum(axis=0)
        else:  # complete blocks (the common case): no masks
            count = np.full(block.shape[1], len(block), dtype=np.float64)
            mean = block.mean(axis=0, dtype=np.float64)
            m2 = block.var(axis=0, dtype=np.float64) * len(block)
        total = self.count + count
        delta = mean - self.mean
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, count / np.maximum(total, 1), 0.0)
        self.mean = self.mean + delta * share
        self.m2 = self.m2 + m2 + delta**2 * self.count * share
        self.count = total

    def transform(self, scale: str, pseudocount: float) -> Transform:
        """The :class:`Transform` of these moments (all-missing genes: mean 0; constant genes: SD 1)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            std = np.where(self.count > 0, np.sqrt(self.m2 / np.maximum(self.count, 1)), 0.0)
        std[std < 1e-6] = 1.0
        return Transform(mean=self.mean, std=std, scale=scale, pseudocount=pseudocount)


# ------------------------------------------------------------------------------------- writing
class StoreWriter:
    """Write a store block by block: raw values in, log values and training-donor statistics out.

    Use as a context manager; the directory appears (atomically) only when the block succeeds and
    every row of ``samples`` was appended. Rows are appended in the order of ``samples``.

    Parameters
    ----------
    directory : the store to write.
    genes : ``ensembl_gene_id``, ``symbol`` per column.
    samples : the sample table (:data:`~gtex_models.data.cohort.SAMPLE_COLUMNS` and ``split``).
    scale : ``tpm`` (raw values are TPM-like, non-negative) or ``log``.
    meta : provenance stored in ``cohort.json``.
    block_rows : rows per HDF5 chunk (default :func:`block_rows_for`).
    compression : one of :data:`COMPRESSIONS`.
    """

    def __init__(self, directory: str | Path, genes: pd.DataFrame, samples: pd.DataFrame, scale: str = "tpm",
                 pseudocount: float = 1.0, meta: dict[str, Any] | None = None, block_rows: int | None = None,
                 compression: str = "gzip", overwrite: bool = False) -> None:
        if scale not in SCALES:
            raise ValueError(f"Unknown scale {scale!r}; use one of {SCALES}.")
        if compression not in COMPRESSIONS:
            raise ValueError(f"Unknown compression {compression!r}; use one of {COMPRESSIONS}.")
        self.compression = compression
        missing = [c for c in SAMPLE_COLUMNS + ["split"] if c not in samples.columns]
        if missing:
            raise ValueError(f"Sample table lacks columns {missing}.")
        self.directory = COHORT_FOLDER.check(directory, overwrite)  # refused before any work
        self.overwrite = overwrite
        self.genes = genes[GENE_COLUMNS].reset_index(drop=True)
        self.samples = samples.reset_index(drop=True)
        self.scale, self.pseudocount = scale, float(pseudocount)
        self.meta = dict(meta or {})
        self.block_rows = block_rows or block_rows_for(len(self.genes))
        is_train = (self.samples["split"] == "train").to_numpy()
        self._stats_rows = is_train if is_train.any() else np.ones(len(self.samples), dtype=bool)
        self._moments = RunningMoments(len(self.genes))
        self._written = 0

    def __enter__(self) -> "StoreWriter":
        import h5py

        self._atomic = COHORT_FOLDER.write(self.directory, self.overwrite)
        self._tmp = self._atomic.__enter__()
        self._file = h5py.File(self._tmp / EXPRESSION_FILE, "w")
        n_rows = max(len(self.samples), 1)
        self._dataset = self._file.create_dataset(
            DATASET, shape=(len(self.samples), len(self.genes)), dtype="float32",
            chunks=(min(self.block_rows, n_rows), max(len(self.genes), 1)),
            fillvalue=np.nan, **({"compression": "gzip", "compression_opts": 1, "shuffle": True}
                                 if self.compression == "gzip" else {}))
        return self

    def append(self, values: np.ndarray, log: bool = False) -> None:
        """Write the next rows (samples x genes; NaN = missing).

        ``values`` are on the raw scale (TPM for ``scale='tpm'``), or with ``log=True`` already the
        log values (``log2(TPM + pseudocount)``).
        """
        raw = np.asarray(values, dtype=np.float32)
        if raw.ndim != 2 or raw.shape[1] != len(self.genes):
            raise ValueError(f"A block must be rows x {len(self.genes)} genes, got shape {raw.shape}.")
        stop = self._written + len(raw)
        if stop > len(self.samples):
            raise ValueError(f"More rows appended ({stop}) than the sample table has ({len(self.samples)}).")
        if self.scale == "tpm" and not log:
            if np.nanmin(raw, initial=0.0) < 0:
                raise ValueError(f"Negative values in rows {self._written}-{stop - 1}: TPM must be non-negative.")
            values = np.log2(raw + np.float32(self.pseudocount))
        else:
            values = raw
        if not np.isfinite(values[~np.isnan(values)]).all():
            raise ValueError(f"Infinite values in rows {self._written}-{stop - 1}.")
        self._dataset[self._written:stop] = values
        self._moments.update(values[self._stats_rows[self._written:stop]])
        self._written = stop

    def __exit__(self, kind, error, traceback) -> bool:
        try:
            self._file.close()
            if error is None:
                if self._written != len(self.samples):
                    raise ValueError(f"Only {self._written} of {len(self.samples)} rows were appended.")
                transform = self._moments.transform(self.scale, self.pseudocount)
                np.savez(self._tmp / "transform.npz", mean=transform.mean, std=transform.std)
                self.samples.to_csv(self._tmp / "samples.csv", index=False)
                self.genes.to_csv(self._tmp / "genes.csv", index=False)
                info = {"format_version": COHORT_FORMAT_VERSION, "scale": self.scale,
                        "pseudocount": self.pseudocount, "meta": self.meta,
                        "store": {"block_rows": self.block_rows, "dataset": DATASET,
                                  "compression": self.compression}}
                (self._tmp / "cohort.json").write_text(json.dumps(info, indent=2))
        except BaseException as failure:
            self._atomic.__exit__(type(failure), failure, failure.__traceback__)
            raise
        return bool(self._atomic.__exit__(kind, error, traceback))


def save_store(cohort: Cohort, directory: str | Path, block_rows: int | None = None,
               compression: str = "gzip", overwrite: bool = False) -> Path:
    """Write an in-memory cohort as a store (rows grouped by split; the transform is refitted on its train split).

    Like :meth:`Cohort.save <gtex_models.data.cohort.Cohort.save>`: an existing cohort or store is replaced only
    with ``overwrite``; any other non-empty folder, or a file, is refused."""
    order = split_order(cohort.samples)
    with StoreWriter(directory, cohort.genes, cohort.samples.iloc[order], cohort.transform.scale,
                     cohort.transform.pseudocount, cohort.meta, block_rows, compression, overwrite) as writer:
        for start in range(0, len(order), writer.block_rows):
            x = np.asarray(cohort.x[order[start:start + writer.block_rows]])
            writer.append(x * cohort.transform.std + cohort.transform.mean, log=True)
    return Path(directory)


# ------------------------------------------------------------------------------------- reading
class _File:
    """One read-only h5py handle per process, opened on first use and shared by every view."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = None
        self._pid = -1

    def dataset(self):
        if self._handle is None or self._pid != os.getpid():
            import h5py

            self._handle = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._handle[DATASET]


class StoredMatrix:
    """A samples x genes float32 matrix in model space, read from a store block by block.

    Indexing with rows (slice, integer or boolean array) and optionally genes returns a view; nothing
    is read until :meth:`blocks` or :meth:`read` (or ``np.asarray``, which reads the whole view and
    is refused when it would take more than half of the machine's memory).
    """

    stored = True
    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, file: _File, n_rows: int, mean: np.ndarray, std: np.ndarray, block_rows: int,
                 rows: np.ndarray | None = None, columns: np.ndarray | None = None, compression: str = "gzip") -> None:
        self._file = file
        self.compression = compression
        self._n_rows = n_rows
        self.rows = np.arange(n_rows) if rows is None else np.asarray(rows, dtype=np.int64)
        self.columns = columns
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.block_rows = block_rows

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), len(self.mean)

    @property
    def nbytes(self) -> int:
        return 4 * self.shape[0] * self.shape[1]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: Any) -> "StoredMatrix":
        rows, columns = (key if isinstance(key, tuple) else (key, slice(None)))
        view_rows = self.rows[_as_index(rows, len(self.rows))]
        mean, std, kept = self.mean, self.std, self.columns
        if not (isinstance(columns, slice) and columns == slice(None)):
            picked = _as_index(columns, len(self.mean))
            mean, std = self.mean[picked], self.std[picked]
            kept = picked if self.columns is None else self.columns[picked]
        return StoredMatrix(self._file, self._n_rows, mean, std, self.block_rows, view_rows, kept, self.compression)

    def log_values(self) -> "StoredMatrix":
        """The same view on the stored log scale (``log2(TPM + pseudocount)``), not standardised."""
        return StoredMatrix(self._file, self._n_rows, np.zeros_like(self.mean), np.ones_like(self.std),
                            self.block_rows, self.rows, self.columns, self.compression)

    def block_plan(self) -> list[tuple[int, int, np.ndarray]]:
        """The view's rows by storage block: ``(first, stop, offsets)``, rows ``first + offsets`` in view order.

        The view's rows must be in increasing order (splits and subsets of a store are).
        """
        if len(self.rows) and np.any(np.diff(self.rows) <= 0):
            raise ValueError("A stored matrix is read in storage order; select its rows in increasing order.")
        block_of = self.rows // self.block_rows
        bounds = np.flatnonzero(np.diff(block_of)) + 1
        plan = []
        for part in np.split(np.arange(len(self.rows)), bounds) if len(self.rows) else []:
            first = int(self.rows[part[0]])
            plan.append((first, int(self.rows[part[-1]]) + 1, self.rows[part] - first))
        return plan

    def read_block(self, first: int, stop: int, offsets: np.ndarray) -> np.ndarray:
        """Rows ``first + offsets`` (one storage block) in model space, float32."""
        log = self._file.dataset()[first:stop]
        if len(offsets) != stop - first:
            log = log[offsets]
        if self.columns is not None:
            log = log[:, self.columns]
        log -= self.mean
        log /= self.std
        return log

    def blocks(self) -> Iterator[np.ndarray]:
        """The view's rows in order, one storage block at a time."""
        for first, stop, offsets in self.block_plan():
            yield self.read_block(first, stop, offsets)

    def read(self) -> np.ndarray:
        """The whole view in memory (refused above half of the machine's memory)."""
        limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
        if self.nbytes > limit:
            raise MemoryError(
                f"Reading {self.nbytes / 2**30:.1f} GiB of the on-disk store into memory would take more than "
                f"half of this machine's {2 * limit / 2**30:.0f} GiB; work on a subset "
                "(cohort.subset_samples) or stream it block by block.")
        out = np.empty(self.shape, dtype=np.float32)
        start = 0
        for block in self.blocks():
            out[start:start + len(block)] = block
            start += len(block)
        return out

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        values = self.read()
        return values if dtype is None else values.astype(dtype, copy=False)


def _as_index(key: Any, n: int) -> np.ndarray:
    """Integer positions of a slice, boolean mask or index array over ``n`` items."""
    if isinstance(key, slice):
        return np.arange(n)[key]
    key = np.asarray(key)
    if key.dtype == bool:
        if len(key) != n:
            raise IndexError(f"Boolean index of length {len(key)} for {n} items.")
        return np.flatnonzero(key)
    key = key.astype(np.int64).reshape(-1)
    return np.where(key < 0, key + n, key)


def _read_samples(path: Path) -> pd.DataFrame:
    """The sample table, parsed by Arrow straight into compact columns (no Python string per cell)."""
    import pyarrow as pa
    from pyarrow import csv

    text, category = pa.string(), pa.dictionary(pa.int32(), pa.string())
    types = {"sample_id": text, "donor_id": text, "tissue": category, "sex": category, "split": category,
             "age": pa.float64()}
    table = csv.read_csv(path, convert_options=csv.ConvertOptions(column_types=types, strings_can_be_null=False))
    return table.to_pandas(types_mapper={text: pd.StringDtype("pyarrow")}.get)


class StoreContents(NamedTuple):
    """What :func:`read_store` finds: the fields of a :class:`~gtex_models.data.cohort.Cohort`, in order."""

    x: "StoredMatrix"
    genes: pd.DataFrame
    samples: pd.DataFrame
    transform: Transform
    meta: dict[str, Any]


def read_store(directory: str | Path) -> StoreContents:
    """A store's contents, read lazily (``x`` is a :class:`StoredMatrix`); :meth:`Cohort.load` wraps them.

    The sample table is held in memory with compact column types (categories, Arrow strings): about
    30 bytes per sample.
    """
    directory = Path(directory)
    info = json.loads((directory / "cohort.json").read_text())
    arrays = np.load(directory / "transform.npz")
    transform = Transform(arrays["mean"], arrays["std"], info["scale"], info["pseudocount"])
    samples = _read_samples(directory / "samples.csv")
    genes = pd.read_csv(directory / "genes.csv", dtype=str, keep_default_na=False)
    matrix = StoredMatrix(_File(directory / EXPRESSION_FILE), len(samples), transform.mean, transform.std,
                          int(info["store"]["block_rows"]), compression=info["store"].get("compression", "gzip"))
    return StoreContents(matrix, genes, samples, transform, info.get("meta", {}))


__all__: Sequence[str] = ("RunningMoments", "StoreWriter", "StoredMatrix", "block_rows_for",
                          "is_store", "read_store", "save_store", "split_order", "StoreContents")
