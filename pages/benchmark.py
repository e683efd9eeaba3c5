"""Benchmark and model card: methods compared, how the chosen model was trained, the cohort, real data."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from gtex_models import plots
from gtex_models.inference import ModelSpace
from pages._shared import (
    SIMULATED,
    benchmark,
    demo_cohort,
    download_csv,
    model,
    selected_model,
    simulated_note,
    train_counts,
)

BENCHMARK_COLUMNS = {
    "method": "Method", "scenario": "Scenario", "missing_rate": "Missing rate", "r2_mean": "Mean R²",
    "r2_median": "Median R²", "r2_std": "SD R²", "n_genes": "Genes", "n_test_samples": "Test samples",
    "fit_seconds": "Fit (s)", "impute_seconds": "Impute (s)",
}
REAL_DATA = """
The demo cohort is simulated. To work with the public GTEx v8 release, download the gene TPM matrix
(`GTEx_Analysis_2017-06-05_v8_RNASeQCv1.1.9_gene_tpm.gct.gz`), the sample attributes
(`GTEx_Analysis_v8_Annotations_SampleAttributesDS.txt`) and the subject phenotypes
(`GTEx_Analysis_v8_Annotations_SubjectPhenotypesDS.txt`) from the GTEx portal, then:

```bash
python -m gtex_models prepare-gtex \\
    --gct GTEx_Analysis_2017-06-05_v8_RNASeQCv1.1.9_gene_tpm.gct.gz \\
    --samples GTEx_Analysis_v8_Annotations_SampleAttributesDS.txt \\
    --subjects GTEx_Analysis_v8_Annotations_SubjectPhenotypesDS.txt \\
    --out runs/gtex_v8
python -m gtex_models --help   # train, evaluate and impute commands
```
"""



def model_card(metadata: dict[str, Any], space: ModelSpace) -> dict[str, Any]:
    """The facts of a checkpoint worth a line each."""
    history = metadata.get("history") or {}
    evaluation = metadata.get("evaluation") or {}
    card = {
        "Method": metadata.get("method"),
        "Scenario": metadata.get("scenario", "?"),
        "Genes": f"{space.n_genes:,}" + (f" ({metadata['pathway']} pathway)" if metadata.get("pathway") else ""),
        "Tissues": len(space.tissues),
        "Epochs": f"{history.get('epochs', '?')} (best {history.get('best_epoch', '?')}; {history.get('stop_reason', '')})",
        "Training time": f"{history.get('seconds', float('nan')):.0f} s on {history.get('device', '?')} "
                         f"({history.get('precision', 'fp32')})",
    }
    if evaluation:
        card["Test R² (mean / median)"] = (f"{evaluation['r2_mean']:.3f} / {evaluation['r2_median']:.3f} at "
                                           f"{evaluation['missing_rate']:.0%} missing")
    return card


st.title("Benchmark & model card")
simulated_note("All numbers on this page")

st.subheader("Method comparison")
try:
    records = benchmark()
except FileNotFoundError:
    st.info("No benchmark records yet: they are written when the demo is built (`python -m gtex_models build-demo`).")
else:
    st.plotly_chart(plots.benchmark_bars(records), width="stretch")
    shown = records[[c for c in BENCHMARK_COLUMNS if c in records.columns]].rename(columns=BENCHMARK_COLUMNS)
    st.dataframe(shown, width="stretch", height="content", hide_index=True,
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in ("Mean R²", "Median R²", "SD R²", "Fit (s)", "Impute (s)")})
    download_csv(records, "benchmark.csv", "Download the benchmark (CSV)", key="download_benchmark")

key = selected_model()
if key is not None:
    imputer, metadata, space = model(key)
    st.subheader("Model card")
    left, right = st.columns([2, 3])
    with left:
        st.markdown("  \n".join(f"**{name}:** {value}" for name, value in model_card(metadata, space).items()))
        st.markdown("**Hyper-parameters**")
        st.json((metadata.get("config") or {}).get("params", {}), expanded=False)
    with right:
        history = metadata.get("history") or {}
        if history.get("train_loss"):
            st.plotly_chart(plots.training_curves(history), width="stretch")
        else:
            st.info("This checkpoint has no training history.")

st.subheader(f"Cohort · {SIMULATED}")
cohort = demo_cohort()
cols = st.columns(4)
cols[0].metric("Samples", f"{cohort.n_samples:,}")
cols[1].metric("Donors", f"{cohort.n_donors:,}")
cols[2].metric("Tissues", len(cohort.tissues))
cols[3].metric("Genes", f"{cohort.n_genes:,}")
counts = pd.crosstab(cohort.samples["tissue"], cohort.samples["split"]).reset_index()
counts = counts.assign(training_samples=counts["tissue"].map(train_counts()))
st.dataframe(counts, width="stretch", hide_index=True)
download_csv(counts, "demo_cohort_tissues.csv", "Download samples per tissue (CSV)", key="download_cohort")

st.subheader("Using real GTEx data")
st.markdown(REAL_DATA)
