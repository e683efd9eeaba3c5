"""The demo: the study at ``data/demo``, built on a simulated cohort by :func:`build_demo`.

The cohort itself is not committed (the study stores the simulation's arguments; it is regenerated
from its seed in a few seconds and cached under ``data/cache``); the checkpoints, evaluation tables,
interval coverage, benchmark records and tissue-embedding coordinates are, so the app opens instantly.
``python -m gtex_models build-demo --overwrite`` rebuilds them through :func:`gtex_models.studies.build.build_study`.

The readers below (:func:`checkpoint_path`, :func:`available_models`, :func:`load_tables`,
:func:`load_benchmark`, :func:`tissue_umap`) are thin wrappers over :class:`~gtex_models.studies.study.Study`
kept for the app's pages until they read the selected study themselves.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from gtex_models.common.choices import SCENARIOS
from gtex_models.common.paths import CONFIG_DIR, DATA_DIR
from gtex_models.common.progress import ProgressCallback
from gtex_models.data.cohort import Cohort
from gtex_models.data.simulate import SimulationConfig
from gtex_models.studies.experiment import Experiment
from gtex_models.studies.study import Study, simulated_cohort

DEMO_DIR = DATA_DIR / "demo"
CACHE_DIR = DATA_DIR / "cache"
DEMO_SIMULATION = SimulationConfig(n_donors=300, n_genes=2000, seed=0)
DEMO_TITLE = "Demo cohort (simulated)"
DEMO_DESCRIPTION = (
    "Simulated GTEx-shaped cohort: the 49 GTEx v8 tissues with their proportions, real protein-coding gene "
    "symbols and Ensembl IDs, 300 donors. Tissue profiles follow an organ-system tree (the 13 brain regions "
    "share a CNS program), each sample is in one of 512 cell states (a mixture, so the best imputer is "
    "non-linear), donors carry effects shared by all their tissues, noise is gene-specific and lowly expressed "
    "genes are often undetected (TPM 0). The exact conditional mean (the oracle) is known. Not real GTEx data."
)
DEMO_MODELS: dict[str, str] = {
    "pmi_all": "PMI · all genes",
    "gain_all": "GAIN-GTEx · all genes",
    "pmi_alzheimer": "PMI · Alzheimer's pathway genes",
    "gain_alzheimer": "GAIN-GTEx · Alzheimer's pathway genes",
    "pmi_p53": "PMI · p53 pathway genes",
    "gain_p53": "GAIN-GTEx · p53 pathway genes",
    "gauss_all": "Gaussian conditional · all genes",
}
# demo model -> its experiment config, relative to configs/ (configs/demo/: tuned for the simulated demo;
# the authors' settings are in configs/paper/)
DEMO_EXPERIMENTS = {
    "pmi_all": "demo/pmi_inductive_all.yaml",
    "gain_all": "demo/gain_inplace_all.yaml",
    "pmi_alzheimer": "demo/pmi_inductive_alzheimer.yaml",
    "gain_alzheimer": "demo/gain_inplace_alzheimer.yaml",
    "pmi_p53": "demo/pmi_inductive_p53.yaml",
    "gain_p53": "demo/gain_inplace_p53.yaml",
    "gauss_all": "demo/gauss_inductive_all.yaml",
}
# (benchmark method, scenario) -> the config whose model and training settings it uses (others: defaults)
BENCHMARK_CONFIGS = {
    ("pmi", "inductive"): "demo/pmi_inductive_all.yaml", ("pmi", "inplace"): "demo/pmi_inplace_all.yaml",
    ("gain", "inductive"): "demo/gain_inductive_all.yaml", ("gain", "inplace"): "demo/gain_inplace_all.yaml",
    ("gain-mse", "inductive"): "demo/gain_inductive_all.yaml",
    ("gain-mse", "inplace"): "demo/gain_inplace_all.yaml",
}
BENCHMARK_METHODS = ("pmi", "gain", "gain-mse", "gauss", "softimpute", "mean", "knn", "mice", "missforest", "blood",
                     "oracle")


def load_demo_cohort() -> Cohort:
    """The simulated demo cohort, regenerated from its seed on first use and cached on disk."""
    return simulated_cohort(asdict(DEMO_SIMULATION), CACHE_DIR, name="demo_cohort")


def demo_study() -> Study:
    """The demo study (``data/demo``), opened read-only."""
    return Study.open(DEMO_DIR)


def checkpoint_path(key: str) -> Path:
    """Path of a demo checkpoint (a key of :data:`DEMO_MODELS`, e.g. ``pmi_all`` or ``gain_p53``)."""
    if key not in DEMO_MODELS:
        raise ValueError(f"Unknown demo model {key!r}; choose one of {list(DEMO_MODELS)}.")
    return DEMO_DIR / "models" / f"{key}.safetensors"


def available_models() -> dict[str, str]:
    """The demo models whose checkpoint exists, key -> label."""
    return {key: label for key, label in DEMO_MODELS.items() if checkpoint_path(key).is_file()}


def load_tables(key: str) -> dict[str, pd.DataFrame]:
    """Precomputed evaluation tables of a demo model: ``per_gene``, ``per_tissue``, ``across_rates``."""
    checkpoint_path(key)  # validates the key
    return demo_study().tables(key)


def load_benchmark() -> list[dict[str, Any]]:
    """Benchmark records (one per method and scenario) of the demo cohort."""
    return demo_study().benchmark() or []


def tissue_umap(key: str) -> pd.DataFrame:
    """Precomputed UMAP coordinates of a demo model's tissue embeddings: tissue, umap_1, umap_2."""
    checkpoint_path(key)
    coordinates = demo_study().tissue_umap(key)
    if coordinates is None:
        raise FileNotFoundError(f"The demo study has no UMAP coordinates for {key!r}; rebuild it (build-demo --overwrite).")
    return coordinates


def demo_runs() -> tuple[list, list]:
    """The demo's models (:data:`DEMO_EXPERIMENTS`) and its benchmark-only runs: every other method of
    :data:`BENCHMARK_METHODS` under both scenarios on all genes, the deep ones with their scenario's
    config (:data:`BENCHMARK_CONFIGS`), the others with their defaults."""
    models = [Experiment.from_yaml(CONFIG_DIR / name) for name in DEMO_EXPERIMENTS.values()]
    baselines: list = []
    for method in BENCHMARK_METHODS:
        for scenario in SCENARIOS:
            config = BENCHMARK_CONFIGS.get((method, scenario))
            if config is None:
                baselines.append(Experiment(method, scenario))
            else:
                base = Experiment.from_yaml(CONFIG_DIR / config)
                baselines.append(Experiment(method, scenario, None, 0.5, base.model, base.training))
    return models, baselines


def build_demo(out: str | Path = DEMO_DIR, progress: ProgressCallback | None = None,
               max_epochs: int | None = None, overwrite: bool = False) -> Study:
    """Rebuild the demo study at ``out``: :func:`~gtex_models.studies.build.build_study` on the simulated
    cohort with the demo's models and benchmark runs (:func:`demo_runs`).

    Like any study, an existing study at ``out`` (``data/demo`` itself included) is replaced only with
    ``overwrite``; a folder that is not a study, or a file, is never replaced."""
    from gtex_models.studies.build import build_study  # trains models (torch): only when the demo is rebuilt

    models, baselines = demo_runs()
    return build_study(load_demo_cohort(), out, models, baselines, title=DEMO_TITLE, description=DEMO_DESCRIPTION,
                       max_epochs=max_epochs, overwrite=overwrite, progress=progress,
                       simulation=asdict(DEMO_SIMULATION))
