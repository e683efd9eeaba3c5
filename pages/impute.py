"""Impute: upload partial expression profiles and get the full transcriptome back, or try it on demo samples."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from gtex_models import demo, inference, plots
from gtex_models.covariates import SEXES
from gtex_models.io.errors import InputError, max_input_mb
from gtex_models.io.tables import ORIENTATIONS
from pages._shared import (
    SIMULATED,
    demo_cohort,
    download_csv,
    model,
    scenario_note,
    selected_model,
    simulated_note,
)

SCALE_LABELS = {"auto": "Detect", **inference.SCALE_NAMES}
PER_FILE, PER_SAMPLE = "One tissue for the whole file", "Per sample, from a sample table"
PREVIEW_ROWS = 200
UPLOAD, TRY = "Upload your samples", f"Try it on demo samples ({SIMULATED})"


@st.cache_data(show_spinner=False, max_entries=8)
def _read(data: bytes, filename: str, orientation: str, key: str) -> inference.Alignment:
    """An uploaded file read and aligned to model ``key``'s genes."""
    return inference.align_to_model(inference.read_upload(data, filename, orientation), model(key)[2].genes)


@st.cache_data(show_spinner=False, max_entries=8)
def _impute(data: bytes, filename: str, orientation: str, key: str, samples: pd.DataFrame, scale: str,
            n_draws: int) -> inference.ImputationResult:
    """The imputation of an upload (cached on the file's bytes and every option)."""
    imputer, _, space = model(key)
    alignment = _read(data, filename, orientation, key)
    return inference.impute_upload(imputer, space, alignment, samples, scale, n_draws)


@st.cache_data(show_spinner=False, max_entries=16)
def _trial(key: str, rows: tuple[int, ...], rate: float, seed: int) -> inference.TrialResult:
    """The try-it experiment on demo rows ``rows``."""
    imputer, _, space = model(key)
    cohort = inference.cohort_for_model(demo_cohort(), space)
    return inference.hide_and_impute(imputer, cohort, rows, rate, seed)


def _sample_options(space: inference.ModelSpace, sample_ids: list[str]) -> dict[str, Any] | None:
    """Tissue, sex and age widgets; returns sample_table's keyword arguments (None until complete)."""
    mode = st.radio("Tissue of the samples", (PER_FILE, PER_SAMPLE), horizontal=True)
    if mode == PER_SAMPLE:
        left, right = st.columns([3, 1])
        sheet = left.file_uploader("Sample table (sample_id, tissue; optional sex, age)",
                                   type=["csv", "tsv", "txt"], key="sample_table")
        column = right.text_input("Tissue column", value="tissue")
        if sheet is None:
            st.info("Upload a sample table whose `sample_id` column matches the expression file.")
            return None
        return {"annotation": inference.read_sample_upload(sheet.getvalue(), sheet.name, column)}
    left, middle, right = st.columns([3, 1, 1])
    tissues = list(space.tissues)
    tissue = left.selectbox("Tissue (GTEx name)", tissues, index=None, placeholder="Choose the tissue…",
                            key="upload_tissue", help="The tissue every sample of the file comes from.")
    sex = middle.selectbox("Sex", SEXES, index=SEXES.index("unknown"))
    age = right.number_input("Age (years)", min_value=0.0, max_value=120.0, value=None, step=1.0,
                             placeholder="unknown")
    if tissue is None:
        st.info(f"Choose the tissue of the {len(sample_ids)} sample(s) to impute them.")
        return None
    return {"tissue": tissue, "sex": sex, "age": age}


def _coverage(alignment: inference.Alignment, scale: str, reason: str) -> None:
    """Coverage metrics, warnings and details of an aligned upload."""
    coverage = alignment.coverage
    cols = st.columns(4)
    cols[0].metric("Samples", f"{len(alignment.table.sample_ids):,}")
    cols[1].metric("Model genes in upload", f"{coverage.n_matched:,} / {coverage.n_model_genes:,}",
                   help="Model genes the upload has as a row or column (even if some values are missing).")
    cols[2].metric("Observed values", f"{coverage.observed_share:.1%}",
                   help="Share of observed values over samples x model genes; the rest is imputed.")
    cols[3].metric("Scale", inference.SCALE_NAMES[scale], help=f"Reason: {reason}.")
    for message in coverage.warnings:
        st.warning(message)
    with st.expander("Coverage details"):
        st.table(pd.Series(coverage.summary(), name="value").astype(str))
        if coverage.absent_genes:
            st.markdown(f"**Absent from the upload, imputed for every sample** ({len(coverage.absent_genes):,}): "
                        + ", ".join(coverage.absent_genes[:200]) + (" …" if len(coverage.absent_genes) > 200 else ""))


def _results(result: inference.ImputationResult) -> None:
    """Preview heat map, table, download and (GAIN-GTEx) interval chart of an imputation."""
    unit = inference.SCALE_NAMES[result.scale]
    st.success(f"Imputed {result.n_imputed:,} values: {result.values.shape[0]:,} samples x "
               f"{result.values.shape[1]:,} genes ({len(result.added_features):,} genes added from the model).")
    preview = result.values if result.scale == "log" else np.log2(result.values + 1.0)
    st.plotly_chart(plots.expression_preview(preview, result.observed, plots.LOG_UNIT), width="stretch")
    uncertainty = result.lower is not None and st.toggle(
        "Add uncertainty columns (5–95 % spread over noise draws)", value=True,
        help="Each column c gets c_lower and c_upper; observed values have a zero-width interval.")
    frame = inference.result_frame(result, uncertainty=uncertainty)
    st.dataframe(frame.head(PREVIEW_ROWS), width="stretch")
    shown = f"Showing {PREVIEW_ROWS} of {len(frame):,} rows; the download has them all. " if len(frame) > PREVIEW_ROWS else ""
    st.caption(f"{shown}Uploaded values are returned unchanged; the model fills the empty cells and the genes "
               "the upload lacked (appended at the end).")
    download_csv(frame, "imputed_expression.csv", f"Download the full imputed matrix ({unit}, CSV)", index=True,
                 key="download_imputed")
    if result.lower is not None and result.upper is not None:
        median = float(np.median(result.values.to_numpy()[result.imputed]))
        st.caption(f"Median interval width over the imputed values: {result.median_interval_width():.3g} {unit} "
                   f"(median imputed value {median:.3g} {unit}). Narrow intervals mean the generator "
                   "barely depends on its noise, not that the imputation is exact.")
        sample = st.selectbox("Sample for the interval chart", result.values.index.tolist())
        st.plotly_chart(plots.interval_chart(result.values.loc[sample], result.lower.loc[sample],
                                             result.upper.loc[sample], result.observed.loc[sample], unit),
                        width="stretch")


