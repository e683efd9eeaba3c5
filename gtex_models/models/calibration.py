"""Calibrated per-value intervals for any imputer: split-conformal, scaled, Mondrian by group, gene and rate.

One job (fitting a calibration and applying it), in the steps below.

How a calibration is made (:func:`calibrate`), from a fitted imputer and complete held-out donors that it
never trained on (the cohort's ``valid`` split: no donor is in two splits):

1. Every calibration sample gets its own missing rate, spread evenly over ``[0.05, 0.95]``; that share
   of its values is hidden (MCAR) and imputed. Fewer than ``CALIBRATION_SAMPLES`` held-out samples (a small
   cohort's few validation donors) are masked again at new rates, up to ``MAX_PASSES`` times
   (:func:`calibration_passes`), so that every bin of missing rates gets scores from many samples.
2. The residuals ``y - ŷ`` of the hidden values (model space) give the per-value spread
   ``s = s[group, gene] · f(missing fraction)``: ``s[group, gene]`` is the root mean square residual of
   the gene in the group, shrunk towards the gene's pooled value (``SHRINKAGE`` pseudo-residuals, so a
   group with few values borrows from the others); ``f`` (a quadratic in the sample's missing fraction,
   on the log scale) says how much larger errors get when more of the sample is missing.
3. How hard the sample itself is: a **probe** hides ``PROBE_SHARE`` of the sample's *observed* values
   again, imputes them and measures their mean squared standardised residual ``h`` over ``n`` probed
   values; the sample's factor ``g = sqrt((n·h + κ) / (n + κ))`` (``κ`` pseudo-values pull it towards 1
   when few values are probed; ``κ``, one of ``PROBE_PRIORS``, is fitted to the calibration residuals by
   Gaussian likelihood). A donor whose observed values are hard to predict gets wider intervals
   (samples of one tissue differ: on the demo, a tissue's test donors were 35 % harder than its
   validation donors, and the probe sees it). The probe needs no truth, so it runs at impute time too.
4. The conformity score of a hidden value is ``|y - ŷ| / (s · g)``, with ``s[group, gene]`` fitted on the
   *other* half of the calibration donors (cross-fitting, two folds by donor), so scores are out-of-sample.
5. Scores are pooled per **Mondrian cell**: group × gene bin (quartiles of the gene's scale) × bin of
   the sample's missing fraction (``RATE_EDGES``), and each cell's conformal quantile
   ``ceil((n + 1) · level)``-th smallest score is stored for every level of ``LEVELS`` (0.50-0.99).
   Values of one sample are correlated, so a cell needs ``MIN_CELL`` scores from ``MIN_CELL_SAMPLES``
   samples; one with fewer takes the quantile of its parent: the group and gene bin over all rates (times
   the rate bin's ratio to all rates, over all groups), then all groups of the gene bin and rate bin,
   then the rate bin, then everything.

A method that knows how uncertain each of its values is (``gauss``: its conditional standard deviation
``u``, :func:`value_unit`) gives the intervals their shape: its residuals are scored in units of ``u`` and
its widths multiplied by ``u``, so steps 2-5 calibrate that shape instead of replacing it.

An interval is then ``ŷ ± u · s · g · q[group, gene bin, rate bin, level]`` in model space (``u = 1`` for
methods without their own scale), mapped
to the user's scale by the (monotone) transform, so its coverage carries over. Because the cells are
split by missing fraction, one calibration holds at any test missing rate; because they are split by
group, coverage holds per tissue and not only on average. Observed values get a zero-width interval.

Example
-------
>>> from gtex_models.models.registry import make_imputer
>>> from gtex_models.data.simulate import simulate_cohort
>>> cohort = simulate_cohort(n_donors=20, n_genes=400)
>>> imputer = make_imputer("mean").fit(cohort.split("train"))
>>> calibration = calibrate(imputer, cohort.split("valid"))
>>> test = cohort.split("test")
>>> observed = np.random.default_rng(0).random(test.x.shape) > 0.5
>>> masked = mask_cohort(test, observed)
>>> lower, upper = calibration.interval(imputer, masked, imputer.impute(masked), level=0.9)
>>> 0.85 < coverage(test.x, lower, upper, observed) < 0.95
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from gtex_models.common.progress import ProgressCallback
from gtex_models.data.cohort import Cohort
from gtex_models.data.patterns import mask_cohort
from gtex_models.data.provenance import DonorSet, require_unseen
from gtex_models.models.base import Imputer

LEVELS = np.round(np.arange(0.50, 0.995, 0.01), 2)  # the stored nominal levels, 0.50 ... 0.99
DEFAULT_LEVEL = 0.9
RATE_EDGES = (0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85)  # bins of a sample's missing fraction
CALIBRATION_RATES = (0.05, 0.95)  # calibration samples' missing rates are spread over this range
N_GENE_BINS = 4
MIN_CELL = 200  # fewest scores a Mondrian cell needs for its own quantiles...
MIN_CELL_SAMPLES = 15  # ... and fewest samples they come from
RATE_DEGREE = 2  # degree of the polynomial f(missing fraction) (log scale)
SHRINKAGE = 20.0  # pseudo-residuals pulling a group's gene scale towards the gene's pooled scale
MIN_DONORS = 2  # cross-fitting needs two folds of donors
ARRAY_PREFIX = "calibration."
ALL_GROUPS = "all"  # the pooled rows of coverage_table
PROBE_SHARE = 0.5  # share of a sample's observed values hidden again to measure how hard the sample is
PROBE_MIN_OBSERVED = 10  # a sample with fewer observed values is not probed (factor 1)
PROBE_PRIORS = np.geomspace(1.0, 1e5, 21)  # candidate κ: pseudo-values pulling the probe factor towards 1
PROBE_SEED = 29  # the probe's mask at impute time is fixed: the same upload gets the same intervals
CALIBRATION_SAMPLES = 200  # fewer held-out samples than this are masked more than once...
MAX_PASSES = 5  # ... up to this many times


class CalibrationError(ValueError):
    """Intervals cannot be calibrated (too few held-out donors or values) or applied (no calibration)."""


@dataclass(frozen=True)
class Calibration:
    """A fitted split-conformal calibration (see the module docstring); applied with :meth:`interval`.

    Attributes
    ----------
    groups : the groups (tissues) seen in calibration; others use the pooled row (the last).
    scale : (groups + 1) x genes, the residual scale ``s[group, gene]`` in model space; the last row is pooled.
    rate_coef : polynomial coefficients (highest degree first) of ``log f(missing fraction)``.
    gene_bin : per gene, its Mondrian gene bin.
    quantiles : (groups + 1) x gene bins x rate bins x ``LEVELS``, the conformal quantile of the score.
    probe_prior : ``κ`` of the probe factor; ``inf`` for none (a calibration stored before probes existed).
    info : what it was calibrated on (samples, scores, cells with their own quantiles, method) and ``donors``,
        the :class:`~gtex_models.data.provenance.DonorSet` record of its donors (:attr:`donors`).
    """

    groups: tuple[str, ...]
    scale: np.ndarray
    rate_coef: np.ndarray
    gene_bin: np.ndarray
    quantiles: np.ndarray
    probe_prior: float = math.inf
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def donors(self) -> DonorSet | None:
        """The donors it was fitted on; None for a calibration stored before they were recorded (unknown)."""
        return DonorSet.from_dict(self.info.get("donors"))

    # ------------------------------------------------------------------------------- applying
    def half_width(self, observed: np.ndarray, tissues: Sequence[str], level: float = DEFAULT_LEVEL,
                   factor: np.ndarray | None = None) -> np.ndarray:
        """Per-value half-width in model space (samples x genes); zero where ``observed``.

        ``factor`` is each sample's probe factor (:meth:`sample_factor`; 1 when not given).
        """
        q = self._level_quantiles(check_level(level))  # (groups + 1) x gene bins x rate bins
        observed = np.asarray(observed, dtype=bool)
        if observed.shape[1] != self.scale.shape[1]:
            raise CalibrationError(f"The calibration is for {self.scale.shape[1]} genes, the data has "
                                   f"{observed.shape[1]}.")
        rows = self.group_rows(tissues)
        missing = 1.0 - observed.mean(axis=1)
        rate_bin = np.digitize(missing, RATE_EDGES)
        spread = self.spread(rows, missing)
        if factor is not None:
            spread = spread * np.asarray(factor)[:, None]
        width = spread * q[rows[:, None], self.gene_bin[None, :], rate_bin[:, None]]
        width[observed] = 0.0
        return width.astype(np.float32)

    def interval(self, imputer: Imputer, cohort: Cohort, imputed: np.ndarray, level: float = DEFAULT_LEVEL
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds (model space) around ``imputed``, ``imputer``'s output for the masked ``cohort``
        (the imputer runs once more, for the probe: :meth:`sample_factor`)."""
        tissues = cohort.samples["tissue"].tolist()
        width = self.half_width(cohort.observed, tissues, level, self.sample_factor(imputer, cohort))
        width = width * value_unit(imputer, cohort)
        return imputed - width, imputed + width

    def sample_factor(self, imputer: Imputer, cohort: Cohort) -> np.ndarray:
        """Each sample's probe factor ``g`` (module docstring, step 3) for the masked ``cohort``."""
        if not math.isfinite(self.probe_prior):
            return np.ones(cohort.n_samples)
        residual, probe = probe_residuals(imputer, cohort, np.random.default_rng(PROBE_SEED))
        rows = self.group_rows(cohort.samples["tissue"].tolist())
        spread = self.spread(rows, 1.0 - (cohort.observed & ~probe).mean(axis=1))
        return probe_factor(*probe_sums(residual, probe, spread), self.probe_prior)

    def spread(self, rows: np.ndarray, missing: np.ndarray) -> np.ndarray:
        """``s[group, gene] · f(missing fraction)`` for samples in ``rows`` of ``scale`` (samples x genes)."""
        return self.scale[rows] * rate_factor(self.rate_coef, missing)[:, None]

    def group_rows(self, tissues: Sequence[str]) -> np.ndarray:
        """Row of ``scale``/``quantiles`` for each sample's group (the pooled row for unseen groups)."""
        index = {group: i for i, group in enumerate(self.groups)}
        return np.array([index.get(str(t), len(self.groups)) for t in tissues], dtype=np.int64)

    def _level_quantiles(self, level: float) -> np.ndarray:
        position = float(np.interp(level, LEVELS, np.arange(len(LEVELS))))
        low = int(math.floor(position))
        high = min(low + 1, len(LEVELS) - 1)
        weight = position - low
        return (1 - weight) * self.quantiles[..., low] + weight * self.quantiles[..., high]

    # ------------------------------------------------------------------------------- storage
    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays (keys prefixed with ``calibration.``) and JSON metadata, for a checkpoint."""
        arrays = {"scale": self.scale, "gene_bin": self.gene_bin.astype(np.int32), "quantiles": self.quantiles}
        header = {"groups": list(self.groups), "levels": LEVELS.tolist(), "rate_edges": list(RATE_EDGES),
                  "rate_coef": [float(c) for c in self.rate_coef],
                  "probe_prior": self.probe_prior if math.isfinite(self.probe_prior) else None, "info": self.info}
        return {ARRAY_PREFIX + key: value for key, value in arrays.items()}, header

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], header: Mapping[str, Any]) -> "Calibration":
        """Rebuild from :meth:`to_state`'s output."""
        if list(header["levels"]) != LEVELS.tolist() or list(header["rate_edges"]) != list(RATE_EDGES):
            raise CalibrationError("The stored calibration uses other levels or rate bins than this version; "
                                   "recalibrate it (python -m gtex_models calibrate).")
        return cls(tuple(header["groups"]), np.asarray(arrays[ARRAY_PREFIX + "scale"], dtype=np.float32),
                   np.asarray(header["rate_coef"], dtype=np.float64),
                   np.asarray(arrays[ARRAY_PREFIX + "gene_bin"], dtype=np.int64),
                   np.asarray(arrays[ARRAY_PREFIX + "quantiles"], dtype=np.float32),
                   math.inf if header.get("probe_prior") is None else float(header["probe_prior"]),
                   dict(header.get("info", {})))


