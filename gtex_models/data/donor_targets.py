"""Cross-tissue targets: whole samples of a donor hidden, to be predicted from the donor's other samples.

A *target* is one sample of a donor who gave at least two; its *sources* are the donor's other samples
(all of them, or a chosen number). Targets are hidden in *rounds*: each round hides at most one sample
per donor, so that every other sample of the donor stays a source, and every target is hidden once over
the rounds. Models and the evaluation share these helpers (:mod:`gtex_models.analysis.cross_tissue`).

Example
-------
>>> import pandas as pd
>>> donors = pd.Series(["a", "a", "b", "b", "b", "c"])
>>> [rows.tolist() for rows in target_rounds(donors, seed=0)]
[[0, 3], [1, 4], [2]]
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from gtex_models.data.cohort import Cohort


def donor_rows(donors: Sequence[str] | pd.Series) -> dict[str, np.ndarray]:
    """The rows of each donor, in the order donors first appear."""
    codes, names = pd.factorize(pd.Series(donors, dtype=str).reset_index(drop=True))
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return {str(names[codes[rows[0]]]): rows for rows in np.split(order, bounds) if len(rows)}


def target_rounds(donors: Sequence[str] | pd.Series, seed: int = 0) -> list[np.ndarray]:
    """Rows of the donors with at least two samples, in rounds of at most one sample per donor.

    Each donor's samples are shuffled (``seed``); round ``j`` holds every donor's ``j``-th sample.
    A donor with one sample has nothing to predict it from and is left out.
    """
    rng = np.random.default_rng([seed, 31])
    rounds: list[list[int]] = []
    for rows in donor_rows(donors).values():
        if len(rows) < 2:
            continue
        for j, row in enumerate(rng.permutation(rows)):
            if j == len(rounds):
                rounds.append([])
            rounds[j].append(int(row))
    return [np.sort(np.array(r, dtype=np.int64)) for r in rounds]


def hide_samples(cohort: Cohort, rows: np.ndarray) -> Cohort:
    """A copy of ``cohort`` with every value of ``rows`` missing (NaN)."""
    x = np.array(cohort.x, dtype=np.float32, copy=True)
    x[np.asarray(rows)] = np.nan
    return Cohort(x, cohort.genes, cohort.samples, cohort.transform, cohort.meta)


def source_subsets(donors: Sequence[str] | pd.Series, targets: np.ndarray, n_sources: int, seed: int = 0
                   ) -> np.ndarray:
    """Rows to keep for a round: each target with ``n_sources`` of its donor's other samples, chosen at random.

    Targets whose donor has fewer than ``n_sources`` other samples are left out (with their donor).
    """
    rng = np.random.default_rng([seed, 37, n_sources])
    by_donor = donor_rows(donors)
    donors = pd.Series(donors, dtype=str).reset_index(drop=True)
    keep = []
    for target in np.asarray(targets):
        others = by_donor[donors.iloc[target]]
        others = others[others != target]
        if len(others) >= n_sources:
            keep.extend([int(target), *rng.choice(others, n_sources, replace=False).tolist()])
    return np.sort(np.array(keep, dtype=np.int64))


def rounds_with_sources(donors: Sequence[str] | pd.Series, n_sources: int | None = None, seed: int = 0
                        ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(rows, targets)`` of each round: the rows that take part (all, or each target with ``n_sources`` of its
    donor's other samples) and, among them, the targets to hide (positions into ``rows``)."""
    for targets in target_rounds(donors, seed):
        rows = np.arange(len(donors)) if n_sources is None else source_subsets(donors, targets, n_sources, seed)
        position = np.flatnonzero(np.isin(rows, targets))
        if len(position):
            yield rows, position
