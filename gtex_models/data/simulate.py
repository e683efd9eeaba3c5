"""A simulated, GTEx-shaped demo cohort with known ground truth (its exact oracle: :mod:`gtex_models.models.oracle`).

The data are **simulated**: real GTEx v8 tissue names and proportions, real protein-coding gene
symbols and Ensembl IDs, donors who each give several tissues, sex and age effects — but values
drawn from a model. In log2(TPM + 1) space, a sample ``i`` of donor ``d`` in tissue ``t`` is

    y_i = mu_t + delta_k + beta_sex * male_i + beta_age * age_i + F_t diag(a_k) h_i
          + D_t u_d + e_d + eps_i,      k ~ Categorical(pi_t)

* ``mu_t``: tissue means drawn down an organ-system tree (:data:`TISSUE_TREE`; e.g. CNS > cerebellum >
  Brain - Cerebellum): every node of a tissue's path adds its own sparse shift, so brain regions share
  a CNS profile and cerebellum and cerebellar hemisphere share more.
* ``k``: the sample's cell state, one of :data:`N_STATES` states shared by all tissues, each with its
  own sparse mean shift ``delta_k`` and its own set of active programs ``a_k``; a tissue's state
  weights ``pi_t`` are drawn down the same tree. Given the tissue the sample is a mixture of
  Gaussians with many components, so the best predictor is non-linear in the observed values.
* ``F_t``: sparse expression programs (columns of a program bank) of the tissue's tree nodes, plus
  programs shared by all tissues; ``h_i ~ N(0, I)``.
* ``D_t u_d`` (low rank, ``u_d ~ N(0, I)``) and ``e_d`` (gene-specific, eQTL-like) are **donor**
  effects shared by all of a donor's tissues: a donor's Whole Blood sample carries signal about
  their other tissues.
* ``eps_i ~ N(0, diag(psi_t))``: gene-specific (heteroscedastic) noise.

Low-expressed genes are often undetected: the stored value is ``x = b * y`` with ``b ~ Bernoulli(q)``
and ``q`` the detection probability, a logistic function of the gene's mean in the tissue (with the
sample's sex). Zeros (TPM 0) are therefore common for lowly expressed genes. Detection does not
depend on the state or the programs, which keeps the oracle exact: an observed zero carries no
information beyond the tissue and sex, a detected value is the Gaussian draw ``y``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from gtex_models.data.cohort import Cohort, assign_donor_split
from gtex_models.data.reference import pathway_genes, protein_coding_genes, tissues
from gtex_models.data.transform import Transform

FEMALE_ONLY = {"Ovary", "Uterus", "Vagina"}
MALE_ONLY = {"Prostate", "Testis"}
GTEX_V8_DONORS = 838
# Bumped whenever the model changes, so cached cohorts made by an older simulator are regenerated.
SIMULATOR_VERSION = 2
AGE_BRACKETS = np.array([25.0, 35.0, 45.0, 55.0, 65.0, 75.0])  # centres of 20-29 ... 70-79
AGE_BRACKET_WEIGHTS = np.array([0.08, 0.08, 0.16, 0.32, 0.32, 0.04])

# Organ-system tree: tissue -> path of nodes from the root (guided by the clusters of GTEx v8 tissues).
TISSUE_TREE: dict[str, tuple[str, ...]] = {
    "Brain - Cortex": ("neural", "CNS", "cortex"),
    "Brain - Frontal Cortex (BA9)": ("neural", "CNS", "cortex"),
    "Brain - Anterior cingulate cortex (BA24)": ("neural", "CNS", "cortex"),
    "Brain - Cerebellum": ("neural", "CNS", "cerebellum"),
    "Brain - Cerebellar Hemisphere": ("neural", "CNS", "cerebellum"),
    "Brain - Caudate (basal ganglia)": ("neural", "CNS", "basal ganglia"),
    "Brain - Nucleus accumbens (basal ganglia)": ("neural", "CNS", "basal ganglia"),
    "Brain - Putamen (basal ganglia)": ("neural", "CNS", "basal ganglia"),
    "Brain - Amygdala": ("neural", "CNS", "limbic"),
    "Brain - Hippocampus": ("neural", "CNS", "limbic"),
    "Brain - Hypothalamus": ("neural", "CNS", "deep"),
    "Brain - Substantia nigra": ("neural", "CNS", "deep"),
    "Brain - Spinal cord (cervical c-1)": ("neural", "CNS", "spinal"),
    "Nerve - Tibial": ("neural", "peripheral nerve"),
    "Pituitary": ("endocrine", "pituitary"),
    "Thyroid": ("endocrine", "thyroid"),
    "Adrenal Gland": ("endocrine", "adrenal"),
    "Esophagus - Muscularis": ("GI", "smooth muscle"),
    "Esophagus - Gastroesophageal Junction": ("GI", "smooth muscle"),
    "Colon - Sigmoid": ("GI", "smooth muscle"),
    "Colon - Transverse": ("GI", "mucosa"),
    "Small Intestine - Terminal Ileum": ("GI", "mucosa"),
    "Stomach": ("GI", "mucosa"),
    "Esophagus - Mucosa": ("GI", "squamous"),
    "Muscle - Skeletal": ("muscle", "skeletal"),
    "Heart - Atrial Appendage": ("muscle", "heart"),
    "Heart - Left Ventricle": ("muscle", "heart"),
    "Artery - Aorta": ("mesenchymal", "artery"),
    "Artery - Coronary": ("mesenchymal", "artery"),
    "Artery - Tibial": ("mesenchymal", "artery"),
    "Adipose - Subcutaneous": ("mesenchymal", "adipose"),
    "Adipose - Visceral (Omentum)": ("mesenchymal", "adipose"),
    "Breast - Mammary Tissue": ("mesenchymal", "adipose"),
    "Skin - Not Sun Exposed (Suprapubic)": ("epithelial", "skin"),
    "Skin - Sun Exposed (Lower leg)": ("epithelial", "skin"),
    "Minor Salivary Gland": ("epithelial", "gland"),
    "Lung": ("epithelial", "lung"),
    "Kidney - Cortex": ("epithelial", "kidney"),
    "Liver": ("digestive gland", "liver"),
    "Pancreas": ("digestive gland", "pancreas"),
    "Ovary": ("reproductive", "female"),
    "Uterus": ("reproductive", "female"),
    "Vagina": ("reproductive", "female"),
    "Prostate": ("reproductive", "male"),
    "Testis": ("reproductive", "testis"),
    "Whole Blood": ("immune", "blood"),
    "Spleen": ("immune", "spleen"),
    "Cells - EBV-transformed lymphocytes": ("cell line", "lymphoblastoid"),
    "Cells - Cultured fibroblasts": ("cell line", "fibroblast"),
}
# Per depth of the tree (root, level 2, tissue): sd of the sparse mean shifts, share of genes shifted,
# programs owned by each node, sd of the node's state-weight logits.
SHIFT_SD = (1.0, 0.55, 0.3)
SHIFT_SHARE = (0.4, 0.25, 0.2)
NODE_PROGRAMS = (2, 2, 1)
STATE_LOGIT_SD = (0.4, 0.3, 0.15)
N_GLOBAL_PROGRAMS = 2      # programs every tissue uses
PROGRAM_DENSITY = 0.25     # share of genes a program loads
PROGRAM_SD = 0.3
N_STATES = 512             # cell states (mixture components) shared by all tissues
STATE_SHIFT_SHARE = 0.3
STATE_SHIFT_SD = 0.7
STATE_PROGRAM_ACTIVE = 0.7  # chance that a state activates each of a tissue's programs
N_DONOR_PROGRAMS = 3
DONOR_SD = 0.25
EQTL_SHARE = 0.3           # genes with a donor-specific (eQTL-like) effect
LOW_GENE_SHARE = 0.25      # genes with a low baseline, often undetected
DETECTION_MIDPOINT = 1.0   # log2(TPM + 1) at which half the samples detect a gene
DETECTION_SLOPE = 3.0


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that determines a simulated cohort."""

    n_donors: int = 300
    n_genes: int = 2000
    seed: int = 0
    noise_scale: float = 1.0


