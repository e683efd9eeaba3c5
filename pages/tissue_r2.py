"""Tissue R²: how well each tissue's genes are recovered (Viñas et al. 2021, Figs. 2 and 4)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from gtex_models import plots
from gtex_models.benchmark import DEFAULT_RATES, evaluation_tables
from gtex_models.inference import cohort_for_model
from pages._shared import (
    demo_cohort,
    download_csv,
    model,
    pair_keys,
    selected_model,
    scenario_note,
    simulated_note,
    tables,
    train_counts,
)

PRECOMPUTED_RATE = 0.5  # the rate of the demo's precomputed tables (the benchmark's default)
DEFAULT_TISSUES = (plots.POOLED, "Whole Blood", "Brain - Cortex", "Liver")


@st.cache_data(show_spinner=False)
def per_tissue_at(key: str, rate: float) -> pd.DataFrame:
    """Per-tissue, per-gene R² on the demo's extended test set at another missing rate."""
    imputer, _, space = model(key)
    test = cohort_for_model(demo_cohort(), space).split("test")
    return evaluation_tables(imputer, test, rates=(), missing_rate=rate)["per_tissue"]


st.title("Tissue R²")
key = selected_model()
if key is not None:
    simulated_note()
    scenario_note(key)
    st.subheader("Per-gene R² in each tissue")
    rate = st.select_slider("Missing rate", DEFAULT_RATES, value=PRECOMPUTED_RATE,
                            format_func=lambda r: f"{r:.0%}",
                            help=f"{PRECOMPUTED_RATE:.0%} is precomputed; other rates are computed once, then cached.")
    if rate == PRECOMPUTED_RATE:
        per_tissue = tables(key)["per_tissue"]
    else:
        with st.status(f"Imputing the extended test set at {rate:.0%} missing…") as status:
            per_tissue = per_tissue_at(key, rate)
            status.update(label=f"R² at {rate:.0%} missing computed", state="complete")
    order = st.segmented_control("Sort tissues by", plots.BOX_ORDERS, default=plots.BOX_ORDERS[0], required=True)
    st.caption(f"Held-out donors, extended test set (every tissue equally represented), {rate:.0%} of each "
               "sample's values hidden. Box colour: the tissue's number of training samples.")
    counts = train_counts()
    st.plotly_chart(plots.tissue_r2_boxplot(per_tissue, counts, order), width="stretch")
    stats = plots.box_statistics(per_tissue).assign(training_samples=lambda t: t["tissue"].map(counts))
    with st.expander("Per-tissue summary table"):
        st.dataframe(stats.round(4), width="stretch", hide_index=True)
        download_csv(stats, f"{key}_per_tissue_summary.csv", key="download_summary")
    download_csv(per_tissue, f"{key}_per_tissue_r2.csv", "Download per-gene R² per tissue (CSV)", key="download_r2")

    st.subheader("R² against the missing rate")
    pairs = pair_keys(key)
    across = {label: tables(k)["across_rates"] for label, k in pairs.items()}
    available = sorted(set().union(*(set(t["tissue"]) for t in across.values())) - {plots.POOLED})
    chosen = st.multiselect("Tissues", [plots.POOLED, *available],
                            default=[t for t in DEFAULT_TISSUES if t == plots.POOLED or t in available])
    st.caption("Mean per-gene R² with a ±1 SD band; methods side by side on the same gene set. At low missing "
               "rates each gene has few hidden values per tissue, so per-tissue R² is noisy there.")
    st.plotly_chart(plots.r2_vs_missing_rate(across, chosen), width="stretch")
    for label, k in pairs.items():
        download_csv(across[label], f"{k}_r2_across_rates.csv", f"Download {label} R² across rates (CSV)",
                     key=f"download_across_{k}")
