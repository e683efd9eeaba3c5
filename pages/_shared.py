"""What every page shares: cached loaders for the demo cohort, models and tables, and the sidebar.

Models and the cohort are ``st.cache_resource`` (one shared object, never mutated); tables and
derived results are ``st.cache_data``. Pages stay thin: widgets and plots, calling ``gtex_models``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from gtex_models import demo
from gtex_models.checkpoints import load_checkpoint
from gtex_models.cohort import Cohort
from gtex_models.imputers.base import Imputer
from gtex_models.inference import ModelSpace
from gtex_models.training import resolve_device

SIMULATED = "SIMULATED"
MODEL_KEY = "model_key"
MODEL_HELP = ("The paper recommends PMI for imputing new samples (it is trained to fill any pattern of "
              "missing values in unseen donors) and GAIN-GTEx for filling gaps in a cohort; on the "
              "simulated demo both are close (see the benchmark page). The pathway models work on the "
              "Alzheimer's-pathway genes only.")
BUILD_HINT = "Build them with `python -m gtex_models build-demo` (about 30 minutes on a 2-core CPU)."


# ------------------------------------------------------------------------------------ loaders
@st.cache_resource(show_spinner="Regenerating the simulated demo cohort…")
def demo_cohort() -> Cohort:
    """The simulated demo cohort (shared, never mutated)."""
    return demo.load_demo_cohort()


@st.cache_resource(show_spinner="Loading the model…")
def model(key: str) -> tuple[Imputer, dict[str, Any], ModelSpace]:
    """A demo checkpoint: the imputer, its metadata and its gene/tissue/transform space."""
    imputer, metadata = load_checkpoint(demo.checkpoint_path(key))
    return imputer, metadata, ModelSpace.from_metadata(metadata)


@st.cache_data(show_spinner=False)
def tables(key: str) -> dict[str, pd.DataFrame]:
    """Precomputed evaluation tables of a demo model."""
    return demo.load_tables(key)


@st.cache_data(show_spinner=False)
def benchmark() -> pd.DataFrame:
    """Benchmark records of the demo cohort, one row per method and scenario."""
    return pd.DataFrame.from_records(demo.load_benchmark())


@st.cache_data(show_spinner=False)
def train_counts() -> dict[str, int]:
    """Training samples per tissue in the demo cohort."""
    samples = demo_cohort().samples
    return samples.loc[samples["split"] == "train", "tissue"].value_counts().to_dict()


# ------------------------------------------------------------------------------------ sidebar
def sidebar() -> None:
    """Cohort and model pickers, shown on every page."""
    with st.sidebar:
        st.markdown("### Cohort")
        st.markdown(f"**Demo cohort · :orange-badge[{SIMULATED}]**")
        st.caption("Simulated GTEx-shaped data (real tissue names, gene symbols and proportions; "
                   "values drawn from a model), not real GTEx data.")
        st.markdown("### Model")
        models = demo.available_models()
        if not models:
            st.info(f"No demo models in `{demo.DEMO_DIR.name}/`. {BUILD_HINT}")
            return
        if st.session_state.get(MODEL_KEY) not in models:
            st.session_state[MODEL_KEY] = next(iter(models))
        st.selectbox("Imputation model", list(models), format_func=models.__getitem__, key=MODEL_KEY,
                     help=MODEL_HELP)
        st.caption(MODEL_HELP)
        st.caption(f"Device: **{resolve_device().type.upper()}**")


def selected_model() -> str | None:
    """The key of the model picked in the sidebar; None (with an info box, or an error for a checkpoint
    that cannot be loaded) when there is none to use."""
    models = demo.available_models()
    key = st.session_state.get(MODEL_KEY)
    if key not in models:
        key = next(iter(models), None)
    if key is None:
        st.info(f"The demo models are not built yet, so this page has nothing to show. {BUILD_HINT}")
        return None
    try:
        model(key)  # cached: a broken checkpoint file is reported here instead of crashing the page
    except ValueError as error:  # CheckpointError, or metadata the app cannot use
        st.error(f"The demo model {models[key]!r} cannot be loaded: {error} {BUILD_HINT}", icon=":material/error:")
        return None
    return key


def pair_keys(key: str) -> dict[str, str]:
    """The PMI and GAIN-GTEx models of the same gene set as ``key`` that exist, label -> key."""
    gene_set = key.split("_", 1)[1]
    models = demo.available_models()
    return {models[k]: k for k in (f"pmi_{gene_set}", f"gain_{gene_set}") if k in models}


# ------------------------------------------------------------------------------------ widgets
def download_csv(frame: pd.DataFrame, filename: str, label: str = "Download CSV", index: bool = False,
                 key: str | None = None) -> None:
    """A download button for ``frame`` as CSV (written only when clicked)."""
    st.download_button(label, lambda: frame.to_csv(index=index).encode(), file_name=filename, mime="text/csv",
                       key=key, icon=":material/download:")


def scenario_note(key: str) -> None:
    """For a model trained in place, say that the test donors were part of its training matrix."""
    if model(key)[1].get("scenario") == "inplace":
        st.caption(f"{demo.DEMO_MODELS[key]} was trained in place (the paper's in-place scenario): the test "
                   "donors' profiles, with values hidden, were part of its training matrix.")


def simulated_note(what: str = "These results") -> None:
    """A one-line reminder that the demo data are simulated."""
    st.caption(f":orange-badge[{SIMULATED}] {what} come from the simulated demo cohort, not real GTEx data.")
