"""A progress bar on stderr for the CLI's long commands (training, building a study, imputing)."""

from __future__ import annotations

import sys


class ProgressBar:
    """A tqdm bar on stderr driven by ``progress(fraction, message)``, opened at the first report (so a
    command that fails while checking its input prints only its error)."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.bar = None

    def __call__(self, fraction: float, message: str) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=100, desc=self.description, unit="%", leave=False, file=sys.stderr)
        self.bar.n = round(100 * fraction)
        self.bar.set_postfix_str(message[:60], refresh=True)

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


def progress_bar(description: str) -> tuple[ProgressBar, ProgressBar]:
    """A progress bar (a context manager) and its ``progress(fraction, message)`` callback."""
    bar = ProgressBar(description)
    return bar, bar
