"""A study: the folder a user opens in the app, holding a cohort, trained models and what the pages show.

Layout (written by :func:`write_manifest` and :func:`write_model`, read by :class:`Study`)::

    STUDY/
      study.json                     the manifest (below)
      cohort/                        the cohort (Cohort.save layout), unless the manifest references one
                                     elsewhere or describes a simulation to regenerate
      models/KEY.safetensors         one checkpoint per model
      baselines/METHOD_SCENARIO.safetensors  one checkpoint per benchmark-only baseline (impute, evaluate with them)
      tables/KEY_per_gene.csv.gz     per-gene R² on the test donors
      tables/KEY_per_tissue.csv.gz   per-tissue, per-gene R² on the extended test set
      tables/KEY_across_rates.csv.gz R² across missing rates, per tissue
      tables/KEY_tissue_umap.csv     UMAP coordinates of the tissue embeddings (deep models)
      tables/KEY_interval_coverage.csv.gz  coverage of the calibrated intervals on the test donors (optional:
                                     models with a calibration; :mod:`gtex_models.studies.precompute`)
      benchmark.json                 benchmark records (one per method and scenario, each naming its
                                     checkpoint), optional

The manifest (``study.json``) is versioned: ``format``, ``format_version``, ``title``,
``description``, ``simulated``, ``created``, ``sources``, ``cohort`` (``path`` relative to the
study or absolute, or ``simulation``: the simulator's arguments; plus a ``summary``), ``models``
(one entry per model: key, label, method, scenario, pathway, genes, groups, the test
``evaluation`` and ``donors``, all read from the checkpoint when it was added) and ``benchmark`` (file
name or null). ``donors`` says, per role (``fit``, ``valid``, ``calibration``, ``test``: the donors of the
test scores), which donors: their split, count and the digest of their sorted IDs
(:meth:`~gtex_models.data.provenance.DonorSet.summary`). A study is opened read-only; one that misses parts opens with the parts it has and lists
what is missing in :attr:`Study.problems`.

Studies are built and extended by :mod:`gtex_models.studies.build` (``build_study``, ``add_model``,
``add_checkpoint``, ``study_info``; CLI ``python -m gtex_models study build|add-model|info``).

Example
-------
>>> study = Study.open("data/demo")                          # doctest: +SKIP
>>> list(study.models)                                       # doctest: +SKIP
['pmi_all', 'gain_all', 'pmi_alzheimer', 'gain_alzheimer']
>>> imputer, metadata = study.load_model("pmi_all")          # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from gtex_models.common.atomic import OutputFolder, atomic_file
from gtex_models.common.schema import SchemaError, validate
from gtex_models.data.cohort import Cohort
from gtex_models.data.cohort_format import CohortFormatError
from gtex_models.data.naming import count_groups, default_value_scale
from gtex_models.data.provenance import DonorSet
from gtex_models.data.simulate import is_current, simulate_cohort
from gtex_models.models.checkpoints import load_checkpoint
from gtex_models.studies.schemas import StudyManifest, StudyModelEntry

STUDY_FORMAT = "gtex-imputation-study"
STUDY_FORMAT_VERSION = 1
MANIFEST = "study.json"
STUDY_FOLDER = OutputFolder("study", (MANIFEST,))
"""A study folder as an output: its manifest marks it as ours (``--overwrite`` replaces it; nothing else is)."""
COHORT_DIR = "cohort"
MODELS_DIR = "models"
BASELINES_DIR = "baselines"
TABLES_DIR = "tables"
BENCHMARK_FILE = "benchmark.json"
TABLES = ("per_gene", "per_tissue", "across_rates")
OPTIONAL_TABLES = ("interval_coverage",)
"""Tables a model may lack without the study being incomplete (precomputed where they apply)."""
UMAP_TABLE = "tissue_umap"


class StudyError(ValueError):
    """A folder that is not a readable study (no manifest, a manifest of the wrong shape or version)."""


@dataclass(frozen=True)
class ModelEntry:
    """What the manifest says of one model (read from its checkpoint when it was added).

    Attributes
    ----------
    key : the model's name in the study (file stem of its checkpoint and tables).
    label : what the app shows, e.g. ``"PMI · all genes"``.
    method, scenario, pathway : from the checkpoint (``pathway`` None for all genes).
    n_genes, n_groups : the model's genes and tissue / group vocabulary.
    evaluation : the checkpoint's test record (``r2_mean``, ``missing_rate``, ...), or empty.
    donors : per role (``fit``, ``valid``, ``calibration``, ``test``), the split, count and digest of its donors;
        empty for a checkpoint saved before donors were recorded.
    """

    key: str
    label: str
    method: str
    scenario: str
    pathway: str | None
    n_genes: int
    n_groups: int
    evaluation: dict[str, Any] = field(default_factory=dict)
    donors: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def gene_set(self) -> str:
        """``all`` or the pathway's name."""
        return self.pathway or "all"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> "ModelEntry":
        try:
            validate(StudyModelEntry, data, f"{where}, a model entry")
        except SchemaError as error:
            raise StudyError(f"{error}; rebuild or re-add the model.") from None
        try:
            return cls(key=str(data["key"]), label=str(data.get("label") or data["key"]), method=str(data["method"]),
                       scenario=str(data.get("scenario") or "inductive"), pathway=data.get("pathway") or None,
                       n_genes=int(data.get("n_genes") or 0), n_groups=int(data.get("n_groups") or 0),
                       evaluation=dict(data.get("evaluation") or {}), donors=dict(data.get("donors") or {}))
        except (KeyError, TypeError, ValueError) as error:
            raise StudyError(f"{where}: a model entry is malformed ({error!r}); rebuild or re-add the model.") from None


