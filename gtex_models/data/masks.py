"""Missingness: MCAR masks with a per-sample rate, pseudo-masks, and GAIN hints.

Convention everywhere: a mask is True / 1 where a value is **observed**. The torch masks import torch when
called, so that the numpy ones (the app's pages) do not load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def mcar_mask(
    shape: tuple[int, int], m_low: float = 0.5, m_high: float = 0.5, seed: int | np.random.Generator = 0
) -> np.ndarray:
    """Boolean observed-mask; each sample's missing rate is drawn uniformly from [m_low, m_high]."""
    _check_rates(m_low, m_high)
    rng = np.random.default_rng(seed)
    rates = rng.uniform(m_low, m_high, size=(shape[0], 1))
    return rng.random(shape) >= rates


def mcar_mask_torch(
    shape: tuple[int, int],
    m_low: float,
    m_high: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Float observed-mask (1 observed, 0 missing) on ``device``, per-sample rate in [m_low, m_high]."""
    import torch

    _check_rates(m_low, m_high)
    rates = m_low + (m_high - m_low) * torch.rand((shape[0], 1), generator=generator, device=device)
    return (torch.rand(shape, generator=generator, device=device) >= rates).float()


def pseudo_mask(
    observed: torch.Tensor, m_low: float, m_high: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Hide a further random share of the observed values: returns the reduced observed-mask."""
    return observed * mcar_mask_torch(tuple(observed.shape), m_low, m_high, generator, observed.device)


def gain_hint(observed: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """GAIN hint: b ~ Bernoulli(0.5); hint = b * m + 0.5 * (1 - b)."""
    import torch

    b = (torch.rand(observed.shape, generator=generator, device=observed.device) < 0.5).float()
    return b * observed + 0.5 * (1.0 - b)


def _check_rates(m_low: float, m_high: float) -> None:
    if not 0.0 <= m_low <= m_high <= 1.0:
        raise ValueError(f"Missing rates must satisfy 0 <= m_low <= m_high <= 1, got [{m_low}, {m_high}].")
