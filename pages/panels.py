"""Gene panels: recover the transcriptome from a few measured genes (issue #14).

Design a panel of k genes on the study's training donors (or upload a gene list), see how well the
selected model recovers every other gene of its held-out donors, group by group, the R²-against-size
curve of designed, most-variable and random panels, and download the panel.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from gtex_models.analysis.panels import (
    PANEL_BASELINES,
    choose_panel,
    compare_for_panel,
    default_panel_size,
    match_panel,
    panel_baselines,
    panel_donors,
    panel_r2,
    panel_size_curve,
    panel_sizes,
    panel_text,
    parse_panel,
)
from gtex_models.common.choices import PANEL_STRATEGIES
from gtex_models.interfaces import plots
from gtex_models.models.model_space import cohort_for_model
from gtex_models.studies.precompute import stored_default_panel
from gtex_models.studies.study import METHOD_LABELS
from pages._shared import (
    cohort,
    current_study,
    download_csv,
    model,
    model_info,
    selected_model,
    simulated_note,
    study_token,
    words,
)


def split_for_model(key: str) -> tuple:
    """(training donors, validation donors, test donors of the model's groups, at most
    :data:`~gtex_models.analysis.panels.MAX_TEST_SAMPLES`)
    in the model's space; the validation donors score the model-scored design's candidates."""
    return _split_for_model(study_token(), key)


@st.cache_resource(show_spinner=False, max_entries=8)
def _split_for_model(token: str, key: str) -> tuple:
    """:func:`split_for_model` of the study version ``token`` (shared, never mutated)."""
    return panel_donors(cohort_for_model(cohort(), model_info(key)[1]))


def stored_panel(key: str) -> dict | None:
    """The default panel the study stores for model ``key``, designed and scored when it was built (None: it
    stores none)."""
    return stored_default_panel(current_study().path, key)


@st.cache_data(show_spinner=False, max_entries=32)
def chosen_panel(token: str, key: str, strategy: str, size: int) -> list[int]:
    stored = stored_panel(key)
    if stored is not None and (stored["strategy"], stored["size"]) == (strategy, size):
        return stored["columns"]
    train, valid, _ = split_for_model(key)
    imputer = model(key)[0] if strategy == "model-scored" else None  # the other strategies need no model
    return choose_panel(strategy, train, size, imputer=imputer, valid=valid).tolist()


@st.cache_data(show_spinner=False, max_entries=32)
def scored(token: str, key: str, columns: tuple[int, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    stored = stored_panel(key)
    if stored is not None and tuple(stored["columns"]) == columns:
        return pd.DataFrame(stored["per_group"]), pd.DataFrame(stored["per_gene"])
    train, _, test = split_for_model(key)
    score = panel_r2(model(key)[0], test, columns, train)
    return score.per_group, score.per_gene


@st.cache_resource(show_spinner=False, max_entries=4)
def _baselines(token: str, key: str, methods: tuple[str, ...]) -> dict:
    """The simple ``methods`` fitted on the training donors in model ``key``'s space (shared, never mutated)."""
    train, valid, _ = split_for_model(key)
    return panel_baselines(train, valid if valid.n_samples else None, methods)


@st.cache_data(show_spinner=False, max_entries=16)
def comparison(token: str, key: str, columns: tuple[int, ...]) -> pd.DataFrame:
    """The study's models on model ``key``'s genes and the simple methods, scored for the panel ``columns`` on the
    validation donors, best first (``key``: a study model's key or a method; ``model``: its label)."""
    study = current_study()
    space = model_info(key)[1]

    def same_space(other: str) -> bool:  # imputes the validation donors in this model's space
        theirs = model_info(other)[1]
        return theirs.tissues == space.tissues and theirs.genes["symbol"].tolist() == space.genes["symbol"].tolist()

    same_genes = [k for k in study.models if k == key or same_space(k)]
    studied = {study.models[k].method for k in same_genes}  # a simple method the study has is not fitted again
    baselines = _baselines(token, key, tuple(m for m in PANEL_BASELINES if m not in studied))
    candidates = {k: model(k)[0] for k in same_genes} | baselines
    train, valid, _ = split_for_model(key)
    table = compare_for_panel(candidates, valid, columns, train).rename(columns={"model": "key"})
    labels = {k: study.models[k].label for k in same_genes} | {m: METHOD_LABELS[m] for m in baselines}
    return table.assign(model=table["key"].map(labels))


def recommend(key: str, columns: list[int], valid_samples: int) -> None:
    """The section that compares models for this panel and recommends one (on request: it fits the simple methods
    and imputes the validation donors with every model)."""
    study = current_study()
    st.subheader("Which model for this panel")
    st.caption("A model trained with about half of the values hidden may do poorly from a few measured genes. The "
               "study's models on these genes and the simple methods fitted on the training donors (Gaussian "
               "conditional, group mean) are scored on the validation donors with this panel observed; the best "
               "is recommended.")
    if valid_samples == 0:
        st.info("The study's cohort has no validation donors in the model's groups, so models are not compared.")
        return
    asked = (key, tuple(columns))
    if not (st.button("Compare the models for this panel", key="panel_compare")
            or st.session_state.get("panel_compare_done") == asked):
        return
    st.session_state["panel_compare_done"] = asked
    with st.spinner("Fitting the simple methods and scoring every model on the validation donors…"):
        try:
            table = comparison(study_token(), key, tuple(columns))
        except ValueError as error:  # e.g. a model that cannot impute these donors
            st.error(f"The models could not be compared for this panel: {error}")
            return
    best = table.iloc[0]
    st.markdown(f"Recommended for this panel: **{best['model']}** (validation R² {best['valid_r2']:.3f}).")
    if best["key"] not in study.models:
        st.caption(f"It is not a model of this study: `python -m gtex_models study add-model --study {study.path} "
                   f"--method {best['key']}` adds it, and the pages then offer it.")
    elif best["key"] != key:
        st.caption("Pick it in the sidebar to impute with it.")
    st.dataframe(table[["model", "valid_r2"]].rename(columns={"model": "Model", "valid_r2": "Validation R²"}),
                 hide_index=True, column_config={"Validation R²": st.column_config.NumberColumn(format="%.3f")})


