"""Outputs never delete or replace what the project did not write, and get the user's umask.

Every command that writes is run with ``--out`` (or ``--json`` / ``--markdown``) pointing at a user's
folder and at a user's file: the command refuses (``error: ...``, exit 2) and the folder or file is
still there byte for byte. The same commands with a fresh path succeed, so the refusal is the
output's doing, not the input's.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gtex_models.common.atomic import OutputFolder, OutputPathError, atomic_file
from gtex_models.data.cohort import Cohort
from gtex_models.data.simulate import SimulationConfig, simulate_cohort
from gtex_models.data.store import save_store
from gtex_models.interfaces.cli.main import main
from gtex_models.studies import demo

FOLDER_COMMANDS = ("simulate", "import", "prepare-gtex", "build-demo", "study build", "import --archs4",
                   "impute (store)")
FILE_COMMANDS = ("train", "impute", "evaluate --json", "benchmark --json", "benchmark --markdown")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A cohort, a mean-imputer checkpoint, an upload with gaps, three tiny GTEx files, a store of the
    cohort's training samples and an ARCHS4 file."""
    from test_archs4 import write_archs4

    directory = tmp_path_factory.mktemp("inputs")
    cohort = simulate_cohort(n_donors=12, n_genes=400, seed=3)
    cohort.save(directory / "cohort")
    assert main(["train", "--cohort", str(directory / "cohort"), "--method", "mean",
                 "--out", str(directory / "mean.safetensors")]) == 0
    save_store(cohort.subset_samples(np.flatnonzero(cohort.samples["split"] == "train")), directory / "store")
    write_archs4(directory / "archs4.h5")
    test = cohort.split("test")
    upload = pd.DataFrame(test.raw()[:3], index=pd.Index(test.samples["sample_id"][:3], name="sample_id"),
                          columns=test.genes["symbol"])
    upload.mask(np.random.default_rng(0).random(upload.shape) < 0.3).to_csv(directory / "upload.csv")
    (directory / "x.gct").write_text("#1.2\n1\t2\nName\tDescription\tGTEX-A-1\tGTEX-B-1\n"
                                     "ENSG00000141510.16\tTP53\t1\t2\n")
    (directory / "attributes.txt").write_text("SAMPID\tSMTSD\tSMAFRZE\nGTEX-A-1\tLung\tRNASEQ\nGTEX-B-1\tLung\tRNASEQ\n")
    (directory / "subjects.txt").write_text("SUBJID\tSEX\tAGE\tDTHHRDY\nGTEX-A\t1\t20-29\t\nGTEX-B\t2\t30-39\t1\n")
    return {"dir": directory, "cohort": directory / "cohort", "checkpoint": directory / "mean.safetensors",
            "upload": directory / "upload.csv", "store": directory / "store", "archs4": directory / "archs4.h5"}


@pytest.fixture
def tiny_demo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """build-demo on a tiny simulated cohort cached under tmp_path (it is refused before any training)."""
    monkeypatch.setattr(demo, "DEMO_SIMULATION", SimulationConfig(n_donors=6, n_genes=400, seed=0))
    monkeypatch.setattr(demo, "CACHE_DIR", tmp_path / "cache")


def command(name: str, inputs: dict[str, Path], out: Path) -> list[str]:
    d = inputs["dir"]
    argv = {
        "simulate": ["simulate", "--donors", "5", "--genes", "400", "--out", out],
        "import": ["import", "--expression", inputs["upload"], "--out", out],
        "prepare-gtex": ["prepare-gtex", "--gct", d / "x.gct", "--samples", d / "attributes.txt",
                         "--subjects", d / "subjects.txt", "--min-samples-per-tissue", "1", "--out", out],
        "build-demo": ["build-demo", "--out", out],
        "study build": ["study", "build", "--cohort", inputs["cohort"], "--models", "mean", "--baselines", "",
                        "--out", out],
        "import --archs4": ["import", "--archs4", inputs["archs4"], "--samples-query", "liver", "--out", out],
        "impute (store)": ["impute", "--checkpoint", inputs["checkpoint"], "--input", inputs["store"], "--out", out],
        "train": ["train", "--cohort", inputs["cohort"], "--method", "mean", "--out", out],
        "impute": ["impute", "--checkpoint", inputs["checkpoint"], "--input", inputs["upload"],
                   "--tissue", "Lung", "--out", out],
        "evaluate --json": ["evaluate", "--checkpoint", inputs["checkpoint"], "--cohort", inputs["cohort"],
                            "--json", out],
        "benchmark --json": ["benchmark", "--cohort", inputs["cohort"], "--methods", "mean", "--json", out],
        "benchmark --markdown": ["benchmark", "--cohort", inputs["cohort"], "--methods", "mean", "--markdown", out],
    }[name]
    return [str(a) for a in argv]


