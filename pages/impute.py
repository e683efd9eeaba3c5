"""Impute: upload partial expression profiles and get the full transcriptome back, or try it on held-out samples."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from gtex_models.common.choices import ORIENTATIONS
from gtex_models.data.covariates import SEXES
from gtex_models.data.readers.errors import InputError, max_input_mb
from gtex_models.interfaces import plots, try_it
from gtex_models.interfaces import upload as pipeline
from gtex_models.interfaces.naming import Words
from gtex_models.models import model_space
from gtex_models.studies.study import Study
from pages._shared import (
    DUPLICATE_LABELS,
    Upload,
    calibration,
    cohort,
    current_study,
    download_csv,
    model,
    model_info,
    scenario_note,
    selected_model,
    simulated_note,
    study_cohort,
    study_ref,
    study_token,
    words,
)

PER_FILE, PER_SAMPLE = "One {word} for the whole file", "Per sample, from a sample table"
PREVIEW_ROWS, PREVIEW_COLUMNS = 50, 60  # styling is slow: ~3,000 cells take ~0.3 s
IMPUTED_STYLE = "background-color: #ffe0b2"  # the imputed cells of the result preview
UPLOAD, TRY = "Upload your samples", "Try it on held-out samples"
MEAN_R2 = "Mean per-gene R²"  # Try it's headline (the README's metric)
ALL = "All"
EXAMPLE_TISSUE = "Whole Blood"
INTERVAL_LEVELS = (0.5, 0.8, 0.9, 0.95, 0.99)


@st.cache_data(show_spinner=False, max_entries=8)
def _prepare(token: str, key: str, upload: Upload, options: tuple[str, str, str],
             gene_map: Upload | None) -> pipeline.PreparedUpload:
    """An upload read, mapped to genes (with a gene map), aligned to model ``key`` and its scale decided;
    ``options``: orientation, scale choice, duplicates."""
    orientation, scale, duplicates = options
    mapping = None if gene_map is None else pipeline.read_gene_map_upload(*gene_map)
    return pipeline.prepare_upload(upload[0], model_info(key)[1], filename=upload[1], orientation=orientation,
                                    scale=scale, duplicates=duplicates, gene_map=mapping)


@st.cache_data(show_spinner=False, max_entries=8)
def _impute(token: str, key: str, upload: Upload, options: tuple[str, str, str], gene_map: Upload | None,
            samples: pd.DataFrame, level: float | None) -> pipeline.ImputationResult:
    """The imputation of an upload (cached on the study, the model, the files' bytes and every option), with
    calibrated intervals at ``level`` (None: without)."""
    imputer, _, space = model(key)
    prepared = _prepare(token, key, upload, options, gene_map)
    result = pipeline.impute_upload(imputer, space, prepared.alignment, samples, prepared.scale,
                                     calibration=calibration(key)[0], interval=level)
    result.scale_reason = prepared.scale_reason
    return result


@st.cache_data(show_spinner=False, max_entries=16)
def _trial(token: str, key: str, rows: tuple[int, ...], rate: float, seed: int, level: float) -> try_it.TrialResult:
    """The try-it experiment on rows ``rows`` of the study's cohort (intervals at ``level`` when calibrated)."""
    imputer, _, space = model(key)
    return try_it.hide_and_impute(imputer, model_space.cohort_for_model(cohort(), space), rows, rate, seed,
                                     calibration(key)[0], level)


def _interval_level(key: str, widget_key: str) -> float | None:
    """The interval level widget (None when the model has no calibration: the reason is shown instead)."""
    made, source = calibration(key)
    if made is None:
        st.info(source)
        return None
    named = words()
    return st.select_slider("Interval level", INTERVAL_LEVELS, value=0.9, format_func=lambda v: f"{v:.0%}",
                            key=widget_key, help=f"Calibrated per-value intervals ({source}): on held-out "
                            f"donors, this share of hidden values falls inside its interval, in every {named.group} "
                            f"and at any missing rate. Widths follow the {named.group}, the gene, the share missing "
                            "and how well the model re-imputes the sample's own observed values (a noisy sample gets "
                            "wider intervals); that check costs one more imputation pass.")


@st.cache_data(show_spinner=False, max_entries=4)
def example_csv(path: str, stamp: int) -> bytes:
    """Held-out samples of the study at ``path`` (version ``stamp``) with gaps, as the CSV a user would upload
    (genes as columns). Called by the download button outside the page's run: it reads no session."""
    data = study_cohort((path, stamp))
    test_groups = data.samples.loc[data.samples["split"] == "test", "tissue"]
    group = EXAMPLE_TISSUE if EXAMPLE_TISSUE in set(test_groups) else test_groups.value_counts().index[0]
    return try_it.example_upload(data, group).T.to_csv().encode()


def scale_labels(named: Words) -> dict[str, str]:
    """The scale chooser's options named for the study: detect, linear values, the log scale."""
    return {"auto": "Detect", "tpm": named.linear_unit, "log": named.log_unit}


def _sample_options(study: Study, space: model_space.ModelSpace, sample_ids: list[str]) -> dict[str, Any] | None:
    """Group, sex and age widgets (only those the model can use); sample_table's keyword arguments, or None
    until complete."""
    word = words().group
    summary = study.cohort_summary
    has_sex, has_age = summary.get("has_sex", True), summary.get("has_age", True)
    if len(space.tissues) == 1:
        st.caption(f"The model knows one {word}, {space.tissues[0]!r}: every sample is imputed as such.")
        return {"tissue": space.tissues[0]}
    mode = st.radio(f"{word.capitalize()} of the samples", (PER_FILE.format(word=word), PER_SAMPLE), horizontal=True,
                    key="group_mode")
    if mode == PER_SAMPLE:
        left, right = st.columns([3, 1])
        wanted = ", ".join(["sample_id", word] + (["optional sex"] if has_sex else []) + (["age"] if has_age else []))
        sheet = left.file_uploader(f"Sample table ({wanted})", type=["csv", "tsv", "txt"], key="sample_table")
        column = right.text_input(f"{word.capitalize()} column", value="tissue")
        if sheet is None:
            st.info("Upload a sample table whose `sample_id` column matches the expression file.")
            return None
        return {"annotation": pipeline.read_sample_upload(sheet.getvalue(), sheet.name, column)}
    widths = [3] + [1] * (has_sex + has_age)
    columns = st.columns(widths)
    label = "Tissue (GTEx name)" if word == "tissue" else "Group"
    tissue = columns[0].selectbox(label, list(space.tissues), index=None, placeholder=f"Choose the {word}…",
                                  key="upload_tissue", help=f"The {word} every sample of the file comes from.")
    options: dict[str, Any] = {"tissue": tissue}
    if has_sex:
        options["sex"] = columns[1].selectbox("Sex", SEXES, index=SEXES.index("unknown"))
    if has_age:
        options["age"] = columns[-1].number_input("Age (years)", min_value=0.0, max_value=120.0, value=None,
                                                  step=1.0, placeholder="unknown")
    if not (has_sex or has_age):
        st.caption("The study records no sex or age, so the model does not use them.")
    if tissue is None:
        st.info(f"Choose the {word} of the {len(sample_ids)} sample(s) to impute them.")
        return None
    return options


def _coverage(alignment: pipeline.Alignment, scale: str, reason: str, named: Words) -> None:
    """Coverage metrics, warnings and details of an aligned upload."""
    coverage = alignment.coverage
    cols = st.columns(4)
    cols[0].metric("Samples", f"{len(alignment.table.sample_ids):,}")
    cols[1].metric("Model genes in upload", f"{coverage.n_matched:,} / {coverage.n_model_genes:,}",
                   help="Model genes the upload has as a row or column (even if some values are missing).")
    cols[2].metric("Observed values", f"{coverage.observed_share:.1%}",
                   help="Share of observed values over samples x model genes; the rest is imputed.")
    cols[3].metric("Scale", named.scale_name(scale), help=f"Reason: {reason}.")
    for message in coverage.warnings:
        st.warning(message)
    with st.expander("Coverage details"):
        st.table(pd.Series(coverage.summary(), name="value").astype(str))
        if coverage.absent_genes:
            st.markdown(f"**Absent from the upload, imputed for every sample** ({len(coverage.absent_genes):,}): "
                        + ", ".join(coverage.absent_genes[:200]) + (" …" if len(coverage.absent_genes) > 200 else ""))


def _to_log(values: pd.DataFrame | pd.Series, scale: str) -> pd.DataFrame | pd.Series:
    """Values on the model's log scale, for the charts (a log-scale upload as it is, linear values log2(x + 1))."""
    return values if scale == "log" else np.log2(values + 1.0)


def _marked_preview(frame: pd.DataFrame, imputed: pd.DataFrame) -> pd.io.formats.style.Styler:
    """The first rows and columns of the result, imputed cells shaded."""
    shown = frame.iloc[:PREVIEW_ROWS, :PREVIEW_COLUMNS]
    mask = imputed.reindex(index=shown.index, columns=shown.columns, fill_value=False).to_numpy()
    return shown.style.apply(lambda _: np.where(mask, IMPUTED_STYLE, ""), axis=None).format(precision=3)


def _results(result: pipeline.ImputationResult, named: Words) -> None:
    """Preview heat map, marked table, downloads and interval chart of an imputation."""
    unit = named.scale_name(result.scale)
    st.success(f"Imputed {result.n_imputed:,} values: {result.values.shape[0]:,} samples x "
               f"{result.values.shape[1]:,} genes ({len(result.added_features):,} genes added from the model).")
    uploaded = result.values.columns[: result.values.shape[1] - len(result.added_features)]
    st.plotly_chart(plots.expression_preview(_to_log(result.values[uploaded], result.scale),
                                             result.observed[uploaded], named.log_unit), width="stretch")
    st.caption("The heat maps show the genes of your upload (those with gaps first); the genes the model added "
               "are in the table and the download.")
    level = result.interval_level
    uncertainty = result.lower is not None and st.toggle(
        f"Add interval columns (calibrated {level:.0%} intervals)", value=True, key="interval_columns",
        help="Each column c gets c_lower and c_upper; observed values have a zero-width interval.")
    frame = pipeline.result_frame(result, uncertainty=uncertainty)
    imputed = pipeline.imputed_frame(result)
    st.dataframe(_marked_preview(frame, imputed), width="stretch")
    rows, columns = frame.shape
    clipped = (f"Showing {min(rows, PREVIEW_ROWS)} of {rows:,} rows and {min(columns, PREVIEW_COLUMNS)} of "
               f"{columns:,} columns; the download has them all. " if rows > PREVIEW_ROWS or columns > PREVIEW_COLUMNS
               else "")
    st.caption(f"{clipped}Shaded cells were imputed; the others are your values, unchanged. The genes the upload "
               "lacked are appended at the end.")
    left, right = st.columns(2)
    with left:
        download_csv(frame, "imputed_expression.csv", f"Download the full imputed matrix ({unit}, CSV)", index=True,
                     key="download_imputed")
    with right:
        download_csv(imputed.astype(int), "imputed_cells.csv", "Download which cells were imputed (CSV, 1 = imputed)",
                     index=True, key="download_imputed_mask")
    if result.lower is not None and result.upper is not None:
        log_width = (_to_log(result.upper, result.scale) - _to_log(result.lower, result.scale)).to_numpy()
        st.caption(f"Calibrated {level:.0%} intervals: on held-out donors {level:.0%} of hidden values fall inside "
                   f"theirs. Median width over the imputed values: {np.median(log_width[result.imputed]):.2f} "
                   f"{named.log_unit} units (a factor of {2 ** np.median(log_width[result.imputed]):.2g} between the "
                   "bounds); the table and download give the bounds in the upload's scale.")
        sample = st.selectbox("Sample for the interval chart", result.values.index.tolist())
        values, lower, upper = (_to_log(frame.loc[sample], result.scale) for frame in
                                (result.values, result.lower, result.upper))
        st.plotly_chart(plots.interval_chart(values, lower, upper, result.observed.loc[sample], named.log_unit,
                                             label=f"calibrated {level:.0%} interval"), width="stretch")


def upload_tab(study: Study, key: str) -> None:
    """Upload, coverage report, sample covariates, imputation with model ``key``, results."""
    space = model_info(key)[1]
    named = words()
    st.caption(f"Model: **{study.models[key].label}** of study **{study.title}** ({space.n_genes:,} genes, "
               f"{named.count(len(space.tissues))}); change it in the sidebar.")
    st.markdown(
        "Upload a table of expression values: **CSV, TSV, GCT or h5ad**, samples x genes or genes x "
        "samples, genes named as the model names them (HGNC symbols or Ensembl IDs, versioned or not; or the "
        "study's own identifiers). Microarray probe IDs need a probe-to-gene map (below). Empty or `NA` cells "
        f"are missing values and get imputed. Limit: {max_input_mb():g} MB."
    )
    if study.has_cohort:
        st.download_button("No file at hand? Download an example (held-out samples of the study with gaps)",
                           partial(example_csv, *study_ref()), file_name="example_partial_samples.csv",
                           mime="text/csv", type="tertiary", icon=":material/download:", key="download_example")
    upload = st.file_uploader("Expression file", type=list(pipeline.UPLOAD_TYPES), key="expression_file")
    left, middle, right = st.columns(3)
    orientation = left.selectbox("Layout", ORIENTATIONS, help="`auto` looks at which axis holds gene identifiers.")
    labels = scale_labels(named)
    scale_choice = middle.selectbox("Scale", list(labels), format_func=labels.__getitem__,
                                    help=f"Detect: negative values or a maximum below 50 without a heavy tail "
                                         f"mean {named.log_unit}; otherwise {named.linear_unit} (log2(x + 1) is "
                                         "taken).")
    duplicates = right.selectbox("Duplicated genes", list(DUPLICATE_LABELS), format_func=DUPLICATE_LABELS.__getitem__,
                                 key="duplicates", help="Rows (columns) that name the same gene, or several probes "
                                                        "of a gene without a gene map.")
    mapping = st.file_uploader("Probe-to-gene map (optional, for microarray probe IDs): two columns, probe ID and "
                               "gene symbol or Ensembl ID", type=["csv", "tsv", "txt", "gz"], key="gene_map")
    if upload is None:
        return
    token = study_token()
    files = (upload.getvalue(), upload.name)
    gene_map = None if mapping is None else (mapping.getvalue(), mapping.name)
    options = (orientation, scale_choice, duplicates)
    try:
        prepared = _prepare(token, key, files, options, gene_map)
        _coverage(prepared.alignment, prepared.scale, prepared.scale_reason, named)
        sample_options = _sample_options(study, space, prepared.table.sample_ids)
        if sample_options is None:
            return
        samples = pipeline.sample_table(prepared.table.sample_ids, space.tissues, **sample_options)
        level = _interval_level(key, "upload_interval_level")
        with st.status("Imputing…", expanded=False) as status:
            result = _impute(token, key, files, options, gene_map, samples, level)
            status.update(label="Imputation done", state="complete")
    except InputError as error:
        st.error(str(error), icon=":material/error:")
        return
    _results(result, named)


def try_tab(study: Study, key: str) -> None:
    """Hide values of the study's held-out samples, impute them with model ``key``, compare with the truth."""
    if not study.has_cohort:
        st.info(f"Study {study.title!r} has no cohort (its folder lacks it), so there are no held-out samples to "
                "try the model on. Upload your own samples instead.")
        return
    space = model_info(key)[1]
    named = words()
    word = named.group
    st.markdown("Hide a share of the values of the study's held-out (test) samples, impute them, and compare "
                "with the truth.")
    simulated_note("The samples")
    scenario_note(key)
    samples = cohort().samples
    test = samples[(samples["split"] == "test") & samples["tissue"].isin(space.tissues)]
    if test.empty:
        st.info(f"The study's cohort has no test sample in a {word} the model knows.")
        return
    left, middle, right = st.columns(3)
    groups = sorted(test["tissue"].unique())
    small = plots.too_few(test["tissue"].value_counts().to_dict(), groups)
    group = left.selectbox(named.Group, [ALL, *groups],
                           format_func=lambda g: named.all_groups if g == ALL else
                           plots.too_few_label(g, small[g]) if g in small else g)
    pool = test if group == ALL else test[test["tissue"] == group]
    most = min(100, len(pool))
    n = middle.slider("Test samples", 1, most, min(20, most)) if most > 1 else 1
    rate = right.slider("Missing rate", 0.1, 0.9, 0.5, step=0.05, format="%.2f",
                        help="Share of each sample's values hidden before imputation.")
    rows = tuple(int(i) for i in pool.index[:n])
    level = _interval_level(key, "trial_interval_level")
    with st.spinner("Imputing…"):
        trial = _trial(study_token(), key, rows, rate, 0, level or 0.9)
    cols = st.columns(4)
    r2 = trial.per_gene["r2"]
    cols[0].metric(MEAN_R2, f"{r2.mean():.3f}", help=(
        "The README's and the paper's metric: each gene's R² over its hidden values in the chosen samples, "
        f"against each value's {word} mean over the training donors (the {word}-mean imputer scores 0), "
        f"averaged over the {int(r2.notna().sum()):,} genes with one (median {r2.median():.3f}). The R² of all "
        f"hidden values pooled together is {trial.r2_pooled:.3f} (the scatter below); compare models by the "
        "per-gene R²."))
    cols[1].metric("Median per-gene R²", f"{r2.median():.3f}")
    cols[2].metric("Hidden values", f"{int(trial.hidden.sum()):,}")
    if trial.coverage is not None:
        cols[3].metric(f"Inside their {trial.interval_level:.0%} interval", f"{trial.coverage:.1%}",
                       help="Share of the hidden values inside their calibrated interval (few samples make it "
                            "noisy: values of one sample err together).")
    if trial.interval_note:  # refused (no coverage): a leak; else a calibration whose donors are unknown
        (st.warning if trial.coverage is None else st.caption)(trial.interval_note)
    if group in small:
        st.caption(f":gray[{plots.too_few_label(group, small[group])}: with fewer than {plots.MIN_SCORED_SAMPLES} "
                   f"samples, a {word}'s per-gene R² mostly measures how little these samples vary.]")
    st.plotly_chart(plots.imputed_vs_true(trial.truth[trial.hidden], trial.imputed[trial.hidden], trial.r2_pooled,
                                          unit=named.log_unit), width="stretch")
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
    (upload_tab if mode == UPLOAD else try_tab)(current_study(), model_key)
