"""Donors: a donor's tissues (groups) they did not give, predicted from the ones they did (cross-tissue)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from gtex_models.analysis.cross_tissue import has_donors
from gtex_models.data.cohort import Cohort
from gtex_models.data.donor_targets import hide_samples
from gtex_models.interfaces import donor_plots
from gtex_models.interfaces.donor_upload import TARGET_SEPARATOR, donor_result_frame, impute_donors
from gtex_models.interfaces.upload import UPLOAD_TYPES, read_sample_upload
from gtex_models.models.calibration import DEFAULT_LEVEL, check_level
from gtex_models.models.model_space import ModelSpace, cohort_for_model
from gtex_models.studies.donors import DONORS_DIR, DonorResults
from gtex_models.studies.study import METHOD_LABELS, Study
from pages._shared import GROUP_COLUMNS, cohort, current_study, download_csv, simulated_note, study_token, words

LABELS = {**METHOD_LABELS, "mean": "Group mean", "donor-gauss": "Donor Gaussian", "donor-net": "Donor network",
          "donor-oracle": "Donor oracle"}
TEST_DONOR, UPLOAD = "A test donor of the study", "Upload a donor's samples"
RECORD_COLUMNS = {"method": "Method", "r2_mean": "Mean R² over target groups", "r2_median": "Median R²",
                  "tissues_won": "Groups won (beats mean and blood)", "n_tissues": "Target groups",
                  "fit_seconds": "Fit (s)", "impute_seconds": "Impute (s)", "coverage": "Coverage",
                  "coverage_min_group": "Coverage, lowest group"}
UPLOADED_DONOR = "uploaded donor"


def _token(study: Study) -> str:
    """The selected study's version, and its cross-tissue results' (rewritten without touching the manifest)."""
    marker = study.path / DONORS_DIR / "benchmark.json"
    return f"{study_token()}|{marker.stat().st_mtime_ns if marker.is_file() else 0}"


@st.cache_resource(show_spinner="Loading the donor model…", max_entries=4)
def _results(token: str, path: str) -> tuple[DonorResults | None, Any, dict[str, Any] | None]:
    results = DonorResults.open(Study.open(path))
    if results is None:
        return None, None, None
    imputer, metadata = results.load_model()
    return results, imputer, metadata


def scores_view(results: DonorResults, word: str) -> None:
    """Every method's cross-tissue scores on the study's test donors: table, boxes per target group, curve."""
    st.subheader(f"How well each method predicts a {word} from the donor's others")
    records = pd.DataFrame.from_records(results.records)
    table = records[[c for c in RECORD_COLUMNS if c in records]].rename(columns=RECORD_COLUMNS)
    table["Method"] = table["Method"].map(lambda m: LABELS.get(m, m))
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={RECORD_COLUMNS["tissues_won"]: st.column_config.NumberColumn(format="percent")})
    st.caption(f"Each test donor's samples are hidden one at a time and predicted from the donor's other samples; "
               f"per {word}, each gene's R² is computed over the test donors who gave that {word}. The page's model "
               f"is **{LABELS.get(results.model, results.model)}** (the best mean R²).")
    st.plotly_chart(donor_plots.method_boxes(results.boxes, LABELS), width="stretch")
    if len(results.by_sources):
        st.markdown("**R² against the number of the donor's other samples used** (chosen at random per target)")
        st.plotly_chart(donor_plots.r2_by_sources(results.by_sources, LABELS), width="stretch")


def _with_target(donor: Cohort, tissue: str) -> tuple[Cohort, int, np.ndarray | None]:
    """The donor's samples with ``tissue`` hidden (if collected: its first sample) or added empty; the target's
    row and, when collected, its measured values."""
    rows = np.flatnonzero(donor.samples["tissue"].astype(str) == tissue)
    if len(rows):
        return hide_samples(donor, rows[:1]), int(rows[0]), np.asarray(donor.x[rows[0]])
    first = donor.samples.iloc[[0]].assign(sample_id=f"{donor.samples['donor_id'].iloc[0]}{TARGET_SEPARATOR}{tissue}",
                                          tissue=tissue)
    x = np.vstack([donor.x, np.full((1, donor.n_genes), np.nan, np.float32)])
    samples = pd.concat([donor.samples, first], ignore_index=True)
    return Cohort(x, donor.genes, samples, donor.transform, donor.meta), donor.n_samples, None


def test_donor_view(imputer: Any, metadata: dict[str, Any], space: ModelSpace, test: Cohort, word: str,
                    level: float) -> None:
    """Pick a test donor and a target group: the donor's grid, the predicted profile with intervals."""
    counts = test.samples.groupby("donor_id")["tissue"].nunique().sort_values(ascending=False)
    donor_id = st.selectbox("Test donor", counts.index.tolist(),
                            format_func=lambda d: f"{d} ({counts[d]} {word}s)", key="donor_pick")
    donor = test.subset_samples(np.flatnonzero(test.samples["donor_id"] == donor_id))
    collected = set(donor.samples["tissue"].astype(str))
    missing = [t for t in space.tissues if t not in collected]
    tissue = st.selectbox(f"Target {word}", space.tissues, index=space.tissues.index((missing or space.tissues)[0]),
                          key="donor_target",
                          help=f"A {word} the donor gave is hidden and predicted from their other samples, so you can "
                               "compare; one they did not give is predicted from all of them.")
    status = pd.Series({t: "collected" if t in collected else "" for t in space.tissues})
    status[tissue] = "imputed"
    st.plotly_chart(donor_plots.donor_grid(status), width="stretch")
    st.caption(f"Green: {word}s the donor gave ({len(collected)}); red: the target.")
    query, row, truth = _with_target(donor, tissue)
    if query.observed.sum() == 0:
        st.info(f"The donor gave only this {word}: there is nothing to predict it from. Pick another target.")
        return
    predicted = imputer.impute(query)
    show_profile(imputer, metadata, query, predicted, row, truth, level, word)