def _check_manifest(manifest: Mapping[str, Any], path: Path) -> None:
    """Raise :class:`StudyError` unless ``manifest`` matches :class:`~gtex_models.studies.schemas.StudyManifest`."""
    try:
        validate(StudyManifest, manifest, str(path))
    except SchemaError as error:
        raise StudyError(f"{error}. The manifest was edited or damaged: fix that field, or rebuild the study "
                         "(`python -m gtex_models study build ... --overwrite`).") from None


def model_entry(key: str, metadata: Mapping[str, Any], label: str | None = None) -> ModelEntry:
    """The manifest entry of a checkpoint, from its metadata (:func:`~gtex_models.models.checkpoints.load_checkpoint`)."""
    extra = metadata.get("metadata") or {}
    pathway = metadata.get("pathway", extra.get("pathway"))
    scenario = metadata.get("scenario", extra.get("scenario")) or "inductive"
    method = str(metadata.get("method"))
    genes = metadata.get("genes")
    n_genes = 0 if genes is None else len(pd.DataFrame(genes))
    records = {role: DonorSet.from_dict(record) for role, record in (metadata.get("donors") or {}).items()}
    calibration = metadata.get("calibration")
    if calibration is not None:
        records["calibration"] = calibration.donors
    donors = {role: record.summary() for role, record in records.items() if record is not None}
    return ModelEntry(key=key, label=label or default_label(method, pathway), method=method, scenario=scenario,
                      pathway=pathway, n_genes=n_genes, n_groups=len(metadata.get("tissues") or []),
                      evaluation=dict(metadata.get("evaluation") or {}), donors=donors)


METHOD_LABELS = {"pmi": "PMI", "gain": "GAIN-GTEx", "gain-mse": "GAIN-MSE", "mean": "Group mean", "knn": "KNN",
                 "mice": "MICE", "missforest": "MissForest", "blood": "Blood surrogate", "oracle": "Oracle",
                 "gauss": "Gaussian conditional", "softimpute": "softImpute"}


PATHWAY_LABELS = {"alzheimer": "Alzheimer's pathway genes", "p53": "p53 pathway genes"}


def default_label(method: str, pathway: str | None) -> str:
    """``"PMI · all genes"``, ``"GAIN-GTEx · Alzheimer's pathway genes"``, ..."""
    genes = "all genes" if not pathway else PATHWAY_LABELS.get(pathway, f"{pathway} pathway genes")
    return f"{METHOD_LABELS.get(method, method)} · {genes}"


