"""The registry of imputation methods: one name per method, classes imported only when asked for.

Example
-------
>>> from gtex_models.simulate import simulate_cohort
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

from gtex_models.imputers.base import Imputer

# method -> (module, class, constructor arguments the method name implies)
_REGISTRY: dict[str, tuple[str, str, dict[str, Any]]] = {
    "pmi": ("gtex_models.imputers.pmi", "PMIImputer", {}),
    "gain": ("gtex_models.imputers.gain", "GAINImputer", {}),
    "gain-mse": ("gtex_models.imputers.gain", "GAINImputer", {"adversarial": False}),
    "mean": ("gtex_models.imputers.baselines", "MeanImputer", {}),
    "knn": ("gtex_models.imputers.baselines", "KNNImputer", {}),
    "mice": ("gtex_models.imputers.baselines", "MICEImputer", {}),
    "missforest": ("gtex_models.imputers.baselines", "MissForestImputer", {}),
    "blood": ("gtex_models.imputers.baselines", "BloodImputer", {}),
    "oracle": ("gtex_models.oracle", "OracleImputer", {}),
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


__all__ = ["METHODS", "Imputer", "imputer_class", "make_imputer"]
