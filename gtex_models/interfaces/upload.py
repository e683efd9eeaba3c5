"""From an uploaded expression table to the full transcriptome, in the upload's own terms.

One job, the upload pipeline, in six steps, each a function (used by the app and the CLI alike):

1. :func:`read_upload` reads the bytes of an uploaded file (CSV, TSV, GCT, h5ad) into an
   :class:`~gtex_models.data.readers.tables.ExpressionTable`, enforcing the input-size limit.
2. :func:`align_to_model` maps the upload's identifiers (symbols, versioned or unversioned Ensembl
   IDs) onto the model's genes and reports the :class:`Coverage`.
3. :func:`resolve_scale` decides whether the values are TPM or log2(TPM + 1) (detected or chosen).
4. :func:`sample_table` attaches tissue, sex and age (per file or per sample) and checks the tissues
   against the model's vocabulary.
5. :func:`impute_upload` builds a :class:`~gtex_models.data.cohort.Cohort` in the model's space, imputes,
   and converts back to the upload's scale and identifiers (plus the model's genes the upload
   lacked), optionally with calibrated per-value intervals (any model with a calibration,
   :mod:`gtex_models.models.calibration`) or the spread of several noise draws (GAIN-GTEx, uncalibrated).
6. :func:`result_frame` lays the result out in the upload's orientation for download
   (:func:`imputed_frame`: which of its cells the model filled).

Try it (held-out samples with known truth) is :mod:`gtex_models.interfaces.try_it`.
"""

from __future__ import annotations

import json
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

import numpy as np
import pandas as pd

from gtex_models.common.choices import UNKNOWN_GROUP_CHOICES
from gtex_models.common.messages import describe_unknown_tissues, list_examples
from gtex_models.common.progress import ProgressCallback
from gtex_models.data.cohort import Cohort
from gtex_models.data.cohort_format import SAMPLE_COLUMNS
from gtex_models.data.covariates import parse_age, parse_sex
from gtex_models.data.naming import count_groups, group_word
from gtex_models.data.readers.errors import InputError, max_input_mb
from gtex_models.data.readers.expression import ExpressionTable, apply_gene_map, merge_same_genes, read_expression
from gtex_models.data.readers.genes import is_ensembl_gene_id, looks_like_probes, map_features, read_gene_map
from gtex_models.data.readers.samples import (
    UNKNOWN_TISSUE,
    GroupColumnChoice,
    choose_group_column,
    join_samples,
    read_samples_table,
    table_columns,
)
from gtex_models.data.readers.scale import resolve_scale
from gtex_models.data.readers.tables import import_table
from gtex_models.data.transform import Transform
from gtex_models.models.base import Imputer
from gtex_models.models.calibration import Calibration, CalibrationError
from gtex_models.models.model_space import ModelSpace
from gtex_models.models.pooled import PooledGroups

LOW_COVERAGE = 0.05
PROBE_HINT = (" The identifiers look like microarray probe IDs: give a probe-to-gene map (two columns, probe and "
              "gene symbol or Ensembl ID; CLI: --gene-map FILE, app: the gene map upload), so that several probes "
              "of one gene are averaged into that gene.")
SCALE_NAMES = {"tpm": "TPM", "log": "log2(TPM + 1)"}
INTERVAL_QUANTILES = (0.05, 0.95)
NO_CALIBRATION = ("This model has no interval calibration (it was trained before calibrated intervals existed, or its "
                  "cohort had too few validation donors). Add one with `python -m gtex_models calibrate --checkpoint "
                  "CKPT --cohort COHORT_DIR`, or impute without intervals.")
UPLOAD_TYPES = ("csv", "tsv", "txt", "gct", "h5ad", "gz")
T = TypeVar("T")


