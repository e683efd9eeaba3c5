"""Pieces of user-facing error messages shared by the readers, the checkpoints and the app."""

from __future__ import annotations

import difflib
from typing import Sequence


def list_examples(items: Sequence[str], n: int = 5, quote: bool = True) -> str:
    """The first ``n`` items for a message (quoted with repr), and how many more there are."""
    items = list(items)
    shown = ", ".join(repr(i) if quote else str(i) for i in items[:n])
    return shown + (f" and {len(items) - n:,} more" if len(items) > n else "")


def describe_unknown_tissues(unknown: Sequence[str], known: Sequence[str], n: int = 5) -> str:
    """``'Brian' (did you mean 'Brain - Cortex' or ...?), ... and 2 more`` for unknown tissue names."""
    described = []
    for name in list(unknown)[:n]:
        suggestions = closest_names(str(name), known)
        hint = f" (did you mean {' or '.join(repr(s) for s in suggestions)}?)" if suggestions else ""
        described.append(f"{name!r}{hint}")
    more = f" and {len(unknown) - n} more" if len(unknown) > n else ""
    return ", ".join(described) + more


def closest_names(name: str, known: Sequence[str], n: int = 3) -> list[str]:
    """Known names that look most like ``name`` (case-insensitive), for "did you mean" messages."""
    lowered = {k.lower(): k for k in known}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.4)
    if not hits:  # fall back to substring matches ("brain" -> all brain tissues)
        hits = [k for k in lowered if name.lower() in k][:n]
    return [lowered[h] for h in hits]
