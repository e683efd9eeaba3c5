"""Scoring a model on a cohort it was not trained on: gene alignment, group map, scale harmonisation, shift.

**Genes** are aligned by Ensembl ID, then symbol (:func:`gtex_models.models.model_space.gene_indexer`); the
model's genes the cohort lacks are unobserved in every sample (imputed, never scored); the cohort's
genes the model does not know are ignored. **Groups** are mapped to the model's tissues by a two-column
file (``cohort group<TAB or comma>model tissue``; groups already named as a model tissue map to
themselves; the others are left out, with a warning). **Scale** (both on log2(TPM + 1), or the
cohort's own log scale):

``own``
    standardise each gene with the new cohort's own mean and SD (the paper's choice for TCGA);
``training``
    standardise with the training cohort's statistics (the model's transform);
``quantile``
    per sample, replace the k-th smallest present value by the k-th smallest training mean of the
    same genes (alignment of every sample's distribution to the training cohort's average profile),
    then standardise with the training statistics.

:func:`shift_cohort` turns any cohort into a "foreign" one (platform/batch shift: per-gene offset and
scale, extra noise, a shifted gene program, genes missing entirely), so the comparison is measurable on
the demo, where the shifted cohort keeps an exact oracle.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from gtex_models.analysis.evaluation import MIN_HIDDEN_PER_GENE, r2_across_missing_rates, reference_values
from gtex_models.common.choices import ALL_TISSUES, HARMONISATIONS
from gtex_models.common.messages import describe_unknown_tissues, list_examples
from gtex_models.data.cohort import Cohort
from gtex_models.data.patterns import Pattern
from gtex_models.data.reference import pathway_genes
from gtex_models.data.transform import Transform
from gtex_models.models.base import Imputer
from gtex_models.models.model_space import ModelSpace, cohort_for_model, gene_indexer
from gtex_models.models.oracle import PLATFORM_COLUMNS, ZERO_TOLERANCE

MIN_COHORT_SAMPLES = 3  # each gene's R² needs hidden values that vary across samples
MAX_GROUP_MAP_BYTES = 1 << 20
GROUP_MAP_HOW = "cohort group, model tissue; CLI: --group-map FILE, app: the group map upload"


def is_training_cohort(cohort: Cohort, metadata: Mapping[str, Any]) -> bool:
    """Whether ``cohort`` is the one the model was trained on: it has every model gene and its transform
    is the model's on them (the model's statistics were fitted on its training donors)."""
    space = ModelSpace.from_metadata(metadata)
    columns = gene_indexer(cohort.genes, space.genes)
    if (columns < 0).any():
        return False
    ours = cohort.transform.subset(columns)
    return bool(np.allclose(ours.mean, space.transform.mean) and np.allclose(ours.std, space.transform.std))


def read_group_map(path: str | Path) -> dict[str, str]:
    """A group map file: ``cohort group`` and ``model tissue`` per line (tab or comma; ``#`` comments; a header
    line ``group,tissue`` is skipped)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Group map {path} does not exist. Give a file with two columns: cohort group, model tissue.")
    return parse_group_map(path.read_text(encoding="utf-8-sig"), str(path))


def read_group_map_upload(data: bytes, filename: str) -> dict[str, str]:
    """An uploaded group map (the bytes of a file :func:`read_group_map` reads)."""
    if len(data) > MAX_GROUP_MAP_BYTES:
        raise ValueError(f"Group map {filename} is {len(data) / 2**20:.1f} MB: a group map has one short line per "
                         "group (cohort group, model tissue).")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"Group map {filename} is not a text file: give a CSV or TSV with two columns, cohort "
                         "group and model tissue.") from None
    return parse_group_map(text, filename)


def parse_group_map(text: str, source: str) -> dict[str, str]:
    """The group map in ``text`` (see :func:`read_group_map`); ``source`` names it in errors."""
    mapping: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f.strip().strip('"') for f in (line.split("\t") if "\t" in line else line.split(","))]
        if len(fields) != 2 or not all(fields):
            raise ValueError(f"{source}, line {number}: expected two columns (cohort group, model tissue), got "
                             f"{line!r}.")
        if not mapping and fields[0].lower() == "group":
            continue
        if fields[0] in mapping and mapping[fields[0]] != fields[1]:
            raise ValueError(f"{source}, line {number}: group {fields[0]!r} is mapped twice.")
        mapping[fields[0]] = fields[1]
    if not mapping:
        raise ValueError(f"Group map {source} maps no group.")
    return mapping


