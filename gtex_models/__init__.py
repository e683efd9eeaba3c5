"""GTEx Imputation Studio: PMI and GAIN-GTEx gene-expression imputation in PyTorch, and their baselines.

The public API, for notebooks and scripts (everything else is internal and may move)::

    import gtex_models as gm
    cohort = gm.simulate_cohort(n_donors=40, n_genes=400)          # or gm.import_table("expr.csv", "samples.csv")
    imputer = gm.make_imputer("knn").fit(cohort.split("train"))    # any of gm.METHODS
    record = gm.evaluate_imputer(imputer, cohort.split("test"), missing_rate=0.5, train=cohort.split("train"))
    print(f"per-gene R² on hidden values: {record['r2_mean']:.3f}")

Cohorts: :class:`Cohort` (``Cohort.load(folder)``, ``cohort.save(folder)``), :func:`import_table`,
:func:`prepare_gtex` (the public GTEx v8 files), :func:`simulate_cohort`. Imputers: :func:`make_imputer`,
:data:`METHODS`, :func:`load_checkpoint`, :func:`save_checkpoint`. Scoring: :func:`evaluate_imputer`,
:func:`run_benchmark`, :func:`mcar_mask`, :func:`mask_cohort`, :func:`r2_per_gene`. Studies: :class:`Study`
(``Study.open(folder)``), :func:`build_study`.

Importing the package is cheap: each name is imported from its layer on first use, and heavy
optional dependencies (streamlit, umap, scikit-learn estimators, anndata) only inside the functions
that need them. The layers, bottom to top: ``common``, ``data``, ``models``, ``analysis``, ``studies``,
``interfaces`` (each imports only those below it; an import-linter contract in the tests keeps it so).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_API = {  # public name -> the module that defines it
    "Cohort": "gtex_models.data.cohort",
    "Transform": "gtex_models.data.transform",
    "import_table": "gtex_models.data.readers.tables",
    "prepare_gtex": "gtex_models.data.readers.gtex",
    "simulate_cohort": "gtex_models.data.simulate",
    "mcar_mask": "gtex_models.data.masks",
    "mask_cohort": "gtex_models.data.patterns",
    "METHODS": "gtex_models.models.registry",
    "make_imputer": "gtex_models.models.registry",
    "load_checkpoint": "gtex_models.models.checkpoints",
    "save_checkpoint": "gtex_models.models.checkpoints",
    "r2_per_gene": "gtex_models.analysis.evaluation",
    "evaluate_imputer": "gtex_models.analysis.benchmark",
    "run_benchmark": "gtex_models.analysis.benchmark",
    "Study": "gtex_models.studies.study",
    "build_study": "gtex_models.studies.build",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'gtex_models' has no attribute {name!r}; the public API is: {', '.join(__all__)}")
    value = getattr(import_module(_API[name]), name)
    globals()[name] = value  # the next access skips this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
