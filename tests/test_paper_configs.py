"""The authors' settings (configs/paper/) run end to end on a small cohort made from GTEx v8-format files.

Each config trains at its full size (only ``max_epochs`` is cut to 2), is scored, saved as a
checkpoint and reloaded; the reloaded model imputes exactly as the trained one. The cohort holds
every Alzheimer's and p53 pathway gene, so the pathway configs select real gene sets.
"""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest
import yaml
from gtex_files import write_gtex_files

from gtex_models.analysis.benchmark import SCENARIOS
from gtex_models.common.paths import CONFIG_DIR
from gtex_models.data.cohort import Cohort
from gtex_models.data.masks import mcar_mask
from gtex_models.data.patterns import mask_cohort
from gtex_models.data.readers import prepare_gtex
from gtex_models.data.reference import PATHWAYS, pathway_genes, protein_coding_genes
from gtex_models.interfaces.cli.main import main
from gtex_models.models.checkpoints import load_checkpoint
from gtex_models.studies.experiment import Experiment, run_experiment

PAPER_CONFIGS = sorted((CONFIG_DIR / "paper").glob("*.yaml"))
TISSUES = ("Whole Blood", "Lung", "Brain - Cortex")
N_DONORS = 24
N_OTHER_GENES = 30
EPOCHS = 2


def small_gtex_files(directory):
    """GTEx v8-format files: 24 donors, 3 tissues, the pathway genes plus 30 others, low-rank log TPM."""
    rng = np.random.default_rng(0)
    reference = protein_coding_genes()
    in_pathways = reference["symbol"].isin(set(pathway_genes("alzheimer")) | set(pathway_genes("p53")))
    chosen = reference[in_pathways | reference.index.isin(reference.index[~in_pathways][:N_OTHER_GENES])]
    genes = [(f"{gene_id}.5", symbol) for gene_id, symbol in zip(chosen["ensembl_gene_id"], chosen["symbol"])]

    donors = [f"GTEX-1{i:04d}" for i in range(N_DONORS)]
    samples, columns = {}, []
    for d, donor in enumerate(donors):
        for t, tissue in enumerate(TISSUES):
            if rng.random() < 0.85:
                samples[f"{donor}-{t:04d}-SM-{d:03d}{t}"] = (tissue, "RNASEQ")
                columns.append((d, t))
    tissue_mean = rng.normal(3.0, 2.0, size=(len(TISSUES), len(genes)))
    loadings = rng.normal(0.0, 0.7, size=(len(TISSUES), 4, len(genes)))
    donor_programs = rng.normal(size=(N_DONORS, 4))
    log_tpm = np.stack([tissue_mean[t] + donor_programs[d] @ loadings[t] for d, t in columns], axis=1)
    tpm = np.maximum(np.exp2(log_tpm + rng.normal(0.0, 0.3, size=log_tpm.shape)) - 1.0, 0.0)
    subjects = [(donor, "1" if d % 3 else "2", f"{20 + 10 * (d % 6)}-{29 + 10 * (d % 6)}", "")
                for d, donor in enumerate(donors)]
    return write_gtex_files(directory, genes, samples, subjects, tpm)


@pytest.fixture(scope="module")
def gtex_cohort_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("gtex_v8")
    cohort = prepare_gtex(*small_gtex_files(directory), min_samples_per_tissue=10)
    return cohort.save(directory / "cohort")


def hidden_widths(arrays: dict[str, np.ndarray], network: str) -> list[int]:
    """Output widths of a saved network's hidden Linear layers, in order."""
    pattern = re.compile(rf"^{network}\.hidden\.(\d+)\.0\.weight$")
    layers = sorted((int(m.group(1)), arrays[key].shape[0]) for key in arrays if (m := pattern.match(key)))
    return [width for _, width in layers]


