"""The analysis layer: how imputations are scored and compared.

R² on hidden values (``evaluation``), the benchmark protocol (``benchmark``), gene panels
(``panels``), cohorts a model was not trained on (``other_cohort``) and tissue embeddings
(``embeddings``). Imports the models, data and common layers.
"""
