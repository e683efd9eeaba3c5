"""Benchmark and model card: methods compared, how the chosen model was trained, the cohort, real data."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from gtex_models.data.cohort import Cohort
from gtex_models.data.provenance import DonorLeakError
from gtex_models.interfaces import plots
from gtex_models.models.calibration import check_unseen, coverage_table
from gtex_models.models.model_space import ModelSpace, cohort_for_model
from gtex_models.models.registry import make_imputer
from gtex_models.studies.study import METHOD_LABELS
from pages._shared import (
    SIMULATED,
    benchmark,
    calibration,
    cohort,
    current_study,
    download_csv,
    group_word,
    model,
    rebuild_hint,
    selected_model,
    simulated_note,
    study_token,
    train_counts,
)

BENCHMARK_COLUMNS = {
    "method": "Method", "scenario": "Scenario", "missing_rate": "Missing rate", "r2_mean": "Mean R²",
    "r2_median": "Median R²", "r2_std": "SD R²", "n_genes": "Genes", "n_test_samples": "Test samples",
    "fit_seconds": "Fit (s)", "impute_seconds": "Impute (s)",
}
SCALE_NOTES = {"tpm": "values imported as TPM (modelled as log2(TPM + 1))", "log": "values imported on a log scale"}
REAL_DATA = """
To work with the public GTEx v8 release, download the gene TPM matrix
(`GTEx_Analysis_2017-06-05_v8_RNASeQCv1.1.9_gene_tpm.gct.gz`), the sample attributes
(`GTEx_Analysis_v8_Annotations_SampleAttributesDS.txt`) and the subject phenotypes
(`GTEx_Analysis_v8_Annotations_SubjectPhenotypesDS.txt`) from the GTEx portal, then:

```bash
python -m gtex_models prepare-gtex \\
    --gct GTEx_Analysis_2017-06-05_v8_RNASeQCv1.1.9_gene_tpm.gct.gz \\
    --samples GTEx_Analysis_v8_Annotations_SampleAttributesDS.txt \\
    --subjects GTEx_Analysis_v8_Annotations_SubjectPhenotypesDS.txt \\
    --out runs/gtex_v8
python -m gtex_models study build --cohort runs/gtex_v8 --out data/studies/gtex_v8 --title "GTEx v8"
```
The new study then appears in the sidebar's study picker. Your own matrix (CSV, TSV, GCT, h5ad) becomes a
study on the **New study** page, or with `python -m gtex_models import` then `study build`.
"""

CALIBRATION_RATES = (0.1, 0.3, 0.5, 0.7, 0.9)
CALIBRATION_LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def _test_donors(key: str) -> Cohort:
    """The study's test donors of the groups model ``key`` knows, in its model space."""
    space = model(key)[2]
    test = cohort_for_model(cohort(), space).split("test")
    return test.subset_samples(test.samples["tissue"].isin(space.tissues).to_numpy())


@st.cache_data(show_spinner="Scoring the intervals on the test donors…", max_entries=8)
def _coverage(token: str, key: str) -> pd.DataFrame | None:
    """Empirical coverage of model ``key``'s calibrated intervals on the study's test donors (None: no calibration
    or no test donor of a group the model knows; :class:`DonorLeakError` if it was calibrated on any of them)."""
    imputer = model(key)[0]
    made = calibration(key)[0]
    test = _test_donors(key)
    if made is None or test.n_samples == 0:
        return None
    oracle = None
    if test.meta.get("source") == "simulated":
        oracle = make_imputer("oracle").fit(test)
    return coverage_table(imputer, made, test, CALIBRATION_RATES, CALIBRATION_LEVELS, oracle=oracle)