class Study:
    """A study folder opened read-only (see the module docstring for the layout)."""

    def __init__(self, path: Path, manifest: dict[str, Any], models: dict[str, ModelEntry],
                 problems: list[str]) -> None:
        self.path = path
        self.manifest = manifest
        self.models = models
        self.problems = problems

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(cls, path: str | Path) -> "Study":
        """Read ``path/study.json``; models whose checkpoint is missing are left out and listed in ``problems``.

        Raises
        ------
        StudyError
            When the folder has no manifest, or a manifest of another format or a newer version.
        """
        path = Path(path)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise StudyError(f"{path} is not a study folder (no {MANIFEST}). Build one with "
                             "`python -m gtex_models study build --cohort DIR --out STUDY`.")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise StudyError(f"{manifest_path} is not valid JSON ({error}); rebuild the study.") from None
        if not isinstance(manifest, dict) or manifest.get("format") != STUDY_FORMAT:
            raise StudyError(f"{manifest_path} is not a study manifest (its 'format' is not {STUDY_FORMAT!r}).")
        version = manifest.get("format_version")
        if not isinstance(version, int) or version > STUDY_FORMAT_VERSION:
            raise StudyError(f"{manifest_path} has format_version {version!r}; this version of the project reads "
                             f"up to {STUDY_FORMAT_VERSION}. Update the project or rebuild the study.")
        _check_manifest(manifest, manifest_path)
        problems: list[str] = []
        models: dict[str, ModelEntry] = {}
        for data in manifest.get("models", []):
            entry = ModelEntry.from_dict(data, str(manifest_path))
            if not (path / MODELS_DIR / f"{entry.key}.safetensors").is_file():
                problems.append(f"model {entry.label!r}: its checkpoint {MODELS_DIR}/{entry.key}.safetensors is missing")
                continue
            models[entry.key] = entry
            missing = [name for name in TABLES if not cls._table_path(path, entry.key, name).is_file()]
            if missing:
                problems.append(f"model {entry.label!r}: no {', '.join(missing)} table(s)")
        study = cls(path, manifest, models, problems)
        if not study.has_cohort:
            problems.append("the cohort is missing, so pages that impute held-out donors are unavailable")
        return study

    # ---------------------------------------------------------------- description
    @property
    def title(self) -> str:
        return str(self.manifest.get("title") or self.path.name)

    @property
    def description(self) -> str:
        return str(self.manifest.get("description") or "")

    @property
    def simulated(self) -> bool:
        return bool(self.manifest.get("simulated"))

    @property
    def recommendation(self) -> dict[str, Any] | None:
        """What ``study build`` recommends for new samples (the best validation R², simple or deep: ``method``,
        ``checkpoint``, ``valid_r2_mean``, ``test_r2_mean``, ``rates``); None for a study without one."""
        recommended = self.manifest.get("recommended")
        return recommended if isinstance(recommended, dict) and recommended.get("method") else None

    @property
    def recommended_key(self) -> str | None:
        """The key of the model the study recommends; None when it recommends none, or a benchmark-only baseline
        (its checkpoint lies in :data:`BASELINES_DIR`)."""
        checkpoint = str((self.recommendation or {}).get("checkpoint") or "")
        key = Path(checkpoint).stem if checkpoint.startswith(f"{MODELS_DIR}/") else None
        return key if key in self.models else None

    @property
    def cohort_summary(self) -> dict[str, Any]:
        """``n_samples``, ``n_genes``, ``n_groups``, ``n_donors``, ``has_sex``, ``has_age``, ``scale`` and (studies
        built since they were added) ``value_scale``, ``group_word``."""
        return dict((self.manifest.get("cohort") or {}).get("summary") or {})

    @property
    def value_scale(self) -> str:
        """What the study's values are, for axes and captions: ``log2(TPM + 1)``, ``log2 intensity``, ..."""
        summary = self.cohort_summary
        return str(summary.get("value_scale") or default_value_scale(summary.get("scale", "tpm")))

    @property
    def group_word(self) -> str:
        """``tissue`` when the study's groups are GTEx tissues, else ``group`` (a study built before the word was
        stored: ``tissue`` for a simulated cohort, else ``group``)."""
        return str(self.cohort_summary.get("group_word") or ("tissue" if self.simulated else "group"))

    def count_groups(self, n: int | None = None) -> str:
        """``5 groups``, ``49 tissues``: ``n`` (default: the cohort's groups) with the study's group word."""
        return count_groups(int(self.cohort_summary.get("n_groups", 0) if n is None else n), self.group_word)

    # ---------------------------------------------------------------- cohort
    @property
    def cohort_path(self) -> Path | None:
        """Where the cohort folder is (None for a simulated cohort regenerated from its arguments)."""
        entry = self.manifest.get("cohort") or {}
        if entry.get("simulation"):
            return None
        path = Path(entry.get("path") or COHORT_DIR)
        return path if path.is_absolute() else self.path / path

    @property
    def has_cohort(self) -> bool:
        path = self.cohort_path
        return path is None or (path / "cohort.json").is_file()

    def cohort(self, cache_dir: Path | None = None) -> Cohort:
        """The study's cohort: loaded from its folder, or regenerated from the simulation's arguments
        (and cached in ``cache_dir`` when given)."""
        simulation = (self.manifest.get("cohort") or {}).get("simulation")
        if not simulation:
            path = self.cohort_path
            assert path is not None
            if not (path / "cohort.json").is_file():
                raise StudyError(f"The cohort of study {self.title!r} is missing ({path}).")
            return Cohort.load(path)
        return simulated_cohort(simulation, cache_dir)

    # ---------------------------------------------------------------- models and tables
    def checkpoint_path(self, key: str) -> Path:
        self._entry(key)
        return self.path / MODELS_DIR / f"{key}.safetensors"

    def load_model(self, key: str) -> tuple[Any, dict[str, Any]]:
        """The fitted imputer and checkpoint metadata of model ``key``."""
        return load_checkpoint(self.checkpoint_path(key))

    def tables(self, key: str) -> dict[str, pd.DataFrame]:
        """The evaluation tables of model ``key`` that exist (``per_gene``, ``per_tissue``, ``across_rates``)."""
        self._entry(key)
        return {name: pd.read_csv(path) for name in TABLES
                if (path := self._table_path(self.path, key, name)).is_file()}

    def optional_table(self, key: str, name: str) -> pd.DataFrame | None:
        """Model ``key``'s table ``name`` of :data:`OPTIONAL_TABLES`, or None when the study does not store it."""
        self._entry(key)
        path = self._table_path(self.path, key, name)
        return pd.read_csv(path) if path.is_file() else None

    def tissue_umap(self, key: str) -> pd.DataFrame | None:
        """UMAP coordinates of model ``key``'s tissue embeddings (tissue, umap_1, umap_2), or None."""
        self._entry(key)
        path = self.path / TABLES_DIR / f"{key}_{UMAP_TABLE}.csv"
        return pd.read_csv(path) if path.is_file() else None

    def benchmark(self) -> list[dict[str, Any]] | None:
        """The benchmark records, or None when the study has none."""
        name = self.manifest.get("benchmark")
        path = self.path / (name or BENCHMARK_FILE)
        if not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def _entry(self, key: str) -> ModelEntry:
        if key not in self.models:
            raise KeyError(f"Study {self.title!r} has no model {key!r}; it has {list(self.models)}.")
        return self.models[key]

    @staticmethod
    def _table_path(path: Path, key: str, name: str) -> Path:
        return path / TABLES_DIR / f"{key}_{name}.csv.gz"