# ----------------------------------------------------------------------------------- reading
def _read_uploaded(uploads: Sequence[tuple[bytes, str]], reader: Callable[..., T]) -> T:
    """Run a path-based reader on uploaded files, ``(bytes, filename)`` each (the reader gets their temporary
    paths, in order); errors and warnings name the files as uploaded, not a temporary path."""
    limit = max_input_mb()
    for data, filename in uploads:
        size_mb = len(data) / 2**20
        if size_mb > limit:
            raise InputError(
                f"{Path(filename).name or 'upload'} is {size_mb:.1f} MB, above the upload limit of {limit:g} MB. "
                "Upload fewer samples or genes at a time (split the file), or ask the administrator to raise "
                "GTEX_MAX_INPUT_MB."
            )
    with tempfile.TemporaryDirectory(prefix="gtex-upload-") as directory:
        paths = []
        for i, (data, filename) in enumerate(uploads):
            (Path(directory) / str(i)).mkdir()
            paths.append(Path(directory) / str(i) / (Path(filename).name or "upload"))
            paths[-1].write_bytes(data)

        def as_uploaded(text: str) -> str:
            for path in paths:
                text = text.replace(str(path), path.name)
            return text

        try:
            result = reader(*paths)
        except InputError as error:
            raise InputError(as_uploaded(str(error))) from None
    if isinstance(result, ExpressionTable):  # warnings too name the file as uploaded
        result.warnings = [as_uploaded(message) for message in result.warnings]
    if isinstance(result, Cohort):
        result.meta = json.loads(as_uploaded(json.dumps(result.meta)))
    return result


def read_upload(data: bytes, filename: str, orientation: str = "auto", duplicates: str = "error") -> ExpressionTable:
    """Read an uploaded expression file (CSV, TSV, GCT, h5ad) from its bytes (``duplicates``: see
    :func:`~gtex_models.data.readers.tables.read_expression`).

    Raises
    ------
    InputError
        Above :func:`~gtex_models.data.readers.errors.max_input_mb`, or for any malformed content.
    """
    return _read_uploaded([(data, filename)], lambda path: read_expression(path, orientation, duplicates))


def read_gene_map_upload(data: bytes, filename: str) -> dict[str, str]:
    """Read an uploaded probe -> gene map (see :func:`~gtex_models.data.readers.tables.read_gene_map`)."""
    return _read_uploaded([(data, filename)], read_gene_map)


def read_sample_upload(data: bytes, filename: str, tissue_column: str = "tissue") -> pd.DataFrame:
    """Read an uploaded sample table (``sample_id``, ``tissue``, optional ``sex``, ``age``)."""
    return _read_uploaded([(data, filename)], lambda path: read_samples_table(path, tissue_column))


def upload_columns(data: bytes, filename: str) -> list[str]:
    """The column names of an uploaded table (CSV/TSV), e.g. to choose its group column."""
    return _read_uploaded([(data, filename)], table_columns)


def upload_group_column(data: bytes, filename: str) -> GroupColumnChoice:
    """The group column of an uploaded sample table, chosen as the CLI's ``import`` chooses it
    (:func:`~gtex_models.data.readers.samples.choose_group_column`; ask the user when ``needs_answer``)."""
    return _read_uploaded([(data, filename)], choose_group_column)


def import_uploads(expression: tuple[bytes, str], samples: tuple[bytes, str] | None = None,
                   gene_map: tuple[bytes, str] | None = None, *, tissue_column: str = "tissue",
                   orientation: str = "auto", scale: str = "auto", duplicates: str = "error",
                   negatives: str = "error", seed: int = 0) -> Cohort:
    """A cohort from uploaded files, ``(bytes, filename)`` each: the expression matrix, an optional sample
    table and an optional probe -> gene map, made into a cohort by
    :func:`~gtex_models.data.readers.tables.import_table` (see it for the options). Its warnings are kept in
    ``cohort.meta["warnings"]`` (not issued), naming the files as uploaded."""
    given = {name: upload for name, upload in (("expression", expression), ("samples", samples),
                                               ("gene_map", gene_map)) if upload is not None}

    def build(*paths: Path) -> Cohort:
        files = dict(zip(given, paths))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return import_table(files["expression"], files.get("samples"), tissue_column=tissue_column,
                                orientation=orientation, scale=scale, seed=seed, duplicates=duplicates,
                                negatives=negatives, gene_map=files.get("gene_map"))

    return _read_uploaded(list(given.values()), build)


