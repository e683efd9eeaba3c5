"""Gene panels: read a gene list, match it to a cohort, design one, and score a model on it.

A panel is a list of genes measured in every sample; the rest of the transcriptome is imputed from it
(the ``panel`` pattern of :mod:`gtex_models.data.patterns`). A panel file has one Ensembl ID or symbol per
line (``#`` starts a comment; a CSV/TSV line counts by its first field). Identifiers are matched by
Ensembl ID (version suffix ignored), then by symbol (exact, then case-insensitive); the unmatched ones
are reported.

**Design** (:func:`design_panel`): greedy forward selection under a linear-Gaussian model of the
training donors' standardised values with each group's (tissue's) mean removed, as a model conditioned
on the group sees them. With ``C`` their gene-gene covariance (ridge ``shrinkage`` times the mean
variance added to the diagonal), each step adds the gene ``j`` that most reduces the total residual
variance of all genes given the panel, ``Σ_i R_ij² / R_jj`` (``R``: covariance of the residuals given
the genes chosen so far), then updates ``R ← R - R_j R_jᵀ / R_jj``: a pivoted Cholesky factorisation
of ``C`` by greatest variance explained (a column-subset selection). It costs ``O(k · genes²)``.
Panels are then scored with the model on held-out donors (:func:`panel_scores`), beside
:func:`random_panel` and :func:`most_variable_panel` (highest SD of log expression on the training donors).

**Model-scored design** (:func:`model_scored_panel`): the linear design is what an ideal linear-Gaussian
imputer would want; a given model may use other genes better. On the demo, GAIN-GTEx recovers the rest
*worse* from the linear design than from random genes once the panel has 100 genes or more (its
imputations from the designed genes are over-dispersed). This strategy scores candidate panels with the
model itself on held-out validation donors (never the test donors) and keeps the best: the linear
design, blends of its first 75 / 50 / 25 % with random genes, a random panel, then ``rounds`` of local
search (swap a random tenth of the panel for genes outside it; keep the swap if the validation R² rises).
It costs ``5 + rounds`` imputations of at most :data:`MAX_SCORING_SAMPLES` validation samples.

**Which model for a panel** (:func:`compare_for_panel`): a model trained for ~50 % random missingness is asked,
from a panel, to work with 2.5–10 % of the genes observed. So the product recommends a model per panel: the
study's models and the simple methods of :data:`PANEL_BASELINES` fitted on the training donors
(:func:`panel_baselines`) are scored on the validation donors with the panel observed, and the best is
recommended. On the demo the Gaussian conditional wins from every designed panel (README, Gene panels).

Example
-------
>>> from gtex_models.data.simulate import simulate_cohort
>>> cohort = simulate_cohort(n_donors=20, n_genes=400)
>>> panel = design_panel(cohort.split("train"), 20)
>>> len(panel), len(set(panel.tolist()))
(20, 20)
>>> match_panel(cohort.genes, ["TP53", "NOT_A_GENE"]).unmatched
['NOT_A_GENE']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy.linalg.blas import dger

from gtex_models.analysis.evaluation import onehot, r2_sums, reference_values, total_sum_of_squares
from gtex_models.common.choices import PANEL_STRATEGIES
from gtex_models.common.messages import list_examples
from gtex_models.data.cohort import Cohort
from gtex_models.data.patterns import Pattern, mask_cohort
from gtex_models.models.base import Imputer
from gtex_models.models.registry import make_imputer

DEFAULT_SHRINKAGE = 0.1
PANEL_BASELINES = ("gauss", "mean")
"""Simple methods that compete with a study's models for a panel: the Gaussian conditional and the group mean
(the floor: R² 0 by construction of the reference)."""
MODEL_SCORED_ROUNDS = 40  # local-search steps of the model-scored design
MAX_SCORING_SAMPLES = 300  # validation samples (drawn once) that score the model-scored design's candidates


def parse_panel(text: str) -> list[str]:
    """Gene identifiers of a panel file's text, in order, duplicates dropped (see the module docstring)."""
    identifiers: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        first = line.replace("\t", ",").replace(";", ",").split(",")[0].strip().strip('"').strip()
        if first and first not in identifiers:
            identifiers.append(first)
    return identifiers


