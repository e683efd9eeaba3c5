"""Benchmark and model card: methods compared, how the chosen model was trained, the cohort, real data."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from gtex_models.data.cohort import Cohort
from gtex_models.data.provenance import DonorLeakError
from gtex_models.interfaces import plots
from gtex_models.interfaces.naming import Words
from gtex_models.models.calibration import Calibration, check_unseen
from gtex_models.models.model_space import ModelSpace, cohort_for_model
from gtex_models.studies.jobs import FAILED, Job
from gtex_models.studies.precompute import (
    COVERAGE_TABLE,
    STORED_NOTE,
    calibrated_coverage,
    stored_no_coverage,
    write_coverage,
)
from gtex_models.studies.study import METHOD_LABELS
from pages._shared import (
    SIMULATED,
    background,
    benchmark,
    cohort,
    current_study,
    deployment,
    download_csv,
    model_info,
    rebuild_hint,
    recommendation_note,
    selected_model,
    simulated_note,
    study_at,
    study_cohort,
    study_ref,
    train_counts,
    words,
)

BENCHMARK_COLUMNS = {
    "method": "Method", "scenario": "Scenario", "missing_rate": "Missing rate", "r2_mean": "Mean R²",
    "r2_median": "Median R²", "r2_std": "SD R²", "n_genes": "Genes", "n_test_samples": "Test samples",
    "fit_seconds": "Fit (s)", "impute_seconds": "Impute (s)",
}
POLL_SECONDS = 1.0
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



def _test_donors(key: str) -> Cohort:
    """The study's test donors of the groups model ``key`` knows, in its model space."""
    space = model_info(key)[1]
    test = cohort_for_model(cohort(), space).split("test")
    return test.subset_samples(test.samples["tissue"].isin(space.tissues).to_numpy())


@st.cache_data(show_spinner=False, max_entries=16)
def stored_coverage(path: str, stamp: int, key: str) -> pd.DataFrame | None:
    """The coverage table the study stores for model ``key`` (None: it has none; older studies)."""
    return study_at((path, stamp)).optional_table(key, COVERAGE_TABLE)


def coverage_job(key: str) -> Job:
    """The background job scoring model ``key``'s intervals on the study's test donors (calibrating them first when
    the checkpoint has none); its result: (calibration, note, table). Stored in the study when it can be."""
    ref = study_ref()
    metadata = model_info(key)[0]
    data = study_cohort(ref)
    writable = metadata.get("calibration") is not None and not deployment().read_only

    def work(progress, should_stop) -> tuple[Calibration | None, str, pd.DataFrame | None]:
        imputer = study_at(ref).load_model(key)[0]  # loaded here: the page's run does not wait for torch
        made, note, table = calibrated_coverage(imputer, metadata, data, progress)
        if writable and table is not None:
            try:
                write_coverage(ref[0], key, table)  # the next server finds it
            except OSError:  # a read-only study folder: kept in memory only
                pass
        return made, note, table

    return background(("coverage", *ref, key), f"interval coverage of {key}", work)


@st.fragment(run_every=POLL_SECONDS)
def _coverage_progress(job: Job) -> None:
    """The background job's progress, polled; the whole page reruns once it is done."""
    if not job.running:
        st.rerun()
    st.progress(job.fraction, text=f"Scoring the intervals on the test donors in the background: {job.message} "
                                   f"({job.seconds:.0f} s). The rest of the page is ready; this part fills in when "
                                   "done.")


def coverage_result(key: str) -> tuple[Calibration | None, str, pd.DataFrame | None] | Job:
    """Model ``key``'s (calibration, where it comes from, coverage table): stored in the study (or why there is
    none, when calibrating it was refused as the study was built), or the result of the background job, or that
    job while it runs (or after it failed)."""
    metadata = model_info(key)[0]
    if metadata.get("calibration") is not None:
        table = stored_coverage(*study_ref(), key)
        if table is not None:
            return metadata["calibration"], STORED_NOTE, table
    elif (why := stored_no_coverage(study_ref()[0], key)) is not None:
        return None, why, None
    job = coverage_job(key)
    return job if job.running or job.state == FAILED else job.result


def _unseen_by(made: Calibration, key: str) -> bool:
    """Whether calibration ``made`` never saw the study's test donors; shows the refusal (False), or the note
    that its donors were not recorded."""
    try:
        unchecked = check_unseen(made, _test_donors(key), "the study's test donors")
    except DonorLeakError as error:
        st.error(f"{error} Their coverage is not shown.", icon=":material/error:")
        return False
    if unchecked:
        st.caption(unchecked)
    return True


