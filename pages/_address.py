"""The selected study and model in the page's address (``?study=NAME&model=KEY``): reload, bookmark, share.

Each run writes the session's selection to the address. A value in the address that this session did
not write (a reload, a bookmark, a shared link, an edited address) is a request: it wins over the
session's selection once. A study is named by its folder's name (``demo`` for the demo), with a short
digest of its path when two offered studies share a folder name; the address never carries a path, so
it can only name a study the server already offers.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

import streamlit as st

STUDY, MODEL = "study", "model"  # the address's parameters
_WRITTEN = "_address_written"  # {parameter: value} this session last wrote to the address
_NOTE = "_address_note"  # what was wrong with a requested study or model, shown once


def study_id_of(path: str | Path) -> str:
    """A study's name in the address: its folder's name."""
    return Path(path).resolve().name


def study_ids(paths: Iterable[str]) -> dict[str, str]:
    """path -> name in the address, for the studies offered (folder names made unique by a digest of the path)."""
    paths = list(paths)
    names = [study_id_of(p) for p in paths]
    return {path: name if names.count(name) == 1 else f"{name}-{hashlib.sha1(path.encode()).hexdigest()[:6]}"
            for path, name in zip(paths, names)}


def requested(parameter: str) -> str | None:
    """The address's ``parameter`` when this session did not write it (a link, a reload), else None."""
    value = st.query_params.get(parameter)
    if value is None or value == st.session_state.get(_WRITTEN, {}).get(parameter):
        return None
    st.session_state.setdefault(_WRITTEN, {})[parameter] = value  # a request is answered once
    return value


def write(parameter: str, value: str | None) -> None:
    """Put the session's selection in the address (``None`` removes the parameter)."""
    if value is None:
        if parameter in st.query_params:
            del st.query_params[parameter]
    elif st.query_params.get(parameter) != value:
        st.query_params[parameter] = value
    st.session_state.setdefault(_WRITTEN, {})[parameter] = value


def note(message: str) -> None:
    """Say once, at the top of the page, what was wrong with the address."""
    st.session_state[_NOTE] = message


def show_note() -> None:
    """The pending note about the address, if any (once)."""
    message = st.session_state.pop(_NOTE, None)
    if message:
        st.warning(message, icon=":material/link_off:")
