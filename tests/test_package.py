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