def show_profile(imputer: Any, metadata: dict[str, Any], query: Cohort, predicted: np.ndarray, row: int,
                 truth: np.ndarray | None, level: float, word: str) -> None:
    """The target's predicted profile on the log scale: chart, R² when its measurement is known, table, download."""
    std, centre = query.transform.std, query.transform.mean
    calibration = metadata.get("calibration")
    lower = upper = predicted
    if calibration is not None:
        lower, upper = calibration.interval(imputer, query, predicted, level)
    group_mean = _group_mean(imputer, query, row)
    profile = pd.DataFrame({"predicted": predicted[row] * std + centre, "lower": lower[row] * std + centre,
                            "upper": upper[row] * std + centre, "group_mean": group_mean * std + centre},
                           index=query.genes["symbol"].astype(str).to_numpy())
    if truth is not None:
        profile["truth"] = truth * std + centre
        inside = float(((profile["truth"] >= profile["lower"]) & (profile["truth"] <= profile["upper"])).mean())
        r2 = donor_plots.profile_r2(profile["truth"].to_numpy(), profile["predicted"].to_numpy(),
                                    profile["group_mean"].to_numpy())
        st.metric(f"R² of this profile against the {word} mean", f"{r2:.3f}",
                  help="1 - Σ(measured - predicted)² / Σ(measured - group mean)² over the genes")
        if calibration is not None:
            st.caption(f"{inside:.1%} of the measured values are inside their {level:.0%} interval.")
    if calibration is None:
        st.caption("The donor model has no interval calibration: no intervals.")
    unit = "log2(TPM + 1)" if query.transform.scale == "tpm" else "log scale"
    st.plotly_chart(donor_plots.target_profile(profile, unit), width="stretch")
    st.dataframe(profile.round(3), width="stretch", height=280)
    download_csv(profile.rename_axis("gene").reset_index(), "donor_target_profile.csv", key="donor_download")


def _group_mean(imputer: Any, query: Cohort, row: int) -> np.ndarray:
    """What the model expects of the target's group before the donor's samples are seen (its row, no sources)."""
    alone = query.subset_samples([row])
    alone = Cohort(np.full((1, query.n_genes), np.nan, np.float32), alone.genes,
                   alone.samples.assign(donor_id="__alone__"), alone.transform, alone.meta)
    return imputer.impute(alone)[0]


