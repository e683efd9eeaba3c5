"""The demo: a simulated cohort plus trained checkpoints and precomputed tables under ``data/demo``.

The cohort itself is not committed (it is regenerated from its seed in a few seconds and cached
under ``data/cache``); the checkpoints, evaluation tables, benchmark records and tissue-embedding
coordinates are, so the app opens instantly. ``python -m gtex_models build-demo`` rebuilds them.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from gtex_models.cohort import Cohort
from gtex_models.simulate import SimulationConfig, simulate_cohort

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEMO_DIR = DATA_DIR / "demo"
CACHE_DIR = DATA_DIR / "cache"
DEMO_SIMULATION = SimulationConfig(n_donors=200, n_genes=2000, seed=0)
DEMO_MODELS: dict[str, str] = {
    "pmi_all": "PMI · all genes",
    "gain_all": "GAIN-GTEx · all genes",
    "pmi_alzheimer": "PMI · Alzheimer's pathway genes",
    "gain_alzheimer": "GAIN-GTEx · Alzheimer's pathway genes",
}
TABLES = ("per_gene", "per_tissue", "across_rates")


def load_demo_cohort() -> Cohort:
    """The simulated demo cohort, regenerated from its seed on first use and cached on disk."""
    cached = CACHE_DIR / "demo_cohort"
    config = asdict(DEMO_SIMULATION)
    if (cached / "cohort.json").is_file():
        cohort = Cohort.load(cached)
        if cohort.meta.get("simulation") == config:
            return cohort
    cohort = simulate_cohort(**config)
    try:
        cohort.save(cached)
    except OSError:  # read-only checkout: keep it in memory only
        pass
    return cohort


def checkpoint_path(key: str) -> Path:
    """Path of a demo checkpoint (``pmi_all``, ``gain_all``, ``pmi_alzheimer``, ``gain_alzheimer``)."""
    if key not in DEMO_MODELS:
        raise ValueError(f"Unknown demo model {key!r}; choose one of {list(DEMO_MODELS)}.")
    return DEMO_DIR / f"{key}.safetensors"


def available_models() -> dict[str, str]:
    """The demo models whose checkpoint exists, key -> label."""
    return {key: label for key, label in DEMO_MODELS.items() if checkpoint_path(key).is_file()}


def load_tables(key: str) -> dict[str, pd.DataFrame]:
    """Precomputed evaluation tables of a demo model: ``per_gene``, ``per_tissue``, ``across_rates``."""
    checkpoint_path(key)  # validates the key
    return {name: pd.read_csv(DEMO_DIR / "tables" / f"{key}_{name}.csv.gz") for name in TABLES}


def load_benchmark() -> list[dict[str, Any]]:
    """Benchmark records (one per method and scenario) of the demo cohort."""
    return json.loads((DEMO_DIR / "benchmark.json").read_text())


def tissue_umap(key: str) -> pd.DataFrame:
    """Precomputed UMAP coordinates of a demo model's tissue embeddings: tissue, umap_1, umap_2."""
    checkpoint_path(key)
    return pd.read_csv(DEMO_DIR / "tables" / f"{key}_tissue_umap.csv")