def snapshot(path: Path) -> dict[str, bytes | None]:
    """Every file and folder under ``path`` (itself included), with the bytes of the files."""
    if path.is_file():
        return {".": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() if p.is_file() else None for p in sorted(path.rglob("*"))}


def users_folder(parent: Path) -> Path:
    folder = parent / "my_results"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "sub" / "data.bin").write_bytes(bytes(range(256)))
    return folder


def assert_refused(capsys, argv: list[str], out: Path, pattern: str) -> None:
    status = main(argv)
    stderr = capsys.readouterr().err
    assert status == 2, stderr
    assert stderr.startswith("error: ") and "Traceback" not in stderr, stderr
    assert re.search(pattern, stderr), stderr
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]  # no temporary leftovers


@pytest.mark.parametrize("name", [c for c in FOLDER_COMMANDS + FILE_COMMANDS if c != "build-demo"])
def test_each_command_writes_to_a_new_path(name, inputs, tmp_path, capsys):
    """The base case: the refusals below are the output path's doing."""
    out = tmp_path / ("new" if name in FOLDER_COMMANDS else "new.out")
    assert main(command(name, inputs, out)) == 0, capsys.readouterr().err
    assert out.exists()


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "--overwrite"])
@pytest.mark.parametrize("name", FOLDER_COMMANDS + FILE_COMMANDS)
def test_a_users_folder_stays_byte_for_byte(name, overwrite, inputs, tmp_path, capsys, tiny_demo):
    folder = users_folder(tmp_path)
    before = snapshot(folder)
    expected = "folder with files this project did not write" if name in FOLDER_COMMANDS else "is a folder; give"
    assert_refused(capsys, command(name, inputs, folder) + ["--overwrite"] * overwrite, folder,
                   rf"{re.escape(str(folder))}.*{expected}")
    assert snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["my_results"]


@pytest.mark.parametrize("name", FOLDER_COMMANDS + FILE_COMMANDS)
def test_a_users_file_stays_byte_for_byte(name, inputs, tmp_path, capsys, tiny_demo):
    path = tmp_path / "results.txt"
    path.write_bytes(b"my results\r\n\x00\xff")
    expected = "is a file, not a folder" if name in FOLDER_COMMANDS else "already exists.*--overwrite"
    assert_refused(capsys, command(name, inputs, path), path, rf"{re.escape(str(path))}.*{expected}")
    assert path.read_bytes() == b"my results\r\n\x00\xff"
    if name in FOLDER_COMMANDS:  # a folder output never replaces a file, --overwrite or not
        assert_refused(capsys, command(name, inputs, path) + ["--overwrite"], path, "is a file, not a folder")
        assert path.read_bytes() == b"my results\r\n\x00\xff"