@dataclass
class SimulationParameters:
    """The generative model's parameters in log2(TPM + 1) space (depend on n_genes, seed, noise_scale)."""

    genes: pd.DataFrame           # ensembl_gene_id, symbol
    tissue_names: list[str]
    mean: np.ndarray              # tissues x genes (tissue tree shifts, no state)
    state_shift: np.ndarray       # states x genes (delta_k)
    state_logits: np.ndarray      # tissues x states (pi_t = softmax)
    program_bank: np.ndarray      # genes x programs
    tissue_programs: list[np.ndarray]  # per tissue: program bank columns it uses
    program_scale: np.ndarray     # tissues x programs (multiplies the bank's loadings)
    state_active: np.ndarray      # states x programs (bool: a_k)
    donor_loadings: np.ndarray    # genes x donor programs (D, scaled by donor_scale[t])
    donor_scale: np.ndarray       # tissues
    eqtl_var: np.ndarray          # genes (variance of the donor's gene-specific effect e_d)
    noise_var: np.ndarray         # tissues x genes (psi_t)
    sex_effect: np.ndarray        # genes (added for males)
    age_effect: np.ndarray        # genes (per standardised year)
    age_mean: float = 50.0
    age_std: float = 15.0

    @cached_property
    def state_weights(self) -> np.ndarray:
        """pi_t: tissues x states."""
        logits = self.state_logits - self.state_logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    def covariate_mean(self, tissue_index: np.ndarray, sex: np.ndarray, age: np.ndarray) -> np.ndarray:
        """Mean of each sample given tissue and covariates, before its state (samples x genes)."""
        male = (np.asarray(sex) == "male").astype(np.float64)[:, None]
        age_std = np.nan_to_num((np.asarray(age, dtype=float) - self.age_mean) / self.age_std)
        return self.mean[tissue_index] + male * self.sex_effect + age_std[:, None] * self.age_effect

    def detection(self, tissue_index: np.ndarray, sex: np.ndarray) -> np.ndarray:
        """Probability that each gene is detected (non-zero) in each sample (samples x genes)."""
        male = (np.asarray(sex) == "male").astype(np.float64)[:, None]
        level = self.mean[tissue_index] + male * self.sex_effect
        return 1.0 / (1.0 + np.exp(-DETECTION_SLOPE * (level - DETECTION_MIDPOINT)))

    def loadings(self, tissue: int) -> np.ndarray:
        """All latent loadings of a tissue: its programs, then the donor programs (genes x (P + donor))."""
        columns = self.tissue_programs[tissue]
        programs = self.program_bank[:, columns] * self.program_scale[tissue, columns]
        return np.hstack([programs, self.donor_loadings * self.donor_scale[tissue]])

    def active(self, tissue: int) -> np.ndarray:
        """Which of the tissue's latent columns each state activates (states x (P + donor), bool)."""
        programs = self.state_active[:, self.tissue_programs[tissue]]
        return np.hstack([programs, np.ones((len(programs), self.donor_loadings.shape[1]), dtype=bool)])

    def sample_noise_var(self, tissue: int) -> np.ndarray:
        """Variance a single sample cannot explain from its other genes: noise plus the donor's eQTL effects."""
        return self.noise_var[tissue] + self.eqtl_var


