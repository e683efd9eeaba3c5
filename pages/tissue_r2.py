"""Tissue R² (Group R² for a cohort's own groups): how well each group's genes are recovered (Viñas et al. 2021,
Figs. 2 and 4)."""

from __future__ import annotations

import hashlib
import warnings
from typing import Callable

import pandas as pd
import streamlit as st

from gtex_models.analysis.benchmark import DEFAULT_RATES, evaluation_tables
from gtex_models.analysis.other_cohort import (
    CohortComparison,
    compare_cohorts,
    read_group_map_upload,
    shifted_test_donors,
)
from gtex_models.common.choices import HARMONISATIONS, ORIENTATIONS, SCALE_CHOICES
from gtex_models.common.messages import list_examples
from gtex_models.data.cohort import Cohort
from gtex_models.interfaces import plots, upload
from gtex_models.models.model_space import cohort_for_model
from gtex_models.studies.study import Study
from pages._shared import (
    GROUP_COLUMNS,
    Upload,
    cohort,
    current_study,
    download_csv,
    model,
    model_info,
    same_gene_set,
    scenario_note,
    selected_model,
    simulated_note,
    split_counts,
    study_token,
    tables,
    train_counts,
    words,
)

DEFAULT_RATE = 0.5  # the rate of the precomputed tables when the model's record does not say
DEFAULT_TISSUES = ("Whole Blood", "Brain - Cortex", "Liver")
NO_COHORT, UPLOADED = "None", "Upload a cohort"
SHIFTED = "Shifted copy of the test donors (simulated platform shift)"
COMPARED = "_compared_cohort"  # the second-cohort request whose comparison is shown (set by the Compare button)
COMPARE_RATES = DEFAULT_RATES
OWN_ROW = "own test donors"  # compare_cohorts' label of the model's own test donors
HARMONISATION_LABELS = {"own": "own: each gene standardised on the cohort itself (the paper's choice)",
                        "training": "training: the model's statistics",
                        "quantile": "quantile: each sample aligned to the training profile"}
SCALE_LABELS = {"auto": "Detect", **upload.SCALE_NAMES}
Source = tuple[tuple, Callable[[tuple[str, ...]], tuple[CohortComparison, list[str]]]]


@st.cache_data(show_spinner=False, max_entries=16)
def per_tissue_at(token: str, key: str, rate: float) -> pd.DataFrame:
    """Per-group, per-gene R² on the study's extended test set at another missing rate."""
    imputer, _, space = model(key)
    modelled = cohort_for_model(cohort(), space)
    return evaluation_tables(imputer, modelled.split("test"), rates=(), missing_rate=rate,
                             train=modelled.split("train"))["per_tissue"]



# ------------------------------------------------------------------------ a second cohort (Fig. 4)
def _compare(key: str, other: Cohort, group_map: dict[str, str] | None,
             harmonisations: tuple[str, ...]) -> tuple[CohortComparison, list[str]]:
    """Model ``key`` on ``other`` beside the study's own test donors of the same tissues (when the study has
    a cohort), at :data:`COMPARE_RATES`; and the alignment's warnings (groups left out)."""
    imputer, metadata, space = model(key)
    study = current_study()
    own = cohort() if study is not None and study.has_cohort else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = compare_cohorts(imputer, space, other, metadata, harmonisations, COMPARE_RATES, group_map, own=own)
    return result, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


@st.cache_data(show_spinner=False, max_entries=8)
def _shifted_comparison(token: str, key: str, tissues: tuple[str, ...],
                        harmonisations: tuple[str, ...]) -> tuple[CohortComparison, list[str]]:
    """The comparison on a shifted copy of the study's test donors of ``tissues``."""
    return _compare(key, shifted_test_donors(cohort(), tissues), None, harmonisations)


@st.cache_data(show_spinner=False, max_entries=4)
def _uploaded_cohort(expression: Upload, samples: Upload | None, options: tuple[str, str, str]) -> Cohort:
    """The uploaded second cohort (``options``: group column, layout, scale)."""
    column, orientation, scale = options
    return upload.import_uploads(expression, samples, tissue_column=column, orientation=orientation, scale=scale)


@st.cache_data(show_spinner=False, max_entries=8)
def _uploaded_comparison(token: str, key: str, expression: Upload, samples: Upload | None,
                         options: tuple[str, str, str], group_map: Upload | None, target: str | None,
                         harmonisations: tuple[str, ...]) -> tuple[CohortComparison, list[str]]:
    """The comparison on an uploaded cohort, its groups mapped by the uploaded ``group_map`` or, for a
    one-group cohort, to ``target``."""
    other = _uploaded_cohort(expression, samples, options)
    mapping = read_group_map_upload(*group_map) if group_map is not None else None
    if target is not None:
        mapping = {group: target for group in set(other.samples["tissue"])}
    return _compare(key, other, mapping, harmonisations)


def _digest(upload: Upload | None) -> str | None:
    return None if upload is None else hashlib.sha1(upload[0]).hexdigest()


