"""MCAR masks, pseudo-masks and GAIN hints (True / 1 = observed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gtex_models.data.masks import gain_hint, mcar_mask, mcar_mask_torch, pseudo_mask

SHAPE = (300, 2000)
TOLERANCE = 0.05  # > 4 binomial SDs for 2,000 genes


def test_fixed_rate_holds_for_every_sample() -> None:
    missing = 1.0 - mcar_mask(SHAPE, 0.3, 0.3, seed=0).mean(axis=1)
    assert np.abs(missing - 0.3).max() < TOLERANCE


def test_per_sample_rates_spread_over_the_range() -> None:
    missing = 1.0 - mcar_mask(SHAPE, 0.2, 0.6, seed=1).mean(axis=1)
    assert missing.min() > 0.2 - TOLERANCE and missing.max() < 0.6 + TOLERANCE
    assert missing.min() < 0.25 and missing.max() > 0.55


def test_numpy_mask_is_deterministic_from_its_seed() -> None:
    np.testing.assert_array_equal(mcar_mask(SHAPE, 0.5, 0.5, seed=4), mcar_mask(SHAPE, 0.5, 0.5, seed=4))
    assert not np.array_equal(mcar_mask(SHAPE, 0.5, 0.5, seed=4), mcar_mask(SHAPE, 0.5, 0.5, seed=5))


def test_torch_mask_rates() -> None:
    mask = mcar_mask_torch(SHAPE, 0.1, 0.1, generator=torch.Generator().manual_seed(0))
    assert mask.dtype == torch.float32 and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert (1.0 - mask.mean(dim=1) - 0.1).abs().max().item() < TOLERANCE


def test_pseudo_mask_only_hides_observed_values() -> None:
    generator = torch.Generator().manual_seed(0)
    observed = mcar_mask_torch(SHAPE, 0.5, 0.5, generator=generator)
    reduced = pseudo_mask(observed, 0.4, 0.4, generator=generator)
    assert bool((reduced <= observed).all())
    hidden_share = 1.0 - reduced.sum(dim=1) / observed.sum(dim=1)
    assert (hidden_share - 0.4).abs().max().item() < 2 * TOLERANCE


def test_gain_hint_reveals_the_mask_where_b_is_one() -> None:
    observed = mcar_mask_torch(SHAPE, 0.5, 0.5, generator=torch.Generator().manual_seed(0))
    hint = gain_hint(observed, generator=torch.Generator().manual_seed(7))
    b = torch.rand(SHAPE, generator=torch.Generator().manual_seed(7)) < 0.5  # the draw gain_hint makes
    assert set(hint.unique().tolist()) <= {0.0, 0.5, 1.0}
    assert torch.equal(hint[b], observed[b])
    assert bool((hint[~b] == 0.5).all())
    assert abs(b.float().mean().item() - 0.5) < 0.01


@pytest.mark.parametrize("low, high", [(-0.1, 0.5), (0.6, 0.5), (0.5, 1.2)])
def test_invalid_rates_are_refused(low: float, high: float) -> None:
    with pytest.raises(ValueError, match="Missing rates"):
        mcar_mask((3, 3), low, high)
    with pytest.raises(ValueError, match="Missing rates"):
        mcar_mask_torch((3, 3), low, high)
