"""GTEx Imputation Studio: PMI and GAIN-GTEx gene-expression imputation in PyTorch.

Importing the package is cheap: heavy optional dependencies (streamlit, umap, scikit-learn
estimators, anndata) are imported inside the functions that need them.
"""

from gtex_models.cohort import Cohort, Transform

__all__ = ["Cohort", "Transform"]
__version__ = "0.1.0"
