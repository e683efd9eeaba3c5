"""Readers: the public GTEx v8 files and generic expression tables (CSV, TSV, GCT, h5ad).

Every reader raises :class:`InputError` (a ``ValueError``) for malformed input, with a message that
says what is wrong, where, and how to fix it.
"""

from gtex_models.data.readers.errors import MAX_INPUT_MB, InputError, check_file_size, max_input_mb
from gtex_models.data.readers.expression import ExpressionTable, read_expression
from gtex_models.data.readers.genes import map_features
from gtex_models.data.readers.gtex import prepare_gtex
from gtex_models.data.readers.samples import read_samples_table
from gtex_models.data.readers.tables import import_table

__all__ = [
    "MAX_INPUT_MB",
    "ExpressionTable",
    "InputError",
    "check_file_size",
    "import_table",
    "map_features",
    "max_input_mb",
    "prepare_gtex",
    "read_expression",
    "read_samples_table",
]
