"""Tissue embeddings: where the model places each tissue (Viñas et al. 2021, Fig. 3)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from gtex_models import demo, embeddings, plots
from pages._shared import download_csv, model, selected_model, simulated_note


@st.cache_data(show_spinner=False)
def _views(key: str) -> tuple[pd.DataFrame, pd.DataFrame, list[float], pd.DataFrame | None]:
    """Embedding matrix, PCA coordinates, explained variance and the precomputed UMAP (if any) of a model."""
    matrix = embeddings.tissue_embeddings(model(key)[0])
    pca, explained = embeddings.pca_coordinates(matrix)
    try:
        umap = demo.tissue_umap(key)
    except FileNotFoundError:
        umap = None
    return matrix, pca, explained.tolist(), umap


st.title("Tissue embeddings")
key = selected_model()
if key is not None:
    simulated_note("The embeddings")
    matrix, pca, explained, umap = _views(key)
    st.caption(f"Each tissue is a learnt {matrix.shape[1]}-dimensional vector that conditions the network. "
               "Tissues with similar expression end up close; brain regions are diamonds.")
    left, right = st.columns(2)
    with left:
        if umap is None:
            st.info("No precomputed UMAP for this model; rebuild the demo to add it. The PCA view is exact.")
        else:
            st.plotly_chart(plots.embedding_scatter(umap, "umap_1", "umap_2", "UMAP 1", "UMAP 2",
                                                    title="UMAP (cosine)"), width="stretch")
    with right:
        st.plotly_chart(plots.embedding_scatter(pca, "pc_1", "pc_2", f"PC 1 ({explained[0]:.0%} of variance)",
                                                f"PC 2 ({explained[1]:.0%} of variance)", title="PCA"),
                        width="stretch")
    st.subheader("Nearest tissues")
    tissue = st.selectbox("Tissue", matrix.index.tolist(),
                          index=matrix.index.tolist().index("Brain - Cortex") if "Brain - Cortex" in matrix.index else 0)
    k = st.slider("Neighbours", 1, 15, 5)
    nearest = embeddings.nearest_tissues(matrix, tissue, k)
    st.dataframe(nearest, width="stretch", hide_index=True,
                 column_config={"cosine_similarity": st.column_config.ProgressColumn(
                     "Cosine similarity", min_value=-1.0, max_value=1.0, format="%.3f")})
    download_csv(embeddings.nearest_tissues(matrix, k=k), f"{key}_nearest_tissues.csv",
                 "Download nearest tissues of every tissue (CSV)", key="download_nearest")
    download_csv(matrix.reset_index(), f"{key}_tissue_embeddings.csv", "Download the embedding matrix (CSV)",
                 key="download_matrix")