def test_overwrite_replaces_our_own_outputs_only(inputs, tmp_path, capsys):
    cohort_dir, checkpoint = tmp_path / "cohort", tmp_path / "m.safetensors"
    assert main(command("simulate", inputs, cohort_dir)) == 0
    assert_refused(capsys, command("simulate", inputs, cohort_dir), cohort_dir, "already holds a cohort.*--overwrite")
    assert main(command("import", inputs, cohort_dir) + ["--overwrite"]) == 0
    assert Cohort.load(cohort_dir).n_samples == 3  # the imported upload replaced the simulated cohort
    assert main(command("train", inputs, checkpoint)) == 0
    assert main(command("train", inputs, checkpoint) + ["--overwrite"]) == 0
    for name, kind in (("study build", "study"), ("impute (store)", "cohort")):  # main's folder writers too
        out = tmp_path / name.split()[0]
        assert main(command(name, inputs, out)) == 0
        capsys.readouterr()
        before = snapshot(out)
        assert_refused(capsys, command(name, inputs, out), out, f"already holds a {kind}.*--overwrite")
        assert snapshot(out) == before
        assert main(command(name, inputs, out) + ["--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort", "impute", "m.safetensors", "study"]  # no temp left


def test_a_failed_replacement_keeps_the_old_folder_and_the_users_neighbours(tmp_path, small_cohort):
    cohort = small_cohort.subset_samples(np.arange(20))
    cohort.save(tmp_path / "c")
    before = snapshot(tmp_path / "c")
    (tmp_path / ".c.old").mkdir()  # the user's own folder with the name the old code used as a backup
    (tmp_path / ".c.old" / "keep.txt").write_text("mine")
    folder = OutputFolder("cohort", ("cohort.json",))
    with pytest.raises(RuntimeError, match="boom"):
        with folder.write(tmp_path / "c", overwrite=True) as tmp:
            (tmp / "cohort.json").write_text("{}")
            raise RuntimeError("boom")
    assert snapshot(tmp_path / "c") == before
    cohort.subset_samples(np.arange(5)).save(tmp_path / "c", overwrite=True)
    assert Cohort.load(tmp_path / "c").n_samples == 5
    assert (tmp_path / ".c.old" / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".c.old", "c"]


def test_an_empty_folder_is_used_and_a_symlink_refused(tmp_path, small_cohort):
    cohort = small_cohort.subset_samples(np.arange(10))
    (tmp_path / "empty").mkdir()
    cohort.save(tmp_path / "empty")
    assert Cohort.load(tmp_path / "empty").n_samples == 10
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    with pytest.raises(OutputPathError, match="is a symbolic link"):
        cohort.save(tmp_path / "link", overwrite=True)


def test_file_outputs_name_the_users_path_not_a_temporary_one(tmp_path):
    (tmp_path / "out.csv").mkdir()
    with pytest.raises(OutputPathError, match=rf"^{re.escape(str(tmp_path / 'out.csv'))} is a folder"):
        with atomic_file(tmp_path / "out.csv") as tmp:
            tmp.write_text("x")
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OutputPathError, match=r"a_file is a file, not a folder"):
        with atomic_file(tmp_path / "a_file" / "out.csv") as tmp:
            tmp.write_text("x")
    assert (tmp_path / "a_file").read_text() == "x"


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_outputs_get_the_users_umask(umask, file_mode, dir_mode, inputs, tmp_path):
    previous = os.umask(umask)
    try:
        assert main(command("train", inputs, tmp_path / "m.safetensors")) == 0
        assert main(command("import", inputs, tmp_path / "cohort")) == 0
        assert main(command("impute", inputs, tmp_path / "imputed.csv")) == 0
    finally:
        os.umask(previous)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "imputed.csv").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "cohort").stat().st_mode & 0o777 == dir_mode
    assert (tmp_path / "cohort" / "cohort.json").stat().st_mode & 0o777 == file_mode


def test_study_add_model_writes_only_into_a_study(inputs, tmp_path, capsys):
    """add-model adds files to an existing study; a folder of the user's is refused untouched."""
    folder = users_folder(tmp_path)
    before = snapshot(folder)
    for how in (["--method", "mean"], ["--checkpoint", str(inputs["checkpoint"])]):
        status = main(["study", "add-model", "--study", str(folder), *how])
        stderr = capsys.readouterr().err
        assert status == 2 and "is not a study folder (no study.json)" in stderr, stderr
    assert snapshot(folder) == before


def test_streamed_imputation_to_csv_refuses_a_users_file_and_folder(inputs, tmp_path, capsys):
    argv = ["impute", "--checkpoint", str(inputs["checkpoint"]), "--input", str(inputs["store"]), "--out"]
    path = tmp_path / "imputed.csv"
    path.write_bytes(b"mine")
    assert_refused(capsys, [*argv, str(path)], path, "already exists.*--overwrite")
    assert path.read_bytes() == b"mine"
    status, stderr = main([*argv, str(path), "--overwrite"]), capsys.readouterr().err
    assert status == 0, stderr
    assert path.read_bytes().startswith(b"sample_id,")
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    (folder / "keep").write_text("x")
    assert_refused(capsys, [*argv, str(folder), "--overwrite"], folder, "is a folder; give the path of a file")
    assert (folder / "keep").read_text() == "x"