def _tree_nodes(names: list[str]) -> list[tuple[str, ...]]:
    """Every node (a path prefix, tissues included) of the tree, each once, in a fixed order."""
    nodes: dict[tuple[str, ...], None] = {}
    for name in names:
        path = TISSUE_TREE[name] + (name,)
        for depth in range(1, len(path) + 1):
            nodes[path[:depth]] = None
    return list(nodes)


def simulation_parameters(n_genes: int = 2000, seed: int = 0, noise_scale: float = 1.0) -> SimulationParameters:
    """Draw the model's parameters; every pathway gene (Alzheimer's, p53) is always included."""
    rng = np.random.default_rng([seed, 0])
    genes = _choose_genes(n_genes, rng)
    names = tissues()["smtsd"].tolist()
    missing = set(names) - set(TISSUE_TREE)
    if missing:
        raise ValueError(f"Tissues without a place in TISSUE_TREE: {sorted(missing)}.")
    chromosome = genes["chromosome"].to_numpy()
    is_y = chromosome == "Y"

    low = (rng.random(n_genes) < LOW_GENE_SHARE) | is_y
    base = np.where(low, rng.uniform(0.0, 2.0, n_genes), rng.uniform(2.5, 8.0, n_genes))
    base[is_y] = 0.0

    nodes = _tree_nodes(names)
    n_programs = N_GLOBAL_PROGRAMS
    node_shift, node_programs, node_logits = {}, {}, {}
    for node in nodes:
        level = 0 if len(node) == 1 else (2 if node[-1] in TISSUE_TREE else 1)  # root, inner node, tissue
        node_shift[node] = rng.normal(0.0, SHIFT_SD[level], n_genes) * (rng.random(n_genes) < SHIFT_SHARE[level])
        node_programs[node] = list(range(n_programs, n_programs + NODE_PROGRAMS[level]))
        n_programs += NODE_PROGRAMS[level]
        node_logits[node] = rng.normal(0.0, STATE_LOGIT_SD[level], N_STATES)

    n_tissues = len(names)
    mean = np.empty((n_tissues, n_genes))
    state_logits = np.empty((n_tissues, N_STATES))
    tissue_programs = []
    for t, name in enumerate(names):
        path = TISSUE_TREE[name] + (name,)
        prefixes = [path[:depth] for depth in range(1, len(path) + 1)]
        shift = sum(node_shift[p] for p in prefixes)
        mean[t] = base + np.where(is_y, 0.0, shift)
        state_logits[t] = sum(node_logits[p] for p in prefixes)
        tissue_programs.append(np.array(list(range(N_GLOBAL_PROGRAMS)) + [c for p in prefixes for c in node_programs[p]]))

    program_bank = rng.normal(0.0, PROGRAM_SD, (n_genes, n_programs)) * (rng.random((n_genes, n_programs)) < PROGRAM_DENSITY)
    program_scale = rng.uniform(0.7, 1.3, (n_tissues, n_programs))
    state_shift = rng.normal(0.0, STATE_SHIFT_SD, (N_STATES, n_genes)) * (rng.random((N_STATES, n_genes)) < STATE_SHIFT_SHARE)
    state_shift[:, is_y] = 0.0
    state_active = rng.random((N_STATES, n_programs)) < STATE_PROGRAM_ACTIVE
    donor_loadings = rng.normal(0.0, DONOR_SD, (n_genes, N_DONOR_PROGRAMS))
    donor_scale = rng.uniform(0.8, 1.2, n_tissues)
    eqtl_var = np.where(rng.random(n_genes) < EQTL_SHARE, rng.uniform(0.1, 0.6, n_genes) ** 2 * 2, 0.0)
    gene_noise = np.exp(rng.normal(np.log(0.12), 0.6, n_genes))
    noise_var = gene_noise[None, :] * rng.uniform(0.8, 1.25, (n_tissues, 1)) * noise_scale

    sex_effect = np.where(is_y, rng.uniform(3.0, 5.0, n_genes), 0.0)
    sex_effect += np.where((chromosome == "X") & (rng.random(n_genes) < 0.2), rng.normal(0, 0.5, n_genes), 0.0)
    sex_effect += np.where(~is_y & (rng.random(n_genes) < 0.03), rng.normal(0, 0.4, n_genes), 0.0)
    age_effect = np.where(rng.random(n_genes) < 0.1, rng.normal(0, 0.25, n_genes), 0.0)
    return SimulationParameters(
        genes=genes[["ensembl_gene_id", "symbol"]].reset_index(drop=True),
        tissue_names=names,
        mean=mean,
        state_shift=state_shift,
        state_logits=state_logits,
        program_bank=program_bank,
        tissue_programs=tissue_programs,
        program_scale=program_scale,
        state_active=state_active,
        donor_loadings=donor_loadings,
        donor_scale=donor_scale,
        eqtl_var=eqtl_var,
        noise_var=noise_var,
        sex_effect=sex_effect,
        age_effect=age_effect,
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


def draw_log_expression(
    params: SimulationParameters, tissue_index: np.ndarray, donor_index: np.ndarray, sex: np.ndarray,
    age: np.ndarray, rng: np.random.Generator,
) -> np.ndarray:
    """Draw log2(TPM + 1) values (samples x genes) from the model for the given samples."""
    n_samples, n_genes = len(tissue_index), params.mean.shape[1]
    n_donors = int(donor_index.max()) + 1 if n_samples else 0
    donor_latent = rng.standard_normal((n_donors, N_DONOR_PROGRAMS))
    eqtl = rng.standard_normal((n_donors, n_genes)) * np.sqrt(params.eqtl_var)
    log_expr = params.covariate_mean(tissue_index, sex, age) + eqtl[donor_index]
    for t in np.unique(tissue_index):
        rows = np.flatnonzero(tissue_index == t)
        states = rng.choice(N_STATES, size=len(rows), p=params.state_weights[t])
        loadings, active = params.loadings(t), params.active(t)
        latent = rng.standard_normal((len(rows), loadings.shape[1]))
        latent[:, -N_DONOR_PROGRAMS:] = donor_latent[donor_index[rows]]
        log_expr[rows] += params.state_shift[states] + (latent * active[states]) @ loadings.T
        log_expr[rows] += rng.standard_normal((len(rows), n_genes)) * np.sqrt(params.noise_var[t])
    detected = rng.random(log_expr.shape) < params.detection(tissue_index, sex)
    return np.where(detected, log_expr, 0.0)


def simulate_cohort(
    n_donors: int = 300, n_genes: int = 2000, seed: int = 0, noise_scale: float = 1.0
) -> Cohort:
    """Simulate a GTEx-shaped cohort (deterministic from ``seed``); the transform is fitted on train donors.

    The default (300 donors, 2,000 genes; the demo cohort) gives about 6,000 samples in a few seconds.
    """
    if n_donors < 1 or not noise_scale > 0:
        raise ValueError(f"A simulation needs at least one donor (--donors, n_donors) and a positive noise_scale, "
                         f"got {n_donors} and {noise_scale}.")
    config = SimulationConfig(n_donors, n_genes, seed, noise_scale)
    params = simulation_parameters(n_genes, seed, noise_scale)
    rng = np.random.default_rng([seed, 1])
    samples = _draw_samples(config, params.tissue_names, rng)
    donor_index, tissue_index = samples.pop("_donor").to_numpy(), samples.pop("_tissue").to_numpy()
    log_expr = draw_log_expression(params, tissue_index, donor_index, samples["sex"], samples["age"], rng)
    log_expr = log_expr.astype(np.float32)

    samples["split"] = assign_donor_split(samples["donor_id"], seed=seed)
    train = (samples["split"] == "train").to_numpy()
    transform = Transform(log_expr[train].mean(axis=0), log_expr[train].std(axis=0), scale="tpm")
    x = (log_expr - transform.mean) / transform.std
    meta = {"source": "simulated", "simulation": asdict(config), "simulator_version": SIMULATOR_VERSION}
    return Cohort(x, params.genes.copy(), samples, transform, meta)


def is_current(cohort: Cohort) -> bool:
    """Whether a (cached) simulated cohort was made by this version of the simulator."""
    return cohort.meta.get("simulator_version") == SIMULATOR_VERSION
