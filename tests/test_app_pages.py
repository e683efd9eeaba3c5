"""Every page of the app on several studies, driven headlessly with Streamlit's AppTest.

The studies: the committed demo (``data/demo``), a tiny GTEx-shaped simulated study, a study built
from a microarray-like matrix unlike GTEx (probe IDs, three conditions, no sex or age, log scale),
and studies that lack parts. Tiny ones are written here with the study writers (seconds).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from studies import (
    PAGES,
    PROBE_GROUPS,
    app_on,
    assert_clean,
    build_probe_study,
    clear_caches,
    open_app,
    point_app_at,
    write_study,
)

from gtex_models.analysis import embeddings
from gtex_models.analysis.benchmark import evaluation_tables
from gtex_models.data.reference import pathway_genes
from gtex_models.data.simulate import simulate_cohort
from gtex_models.interfaces import plots
from gtex_models.interfaces.try_it import example_upload, hide_and_impute
from gtex_models.interfaces.upload import impute_file, result_frame
from gtex_models.models.model_space import ModelSpace, cohort_for_model
from gtex_models.studies.demo import CACHE_DIR, DEMO_DIR
from gtex_models.studies.study import MANIFEST, MODELS_DIR, Study
from pages._shared import SELECTED_STUDY, given_locations

UPLOAD_TISSUE = "Whole Blood"
TINY_MODELS = {"pmi_all": ("pmi", None), "gain_all": ("gain", None), "mean_all": ("mean", None)}


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated GTEx-shaped study: PMI, GAIN-GTEx and the group mean on all genes."""
    cohort = simulate_cohort(n_donors=30, n_genes=400, seed=1)
    return write_study(tmp_path_factory.mktemp("studies") / "tiny", cohort, TINY_MODELS, title="Tiny simulated",
                       simulated=True)