def shifted_test_donors(cohort: Cohort, tissues: Sequence[str], seed: int = 0) -> Cohort:
    """A :func:`shift_cohort` copy (default shift) of ``cohort``'s test donors of ``tissues``: a "foreign"
    cohort of the model's own tissues, small enough to score in seconds."""
    test = cohort.split("test")
    test = test.subset_samples(test.samples["tissue"].isin(list(tissues)).to_numpy())
    if not test.n_samples:
        raise ValueError(f"The cohort has no test donor in {list_examples(sorted(tissues))}: choose other tissues.")
    return shift_cohort(test, seed=seed)


@dataclass(frozen=True)
class AlignedCohort:
    """Another cohort in a model's genes and groups, before scale harmonisation.

    Attributes
    ----------
    log : samples x model genes, log scale; NaN for the model genes the cohort lacks.
    samples : the kept samples, ``tissue`` renamed to the model's tissue.
    report : lines describing the gene and group alignment.
    """

    log: np.ndarray
    samples: pd.DataFrame
    report: list[str]


def align_cohort(cohort: Cohort, space: ModelSpace, group_map: Mapping[str, str] | None = None) -> AlignedCohort:
    """Align ``cohort`` to the model's genes and tissues (see the module docstring)."""
    columns = gene_indexer(cohort.genes, space.genes)
    present = columns >= 0
    if not present.any():
        raise ValueError(f"None of the model's {space.n_genes:,} genes is in the cohort (e.g. "
                         f"{list_examples(cohort.genes['symbol'].tolist(), 3, quote=False)}); match genes by Ensembl "
                         "ID or symbol.")
    with_ids = present & (space.genes["ensembl_gene_id"].fillna("").astype(bool).to_numpy())
    cohort_ids = cohort.genes["ensembl_gene_id"].fillna("").astype(bool).to_numpy()
    by_id = int(np.sum(with_ids & cohort_ids[np.where(present, columns, 0)]))
    unknown = len(cohort.genes) - int(present.sum())
    report = [f"genes: {int(present.sum()):,} of the model's {space.n_genes:,} in the cohort ({by_id:,} by Ensembl "
              f"ID, {int(present.sum()) - by_id:,} by symbol); {int((~present).sum()):,} absent, unobserved in every "
              f"sample" + (f" (e.g. {list_examples(space.genes.loc[~present, 'symbol'].tolist(), 3, quote=False)})"
                           if (~present).any() else "") + f"; {unknown:,} cohort gene(s) unknown to the model ignored"]
    log = np.full((cohort.n_samples, space.n_genes), np.nan, dtype=np.float32)
    log[:, present] = cohort.x[:, columns[present]] * cohort.transform.std[columns[present]] \
        + cohort.transform.mean[columns[present]]
    samples = cohort.samples.copy()
    mapping = dict(group_map or {})
    unknown_targets = sorted(set(mapping.values()) - set(space.tissues))
    if unknown_targets:
        raise ValueError(f"The group map names tissues the model does not know: "
                         f"{describe_unknown_tissues(unknown_targets, space.tissues)}.")
    samples["tissue"] = [mapping.get(t, t) for t in samples["tissue"]]
    known = samples["tissue"].isin(space.tissues).to_numpy()
    if not known.any():
        raise ValueError(f"No group of the cohort is a tissue of the model ({describe_unknown_tissues(sorted(set(cohort.samples['tissue'])), space.tissues)}); "
                         f"map them with a group map ({GROUP_MAP_HOW}).")
    if not known.all():
        left = sorted(set(cohort.samples.loc[~known, "tissue"]))
        warnings.warn(f"{int((~known).sum())} sample(s) of {len(left)} group(s) without a model tissue are left out: "
                      f"{list_examples(left)}; map them with a group map ({GROUP_MAP_HOW}).", stacklevel=2)
    mapped = {g: mapping.get(g, g) for g in sorted(set(cohort.samples.loc[known, "tissue"]))}
    renamed = [f"{g} -> {t}" for g, t in mapped.items() if g != t]
    same = [g for g, t in mapped.items() if g == t]
    report.append(f"groups ({int(known.sum()):,} samples): " + ", ".join(
        renamed + ([f"{len(same)} named as a model tissue ({list_examples(same, 3, quote=False)})"] if same else [])))
    return AlignedCohort(log[known], samples.loc[known].reset_index(drop=True), report)