def check_level(level: float) -> float:
    """``level`` as a float in [0.5, 0.99], or a :class:`CalibrationError` saying what is allowed."""
    level = float(level)
    if not LEVELS[0] <= level <= LEVELS[-1] + 1e-9:
        raise CalibrationError(f"The interval level must be between {LEVELS[0]:.2f} and {LEVELS[-1]:.2f} "
                               f"(e.g. 0.9 for 90 % intervals), got {level:g}.")
    return level


def probe_residuals(imputer: Imputer, cohort: Cohort, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Hide ``PROBE_SHARE`` of each observed value of the masked ``cohort`` again (samples with at least
    ``PROBE_MIN_OBSERVED`` of them) and impute: residuals on those values (0 elsewhere) and their mask."""
    observed = cohort.observed
    probe = observed & (observed.sum(axis=1) >= PROBE_MIN_OBSERVED)[:, None] & (rng.random(observed.shape) < PROBE_SHARE)
    shown = mask_cohort(cohort, observed & ~probe)
    residual = (np.asarray(cohort.x, dtype=np.float64) - imputer.impute(shown)) / value_unit(imputer, shown)
    return np.where(probe, residual, 0.0), probe


def value_unit(imputer: Imputer, masked: Cohort) -> np.ndarray | float:
    """The unit of ``imputer``'s errors on each value of the ``masked`` cohort: its conditional standard deviation
    where it has one (``conditional_sd``, e.g. ``gauss``), else 1 (every value alike)."""
    conditional_sd = getattr(imputer, "conditional_sd", None)
    if conditional_sd is None:
        return 1.0
    sd = np.asarray(conditional_sd(masked), dtype=np.float64)
    return np.where(sd > 0, sd, 1.0)  # observed values: zero width anyway


def probe_sums(residual: np.ndarray, probe: np.ndarray, spread: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: the sum of the squared standardised residuals ``(r / s)²`` of its probed values, and their number."""
    return np.where(probe, (residual / spread) ** 2, 0.0).sum(axis=1), probe.sum(axis=1)


def probe_factor(squares: np.ndarray, count: np.ndarray, prior: float) -> np.ndarray:
    """The probe factor ``g = sqrt((Σ (r / s)² + κ) / (n + κ))`` from :func:`probe_sums` (1 for ``κ = inf``: no probe)."""
    if math.isinf(prior):
        return np.ones(np.shape(squares))
    return np.sqrt((squares + prior) / (count + prior))


def rate_factor(coef: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """``f(missing fraction)``: how the residual scale grows with the share of a sample that is missing."""
    return np.sqrt(np.exp(np.polyval(coef, np.clip(missing, *CALIBRATION_RATES))))


# ----------------------------------------------------------------------------------- fitting
def calibration_passes(n_samples: int) -> int:
    """How many times :func:`calibrate` masks each of ``n_samples`` held-out samples: enough for about
    ``CALIBRATION_SAMPLES`` masked samples, at most ``MAX_PASSES``."""
    return int(min(MAX_PASSES, max(1, math.ceil(CALIBRATION_SAMPLES / max(n_samples, 1)))))


def calibrate(imputer: Imputer, cohort: Cohort, seed: int = 0, n_passes: int | None = None) -> Calibration:
    """Calibrate ``imputer``'s intervals on complete held-out donors (see the module docstring).

    Parameters
    ----------
    imputer : fitted on other donors.
    cohort : complete samples of donors the imputer did not train on (usually ``cohort.split("valid")``).
    seed : seed of the masks and of the donor folds.
    n_passes : how many times each sample is masked (at a new rate) and imputed; more gives more scores.
        None: :func:`calibration_passes` of the cohort's size.

    Raises
    ------
    CalibrationError : fewer than ``MIN_DONORS`` donors, missing values, or too few samples or hidden values
        (:func:`check_enough_scores`).
    """
    if np.isnan(np.asarray(cohort.x)).any():
        raise CalibrationError("Calibration needs complete held-out samples (values are hidden on purpose).")
    if cohort.n_donors < MIN_DONORS:
        raise CalibrationError(
            f"The cohort has {cohort.n_donors} held-out (validation) donor(s); calibrated intervals need at least "
            f"{MIN_DONORS} donors that the model never trained on. Use a cohort with more donors (or samples: a "
            "sample without a donor ID is its own donor).")
    rng = np.random.default_rng([seed, 13])
    n_passes = calibration_passes(cohort.n_samples) if n_passes is None else n_passes
    passes = [_masked_residuals(imputer, cohort, rng) for _ in range(n_passes)]
    residual, hidden, probe_residual, probe = (np.concatenate([p[i] for p in passes]) for i in range(4))
    samples = pd.concat([cohort.samples] * n_passes, ignore_index=True)
    sample = np.tile(np.arange(cohort.n_samples), n_passes)
    info = {"method": imputer.method, "scenario": "inductive", "passes": n_passes, "rates": list(CALIBRATION_RATES),
            "donors": DonorSet.of_cohort(cohort).to_dict()}
    return calibration_from_residuals(residual, hidden, Probe(probe_residual, probe), samples, sample, info, rng)


def calibrate_in_place(imputer: Imputer, masked: Cohort, complete: Cohort, rows: np.ndarray,
                       seed: int = 0) -> Calibration:
    """Calibrate an imputer fitted in place on ``masked`` (its missing values are its own pattern) with the
    hidden values of ``rows`` (donors that are not scored: the training donors of the pool), imputed in place.

    The scores come from the data's one missing rate, so coverage is calibrated at that rate; at other rates
    only the scale's rate factor (none here) would adapt: in place, the missing rate is the data's own.
    """
    rows = np.asarray(rows)
    part, truth = masked.subset_samples(rows), complete.subset_samples(rows)
    if part.n_donors < MIN_DONORS:
        raise CalibrationError(f"In place, calibration needs at least {MIN_DONORS} donors besides the scored ones; "
                               f"the pool has {part.n_donors}.")
    hidden = np.isnan(np.asarray(part.x)) & ~np.isnan(np.asarray(truth.x))
    imputed = imputer.impute(masked)[rows]
    residual = np.where(hidden, (np.asarray(truth.x, dtype=np.float64) - imputed) / value_unit(imputer, part), 0.0)
    rng = np.random.default_rng([seed, 13])
    info = {"method": imputer.method, "scenario": "inplace", "passes": 1,
            "rates": [float(hidden.mean())] * 2, "donors": DonorSet.of_cohort(part).to_dict()}
    return calibration_from_residuals(residual, hidden, Probe(*probe_residuals(imputer, part, rng)), part.samples,
                                      np.arange(part.n_samples), info, rng)


@dataclass(frozen=True)
class Probe:
    """The probe of the calibration samples (:func:`probe_residuals`): residuals and which values were probed."""

    residual: np.ndarray
    mask: np.ndarray


def calibration_from_residuals(residual: np.ndarray, hidden: np.ndarray, probe: Probe, samples: pd.DataFrame,
                               sample: np.ndarray, info: dict[str, Any], rng: np.random.Generator) -> Calibration:
    """Steps 2-5 of the module docstring: scale, rate factor, probe factor, cross-fitted scores, Mondrian quantiles.

    ``residual`` (0 where not ``hidden``) and ``hidden`` are samples x genes; ``samples`` gives each row's
    tissue and donor, ``sample`` the index of the calibration sample it comes from (rows repeat with passes).
    """
    check_enough_scores(int(hidden.sum()), len(np.unique(sample[hidden.any(axis=1)])), info.get("scenario"))
    tissues = samples["tissue"].astype(str).to_numpy()
    donors = samples["donor_id"].astype(str).to_numpy()
    groups = tuple(sorted(set(tissues.tolist())))
    group = np.searchsorted(np.array(groups, dtype=object), tissues)
    missing = hidden.mean(axis=1)

    scale = residual_scale(residual, hidden, group, len(groups))
    rate_coef = _fit_rate_factor(residual, hidden, scale[group], missing)
    factor = rate_factor(rate_coef, missing)[:, None]
    unique_donors = np.array(sorted(set(donors.tolist())), dtype=object)
    fold = (rng.permutation(len(unique_donors)) % 2)[np.searchsorted(unique_donors, donors)]
    probe_missing = 1.0 - (~hidden & ~probe.mask).mean(axis=1)
    spread = np.zeros(residual.shape, dtype=np.float64)
    squares, count = np.zeros(len(residual)), probe.mask.sum(axis=1)
    for f in (0, 1):  # cross-fitting: the scale of a score comes from the other donors
        rows = fold == f
        other = residual_scale(residual[~rows], hidden[~rows], group[~rows], len(groups))
        spread[rows] = other[group[rows]] * factor[rows]
        probe_spread = other[group[rows]] * rate_factor(rate_coef, probe_missing[rows])[:, None]
        squares[rows] = probe_sums(probe.residual[rows], probe.mask[rows], probe_spread)[0]
    prior = _fit_probe_prior(residual, hidden, spread, squares, count)
    scores = np.abs(residual) / (spread * probe_factor(squares, count, prior)[:, None])
    gene_bin = _gene_bins(scale[-1])
    quantiles, own = _mondrian_quantiles(scores, hidden, group, sample, gene_bin, np.digitize(missing, RATE_EDGES),
                                         len(groups))
    info = {**info, "n_donors": int(len(unique_donors)), "n_samples": int(len(set(sample.tolist()))),
            "n_scores": int(hidden.sum()), "n_cells": int(own.size), "n_own_cells": int(own.sum())}
    return Calibration(groups, scale.astype(np.float32), rate_coef, gene_bin, quantiles.astype(np.float32), prior, info)


def _masked_residuals(imputer: Imputer, cohort: Cohort, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hide a share of each sample's values (rates spread evenly over ``CALIBRATION_RATES``), impute them:
    residuals (0 where observed) and the hidden-mask; then the probe's residuals and mask (:func:`probe_residuals`)."""
    n = cohort.n_samples
    low, high = CALIBRATION_RATES
    rates = low + (high - low) * rng.permutation((np.arange(n) + rng.random(n)) / n)
    hidden = rng.random(cohort.x.shape) < rates[:, None]
    masked = mask_cohort(cohort, ~hidden)
    error = (np.asarray(cohort.x, dtype=np.float64) - imputer.impute(masked)) / value_unit(imputer, masked)
    residual = np.where(hidden, error, 0.0)
    return (residual, hidden, *probe_residuals(imputer, masked, rng))


def residual_scale(residual: np.ndarray, hidden: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """(groups + 1) x genes: shrunk root mean square residual of each gene in each group; the last row pooled.

    A group's values shrink towards ``a[group] · pooled[gene]``, where ``a`` (from all of the group's genes,
    so well estimated even from few samples) says how much harder the group is than average.
    """
    onehot = np.zeros((n_groups, len(group)))
    onehot[group, np.arange(len(group))] = 1.0
    squares = onehot @ (residual**2)
    counts = onehot @ hidden.astype(np.float64)
    total = counts.sum(axis=0)
    pooled = squares.sum(axis=0) / np.maximum(total, 1.0)
    fallback = np.median(pooled[total > 0]) if (total > 0).any() else 1.0
    pooled = np.maximum(np.where(total > 0, pooled, fallback), 1e-12)
    hardness = ((squares / pooled).sum(axis=1) + SHRINKAGE) / (counts.sum(axis=1) + SHRINKAGE)
    per_group = (squares + SHRINKAGE * hardness[:, None] * pooled) / (counts + SHRINKAGE)
    return np.sqrt(np.vstack([per_group, pooled]))


def _fit_rate_factor(residual: np.ndarray, hidden: np.ndarray, scale: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Coefficients of ``log f``: a weighted quadratic fit of each sample's log mean squared standardised residual."""
    n_hidden = hidden.sum(axis=1)
    keep = n_hidden > 0
    ratio = ((residual / scale) ** 2).sum(axis=1)[keep] / n_hidden[keep]
    if keep.sum() <= RATE_DEGREE + 1 or np.ptp(missing[keep]) < 0.2:  # one rate (in place): no rate effect to fit
        return np.zeros(RATE_DEGREE + 1)
    return np.polyfit(missing[keep], np.log(np.maximum(ratio, 1e-12)), RATE_DEGREE, w=np.sqrt(n_hidden[keep]))


def _fit_probe_prior(residual: np.ndarray, hidden: np.ndarray, spread: np.ndarray, squares: np.ndarray,
                     count: np.ndarray) -> float:
    """The ``κ`` of ``PROBE_PRIORS`` under which ``s · g`` best fits the hidden values' residuals (Gaussian
    likelihood, so ``g`` tracks each sample's real error scale); ``inf`` (no probe factor) when nothing was probed."""
    if not count.any():
        return math.inf
    hidden_squares = np.where(hidden, (residual / spread) ** 2, 0.0).sum(axis=1)
    n_hidden = hidden.sum(axis=1)
    losses = []
    for prior in PROBE_PRIORS:
        variance = probe_factor(squares, count, prior) ** 2
        losses.append(float(np.sum(n_hidden * np.log(variance) + hidden_squares / variance)))
    return float(PROBE_PRIORS[int(np.argmin(losses))])


def check_enough_scores(n_scores: int, n_samples: int, scenario: str | None) -> None:
    """Raise :class:`CalibrationError` naming the real shortfall, calibration samples or hidden values (scores),
    and a fix, when there are fewer than ``MIN_CELL_SAMPLES`` samples or ``MIN_CELL`` scores (any level)."""
    if n_samples >= MIN_CELL_SAMPLES and n_scores >= MIN_CELL:
        return
    where = ("the training donors of the in-place pool" if scenario == "inplace"
             else "the validation donors' samples" if scenario == "inductive" else "held-out samples")
    if n_samples < MIN_CELL_SAMPLES:
        enough = f"; their {n_scores:,} hidden values would be enough" if n_scores >= MIN_CELL else ""
        shortfall = (f"the hidden values of at least {MIN_CELL_SAMPLES} calibration samples, and there are only "
                     f"{n_samples} ({where}){enough}")
    else:
        shortfall = (f"at least {MIN_CELL} hidden values to score, and the {n_samples} calibration samples ({where}) "
                     f"give only {n_scores:,}")
    fix = ("Use a cohort with more donors (in place, intervals are calibrated on the pool's training donors)."
           if scenario == "inplace" else
           "Give the validation split more donors when importing the cohort (CLI: import --split, e.g. "
           "0.5,0.3,0.2; the default gives it 15 % of the donors), or use a cohort with more samples.")
    raise CalibrationError(f"Calibrated intervals need {shortfall}. {fix}")


def _gene_bins(pooled_scale: np.ndarray) -> np.ndarray:
    edges = np.quantile(pooled_scale, np.linspace(0, 1, N_GENE_BINS + 1)[1:-1])
    return np.digitize(pooled_scale, edges).astype(np.int64)


def conformal_quantiles(scores: np.ndarray, cell: np.ndarray, n_cells: int,
                        sample: np.ndarray | None = None) -> np.ndarray:
    """Per cell, the ``ceil((n + 1) · level)``-th smallest score for every level of ``LEVELS``.

    Returns cells x levels, NaN where a cell has fewer than ``MIN_CELL`` scores (or, given each score's
    ``sample``, fewer than ``MIN_CELL_SAMPLES`` samples) or too few for the level.
    """
    order = np.lexsort((scores, cell))
    scores, cell = scores[order], cell[order]
    counts = np.bincount(cell, minlength=n_cells)
    enough = counts >= MIN_CELL
    if sample is not None:
        pairs = np.unique(cell * (int(sample.max()) + 1) + sample[order])
        enough &= np.bincount(pairs // (int(sample.max()) + 1), minlength=n_cells) >= MIN_CELL_SAMPLES
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.ceil((counts[:, None] + 1) * LEVELS[None, :]).astype(np.int64)  # 1-based
    usable = enough[:, None] & (rank <= counts[:, None])
    index = np.clip(starts[:, None] + rank - 1, 0, max(len(scores) - 1, 0))
    values = scores[index] if len(scores) else np.zeros(index.shape)
    return np.where(usable, values, np.nan)


def _mondrian_quantiles(scores: np.ndarray, hidden: np.ndarray, group: np.ndarray, sample: np.ndarray,
                        gene_bin: np.ndarray, rate_bin: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles of every (group, gene bin, rate bin) cell, with the fallback to coarser cells resolved;
    and which cells have their own."""
    n_rates, n_bins = len(RATE_EDGES) + 1, N_GENE_BINS
    rows, cols = np.nonzero(hidden)
    values, owner = scores[rows, cols], sample[rows]
    g, b, r = group[rows], gene_bin[cols], rate_bin[rows]

    def quantiles(cell: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return conformal_quantiles(values, cell, int(np.prod(shape)), owner).reshape(*shape, len(LEVELS))

    overall = quantiles(np.zeros(len(values), dtype=np.int64), (1,))[0]
    if np.isnan(overall).any():
        check_enough_scores(len(values), len(np.unique(owner)), None)
    by_rate = quantiles(r, (n_rates,))
    by_rate = np.where(np.isnan(by_rate), overall, by_rate)
    by_bin = quantiles(b * n_rates + r, (n_bins, n_rates))
    by_bin = np.where(np.isnan(by_bin), by_rate[None], by_bin)
    by_bin_all_rates = quantiles(b, (n_bins,))
    rate_shape = by_bin / np.where(np.isnan(by_bin_all_rates), overall, by_bin_all_rates)[:, None]
    by_group = quantiles(g * n_bins + b, (n_groups, n_bins))[:, :, None] * rate_shape[None]  # group x rate effect
    by_cell = quantiles((g * n_bins + b) * n_rates + r, (n_groups, n_bins, n_rates))
    own = ~np.isnan(by_cell[..., 0])
    by_cell = np.where(np.isnan(by_cell), by_group, by_cell)
    by_cell = np.where(np.isnan(by_cell), by_bin[None], by_cell)
    return np.concatenate([by_cell, by_bin[None]]), own


def calibrate_held_out(imputer: Imputer, cohort: Cohort, groups: Sequence[str] | None = None, seed: int = 0,
                       n_passes: int | None = None) -> Calibration:
    """:func:`calibrate` on the complete cohort's validation donors (of ``groups`` only, when given)."""
    valid = cohort.split("valid") if (cohort.samples["split"] == "valid").any() else None
    if valid is not None and groups is not None:
        valid = valid.subset_samples(valid.samples["tissue"].isin(list(groups)).to_numpy())
    if valid is None or valid.n_samples == 0:
        raise CalibrationError("The cohort has no validation donors to calibrate intervals on (the split gives "
                               "them 15 % of the donors; a cohort needs at least 7 donors to have 2 of them).")
    return calibrate(imputer, valid, seed, n_passes)


# ----------------------------------------------------------------------------------- scoring
def check_unseen(calibration: Calibration, cohort: Cohort, what: str = "the scored donors") -> str | None:
    """Refuse to score ``calibration``'s intervals on donors of ``cohort`` it was fitted on
    (:func:`~gtex_models.data.provenance.require_unseen`); the note for a calibration without a donor record."""
    return require_unseen(calibration.donors, cohort, "The interval calibration", what,
                          "recalibrate it (`python -m gtex_models calibrate --checkpoint CKPT --cohort DIR` uses the "
                          "cohort's validation donors)")


def coverage(truth: np.ndarray, lower: np.ndarray, upper: np.ndarray, observed: np.ndarray) -> float:
    """Share of the hidden (not ``observed``) values inside their interval."""
    hidden = ~np.asarray(observed, dtype=bool)
    inside = (truth >= lower) & (truth <= upper)
    return float(inside[hidden].mean()) if hidden.any() else float("nan")


def interval_scores(truth: np.ndarray, lower: np.ndarray, upper: np.ndarray, observed: np.ndarray,
                    tissues: Sequence[str], log_std: np.ndarray) -> dict[str, Any]:
    """Coverage (pooled, per group, the lowest group's) and median width on the log2 scale of hidden values.

    ``log_std`` is the transform's per-gene SD (model space -> log2 units).
    """
    hidden = ~np.asarray(observed, dtype=bool)
    inside = (truth >= lower) & (truth <= upper) & hidden
    names, group = np.unique(np.asarray(tissues, dtype=str), return_inverse=True)
    n_hidden = np.bincount(group, hidden.sum(axis=1), minlength=len(names))
    n_inside = np.bincount(group, inside.sum(axis=1), minlength=len(names))
    per_group = {str(name): float(n_inside[i] / n_hidden[i]) for i, name in enumerate(names) if n_hidden[i] > 0}
    width = (upper - lower)[hidden] * np.broadcast_to(np.asarray(log_std), hidden.shape)[hidden]
    return {"coverage": float(n_inside.sum() / n_hidden.sum()) if hidden.any() else float("nan"),
            "coverage_min_group": min(per_group.values()) if per_group else float("nan"),
            "width_median": float(np.median(width)) if hidden.any() else float("nan"),
            "coverage_per_group": per_group}


def coverage_table(imputer: Imputer, calibration: Calibration, cohort: Cohort, rates: Sequence[float],
                   levels: Sequence[float], seed: int = 0, oracle: Imputer | None = None,
                   progress: ProgressCallback | None = None) -> pd.DataFrame:
    """Empirical coverage of complete ``cohort`` (test donors) at each missing rate, level and group
    (:class:`~gtex_models.data.provenance.DonorLeakError` if the calibration was fitted on any of them).

    Columns ``missing_rate``, ``level``, ``group`` (``"all"`` for the pooled row), ``coverage``,
    ``width_median`` (log2 units; pooled rows only), ``n_hidden``; with an ``oracle`` that knows the exact
    conditional moments (a simulated cohort), ``oracle_width_median``: the median width of its exact
    Gaussian interval at the level, the narrowest interval with the right coverage for Gaussian errors.
    ``progress(fraction, message)`` is told of each missing rate.
    """
    check_unseen(calibration, cohort, "the test donors")
    records = []
    tissues = cohort.samples["tissue"].astype(str).to_numpy()
    rng = np.random.default_rng([seed, 17])
    moments = getattr(oracle, "conditional_moments", None)
    for i, rate in enumerate(rates):
        if progress is not None:
            progress(i / len(rates), f"{rate:.0%} missing")
        observed = rng.random(cohort.x.shape) >= rate
        masked = mask_cohort(cohort, observed)
        imputed = imputer.impute(masked)
        oracle_sd = None if moments is None else np.sqrt(np.maximum(moments(masked)[1], 0.0))
        n_hidden = pd.Series((~observed).sum(axis=1)).groupby(tissues).sum()
        factor = calibration.sample_factor(imputer, masked)  # one probe per mask, for every level
        unit = value_unit(imputer, masked)
        for level in levels:
            width = calibration.half_width(observed, tissues, level, factor) * unit
            lower, upper = imputed - width, imputed + width
            scores = interval_scores(cohort.x, lower, upper, observed, tissues, cohort.transform.std)
            pooled = {"missing_rate": rate, "level": level, "group": ALL_GROUPS, "coverage": scores["coverage"],
                      "width_median": scores["width_median"], "n_hidden": int((~observed).sum())}
            if oracle_sd is not None:
                pooled["oracle_width_median"] = gaussian_width_median(oracle_sd, observed, level, cohort.transform.std)
            records.append(pooled)
            records += [{"missing_rate": rate, "level": level, "group": group, "coverage": value,
                         "width_median": float("nan"), "n_hidden": int(n_hidden[group])}
                        for group, value in scores["coverage_per_group"].items()]
    return pd.DataFrame.from_records(records)


def gaussian_width_median(sd: np.ndarray, observed: np.ndarray, level: float, log_std: np.ndarray) -> float:
    """Median width (log2 units) over the hidden values of the Gaussian interval ``mean ± z · sd`` (model space)."""
    from scipy.stats import norm

    hidden = ~np.asarray(observed, dtype=bool)
    width = 2 * norm.ppf(0.5 + check_level(level) / 2) * sd * np.asarray(log_std)[None, :]
    return float(np.median(width[hidden])) if hidden.any() else float("nan")
