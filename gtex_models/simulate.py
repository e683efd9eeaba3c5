"""A simulated, GTEx-shaped demo cohort with known ground truth, and its oracle imputer.

The data are **simulated**: real GTEx v8 tissue names and proportions, real protein-coding gene
symbols and Ensembl IDs, donors who each give several tissues, sex and age effects — but values
drawn from a model. In log2(TPM + 1) space, a sample ``i`` of donor ``d`` in tissue ``t`` is

    L_i = mu_t + beta_sex * male_i + beta_age * age_i + F_t h_i + A_t u_d + eps_i

with tissue means ``mu_t`` (shared by an organ group, e.g. all brain regions, plus a tissue part),
tissue-specific loadings ``F_t`` on shared and private latent programs ``h_i ~ N(0, I)``, a donor
effect ``u_d ~ N(0, I)`` shared by all of a donor's tissues, and gene noise ``eps ~ N(0, Psi)``.
Given tissue and covariates the model is linear-Gaussian, so the exact conditional mean of missing
given observed values is computable: :class:`OracleImputer` returns it, the ceiling of any method.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from gtex_models.cohort import Cohort, Transform, assign_donor_split
from gtex_models.imputers.base import Imputer, ProgressCallback
from gtex_models.reference import pathway_genes, protein_coding_genes, tissues

N_SHARED_PROGRAMS = 10
N_PRIVATE_PROGRAMS = 2
N_DONOR_PROGRAMS = 4
FEMALE_ONLY = {"Ovary", "Uterus", "Vagina"}
MALE_ONLY = {"Prostate", "Testis"}
GTEX_V8_DONORS = 838
AGE_BRACKETS = np.array([25.0, 35.0, 45.0, 55.0, 65.0, 75.0])  # centres of 20-29 ... 70-79
AGE_BRACKET_WEIGHTS = np.array([0.08, 0.08, 0.16, 0.32, 0.32, 0.04])


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that determines a simulated cohort."""

    n_donors: int = 300
    n_genes: int = 2000
    seed: int = 0
    noise_scale: float = 1.0


@dataclass
class SimulationParameters:
    """The generative model's parameters in log2(TPM + 1) space (depend on n_genes and seed only)."""

    genes: pd.DataFrame           # ensembl_gene_id, symbol
    tissue_names: list[str]
    mean: np.ndarray              # tissues x genes
    loadings: np.ndarray          # tissues x genes x programs (shared, private, donor)
    noise_var: np.ndarray         # genes
    sex_effect: np.ndarray        # genes (added for males)
    age_effect: np.ndarray        # genes (per standardised year)
    age_mean: float = 50.0
    age_std: float = 15.0

    def covariate_mean(self, tissue_index: np.ndarray, sex: np.ndarray, age: np.ndarray) -> np.ndarray:
        """Mean of each sample given tissue and covariates (samples x genes)."""
        male = (np.asarray(sex) == "male").astype(np.float32)[:, None]
        age_std = np.nan_to_num((np.asarray(age, dtype=float) - self.age_mean) / self.age_std)
        return (self.mean[tissue_index] + male * self.sex_effect
                + age_std.astype(np.float32)[:, None] * self.age_effect)