# -------------------------------------------------------------------------------------- writing
def cohort_summary(cohort: Cohort) -> dict[str, Any]:
    """The manifest's cohort summary."""
    samples = cohort.samples
    return {"n_samples": cohort.n_samples, "n_genes": cohort.n_genes, "n_groups": len(cohort.tissues),
            "n_donors": cohort.n_donors, "has_sex": bool((samples["sex"] != "unknown").any()),
            "has_age": bool(samples["age"].notna().any()), "scale": cohort.transform.scale,
            "value_scale": cohort.value_scale, "group_word": cohort.group_word}


def new_manifest(title: str, cohort: Cohort, *, description: str = "", simulated: bool = False,
                 sources: list[str] | None = None, cohort_path: str | None = COHORT_DIR,
                 simulation: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A manifest with no model yet: the cohort is in ``cohort_path`` (relative to the study, or absolute)
    or, for a simulated cohort, regenerated from ``simulation``."""
    return {
        "format": STUDY_FORMAT, "format_version": STUDY_FORMAT_VERSION, "title": title,
        "description": description, "simulated": simulated,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "sources": list(sources or []),
        "cohort": {"path": None if simulation else cohort_path, "simulation": dict(simulation) if simulation else None,
                   "summary": cohort_summary(cohort)},
        "models": [], "benchmark": None,
    }


def write_manifest(study_dir: str | Path, manifest: Mapping[str, Any]) -> None:
    """Write ``study.json`` atomically (the last step of any change to a study)."""
    with atomic_file(Path(study_dir) / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def write_model(study_dir: str | Path, key: str, checkpoint: str | Path | None = None,
                tables: Mapping[str, pd.DataFrame] | None = None, umap: pd.DataFrame | None = None) -> None:
    """Put a model's files in a study folder (each written atomically): its checkpoint (moved from
    ``checkpoint`` when given), its evaluation tables and its UMAP coordinates. The manifest is not
    touched: add the model's :func:`model_entry` to it and :func:`write_manifest` last."""
    study_dir = Path(study_dir)
    (study_dir / MODELS_DIR).mkdir(parents=True, exist_ok=True)
    (study_dir / TABLES_DIR).mkdir(parents=True, exist_ok=True)
    if checkpoint is not None and Path(checkpoint) != study_dir / MODELS_DIR / f"{key}.safetensors":
        Path(checkpoint).replace(study_dir / MODELS_DIR / f"{key}.safetensors")
    for name, table in (tables or {}).items():
        if name not in TABLES + OPTIONAL_TABLES:
            raise ValueError(f"Unknown study table {name!r}; use one of {TABLES + OPTIONAL_TABLES}.")
        with atomic_file(Study._table_path(study_dir, key, name)) as tmp:
            table.to_csv(tmp, index=False, compression="gzip")
    if umap is not None:
        with atomic_file(study_dir / TABLES_DIR / f"{key}_{UMAP_TABLE}.csv") as tmp:
            umap.to_csv(tmp, index=False)