def upload_tab(key: str) -> None:
    """Upload, coverage report, sample covariates, imputation with model ``key``, results."""
    imputer, _, space = model(key)
    st.caption(f"Model: **{demo.DEMO_MODELS[key]}** ({space.n_genes:,} genes, {len(space.tissues)} tissues); "
               "change it in the sidebar.")
    st.markdown(
        "Upload a table of expression values: **CSV, TSV, GCT or h5ad**, samples x genes or genes x "
        "samples, genes as HGNC symbols or Ensembl IDs (versioned or not). Empty or `NA` cells are "
        f"missing values and get imputed. Limit: {max_input_mb():g} MB."
    )
    st.download_button("No file at hand? Download an example (simulated whole-blood samples with gaps)",
                       lambda: inference.example_upload(demo_cohort()).T.to_csv().encode(),
                       file_name="example_partial_whole_blood.csv", mime="text/csv", type="tertiary",
                       icon=":material/download:", key="download_example")
    upload = st.file_uploader("Expression file", type=list(inference.UPLOAD_TYPES), key="expression_file")
    left, right = st.columns(2)
    orientation = left.selectbox("Layout", ORIENTATIONS, help="`auto` looks at which axis holds gene identifiers.")
    scale_choice = right.selectbox("Scale", list(SCALE_LABELS), format_func=SCALE_LABELS.__getitem__,
                                   help="Detect: negative values or a maximum below 50 without a heavy tail "
                                        "mean log2(TPM + 1); otherwise TPM.")
    if upload is None:
        return
    try:
        data = upload.getvalue()
        alignment = _read(data, upload.name, orientation, key)
        table = alignment.table
        scale, reason = inference.resolve_scale(table.values, scale_choice, table.sample_ids, table.feature_ids)
        _coverage(alignment, scale, reason)
        options = _sample_options(space, alignment.table.sample_ids)
        if options is None:
            return
        samples = inference.sample_table(alignment.table.sample_ids, space.tissues, **options)
        n_draws = 0
        if inference.supports_uncertainty(imputer):
            n_draws = st.slider("Noise draws for uncertainty intervals (GAIN-GTEx)", 0, 50, 20, step=5,
                                help="0 skips the intervals.")
        with st.status("Imputing…", expanded=False) as status:
            result = _impute(data, upload.name, orientation, key, samples, scale, n_draws)
            status.update(label="Imputation done", state="complete")
    except InputError as error:
        st.error(str(error), icon=":material/error:")
        return
    _results(result)


def try_tab(key: str) -> None:
    """Hide values of held-out demo samples, impute them with model ``key``, compare with the truth."""
    st.markdown("Hide a share of the values of held-out demo samples, impute them, and compare with the truth.")
    simulated_note("The samples")
    scenario_note(key)
    cohort = demo_cohort()
    test = cohort.samples[cohort.samples["split"] == "test"]
    left, middle, right = st.columns(3)
    tissue = left.selectbox("Tissue", ["All tissues", *sorted(test["tissue"].unique())])
    pool = test if tissue == "All tissues" else test[test["tissue"] == tissue]
    n = middle.slider("Test samples", 1, min(100, len(pool)), min(20, len(pool)))
    rate = right.slider("Missing rate", 0.1, 0.9, 0.5, step=0.05, format="%.2f",
                        help="Share of each sample's values hidden before imputation.")
    rows = tuple(int(i) for i in pool.index[:n])
    with st.spinner("Imputing…"):
        trial = _trial(key, rows, rate, 0)
    cols = st.columns(3)
    cols[0].metric("R², all hidden values", f"{trial.r2_pooled:.3f}")
    cols[1].metric("Median per-gene R²", f"{trial.per_gene['r2'].median():.3f}")
    cols[2].metric("Hidden values", f"{int(trial.hidden.sum()):,}")
    st.plotly_chart(plots.imputed_vs_true(trial.truth[trial.hidden], trial.imputed[trial.hidden], trial.r2_pooled),
                    width="stretch")
    st.markdown("**Per-gene R²** over the hidden values of the chosen samples (few samples make it noisy).")
    st.dataframe(trial.per_gene, width="stretch", hide_index=True,
                 column_config={"r2": st.column_config.NumberColumn("R²", format="%.3f"),
                                "n_hidden": st.column_config.NumberColumn("Hidden values")})
    download_csv(trial.per_gene, "try_it_per_gene_r2.csv", "Download per-gene R² (CSV)", key="download_trial")


st.title("Impute")
model_key = selected_model()
if model_key is not None:
    mode = st.segmented_control("Mode", (UPLOAD, TRY), default=UPLOAD, required=True, key="impute_mode",
                                label_visibility="collapsed")
    (upload_tab if mode == UPLOAD else try_tab)(model_key)