def simulation_parameters(n_genes: int = 2000, seed: int = 0, noise_scale: float = 1.0) -> SimulationParameters:
    """Draw the model's parameters; every pathway gene (Alzheimer's, p53) is always included."""
    rng = np.random.default_rng([seed, 0])
    genes = _choose_genes(n_genes, rng)
    table = tissues()
    names = table["smtsd"].tolist()
    groups = [name.split(" - ")[0] for name in names]
    n_tissues, n_programs = len(names), N_SHARED_PROGRAMS + N_PRIVATE_PROGRAMS + N_DONOR_PROGRAMS

    base = rng.uniform(3.0, 8.0, size=n_genes)
    group_names = sorted(set(groups))
    group_shift = {g: rng.normal(0.0, 1.0, n_genes) * (rng.random(n_genes) < 0.4) for g in group_names}
    group_mod = {g: rng.normal(0.0, 0.25, (n_genes, N_SHARED_PROGRAMS)) for g in group_names}
    shared = rng.normal(0.0, 0.35, (n_genes, N_SHARED_PROGRAMS))
    donor = rng.normal(0.0, 0.25, (n_genes, N_DONOR_PROGRAMS))

    mean = np.empty((n_tissues, n_genes))
    loadings = np.empty((n_tissues, n_genes, n_programs))
    for t, group in enumerate(groups):
        own_shift = rng.normal(0.0, 0.5, n_genes) * (rng.random(n_genes) < 0.3)
        mean[t] = base + group_shift[group] + own_shift
        modulation = 1.0 + group_mod[group] + rng.normal(0.0, 0.1, (n_genes, N_SHARED_PROGRAMS))
        private = rng.normal(0.0, 0.2, (n_genes, N_PRIVATE_PROGRAMS))
        donor_scale = rng.uniform(0.5, 1.5)
        loadings[t] = np.hstack([shared * modulation, private, donor * donor_scale])

    noise_var = rng.uniform(0.08, 0.35, n_genes) * noise_scale
    chromosome = genes["chromosome"].to_numpy()
    sex_effect = np.where(chromosome == "Y", rng.uniform(3.0, 5.0, n_genes), 0.0)
    sex_effect += np.where((chromosome == "X") & (rng.random(n_genes) < 0.2), rng.normal(0, 0.5, n_genes), 0.0)
    sex_effect += np.where(rng.random(n_genes) < 0.03, rng.normal(0, 0.4, n_genes), 0.0)
    age_effect = np.where(rng.random(n_genes) < 0.1, rng.normal(0, 0.25, n_genes), 0.0)
    return SimulationParameters(
        genes=genes[["ensembl_gene_id", "symbol"]].reset_index(drop=True),
        tissue_names=names,
        mean=mean.astype(np.float32),
        loadings=loadings.astype(np.float32),
        noise_var=noise_var.astype(np.float32),
        sex_effect=sex_effect.astype(np.float32),
        age_effect=age_effect.astype(np.float32),
    )


def _choose_genes(n_genes: int, rng: np.random.Generator) -> pd.DataFrame:
    reference = protein_coding_genes()
    required = set(pathway_genes("alzheimer")) | set(pathway_genes("p53"))
    required |= set(reference.loc[reference["chromosome"] == "Y", "symbol"].head(8))
    is_required = reference["symbol"].isin(required).to_numpy()
    if not is_required.sum() <= n_genes <= len(reference):
        raise ValueError(f"The number of genes (--genes, n_genes) must be between {int(is_required.sum())} (every "
                         f"pathway gene is included) and {len(reference):,} (the protein-coding genes), got {n_genes}.")
    others = np.flatnonzero(~is_required)
    extra = rng.choice(others, size=n_genes - int(is_required.sum()), replace=False)
    keep = np.sort(np.concatenate([np.flatnonzero(is_required), extra]))
    return reference.iloc[keep].reset_index(drop=True)


