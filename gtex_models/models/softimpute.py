"""``softimpute``: nuclear-norm matrix completion (Mazumder, Hastie & Tibshirani 2010), at GTEx width.

Each sample's deviation from its expectation, ``r = x - m(sample)`` (shrunk group means and covariates,
:class:`~gtex_models.models.centring.Centring`), is a row of a low-rank matrix ``Z``, the solution of

    min_Z ½ ‖P_Ω(R - Z)‖²_F + λ ‖Z‖_*        (Ω: the observed values; ‖Z‖_*: the sum of its singular values)

which is soft-thresholded: ``Z = U S_λ(D) Vᵀ`` with ``S_λ(d) = max(d - λ, 0)``.

- Complete training data (inductive): ``U D Vᵀ`` is the SVD of the residuals (truncated at the rank cap,
  randomised at GTEx width), so one SVD gives the whole λ path.
- Training data with gaps (in place): softImpute-ALS (Hastie, Mazumder, Lee & Zadeh 2015). ``Z = A Bᵀ``
  with the penalty ``λ/2 (‖A‖² + ‖B‖²)`` and a rank cap; the gaps are filled with the current fit,
  ``X* = P_Ω(R) + P_Ω⊥(A Bᵀ)``, then the ridge updates ``B ← X*ᵀ A (AᵀA + λI)⁻¹`` and
  ``A ← X* B (BᵀB + λI)⁻¹`` run until ``A Bᵀ`` stops moving; a last soft-thresholded SVD of ``X*`` on the
  span of ``B`` gives ``U S_λ(D) Vᵀ``. λ decreases along a path, each fit warm-started from the previous one.

The model keeps ``V`` (genes x rank), ``S_λ(D)`` and λ. A sample with observed genes ``O``, new or not,
is completed by folding it in with ``B = V S_λ(D)^½``: ``u = (B_Oᵀ B_O + λ I)⁻¹ B_Oᵀ r_O``,
``x̂ = m + B u``, the ALS update of one new row (samples that share ``O``, a gene panel, share the
solve). For a training row it is, at convergence, that row of ``Z``.

λ is set as a share (``penalty``) of ``λ_max``, the largest singular value of ``P_Ω(R)`` (from it on,
``Z = 0``). Settings left ``None`` are chosen on the validation donors, values hidden at rates spread
over 0.1-0.9 (:mod:`~gtex_models.models.validation_probe`): the centring and λ along each centring's
SVD path; then, when the training data have gaps, λ again along the ALS path.

Example
-------
>>> from gtex_models.data.simulate import simulate_cohort
>>> cohort = simulate_cohort(n_donors=30, n_genes=400)
>>> imputer = SoftImputeImputer().fit(cohort.split("train"), cohort.split("valid"))
>>> imputer.impute(cohort.split("test")).shape[1]
400
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

import numpy as np
from annotated_types import Interval
from threadpoolctl import ThreadpoolController

from gtex_models.common.progress import ProgressCallback
from gtex_models.data.cohort import Cohort
from gtex_models.models.base import Imputer, NonNegative, PositiveInt
from gtex_models.models.centring import Centring, centring_candidates
from gtex_models.models.gauss import observed_sets, truncated_svd
from gtex_models.models.validation_probe import ValidationProbe, validation_probe

PenaltyShare = Annotated[float, Interval(gt=0.0, le=1.0)]
PENALTIES = tuple(float(p) for p in np.geomspace(0.9, 1e-3, 20))  # the λ path, as shares of λ_max
DEFAULT_PENALTY = 0.05  # λ / λ_max without validation donors (validation chose 0.009-0.07 on the cohorts measured)
PATH_PATIENCE = 3  # the ALS path stops after this many λ without a better validation score
TOLERANCE = 1e-5  # ALS stops when ‖ΔZ‖² / ‖Z‖² falls below this (softImpute's default threshold)
FOLD_IN_CHUNK = 256  # samples folded in at once (bounds the memory of their Gram matrices)


@lru_cache(maxsize=1)
def _blas() -> ThreadpoolController:
    """The BLAS thread pools, found once (looking them up costs ~10 ms)."""
    return ThreadpoolController()


def soft_threshold(values: np.ndarray, lam: float) -> np.ndarray:
    """``S_λ(d) = max(d - λ, 0)``."""
    return np.maximum(values - lam, 0.0)


@dataclass(frozen=True)
class Completion:
    """``Z = U diag(values) Vᵀ`` at penalty ``lam``: ``basis`` is ``V`` (genes x k, orthonormal columns)."""

    basis: np.ndarray
    values: np.ndarray
    lam: float

    def compact(self) -> "Completion":
        """Without the components thresholded to 0."""
        kept = self.values > 0
        return Completion(np.ascontiguousarray(self.basis[:, kept], dtype=np.float32),
                          self.values[kept].astype(np.float32), float(self.lam))

    def fold_in(self, residual: np.ndarray) -> np.ndarray:
        """The completed residuals of samples (NaN: not observed), each from its own observed values."""
        out = np.zeros(residual.shape, dtype=np.float32)
        if not (self.values > 0).any():
            return out
        for start in range(0, len(residual), FOLD_IN_CHUNK):
            rows = slice(start, start + FOLD_IN_CHUNK)
            out[rows] = FoldIn.prepare(residual[rows], self.basis).fitted(self.values, self.lam)
        return out


@dataclass(frozen=True)
class FoldIn:
    """Samples ready to be folded in on an orthonormal basis ``V``: the λ-free part of their solves, computed once.

    ``grams``: ``V_Oᵀ V_O`` for each distinct observed set ``O`` (sets x k x k); ``group``: each sample's
    set; ``projections``: ``V_Oᵀ r_O`` per sample. Along a λ path (same ``V``) only the k x k solves are
    repeated, in one batched call.
    """

    basis: np.ndarray
    grams: np.ndarray
    group: np.ndarray
    projections: np.ndarray

    @classmethod
    def prepare(cls, residual: np.ndarray, basis: np.ndarray) -> "FoldIn":
        observed = ~np.isnan(residual)
        basis = np.asarray(basis, dtype=np.float32)
        projections = (np.where(observed, residual, 0.0).astype(np.float32) @ basis).astype(np.float64)
        full = (basis.T @ basis).astype(np.float64)
        group = np.zeros(len(residual), dtype=np.intp)
        grams = []
        with _blas().limit(limits=1):  # one product per observed set: threads cost more than they give (10x when busy)
            for rows, genes in observed_sets(observed):
                if (~genes).sum() < genes.sum():  # subtract the missing genes' share: fewer rows to multiply
                    missing = basis[~genes]
                    grams.append(full - (missing.T @ missing).astype(np.float64))
                else:
                    kept = basis[genes]
                    grams.append((kept.T @ kept).astype(np.float64))
                group[rows] = len(grams) - 1
        k = basis.shape[1]
        return cls(basis, np.stack(grams) if grams else np.zeros((0, k, k)), group, projections)

    def coefficients(self, values: np.ndarray, lam: float) -> np.ndarray:
        """``w = σ u`` with ``u = (σ G σ + λI)⁻¹ σ c``, ``σ = values^½`` (so ``B u = V w``): samples x k."""
        active = np.flatnonzero(np.asarray(values) > 0)  # thresholded components add nothing: left out
        sigma = np.sqrt(np.asarray(values, dtype=np.float64)[active])
        grams = self.grams[:, active[:, None], active[None, :]]
        systems = sigma[None, :, None] * grams * sigma[None, None, :] + lam * np.eye(len(active))
        rhs = (self.projections[:, active] * sigma)[:, :, None]
        out = np.zeros_like(self.projections)
        with _blas().limit(limits=1):  # many k x k solves: threaded LAPACK only adds overhead (100x when busy)
            out[:, active] = sigma * np.linalg.solve(systems[self.group], rhs)[:, :, 0]
        return out

    def fitted(self, values: np.ndarray, lam: float) -> np.ndarray:
        """The completed residuals ``V w`` (samples x genes, float32)."""
        return self.coefficients(values, lam).astype(np.float32) @ self.basis.T


@dataclass(frozen=True)
class AlsFit:
    """A softImpute-ALS solution: ``Z = row_basis diag(values) Vᵀ`` (``completion``), after ``iterations``."""

    row_basis: np.ndarray
    completion: Completion
    iterations: int

    @property
    def rows(self) -> np.ndarray:
        """``Z`` itself (samples x genes): the in-place completion of the training residuals."""
        return (self.row_basis * self.completion.values) @ self.completion.basis.T

    def warm_start(self) -> tuple[np.ndarray, np.ndarray]:
        """``(A, B)`` to start the next, smaller λ from; thresholded components restart from a small value."""
        values = self.completion.values
        floor = float(values[values > 0].min()) if (values > 0).any() else self.completion.lam
        a = self.row_basis * np.sqrt(np.maximum(values, floor * 1e-2))
        return a.astype(np.float32), (self.completion.basis * np.sqrt(values)).astype(np.float32)


def svd_start(u: np.ndarray, d: np.ndarray, vt: np.ndarray, lam: float) -> AlsFit:
    """The soft-thresholded SVD of the residuals with gaps as 0: the first ALS fit's start."""
    return AlsFit(u.astype(np.float32), Completion(vt.T.astype(np.float32), soft_threshold(d, lam), lam), 0)