def harmonise(aligned: AlignedCohort, space: ModelSpace, method: str = "own") -> Cohort:
    """The aligned cohort in the model's space by one of :data:`HARMONISATIONS` (NaN: absent genes)."""
    if method not in HARMONISATIONS:
        raise ValueError(f"Unknown harmonisation {method!r}; use one of {', '.join(HARMONISATIONS)}.")
    log = aligned.log.astype(np.float64)
    train_mean, train_std = space.transform.mean.astype(np.float64), space.transform.std.astype(np.float64)
    if method == "own":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, std = np.nanmean(log, axis=0), np.nanstd(log, axis=0)
        std = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)
        x = (log - mean) / std
    else:
        if method == "quantile":
            log = _quantile_align(log, train_mean)
        x = (log - train_mean) / train_std
    return Cohort(x.astype(np.float32), space.genes.copy(), aligned.samples, space.transform, {"harmonisation": method})


def _quantile_align(log: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each row's present values replaced, rank for rank, by the sorted ``reference`` values of the same genes."""
    out = np.full_like(log, np.nan)
    for i, row in enumerate(log):
        present = np.flatnonzero(np.isfinite(row))
        order = present[np.argsort(row[present], kind="stable")]
        out[i, order] = np.sort(reference[present])
    return out


@dataclass(frozen=True)
class CohortComparison:
    """R² against missing rate on another cohort (each harmonisation) beside the model's own test donors.

    Attributes
    ----------
    table : ``cohort``, ``harmonisation``, one column per rate (mean per-gene R², all groups pooled).
    tables : the full across-rates tables (:func:`~gtex_models.analysis.evaluation.r2_across_missing_rates`) by row label.
    report : alignment lines.
    """

    table: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    report: str

    def long_table(self) -> pd.DataFrame:
        """Every row label's across-rates table stacked, the label in a first column ``cohort``."""
        return pd.concat([t.assign(cohort=label) for label, t in self.tables.items()], ignore_index=True) \
            .loc[:, lambda t: ["cohort", *(c for c in t.columns if c != "cohort")]]


def compare_cohorts(
    imputer: Imputer, space: ModelSpace, other: Cohort, metadata: Mapping[str, Any] | None = None,
    harmonisations: Sequence[str] = ("own",), rates: Sequence[float] = (0.5,),
    group_map: Mapping[str, str] | None = None, seed: int = 0, pattern: Pattern | None = None,
    own: Cohort | None = None, min_hidden: int = MIN_HIDDEN_PER_GENE,
) -> CohortComparison:
    """Score ``imputer`` on ``other`` under each harmonisation at each missing rate; with ``own`` (the model's
    cohort), its test donors of the same tissues come first as the reference row. ``min_hidden``: see
    :func:`~gtex_models.analysis.evaluation.r2_across_missing_rates`.

    R²'s reference never depends on the mask: for the own test donors, each value's group mean over the
    own cohort's training donors (as everywhere, :func:`~gtex_models.analysis.evaluation.reference_values`);
    for the other cohort, which has no training donors on its platform, its own group means over all its
    samples (complete values, on the harmonised scale), so neither row is credited for the differences
    between groups or for the platform's offset."""
    aligned = align_cohort(other, space, group_map)
    if len(aligned.samples) < MIN_COHORT_SAMPLES:
        raise ValueError(f"The cohort has {len(aligned.samples)} sample(s) in the model's tissues; at least "
                         f"{MIN_COHORT_SAMPLES} are needed (each gene's R² needs hidden values that vary across "
                         "samples). Add samples, or map more of its groups to model tissues.")
    tissues = sorted(set(aligned.samples["tissue"]))
    tables: dict[str, pd.DataFrame] = {}
    rows = []
    if own is not None:
        modelled = cohort_for_model(own, space)
        test = modelled.split("test")
        test = test.subset_samples(test.samples["tissue"].isin(tissues).to_numpy())
        if test.n_samples:
            tables["own test donors"] = r2_across_missing_rates(imputer.impute, test, rates, seed, min_hidden, pattern,
                                                                reference_values(test, modelled.split("train")))
            rows.append(("own test donors", "training", tables["own test donors"]))
    for method in harmonisations:
        cohort = harmonise(aligned, space, method)
        label = f"other cohort ({method})"
        tables[label] = r2_across_missing_rates(imputer.impute, cohort, rates, seed, min_hidden, pattern,
                                                reference_values(cohort, cohort))
        rows.append(("other cohort", method, tables[label]))
    records = []
    for name, method, table in rows:
        pooled = table[table["tissue"] == ALL_TISSUES].set_index("missing_rate")["r2_mean"]
        records.append({"cohort": name, "harmonisation": method, **{f"{rate:g}": pooled.get(rate) for rate in rates}})
    return CohortComparison(pd.DataFrame(records), tables, "\n".join(aligned.report))


def shift_cohort(cohort: Cohort, offset_sd: float = 0.5, scale_sd: float = 0.2, noise_sd: float = 0.3,
                 drop_share: float = 0.1, program_shift: float = 1.0, program: Sequence[str] | None = None,
                 seed: int = 0) -> Cohort:
    """A "foreign" copy of ``cohort`` (platform / batch shift and a disease-like program change), on a log scale.

    Each gene ``g`` gets a platform: a detected value ``y`` (non-zero log value) is read as
    ``scale_g · y + offset_g + e`` with ``scale_g = exp(N(0, scale_sd))`` around the gene's mean detected
    value, ``offset_g ~ N(0, offset_sd)`` plus ``program_shift`` for the genes of a program (default: the
    KEGG p53 pathway genes of the cohort, a cancer-like change; a random 5 % of genes when it has
    fewer than 5), and ``e ~ N(0, noise_sd)`` per value; undetected values (0) stay 0. A ``drop_share``
    of the genes is removed (absent from the platform). The per-gene scale and offset are the gene table's
    :data:`~gtex_models.models.oracle.PLATFORM_COLUMNS` (a simulated cohort's oracle reads them: exact on the
    shifted cohort too); its transform is fitted on all its samples, its samples are all ``test``, and
    ``meta["shift"]`` records the settings.
    """
    rng = np.random.default_rng([seed, 14])
    log = (cohort.x * cohort.transform.std + cohort.transform.mean).astype(np.float64)
    detected = np.abs(log) >= ZERO_TOLERANCE  # NaN (missing) compares False: left as NaN below
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nan_to_num(np.nanmean(np.where(detected, log, np.nan), axis=0))
    in_program = _program_genes(cohort, program, rng)
    scale = np.exp(rng.normal(0.0, scale_sd, cohort.n_genes))
    offset = (1.0 - scale) * centre + rng.normal(0.0, offset_sd, cohort.n_genes) + program_shift * in_program
    shifted = np.where(detected, scale * log + offset + rng.normal(0.0, noise_sd, log.shape), log)
    keep = np.sort(rng.choice(cohort.n_genes, cohort.n_genes - int(round(drop_share * cohort.n_genes)), replace=False))
    shifted = shifted[:, keep].astype(np.float32)
    genes = cohort.genes.assign(**dict(zip(PLATFORM_COLUMNS, (scale, offset))), platform_program=in_program).iloc[keep]
    transform = Transform.fit(shifted, scale="log")
    samples = cohort.samples.assign(split="test")
    meta = {**cohort.meta, "source": f"shifted {cohort.meta.get('source', 'cohort')}",
            "shift": {"offset_sd": offset_sd, "scale_sd": scale_sd, "noise_sd": noise_sd, "drop_share": drop_share,
                      "program_shift": program_shift, "program_genes": int(in_program.sum()), "seed": seed}}
    return Cohort(transform.forward(shifted), genes, samples, transform, meta)


def _program_genes(cohort: Cohort, program: Sequence[str] | None, rng: np.random.Generator) -> np.ndarray:
    """Which genes the disease-like change moves: ``program`` (symbols or Ensembl IDs), else the p53 pathway's."""
    wanted = set(pathway_genes("p53") if program is None else program)
    chosen = (cohort.genes["symbol"].isin(wanted) | cohort.genes["ensembl_gene_id"].isin(wanted)).to_numpy()
    if program is None and chosen.sum() < 5:
        chosen = rng.random(cohort.n_genes) < 0.05
    return chosen
