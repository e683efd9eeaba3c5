"""The New study page under AppTest: upload a matrix, build a study in the background, land on it; cancel;
bad inputs; cohorts too large for the page.

The builds are real (:func:`~gtex_models.studies.build.build_study` on small data, 2 epochs).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from studies import APP, TIMEOUT, assert_clean, clear_caches, open_app, point_app_at, probe_matrix

from gtex_models.data.simulate import simulate_cohort
from gtex_models.studies.jobs import CANCELLED, DONE, Job
from gtex_models.studies.study import MANIFEST, Study
from pages._shared import SELECTED_STUDY, job_board

PAGE = "pages/new_study.py"


@pytest.fixture()
def studies_dir(monkeypatch, tmp_path) -> Path:
    """An empty studies folder, the only place the page may write to."""
    folder = tmp_path / "studies"
    point_app_at(monkeypatch, studies_dir=folder)
    clear_caches()
    yield folder
    for job in list(job_board().values()):  # never leave a build running into the next test
        job.cancel()
        job.wait(60)
    job_board().clear()
    clear_caches()


def the_build() -> tuple[str, Job]:
    """The id and job of the one build on the server's board."""
    (build,) = job_board().items()
    return build


def widget(at: AppTest, kind: str, label: str):
    """The widget of ``kind`` labelled ``label`` (for widgets whose key depends on the upload)."""
    return next(w for w in getattr(at, kind) if w.label == label)


def has_button(at: AppTest, key: str) -> bool:
    return any(button.key == key for button in at.button)


def upload_files(at: AppTest, expression: Path, samples: Path | None = None) -> AppTest:
    at.file_uploader(key="new_expression").set_value((expression.name, expression.read_bytes(), "text/csv"))
    if samples is not None:
        at.file_uploader(key="new_samples").set_value((samples.name, samples.read_bytes(), "text/csv"))
    return at.run()


def wait_for_job(at: AppTest, timeout: float = 600) -> None:
    """Rerun the page (as its polling would) until the build has ended."""
    job = the_build()[1]
    start = time.perf_counter()
    while job.running and time.perf_counter() - start < timeout:
        job.wait(2)
        at.run()
    assert not job.running, f"the build did not end in {timeout} s ({job.message})"


def test_upload_build_and_land_on_the_new_study(studies_dir, tmp_path):
    expression, samples = probe_matrix(tmp_path / "files")
    at = upload_files(open_app(PAGE), expression, samples)
    assert_clean(at, warnings=False)  # the reader warns that probe IDs are not gene symbols
    assert widget(at, "selectbox", "Group column").value == "condition"  # detected from the header
    assert widget(at, "selectbox", "Scale").value == "log"  # detected from the values
    assert any("Detected: **log**" in c.value for c in at.caption)
    assert {m.label: m.value for m in at.metric} == {"Samples": "60", "Genes": "300", "Groups": "3", "Donors": "60"}
    at.number_input(key="new_max_epochs").set_value(2)
    at.text_input(key="new_title").set_value("My arrays (2024)")
    at.button(key="build_study").click().run()
    assert_clean(at, warnings=False)
    job = the_build()[1]
    assert job.title == "My arrays (2024)"
    assert at.get("progress") or not job.running  # the live progress bar while it runs
    wait_for_job(at)
    assert job.state == DONE, job.error
    assert_clean(at, warnings=False)
    built = studies_dir / "my-arrays-2024"
    assert at.session_state[SELECTED_STUDY] == str(built.resolve())  # selected in the picker
    assert [t.value for t in at.title] == ["Benchmark & model card"]  # landed on the study's pages
    assert {m.label: m.value for m in at.metric}["Samples"] == "60"
    study = Study.open(built)
    assert not study.problems and set(study.models) == {"gauss_all", "pmi_all", "gain_all"}
    assert {r["method"] for r in study.benchmark()} == {"gauss", "pmi", "gain", "mean", "knn", "mice"}
    assert study.recommendation is not None  # the best on the validation donors, simple or deep
    assert study.cohort().tissues == ["adjacent", "normal", "tumour"]
    assert sorted(p.name for p in studies_dir.iterdir()) == ["my-arrays-2024"]  # nothing else written
    fresh = open_app()  # a new session: the study is in the picker
    assert "My arrays (2024)" in fresh.selectbox(key="study_path").options