# ----------------------------------------------------------------------------------- alignment
@dataclass
class Coverage:
    """How much of the model's input an upload provides.

    Attributes
    ----------
    n_model_genes : genes the model works on.
    n_matched : model genes present in the upload (as a column or row, even if all-missing).
    absent_genes : symbols of model genes the upload lacks entirely: they will be imputed.
    unknown_features : upload identifiers the model does not know: returned unchanged, never imputed.
    observed_share : share of observed values over samples x model genes.
    warnings : what the user should know (low coverage, ...).
    """

    n_model_genes: int
    n_matched: int
    absent_genes: list[str]
    unknown_features: list[str]
    observed_share: float
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Numbers for a report table."""
        return {
            "model genes": self.n_model_genes,
            "model genes in the upload": self.n_matched,
            "model genes absent (imputed for every sample)": len(self.absent_genes),
            "upload features unknown to the model (returned unchanged)": len(self.unknown_features),
            "observed values (share of samples x model genes)": f"{self.observed_share:.1%}",
        }


@dataclass
class Alignment:
    """An upload mapped onto a model's genes.

    Attributes
    ----------
    table : the upload as read.
    values : samples x model genes on the upload's scale; NaN where missing or absent.
    model_column : for each upload feature, its column among the model's genes, or -1 if unknown.
    coverage : the coverage report.
    """

    table: ExpressionTable
    values: np.ndarray
    model_column: np.ndarray
    coverage: Coverage


def align_to_model(table: ExpressionTable, genes: pd.DataFrame) -> Alignment:
    """Map the upload's features onto the model's genes (``ensembl_gene_id``, ``symbol``).

    Features are matched by Ensembl ID when they resolve to one (symbols via the reference,
    versions stripped), else by symbol.

    Raises
    ------
    InputError
        If two features resolve to the same gene, or none matches a model gene.
    """
    mapped, _ = map_features(table.feature_ids)
    by_id = {gene_id: i for i, gene_id in enumerate(genes["ensembl_gene_id"]) if gene_id}
    by_symbol = {symbol: i for i, symbol in enumerate(genes["symbol"])}
    model_column = np.array([by_id.get(gene_id, by_symbol.get(symbol, -1)) for gene_id, symbol
                             in zip(mapped["ensembl_gene_id"], mapped["symbol"])], dtype=np.int64)
    if (model_column < 0).all():
        raise InputError(
            f"None of the {len(table.feature_ids):,} gene identifiers of the upload (e.g. "
            f"{list_examples(table.feature_ids, 3, quote=False)}) is one of the model's {len(genes):,} genes (e.g. "
            f"{list_examples(genes['symbol'].tolist(), 3, quote=False)}). Use HGNC symbols or Ensembl gene IDs, with genes "
            "as rows or as columns." + (PROBE_HINT if looks_like_probes(table.feature_ids) else "")
        )
    known = model_column >= 0
    # what the reference says of identifiers the model does not know (those it knows need no comment)
    _, messages = map_features([f for f, k in zip(table.feature_ids, known) if not k])
    matched, counts = np.unique(model_column[known], return_counts=True)
    if (counts > 1).any():
        clashes = [genes["symbol"].iloc[j] for j in matched[counts > 1]]
        raise InputError(
            f"Several upload features resolve to the same model gene ({list_examples(clashes, quote=False)}). Keep one row "
            "or column per gene."
        )
    values = np.full((len(table.sample_ids), len(genes)), np.nan, dtype=np.float32)
    values[:, model_column[known]] = table.values[:, known]
    present = np.zeros(len(genes), dtype=bool)
    present[model_column[known]] = True
    observed_share = float(np.mean(~np.isnan(values))) if values.size else 0.0
    coverage = Coverage(
        n_model_genes=len(genes),
        n_matched=int(present.sum()),
        absent_genes=genes.loc[~present, "symbol"].tolist(),
        unknown_features=[f for f, k in zip(table.feature_ids, known) if not k],
        observed_share=observed_share,
        warnings=list(table.warnings) + messages,
    )
    if observed_share < LOW_COVERAGE:
        coverage.warnings.insert(0, (
            f"Only {observed_share:.1%} of the model's {len(genes):,} gene values are observed (below "
            f"{LOW_COVERAGE:.0%}): the imputation rests on very little data and will be unreliable."
        ))
    if coverage.unknown_features:
        coverage.warnings.append(
            f"{len(coverage.unknown_features):,} upload feature(s) are not among the model's genes "
            f"({list_examples(coverage.unknown_features, quote=False)}); they are returned unchanged and not imputed."
        )
    return Alignment(table, values, model_column, coverage)


# ----------------------------------------------------------------------------------- scale
def upload_transform(space: ModelSpace, scale: str) -> Transform:
    """The model's per-gene standardisation, applied to values on the upload's scale.

    ``log`` means log2(TPM + pseudocount), the model's own log space.
    """
    model = space.transform
    return Transform(model.mean, model.std, scale=scale, pseudocount=model.pseudocount)


# ----------------------------------------------------------------------------------- samples
def _tissue_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def resolve_tissues(names: Sequence[str], known: Sequence[str], unknown_groups: str = "error") -> list[str]:
    """Map tissue names onto the model's vocabulary, forgiving case, punctuation and GTEx IDs.

    ``"whole blood"``, ``"Brain_Cortex"`` and ``"Brain - Cortex"`` all resolve. A name that matches none is
    an error, or with ``unknown_groups="pooled"`` kept as it is (imputed by :class:`PooledGroups`).

    Raises
    ------
    InputError
        For names that match no known tissue, with the closest known names.
    """
    if unknown_groups not in UNKNOWN_GROUP_CHOICES:
        raise InputError(f"Unknown choice {unknown_groups!r} for unknown groups; use one of "
                         f"{', '.join(UNKNOWN_GROUP_CHOICES)}.")
    lookup = {_tissue_key(k): k for k in known}  # GTEx IDs (Brain_Cortex) share the names' key
    resolved, unknown = [], []
    for name in names:
        match = lookup.get(_tissue_key(name))
        if match is None and name not in unknown:
            unknown.append(name)
        resolved.append(name if match is None else match)
    if unknown and unknown_groups == "error":
        word = group_word(known)
        raise InputError(
            f"Unknown {word} {describe_unknown_tissues(unknown, known)}. The model knows "
            f"{count_groups(len(known), word)} (such as {known[0]!r}); pick one of them, or impute these samples "
            f"as the mean over the model's {word}s (CLI: --unknown-groups pooled)."
        )
    return resolved


def sample_table(
    sample_ids: Sequence[str],
    known_tissues: Sequence[str],
    tissue: str | None = None,
    sex: str | None = None,
    age: float | None = None,
    annotation: pd.DataFrame | None = None,
    unknown_groups: str = "error",
) -> pd.DataFrame:
    """The sample table of an upload: one tissue (and sex/age) for the file, or per sample.

    Parameters
    ----------
    sample_ids : the upload's samples.
    known_tissues : the model's tissue vocabulary.
    tissue, sex, age : values for every sample of the file (sex: female/male/unknown or a GTEx code).
    annotation : per-sample table (``sample_id``, ``tissue`` and optionally ``sex``, ``age``), as
        read by :func:`~gtex_models.data.readers.tables.read_samples_table`; takes precedence.
    unknown_groups : a group the model does not know is an ``error``, or kept (``pooled``, see :func:`resolve_tissues`).

    Raises
    ------
    InputError
        If no tissue is given, a sample lacks an annotation row, or a tissue is unknown.
    """
    ids = list(sample_ids)
    if annotation is not None:
        rows, _ = join_samples(ids, annotation, "the upload", "The sample table")
        if (rows["tissue"] == UNKNOWN_TISSUE).all():
            raise InputError(
                "The sample table has no tissue column (looked for the column you named, or 'tissue' / "
                "'SMTSD'). Add one, name the column that holds the tissues, or choose one tissue for the file."
            )
        tissues, sexes, ages = rows["tissue"].tolist(), parse_sex(rows["sex"]), parse_age(rows["age"])
    elif tissue is None:
        raise InputError("Say which tissue the samples come from: one tissue for the file, or a sample table.")
    else:
        tissues = [tissue] * len(ids)
        sexes = parse_sex([sex if sex is not None else "unknown"] * len(ids))
        ages = parse_age([age if age is not None else "nan"] * len(ids))
    table = pd.DataFrame({
        "sample_id": ids,
        "donor_id": ids,
        "tissue": resolve_tissues(tissues, known_tissues, unknown_groups),
        "sex": sexes,
        "age": np.asarray(ages, dtype=float),
    })[SAMPLE_COLUMNS]
    table["split"] = "test"
    return table


# ----------------------------------------------------------------------------------- imputation
def supports_uncertainty(imputer: Imputer) -> bool:
    """Whether the imputer's predictions vary with noise draws (GAIN-GTEx), giving intervals."""
    return callable(getattr(imputer, "impute_samples", None)) and getattr(imputer, "stochastic", False)