def test_one_paper_config_per_method_scenario_and_gene_set():
    found = {path.stem: Experiment.from_yaml(path) for path in PAPER_CONFIGS}
    keys = {(e.method, e.scenario, e.pathway or "all") for e in found.values()}
    assert keys == set(itertools.product(("pmi", "gain", "gain-mse"), SCENARIOS, ("all", *PATHWAYS)))
    assert all(stem == f"{e.method}_{e.scenario}_{e.pathway or 'all'}" for stem, e in found.items())


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda p: p.stem)
def test_paper_config_trains_saves_and_reloads_on_gtex_format_files(path, gtex_cohort_dir, tmp_path):
    experiment = Experiment.from_yaml(path)
    experiment.training["max_epochs"] = EPOCHS  # the only change: a few epochs
    cohort = Cohort.load(gtex_cohort_dir)
    checkpoint = tmp_path / "model.safetensors"

    imputer, record = run_experiment(experiment, cohort, out=checkpoint)

    assert imputer.history["epochs"] == EPOCHS
    assert record["scenario"] == experiment.scenario and np.isfinite(record["r2_mean"])
    loaded, metadata = load_checkpoint(checkpoint)
    assert loaded.config == imputer.config == {**experiment.model, **experiment.training}
    network = "network" if experiment.method == "pmi" else "generator"
    assert hidden_widths(loaded.get_state()[0], network) == experiment.model["hidden_sizes"]
    expected_genes = set(pathway_genes(experiment.pathway)) if experiment.pathway else set(cohort.genes["symbol"])
    assert set(metadata["genes"]["symbol"]) == expected_genes
    assert (metadata["scenario"], metadata["pathway"]) == (experiment.scenario, experiment.pathway)

    test = experiment.cohort(cohort).split("test")
    masked = mask_cohort(test, mcar_mask(test.x.shape, 0.5, 0.5, seed=3))
    np.testing.assert_array_equal(loaded.impute(masked), imputer.impute(masked))


def test_cli_trains_the_p53_paper_config(gtex_cohort_dir, tmp_path, capsys):
    config = yaml.safe_load((CONFIG_DIR / "paper" / "pmi_inductive_p53.yaml").read_text())
    config["training"]["max_epochs"] = EPOCHS
    (tmp_path / "p53.yaml").write_text(yaml.safe_dump(config))
    checkpoint = tmp_path / "p53.safetensors"
    assert main(["train", "--cohort", str(gtex_cohort_dir), "--config", str(tmp_path / "p53.yaml"),
                 "--out", str(checkpoint)]) == 0
    assert "Trained pmi (inductive)" in capsys.readouterr().out
    _, metadata = load_checkpoint(checkpoint)
    assert sorted(metadata["genes"]["symbol"]) == sorted(pathway_genes("p53"))
    assert metadata["config"]["params"]["hidden_sizes"] == [1531, 1531]


@pytest.mark.parametrize("pathway", sorted(PATHWAYS))
def test_cli_benchmark_on_each_pathway(pathway, gtex_cohort_dir, tmp_path):
    out = tmp_path / "records.json"
    assert main(["benchmark", "--cohort", str(gtex_cohort_dir), "--methods", "mean", "--pathway", pathway,
                 "--json", str(out)]) == 0
    [record] = json.loads(out.read_text())
    # the pathway's genes, but those whose hidden values barely vary (R² undefined, evaluation.py)
    assert 0.95 * len(set(pathway_genes(pathway))) <= record["n_genes"] <= len(set(pathway_genes(pathway)))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_paper_config_opens_in_the_app_as_a_study(scenario, gtex_cohort_dir, tmp_path, monkeypatch):
    """The paper configs of one scenario (all genes, Alzheimer's, p53 x PMI, GAIN-GTEx, GAIN-MSE) become
    the models of one study (1 epoch each), and every page of the app renders on it."""
    from studies import PAGES, assert_clean, clear_caches, open_app, point_app_at

    from gtex_models.studies.build import build_study
    from gtex_models.studies.study import Study

    experiments = [Experiment.from_yaml(path) for path in PAPER_CONFIGS]
    models = [e for e in experiments if e.scenario == scenario]
    study = build_study(gtex_cohort_dir, tmp_path / "paper_study", models, baselines=(), max_epochs=1,
                        title=f"Paper configs ({scenario})")
    assert sorted(study.models) == sorted(f"{e.method}_{e.pathway or 'all'}" for e in models)
    assert {entry.scenario for entry in study.models.values()} == {scenario}
    point_app_at(monkeypatch, study.path, studies_dir=tmp_path / "no_studies")
    clear_caches()
    try:
        for page in PAGES:
            at = open_app(page)
            assert_clean(at, warnings=False)
        assert Study.open(study.path).problems == []
    finally:
        clear_caches()
