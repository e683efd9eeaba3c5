"""How the linear methods choose their settings: validation donors with values hidden at spread rates.

Each validation sample gets its own missing rate, spread evenly over :data:`SELECTION_RATES`, so a
setting chosen by the squared error of the hidden values serves every rate a user may bring, not
only one. Used by :mod:`gtex_models.models.gauss` and :mod:`gtex_models.models.softimpute`.

Example
-------
>>> from gtex_models.data.simulate import simulate_cohort
>>> valid = simulate_cohort(n_donors=20, n_genes=400).split("valid")
>>> probe = validation_probe(valid, seed=0)
>>> bool(0.3 < probe.hidden.mean() < 0.7)
True
>>> probe.score(probe.cohort.x)  # the truth itself scores 0
0.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gtex_models.data.cohort import Cohort

SELECTION_RATES = (0.1, 0.9)  # validation samples' missing rates are spread over this range
MAX_SELECTION_SAMPLES = 400  # validation samples used to choose the settings


@dataclass(frozen=True)
class ValidationProbe:
    """Validation samples (``cohort``), the values hidden from the imputer (``hidden``) and what it sees (``masked``)."""

    cohort: Cohort
    hidden: np.ndarray
    masked: np.ndarray  # cohort.x with the hidden values NaN (float32)

    def score(self, predicted: np.ndarray) -> float:
        """Mean squared error of ``predicted`` (samples x genes) on the hidden values."""
        truth = np.asarray(self.cohort.x)
        usable = self.hidden & ~np.isnan(truth)
        return float(np.mean((predicted[usable] - truth[usable]) ** 2))


def validation_probe(valid: Cohort | None, seed: int, max_samples: int = MAX_SELECTION_SAMPLES
                     ) -> ValidationProbe | None:
    """The validation donors (at most ``max_samples``), each with its own share of values hidden.

    None when there is nothing to score (no validation samples, or none of their values observed).
    """
    if valid is None or valid.n_samples == 0:
        return None
    rng = np.random.default_rng(seed + 17)
    if valid.n_samples > max_samples:
        valid = valid.subset_samples(np.sort(rng.choice(valid.n_samples, max_samples, replace=False)))
    observed = ~np.isnan(np.asarray(valid.x))
    rates = np.linspace(*SELECTION_RATES, valid.n_samples)[rng.permutation(valid.n_samples)]
    hidden = observed & (rng.random(observed.shape) < rates[:, None])
    if hidden.sum() == 0:
        return None
    return ValidationProbe(valid, hidden, np.where(hidden, np.nan, valid.x).astype(np.float32))
