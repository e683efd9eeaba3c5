"""Every page of the app, driven headlessly with Streamlit's AppTest.

The tests run against the committed demo artefacts (``data/demo``) when they exist; otherwise they
build tiny ones (a small simulated cohort, one-epoch models: seconds) and point the demo locator at them.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from gtex_models import demo
from gtex_models.benchmark import evaluate_imputer, evaluation_tables
from gtex_models.checkpoints import save_checkpoint
from gtex_models.embeddings import pca_coordinates, tissue_embeddings
from gtex_models.imputers import make_imputer
from gtex_models.inference import example_upload
from gtex_models.reference import pathway_genes
from gtex_models.simulate import SimulationConfig, simulate_cohort

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
TIMEOUT = 180
TINY_SIMULATION = SimulationConfig(n_donors=30, n_genes=400, seed=1)
UPLOAD_TISSUE = "Whole Blood"


# ------------------------------------------------------------------------------------- artefacts
def real_demo_exists() -> bool:
    """Whether every demo checkpoint and table is committed under data/demo."""
    return (demo.DEMO_DIR / "benchmark.json").is_file() and all(
        demo.checkpoint_path(key).is_file() and (demo.DEMO_DIR / "tables" / f"{key}_tissue_umap.csv").is_file()
        for key in demo.DEMO_MODELS)


def build_tiny_demo(directory: Path) -> None:
    """Tiny demo artefacts in the layout of :mod:`gtex_models.demo` (cohort cache, models, tables)."""
    cohort = simulate_cohort(**asdict(TINY_SIMULATION))
    cohort.save(directory / "cache" / "demo_cohort")
    (directory / "tables").mkdir(parents=True, exist_ok=True)
    records = []
    for key in demo.DEMO_MODELS:
        method, gene_set = key.split("_", 1)
        genes = cohort if gene_set == "all" else cohort.pathway(gene_set)
        imputer = make_imputer(method, hidden_sizes=(32,), max_epochs=2).fit(genes.split("train"), genes.split("valid"))
        save_checkpoint(imputer, directory / "models" / f"{key}.safetensors", {"transform": genes.transform})
        test = genes.split("test")
        for name, table in evaluation_tables(imputer, test, rates=(0.2, 0.5, 0.8)).items():
            table.to_csv(directory / "tables" / f"{key}_{name}.csv.gz", index=False)
        coords, _ = pca_coordinates(tissue_embeddings(imputer))
        coords.set_axis(["tissue", "umap_1", "umap_2"], axis=1).to_csv(
            directory / "tables" / f"{key}_tissue_umap.csv", index=False)
        records.append({**evaluate_imputer(imputer, test), "method": key, "fit_seconds": imputer.history["seconds"]})
    (directory / "benchmark.json").write_text(json.dumps(records))


def point_demo_at(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    """Make :mod:`gtex_models.demo` read the artefacts of ``directory``."""
    monkeypatch.setattr(demo, "DEMO_DIR", directory)
    monkeypatch.setattr(demo, "CACHE_DIR", directory / "cache")
    monkeypatch.setattr(demo, "DEMO_SIMULATION", TINY_SIMULATION)


def clear_caches() -> None:
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The real demo artefacts, or tiny ones built for the tests."""
    clear_caches()
    if real_demo_exists():
        yield
    else:
        directory = tmp_path_factory.mktemp("demo")
        build_tiny_demo(directory)
        with pytest.MonkeyPatch.context() as monkeypatch:
            point_demo_at(monkeypatch, directory)
            yield
    clear_caches()


