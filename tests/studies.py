"""Tiny studies for the app tests (seconds to build), and an AppTest driver pointed at them.

:func:`write_study` lays a cohort and models out with the study writers of :mod:`gtex_models.studies.study`
(models fitted here with tiny settings); :func:`open_app` starts the app with the given study
folders (``$GTEX_STUDY``) and an empty studies folder (``$GTEX_STUDIES_DIR``), so the tests never
see a user's ``data/studies``.
"""

from __future__ import annotations

import json
import os
import warnings
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from gtex_models.analysis.benchmark import evaluate_imputer, evaluation_tables
from gtex_models.analysis.embeddings import pca_coordinates, tissue_embeddings
from gtex_models.data.cohort import Cohort
from gtex_models.models.checkpoints import load_checkpoint, save_checkpoint
from gtex_models.models.registry import make_imputer
from gtex_models.studies.study import (
    BENCHMARK_FILE,
    COHORT_DIR,
    Study,
    add_entry,
    model_entry,
    new_manifest,
    write_manifest,
    write_model,
)
from pages._shared import SELECTED_MODEL, SELECTED_STUDY

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
TIMEOUT = 300
TINY = {"hidden_sizes": (32,), "max_epochs": 2}
DEEP = ("pmi", "gain")
PAGES = (None, "pages/tissue_r2.py", "pages/donors.py", "pages/embeddings.py", "pages/pathway.py", "pages/panels.py",
         "pages/benchmark.py", "pages/new_study.py")


def write_study(directory: Path, cohort: Cohort, models: Mapping[str, tuple[str, str | None]], *, title: str,
                simulated: bool = False, benchmark: bool = True, umap: bool = True) -> Path:
    """A study folder: the cohort, each model ``key -> (method, pathway or None)`` fitted on the training
    donors (deep models tiny: :data:`TINY`) with its evaluation tables, tissue coordinates (PCA, standing in
    for UMAP) when ``umap``, and the models' test records as the benchmark when ``benchmark``."""
    directory.mkdir(parents=True, exist_ok=True)
    cohort.save(directory / COHORT_DIR)
    manifest = new_manifest(title, cohort, simulated=simulated, sources=["tests/studies.py"])
    records = []
    for key, (method, pathway) in models.items():
        genes = cohort.pathway(pathway) if pathway else cohort
        imputer = make_imputer(method, **(TINY if method in DEEP else {}))
        imputer.fit(genes.split("train"), genes.split("valid"))
        record = evaluate_imputer(imputer, genes.split("test"), train=genes.split("train"))
        checkpoint = save_checkpoint(imputer, directory / f".{key}.safetensors",
                                     {"genes": genes.genes, "tissues": getattr(imputer, "tissues", None) or genes.split("train").tissues,
                                      "transform": genes.transform, "evaluation": record, "scenario": "inductive",
                                      "pathway": pathway})
        metadata = load_checkpoint(checkpoint)[1]
        coords = None
        if umap and method in DEEP:
            coords = pca_coordinates(tissue_embeddings(imputer))[0].set_axis(["tissue", "umap_1", "umap_2"], axis=1)
        tables = evaluation_tables(imputer, genes.split("test"), rates=(0.2, 0.5, 0.8), n_per_tissue=5,
                                   train=genes.split("train"))
        write_model(directory, key, checkpoint, tables, coords)
        manifest = add_entry(manifest, model_entry(key, metadata))
        if pathway is None:
            records.append(record)
    if benchmark:
        (directory / BENCHMARK_FILE).write_text(json.dumps(records))
        manifest["benchmark"] = BENCHMARK_FILE
    write_manifest(directory, manifest)
    return directory


PROBE_GROUPS = ("adjacent", "normal", "tumour")


