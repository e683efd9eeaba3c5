"""The package's shape: layers without cycles, modules of one job, a small public API that works."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gtex_models

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gtex_models"
MAX_LINES = 520  # "about 500": a longer module says in its docstring that it is one job


def test_the_layers_contract_holds_and_has_no_cycle():
    """import-linter: interfaces > studies > analysis > models > data > common, every module in a layer, no cycle."""
    result = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                             "lint_imports_command()", "--no-cache"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_the_contract_would_catch_an_upward_import(tmp_path):
    """The contract is live: a copy of the package whose data layer imports the models layer breaks it."""
    copy = tmp_path / "gtex_models"
    subprocess.run(["cp", "-r", str(PACKAGE), str(copy)], check=True)
    cohort = copy / "data" / "cohort.py"
    cohort.write_text(cohort.read_text() + "\nfrom gtex_models.models import registry  # noqa\n")
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    result = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, '.'); "
                             "from importlinter.cli import lint_imports_command; lint_imports_command()",
                             "--no-cache"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0
    assert "gtex_models.data.cohort -> gtex_models.models.registry" in result.stdout


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_long_module_says_it_is_one_job(path):
    lines = path.read_text().count("\n")
    if lines > MAX_LINES:
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert "one job" in docstring.lower(), f"{path.name} has {lines} lines: split it or say why it is one job"


def test_the_public_api_resolves_every_name_lazily():
    code = ("import sys, gtex_models; loaded = [m for m in sys.modules if m.startswith('gtex_models.')]; "
            "print(len(loaded), 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["0", "False"]  # nothing of the layers, no torch, until a name is used
    for name in gtex_models.__all__:
        assert getattr(gtex_models, name) is not None
    with pytest.raises(AttributeError, match="public API"):
        gtex_models.not_a_name  # noqa: B018


def test_the_readme_example_runs_and_scores_the_imputer():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) == 5
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    r2 = float(result.stdout.strip().rsplit(" ", 1)[1])
    assert 0.05 < r2 < 1.0  # KNN recovers part of the hidden values' variance on the simulated cohort


def test_the_demo_study_written_before_the_move_still_loads():
    """Checkpoints and study.json written by the pre-layers package (committed demo) load and impute."""
    study = gtex_models.Study.open(ROOT / "data" / "demo")
    assert study.models
    imputer, metadata = gtex_models.load_checkpoint(study.checkpoint_path(next(iter(study.models))))
    assert metadata["genes"] is not None and imputer.method in gtex_models.METHODS