def upload_view(imputer: Any, metadata: dict[str, Any], space: ModelSpace, word: str, level: float) -> None:
    """Upload one donor's samples and a sample table with their groups; predict a chosen group."""
    expression = st.file_uploader("The donor's samples (expression file)", type=list(UPLOAD_TYPES), key="donor_expr")
    samples = st.file_uploader(f"Sample table (sample id and {word})", type=["csv", "tsv", "txt"], key="donor_samples")
    column = st.selectbox(f"{word.capitalize()} column of the sample table", GROUP_COLUMNS, key="donor_column")
    tissue = st.selectbox(f"Target {word}", space.tissues, key="donor_upload_target")
    if expression is None or samples is None:
        st.info(f"Upload the donor's samples and a sample table naming each sample's {word}.")
        return
    try:
        table = read_sample_upload(samples.getvalue(), samples.name, column)
        table = table.assign(donor_id=UPLOADED_DONOR, sex="", age="")[["sample_id", "donor_id", "tissue", "sex", "age"]]
        target = pd.DataFrame([{"sample_id": "", "donor_id": UPLOADED_DONOR, "tissue": tissue, "sex": "", "age": ""}])
        result = impute_donors(expression.getvalue(), imputer, space, pd.concat([table, target], ignore_index=True),
                               filename=expression.name, calibration=metadata.get("calibration"),
                               interval=level if metadata.get("calibration") is not None else None)
    except ValueError as error:
        st.error(f"{error}", icon=":material/error:")
        return
    for message in result.warnings:
        st.warning(message)
    st.plotly_chart(donor_plots.donor_grid(result.grid.iloc[0].reindex(space.tissues).fillna("")), width="stretch")
    st.dataframe(donor_result_frame(result, uncertainty=True).T.round(3), width="stretch", height=280)
    download_csv(donor_result_frame(result, uncertainty=True), "donor_prediction.csv", index=True,
                 key="donor_upload_download")


def main() -> None:
    st.title("Donors")
    st.caption("Cross-tissue imputation: a donor's profile in a tissue (group) they did not give, predicted from the "
               "samples they did give and their sex and age.")
    study = current_study()
    if study is None:
        st.info("No study is open: pick one in the sidebar, or create one on the New study page.")
        return
    if not study.has_cohort:
        st.info(f"Study {study.title!r} has no cohort, so it has no donors to show.")
        return
    data = cohort()
    word = words().group
    if not has_donors(data):
        st.info(f"Study {study.title!r} has nothing to show here: no donor of its cohort gave samples in two or more "
                f"{word}s ({data.n_donors:,} donors, {data.n_samples:,} samples), so no donor's {word} can be predicted "
                f"from their others. A cohort needs a donor column (donor_id, subject or SUBJID in the sample table) "
                f"with several {word}s per donor.")
        return
    results, imputer, metadata = _results(_token(study), str(study.path))
    if results is None:
        st.info(f"Study {study.title!r} has donors but no cross-tissue model yet. Fit and score one with\n\n"
                f"`python -m gtex_models study add-donors --study {study.path}`")
        return
    simulated_note()
    scores_view(results, word)
    space = ModelSpace.from_metadata(metadata)
    st.subheader(f"A donor's {word}s")
    level = check_level(st.slider("Interval level", 0.5, 0.99, DEFAULT_LEVEL, 0.01, key="donor_level"))
    if st.radio("Donor", (TEST_DONOR, UPLOAD), horizontal=True, key="donor_mode") == UPLOAD:
        upload_view(imputer, metadata, space, word, level)
        return
    test = cohort_for_model(data, space).split("test")
    test = test.subset_samples(test.samples["tissue"].isin(space.tissues).to_numpy())
    if test.n_samples == 0:
        st.info("The study has no test donor in the model's groups.")
        return
    test_donor_view(imputer, metadata, space, test, word, level)


main()