def _draw_samples(config: SimulationConfig, names: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """Donors with sex and age; each donor gives each tissue with its GTEx v8 frequency."""
    table = tissues()
    share = np.clip(table["approx_v8_rnaseq_samples"].to_numpy() / GTEX_V8_DONORS, 0.05, 0.95)
    donors = [f"SIM-{i + 1:04d}" for i in range(config.n_donors)]
    sex = np.where(rng.random(config.n_donors) < 0.66, "male", "female")
    age = rng.choice(AGE_BRACKETS, size=config.n_donors, p=AGE_BRACKET_WEIGHTS)
    gives = rng.random((config.n_donors, len(names))) < share
    rows = []
    for d, donor in enumerate(donors):
        for t in np.flatnonzero(gives[d]):
            name = names[t]
            if (name in FEMALE_ONLY and sex[d] == "male") or (name in MALE_ONLY and sex[d] == "female"):
                continue
            rows.append((f"{donor}-{t:02d}01-SM-SIM{d:04d}{t:02d}", donor, name, sex[d], age[d], d, t))
    return pd.DataFrame(rows, columns=["sample_id", "donor_id", "tissue", "sex", "age", "_donor", "_tissue"])


def simulate_cohort(
    n_donors: int = 300, n_genes: int = 2000, seed: int = 0, noise_scale: float = 1.0
) -> Cohort:
    """Simulate a GTEx-shaped cohort (deterministic from ``seed``); the transform is fitted on train donors.

    The default (300 donors, 2,000 genes; the demo cohort) gives about 6,000 samples in a second.
    """
    if n_donors < 1 or not noise_scale > 0:
        raise ValueError(f"A simulation needs at least one donor (--donors, n_donors) and a positive noise_scale, "
                         f"got {n_donors} and {noise_scale}.")
    config = SimulationConfig(n_donors, n_genes, seed, noise_scale)
    params = simulation_parameters(n_genes, seed, noise_scale)
    rng = np.random.default_rng([seed, 1])
    samples = _draw_samples(config, params.tissue_names, rng)
    donor_index, tissue_index = samples.pop("_donor").to_numpy(), samples.pop("_tissue").to_numpy()

    n_samples = len(samples)
    n_latent = N_SHARED_PROGRAMS + N_PRIVATE_PROGRAMS
    latent = rng.standard_normal((n_samples, n_latent), dtype=np.float32)
    donor_latent = rng.standard_normal((n_donors, N_DONOR_PROGRAMS), dtype=np.float32)[donor_index]
    programs = np.hstack([latent, donor_latent])
    log_expr = params.covariate_mean(tissue_index, samples["sex"], samples["age"])
    for t in np.unique(tissue_index):
        rows = tissue_index == t
        log_expr[rows] += programs[rows] @ params.loadings[t].T
    log_expr += rng.standard_normal(log_expr.shape, dtype=np.float32) * np.sqrt(params.noise_var)

    samples["split"] = assign_donor_split(samples["donor_id"], seed=seed)
    train = (samples["split"] == "train").to_numpy()
    transform = Transform(log_expr[train].mean(axis=0), log_expr[train].std(axis=0), scale="tpm")
    x = (log_expr - transform.mean) / transform.std
    meta = {"source": "simulated", "simulation": asdict(config)}
    return Cohort(x, params.genes.copy(), samples, transform, meta)


class OracleImputer(Imputer):
    """Exact conditional mean E[missing | observed, tissue, sex, age] under the simulation's model.

    Only for cohorts made by :func:`simulate_cohort` (any subset of their genes and samples); its
    R² is the ceiling no method can beat on average.
    """

    method = "oracle"

    def __init__(self) -> None:
        self.config: SimulationConfig | None = None
        self._params: SimulationParameters | None = None

    def fit(self, cohort: Cohort, valid: Cohort | None = None, progress: ProgressCallback | None = None) -> "OracleImputer":
        simulation = cohort.meta.get("simulation")
        if cohort.meta.get("source") != "simulated" or not simulation:
            raise ValueError("The oracle imputer only works on simulated cohorts (it needs the true model).")
        self.config = SimulationConfig(**simulation)
        self._params = None
        if progress:
            progress(1.0, "oracle ready")
        return self

    @property
    def params(self) -> SimulationParameters:
        if self.config is None:
            raise RuntimeError("Fit the oracle on a simulated cohort first.")
        if self._params is None:
            self._params = simulation_parameters(self.config.n_genes, self.config.seed, self.config.noise_scale)
        return self._params

    def _predict(self, cohort: Cohort) -> np.ndarray:
        params = self.params
        gene_index = pd.Index(params.genes["ensembl_gene_id"]).get_indexer(cohort.genes["ensembl_gene_id"])
        if (gene_index < 0).any():
            raise ValueError("The cohort has genes the simulation did not generate.")
        tissue_index = pd.Index(params.tissue_names).get_indexer(cohort.samples["tissue"])
        std, mean = cohort.transform.std, cohort.transform.mean
        log_expr = cohort.x * std + mean
        observed = cohort.observed
        prior_mean = params.covariate_mean(tissue_index, cohort.samples["sex"], cohort.samples["age"])[:, gene_index]
        noise_var = params.noise_var[gene_index].astype(np.float64)
        prediction = np.empty_like(log_expr, dtype=np.float64)
        for t in np.unique(tissue_index):
            rows = np.flatnonzero(tissue_index == t)
            loadings = params.loadings[t][gene_index].astype(np.float64)       # genes x programs
            weight = observed[rows] / noise_var                                # samples x genes
            residual = np.where(observed[rows], log_expr[rows] - prior_mean[rows], 0.0)
            precision = np.einsum("ig,gk,gl->ikl", weight, loadings, loadings)
            precision += np.eye(loadings.shape[1])
            rhs = (weight * residual) @ loadings
            latent = np.linalg.solve(precision, rhs[..., None])[..., 0]
            prediction[rows] = prior_mean[rows] + latent @ loadings.T
        return ((prediction - mean) / std).astype(np.float32)

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if self.config is None:
            raise RuntimeError("Fit the oracle before saving it.")
        return {}, {"simulation": asdict(self.config)}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> "OracleImputer":
        oracle = cls()
        oracle.config = SimulationConfig(**config["simulation"])
        return oracle