def add_entry(manifest: dict[str, Any], entry: ModelEntry) -> dict[str, Any]:
    """The manifest with ``entry`` added (replacing a model of the same key)."""
    models = [m for m in manifest.get("models", []) if m.get("key") != entry.key]
    return {**manifest, "models": [*models, asdict(entry)]}


# -------------------------------------------------------------------------------------- simulated cohorts
def simulated_cohort(simulation: Mapping[str, Any], cache_dir: Path | None = None, name: str | None = None) -> Cohort:
    """A simulated cohort regenerated from the simulator's arguments, cached in ``cache_dir`` when given
    (in the folder ``name``, default ``simulated_<digest of the arguments>``)."""
    config = dict(simulation)
    cached = None
    if cache_dir is not None:
        digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
        cached = Path(cache_dir) / (name or f"simulated_{digest}")
        if (cached / "cohort.json").is_file():
            try:
                cohort = Cohort.load(cached)
            except CohortFormatError:  # a damaged cache is regenerated
                cohort = None
            if cohort is not None and cohort.meta.get("simulation") == config and is_current(cohort):
                return cohort
    cohort = simulate_cohort(**config)
    if cached is not None:
        try:
            cohort.save(cached, overwrite=True)
        except OSError:  # read-only checkout (or a foreign folder there): keep it in memory only
            pass
    return cohort


def find_studies(*roots: str | Path) -> list[Path]:
    """Study folders among ``roots`` (a root that is itself a study, or the studies directly inside it)."""
    found: list[Path] = []
    for root in map(Path, roots):
        candidates = [root] if (root / MANIFEST).is_file() else sorted(p for p in root.glob("*") if p.is_dir())
        found.extend(p.resolve() for p in candidates if (p / MANIFEST).is_file() and p.resolve() not in found)
    return found
