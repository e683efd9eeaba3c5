"""The choice lists shared by the CLI, the app and the library, defined once.

Example
-------
>>> SCENARIOS
('inductive', 'inplace')
>>> ALL_TISSUES
'All tissues'
"""

from __future__ import annotations

SCENARIOS = ("inductive", "inplace")
"""Benchmark / training scenarios: fit on complete donors and impute new ones, or fill a cohort's own gaps."""

ORIENTATIONS = ("auto", "samples-by-genes", "genes-by-samples")
"""Layouts of an expression table (``auto``: decided from which axis holds gene identifiers)."""

SCALE_CHOICES = ("auto", "tpm", "log")
"""Scales a user may declare: detected, linear (TPM or any non-negative linear intensity), log."""

DUPLICATE_CHOICES = ("error", "first", "mean")
"""What to do with features that share an identifier (or resolve to the same gene)."""

NEGATIVE_CHOICES = ("error", "clip")
"""What to do with negative values on a linear scale (``clip``: set them to 0, e.g. MAS5 signal)."""

COMPRESSIONS = ("gzip", "none")
"""Compressions of an on-disk store: ``gzip`` (level 1 + shuffle; readable by every HDF5 tool; log-CPM of
counts shrinks about 2x, noisy floats 1.2x) or ``none`` (several times faster to write and read)."""

ALL_TISSUES = "All tissues"
"""The pooled row / curve over every tissue (group) in the evaluation tables and plots."""

UNKNOWN_GROUP_CHOICES = ("error", "pooled")
"""What imputing does with a sample whose group the model never saw: refuse, or the mean of its imputations under
every known group (:class:`gtex_models.models.pooled.PooledGroups`)."""

PATTERNS = ("mcar", "panel", "mnar", "block")
"""Missingness patterns of hidden values (:mod:`gtex_models.data.patterns`)."""

HARMONISATIONS = ("own", "training", "quantile")
"""Scale harmonisations of a cohort a model was not trained on (:mod:`gtex_models.analysis.other_cohort`)."""

PANEL_STRATEGIES = ("designed", "model-scored", "most-variable", "random")
"""How a gene panel of k genes is chosen (:func:`gtex_models.analysis.panels.choose_panel`)."""
