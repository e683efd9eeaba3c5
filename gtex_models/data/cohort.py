"""The Cohort: expression matrix in model space, gene and sample tables, and the value transform.

Every loader produces a Cohort, every imputer consumes one. Model space is
``(log2(TPM + pseudocount) - mean) / std`` per gene, with mean and std fitted on training donors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from gtex_models.common.messages import list_examples
from gtex_models.common.schema import SchemaError, validate
from gtex_models.data.cohort_format import (
    COHORT_FILES,
    COHORT_FOLDER,
    COHORT_FORMAT_VERSION,
    GENE_COLUMNS,
    SAMPLE_COLUMNS,
    SPLITS,
    CohortFormatError,
    CohortInfo,
)
from gtex_models.data.covariates import SEXES
from gtex_models.data.naming import count_groups, default_value_scale, group_word
from gtex_models.data.reference import pathway_genes
from gtex_models.data.store import read_store
from gtex_models.data.transform import Transform

DEFAULT_SPLIT_FRACTIONS = (0.6, 0.15, 0.25)
MIN_GENES = 2  # a gene is imputed from the others
MIN_TRAIN_SAMPLES = 2  # batch normalisation needs two samples
MIN_TEST_SAMPLES = 2  # a gene's R² needs at least two hidden test values
MIN_GROUP_DONORS = 2  # a group with fewer donors cannot have both training and test donors


def assign_donor_split(
    donor_ids: Sequence[str],
    fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
    seed: int = 0,
    groups: Sequence[str] | None = None,
) -> np.ndarray:
    """Assign each sample to ``train``/``valid``/``test`` so that no donor is in two splits.

    Donors (not samples) are shuffled with ``seed`` and cut by ``fractions``. Given each sample's group,
    the split is stratified by group (:func:`stratified_donor_split`): every group gets its share of
    training donors, however small it is.
    """
    check_split_fractions(fractions)
    if groups is not None:
        return stratified_donor_split(donor_ids, groups, fractions, seed)
    donors = np.asarray(donor_ids, dtype=object)
    unique = np.array(sorted(set(donors.tolist())), dtype=object)
    order = np.random.default_rng(seed).permutation(len(unique))
    n_train = int(round(fractions[0] * len(unique)))
    n_valid = int(round(fractions[1] * len(unique)))
    split_of_donor = {}
    for rank, donor_index in enumerate(order):
        split_of_donor[unique[donor_index]] = (
            "train" if rank < n_train else "valid" if rank < n_train + n_valid else "test"
        )
    return np.array([split_of_donor[d] for d in donors], dtype=object)


def check_split_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """The train/valid/test shares as three floats, or a ``ValueError`` saying what is wrong."""
    if len(fractions) != 3 or any(not np.isfinite(f) or f < 0 for f in fractions) or not np.isclose(sum(fractions), 1):
        raise ValueError(f"Split fractions must be three non-negative numbers summing to 1 (train, valid, test; "
                         f"e.g. 0.6,0.15,0.25), got {', '.join(f'{f:g}' for f in fractions)}.")
    if fractions[0] <= 0 or fractions[2] <= 0:
        raise ValueError(f"Split fractions need a training and a test share above 0 (models train on the first and "
                         f"are scored on the last), got {', '.join(f'{f:g}' for f in fractions)}.")
    return float(fractions[0]), float(fractions[1]), float(fractions[2])


def stratified_donor_split(donor_ids: Sequence[str], groups: Sequence[str],
                           fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS, seed: int = 0) -> np.ndarray:
    """A donor split stratified by group: each donor counts in its rarest group (the one with fewest donors), and
    each group's donors are cut by ``fractions``, with at least one training donor in a group of
    :data:`MIN_GROUP_DONORS` or more (a group of one donor is trained on or scored, not both). Rounding carries over from group
    to group, so the shares of the whole cohort stay those of ``fractions`` (within a donor)."""
    check_split_fractions(fractions)
    table = pd.DataFrame({"donor": np.asarray(donor_ids, dtype=object), "group": np.asarray(groups, dtype=object)})
    donors_per_group = table.drop_duplicates().groupby("group")["donor"].nunique()
    table["size"] = table["group"].map(donors_per_group)
    rarest = table.sort_values(["size", "group"]).drop_duplicates("donor").set_index("donor")["group"]
    rng = np.random.default_rng(seed)
    share = np.asarray(fractions, dtype=np.float64)
    carry = np.zeros(3)
    split_of_donor: dict[Any, str] = {}
    strata = rarest.groupby(rarest).size().sort_values(ascending=False, kind="stable")
    for group in strata.index:
        donors = sorted(rarest.index[rarest == group].tolist())
        donors = [donors[i] for i in rng.permutation(len(donors))]
        quota = len(donors) * share + carry
        counts = _round_to_total(quota, len(donors))
        if counts[0] == 0 and len(donors) >= MIN_GROUP_DONORS:  # every group that can be scored trains
            counts[int(np.argmax(counts))] -= 1
            counts[0] += 1
        carry = quota - counts
        labels = np.repeat(np.array(SPLITS, dtype=object), counts)
        split_of_donor.update(zip(donors, labels))
    return np.array([split_of_donor[d] for d in table["donor"]], dtype=object)


def _round_to_total(quota: np.ndarray, total: int) -> np.ndarray:
    """Whole non-negative counts summing to ``total``, as near to ``quota`` as largest remainders give."""
    counts = np.clip(np.floor(quota), 0, None).astype(np.int64)
    while counts.sum() > total:
        counts[int(np.argmin(np.where(counts > 0, quota - counts, np.inf)))] -= 1
    while counts.sum() < total:
        counts[int(np.argmax(quota - counts))] += 1
    return counts


@dataclass
class Cohort:
    """Expression in model space plus everything needed to interpret it.

    Attributes
    ----------
    x : float32 array, samples x genes, model space; NaN marks a missing value. For a cohort opened
        from an on-disk store, a :class:`gtex_models.data.store.StoredMatrix` read block by block instead
        (see :attr:`stored`).
    genes : DataFrame with ``ensembl_gene_id`` and ``symbol``, one row per column of ``x``.
    samples : DataFrame with ``sample_id``, ``donor_id``, ``tissue``, ``sex`` (female/male/unknown),
        ``age`` (years, NaN if unknown) and ``split`` (train/valid/test), one row per row of ``x``.
    transform : the raw <-> model-space map, fitted on the training donors.
    meta : free-form JSON-serialisable provenance (source files, simulation parameters, ...).
    """

    x: np.ndarray
    genes: pd.DataFrame
    samples: pd.DataFrame
    transform: Transform
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.stored:
            self.x = np.asarray(self.x, dtype=np.float32)
        if self.x.ndim != 2:
            raise ValueError(f"Expression must be a 2-D samples x genes matrix, got shape {self.x.shape}.")
        missing = [c for c in GENE_COLUMNS if c not in self.genes.columns]
        if missing:
            raise ValueError(f"Gene table lacks columns {missing}.")
        missing = [c for c in SAMPLE_COLUMNS + ["split"] if c not in self.samples.columns]
        if missing:
            raise ValueError(f"Sample table lacks columns {missing}.")
        if len(self.genes) != self.x.shape[1] or len(self.samples) != self.x.shape[0]:
            raise ValueError(
                f"Matrix {self.x.shape} does not match {len(self.samples)} samples x {len(self.genes)} genes."
            )
        if len(self.transform.mean) != self.x.shape[1]:
            raise ValueError("Transform and matrix have different numbers of genes.")
        self.genes = self.genes.reset_index(drop=True)
        self.samples = self.samples.reset_index(drop=True)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_raw(
        cls,
        raw: np.ndarray,
        genes: pd.DataFrame,
        samples: pd.DataFrame,
        scale: str = "tpm",
        split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
        seed: int = 0,
        meta: dict[str, Any] | None = None,
        stratify: bool = False,
    ) -> "Cohort":
        """Build a cohort from raw values: split donors (``stratify``: by group, :func:`stratified_donor_split`),
        fit the transform on training donors."""
        samples = samples.copy()
        if "split" not in samples.columns:
            groups = samples["tissue"] if stratify else None
            samples["split"] = assign_donor_split(samples["donor_id"], split_fractions, seed, groups)
        raw = np.asarray(raw, dtype=np.float32)
        train = (samples["split"] == "train").to_numpy()
        transform = Transform.fit(raw[train] if train.any() else raw, scale=scale)
        return cls(transform.forward(raw), genes.copy(), samples, transform, dict(meta or {}))

    # ----------------------------------------------------------------- views
    @property
    def stored(self) -> bool:
        """Whether ``x`` is read lazily from an on-disk store (a large cohort) instead of held in memory."""
        return bool(getattr(self.x, "stored", False))

    @property
    def n_samples(self) -> int:
        return self.x.shape[0]

    @property
    def n_genes(self) -> int:
        return self.x.shape[1]

    @property
    def tissues(self) -> list[str]:
        return sorted(self.samples["tissue"].unique().tolist())

    @property
    def group_word(self) -> str:
        """``tissue`` when the groups are GTEx tissues, else ``group`` (:func:`~gtex_models.data.naming.group_word`)."""
        return group_word(self.tissues)

    @property
    def value_scale(self) -> str:
        """What the values are, for axes and captions: ``log2(TPM + 1)``, ``log2 intensity``, ... (set on import,
        else :func:`~gtex_models.data.naming.default_value_scale` of the transform's scale)."""
        return str(self.meta.get("value_scale") or default_value_scale(self.transform.scale))

    @property
    def n_donors(self) -> int:
        return int(self.samples["donor_id"].nunique())

    @property
    def observed(self) -> np.ndarray:
        """Boolean samples x genes matrix, True where a value is present."""
        return ~np.isnan(self.x)

    def size_problems(self) -> list[str]:
        """Why this cohort is too small to train and evaluate a model on (empty when it is not).

        Training and evaluation need at least :data:`MIN_GENES` genes and, in the donor split, at
        least one donor in each of train, valid and test, with :data:`MIN_TRAIN_SAMPLES` training
        samples and :data:`MIN_TEST_SAMPLES` test samples: with the default 60/15/25 % split, at least
        4 donors.
        """
        problems = []
        if self.n_genes < MIN_GENES:
            problems.append(f"{self.n_genes} gene(s), at least {MIN_GENES} are needed (a gene is imputed from the others)")
        donors = self.samples.groupby("split")["donor_id"].nunique().reindex(list(SPLITS), fill_value=0)
        empty = [name for name in SPLITS if donors[name] == 0]
        if empty:
            counts = ", ".join(f"{name} {donors[name]}" for name in SPLITS)
            problems.append(f"no donor in the {' and '.join(empty)} split(s) (donors: {counts}); with the 60/15/25 % "
                            "donor split a cohort needs at least 4 donors")
        n_train = int((self.samples["split"] == "train").sum())
        if not empty and n_train < MIN_TRAIN_SAMPLES:
            problems.append(f"{n_train} training sample(s), at least {MIN_TRAIN_SAMPLES} are needed")
        n_test = int((self.samples["split"] == "test").sum())
        if not empty and n_test < MIN_TEST_SAMPLES:
            problems.append(f"{n_test} test sample(s), at least {MIN_TEST_SAMPLES} are needed (a gene's R² is "
                            "computed over its hidden test values)")
        return problems

    def require_trainable(self) -> None:
        """Raise ``ValueError`` (with :meth:`size_problems` and the fix) if the cohort is too small, or if a
        donor has samples in two splits (a model would be scored on a donor it was fitted on)."""
        splits = self.samples.groupby("donor_id")["split"].nunique()
        straddling = splits.index[splits > 1].astype(str).tolist()
        if straddling:
            raise ValueError(
                f"{len(straddling)} donor(s) have samples in more than one split (e.g. {', '.join(straddling[:3])}), "
                "so a model would be scored on donors it was trained or calibrated on. Each donor's samples must "
                "share one split: fix the split column of the cohort's samples.csv, or import the cohort again "
                "(its split is then made by donor).")
        problems = self.size_problems()
        if problems:
            raise ValueError(
                f"The cohort ({self.summary()}) is too small to train and evaluate a model: {'; '.join(problems)}. "
                "Add samples from more donors (without a donor column in the sample table, each sample is its "
                "own donor).")

    def summary(self) -> str:
        """One line: samples, genes, groups (or tissues), donors."""
        return (
            f"{self.n_samples} samples x {self.n_genes} genes, "
            f"{count_groups(len(self.tissues), self.group_word)}, {self.n_donors} donors"
        )

    def raw(self) -> np.ndarray:
        """Values on the original scale (TPM or log)."""
        return self.transform.inverse(self.x)

    def subset_samples(self, rows: np.ndarray | Sequence[int]) -> "Cohort":
        """A cohort of the given rows (boolean mask or indices)."""
        rows = np.asarray(rows)
        return Cohort(self.x[rows], self.genes, self.samples.iloc[rows], self.transform, self.meta)

    def subset_genes(self, columns: np.ndarray | Sequence[int]) -> "Cohort":
        """A cohort of the given gene columns (boolean mask or indices)."""
        columns = np.asarray(columns)
        if columns.dtype == bool:
            columns = np.flatnonzero(columns)
        return Cohort(self.x[:, columns], self.genes.iloc[columns], self.samples,
                      self.transform.subset(columns), self.meta)

    def split(self, name: str) -> "Cohort":
        """The samples of one split: ``train``, ``valid`` or ``test``."""
        if name not in SPLITS:
            raise ValueError(f"Unknown split {name!r}; use one of {SPLITS}.")
        return self.subset_samples((self.samples["split"] == name).to_numpy())

    def select_genes(self, symbols: Sequence[str]) -> "Cohort":
        """The genes whose symbol is in ``symbols``, in the cohort's order; raises if none match."""
        wanted = set(symbols)
        keep = self.genes["symbol"].isin(wanted).to_numpy()
        if not keep.any():
            raise ValueError("None of the requested gene symbols is in this cohort.")
        return self.subset_genes(keep)

    def pathway(self, name: str) -> "Cohort":
        """The genes of a named pathway (``alzheimer`` or ``p53``)."""
        return self.select_genes(pathway_genes(name))

    # ----------------------------------------------------------------- persistence
    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write ``samples.csv``, ``genes.csv``, ``expression.npy``, ``transform.npz``, ``cohort.json``.

        The directory is written next to its final place and renamed in one step, so a failure never
        leaves a half-written cohort. An existing cohort folder is replaced only with ``overwrite``;
        any other non-empty folder, or a file, is refused (see :mod:`gtex_models.common.atomic`).
        """
        with COHORT_FOLDER.write(directory, overwrite) as tmp:
            np.save(tmp / "expression.npy", self.x)
            np.savez(tmp / "transform.npz", mean=self.transform.mean, std=self.transform.std)
            self.samples.to_csv(tmp / "samples.csv", index=False)
            self.genes.to_csv(tmp / "genes.csv", index=False)
            info = {
                "format_version": COHORT_FORMAT_VERSION,
                "scale": self.transform.scale,
                "pseudocount": self.transform.pseudocount,
                "meta": self.meta,
            }
            (tmp / "cohort.json").write_text(json.dumps(info, indent=2))
        return Path(directory)

    @classmethod
    def load(cls, directory: str | Path, mmap: bool = False) -> "Cohort":
        """Read a cohort written by :meth:`save`; an on-disk store (:mod:`gtex_models.data.store`) is opened lazily.

        Raises
        ------
        FileNotFoundError
            If ``directory`` is not a cohort folder (no ``cohort.json``).
        CohortFormatError
            If one of its files is missing, unreadable or inconsistent (the message names the file).
        """
        directory = Path(directory)
        if not (directory / "cohort.json").is_file():
            raise FileNotFoundError(
                f"{directory} is not a cohort directory (no cohort.json). Create one with "
                "`python -m gtex_models simulate`, `import` or `prepare-gtex`."
            )
        info = _read_info(directory)
        if info.store is not None:
            return cls(*read_store(directory))
        for name in COHORT_FILES:
            if not (directory / name).is_file():
                raise _damaged(directory, name, "is missing")
        transform = _read_transform(directory, info)
        samples = _read_table(directory, "samples.csv", SAMPLE_COLUMNS + ["split"])
        age = pd.to_numeric(samples["age"].where(samples["age"] != ""), errors="coerce")
        bad_age = samples["age"].ne("") & age.isna()
        if bad_age.any():
            row = int(np.flatnonzero(bad_age)[0])
            raise _damaged(directory, "samples.csv", f"has age {samples['age'].iloc[row]!r} on line {row + 2}, "
                                                     "not a number of years")
        samples["age"] = age.astype(float)
        for column, allowed in (("split", SPLITS), ("sex", SEXES)):
            unknown = sorted(set(samples[column]) - set(allowed))
            if unknown:
                raise _damaged(directory, "samples.csv", f"has {column} value(s) {list_examples(unknown)}; "
                                                         f"allowed: {', '.join(allowed)}")
        genes = _read_table(directory, "genes.csv", GENE_COLUMNS)
        x = _read_matrix(directory, mmap)
        try:
            return cls(x, genes, samples, transform, info.meta)
        except ValueError as error:
            raise CohortFormatError(f"{directory}: its files do not fit together ({error}). "
                                    f"{_REWRITE}") from None


_REWRITE = ("The cohort folder is damaged or was not written by this project: write it again with "
            "`python -m gtex_models simulate`, `import` or `prepare-gtex` (with --overwrite).")


def _damaged(directory: Path, name: str, problem: str) -> CohortFormatError:
    return CohortFormatError(f"{directory / name} {problem}. {_REWRITE}")


def _read_info(directory: Path) -> Any:
    """``cohort.json``, validated against :class:`~gtex_models.data.cohort_format.CohortInfo`."""
    path = directory / "cohort.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise _damaged(directory, "cohort.json", f"is not valid JSON ({error})") from None
    version = data.get("format_version") if isinstance(data, dict) else None
    if isinstance(version, int) and version > COHORT_FORMAT_VERSION:
        raise CohortFormatError(f"{path} has format_version {version}; this version of the project reads up to "
                                f"{COHORT_FORMAT_VERSION}. Update the project or write the cohort again.")
    try:
        return validate(CohortInfo, data, str(path))
    except SchemaError as error:
        raise CohortFormatError(f"{error}. {_REWRITE}") from None


def _read_transform(directory: Path, info: Any) -> Transform:
    try:
        with np.load(directory / "transform.npz", allow_pickle=False) as arrays:
            found = {name: arrays[name] for name in arrays.files}
    except (OSError, ValueError, EOFError) as error:
        detail = "it holds pickled data or text" if "pickle" in str(error) else str(error)
        raise _damaged(directory, "transform.npz", f"is not a readable .npz archive of arrays ({detail})") from None
    missing = [name for name in ("mean", "std") if name not in found]
    if missing:
        raise _damaged(directory, "transform.npz", f"lacks the array(s) {missing} (it has {sorted(found)})")
    mean, std = found["mean"], found["std"]
    if mean.ndim != 1 or mean.shape != std.shape or not np.issubdtype(mean.dtype, np.floating):
        raise _damaged(directory, "transform.npz", f"holds arrays of shapes {mean.shape} and {std.shape}, "
                                                   "not one mean and one std per gene")
    return Transform(mean, std, info.scale, info.pseudocount)


def _read_table(directory: Path, name: str, columns: list[str]) -> pd.DataFrame:
    try:
        table = pd.read_csv(directory / name, dtype=str, keep_default_na=False)
    except (UnicodeDecodeError, ValueError, pd.errors.ParserError) as error:
        raise _damaged(directory, name, f"is not a readable CSV table ({error})") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise _damaged(directory, name, f"lacks the column(s) {missing} (it has {list(table.columns)[:8]})")
    return table


def _read_matrix(directory: Path, mmap: bool) -> np.ndarray:
    path = directory / "expression.npy"
    with open(path, "rb") as stream:
        magic = stream.read(6)
    if magic != b"\x93NUMPY":
        raise _damaged(directory, "expression.npy", f"is not a readable .npy array (it starts with {magic!r}, "
                                                    "not numpy's header)")
    try:
        x = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as error:
        problem = ("holds pickled Python objects, not a numeric matrix (this project never writes those, "
                   "and does not unpickle them)") if "pickle" in str(error) else f"is not a readable .npy array ({error})"
        raise _damaged(directory, "expression.npy", problem) from None
    except (OSError, EOFError) as error:
        raise _damaged(directory, "expression.npy", f"is not a readable .npy array ({error})") from None
    if not isinstance(x, np.ndarray) or x.ndim != 2 or not np.issubdtype(x.dtype, np.floating):
        raise _damaged(directory, "expression.npy", f"is not a 2-D floating-point matrix (shape "
                                                    f"{getattr(x, 'shape', None)}, dtype {getattr(x, 'dtype', None)})")
    return x
