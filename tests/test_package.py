import subprocess
import sys


def test_import_is_light():
    """Importing the package must not pull in streamlit, umap, scikit-learn or anndata."""
    code = (
        "import sys, gtex_models, gtex_models.interfaces.cli.main, gtex_models.models.registry, gtex_models.analysis.evaluation; "
        "heavy = [m for m in ('streamlit', 'umap', 'sklearn', 'anndata') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_the_package_installs_and_runs_from_any_folder(tmp_path):
    """`pip install -e .` (the README's set-up) gives `python -m gtex_models` and `gtex-models` outside the project,
    and the installed package still finds the project's data/ and configs/ folders."""
    import os
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["build-system"]["build-backend"] == "setuptools.build_meta"  # what pip builds it with
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e",
                              str(root)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert install.returncode == 0, install.stdout + install.stderr
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for command in ([str(python), "-m", "gtex_models", "--help"], [str(venv / "bin" / "gtex-models"), "--help"]):
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=outside)
        assert result.returncode == 0, result.stderr
        assert "study" in result.stdout and "impute" in result.stdout
    assert "usage: gtex-models" in result.stdout  # the console command names itself
    code = ("from gtex_models.common.paths import CONFIG_DIR, DATA_DIR; "
            "print((DATA_DIR / 'reference' / 'gtex_v8_tissues.csv').is_file(), (CONFIG_DIR / 'demo').is_dir())")
    found = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env, cwd=outside)
    assert found.stdout.split() == ["True", "True"], found.stderr