@st.cache_data(show_spinner=False, max_entries=8)
def curve(token: str, key: str, sizes: tuple[int, ...], model_scored: bool) -> pd.DataFrame:
    train, valid, test = split_for_model(key)
    return panel_size_curve(model(key)[0], train, test, sizes, valid=valid if model_scored else None)


st.title("Gene panels")
key = selected_model()
if key is not None:
    study = current_study()
    simulated_note()
    space = model_info(key)[1]
    word = words().group
    if not study.has_cohort:
        st.info("This study has no cohort: a panel is designed on its training donors and scored on its test "
                "donors, so there is nothing to compute here.")
        st.stop()
    train, valid, test = split_for_model(key)
    if test.n_samples == 0 or train.n_samples < 2:
        st.info(f"The study's cohort has no test donors in the model's {word}s (or too few training donors): a "
                "panel cannot be scored on it.")
        st.stop()
    n_genes = space.n_genes
    st.caption(f"The model sees the panel genes of {test.n_samples:,} held-out test samples and imputes the other "
               f"genes. R² is pooled over samples (reference: the {word}'s mean over the training donors, so the "
               f"{word}-mean imputer scores 0), stable even for a {word} with one test sample.")
    source = st.radio("Panel", ["Design", "Upload a gene list"], horizontal=True, key="panel_source")
    columns: list[int] | None = None
    if source == "Design":
        left, right = st.columns(2)
        size = int(left.number_input("Panel size (genes)", 1, n_genes - 1, default_panel_size(n_genes), step=10,
                                     key="panel_size",
                                     help=f"between 1 and {n_genes - 1:,} (the model has {n_genes:,} genes)"))
        strategy = right.selectbox("Strategy", PANEL_STRATEGIES, key="panel_strategy", help="designed: greedy selection of the genes "
                                   "that best explain the others on the training donors; model-scored: candidate "
                                   "panels scored with this model on the validation donors, the best kept (slower, "
                                   "tens of seconds); most-variable: highest SD of log expression; random: uniform draw")
        with st.spinner(f"Choosing {size} genes…"):
            try:
                columns = chosen_panel(study_token(), key, strategy, size)
            except ValueError as error:
                st.error(f"No {strategy} panel: {error}")
    else:
        upload = st.file_uploader("Gene list (one Ensembl ID or symbol per line)", type=["txt", "csv", "tsv"],
                                  key="panel_file")
        if upload is not None:
            try:
                identifiers = parse_panel(upload.getvalue().decode("utf-8-sig"))
                match = match_panel(space.genes, identifiers)
            except (UnicodeDecodeError, ValueError) as error:
                st.error(f"This gene list cannot be used: {error}")
            else:
                columns = match.columns.tolist()
                (st.warning if match.unmatched else st.success)(f"{upload.name}: {match.describe(n_genes)}.")
    if columns:
        with st.spinner("Imputing the genes outside the panel…"):
            per_group, per_gene = scored(study_token(), key, tuple(columns))
        st.metric(f"Mean per-gene R² of the {n_genes - len(columns):,} genes outside the panel",
                  f"{per_gene['r2'].mean():.3f}")
        st.plotly_chart(plots.panel_r2_by_group(per_group, f"R² by {word}, panel of {len(columns)} genes"),
                        width="stretch")
        st.download_button("Download the panel (one gene per line)", panel_text(space.genes, columns,
                           header=f"panel of {len(columns)} genes for {study.models[key].label}"),
                           file_name=f"panel_{len(columns)}.txt", mime="text/plain", key="download_panel")
        download_csv(per_group, f"{key}_panel_{len(columns)}_r2_by_{word}.csv", f"Download R² by {word} (CSV)",
                     key="download_panel_groups")
        recommend(key, columns, valid.n_samples)

    st.subheader("R² against panel size")
    sizes = tuple(panel_sizes(n_genes))
    st.caption(f"Designed, most-variable and random panels of {', '.join(map(str, sizes))} genes, scored as above.")
    with_model_scored = st.checkbox("Add model-scored panels (slower: a search per size)", key="panel_curve_scored",
                                    disabled=valid.n_samples == 0,
                                    help="needs validation donors; each size's panel is searched with this model")
    if st.button("Compute the curve", key="panel_curve") or st.session_state.get("panel_curve_done") == key:
        st.session_state["panel_curve_done"] = key
        with st.spinner("Designing and scoring panels of every size…"):
            table = curve(study_token(), key, sizes, with_model_scored)
        st.plotly_chart(plots.panel_curve(table), width="stretch")
        download_csv(table, f"{key}_panel_curve.csv", "Download the curve (CSV)", key="download_curve")