@pytest.fixture(scope="module")
def probe_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study built from a microarray-like matrix unlike GTEx (see studies.probe_matrix)."""
    return build_probe_study(tmp_path_factory.mktemp("probe"))


@pytest.fixture()
def on_probes(monkeypatch, tmp_path, probe_study):
    """The app with the microarray-like study given (so selected at start) next to the demo."""
    with app_on(monkeypatch, tmp_path, probe_study) as study:
        yield study


@pytest.fixture()
def on_demo(monkeypatch, tmp_path):
    """The app with the demo study only (an empty studies folder, no study given)."""
    with app_on(monkeypatch, tmp_path) as study:
        yield study


@pytest.fixture()
def on_tiny(monkeypatch, tmp_path, tiny_study):
    """The app with the tiny study given (so selected at start) next to the demo."""
    with app_on(monkeypatch, tmp_path, tiny_study) as study:
        yield study


def charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def array(value: list | dict) -> np.ndarray:
    """A plotly JSON array: a plain list, or a typed array ``{"dtype", "bdata", "shape"}`` in base64."""
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return flat.reshape([int(n) for n in str(shape).split(",")]) if shape else flat
    return np.asarray(value)


def shaded_cells(table) -> set[tuple[int, int]]:
    """(row, column) of the cells a styled dataframe gives a background colour."""
    cells = set()
    for rule in table.proto.arrow_data.styler.styles.split("}"):
        if "background-color" in rule:
            cells |= {(int(i), int(j)) for i, j in re.findall(r"_row(\d+)_col(\d+)", rule)}
    return cells


def upload(at: AppTest, data: bytes, name: str = "partial.csv") -> AppTest:
    at.file_uploader(key="expression_file").set_value((name, data, "text/csv"))
    return at.run()


def texts(at: AppTest) -> str:
    return " ".join(e.value for kind in ("caption", "markdown", "info") for e in getattr(at, kind))


# ------------------------------------------------------------------------------------- the picker
def test_study_locations_from_the_command_line_and_the_environment(tmp_path):
    argv = ["--study", "a", "--server.port", "1", "--study=b"]
    assert given_locations(argv, {"GTEX_STUDY": f"c{__import__('os').pathsep}d"}) == list(map(Path, "abcd"))
    assert given_locations([], {}) == []


# Under AppTest the sidebar runs on a new app's first run only (see studies.open_app): sidebar checks
# happen there, and a study or model is chosen before it; the browser test clicks the real pickers.
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_the_demo(on_demo, page):
    at = open_app(page)
    assert_clean(at)
    assert at.session_state[SELECTED_STUDY] == str(DEMO_DIR.resolve())
    if page is None:
        assert "SIMULATED" in " ".join(m.value for m in at.sidebar.markdown)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_a_small_study(on_tiny, page):
    at = open_app(page)
    assert_clean(at)
    assert at.session_state[SELECTED_STUDY] == str(on_tiny.path.resolve())


def test_the_selected_study_drives_every_page(on_tiny):
    demo = Study.open(DEMO_DIR)
    for study in (on_tiny, demo):
        at = open_app(study=study.path)
        assert at.selectbox(key="study_path").options == ["Demo cohort (simulated)", "Tiny simulated"]
        assert at.selectbox(key="study_path").value == str(study.path.resolve())
        assert at.selectbox(key="model_key").options == [e.label for e in study.models.values()]
        open_app("pages/benchmark.py", at)
        assert_clean(at)
        metrics = {m.label: m.value for m in at.metric}
        assert metrics["Samples"] == f"{study.cohort_summary['n_samples']:,}"
        assert len(at.dataframe[0].value) == len(study.benchmark())


def test_the_simulated_badge_only_for_simulated_studies(monkeypatch, tmp_path, tiny_study):
    real = tmp_path / "real"
    shutil.copytree(tiny_study, real)
    manifest = json.loads((real / MANIFEST).read_text())
    (real / MANIFEST).write_text(json.dumps({**manifest, "simulated": False, "title": "Not simulated"}))
    point_app_at(monkeypatch, real, studies_dir=tmp_path / "none")
    clear_caches()
    for page in PAGES:
        at = open_app(page)
        assert_clean(at)
        assert "SIMULATED" not in " ".join(e.value for e in [*at.markdown, *at.caption, *at.sidebar.markdown])
    assert "SIMULATED" in " ".join(m.value for m in open_app(study=DEMO_DIR).sidebar.markdown)
    clear_caches()


def test_a_study_missing_parts_opens_with_what_it_has(monkeypatch, tmp_path, tiny_study):
    partial = tmp_path / "partial"
    shutil.copytree(tiny_study, partial)
    (partial / MODELS_DIR / "gain_all.safetensors").unlink()
    shutil.rmtree(partial / "cohort")
    (partial / "benchmark.json").unlink()
    point_app_at(monkeypatch, partial, studies_dir=tmp_path / "none")
    clear_caches()
    for page in PAGES:
        assert_clean(open_app(page), warnings=False)
    at = open_app()
    lacking = " ".join(w.value for w in at.sidebar.warning)
    assert "gain_all.safetensors is missing" in lacking and "the cohort is missing" in lacking
    assert at.selectbox(key="model_key").options == ["PMI · all genes", "Group mean · all genes"]
    at = open_app("pages/benchmark.py")
    assert any("no benchmark records" in i.value for i in at.info)
    assert any("cohort of study" in i.value and "is missing" in i.value for i in at.info)
    at = open_app()
    at.segmented_control(key="impute_mode").set_value("Try it on held-out samples").run()
    assert_clean(at, warnings=False)
    assert any("no cohort" in i.value for i in at.info)
    clear_caches()


MALFORMED_MANIFESTS = {  # what a hand edit or a damaged file can leave in study.json -> the message's key part
    "not json": ("{not json", "not valid JSON"),
    "summary a list": ({"cohort": {"summary": [1, 2]}}, "cohort.summary: should be a mapping"),
    "cohort a string": ({"cohort": "runs/x"}, "cohort: should be a mapping"),
    "models not a list": ({"models": {"pmi_all": {}}}, "models: should be a list"),
    "title a number": ({"title": 3}, "title: Input should be a valid string"),
    "n_genes a word": ({"models": [{"key": "m", "method": "pmi", "n_genes": "large"}]}, "n_genes: Input should be"),
}


@pytest.mark.parametrize("case", list(MALFORMED_MANIFESTS))
def test_a_folder_that_is_not_a_study_is_reported_and_the_others_stay(case, monkeypatch, tmp_path, tiny_study):
    broken = tmp_path / "studies" / "broken"
    broken.mkdir(parents=True)
    content, message = MALFORMED_MANIFESTS[case]
    if isinstance(content, dict):
        content = json.dumps({**json.loads((tiny_study / MANIFEST).read_text()), **content})
    (broken / MANIFEST).write_text(content)
    point_app_at(monkeypatch, tmp_path / "nothing_here", tiny_study, studies_dir=tmp_path / "studies")
    clear_caches()
    at = open_app()
    assert not at.exception
    assert "nothing_here` holds no study" in " ".join(w.value for w in at.sidebar.warning)
    errors = " ".join(e.value for e in at.sidebar.error)
    assert "broken` cannot be opened" in errors and message in errors, errors
    assert at.selectbox(key="study_path").value == str(tiny_study.resolve())
    assert str(broken) not in at.selectbox(key="study_path").options
    clear_caches()


def test_the_study_flag_of_streamlit_run_adds_a_study(monkeypatch, tmp_path, tiny_study):
    point_app_at(monkeypatch, studies_dir=tmp_path / "none")
    monkeypatch.setattr(sys, "argv", ["app.py", "--study", str(tiny_study)])
    clear_caches()
    at = open_app()
    assert at.selectbox(key="study_path").value == str(tiny_study.resolve())
    assert at.selectbox(key="study_path").options == ["Demo cohort (simulated)", "Tiny simulated"]
    clear_caches()


def model_pickers(block) -> list:
    return [w for kind in ("selectbox", "segmented_control", "radio", "pills", "multiselect")
            for w in getattr(block, kind) if "model" in str(w.label).lower()]


def test_only_one_model_picker_on_every_page(on_demo):
    assert [w.key for w in model_pickers(open_app().sidebar)] == ["model_key"]
    for page in PAGES:
        assert not model_pickers(open_app(page).main), page  # the sidebar's is the only one


# ------------------------------------------------------------------------------------- demo pages
@pytest.fixture(scope="module")
def partial_upload() -> pd.DataFrame:
    """Demo whole-blood test samples as TPM, samples x genes, 30% blanked, the last 10% of genes absent."""
    return example_upload(Study.open(DEMO_DIR).cohort(CACHE_DIR), UPLOAD_TISSUE)


def test_impute_page_imputes_an_upload_marks_imputed_cells_and_keeps_observed_values(on_demo, partial_upload):
    at = upload(open_app(), partial_upload.to_csv().encode())
    assert_clean(at)
    assert at.info  # asks for the tissue first
    assert at.selectbox(key="upload_tissue").label == "Tissue (GTEx name)"
    at.selectbox(key="upload_tissue").set_value(UPLOAD_TISSUE).run()
    assert_clean(at)
    at.toggle(key="interval_columns").set_value(False).run()  # values only (test_app_intervals: the intervals)
    assert "Imputed" in at.success[0].value
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Scale"] == "TPM" and metrics["Samples"] == str(len(partial_upload))
    table = at.dataframe[0]
    shown = table.value
    assert shown.shape == (len(partial_upload), 60)  # the preview: every sample, the first 60 columns
    assert list(shown.columns) == list(partial_upload.columns[:60])
    observed = partial_upload.iloc[:, :60].notna().to_numpy()
    np.testing.assert_array_equal(shown.to_numpy(np.float32)[observed],
                                  partial_upload.iloc[:, :60].to_numpy(np.float32)[observed])
    assert not shown.isna().any().any()
    imputer, metadata = on_demo.load_model(next(iter(on_demo.models)))  # the page's default model
    expected = result_frame(impute_file(partial_upload.to_csv().encode(), imputer, ModelSpace.from_metadata(metadata),
                                        filename="partial.csv", tissue=UPLOAD_TISSUE))
    np.testing.assert_allclose(shown.to_numpy(np.float64), expected.iloc[:, :60].to_numpy(np.float64), rtol=1e-3)
    assert shaded_cells(table) == {(int(i), int(j)) for i, j in np.argwhere(~observed)}  # exactly the imputed cells
    preview = charts(at)[0]
    assert [trace["type"] for trace in preview["data"]] == ["heatmap", "heatmap"]
    assert set(preview["data"][0]["x"]) <= set(partial_upload.columns)  # the upload's genes, not the model's
    buttons = {b.proto.label for b in at.get("download_button")}
    assert {"Download the full imputed matrix (TPM, CSV)", "Download which cells were imputed (CSV, 1 = imputed)"} <= buttons


def test_impute_page_shows_clear_errors_and_stays_usable(on_demo, partial_upload):
    at = upload(open_app(), b"gene;sample_1\nTP53;1,5\n", "bad.csv")
    assert not at.exception
    assert "bad.csv, line 2" in at.error[0].value and "decimal separator" in at.error[0].value
    at = upload(at, partial_upload.to_csv().encode())
    at.radio(key="group_mode").set_value("Per sample, from a sample table").run()
    sheet = pd.DataFrame({"sample_id": partial_upload.index, "tissue": "Whole Blod"}).to_csv(index=False)
    at.file_uploader(key="sample_table").set_value(("samples.csv", sheet.encode(), "text/csv"))
    at.run()
    assert not at.exception
    assert "Unknown tissue 'Whole Blod' (did you mean 'Whole Blood'" in at.error[0].value


def test_try_it_hides_imputes_and_scores_held_out_samples(on_demo):
    at = open_app()
    at.segmented_control(key="impute_mode").set_value("Try it on held-out samples").run()
    assert_clean(at)
    figure = charts(at)[0]
    assert "R² =" in figure["layout"]["title"]["text"]
    assert len(array(figure["data"][0]["x"])) > 0
    metrics = {m.label: m.value for m in at.metric}
    assert list(metrics)[0] == "Mean per-gene R²"  # the README's metric is the headline
    assert float(metrics["Mean per-gene R²"]) < 0.99  # the model never sees what it is scored on
    assert list(at.dataframe[0].value.columns) == ["gene", "r2", "n_hidden"]


def _shown_trial(at: AppTest) -> tuple[dict[str, str], pd.DataFrame]:
    return {m.label: m.value for m in at.metric}, at.dataframe[0].value


def test_try_it_controls_change_the_samples_and_the_rate_scored(on_tiny):
    """Each control (group, number of samples, missing rate) changes what is scored, and what is shown is
    the documented experiment (try_it.hide_and_impute) on exactly those held-out samples."""
    at = open_app()
    at.segmented_control(key="impute_mode").set_value("Try it on held-out samples").run()
    before = _shown_trial(at)
    group = sorted(on_tiny.cohort().split("test").samples["tissue"].unique())[0]
    at.selectbox[-1].set_value(group).run()
    at.slider[0].set_value(3).run()
    at.slider[1].set_value(0.3).run()
    assert_clean(at)
    metrics, per_gene = _shown_trial(at)
    assert metrics != before[0]
    imputer, metadata = on_tiny.load_model("pmi_all")
    data = cohort_for_model(on_tiny.cohort(), ModelSpace.from_metadata(metadata))
    samples = data.samples
    rows = samples.index[(samples["split"] == "test") & (samples["tissue"] == group)][:3]
    expected = hide_and_impute(imputer, data, rows, 0.3, 0)
    assert metrics["Hidden values"] == f"{int(expected.hidden.sum()):,}"
    assert int(expected.hidden.sum()) == pytest.approx(0.3 * expected.hidden.size, rel=0.15)  # binomial: 3 SD
    assert metrics["Mean per-gene R²"] == f"{expected.per_gene['r2'].mean():.3f}"
    assert metrics["Median per-gene R²"] == f"{expected.per_gene['r2'].median():.3f}"
    headline = at.metric[0]
    assert f"all hidden values pooled together is {expected.r2_pooled:.3f}" in headline.help  # explained there
    assert f"all hidden values pooled: R² = {expected.r2_pooled:.3f}" in charts(at)[0]["layout"]["title"]["text"]
    pd.testing.assert_frame_equal(per_gene.reset_index(drop=True), expected.per_gene, check_dtype=False)


def test_tissue_r2_page_has_a_box_per_tissue_and_rate_curves(on_demo):
    at = open_app("pages/tissue_r2.py")
    assert_clean(at)
    per_tissue = on_demo.tables("pmi_all")["per_tissue"]
    boxplot, curves = charts(at)[:2]
    boxes = [trace for trace in boxplot["data"] if trace["type"] == "box"]
    assert len(boxes) == per_tissue.dropna()["tissue"].nunique()
    assert boxplot["layout"]["xaxis"]["title"]["text"].startswith("R²")
    panels = [a["text"] for a in curves["layout"]["annotations"]]
    assert panels == ["PMI · all genes", "GAIN-GTEx · all genes", "Gaussian conditional · all genes"]  # same genes
    at.segmented_control[0].set_value("name").run()
    names = [trace["y"][0] for trace in charts(at)[0]["data"] if trace["type"] == "box"]
    assert names == sorted(names, reverse=True)


def test_tissue_r2_at_another_rate_is_computed_from_the_study_cohort(on_tiny):
    at = open_app("pages/tissue_r2.py")
    precomputed = at.dataframe[0].value.set_index("tissue")
    at.select_slider[0].set_value(0.2).run()  # not precomputed: imputed live, then cached
    assert_clean(at)
    boxes = [trace for trace in charts(at)[0]["data"] if trace["type"] == "box"]
    assert len(boxes) == on_tiny.tables("pmi_all")["per_tissue"].dropna()["tissue"].nunique()
    assert "20% of each sample's values hidden" in texts(at)
    # What is drawn is the study's model scored at 20% missing on the study's test set, not the 50% table.
    shown = at.dataframe[0].value.set_index("tissue")
    imputer, metadata = on_tiny.load_model("pmi_all")
    modelled = cohort_for_model(on_tiny.cohort(), ModelSpace.from_metadata(metadata))
    expected = plots.box_statistics(evaluation_tables(imputer, modelled.split("test"), rates=(), missing_rate=0.2,
                                                      train=modelled.split("train"))["per_tissue"])
    expected = expected.set_index("tissue").loc[shown.index]
    np.testing.assert_allclose(shown["median"], expected["median"], atol=1e-4)
    assert not np.allclose(shown["median"], precomputed.loc[shown.index, "median"], atol=1e-3)


def test_embeddings_page_shows_every_tissue(on_demo):
    at = open_app("pages/embeddings.py")
    assert_clean(at)
    n_tissues = len(on_demo.tissue_umap("pmi_all"))
    pca, umap = charts(at)[:2]
    assert sum(len(array(trace["x"])) for trace in umap["data"]) == n_tissues
    assert sum(len(array(trace["x"])) for trace in pca["data"]) == n_tissues
    assert umap["data"][0]["marker"]["symbol"] == "diamond"  # the brain group first
    drawn = pd.DataFrame([(t, x, y) for trace in umap["data"] for t, x, y in
                          zip(trace["text"], array(trace["x"]), array(trace["y"]))],
                         columns=["tissue", "umap_1", "umap_2"]).set_index("tissue").sort_index()
    stored = on_demo.tissue_umap("pmi_all").set_index("tissue").sort_index()
    pd.testing.assert_frame_equal(drawn, stored[["umap_1", "umap_2"]], check_dtype=False)  # the study's coordinates
    assert len(at.dataframe[0].value) == 5
    # the caption reports the brain regions' grouping measured on this model, not a claim
    brain = embeddings.brain_neighbours(embeddings.tissue_embeddings(on_demo.load_model("pmi_all")[0]))
    together = int((brain["brain_in_top"] >= 4).sum())
    assert f"in this model {together} of the {len(brain)} have at least 4 brain regions" in texts(at)


def test_embeddings_page_explains_a_model_without_embeddings(on_tiny):
    at = open_app("pages/embeddings.py", study=on_tiny.path, model="mean_all")
    assert_clean(at)
    assert any("learns no tissue embedding" in i.value for i in at.info)


def test_pathway_page_heatmap_gene_search_and_pathway_picker(on_demo):
    at = open_app("pages/pathway.py")
    assert_clean(at)
    per_tissue = on_demo.tables("pmi_alzheimer")["per_tissue"]
    expected = per_tissue[per_tissue["gene"].isin(pathway_genes("alzheimer"))]
    heatmap = charts(at)[0]["data"][0]
    assert array(heatmap["z"]).shape == (expected["gene"].nunique(), expected["tissue"].nunique())
    assert at.selectbox(key="gene_search").value == "APP"  # a gene is shown from the start
    assert charts(at)[2]["layout"]["title"]["text"].startswith("APP")
    at.selectbox(key="gene_search").set_value("PSEN1").run()
    assert_clean(at)
    assert charts(at)[2]["layout"]["title"]["text"].startswith("PSEN1")
    comparison = at.dataframe[0].value
    assert comparison.shape[1] == 4 and "difference" in comparison.columns
    at.segmented_control(key="pathway").set_value("p53").run()  # the p53-only model, next to the all-genes one
    assert_clean(at)
    p53 = set(pathway_genes("p53")) & set(on_demo.tables("pmi_p53")["per_gene"]["gene"])
    assert set(charts(at)[0]["data"][0]["y"]) == p53
    assert "Shown: **PMI · p53 pathway genes**, next to PMI · all genes." in texts(at)
    assert list(at.dataframe[0].value.columns) == ["gene", "PMI · p53 pathway genes", "PMI · all genes", "difference"]


def test_benchmark_page_lists_methods_and_training_curves(on_demo):
    at = open_app("pages/benchmark.py")
    assert_clean(at)
    assert len(at.dataframe[0].value) == len(on_demo.benchmark())
    curves = charts(at)[1]
    assert curves["layout"]["xaxis"]["title"]["text"] == "Epoch"
    assert {m.label for m in at.metric} >= {"Samples", "Donors", "Tissues", "Genes"}
    assert any("prepare-gtex" in md.value and "--out runs/gtex_v8" in md.value for md in at.markdown)


# ------------------------------------------------------------------------------------- a cohort unlike GTEx
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_a_microarray_study(on_probes, page):
    at = open_app(page)
    assert_clean(at)
    assert at.session_state[SELECTED_STUDY] == str(on_probes.path.resolve())
    shown = " ".join(e.value for e in [*at.markdown, *at.caption, *at.sidebar.markdown])
    assert "SIMULATED" not in shown  # a real-data study


def test_microarray_study_pages_adapt_to_three_groups_without_genes_of_pathways(on_probes):
    assert on_probes.cohort_summary["has_sex"] is False and on_probes.cohort_summary["scale"] == "log"
    at = open_app("pages/tissue_r2.py")
    boxes = [t for t in charts(at)[0]["data"] if t["type"] == "box"]
    test_counts = on_probes.cohort().split("test").samples["tissue"].value_counts()
    assert (test_counts < plots.MIN_SCORED_SAMPLES).all()  # 60 samples in 3 groups: a few test samples each
    assert sorted(t["y"][0] for t in boxes) == [plots.too_few_label(g, test_counts[g]) for g in PROBE_GROUPS]
    assert {t["fillcolor"] for t in boxes} == {plots.TOO_FEW_COLOR}  # greyed
    at = open_app("pages/embeddings.py")
    assert any("UMAP is not drawn for 3 groups" in i.value for i in at.info)
    (pca,) = charts(at)
    drawn = {t: c for trace in pca["data"] for t, c in zip(trace["text"], trace["marker"]["color"])}
    assert drawn == plots.group_colors(list(PROBE_GROUPS))  # palette colours, not one grey
    assert pca["layout"]["legend"]["title"]["text"] == "Group"  # not "Organ"
    at = open_app("pages/pathway.py")
    assert not charts(at)
    assert any("None of the 273 genes" in i.value and "--gene-map" in i.value for i in at.info)
    at = open_app("pages/benchmark.py")
    assert sorted(at.dataframe[0].value["Method"]) == ["GAIN-GTEx", "Group mean", "KNN", "MICE", "PMI"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Groups"] == "3" and metrics["Samples"] == "60"
    assert "no sex or age recorded" in texts(at)


def test_impute_on_a_microarray_study_asks_for_the_group_only(on_probes):
    cohort = on_probes.cohort()
    test = cohort.split("test")
    rows = test.samples["tissue"] == "tumour"
    frame = pd.DataFrame(test.raw()[rows.to_numpy()], index=test.samples.loc[rows, "sample_id"],
                         columns=test.genes["symbol"]).round(4)
    partial = frame.mask(np.random.default_rng(0).random(frame.shape) < 0.3)
    at = upload(open_app(), partial.T.to_csv().encode())  # probes x samples, like the file it came from
    assert_clean(at)
    assert at.selectbox(key="upload_tissue").label == "Group"
    assert not [w for w in [*at.selectbox, *at.number_input] if w.label in ("Sex", "Age (years)")]
    assert "records no sex or age" in texts(at)
    at.selectbox(key="upload_tissue").set_value("tumour").run()
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Scale"] == "log2 intensity"  # a microarray's log scale, not TPM
    table = at.dataframe[0]
    assert table.value.shape == (50, len(partial))  # genes x samples, as uploaded: the first 50 genes
    assert list(table.value.index) == list(partial.columns[:50])
    observed = partial.T.iloc[:50].notna().to_numpy()
    np.testing.assert_array_equal(table.value.to_numpy(np.float32)[observed],
                                  partial.T.iloc[:50].to_numpy(np.float32)[observed])
    assert shaded_cells(table) == {(int(i), int(j)) for i, j in np.argwhere(~observed)}
    at.segmented_control(key="impute_mode").set_value("Try it on held-out samples").run()
    assert_clean(at)
    assert float({m.label: m.value for m in at.metric}["Mean per-gene R²"]) <= 1.0


def test_a_probe_upload_on_a_gene_model_points_to_the_gene_map_which_then_works(on_demo, partial_upload):
    genes = list(partial_upload.columns[:40])
    probes = [f"{2000 + i}_at" for i in range(len(genes))]
    upload_probes = partial_upload[genes].set_axis(probes, axis=1)
    at = upload(open_app(), upload_probes.to_csv().encode(), "array.csv")
    assert len(at.error) == 1 and "probe IDs" in at.error[0].value and "gene map upload" in at.error[0].value
    mapping = pd.DataFrame({"probe_id": probes, "symbol": genes}).to_csv(index=False)
    at.file_uploader(key="gene_map").set_value(("probes.csv", mapping.encode(), "text/csv")).run()
    at.selectbox(key="upload_tissue").set_value(UPLOAD_TISSUE).run()
    at.toggle(key="interval_columns").set_value(False).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Imputed" in at.success[0].value
    assert list(at.dataframe[0].value.columns[:40]) == genes  # probes became genes (the model's others follow)
    heatmap = charts(at)[0]["data"][0]
    assert set(heatmap["x"]) <= set(genes)  # the preview shows the upload's genes, not the model's others


def test_gain_intervals_are_drawn_on_the_log_scale(on_demo, partial_upload):
    at = upload(open_app(study=DEMO_DIR, model="gain_all"), partial_upload.to_csv().encode())
    at.selectbox(key="upload_tissue").set_value(UPLOAD_TISSUE).run()
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Scale"] == "TPM"  # the upload is TPM...
    interval = charts(at)[-1]
    assert interval["layout"]["yaxis"]["title"]["text"] == "Imputed expression (log2(TPM + 1))"  # ...drawn as log
    values = array(interval["data"][0]["y"])
    sample = at.selectbox[-1].value
    genes = list(interval["data"][0]["x"])
    tpm = at.dataframe[0].value  # the preview, in TPM
    shown = [g for g in genes if g in tpm.columns]
    np.testing.assert_allclose(values[[genes.index(g) for g in shown]], np.log2(tpm.loc[sample, shown] + 1), rtol=1e-3)


def test_a_one_group_study_without_benchmark_asks_nothing_about_groups(monkeypatch, tmp_path, probe_study):
    cohort = Study.open(probe_study).cohort()
    cohort.samples["tissue"] = "All samples"
    single = write_study(tmp_path / "single", cohort, {"pmi_all": ("pmi", None), "mean_all": ("mean", None)},
                         title="One group", benchmark=False, umap=False)
    point_app_at(monkeypatch, single, studies_dir=tmp_path / "none")
    clear_caches()
    for page in PAGES:
        assert_clean(open_app(page), warnings=False)
    at = open_app("pages/embeddings.py")
    assert any("knows one group only ('All samples')" in i.value for i in at.info)
    at = open_app("pages/benchmark.py")
    assert any("has no benchmark records" in i.value for i in at.info)
    test = cohort.split("test")
    frame = pd.DataFrame(test.raw()[:3], index=test.samples["sample_id"][:3], columns=test.genes["symbol"])
    at = upload(open_app(), frame.mask(np.random.default_rng(1).random(frame.shape) < 0.3).to_csv().encode())
    assert not at.exception and not at.error
    assert not [w for w in at.selectbox if w.key == "upload_tissue"] and not at.radio  # nothing to ask
    assert "every sample is imputed as such" in texts(at) and "Imputed" in at.success[0].value
    clear_caches()
