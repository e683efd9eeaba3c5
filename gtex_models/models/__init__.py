"""The models layer: the imputer interface, its registry and one module per method.

``base`` (the :class:`~gtex_models.models.base.Imputer` interface), ``registry`` (method names to
classes), ``pmi``, ``gain``, ``deep`` (what the deep models share), ``baselines``, ``oracle``;
the networks (``networks``), the training loop (``training``, ``distributed``), checkpoints
(``checkpoints``, ``schemas``), calibrated intervals (``calibration``) and a model's gene and group
space (``model_space``). Imports only :mod:`gtex_models.data` and :mod:`gtex_models.common`.
"""
