"""Where the project's shipped files are: the reference lists, the demo study and the experiment configs.

They live beside the package in the project folder (``data/``, ``configs/``), not inside it.
"""

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
DATA_DIR = PROJECT_DIR / "data"
CONFIG_DIR = PROJECT_DIR / "configs"