def soft_impute_als(residual: np.ndarray, lam: float, start: tuple[np.ndarray, np.ndarray],
                    max_iterations: int, tolerance: float = TOLERANCE) -> AlsFit:
    """softImpute-ALS at one λ on ``residual`` (samples x genes, NaN missing) from ``start = (A, B)``.

    Memory: two samples x genes float32 matrices (the residuals and the filled fit) and the observed mask.
    """
    observed = ~np.isnan(residual)
    a, b = (np.asarray(m, dtype=np.float32) for m in start)
    ridge = lam * np.eye(a.shape[1])
    buffer = np.empty(residual.shape, dtype=np.float32)

    def filled(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # X* = P_Ω(R) + P_Ω⊥(A Bᵀ), in the buffer
        np.matmul(a, b.T, out=buffer)
        np.copyto(buffer, residual, where=observed)
        return buffer

    iteration = 0
    for iteration in range(1, max_iterations + 1):
        old = (a, b)
        b = _ridge_update(filled(a, b).T @ a, a, ridge)
        a = _ridge_update(filled(a, b) @ b, b, ridge)
        if _relative_change(old, (a, b)) < tolerance:
            break
    basis, _ = np.linalg.qr(b)
    u, d, rt = np.linalg.svd(filled(a, b) @ basis, full_matrices=False)
    completion = Completion((basis @ rt.T).astype(np.float32), soft_threshold(d, lam).astype(np.float32), lam)
    return AlsFit(u.astype(np.float32), completion, iteration)


def _ridge_update(cross: np.ndarray, other: np.ndarray, ridge: np.ndarray) -> np.ndarray:
    """``cross (otherᵀ other + λI)⁻¹``: the ridge regression of the filled matrix on the other factor."""
    gram = other.T.astype(np.float64) @ other + ridge
    return np.linalg.solve(gram, cross.T.astype(np.float64)).T.astype(np.float32)


def _relative_change(old: tuple[np.ndarray, np.ndarray], new: tuple[np.ndarray, np.ndarray]) -> float:
    """``‖A₁B₁ᵀ - A₀B₀ᵀ‖² / ‖A₀B₀ᵀ‖²`` from k x k products only."""
    (a0, b0), (a1, b1) = ((a.astype(np.float64), b.astype(np.float64)) for a, b in (old, new))
    before = np.trace((a0.T @ a0) @ (b0.T @ b0))
    after = np.trace((a1.T @ a1) @ (b1.T @ b1))
    cross = np.trace((a0.T @ a1) @ (b1.T @ b0))
    return float(max(before + after - 2 * cross, 0.0) / max(before, 1e-30))


class SoftImputeImputer(Imputer):
    """Nuclear-norm matrix completion with fold-in for new samples (see the module docstring).

    Parameters
    ----------
    penalty : λ as a share of ``λ_max`` (None: chosen on validation along the path).
    group_shrinkage : ``τ``, pseudo-samples pulling group means to the overall mean (None: chosen).
    covariates : use sex and age as regressors where the cohort varies in them (None: chosen).
    max_rank : the rank cap of the SVD and of the ALS factors.
    max_iterations : ALS iterations per λ when the training data have gaps.
    seed : the validation masks and the randomised SVD.
    """

    method = "softimpute"

    def __init__(self, penalty: PenaltyShare | None = None, group_shrinkage: NonNegative | None = None,
                 covariates: bool | None = None, max_rank: PositiveInt = 100, max_iterations: PositiveInt = 100,
                 seed: int = 0) -> None:
        if penalty is not None and not 0.0 < penalty <= 1.0:
            raise ValueError(f"penalty (λ as a share of λ_max) must be in (0, 1], got {penalty}")
        self.penalty = penalty
        self.group_shrinkage = group_shrinkage
        self.covariates = covariates
        self.max_rank = max_rank
        self.max_iterations = max_iterations
        self.seed = seed
        self._centring: Centring | None = None
        self._completion: Completion | None = None
        self.selection: list[dict[str, Any]] = []  # the validation scores of the settings tried

    # ------------------------------------------------------------------------------- fitting
    def fit(self, cohort: Cohort, valid: Cohort | None = None, progress: ProgressCallback | None = None
            ) -> "SoftImputeImputer":
        x = np.asarray(cohort.x, dtype=np.float32)
        if x.shape[0] < 2:
            raise ValueError("softImpute needs at least two training samples.")
        report = progress or (lambda fraction, message: None)
        probe = validation_probe(valid, self.seed)
        penalties = [self.penalty] if self.penalty is not None else (list(PENALTIES) if probe else [DEFAULT_PENALTY])
        rank = max(1, min(self.max_rank, *x.shape))
        self.selection = []
        best = None  # (score, centring, penalty, svd)
        centrings = centring_candidates(x, cohort.samples, self.group_shrinkage, self.covariates, probe is not None)
        for i, centring in enumerate(centrings):
            residual = x - centring.expected(cohort.samples)
            svd = truncated_svd(np.nan_to_num(residual, nan=0.0), rank, self.seed)
            score, penalty = self._svd_path(probe, centring, svd, penalties)
            if best is None or score < best[0]:
                best = (score, centring, penalty, svd)
            report(0.4 * (i + 1) / len(centrings), "choosing the centring and λ on the validation donors")
        _, centring, penalty, (u, d, vt) = best
        lam_max = float(d[0]) if len(d) and d[0] > 0 else 1.0  # 1.0: nothing to complete, any λ gives Z = 0
        if np.isnan(x).any():
            residual = x - centring.expected(cohort.samples)
            completion = self._als_path(residual, probe, centring, svd_start(u, d, vt, penalties[0] * lam_max),
                                        penalties, lam_max,
                                        lambda f: report(0.4 + 0.6 * f, "softImpute-ALS on the training data's gaps"))
        else:
            completion = Completion(vt.T, soft_threshold(d, penalty * lam_max), penalty * lam_max)
        self._centring, self._completion = centring, completion.compact()
        self.penalty_ = float(completion.lam / lam_max)
        self.rank_ = int(len(self._completion.values))
        report(1.0, f"softimpute fitted: λ = {self.penalty_:.3g} λ_max, rank {self.rank_}, group shrinkage "
                    f"{centring.settings()['group_shrinkage']}, covariates {list(centring.covariates) or 'none'}")
        return self

    def _svd_path(self, probe: ValidationProbe | None, centring: Centring,
                  svd: tuple[np.ndarray, np.ndarray, np.ndarray], penalties: list[float]) -> tuple[float, float]:
        """The best (validation MSE, penalty) along the soft-thresholded SVD path of one centring."""
        if probe is None:
            return 0.0, penalties[0]
        _, d, vt = svd
        expected = centring.expected(probe.cohort.samples)
        fold = FoldIn.prepare(probe.masked - expected, vt.T)
        best = (np.inf, penalties[0])
        for penalty in penalties:
            lam = penalty * (float(d[0]) or 1.0)
            values = soft_threshold(d, lam)
            score = probe.score(expected + fold.fitted(values, lam))
            self.selection.append({**centring.settings(), "penalty": penalty, "rank": int((values > 0).sum()),
                                   "valid_mse": score, "stage": "svd"})
            best = min(best, (score, penalty))
        return best

    def _als_path(self, residual: np.ndarray, probe: ValidationProbe | None, centring: Centring, start: AlsFit,
                  penalties: list[float], lam_max: float, progress: Any) -> Completion:
        """softImpute-ALS along decreasing λ (warm starts); the completion with the best validation score."""
        expected = None if probe is None else centring.expected(probe.cohort.samples)
        best, since_best, fit = (np.inf, None), 0, start
        for i, penalty in enumerate(penalties):
            fit = soft_impute_als(residual, penalty * lam_max, fit.warm_start(), self.max_iterations)
            progress((i + 1) / len(penalties))
            if probe is None:
                return fit.completion
            score = probe.score(expected + fit.completion.fold_in(probe.masked - expected))
            self.selection.append({**centring.settings(), "penalty": penalty, "rank": int((fit.completion.values > 0)
                                   .sum()), "valid_mse": score, "stage": "als", "iterations": fit.iterations})
            if score < best[0]:
                best, since_best = (score, fit.completion), 0
            else:
                since_best += 1
                if since_best >= PATH_PATIENCE:
                    break
        return best[1]

    # ------------------------------------------------------------------------------- imputing
    @property
    def fitted(self) -> tuple[Centring, Completion]:
        if self._centring is None or self._completion is None:
            raise RuntimeError("Fit the softimpute imputer first.")
        return self._centring, self._completion

    def _predict(self, cohort: Cohort) -> np.ndarray:
        centring, completion = self.fitted
        expected = centring.expected(cohort.samples)
        return expected + completion.fold_in(np.asarray(cohort.x, dtype=np.float32) - expected)

    # ------------------------------------------------------------------------------- state
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        centring, completion = self.fitted
        arrays, config = centring.to_state()
        params = {"penalty": self.penalty, "group_shrinkage": self.group_shrinkage, "covariates": self.covariates,
                  "max_rank": self.max_rank, "max_iterations": self.max_iterations, "seed": self.seed}
        return ({**arrays, "basis": completion.basis, "values": completion.values},
                {**config, "params": params, "chosen": {"penalty": self.penalty_, "lam": completion.lam,
                                                        "rank": self.rank_}, "selection": self.selection})

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> "SoftImputeImputer":
        imputer = cls(**config["params"])
        imputer._centring = Centring.from_state(arrays, config)
        values = np.asarray(arrays["values"], np.float32).ravel()
        basis = np.asarray(arrays["basis"], np.float32).reshape(imputer._centring.means.shape[1], len(values))
        imputer._completion = Completion(basis, values, float(config["chosen"]["lam"]))
        imputer.penalty_, imputer.rank_ = float(config["chosen"]["penalty"]), int(config["chosen"]["rank"])
        imputer.selection = list(config.get("selection", []))
        return imputer