def _shifted_source(key: str, word: str, first: list[str]) -> Source | None:
    """Widgets of the shifted test donors: which tissues (the first chosen above by default)."""
    samples = cohort().samples
    testable = sorted(set(samples.loc[samples["split"] == "test", "tissue"]) & set(model_info(key)[1].tissues))
    default = [t for t in first if t in testable][:1] or testable[:1]
    tissues = st.multiselect(f"{word.capitalize()}s to shift", testable, default=default, key="shift_tissues",
                             help=f"Their test donors are copied and shifted; each {word} adds a few seconds.")
    st.caption("A copy of the study's test donors of these tissues with a simulated platform shift (per-gene "
               "offset and scale, extra noise, the p53 pathway's genes raised as in a cancer, 10 % of the genes "
               "absent): a stand-in for another cohort such as "
               "a TCGA cancer, scored beside the same donors unshifted.")
    if not tissues:
        st.info(f"Choose at least one {word} to shift.")
        return None
    chosen = tuple(sorted(tissues))
    return ("shifted", chosen), lambda methods: _shifted_comparison(study_token(), key, chosen, methods)


def _upload_source(key: str, word: str) -> Source | None:
    """Widgets of an uploaded cohort: expression, optional sample table and group map, or the one group's tissue."""
    space = model_info(key)[1]
    st.markdown(f"The other cohort's **expression matrix** (CSV, TSV, GCT or h5ad; samples x genes or genes x "
                f"samples; genes as the model names them: Ensembl IDs or symbols), an optional **sample table** "
                f"(`sample_id` and a group column) and an optional **group map** (two columns: the cohort's group, "
                f"the model's {word}; groups named as a model {word} map to themselves).")
    left, middle, right = st.columns(3)
    matrix = left.file_uploader("Expression matrix", type=list(upload.UPLOAD_TYPES), key="other_expression")
    sheet = middle.file_uploader("Sample table (optional)", type=["csv", "tsv", "txt", "gz"], key="other_samples")
    mapping = right.file_uploader("Group map (optional)", type=["csv", "tsv", "txt"], key="other_group_map")
    if matrix is None:
        st.info("Upload the other cohort's expression matrix.")
        return None
    left, middle, right = st.columns(3)
    orientation = left.selectbox("Layout", ORIENTATIONS, key="other_orientation",
                                 help="`auto` looks at which axis holds gene identifiers.")
    scale = middle.selectbox("Scale", SCALE_CHOICES, format_func=SCALE_LABELS.__getitem__, key="other_scale")
    expression = (matrix.getvalue(), matrix.name)
    samples = None if sheet is None else (sheet.getvalue(), sheet.name)
    column = "tissue"
    if samples is not None:
        columns = upload.upload_columns(*samples)
        default = next((i for i, c in enumerate(columns) if c.lower() in GROUP_COLUMNS), 0)
        column = right.selectbox("Group column", columns, index=default, key="other_group_column")
    options = (column, orientation, scale)
    other = _uploaded_cohort(expression, samples, options)
    groups = sorted(set(other.samples["tissue"]))
    st.caption(f"{other.n_samples:,} samples x {other.n_genes:,} genes, {len(groups)} group(s): "
               f"{list_examples(groups)}.")
    group_map = None if mapping is None else (mapping.getvalue(), mapping.name)
    target = None
    if group_map is None and len(groups) == 1:
        tissues = list(space.tissues)
        index = tissues.index(groups[0]) if groups[0] in tissues else (0 if len(tissues) == 1 else None)
        target = st.selectbox(f"Model {word} of the cohort's samples", tissues, index=index, key="other_target",
                              placeholder=f"Choose the {word}…", help=f"The cohort has one group ({groups[0]!r}).")
        if target is None:
            st.info(f"Choose the model's {word} the cohort's samples come from, or upload a group map.")
            return None
    request = ("upload", _digest(expression), _digest(samples), options, _digest(group_map), target)
    return request, lambda methods: _uploaded_comparison(study_token(), key, expression, samples, options,
                                                         group_map, target, methods)


def _show_comparison(comparison: CohortComparison, notes: list[str], key: str, word: str) -> None:
    """Alignment report, R² curves of both cohorts, the pooled table and the download."""
    for note in notes:
        st.warning(note)
    st.markdown("**Alignment**\n\n" + "\n".join(f"- {line}" for line in comparison.report.splitlines()))
    long = comparison.long_table()
    tissues = sorted(set(long["tissue"]) - {plots.POOLED})
    tissue = plots.POOLED
    if len(tissues) > 1:
        tissue = st.selectbox("Curves of", [plots.POOLED, *tissues], key="compare_tissue",
                              format_func=lambda t: f"{words().all_groups} pooled" if t == plots.POOLED else t)
    st.plotly_chart(plots.cohort_r2_vs_missing_rate(comparison.tables, tissue), width="stretch")
    if OWN_ROW not in comparison.tables:
        st.caption(f"No {OWN_ROW!r} curve: the study has no cohort, or no test donor in these {word}s.")
    st.caption(f"Mean per-gene R² over the hidden values at each missing rate (all {word}s pooled), the same "
               "estimator as above; one row per cohort and scale harmonisation.")
    rates = [c for c in comparison.table.columns if c not in ("cohort", "harmonisation")]
    st.dataframe(comparison.table, hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(f"{float(c):.0%}", format="%.3f") for c in rates})
    download_csv(long, f"{key}_other_cohort_r2_across_rates.csv",
                 "Download R² across rates of both cohorts, every group (CSV)", key="download_other_cohort")


