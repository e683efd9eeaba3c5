"""The registry of imputation methods: one name per method, classes imported only when asked for.

Example
-------
>>> from gtex_models.data.simulate import simulate_cohort
>>> cohort = simulate_cohort(n_donors=20, n_genes=400)
>>> imputer = make_imputer("knn", k=5).fit(cohort.split("train"))
>>> imputer.impute(cohort.split("test")).shape[1]
400
>>> METHODS[:3]
('pmi', 'gain', 'gain-mse')
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from gtex_models.models.base import Imputer

# method -> (module, class, constructor arguments the method name implies)
_REGISTRY: dict[str, tuple[str, str, dict[str, Any]]] = {
    "pmi": ("gtex_models.models.pmi", "PMIImputer", {}),
    "gain": ("gtex_models.models.gain", "GAINImputer", {}),
    "gain-mse": ("gtex_models.models.gain", "GAINImputer", {"adversarial": False}),
    "mean": ("gtex_models.models.baselines", "MeanImputer", {}),
    "knn": ("gtex_models.models.baselines", "KNNImputer", {}),
    "mice": ("gtex_models.models.baselines", "MICEImputer", {}),
    "missforest": ("gtex_models.models.baselines", "MissForestImputer", {}),
    "blood": ("gtex_models.models.baselines", "BloodImputer", {}),
    "gauss": ("gtex_models.models.gauss", "GaussImputer", {}),
    "softimpute": ("gtex_models.models.softimpute", "SoftImputeImputer", {}),
    "oracle": ("gtex_models.models.oracle", "OracleImputer", {}),
    "donor-gauss": ("gtex_models.models.donor_gauss", "DonorGaussImputer", {}),
    "donor-net": ("gtex_models.models.donor_net", "DonorNetImputer", {}),
    "donor-oracle": ("gtex_models.models.donor_oracle", "DonorOracleImputer", {}),
}
METHODS: tuple[str, ...] = tuple(_REGISTRY)


def _entry(method: str) -> tuple[str, str, dict[str, Any]]:
    if method not in _REGISTRY:
        raise ValueError(f"Unknown imputation method {method!r}; choose one of {', '.join(METHODS)}.")
    return _REGISTRY[method]


def imputer_class(method: str) -> type[Imputer]:
    """The class implementing ``method`` (imported on first use)."""
    module, name, _ = _entry(method)
    return getattr(import_module(module), name)


def make_imputer(method: str, **config: Any) -> Imputer:
    """A new, unfitted imputer of ``method``; ``config`` goes to its constructor."""
    return imputer_class(method)(**{**config, **_entry(method)[2]})


DEEP_METHODS = ("pmi", "gain", "gain-mse")
SAFETY_SECONDS = 4 * 3600
"""The deep models' wall-clock safety limit: their budget is in epochs (``max_epochs``, early stopping), so
results do not depend on the machine's load; hitting this limit is reported (:func:`~gtex_models.models.training.train`)."""


def default_settings(method: str, n_samples: int, n_genes: int, scenario: str = "inductive") -> dict[str, Any]:
    """Constructor arguments of ``method`` for a cohort of ``n_samples`` x ``n_genes`` (no config given).

    The baselines keep their own defaults (empty dict). The deep models get the shipped configs'
    settings (batch 256, Adam 2e-3, early stopping after 10 epochs without progress, at most 300 epochs, a
    wall-clock limit only as a safety net, :data:`SAFETY_SECONDS`; bf16 autocast only where it measured
    faster on this machine, :func:`~gtex_models.models.training_settings.preferred_precision`),
    scaled down for small cohorts: a batch of a sixteenth of the cohort's samples (about a tenth of
    the training donors' samples; 16 to 256), so an epoch is about ten optimiser steps, and a hidden
    layer of half the genes (128 to 1,024). Below 1,000 samples (small batches, a noisy validation
    loss) Adam's rate is 1e-3 and the patience 20 epochs: on 128 x 1,000 cohorts this gained 0.01-0.02
    R² over 2e-3 / 10 (``benchmarks/small_cohort.py``).
    They are hybrids on a Gaussian path (``linear=True``, :mod:`gtex_models.models.hybrid`): on real
    cohorts of 50-250 samples the paper's networks alone lose 0.05-0.15 R² to the Gaussian conditional.
    Inductive, their training masks hide 10-90 % of a sample (the paper's fixed 50 % collapses away from
    that rate); in place (half the values missing) they use the in-place configs' regularisation (dropout
    0.5, training mask rate 0.1-0.5). GAIN-GTEx and GAIN-MSE get the profile term (``profile_weight=1``) that
    gives their tissue embeddings structure.

    Example
    -------
    >>> default_settings("pmi", 128, 1000)["batch_size"]
    16
    >>> default_settings("knn", 128, 1000)
    {}
    """
    if method not in DEEP_METHODS:
        return {}
    from gtex_models.models.training_settings import preferred_precision

    hidden = int(min(1024, max(128, n_genes // 2)))
    batch_size = int(min(256, max(16, n_samples // 16)))
    inplace = scenario == "inplace"
    small = n_samples < 1000
    settings: dict[str, Any] = {
        "hidden_sizes": [hidden], "dropout": 0.5 if inplace else 0.2, "linear": True,
        "m_low": 0.1, "m_high": 0.5 if inplace else 0.9,
        "batch_size": batch_size, "lr": 1e-3 if small else 2e-3, "max_epochs": 300, "patience": 20 if small else 10,
        "max_seconds": SAFETY_SECONDS,
        "precision": preferred_precision(),
    }
    if method != "pmi":
        settings["reconstruction_weight"] = 10.0
        settings["profile_weight"] = 1.0  # tissue embeddings that carry the tissue's profile (gain.py)
    return settings


__all__ = ["DEEP_METHODS", "METHODS", "Imputer", "default_settings", "imputer_class", "make_imputer"]
