"""Progress reports of long work (training, building a study, importing a large file)."""

from typing import Callable

ProgressCallback = Callable[[float, str], None]
"""``progress(fraction_done, message)``: ``fraction_done`` in [0, 1], ``message`` a short line for people."""