def read_panel(path: str | Path) -> list[str]:
    """The identifiers of a panel file; ``ValueError`` when it is missing or lists none."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Panel file {path} does not exist. Give a text file with one gene ID or symbol per line.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"Panel file {path} is not a text file ({error}). Give one gene ID or symbol per line.") \
            from None
    identifiers = parse_panel(text)
    if not identifiers:
        raise ValueError(f"Panel file {path} lists no gene. Give one Ensembl ID or symbol per line.")
    return identifiers


@dataclass(frozen=True)
class PanelMatch:
    """A panel matched to a cohort's genes.

    Attributes
    ----------
    columns : the cohort's columns of the panel genes (sorted).
    unmatched : identifiers that match no gene of the cohort.
    n_by_id, n_by_symbol : how many identifiers matched by Ensembl ID and by symbol.
    """

    columns: np.ndarray
    unmatched: list[str]
    n_by_id: int
    n_by_symbol: int

    def describe(self, n_genes: int) -> str:
        """One line: matched, how, and the unmatched identifiers."""
        line = (f"panel of {len(self.columns)} of the {n_genes:,} genes ({self.n_by_id} matched by Ensembl ID, "
                f"{self.n_by_symbol} by symbol)")
        if self.unmatched:
            line += f"; {len(self.unmatched)} unmatched: {list_examples(self.unmatched, quote=False)}"
        return line

    def pattern(self) -> Pattern:
        """The ``panel`` missingness pattern of these genes."""
        return Pattern("panel", panel=tuple(int(j) for j in self.columns))


def match_panel(genes: pd.DataFrame, identifiers: Sequence[str]) -> PanelMatch:
    """Match panel identifiers to a gene table (``ensembl_gene_id``, ``symbol``): Ensembl ID, then symbol.

    Raises
    ------
    ValueError
        When the panel is empty, matches no gene, or covers every gene (nothing would be left to impute).
    """
    identifiers = [str(i).strip() for i in identifiers if str(i).strip()]
    if not identifiers:
        raise ValueError("The panel is empty: give at least one gene (Ensembl ID or symbol).")
    by_id = {str(g).split(".")[0].upper(): j for j, g in enumerate(genes["ensembl_gene_id"].fillna("")) if g}
    symbols = genes["symbol"].fillna("").astype(str).tolist()
    by_symbol = {s: j for j, s in enumerate(symbols) if s}
    by_folded = {s.upper(): j for j, s in enumerate(symbols) if s}
    columns, unmatched, n_id, n_symbol = set(), [], 0, 0
    for identifier in identifiers:
        key = identifier.split(".")[0].upper()
        if key in by_id:
            columns.add(by_id[key])
            n_id += 1
        elif identifier in by_symbol or identifier.upper() in by_folded:
            columns.add(by_symbol.get(identifier, by_folded.get(identifier.upper())))
            n_symbol += 1
        else:
            unmatched.append(identifier)
    if not columns:
        raise ValueError(f"None of the panel's {len(identifiers)} identifiers ({list_examples(identifiers, quote=False)}) "
                         f"is a gene of the cohort (e.g. {list_examples(symbols, 3, quote=False)}). Use Ensembl IDs "
                         "or the cohort's symbols.")
    if len(columns) >= len(genes):
        raise ValueError(f"The panel covers all {len(genes)} genes of the cohort: nothing is left to impute. "
                         "Use a smaller panel.")
    return PanelMatch(np.array(sorted(columns), dtype=np.int64), unmatched, n_id, n_symbol)


def check_size(k: int, n_genes: int) -> None:
    """Raise ``ValueError`` unless ``1 <= k < n_genes``."""
    if not 1 <= int(k) < n_genes:
        raise ValueError(f"The panel size must be between 1 and {n_genes - 1} (the cohort has {n_genes} genes, and "
                         f"at least one must be left to impute), got {k}.")


def design_panel(train: Cohort, k: int, shrinkage: float = DEFAULT_SHRINKAGE) -> np.ndarray:
    """The ``k`` genes that best recover the rest (greedy, see the module docstring), in the order chosen.

    ``train`` is the training donors in model space (complete); any number of groups, one included.
    """
    check_size(k, train.n_genes)
    x = np.asarray(train.x, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError("Panel design needs complete training values; the training donors have missing values.")
    _, codes = np.unique(train.samples["tissue"].to_numpy(dtype=object), return_inverse=True)
    for group in np.unique(codes):  # remove each group's mean: a group-conditioned model knows it
        rows = codes == group
        x[rows] -= x[rows].mean(axis=0)
    residual = np.asfortranarray(x.T @ x / max(len(x) - 1, 1))  # Fortran order: BLAS updates it in place
    residual[np.diag_indices_from(residual)] += shrinkage * float(np.mean(np.diag(residual))) + 1e-12
    chosen = np.zeros(train.n_genes, dtype=bool)
    order = []
    for _ in range(int(k)):
        variance = np.diag(residual).copy()
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.einsum("ij,ij->j", residual, residual) / variance
        score[chosen | ~(variance > 1e-12)] = -np.inf
        j = int(np.argmax(score))
        column = residual[:, j].copy()
        residual = dger(-1.0 / variance[j], column, column, a=residual, overwrite_a=True)  # R -= c cᵀ / R_jj
        chosen[j] = True
        order.append(j)
    return np.array(order, dtype=np.int64)


def most_variable_panel(train: Cohort, k: int) -> np.ndarray:
    """The ``k`` genes with the highest SD of log expression on the training donors (the transform's SD)."""
    check_size(k, train.n_genes)
    return np.argsort(-train.transform.std, kind="stable")[: int(k)].astype(np.int64)


def random_panel(n_genes: int, k: int, seed: int = 0) -> np.ndarray:
    """``k`` genes drawn uniformly without replacement."""
    check_size(k, n_genes)
    return np.sort(np.random.default_rng(seed).choice(n_genes, size=int(k), replace=False)).astype(np.int64)


def model_scored_panel(imputer: Imputer, train: Cohort, valid: Cohort, k: int, rounds: int = MODEL_SCORED_ROUNDS,
                       seed: int = 0, linear: np.ndarray | None = None) -> np.ndarray:
    """The ``k`` genes from which ``imputer`` recovers the others best on the validation donors ``valid``
    (model-scored design, see the module docstring), sorted.

    ``train`` and ``valid`` are complete, in the model's space; ``valid``'s groups unknown to ``train`` are
    left out. ``linear``: the linear design in its greedy order when already computed (at least ``k``
    genes; its first ``k`` are used), else it is computed here. Raises ``ValueError`` when no validation
    sample is left.
    """
    check_size(k, train.n_genes)
    rng = np.random.default_rng(seed)
    valid = _scoring_donors(valid, train, rng)
    if valid.n_samples == 0:
        raise ValueError("The model-scored design scores panels on validation donors, and the cohort has none in the "
                         "model's groups; use the 'designed' strategy, or give the cohort a 'valid' split.")
    n_genes, k = train.n_genes, int(k)

    def score(panel: np.ndarray) -> float:
        r2 = panel_r2(imputer, valid, panel, train).r2_mean
        return r2 if np.isfinite(r2) else -np.inf

    def with_random_genes(kept: np.ndarray, n_new: int) -> np.ndarray:
        return np.concatenate([kept, rng.choice(np.setdiff1d(np.arange(n_genes), kept), n_new, replace=False)])

    linear = design_panel(train, k) if linear is None or len(linear) < k else np.asarray(linear[:k])
    candidates = [linear] + [with_random_genes(linear[: int(share * k)], k - int(share * k))
                             for share in (0.75, 0.5, 0.25, 0.0)]
    scores = [score(panel) for panel in candidates]
    best, best_score = candidates[int(np.argmax(scores))], max(scores)
    n_swap = min(max(1, k // 10), n_genes - k)
    for _ in range(int(rounds)):
        proposal = best.copy()
        out = rng.choice(k, n_swap, replace=False)
        proposal[out] = rng.choice(np.setdiff1d(np.arange(n_genes), best), n_swap, replace=False)
        proposal_score = score(proposal)
        if proposal_score > best_score:
            best, best_score = proposal, proposal_score
    return np.sort(best).astype(np.int64)


def _scoring_donors(valid: Cohort, train: Cohort, rng: np.random.Generator) -> Cohort:
    """The validation donors of the training groups that score panels or models, at most
    :data:`MAX_SCORING_SAMPLES` of them (drawn from ``rng``)."""
    valid = valid.subset_samples(valid.samples["tissue"].isin(train.tissues).to_numpy())
    if valid.n_samples > MAX_SCORING_SAMPLES:
        valid = valid.subset_samples(np.sort(rng.choice(valid.n_samples, MAX_SCORING_SAMPLES, replace=False)))
    return valid


def choose_panel(strategy: str, train: Cohort, k: int, seed: int = 0, imputer: Imputer | None = None,
                 valid: Cohort | None = None) -> np.ndarray:
    """A panel of ``k`` genes by one of :data:`PANEL_STRATEGIES`; ``model-scored`` needs ``imputer`` and
    ``valid`` (see :func:`model_scored_panel`)."""
    if strategy == "designed":
        return design_panel(train, k)
    if strategy == "most-variable":
        return most_variable_panel(train, k)
    if strategy == "random":
        return random_panel(train.n_genes, k, seed)
    if strategy == "model-scored":
        if imputer is None or valid is None:
            raise ValueError("The model-scored strategy needs a model and validation donors.")
        return model_scored_panel(imputer, train, valid, k, seed=seed)
    raise ValueError(f"Unknown panel strategy {strategy!r}; use one of {', '.join(PANEL_STRATEGIES)}.")


@dataclass(frozen=True)
class PanelScore:
    """How well a model recovers the genes outside a panel on complete test donors.

    Attributes
    ----------
    per_group : ``tissue``, ``r2`` (pooled over the group's non-panel genes and test samples),
        ``n_samples``; one row per group.
    per_gene : ``gene``, ``r2`` (pooled over groups); the non-panel genes.
    """

    per_group: pd.DataFrame
    per_gene: pd.DataFrame

    @property
    def r2_mean(self) -> float:
        """Mean per-gene R² of the non-panel genes (the headline number)."""
        return float(self.per_gene["r2"].mean())


def panel_r2(imputer: Imputer, test: Cohort, columns: Sequence[int], train: Cohort) -> PanelScore:
    """Score ``imputer`` on complete ``test`` donors whose panel genes (``columns``) are observed and every
    other gene is imputed.

    R² uses pooled residuals, stable with any number of test samples per group: the reference of a
    group is its mean over the training donors (``train``, :func:`~gtex_models.analysis.evaluation.reference_values`;
    the group-mean imputer scores 0), and
    residual and total sums of squares are pooled over the group's genes (per-group R²) or over the
    groups (per-gene R²), never taken from one gene in a handful of samples.
    """
    pattern = Pattern("panel", panel=tuple(int(j) for j in columns))
    observed = pattern.observed(test)
    imputed = imputer.impute(mask_cohort(test, observed))
    groups, codes = np.unique(test.samples["tissue"].to_numpy(dtype=object), return_inverse=True)
    sums = r2_sums(test.x, imputed, observed, onehot(codes, len(groups)), reference_values(test, train))
    ss_tot, valid = total_sum_of_squares(sums)
    ss_res = np.where(valid, sums["ss_res"], 0.0)
    ss_tot = np.where(valid, ss_tot, 0.0)
    hidden = ~np.isin(np.arange(test.n_genes), pattern.panel)
    with np.errstate(invalid="ignore", divide="ignore"):
        by_group = 1.0 - ss_res[:, hidden].sum(axis=1) / ss_tot[:, hidden].sum(axis=1)
        by_gene = 1.0 - ss_res[:, hidden].sum(axis=0) / ss_tot[:, hidden].sum(axis=0)
    per_group = pd.DataFrame({"tissue": groups, "r2": by_group, "n_samples": np.bincount(codes, minlength=len(groups))})
    per_gene = pd.DataFrame({"gene": test.genes["symbol"].to_numpy()[hidden], "r2": by_gene})
    return PanelScore(per_group.dropna(subset=["r2"]).reset_index(drop=True),
                      per_gene.dropna(subset=["r2"]).reset_index(drop=True))


def panel_scores(imputer: Imputer, test: Cohort, panels: dict[str, Sequence[int]], train: Cohort) -> pd.DataFrame:
    """For each named panel: ``panel``, ``k``, ``r2_mean`` (mean per-gene R² of the non-panel genes) and
    ``r2_group_mean`` (mean over groups of the per-group R²), see :func:`panel_r2`."""
    rows = []
    for name, columns in panels.items():
        score = panel_r2(imputer, test, columns, train)
        rows.append({"panel": name, "k": len(columns), "r2_mean": score.r2_mean,
                     "r2_group_mean": float(score.per_group["r2"].mean())})
    return pd.DataFrame(rows)


def panel_text(genes: pd.DataFrame, columns: Sequence[int], header: str = "") -> str:
    """A panel file: one gene per line, its Ensembl ID (else its symbol) and the symbol as a comment."""
    lines = [f"# {line}" for line in header.splitlines() if line]
    for j in columns:
        gene_id, symbol = str(genes["ensembl_gene_id"].iloc[j] or ""), str(genes["symbol"].iloc[j])
        lines.append(f"{gene_id}\t# {symbol}" if gene_id and gene_id != "nan" else symbol)
    return "\n".join(lines) + "\n"


PANEL_SIZES = (50, 100, 200, 500, 1000)
"""The panel sizes of the R²-against-size curve (those below the cohort's number of genes)."""
MAX_TEST_SAMPLES = 600
"""Test samples (drawn once) that score a panel in the app and in a study's stored default panel."""


def panel_sizes(n_genes: int, sizes: Sequence[int] = PANEL_SIZES) -> list[int]:
    """The sizes of ``sizes`` that leave genes to impute; for a cohort of few genes, a quarter and a half of them."""
    usable = [k for k in sizes if k < n_genes]
    return usable or sorted({max(1, n_genes // 4), max(1, n_genes // 2)} - {n_genes})


def default_panel_size(n_genes: int) -> int:
    """The panel size the app opens on: the second of :func:`panel_sizes` (100 genes of a large cohort)."""
    sizes = panel_sizes(n_genes)
    return sizes[min(1, len(sizes) - 1)]


def panel_donors(cohort: Cohort) -> tuple[Cohort, Cohort, Cohort]:
    """(training, validation, test donors) of a cohort in a model's space, as a panel is designed, model-scored
    and scored: the test donors are those of the training groups, at most :data:`MAX_TEST_SAMPLES` of them (drawn
    once, seed 0)."""
    train, valid, test = cohort.split("train"), cohort.split("valid"), cohort.split("test")
    test = test.subset_samples(test.samples["tissue"].isin(train.tissues).to_numpy())
    if test.n_samples > MAX_TEST_SAMPLES:
        rows = np.random.default_rng(0).choice(test.n_samples, MAX_TEST_SAMPLES, replace=False)
        test = test.subset_samples(np.sort(rows))
    return train, valid, test


def default_panel(imputer: Imputer, cohort: Cohort) -> dict[str, Any] | None:
    """The panel the app opens on, designed and scored (JSON-ready: ``strategy``, ``size``, ``columns``,
    ``per_group`` and ``per_gene`` as column lists), for a study to store; None when the cohort (in the
    model's space) has no test donor in a training group or fewer than 2 training samples."""
    train, _, test = panel_donors(cohort)
    if test.n_samples == 0 or train.n_samples < 2:
        return None
    size = default_panel_size(cohort.n_genes)
    columns = [int(j) for j in design_panel(train, size)]  # in the order chosen, as the app shows it
    score = panel_r2(imputer, test, columns, train)
    return {"strategy": "designed", "size": size, "columns": columns,
            "per_group": score.per_group.to_dict(orient="list"), "per_gene": score.per_gene.to_dict(orient="list")}


def panel_size_curve(imputer: Imputer, train: Cohort, test: Cohort, sizes: Sequence[int],
                     random_seeds: int = 1, valid: Cohort | None = None) -> pd.DataFrame:
    """Mean per-gene R² of the genes outside the panel against panel size (``strategy``, ``k``, ``r2``) for the
    designed panel (one greedy run; each size is a prefix), the most variable genes and random panels
    (averaged over ``random_seeds`` draws); with validation donors ``valid``, also the model-scored panel
    of each size (:func:`model_scored_panel`, slower)."""
    sizes = sorted(int(k) for k in sizes)
    designed = design_panel(train, sizes[-1])
    rows = []
    for k in sizes:
        draws = {"designed": [designed[:k]], "most-variable": [most_variable_panel(train, k)],
                 "random": [random_panel(train.n_genes, k, seed) for seed in range(random_seeds)]}
        if valid is not None:
            draws["model-scored"] = [model_scored_panel(imputer, train, valid, k, linear=designed)]
        for strategy, panels in draws.items():
            rows.append({"strategy": strategy, "k": k,
                         "r2": float(np.mean([panel_r2(imputer, test, p, train).r2_mean for p in panels]))})
    return pd.DataFrame(rows)


def panel_baselines(train: Cohort, valid: Cohort | None = None,
                    methods: Sequence[str] = PANEL_BASELINES) -> dict[str, Imputer]:
    """``methods`` (default :data:`PANEL_BASELINES`) fitted on the training donors ``train`` (the Gaussian's
    settings chosen on the validation donors ``valid`` when given)."""
    return {method: make_imputer(method).fit(train, valid) for method in methods}


def compare_for_panel(candidates: dict[str, Imputer], valid: Cohort, columns: Sequence[int], train: Cohort,
                      seed: int = 0) -> pd.DataFrame:
    """Each candidate's mean per-gene R² of the genes outside the panel (``columns``) on the validation donors
    ``valid`` (those of the training groups, at most :data:`MAX_SCORING_SAMPLES`, drawn once), best first
    (``model``, ``valid_r2``): the first is the model to impute from this panel. ``train``: the training donors
    (R²'s reference). Raises ``ValueError`` when no validation sample is in a training group."""
    valid = _scoring_donors(valid, train, np.random.default_rng(seed))
    if valid.n_samples == 0:
        raise ValueError("Models are compared for a panel on validation donors, and the cohort has none in the "
                         "training groups; give the cohort a 'valid' split (import --split).")
    scores = [{"model": name, "valid_r2": panel_r2(imputer, valid, columns, train).r2_mean}
              for name, imputer in candidates.items()]
    return pd.DataFrame(scores).sort_values("valid_r2", ascending=False, kind="stable").reset_index(drop=True)