def second_cohort(study: Study, key: str, word: str, first: list[str]) -> None:
    """Viñas et al. 2021, Fig. 4: R² against the missing rate on a second cohort beside the model's own
    test donors; ``first``: the tissues chosen above (the shifted copy's default)."""
    st.markdown("##### Beside a second cohort")
    choices = [NO_COHORT, UPLOADED] + ([SHIFTED] if study.simulated and study.has_cohort else [])
    choice = st.radio("Second cohort", choices, horizontal=True, key="second_cohort",
                      help="Score the model on a cohort it was not trained on (e.g. a TCGA cancer, mapped to its "
                           f"{word}) beside its own test donors of the same {word}s.")
    if choice == NO_COHORT:
        return
    methods = st.multiselect("Scale harmonisation", HARMONISATIONS, default=["own"], key="harmonisations",
                             format_func=HARMONISATION_LABELS.__getitem__,
                             help="How the other cohort's values are put on the model's scale; the model's own "
                                  "test donors keep the training statistics.")
    try:
        source = _shifted_source(key, word, first) if choice == SHIFTED else _upload_source(key, word)
        if source is None:
            return
        if not methods:
            st.info("Choose at least one scale harmonisation.")
            return
        request, compute = source
        request = (study_token(), key, request, tuple(methods))
        if st.button("Compare", key="compare_cohorts", type="primary", icon=":material/compare_arrows:"):
            st.session_state[COMPARED] = request
        if st.session_state.get(COMPARED) != request:
            st.caption(f"Press Compare to score the model on it at {len(COMPARE_RATES)} missing rates "
                       "(seconds to minutes; then cached).")
            return
        with st.spinner("Imputing both cohorts at every missing rate…"):
            comparison, notes = compute(tuple(methods))
    except ValueError as error:  # InputError included: an unreadable upload, no gene or group in common, ...
        st.error(str(error), icon=":material/error:")
        return
    _show_comparison(comparison, notes, key, word)


named = words()
st.title(f"{named.Group} R²")
key = selected_model()
if key is not None:
    study = current_study()
    word = named.group
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
                   f"sample's values hidden. Box colour: the {word}'s number of training samples; grey: {named.groups} "
                   f"with fewer than {plots.MIN_SCORED_SAMPLES} test samples, too few to score (their few samples are "
                   "resampled to fill the extended set).")
        counts = train_counts()
        st.plotly_chart(plots.tissue_r2_boxplot(per_tissue, counts, order, test_counts=split_counts("test")),
                        width="stretch")
        stats = plots.box_statistics(per_tissue).assign(training_samples=lambda t: t["tissue"].map(counts))
        with st.expander(f"Per-{word} summary table"):
            st.dataframe(stats.round(4), width="stretch", hide_index=True)
            download_csv(stats, f"{key}_per_{word}_summary.csv", key="download_summary")
        download_csv(per_tissue, f"{key}_per_{word}_r2.csv", f"Download per-gene R² per {word} (CSV)",
                     key="download_r2")

    st.subheader("R² against the missing rate")
    models = same_gene_set(key)
    available = sorted(set(model_info(key)[1].tissues))
    chosen: list[str] = []
    if not models:
        st.info("This model has no R²-across-missing-rates table, so there is nothing to draw here.")
    else:
        across = {label: tables(k)["across_rates"] for label, k in models.items()}
        available = sorted(set().union(*(set(t["tissue"]) for t in across.values())) - {plots.POOLED})
        small = plots.too_few(split_counts("test"), available)
        scoreable = [t for t in available if t not in small]
        defaults = [t for t in DEFAULT_TISSUES if t in scoreable] or scoreable[:3]
        chosen = st.multiselect(named.Groups, [plots.POOLED, *available], default=[plots.POOLED, *defaults],
                                format_func=lambda t: named.all_groups if t == plots.POOLED else
                                plots.too_few_label(t, small[t]) if t in small else t)
        st.caption(f"Mean per-gene R² with a ±1 SD band; the study's models on the same genes side by side. "
                   f"Reference: each value's {word} mean over the training donors, the same at every rate (the "
                   f"{word}-mean imputer scores 0), so the curves compare rates. Estimator: at each rate the "
                   f"extended test set is masked several times so that every value is hidden equally often, at "
                   f"least once, and each gene's R² in a {word} rests on all of its samples at every rate.")
        st.plotly_chart(plots.r2_vs_missing_rate(across, chosen, split_counts("test"), named.all_groups),
                        width="stretch")
        for label, k in models.items():
            download_csv(across[label], f"{k}_r2_across_rates.csv", f"Download {label} R² across rates (CSV)",
                         key=f"download_across_{k}")
    second_cohort(study, key, word, [t for t in chosen if t != plots.POOLED] or available[:1])