def test_cancel_stops_the_build_and_writes_nothing(studies_dir, tmp_path):
    cohort = simulate_cohort(n_donors=60, n_genes=1000, seed=2)  # ~1,200 samples: a build of minutes
    cohort.save(tmp_path / "cohort")
    at = open_app(PAGE)
    at.radio(key="new_source").set_value("A cohort folder on this machine").run()
    at.text_input(key="new_folder").set_value(str(tmp_path / "cohort")).run()
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Groups"] == str(len(cohort.tissues))
    at.button(key="build_study").click().run()
    job_id, job = the_build()
    assert has_button(at, f"cancel_{job_id}")
    at.button(key=f"cancel_{job_id}").click().run()
    start = time.perf_counter()
    wait_for_job(at, timeout=120)
    assert job.state == CANCELLED and time.perf_counter() - start < 60
    assert_clean(at)
    assert any("was cancelled" in i.value and "nothing was written" in i.value for i in at.info)
    assert not studies_dir.exists() or not list(studies_dir.iterdir())  # not even a temporary folder
    at.button(key=f"dismiss_{job_id}").click().run()
    assert not job_board() and has_button(at, "build_study")  # ready for the next build


def test_bad_uploads_get_errors_and_the_page_stays_usable(studies_dir, tmp_path):
    expression, samples = probe_matrix(tmp_path / "files")
    bad = tmp_path / "bad.csv"
    bad.write_text("gene;S1\nTP53;1,5\n")
    at = upload_files(open_app(PAGE), bad)
    assert not at.exception and len(at.error) == 1
    assert "bad.csv, line 2" in at.error[0].value and "decimal separator" in at.error[0].value
    assert "gtex-upload-" not in at.error[0].value  # the file's name, not a temporary path
    holes = tmp_path / "holes.csv"
    holes.write_text(samples.read_text().replace("GSM500003,adjacent", "GSM500003,"))
    at = upload_files(at, expression, holes)
    assert not at.exception and len(at.error) == 1
    assert "no tissue for sample(s) 'GSM500003'" in at.error[0].value and "holes.csv" in at.error[0].value
    assert not has_button(at, "build_study")
    gaps = tmp_path / "gaps.csv"
    lines = expression.read_text().splitlines()
    probe, _, *rest = lines[2].split(",")  # the second probe, its first value left empty
    gaps.write_text("\n".join([*lines[:2], ",".join([probe, "", *rest]), *lines[3:]]) + "\n")
    at = upload_files(at, gaps, samples)
    assert not at.exception and len(at.error) == 1
    assert "needs a complete cohort" in at.error[0].value and "1001_s_at" in at.error[0].value
    assert not has_button(at, "build_study")
    at = upload_files(at, expression, samples)
    assert not at.exception and not at.error
    assert has_button(at, "build_study")
    at.radio(key="new_source").set_value("A cohort folder on this machine").run()
    at.text_input(key="new_folder").set_value(str(tmp_path / "files")).run()
    assert not at.exception and "is not a cohort folder (no cohort.json" in at.error[0].value
    assert not studies_dir.exists() or not list(studies_dir.iterdir())


def test_a_malformed_study_or_cohort_gets_an_error_and_the_page_stays_usable(studies_dir, tmp_path):
    """A hand-edited study.json in the studies folder, and a damaged cohort folder given to the page."""
    broken = studies_dir / "edited"
    broken.mkdir(parents=True)
    (broken / MANIFEST).write_text(json.dumps({"format": "gtex-imputation-study", "format_version": 1,
                                               "title": "Edited", "cohort": {"summary": [1, 2]}}))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    errors = " ".join(e.value for e in at.sidebar.error)
    assert "edited` cannot be opened" in errors and "cohort.summary: should be a mapping" in errors, errors
    at = open_app(PAGE, at)
    expression, samples = probe_matrix(tmp_path / "files")
    at = upload_files(at, expression, samples)
    assert not at.exception and not at.error and has_button(at, "build_study")
    cohort = simulate_cohort(n_donors=8, n_genes=400, seed=0).save(tmp_path / "cohort")
    (cohort / "cohort.json").write_text('{"format_version": "one", "scale": "tpm", "pseudocount": 1}')
    at.radio(key="new_source").set_value("A cohort folder on this machine").run()
    at.text_input(key="new_folder").set_value(str(cohort)).run()
    assert not at.exception and "format_version: Input should be a valid integer" in at.error[0].value
    assert [p.name for p in studies_dir.iterdir()] == ["edited"]


def test_a_cohort_above_the_limit_gets_the_commands_instead(studies_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GTEX_MAX_TRAIN_CELLS", "10000")
    expression, samples = probe_matrix(tmp_path / "files")
    at = upload_files(open_app(PAGE), expression, samples)
    assert not at.exception and not at.error
    assert any("18,000 values: more than this page trains (10,000 values" in w.value for w in at.warning)
    assert not has_button(at, "build_study")
    commands = at.code[0].value.splitlines()
    assert commands[0].startswith("python -m gtex_models import --expression expression.csv --samples samples.csv "
                                  "--tissue-column condition --scale log --duplicates error --out data/cohorts/")
    assert commands[1].startswith("python -m gtex_models study build --cohort data/cohorts/")
    assert f"--out {studies_dir}/" in commands[1] and "--models gauss,pmi,gain --baselines mean,knn,mice" in commands[1]