def calibration_view(key: str, named: Words) -> None:
    """Nominal against empirical coverage of the model's intervals, per missing rate and per group: stored in the
    study, else scored in the background (with its progress) while the rest of the page is usable. A calibration
    stored in the checkpoint is checked against the study's test donors before anything is scored (one fitted on
    them is refused); one the background job makes, once it is made."""
    stored = model_info(key)[0].get("calibration")
    if stored is not None and not _unseen_by(stored, key):
        return
    result = coverage_result(key)
    if isinstance(result, Job):
        if result.running:
            _coverage_progress(result)
        else:
            st.error(f"Scoring the intervals failed: {result.error}", icon=":material/error:")
        return
    made, note, table = result
    if made is None:
        st.info(note)
        return
    info, donors = made.info, made.donors
    fitted_on = "donors" if donors is None else f"{donors.split} donors (digest {donors.digest[:12]})"
    st.caption(f"Split-conformal intervals, {note}: {info.get('n_samples', '?'):,} samples of "
               f"{info.get('n_donors', '?')} {fitted_on}, {info.get('n_scores', 0):,} hidden values. Below, their "
               "coverage on the test donors (never used for training or calibration), with a new mask at each "
               "missing rate.")
    if stored is None and not _unseen_by(made, key):
        return
    if table is None:
        st.info(f"The study's cohort has no test donor in a {named.group} the model knows, so coverage cannot be "
                "measured.")
        return
    left, right = st.columns(2)
    left.plotly_chart(plots.calibration_curves(table), width="stretch")
    pooled = table[(table["group"] == "all") & (table["level"] == 0.9)]
    shown = [c for c in ("missing_rate", "coverage", "width_median", "oracle_width_median") if c in pooled.columns]
    right.dataframe(pooled[shown], hide_index=True, width="stretch",
                    column_config={"missing_rate": st.column_config.NumberColumn("Missing rate", format="%.1f"),
                                   "coverage": st.column_config.NumberColumn("Coverage of 90 % intervals",
                                                                             format="%.3f"),
                                   "width_median": st.column_config.NumberColumn(f"Median width ({named.log_unit})",
                                                                                 format="%.2f"),
                                   "oracle_width_median": st.column_config.NumberColumn(
                                       "Oracle's exact width", format="%.2f",
                                       help="The simulation's exact conditional SD: the narrowest 90 % interval")})
    st.plotly_chart(plots.coverage_by_group(table, 0.9, named.Group), width="stretch")
    download_csv(table, f"{key}_interval_coverage.csv", "Download the coverage table (CSV)", key="download_coverage")


def model_card(metadata: dict[str, Any], space: ModelSpace, named: Words) -> dict[str, Any]:
    """The facts of a checkpoint worth a line each."""
    history = metadata.get("history") or {}
    evaluation = metadata.get("evaluation") or {}
    card = {
        "Method": metadata.get("method"),
        "Scenario": metadata.get("scenario", "?"),
        "Genes": f"{space.n_genes:,}" + (f" ({metadata['pathway']} pathway)" if metadata.get("pathway") else ""),
        named.Groups: len(space.tissues),
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
named = words()
if study is None:
    st.info("No study is open: pick one in the sidebar, or create one on the New study page.")
    st.stop()
simulated_note("All numbers on this page")
key = selected_model()
if key is not None and study.has_cohort and isinstance(job := coverage_result(key), Job) and job.running:
    st.info("The intervals' coverage of this model is being scored in the background (see *Intervals* below); "
            "everything else on this page is ready.", icon=":material/hourglass_top:")

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
st.markdown(recommendation_note(study))

if key is not None:
    metadata, space = model_info(key)
    st.subheader("Model card")
    left, right = st.columns([2, 3])
    with left:
        st.markdown("  \n".join(f"**{name}:** {value}" for name, value in model_card(metadata, space, named).items()))
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
        calibration_view(key, named)
    else:
        st.info("The study has no cohort, so the intervals' coverage cannot be measured here.")

st.subheader("Cohort" + (f" · {SIMULATED}" if study.simulated else ""))
summary = study.cohort_summary
if study.has_cohort:
    data = cohort()
    word = named.group
    cols = st.columns(4)
    cols[0].metric("Samples", f"{data.n_samples:,}")
    cols[1].metric("Donors", f"{data.n_donors:,}")
    cols[2].metric(named.Groups, len(data.tissues))
    cols[3].metric("Genes", f"{data.n_genes:,}")
    absent = [name for name, flag in (("sex", summary.get("has_sex", True)), ("age", summary.get("has_age", True)))
              if not flag]
    notes = [f"values modelled as {named.log_unit}",
             f"no {' or '.join(absent)} recorded" if absent else ""]
    note = "; ".join(n for n in notes if n)
    st.caption(note[0].upper() + note[1:] + ".")  # not str.capitalize: it would lower "TPM"
    counts = pd.crosstab(data.samples["tissue"], data.samples["split"]).reset_index()
    counts = counts.assign(training_samples=counts["tissue"].map(train_counts())).rename(columns={"tissue": word})
    st.dataframe(counts, width="stretch", hide_index=True)
    download_csv(counts, f"cohort_{word}s.csv", f"Download samples per {word} (CSV)", key="download_cohort")
else:
    st.info(f"The cohort of study {study.title!r} is missing ({study.cohort_path}); its summary from the manifest: "
            + ", ".join(f"{k} {v}" for k, v in summary.items()) + ".")

st.subheader("Using real GTEx data, or your own")
st.markdown(REAL_DATA)
