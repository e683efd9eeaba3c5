"""Missingness patterns: which of a sample's values are missing, as one concept for training and evaluation.

Four patterns (mask convention of :mod:`gtex_models.data.masks`: True where a value is **observed**):

``mcar``
    Missing completely at random: each value is hidden with probability ``rate`` (the paper's protocol).
``panel``
    A gene panel: the same named genes (``panel``, column indices) are observed in every sample, every
    other gene is missing. The missing share is ``1 - k / n_genes``.
``mnar``
    Missing not at random, a detection limit: low values are more likely missing. On the log scale
    (``log2(TPM + 1)``, or the cohort's own log values), standardised over the whole matrix to ``z``,
    ``P(missing) = 1 / (1 + exp(slope * (z - c)))``; ``c`` is solved (bisection) so that the expected
    missing share is ``rate``. ``slope`` is per SD of log expression: 0 would be MCAR, large a hard limit.
    Lowly expressed genes lose most of their values, as in real assays.
``block``
    Whole blocks: the genes, in the cohort's order, are cut into consecutive blocks of ``block_size``
    genes and each sample loses a random ``rate`` share of its blocks (a failed probe set, a missing
    sub-panel or a region not covered). A named gene set missing everywhere (a pathway) is the
    ``panel`` pattern with every other gene as the panel.

R² of the hidden values has the same reference under every pattern: the gene's mean over the training
donors of the sample's group (:mod:`gtex_models.analysis.evaluation`), which no mask moves (a panel's
genes have no observed value, and under ``mnar`` the observed ones are biased upwards by construction).

Example
-------
>>> import numpy as np
>>> from gtex_models.data.simulate import simulate_cohort
>>> cohort = simulate_cohort(n_donors=10, n_genes=400)
>>> observed = Pattern("mnar", rate=0.3).observed(cohort, seed=0)
>>> round(float(1 - observed.mean()), 1)
0.3
>>> Pattern("panel", panel=(0, 5, 9)).observed(cohort, seed=0).sum(axis=1)[:3]
array([3, 3, 3])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from gtex_models.common.choices import PATTERNS
from gtex_models.data.cohort import Cohort
from gtex_models.data.masks import mcar_mask, pseudo_mask

if TYPE_CHECKING:
    import torch
TRAINABLE_PATTERNS = ("mcar", "panel", "block")
"""Patterns a deep model's training masks can follow (MNAR needs the raw scale, which training batches lack)."""
DEFAULT_MNAR_SLOPE = 2.0
DEFAULT_BLOCK_SIZE = 50


def mask_cohort(cohort: Cohort, observed: np.ndarray) -> Cohort:
    """A copy of ``cohort`` whose entries outside ``observed`` are NaN (missing)."""
    return Cohort(np.where(observed, cohort.x, np.nan).astype(np.float32), cohort.genes,
                  cohort.samples, cohort.transform, cohort.meta)