@dataclass
class ImputationResult:
    """The full imputed matrix on the upload's scale (samples x features, upload identifiers first).

    Attributes
    ----------
    values : imputed values; observed ones are the upload's, unchanged.
    observed : True where ``values`` holds an uploaded value.
    lower, upper : per-value interval (calibrated at ``interval_level``, or ``INTERVAL_QUANTILES`` over
        noise draws), or None.
    orientation : the upload's layout, kept for :func:`result_frame`.
    scale : ``tpm`` or ``log``, the upload's scale.
    coverage : the coverage report.
    added_features : identifiers of the model's genes the upload lacked (appended at the end).
    scale_reason : why ``scale`` (detected from the values, or chosen), when known.
    pooled_groups : groups the model does not know, with their numbers of samples, imputed as the mean over
        the model's groups (:class:`~gtex_models.models.pooled.PooledGroups`).
    """

    values: pd.DataFrame
    observed: pd.DataFrame
    lower: pd.DataFrame | None
    upper: pd.DataFrame | None
    orientation: str
    scale: str
    coverage: Coverage
    added_features: list[str]
    scale_reason: str = ""
    interval_level: float | None = None
    pooled_groups: dict[str, int] = field(default_factory=dict)

    @property
    def imputed(self) -> np.ndarray:
        """True where a value was filled by the model."""
        return ~self.observed.to_numpy() & self.values.notna().to_numpy()

    @property
    def n_imputed(self) -> int:
        return int(self.imputed.sum())

    def median_interval_width(self) -> float | None:
        """Median ``upper - lower`` over the imputed values (upload scale); None without intervals."""
        if self.lower is None or self.upper is None or not self.imputed.any():
            return None
        return float(np.median((self.upper.to_numpy() - self.lower.to_numpy())[self.imputed]))