def calibration_view(key: str, word: str) -> None:
    """Nominal against empirical coverage of the model's intervals, per missing rate and per group."""
    made, source = calibration(key)
    if made is None:
        st.info(source)
        return
    info, donors = made.info, made.donors
    fitted_on = "donors" if donors is None else f"{donors.split} donors (digest {donors.digest[:12]})"
    st.caption(f"Split-conformal intervals, {source}: {info.get('n_samples', '?'):,} samples of "
               f"{info.get('n_donors', '?')} {fitted_on}, {info.get('n_scores', 0):,} hidden values. Below, their "
               "coverage on the test donors (never used for training or calibration), with a new mask at each "
               "missing rate.")
    try:
        note = check_unseen(made, _test_donors(key), "the study's test donors")
        table = _coverage(study_token(), key)
    except DonorLeakError as error:
        st.error(f"{error} Their coverage is not shown.", icon=":material/error:")
        return
    if note:
        st.caption(note)
    if table is None:
        st.info(f"The study's cohort has no test donor in a {word} the model knows, so coverage cannot be measured.")
        return
    left, right = st.columns(2)
    left.plotly_chart(plots.calibration_curves(table), width="stretch")
    pooled = table[(table["group"] == "all") & (table["level"] == 0.9)]
    shown = [c for c in ("missing_rate", "coverage", "width_median", "oracle_width_median") if c in pooled.columns]
    right.dataframe(pooled[shown], hide_index=True, width="stretch",
                    column_config={"missing_rate": st.column_config.NumberColumn("Missing rate", format="%.1f"),
                                   "coverage": st.column_config.NumberColumn("Coverage of 90 % intervals",
                                                                             format="%.3f"),
                                   "width_median": st.column_config.NumberColumn("Median width (log2)",
                                                                                 format="%.2f"),
                                   "oracle_width_median": st.column_config.NumberColumn(
                                       "Oracle's exact width", format="%.2f",
                                       help="The simulation's exact conditional SD: the narrowest 90 % interval")})
    st.plotly_chart(plots.coverage_by_group(table, 0.9), width="stretch")
    download_csv(table, f"{key}_interval_coverage.csv", "Download the coverage table (CSV)", key="download_coverage")


def model_card(metadata: dict[str, Any], space: ModelSpace) -> dict[str, Any]:
    """The facts of a checkpoint worth a line each."""
    history = metadata.get("history") or {}
    evaluation = metadata.get("evaluation") or {}
    card = {
        "Method": metadata.get("method"),
        "Scenario": metadata.get("scenario", "?"),
        "Genes": f"{space.n_genes:,}" + (f" ({metadata['pathway']} pathway)" if metadata.get("pathway") else ""),
        group_word(space.tissues).capitalize() + "s": len(space.tissues),
        "Epochs": f"{history.get('epochs', '?')} (best {history.get('best_epoch', '?')}; {history.get('stop_reason', '')})",
        "Training time": f"{history.get('seconds', float('nan')):.0f} s on {history.get('device', '?')} "
                         f"({history.get('precision', 'fp32')})",
    }
    if evaluation:
        card["Test R² (mean / median)"] = (f"{evaluation['r2_mean']:.3f} / {evaluation['r2_median']:.3f} at "
                                           f"{evaluation['missing_rate']:.0%} missing")
    return card


st.title("Benchmark & model card")
study = current_study()
if study is None:
    st.info("No study is open: pick one in the sidebar, or create one on the New study page.")
    st.stop()
simulated_note("All numbers on this page")

st.subheader("Method comparison")
records = benchmark()
if records is None or records.empty:
    st.info(f"Study {study.title!r} has no benchmark records (they are written when a study is built with "
            f"baselines). {rebuild_hint(study)}")
else:
    records = records.assign(method=records["method"].map(lambda m: METHOD_LABELS.get(m, m)))
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
            st.info("This checkpoint has no training history (baselines have none).")
    st.subheader("Intervals: nominal against empirical coverage")
    if study.has_cohort:
        calibration_view(key, group_word(space.tissues))
    else:
        st.info("The study has no cohort, so the intervals' coverage cannot be measured here.")

st.subheader("Cohort" + (f" · {SIMULATED}" if study.simulated else ""))
summary = study.cohort_summary
if study.has_cohort:
    data = cohort()
    word = group_word(data.tissues)
    cols = st.columns(4)
    cols[0].metric("Samples", f"{data.n_samples:,}")
    cols[1].metric("Donors", f"{data.n_donors:,}")
    cols[2].metric(f"{word.capitalize()}s", len(data.tissues))
    cols[3].metric("Genes", f"{data.n_genes:,}")
    absent = [name for name, flag in (("sex", summary.get("has_sex", True)), ("age", summary.get("has_age", True)))
              if not flag]
    notes = [SCALE_NOTES.get(summary.get("scale"), ""),
             f"no {' or '.join(absent)} recorded" if absent else ""]
    if any(notes):
        st.caption("; ".join(n for n in notes if n).capitalize() + ".")
    counts = pd.crosstab(data.samples["tissue"], data.samples["split"]).reset_index()
    counts = counts.assign(training_samples=counts["tissue"].map(train_counts())).rename(columns={"tissue": word})
    st.dataframe(counts, width="stretch", hide_index=True)
    download_csv(counts, f"cohort_{word}s.csv", f"Download samples per {word} (CSV)", key="download_cohort")
else:
    st.info(f"The cohort of study {study.title!r} is missing ({study.cohort_path}); its summary from the manifest: "
            + ", ".join(f"{k} {v}" for k, v in summary.items()) + ".")

st.subheader("Using real GTEx data, or your own")
st.markdown(REAL_DATA)
