"""GTEx Imputation Studio: ``streamlit run app.py``.

The entry point only sets up the page, the navigation and the shared sidebar (study and model
pickers); each page lives in ``pages/`` and calls ``gtex_models`` for the work. Studies beyond the
demo and the studies folder: ``streamlit run app.py -- --study DIR [--study DIR2]`` or ``$GTEX_STUDY``.
A shared server's settings (read-only, cohort folders, caps): :mod:`gtex_models.interfaces.deployment`.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pages._shared import deployment, sidebar, words

PAGES_DIR = Path(__file__).resolve().parent / "pages"

st.set_page_config(page_title="GTEx Imputation Studio", page_icon=":material/genetics:", layout="wide")
settings = deployment()
st.sidebar.title("GTEx Imputation Studio")
st.sidebar.caption("PMI and GAIN-GTEx imputation of gene expression (Viñas et al. 2021)")
sidebar()
named = words()
pages = [
    st.Page(PAGES_DIR / "impute.py", title="Impute", icon=":material/science:", default=True),
    st.Page(PAGES_DIR / "tissue_r2.py", title=f"{named.Group} R²", icon=":material/bar_chart:"),
    st.Page(PAGES_DIR / "donors.py", title="Donors", icon=":material/group:"),
    st.Page(PAGES_DIR / "embeddings.py", title=f"{named.Group} embeddings", icon=":material/scatter_plot:"),
    st.Page(PAGES_DIR / "pathway.py", title="Pathway genes", icon=":material/neurology:"),
    st.Page(PAGES_DIR / "panels.py", title="Gene panels", icon=":material/checklist:"),
    st.Page(PAGES_DIR / "benchmark.py", title="Benchmark & model card", icon=":material/table_chart:"),
]
if not settings.read_only:  # a read-only server builds no study
    pages.append(st.Page(PAGES_DIR / "new_study.py", title="New study", icon=":material/add_circle:"))
st.navigation(pages).run()
