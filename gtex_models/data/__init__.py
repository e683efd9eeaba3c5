"""The data layer: the :class:`~gtex_models.data.cohort.Cohort` and everything that makes or holds one.

Cohorts in memory and on disk (``cohort``, ``cohort_format``, ``transform``, ``store``, ``batches``),
readers of real files (``readers``: GTEx v8, expression tables, ARCHS4, scale detection), the
simulator (``simulate``), reference lists (``reference``), covariates, and missingness (``masks``,
``patterns``). Imports only :mod:`gtex_models.common`.
"""