def probe_matrix(directory: Path, n_samples: int = 60, n_probes: int = 300, seed: int = 0) -> tuple[Path, Path]:
    """A microarray-like cohort unlike GTEx: ``expression.csv`` (probe IDs x samples, log2 intensities 2-14) and ``samples.csv`` (``sample_id``, ``condition`` in three groups; no donor, sex or
    age). Values are low-rank plus a group effect plus noise, so that imputation has something to learn."""
    rng = np.random.default_rng(seed)
    groups = np.array(PROBE_GROUPS)[np.arange(n_samples) % len(PROBE_GROUPS)]
    effect = rng.normal(0, 0.8, (len(PROBE_GROUPS), n_probes))[np.arange(n_samples) % len(PROBE_GROUPS)]
    values = 8 + rng.normal(0, 1, (n_samples, 4)) @ rng.normal(0, 0.7, (4, n_probes)) + effect
    values += rng.normal(0, 0.3, values.shape)
    probes = [f"{1000 + i}_{'s_at' if i % 3 else 'at'}" for i in range(n_probes)]
    samples = [f"GSM{500000 + i}" for i in range(n_samples)]
    expression = pd.DataFrame(np.clip(values, 2, 14).T.round(4), index=pd.Index(probes, name="ID_REF"), columns=samples)
    directory.mkdir(parents=True, exist_ok=True)
    expression.to_csv(directory / "expression.csv")
    pd.DataFrame({"sample_id": samples, "condition": groups}).to_csv(directory / "samples.csv", index=False)
    return directory / "expression.csv", directory / "samples.csv"


def build_probe_study(directory: Path) -> Path:
    """A study built by :func:`~gtex_models.studies.build.build_study` from :func:`probe_matrix` imported as a
    user would (scale detected): PMI and GAIN-GTEx (hidden 32, 2 epochs) and the mean, KNN and MICE baselines."""
    from gtex_models.data.readers import import_table
    from gtex_models.studies.build import build_study
    from gtex_models.studies.experiment import default_config

    expression, samples = probe_matrix(directory / "files")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "neither gene symbols nor Ensembl IDs": expected here
        cohort = import_table(expression, samples, tissue_column="condition")
    models = [default_config(method, cohort.n_samples, cohort.n_genes) for method in DEEP]
    models = [replace(m, model={**m.model, "hidden_sizes": TINY["hidden_sizes"]}) for m in models]
    build_study(cohort, directory / "study", models=models, baselines=("mean", "knn", "mice"),
                title="Microarray-like cohort", max_epochs=TINY["max_epochs"])
    return directory / "study"


def clear_caches(timeout: float = 600) -> None:
    """Empty the app's caches, once its background jobs (the server's, kept in a cache) have ended."""
    from pages._shared import _background_board

    for job in list(_background_board()[1].values()):
        job.wait(timeout)
    st.cache_data.clear()
    st.cache_resource.clear()


@contextmanager
def app_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, study: Path | None = None) -> Iterator[Study]:
    """The app offered ``study`` (selected at start) next to the demo, or the demo alone, with fresh caches;
    an empty studies folder of its own, whatever the user has."""
    from gtex_models.studies.demo import DEMO_DIR

    point_app_at(monkeypatch, *([study] if study is not None else []), studies_dir=tmp_path / "no_studies")
    clear_caches()
    yield Study.open(study if study is not None else DEMO_DIR)
    clear_caches()


def point_app_at(monkeypatch: pytest.MonkeyPatch, *studies: Path, studies_dir: Path) -> None:
    """Offer ``studies`` (the first selected at start) and an own studies folder, whatever the user has."""
    monkeypatch.setenv("GTEX_STUDY", os.pathsep.join(str(s) for s in studies))
    monkeypatch.setenv("GTEX_STUDIES_DIR", str(studies_dir))


def open_app(page: str | None = None, at: AppTest | None = None, study: Path | None = None,
             model: str | None = None) -> AppTest:
    """The app after a run on ``page`` (a path under pages/, or the default page); ``at`` to go on with one,
    else a new one with ``study`` and ``model`` selected as if picked in the sidebar.

    Under AppTest only the first run executes app.py (hence the sidebar): with the top-level ``pages/``
    folder, Streamlit's AppTest runs later runs, and ``switch_page``, as the page script alone. So the
    sidebar's elements are in the tree of a new app's first run only, and a study is chosen before it.
    """
    if at is None:
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        if study is not None:
            at.session_state[SELECTED_STUDY] = str(study.resolve())
        if model is not None:
            at.session_state[SELECTED_MODEL] = model
        at.run()
    if page is not None:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def assert_clean(at: AppTest, warnings: bool = True) -> None:
    """No exception and no error box (and, with ``warnings``, no warning box)."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    if warnings:
        assert not at.warning, [w.value for w in at.warning]
