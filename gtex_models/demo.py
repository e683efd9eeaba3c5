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

from gtex_models.atomic import atomic_directory
from gtex_models.cohort import Cohort
from gtex_models.imputers.base import ProgressCallback
from gtex_models.simulate import SimulationConfig, is_current, simulate_cohort

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEMO_DIR = DATA_DIR / "demo"
CACHE_DIR = DATA_DIR / "cache"
DEMO_SIMULATION = SimulationConfig(n_donors=300, n_genes=2000, seed=0)
DEMO_MODELS: dict[str, str] = {
    "pmi_all": "PMI · all genes",
    "gain_all": "GAIN-GTEx · all genes",
    "pmi_alzheimer": "PMI · Alzheimer's pathway genes",
    "gain_alzheimer": "GAIN-GTEx · Alzheimer's pathway genes",
    "pmi_p53": "PMI · p53 pathway genes",
    "gain_p53": "GAIN-GTEx · p53 pathway genes",
}
TABLES = ("per_gene", "per_tissue", "across_rates")
# demo model -> its experiment config in configs/
DEMO_EXPERIMENTS = {
    "pmi_all": "pmi_inductive_all.yaml",
    "gain_all": "gain_inplace_all.yaml",
    "pmi_alzheimer": "pmi_inductive_alzheimer.yaml",
    "gain_alzheimer": "gain_inplace_alzheimer.yaml",
    "pmi_p53": "pmi_inductive_p53.yaml",
    "gain_p53": "gain_inplace_p53.yaml",
}
# (benchmark method, scenario) -> the config whose model and training settings it uses (others: defaults)
BENCHMARK_CONFIGS = {
    ("pmi", "inductive"): "pmi_inductive_all.yaml", ("pmi", "inplace"): "pmi_inplace_all.yaml",
    ("gain", "inductive"): "gain_inductive_all.yaml", ("gain", "inplace"): "gain_inplace_all.yaml",
    ("gain-mse", "inductive"): "gain_inductive_all.yaml", ("gain-mse", "inplace"): "gain_inplace_all.yaml",
}
BENCHMARK_METHODS = ("pmi", "gain", "gain-mse", "mean", "knn", "mice", "missforest", "blood", "oracle")


def load_demo_cohort() -> Cohort:
    """The simulated demo cohort, regenerated from its seed on first use and cached on disk."""
    cached = CACHE_DIR / "demo_cohort"
    config = asdict(DEMO_SIMULATION)
    if (cached / "cohort.json").is_file():
        cohort = Cohort.load(cached)
        if cohort.meta.get("simulation") == config and is_current(cohort):
            return cohort
    cohort = simulate_cohort(**config)
    try:
        cohort.save(cached)
    except OSError:  # read-only checkout: keep it in memory only
        pass
    return cohort


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
    return {name: pd.read_csv(DEMO_DIR / "tables" / f"{key}_{name}.csv.gz") for name in TABLES}


def load_benchmark() -> list[dict[str, Any]]:
    """Benchmark records (one per method and scenario) of the demo cohort."""
    return json.loads((DEMO_DIR / "benchmark.json").read_text())


def tissue_umap(key: str) -> pd.DataFrame:
    """Precomputed UMAP coordinates of a demo model's tissue embeddings: tissue, umap_1, umap_2."""
    checkpoint_path(key)
    return pd.read_csv(DEMO_DIR / "tables" / f"{key}_tissue_umap.csv")


def build_demo(out: str | Path = DEMO_DIR, progress: ProgressCallback | None = None) -> list[dict[str, Any]]:
    """Train the demo models, precompute their tables and the benchmark, and write them to ``out``.

    Every method of :data:`BENCHMARK_METHODS` is fitted under both scenarios on all genes (50 %
    missing; the deep models with their scenario's config, :data:`BENCHMARK_CONFIGS`); the runs that
    are demo models are saved as checkpoints. The whole folder is replaced
    in one step at the end. Returns the benchmark records.
    """
    from gtex_models.benchmark import SCENARIOS, evaluation_tables, fit_and_score
    from gtex_models.embeddings import tissue_embeddings, umap_coordinates
    from gtex_models.experiment import CONFIG_DIR, Experiment, run_experiment

    report = progress or (lambda fraction, message: None)
    cohort = load_demo_cohort()
    runs = [(key, Experiment.from_yaml(CONFIG_DIR / name)) for key, name in DEMO_EXPERIMENTS.items()]
    for scenario in SCENARIOS:
        for method in BENCHMARK_METHODS:
            if any(e.method == method and e.scenario == scenario and not e.pathway for _, e in runs):
                continue
            config = BENCHMARK_CONFIGS.get((method, scenario))
            base = Experiment.from_yaml(CONFIG_DIR / config) if config else Experiment(method=method)
            runs.append((None, Experiment(method, scenario, None, 0.5, base.model, base.training)))

    records = []
    with atomic_directory(out) as tmp:
        (tmp / "tables").mkdir()
        for i, (key, experiment) in enumerate(runs):
            label = key or f"{experiment.method} ({experiment.scenario})"
            report(i / len(runs), label)
            if key is None:
                record = fit_and_score(experiment.make_imputer(), cohort, experiment.scenario, experiment.missing_rate)
            else:
                imputer, record = run_experiment(experiment, cohort, out=tmp / "models" / f"{key}.safetensors")
                test = experiment.cohort(cohort).split("test")
                for name, table in evaluation_tables(imputer, test).items():
                    table.to_csv(tmp / "tables" / f"{key}_{name}.csv.gz", index=False)
                umap_coordinates(tissue_embeddings(imputer)).to_csv(tmp / "tables" / f"{key}_tissue_umap.csv",
                                                                     index=False)
            if not experiment.pathway:
                records.append(record)
        order = {method: i for i, method in enumerate(BENCHMARK_METHODS)}
        records.sort(key=lambda r: (SCENARIOS.index(r["scenario"]), order[r["method"]]))
        (tmp / "benchmark.json").write_text(json.dumps(records, indent=2) + "\n")
    report(1.0, "demo built")
    return records
