"""Tissue embeddings (Group embeddings for a cohort's own groups): where the model places each group (Viñas et al.
2021, Fig. 3)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from gtex_models.analysis import embeddings
from gtex_models.analysis.embeddings import UMAP_MIN_GROUPS
from gtex_models.interfaces import plots
from gtex_models.studies.precompute import stored_embeddings
from pages._shared import (
    current_study,
    download_csv,
    model,
    model_info,
    selected_model,
    simulated_note,
    study_token,
    words,
)


@st.cache_data(show_spinner=False)
def _views(token: str, key: str) -> tuple[pd.DataFrame, pd.DataFrame, list[float]] | None:
    """Embedding matrix (stored in the study, else read from the model), PCA coordinates and explained variance
    of a model; None for a model without a tissue embedding."""
    matrix = stored_embeddings(current_study().path, key)
    if matrix is None:
        imputer = model(key)[0]
        if getattr(imputer, "networks", None) is None:
            return None
        matrix = embeddings.tissue_embeddings(imputer)
    pca, explained = embeddings.pca_coordinates(matrix)
    return matrix, pca, explained.tolist()


def _umap_reason(n_groups: int) -> str:
    if n_groups < UMAP_MIN_GROUPS:
        return f"UMAP is not drawn for {n_groups} groups (it needs at least {UMAP_MIN_GROUPS} to find neighbours)"
    return ("this study has no precomputed UMAP for the model (it is computed when the study is built; "
            "`python -m gtex_models study build` or `build-demo` writes it)")


def _brain_sentence(matrix: pd.DataFrame, k: int = 5) -> str:
    """How well this model groups the brain regions (diamonds), measured, or nothing without brain regions."""
    table = embeddings.brain_neighbours(matrix, k=k)
    if len(table) < 2:
        return ""
    need = min(4, len(table) - 1)
    together = int((table["brain_in_top"] >= need).sum())
    return (f" Brain regions are diamonds: in this model {together} of the {len(table)} have at least {need} "
            f"brain regions among their {k} nearest tissues (cosine similarity, table below).")


named = words()
st.title(f"{named.Group} embeddings")
key = selected_model()
if key is not None:
    study = current_study()
    space = model_info(key)[1]
    word = named.group
    simulated_note("The embeddings")
    views = _views(study_token(), key)
    if views is None:
        st.info(f"{study.models[key].label} learns no {word} embedding: only PMI and GAIN-GTEx do. Pick one of "
                "them in the sidebar.")
    elif len(space.tissues) < 2:
        st.info(f"The model knows one {word} only ({space.tissues[0]!r}), so there is no layout of {word}s to show.")
    else:
        matrix, pca, explained = views
        umap = study.tissue_umap(key) if len(matrix) >= UMAP_MIN_GROUPS else None
        st.caption(f"Each {word} is a learnt {matrix.shape[1]}-dimensional vector that conditions the network; "
                   f"points close together are {word}s the network treats alike." + _brain_sentence(matrix))
        left, right = st.columns(2)
        with left:
            second = f"PC 2 ({explained[1]:.0%} of variance)" if len(explained) > 1 else "PC 2"
            if "pc_2" not in pca:
                pca = pca.assign(pc_2=0.0)
            st.plotly_chart(plots.embedding_scatter(pca, "pc_1", "pc_2", f"PC 1 ({explained[0]:.0%} of variance)",
                                                    second, title="PCA"), width="stretch")
        with right:
            if umap is None:
                st.info(f"PCA only: {_umap_reason(len(matrix))}. The PCA view is exact.")
            else:
                st.plotly_chart(plots.embedding_scatter(umap, "umap_1", "umap_2", "UMAP 1", "UMAP 2",
                                                        title="UMAP (cosine)"), width="stretch")
        st.subheader(f"Nearest {word}s")
        names = matrix.index.tolist()
        tissue = st.selectbox(word.capitalize(), names,
                              index=names.index("Brain - Cortex") if "Brain - Cortex" in names else 0)
        most = min(15, len(names) - 1)
        k = st.slider("Neighbours", 1, most, min(5, most)) if most > 1 else 1
        nearest = embeddings.nearest_tissues(matrix, tissue, k).rename(columns={"tissue": word})
        st.dataframe(nearest, width="stretch", hide_index=True,
                     column_config={"cosine_similarity": st.column_config.ProgressColumn(
                         "Cosine similarity", min_value=-1.0, max_value=1.0, format="%.3f")})
        download_csv(embeddings.nearest_tissues(matrix, k=k), f"{key}_nearest_{word}s.csv",
                     f"Download nearest {word}s of every {word} (CSV)", key="download_nearest")
        download_csv(matrix.reset_index(), f"{key}_{word}_embeddings.csv", "Download the embedding matrix (CSV)",
                     key="download_matrix")