@dataclass(frozen=True)
class Pattern:
    """A missingness pattern and its settings.

    Attributes
    ----------
    name : one of :data:`PATTERNS`.
    rate : share of values missing (``mcar``, ``mnar``, ``block``; ignored by ``panel``).
    panel : column indices of the panel genes (``panel`` only; see :func:`gtex_models.analysis.panels.match_panel`).
    slope : ``mnar``: logistic slope per SD of log expression.
    block_size : ``block``: genes per block.
    """

    name: str = "mcar"
    rate: float = 0.5
    panel: tuple[int, ...] = ()
    slope: float = DEFAULT_MNAR_SLOPE
    block_size: int = DEFAULT_BLOCK_SIZE

    def __post_init__(self) -> None:
        if self.name not in PATTERNS:
            raise ValueError(f"Unknown missingness pattern {self.name!r}; use one of {', '.join(PATTERNS)}.")
        if not 0.0 <= float(self.rate) <= 1.0:
            raise ValueError(f"The missing rate must be between 0 and 1, got {self.rate}.")
        object.__setattr__(self, "panel", tuple(sorted({int(j) for j in self.panel})))
        if self.name == "panel" and not self.panel:
            raise ValueError("The panel pattern needs at least one panel gene (an empty panel observes nothing).")
        if self.name == "mnar" and not float(self.slope) > 0:
            raise ValueError(f"The MNAR slope must be positive, got {self.slope}.")
        if self.name == "block" and int(self.block_size) < 1:
            raise ValueError(f"The block size must be at least 1 gene, got {self.block_size}.")

    def missing_share(self, n_genes: int) -> float:
        """The expected share of missing values in a cohort of ``n_genes`` genes."""
        return 1.0 - len(self.panel) / n_genes if self.name == "panel" else float(self.rate)

    def label(self) -> str:
        """A short description for tables: ``mcar``, ``panel (200 genes)``, ``mnar (slope 2)``, ``block (50 genes)``."""
        if self.name == "panel":
            return f"panel ({len(self.panel)} genes)"
        if self.name == "mnar":
            return f"mnar (slope {self.slope:g})"
        if self.name == "block":
            return f"block ({self.block_size} genes)"
        return "mcar"

    def with_rate(self, rate: float) -> "Pattern":
        """The same pattern at another missing rate."""
        return Pattern(self.name, rate, self.panel, self.slope, self.block_size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable settings (stored in a checkpoint's config)."""
        return {**asdict(self), "panel": list(self.panel)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Pattern":
        return cls(**{**data, "panel": tuple(data.get("panel", ()))})

    # ----------------------------------------------------------------- masks
    def observed(self, cohort: Cohort, seed: int | np.random.Generator = 0) -> np.ndarray:
        """Boolean observed-mask (samples x genes) of ``cohort`` under this pattern."""
        shape = cohort.x.shape
        self.check_genes(shape[1])
        rng = np.random.default_rng(seed)
        if self.name == "mcar":
            return mcar_mask(shape, self.rate, self.rate, seed=rng)
        if self.name == "panel":
            observed = np.zeros(shape, dtype=bool)
            observed[:, list(self.panel)] = True
            return observed
        if self.name == "mnar":
            return _mnar_mask(cohort.x * cohort.transform.std + cohort.transform.mean, self.rate, self.slope, rng)
        return _block_mask(shape, self.rate, self.block_size, rng)

    def check_genes(self, n_genes: int) -> None:
        """Raise ``ValueError`` when the panel does not fit a cohort of ``n_genes`` genes."""
        if self.name != "panel":
            return
        if self.panel[-1] >= n_genes or self.panel[0] < 0:
            raise ValueError(f"Panel gene index {self.panel[-1]} is outside the cohort's {n_genes} genes.")
        if len(self.panel) >= n_genes:
            raise ValueError(f"The panel covers all {n_genes} genes: nothing is left to impute. Use a smaller panel.")

    def torch_mask(self, known: "torch.Tensor", m_low: float, m_high: float,
                   generator: "torch.Generator | None" = None) -> "torch.Tensor":
        """Training mask: the part of ``known`` (float 0/1) left visible. ``mcar`` draws a per-sample rate in
        ``[m_low, m_high]`` (the paper's pseudo-mask); ``panel`` keeps the panel genes; ``block`` hides
        ``rate`` of the blocks."""
        if self.name not in TRAINABLE_PATTERNS:
            raise ValueError(f"Training masks cannot follow the {self.name!r} pattern; use one of "
                             f"{', '.join(TRAINABLE_PATTERNS)}.")
        import torch

        n_samples, n_genes = known.shape
        if self.name == "mcar":
            return pseudo_mask(known, m_low, m_high, generator)
        if self.name == "panel":
            self.check_genes(n_genes)
            keep = torch.zeros(n_genes, device=known.device)
            keep[list(self.panel)] = 1.0
            return known * keep
        n_blocks = -(-n_genes // self.block_size)
        hidden = torch.rand((n_samples, n_blocks), generator=generator, device=known.device) < self.rate
        visible = (~hidden).float().repeat_interleave(self.block_size, dim=1)[:, :n_genes]
        return known * visible


def _mnar_mask(log_values: np.ndarray, rate: float, slope: float, rng: np.random.Generator) -> np.ndarray:
    """Detection-limit mask: P(missing) logistic in the standardised log value, calibrated to ``rate``."""
    if rate <= 0.0 or rate >= 1.0:
        return np.full(log_values.shape, rate <= 0.0)
    log_values = np.asarray(log_values, dtype=np.float64)  # NaN (a gene the cohort lacks) stays missing
    z = (log_values - np.nanmean(log_values)) / max(float(np.nanstd(log_values)), 1e-12)

    def share(c: float) -> float:
        return float(np.nanmean(_sigmoid(slope * (c - z))))

    low, high = float(np.nanmin(z)) - 50.0 / slope, float(np.nanmax(z)) + 50.0 / slope
    for _ in range(60):  # share(c) increases with c
        middle = 0.5 * (low + high)
        low, high = (middle, high) if share(middle) < rate else (low, middle)
    p_missing = _sigmoid(slope * (0.5 * (low + high) - z))
    return rng.random(z.shape) >= p_missing


def _sigmoid(t: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * t))


def _block_mask(shape: tuple[int, int], rate: float, block_size: int, rng: np.random.Generator) -> np.ndarray:
    """Each sample loses a ``rate`` share of the consecutive ``block_size``-gene blocks (rounded per sample)."""
    n_samples, n_genes = shape
    n_blocks = -(-n_genes // block_size)
    n_hidden = int(round(rate * n_blocks))
    order = rng.random((n_samples, n_blocks)).argsort(axis=1)
    visible = np.ones((n_samples, n_blocks), dtype=bool)
    np.put_along_axis(visible, order[:, :n_hidden], False, axis=1)
    return np.repeat(visible, block_size, axis=1)[:, :n_genes]
