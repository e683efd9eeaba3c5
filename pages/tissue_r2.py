"""Tissue R²: how well each tissue's (group's) genes are recovered (Viñas et al. 2021, Figs. 2 and 4)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from gtex_models import plots
from gtex_models.benchmark import DEFAULT_RATES, evaluation_tables
from gtex_models.evaluation import MIN_HIDDEN_PER_GENE
from gtex_models.inference import cohort_for_model
from pages._shared import (
    cohort,
    current_study,
    download_csv,
    group_word,
    model,
    same_gene_set,
    scenario_note,
    selected_model,
    simulated_note,
    study_token,
    tables,
    train_counts,
)

DEFAULT_RATE = 0.5  # the rate of the precomputed tables when the model's record does not say
DEFAULT_TISSUES = ("Whole Blood", "Brain - Cortex", "Liver")


@st.cache_data(show_spinner=False, max_entries=16)
def per_tissue_at(token: str, key: str, rate: float) -> pd.DataFrame:
    """Per-group, per-gene R² on the study's extended test set at another missing rate."""
    imputer, _, space = model(key)
    test = cohort_for_model(cohort(), space).split("test")
    return evaluation_tables(imputer, test, rates=(), missing_rate=rate)["per_tissue"]


st.title("Tissue R²")
key = selected_model()
if key is not None:
    study = current_study()
    word = group_word(model(key)[2].tissues)
    simulated_note()
    scenario_note(key)
    precomputed = float(study.models[key].evaluation.get("missing_rate", DEFAULT_RATE))
    st.subheader(f"Per-gene R² in each {word}")
    if study.has_cohort:
        rates = sorted({*DEFAULT_RATES, precomputed})
        rate = st.select_slider("Missing rate", rates, value=precomputed, format_func=lambda r: f"{r:.0%}",
                                help=f"{precomputed:.0%} is precomputed; other rates are computed once, then cached.")
    else:
        rate = precomputed
        st.caption(f"Only the precomputed {precomputed:.0%} missing rate: the study's cohort is missing, so "
                   "other rates cannot be computed.")
    if rate == precomputed:
        per_tissue = tables(key).get("per_tissue")
    else:
        with st.status(f"Imputing the extended test set at {rate:.0%} missing…") as status:
            per_tissue = per_tissue_at(study_token(), key, rate)
            status.update(label=f"R² at {rate:.0%} missing computed", state="complete")
    if per_tissue is None or per_tissue.dropna(subset=["r2"]).empty:
        st.info(f"This model has no per-{word} R² table, so there is nothing to draw here.")
    else:
        order = st.segmented_control(f"Sort {word}s by", plots.BOX_ORDERS, default=plots.BOX_ORDERS[0],
                                     required=True)
        st.caption(f"Held-out donors, extended test set (every {word} equally represented), {rate:.0%} of each "
                   f"sample's values hidden. Box colour: the {word}'s number of training samples.")
        counts = train_counts()
        st.plotly_chart(plots.tissue_r2_boxplot(per_tissue, counts, order), width="stretch")
        stats = plots.box_statistics(per_tissue).assign(training_samples=lambda t: t["tissue"].map(counts))
        with st.expander(f"Per-{word} summary table"):
            st.dataframe(stats.round(4), width="stretch", hide_index=True)
            download_csv(stats, f"{key}_per_{word}_summary.csv", key="download_summary")
        download_csv(per_tissue, f"{key}_per_{word}_r2.csv", f"Download per-gene R² per {word} (CSV)",
                     key="download_r2")

    st.subheader("R² against the missing rate")
    models = same_gene_set(key)
    if not models:
        st.info("This model has no R²-across-missing-rates table, so there is nothing to draw here.")
    else:
        across = {label: tables(k)["across_rates"] for label, k in models.items()}
        available = sorted(set().union(*(set(t["tissue"]) for t in across.values())) - {plots.POOLED})
        defaults = [t for t in DEFAULT_TISSUES if t in available] or available[:3]
        pooled_label = f"All {word}s"
        chosen = st.multiselect(f"{word.capitalize()}s", [plots.POOLED, *available], default=[plots.POOLED, *defaults],
                                format_func=lambda t: pooled_label if t == plots.POOLED else t)
        st.caption(f"Mean per-gene R² with a ±1 SD band; the study's models on the same genes side by side. "
                   f"Estimator: at each rate the extended test set is masked several times (independent masks) "
                   f"and each gene's R² in a {word} is computed on all their hidden values together, so every "
                   f"gene has about {MIN_HIDDEN_PER_GENE} hidden values per {word} even at 10 % missing "
                   f"(one mask would give it 5).")
        st.plotly_chart(plots.r2_vs_missing_rate(across, chosen), width="stretch")
        for label, k in models.items():
            download_csv(across[label], f"{k}_r2_across_rates.csv", f"Download {label} R² across rates (CSV)",
                         key=f"download_across_{k}")