def run_page(page: str | None = None) -> AppTest:
    """The app after one run, on ``page`` (a path under pages/) or the default page."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    if page is not None:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def array(value: list | dict) -> np.ndarray:
    """A plotly JSON array: a plain list, or a typed array ``{"dtype", "bdata", "shape"}`` in base64."""
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return flat.reshape([int(n) for n in str(shape).split(",")]) if shape else flat
    return np.asarray(value)


def first_model() -> str:
    return next(iter(demo.available_models()))


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.warning, [w.value for w in at.warning]
    assert not at.error, [e.value for e in at.error]


# ------------------------------------------------------------------------------------- uploads
@pytest.fixture(scope="module")
def partial_upload(artefacts) -> pd.DataFrame:
    """Demo whole-blood test samples as TPM, samples x genes, 30% blanked, the last 10% of genes absent."""
    return example_upload(demo.load_demo_cohort(), UPLOAD_TISSUE)


def upload(at: AppTest, data: bytes, name: str = "partial.csv") -> AppTest:
    at.file_uploader(key="expression_file").set_value((name, data, "text/csv"))
    return at.run()


# ------------------------------------------------------------------------------------- pages
def test_impute_page_imputes_an_upload_and_keeps_observed_values(artefacts, partial_upload):
    at = upload(run_page(), partial_upload.to_csv().encode())
    assert_clean(at)
    assert at.info  # asks for the tissue first
    at.selectbox(key="upload_tissue").set_value(UPLOAD_TISSUE)
    at.run()
    assert_clean(at)
    assert "Imputed" in at.success[0].value
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Scale"] == "TPM"
    assert metrics["Samples"] == str(len(partial_upload))
    n_model_genes = len(demo.load_demo_cohort().genes) if first_model().endswith("_all") else None
    result = at.dataframe[0].value
    assert result.shape[0] == len(partial_upload)
    if n_model_genes is not None:
        assert result.shape[1] == n_model_genes
    assert list(result.columns[: partial_upload.shape[1]]) == list(partial_upload.columns)
    shown = result[partial_upload.columns].to_numpy(dtype=np.float32)
    observed = partial_upload.notna().to_numpy()
    np.testing.assert_array_equal(shown[observed], partial_upload.to_numpy(dtype=np.float32)[observed])
    assert not np.isnan(shown).any()
    preview = charts(at)[0]
    assert [trace["type"] for trace in preview["data"]] == ["heatmap", "heatmap"]
    assert at.get("download_button")


def test_impute_page_shows_clear_errors_and_stays_usable(artefacts, partial_upload):
    at = upload(run_page(), b"gene;sample_1\nTP53;1,5\n", "bad.csv")
    assert not at.exception
    assert "bad.csv, line 2" in at.error[0].value and "decimal separator" in at.error[0].value
    assert at.file_uploader(key="expression_file")  # the page is still there
    at = upload(at, partial_upload.to_csv().encode())
    at.radio[0].set_value("Per sample, from a sample table").run()
    sheet = pd.DataFrame({"sample_id": partial_upload.index, "tissue": "Whole Blod"}).to_csv(index=False)
    at.file_uploader(key="sample_table").set_value(("samples.csv", sheet.encode(), "text/csv"))
    at.run()
    assert not at.exception
    assert "Unknown tissue 'Whole Blod' (did you mean 'Whole Blood'" in at.error[0].value


def test_try_it_hides_imputes_and_scores(artefacts):
    at = run_page()
    at.segmented_control(key="impute_mode").set_value("Try it on demo samples (SIMULATED)").run()
    assert_clean(at)
    figure = charts(at)[0]
    assert "R² =" in figure["layout"]["title"]["text"]
    assert len(array(figure["data"][0]["x"])) > 0
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["R², all hidden values"]) <= 1.0
    per_gene = at.dataframe[0].value
    assert list(per_gene.columns) == ["gene", "r2", "n_hidden"]


def test_tissue_r2_page_has_a_box_per_tissue_and_rate_curves(artefacts):
    at = run_page("pages/tissue_r2.py")
    assert_clean(at)
    key = first_model()
    per_tissue = demo.load_tables(key)["per_tissue"]
    boxplot, curves = charts(at)[:2]
    boxes = [trace for trace in boxplot["data"] if trace["type"] == "box"]
    assert len(boxes) == per_tissue.dropna()["tissue"].nunique()
    assert boxplot["layout"]["xaxis"]["title"]["text"].startswith("R²")
    panels = [a["text"] for a in curves["layout"]["annotations"]]
    assert panels == [demo.DEMO_MODELS[k] for k in (key, key.replace("pmi", "gain"))]
    at.segmented_control[0].set_value("name").run()
    names = [trace["y"][0] for trace in charts(at)[0]["data"] if trace["type"] == "box"]
    assert names == sorted(names, reverse=True)
    at.select_slider[0].set_value(0.2).run()  # not precomputed: imputed live, then cached
    assert_clean(at)
    boxes = [trace for trace in charts(at)[0]["data"] if trace["type"] == "box"]
    assert len(boxes) == per_tissue.dropna()["tissue"].nunique()
    assert "20% of each sample's values hidden" in " ".join(c.value for c in at.caption)


def test_embeddings_page_shows_every_tissue(artefacts):
    at = run_page("pages/embeddings.py")
    assert_clean(at)
    n_tissues = len(demo.tissue_umap(first_model()))
    umap, pca = charts(at)[:2]
    assert sum(len(array(trace["x"])) for trace in umap["data"]) == n_tissues
    assert sum(len(array(trace["x"])) for trace in pca["data"]) == n_tissues
    assert umap["data"][0]["marker"]["symbol"] == "diamond"  # the brain group first
    assert len(at.dataframe[0].value) == 5


def test_alzheimer_page_heatmap_genes_by_tissues_and_gene_search(artefacts):
    at = run_page("pages/alzheimer.py")
    assert_clean(at)
    per_tissue = demo.load_tables(first_model().split("_")[0] + "_alzheimer")["per_tissue"]
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


def test_benchmark_page_lists_methods_and_training_curves(artefacts):
    at = run_page("pages/benchmark.py")
    assert_clean(at)
    assert len(at.dataframe[0].value) == len(demo.load_benchmark())
    curves = charts(at)[1]
    assert curves["layout"]["xaxis"]["title"]["text"] == "Epoch"
    assert {m.label for m in at.metric} >= {"Samples", "Donors", "Tissues", "Genes"}
    assert any("prepare-gtex" in md.value and "--out runs/gtex_v8" in md.value for md in at.markdown)


@pytest.mark.parametrize("page", [None, "pages/tissue_r2.py", "pages/embeddings.py", "pages/alzheimer.py",
                                  "pages/benchmark.py"])
def test_pages_without_demo_models_explain_how_to_build_them(monkeypatch, tmp_path, page):
    monkeypatch.setattr(demo, "DEMO_DIR", tmp_path)
    monkeypatch.setattr(demo, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(demo, "DEMO_SIMULATION", TINY_SIMULATION)
    clear_caches()
    at = run_page(page)
    assert not at.error
    assert any("build-demo" in info.value for info in at.info)
    clear_caches()