def _added_identifiers(alignment: Alignment, genes: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Model genes absent from the upload, named in the upload's style (Ensembl IDs or symbols)."""
    present = np.zeros(len(genes), dtype=bool)
    present[alignment.model_column[alignment.model_column >= 0]] = True
    absent = np.flatnonzero(~present)
    ids = alignment.table.feature_ids
    uses_ensembl = sum(is_ensembl_gene_id(f) for f in ids) > len(ids) / 2
    column = "ensembl_gene_id" if uses_ensembl else "symbol"
    return absent, genes[column].iloc[absent].tolist()


def impute_upload(
    imputer: Imputer,
    space: ModelSpace,
    alignment: Alignment,
    samples: pd.DataFrame,
    scale: str,
    n_draws: int = 0,
    progress: ProgressCallback | None = None,
    calibration: Calibration | None = None,
    interval: float | None = None,
) -> ImputationResult:
    """Impute an aligned upload and return it on its own scale, identifiers and sample order.

    Parameters
    ----------
    imputer, space : a fitted model and its genes, tissues and transform.
    alignment : from :func:`align_to_model`.
    samples : from :func:`sample_table`.
    scale : the upload's scale, ``tpm`` or ``log`` (see :func:`resolve_scale`).
    n_draws : with an imputer that :func:`supports_uncertainty`, the number of noise draws giving
        the ``lower``/``upper`` interval of each value (0: no interval; uncalibrated, ignored with ``interval``).
    progress : ``progress(fraction, message)``.
    calibration, interval : the model's calibration and a level (0.5-0.99): calibrated intervals.

    Raises
    ------
    CalibrationError : an ``interval`` without a ``calibration``, or a level out of range.
    """
    report = progress or (lambda fraction, message: None)
    transform = upload_transform(space, scale)
    cohort = Cohort(transform.forward(alignment.values), space.genes, samples, transform,
                    {"source": "upload"})
    pooled = PooledGroups(imputer, space.tissues)
    pooled_groups = cohort.samples.loc[pooled.unknown(cohort), "tissue"].value_counts().to_dict()
    if pooled_groups:
        imputer = pooled
    report(0.1, f"imputing {cohort.n_samples:,} sample(s) x {cohort.n_genes:,} genes")
    model_values = imputer.impute(cohort)
    imputed = transform.inverse(model_values)
    lower = upper = None
    if interval is not None:
        if calibration is None:
            raise CalibrationError(NO_CALIBRATION)
        low, high = calibration.interval(imputer, cohort, model_values, interval)
        lower, upper = transform.inverse(low), transform.inverse(high)
    elif n_draws > 1 and supports_uncertainty(imputer):
        report(0.4, f"{n_draws} noise draws for the intervals")
        draws = imputer.impute_samples(cohort, n_draws)
        low, high = np.quantile(draws, INTERVAL_QUANTILES, axis=0)
        lower, upper = transform.inverse(low), transform.inverse(high)
    report(0.9, "assembling the result")

    table = alignment.table
    known = alignment.model_column >= 0
    observed_upload = ~np.isnan(table.values)
    absent, added = _added_identifiers(alignment, space.genes)
    columns = list(table.feature_ids) + added
    n_samples = len(table.sample_ids)

    def assemble(model_values: np.ndarray) -> pd.DataFrame:
        out = np.empty((n_samples, len(columns)), dtype=np.float32)
        out[:, :len(table.feature_ids)] = table.values
        upload_part = out[:, :len(table.feature_ids)]
        fill = model_values[:, alignment.model_column[known]]
        upload_part[:, known] = np.where(observed_upload[:, known], table.values[:, known], fill)
        out[:, len(table.feature_ids):] = model_values[:, absent]
        return pd.DataFrame(out, index=pd.Index(table.sample_ids, name="sample_id"), columns=columns)

    observed = np.zeros((n_samples, len(columns)), dtype=bool)
    observed[:, :len(table.feature_ids)] = observed_upload
    result = ImputationResult(
        values=assemble(imputed),
        observed=pd.DataFrame(observed, index=pd.Index(table.sample_ids, name="sample_id"), columns=columns),
        lower=None if lower is None else assemble(lower),
        upper=None if upper is None else assemble(upper),
        orientation=table.orientation,
        scale=scale,
        coverage=alignment.coverage,
        added_features=added,
        interval_level=interval,
        pooled_groups={str(k): int(v) for k, v in pooled_groups.items()},
    )
    report(1.0, "done")
    return result


@dataclass
class PreparedUpload:
    """An upload read, mapped from probes to genes (optionally), aligned to a model, its scale decided.

    Attributes
    ----------
    alignment : from :func:`align_to_model` (its ``table`` is the upload as read and mapped).
    scale, scale_reason : from :func:`resolve_scale`.
    """

    alignment: Alignment
    scale: str
    scale_reason: str

    @property
    def table(self) -> ExpressionTable:
        return self.alignment.table


def prepare_upload(
    source: str | Path | bytes,
    space: ModelSpace,
    *,
    filename: str | None = None,
    orientation: str = "auto",
    scale: str = "auto",
    duplicates: str = "error",
    gene_map: Mapping[str, str] | str | Path | None = None,
) -> PreparedUpload:
    """Steps 1-3 of the upload pipeline: read, map probes to genes, align to the model, decide the scale.

    Parameters
    ----------
    source : a file path, or the bytes of an uploaded file (then ``filename`` names it).
    space : the model's genes, tissues and transform.
    orientation, duplicates : see :func:`~gtex_models.data.readers.tables.read_expression`; ``duplicates``
        also merges features that name one gene differently.
    scale : ``auto`` (detected), ``tpm`` or ``log``.
    gene_map : probe -> gene mapping (a dict, or a file read by
        :func:`~gtex_models.data.readers.tables.read_gene_map`); several probes of a gene are averaged.
    """
    if isinstance(source, bytes):
        table = read_upload(source, filename or "upload", orientation, duplicates)
    else:
        table = read_expression(source, orientation, duplicates)
    if gene_map is not None:
        name = "the gene map" if isinstance(gene_map, Mapping) else Path(gene_map).name
        mapping = gene_map if isinstance(gene_map, Mapping) else read_gene_map(gene_map)
        table = apply_gene_map(table, mapping, name)
    table = merge_same_genes(table, duplicates)
    alignment = align_to_model(table, space.genes)
    scale, reason = resolve_scale(alignment.values, scale, table.sample_ids, space.genes["symbol"].tolist())
    return PreparedUpload(alignment, scale, reason)


def impute_file(
    source: str | Path | bytes,
    imputer: Imputer,
    space: ModelSpace,
    *,
    filename: str | None = None,
    orientation: str = "auto",
    scale: str = "auto",
    duplicates: str = "error",
    gene_map: Mapping[str, str] | str | Path | None = None,
    tissue: str | None = None,
    sex: str | None = None,
    age: float | None = None,
    annotation: pd.DataFrame | None = None,
    n_draws: int = 0,
    progress: ProgressCallback | None = None,
    calibration: Calibration | None = None,
    interval: float | None = None,
    unknown_groups: str = "error",
) -> ImputationResult:
    """The whole upload pipeline: read -> align -> scale (:func:`prepare_upload`) -> covariates
    (:func:`sample_table`) -> impute (:func:`impute_upload`) -> result (lay it out with
    :func:`result_frame`). Used by the CLI's ``impute`` and the app's Impute page.

    ``tissue``/``sex``/``age`` apply to every sample, or ``annotation`` (a sample table read by
    :func:`~gtex_models.data.readers.tables.read_samples_table`) gives them per sample. The coverage report's
    ``warnings`` (reader, gene map, alignment) are in ``result.coverage.warnings``. ``unknown_groups="pooled"``
    imputes a sample of a group the model does not know as the mean over its groups (``result.pooled_groups``).
    """
    upload = prepare_upload(source, space, filename=filename, orientation=orientation, scale=scale,
                            duplicates=duplicates, gene_map=gene_map)
    samples = sample_table(upload.table.sample_ids, space.tissues, tissue=tissue, sex=sex, age=age,
                           annotation=annotation, unknown_groups=unknown_groups)
    result = impute_upload(imputer, space, upload.alignment, samples, upload.scale, n_draws, progress,
                           calibration, interval)
    result.scale_reason = upload.scale_reason
    return result


def result_frame(result: ImputationResult, uncertainty: bool = False) -> pd.DataFrame:
    """The result in the upload's orientation, ready for ``to_csv``.

    With ``uncertainty`` (and intervals available), every value column ``c`` is followed by
    ``c_lower`` and ``c_upper``; observed values have a zero-width interval.
    """
    frames = {"": result.values}
    if uncertainty and result.lower is not None and result.upper is not None:
        frames = {"": result.values, "_lower": result.lower, "_upper": result.upper}
    if result.orientation == "genes-by-samples":
        frames = {suffix: frame.T.rename_axis("gene_id") for suffix, frame in frames.items()}
    if len(frames) == 1:
        return frames[""]
    base = frames[""]
    parts = {f"{column}{suffix}": frame[column] for column in base.columns for suffix, frame in frames.items()}
    return pd.DataFrame(parts, index=base.index)


def imputed_frame(result: ImputationResult) -> pd.DataFrame:
    """True where the model filled a value, laid out like :func:`result_frame` (without intervals)."""
    mask = pd.DataFrame(result.imputed, index=result.values.index, columns=result.values.columns)
    return mask.T.rename_axis("gene_id") if result.orientation == "genes-by-samples" else mask
