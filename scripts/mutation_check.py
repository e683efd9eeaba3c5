"""Mutation check: do the tests fail when the science breaks?

Each mutant is a one-line semantic change to the package — a file, the exact snippet it replaces
(found exactly once), the replacement, what it breaks — and the few tests meant to catch it. The
script copies the repository (tracked files and untracked ones git does not ignore) to a temporary
directory once, checks that the chosen tests pass there unmutated, then applies each mutant in turn
to the copy, runs its tests (``pytest -x``, one thread) and restores the file. The working tree is
never modified. A mutant is *killed* when a test fails (or errors) and *survives* when every test
passes; a run past ``--timeout`` is reported as a timeout and does not count as killed.

Sets: ``issue`` re-applies the mutants of issue #18 (they survived the suite once);
``generalisation`` is a different set written afterwards, to check that the tests catch more than
the mutants they were written against; later sets are named after the method or feature they guard
(``app``: issue #27, the app as a daily tool).

Slow (minutes: models are trained), so it is not part of the test suite. Usage::

    python scripts/mutation_check.py --list             # the mutants, and whether each still applies
    python scripts/mutation_check.py --only r2-clipped  # one mutant (repeat --only for several)
    python scripts/mutation_check.py                    # all; writes benchmarks/results/mutation_check.md
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "mutation_check.md"
TIMEOUT_S = 900  # per mutant; a busy shared machine can make a deep-model test take minutes


@dataclass(frozen=True)
class Mutant:
    """A one-line change to ``file``: ``original`` (found exactly once) becomes ``mutated``."""

    name: str
    group: str
    file: str
    original: str
    mutated: str
    description: str
    tests: tuple[str, ...]


PMI = "tests/test_pmi.py"
GAIN = "tests/test_gain.py"
BASELINES = "tests/test_baselines.py"
EVALUATION = "tests/test_evaluation.py"
INFERENCE = "tests/test_inference.py"
APP_PAGES = "tests/test_app_pages.py"
SOFTIMPUTE = "tests/test_softimpute.py"
BENCHMARK = "tests/test_benchmark.py"
STUDY = "tests/test_study.py"
CALIBRATION = "tests/test_calibration.py"
PROVENANCE = "tests/test_provenance.py"
PACKAGE = "tests/test_package.py"
OWN = "tests/test_own_cohorts.py"
SMALL = "tests/test_small_cohorts.py"
POLISH = "tests/test_cli_polish.py"
CROSS_TISSUE = "tests/test_cross_tissue.py"

MUTANTS = (
    # ------------------------------------------------------------------ the mutants of issue #18
    Mutant("pmi-blind", "issue", "gtex_models/models/networks.py",
           "return self._forward(x * mask, mask, tissue, sex, age)",
           "return self._forward(torch.zeros_like(x), mask, tissue, sex, age)",
           "PMI network sees no expression values (only mask and covariates)",
           (f"{PMI}::test_accuracy_against_knn_and_the_oracle",)),
    Mutant("gain-blind", "issue", "gtex_models/models/networks.py",
           "return self._forward(x * mask + noise * (1.0 - mask), mask, tissue, sex, age)",
           "return self._forward(noise * (1.0 - mask), mask, tissue, sex, age)",
           "GAIN generator sees no expression values (only noise, mask and covariates)",
           (f"{GAIN}::test_inplace_gain_accuracy_against_the_mean_and_the_oracle",
            f"{GAIN}::test_the_imputations_follow_the_observed_values")),
    Mutant("r2-clipped", "issue", "gtex_models/analysis/evaluation.py",
           "return np.where(valid, r2, np.nan)",
           "return np.where(valid, np.clip(r2, 0.0, 1.0), np.nan)",
           "R² clipped to [0, 1]: a negative R² is reported as 0",
           (EVALUATION,)),
    Mutant("upload-raw", "issue", "gtex_models/interfaces/upload.py",
           "cohort = Cohort(transform.forward(alignment.values), space.genes, samples, transform,",
           "cohort = Cohort(alignment.values, space.genes, samples, transform,",
           "upload fed to the model as raw values (no log, no standardisation)",
           (f"{INFERENCE}::test_an_upload_is_imputed_as_the_same_values_given_as_a_cohort",)),
    Mutant("upload-unstandardised", "issue", "gtex_models/interfaces/upload.py",
           "return Transform(model.mean, model.std, scale=scale, pseudocount=model.pseudocount)",
           "return Transform(0 * model.mean, 0 * model.std + 1, scale=scale, pseudocount=model.pseudocount)",
           "upload logged but not standardised (gene means and SDs of the model ignored)",
           (f"{INFERENCE}::test_an_upload_is_imputed_as_the_same_values_given_as_a_cohort",)),
    Mutant("gain-no-adversarial", "issue", "gtex_models/models/gain.py",
           '                                + adversarial, batch)',
           '                                + 0 * adversarial, batch)',
           "GAIN-GTEx adversarial term multiplied by 0",
           (f"{GAIN}::test_the_adversarial_loss_pushes_imputations_towards_observed_looking_values",)),
    Mutant("try-it-truth-leak", "issue", "gtex_models/interfaces/try_it.py",
           "imputed = imputer.impute(masked)",
           "imputed = imputer.impute(trial)",
           '"Try it" shows the model the values it hides (truth leak; function level)',
           (f"{INFERENCE}::test_hide_and_impute_hides_the_values_from_the_model_and_scores_them",
            f"{INFERENCE}::test_hide_and_impute_with_the_oracle_scores_below_one")),
    Mutant("tissue-ignored", "issue", "gtex_models/models/networks.py",
           "return torch.cat([self.tissue(tissue), self.sex(sex),",
           "return torch.cat([self.tissue(tissue * 0), self.sex(sex),",
           "tissue covariate ignored by PMI and GAIN (every sample looks up tissue 0)",
           (f"{PMI}::test_a_sample_without_values_is_imputed_from_its_tissue",
            f"{GAIN}::test_a_sample_without_values_is_imputed_from_its_tissue")),
    Mutant("knn-tissue-mean", "issue", "gtex_models/models/baselines.py",
           "return self._knn.transform(residuals)",
           "return np.zeros_like(residuals)",
           "KNN returns the per-tissue mean",
           (f"{BASELINES}::test_matches_scikit_learn_on_the_residuals_and_beats_the_mean",)),
    Mutant("chained-tissue-mean", "issue", "gtex_models/models/baselines.py",
           "return filled[len(context):]",
           "return np.zeros_like(residuals)",
           "MICE and MissForest return the per-tissue mean",
           (f"{BASELINES}::test_matches_scikit_learn_on_the_residuals_and_beats_the_mean",)),
    Mutant("umap-noise", "issue", "gtex_models/analysis/embeddings.py",
           "coords = reducer.fit_transform(embeddings.to_numpy(dtype=np.float32))",
           "coords = np.random.default_rng(seed).normal(size=(len(embeddings), 2))",
           "UMAP coordinates replaced by random noise",
           ("tests/test_embeddings.py::test_umap_coordinates_keep_each_tissues_neighbours",)),
    Mutant("tissue-r2-slider-ignored", "issue", "pages/tissue_r2.py",
           "    if rate == precomputed:",
           "    if True:",
           "Tissue R² page ignores the missing-rate slider (always the precomputed table)",
           (f"{APP_PAGES}::test_tissue_r2_at_another_rate_is_computed_from_the_study_cohort",)),
    # ------------------------------------------------------------------ a different set
    Mutant("mask-rate-per-gene", "generalisation", "gtex_models/data/masks.py",
           "rates = rng.uniform(m_low, m_high, size=(shape[0], 1))",
           "rates = rng.uniform(m_low, m_high, size=(1, shape[1]))",
           "MCAR mask draws one missing rate per gene instead of per sample",
           ("tests/test_masks.py",)),
    Mutant("mask-inverted", "generalisation", "gtex_models/data/masks.py",
           "return (torch.rand(shape, generator=generator, device=device) >= rates).float()",
           "return (torch.rand(shape, generator=generator, device=device) < rates).float()",
           "training mask marks the missing entries as observed (rate off by 1 - rate)",
           ("tests/test_masks.py",)),
    Mutant("pmi-no-pseudo-mask", "generalisation", "gtex_models/models/pmi.py",
           'mask = self.training_mask(batch["known"], generator)',
           'mask = batch["known"]',
           "PMI pseudo-mask not applied (nothing hidden during training)",
           (f"{PMI}::test_accuracy_against_knn_and_the_oracle",)),
    Mutant("pmi-loss-on-shown", "generalisation", "gtex_models/models/pmi.py",
           'return masked_mse(prediction, batch["x"], batch["hidden"])',
           'return masked_mse(prediction, batch["x"], batch["mask"])',
           "PMI loss taken on the values the network was shown, not the hidden ones",
           (f"{PMI}::test_accuracy_against_knn_and_the_oracle",
            f"{PMI}::test_the_validation_loss_is_the_error_on_hidden_values")),
    Mutant("gain-hint-unused", "generalisation", "gtex_models/models/gain.py",
           'return discriminator_net(imputed, batch["hint"], batch["tissue"], batch["sex"], batch["age"]).float()',
           'return discriminator_net(imputed, 0.5 + 0 * batch["hint"], batch["tissue"], batch["sex"], '
           'batch["age"]).float()',
           "GAIN discriminator never sees the hint",
           (f"{GAIN}::test_the_discriminator_is_shown_the_hint",)),
    Mutant("gain-hint-reveals-all", "generalisation", "gtex_models/data/masks.py",
           "return b * observed + 0.5 * (1.0 - b)",
           "return observed + 0 * b",
           "GAIN hint gives the whole mask away",
           ("tests/test_masks.py",)),
    Mutant("transform-inverse", "generalisation", "gtex_models/data/transform.py",
           "return np.maximum(np.exp2(log) - self.pseudocount, 0.0).astype(np.float32)",
           "return np.maximum(np.exp2(log), 0.0).astype(np.float32)",
           "TPM inverse transform forgets the pseudocount",
           ("tests/test_cohort.py", f"{INFERENCE}::test_an_upload_is_imputed_as_the_same_values_given_as_a_cohort")),
    Mutant("extended-unbalanced", "generalisation", "gtex_models/analysis/evaluation.py",
           "rows.append(rng.choice(members, size=n_per_tissue, replace=replace))",
           "rows.append(rng.choice(members, size=min(n_per_tissue, len(members)), replace=False))",
           "extended test set not balanced (small tissues not resampled)",
           (f"{EVALUATION}::test_extended_test_set_has_equal_counts_per_tissue",)),
    Mutant("r2-tissues-mixed", "generalisation", "gtex_models/analysis/evaluation.py",
           'mean = sums["sum_obs"] / n_obs',
           'mean = sums["sum_obs"].sum(axis=0) / n_obs.sum(axis=0)',
           "per-tissue R² against the observed mean uses the mean over every tissue as its reference",
           (EVALUATION,)),
    Mutant("r2-observed-entries", "generalisation", "gtex_models/analysis/evaluation.py",
           '"ss_res": weights @ np.where(observed, 0.0, (x_true - np.asarray(x_imputed, dtype=np.float64)) ** 2),',
           '"ss_res": weights @ ((x_true - np.asarray(x_imputed, dtype=np.float64)) ** 2),',
           "R² residuals summed over observed entries too",
           (EVALUATION,)),
    Mutant("checkpoint-float16-not-stored", "generalisation", "gtex_models/models/checkpoints.py",
           'if dtype == "float16" and np.issubdtype(array.dtype, np.floating):',
           'if dtype == "float16" and np.issubdtype(array.dtype, np.integer):',
           "float16 checkpoints stored as float32 (nothing halved)",
           ("tests/test_checkpoints.py",)),
    Mutant("age-unstandardised", "generalisation", "gtex_models/data/covariates.py",
           "age = (samples[\"age\"].to_numpy(dtype=float) - self.age_mean) / self.age_std",
           "age = samples[\"age\"].to_numpy(dtype=float)",
           "age fed to the networks in years, not standardised",
           ("tests/test_covariates.py",)),
    Mutant("known-all-ones", "generalisation", "gtex_models/models/deep.py",
           '"known": (~torch.isnan(x)).float(),',
           '"known": torch.ones_like(x),',
           "deep models treat missing entries (zeros) as observed",
           (f"{PMI}::test_accuracy_against_knn_and_the_oracle", f"{PMI}::test_a_missing_value_is_not_read_as_an_observed_mean")),
    Mutant("knn-one-neighbour", "generalisation", "gtex_models/models/baselines.py",
           "SklearnKNNImputer(n_neighbors=self.k, keep_empty_features=True)",
           "SklearnKNNImputer(n_neighbors=1, keep_empty_features=True)",
           "KNN ignores k (one neighbour)",
           (f"{BASELINES}::test_matches_scikit_learn_on_the_residuals_and_beats_the_mean",)),
    Mutant("tissue-means-global", "generalisation", "gtex_models/models/baselines.py",
           "return table[index]  # index -1 (unseen tissue) selects the last row: the global means",
           "return table[np.full_like(index, -1)]",
           "per-tissue means replaced by the global means",
           (BASELINES,)),
    Mutant("upload-result-model-space", "generalisation", "gtex_models/interfaces/upload.py",
           "imputed = transform.inverse(model_values)",
           "imputed = model_values",
           "upload imputations returned in model space, not on the upload's scale",
           (f"{INFERENCE}::test_an_upload_is_imputed_as_the_same_values_given_as_a_cohort",)),
    Mutant("upload-absent-genes-zero", "generalisation", "gtex_models/interfaces/upload.py",
           "out[:, len(table.feature_ids):] = model_values[:, absent]",
           "out[:, len(table.feature_ids):] = 0 * model_values[:, absent]",
           "model genes absent from an upload come back as 0 instead of imputed",
           (f"{INFERENCE}::test_an_upload_is_imputed_as_the_same_values_given_as_a_cohort",)),
    Mutant("try-it-score-observed", "generalisation", "gtex_models/interfaces/try_it.py",
           "r2 = r2_per_gene(trial.x, imputed, observed, reference)",
           "r2 = r2_per_gene(trial.x, imputed, ~observed, reference)",
           '"Try it" per-gene R² scored on the shown values instead of the hidden ones',
           (f"{INFERENCE}::test_hide_and_impute_hides_the_values_from_the_model_and_scores_them",)),
    Mutant("impute-overwrites-observed", "generalisation", "gtex_models/models/base.py",
           "np.copyto(prediction, cohort.x, where=cohort.observed)",
           "np.copyto(prediction, cohort.x, where=np.zeros_like(cohort.observed))",
           "imputers replace the observed values by their predictions",
           (PMI,)),
    Mutant("try-it-rate-ignored", "generalisation", "pages/impute.py",
           "trial = _trial(study_token(), key, rows, rate, 0, level or 0.9)",
           "trial = _trial(study_token(), key, rows, 0.5, 0, level or 0.9)",
           "Try it hides 50 % whatever the missing-rate slider says",
           (f"{APP_PAGES}::test_try_it_controls_change_the_samples_and_the_rate_scored",)),
    Mutant("upload-page-group-ignored", "generalisation", "pages/impute.py",
           "result = pipeline.impute_upload(imputer, space, prepared.alignment, samples, prepared.scale,",
           "result = pipeline.impute_upload(imputer, space, prepared.alignment, "
           "samples.assign(tissue=space.tissues[0]), prepared.scale,",
           "Impute page imputes every upload as the model's first tissue, whatever the user chose",
           (f"{APP_PAGES}::test_impute_page_imputes_an_upload_marks_imputed_cells_and_keeps_observed_values",)),
    Mutant("umap-page-axis-repeated", "generalisation", "pages/embeddings.py",
           'plots.embedding_scatter(umap, "umap_1", "umap_2",',
           'plots.embedding_scatter(umap, "umap_2", "umap_2",',
           "Tissue embeddings page draws UMAP 2 against itself instead of the study's coordinates",
           (f"{APP_PAGES}::test_embeddings_page_shows_every_tissue",)),
    Mutant("across-rates-rate-ignored", "generalisation", "gtex_models/analysis/evaluation.py",
           "at_rate = pattern.with_rate(rate)",
           "at_rate = pattern.with_rate(0.5)",
           "study table of R² against the missing rate hides 50 % at every rate",
           (f"{EVALUATION}::test_r2_across_missing_rates_hides_each_rates_share", f"{BENCHMARK}::test_evaluation_tables",
            STUDY, f"{APP_PAGES}::test_tissue_r2_page_has_a_box_per_tissue_and_rate_curves")),
    Mutant("per-tissue-not-extended", "generalisation", "gtex_models/analysis/benchmark.py",
           "extended = cohort.subset_samples(extended_test_indices(cohort.samples[\"tissue\"], n_per_tissue, seed))",
           "extended = cohort",
           "study's per-tissue table not computed on the extended (balanced) test set",
           (f"{BENCHMARK}::test_the_per_tissue_table_is_scored_on_the_extended_test_set", f"{BENCHMARK}::test_evaluation_tables",
            STUDY)),
    Mutant("mice-neighbours-uncapped", "generalisation", "gtex_models/models/baselines.py",
           "n_nearest_features=self._neighbours(len(stack)),",
           "n_nearest_features=self.n_nearest_features,",
           "MICE uses 30 neighbours per gene however few samples the cohort has",
           (f"{BASELINES}::test_mice_stays_bounded_with_fewer_samples_than_genes",)),
    Mutant("oracle-platform-ignored", "generalisation", "gtex_models/models/oracle.py",
           "cohort.samples[\"age\"].to_numpy(), log_expr, observed, gene_index,\n                                             Platform.of(cohort))",
           "cohort.samples[\"age\"].to_numpy(), log_expr, observed, gene_index,\n                                             None)",
           "the oracle of a shifted cohort ignores its platform (reads shifted values as the simulation's)",
           ("tests/test_oracle.py::test_the_oracle_of_a_shifted_cohort_is_calibrated_and_beats_a_platform_blind_one",)),
    Mutant("r2-flat-hidden-scored", "generalisation", "gtex_models/analysis/evaluation.py",
           " & (spread >= MIN_HIDDEN_VARIANCE)",
           "",
           "R² scores a gene whose hidden values barely vary (tiny denominator, huge negative R²)",
           (f"{EVALUATION}::test_a_gene_whose_hidden_values_barely_vary_is_excluded",)),
    Mutant("gain-profile-ignored", "generalisation", "gtex_models/models/gain.py",
           "            if weight == 0:\n                return loss",
           "            if True:\n                return loss",
           "GAIN-GTEx's profile term never added (tissue embeddings left without structure)",
           (f"{GAIN}::test_the_profile_term_gives_the_tissue_embeddings_the_tissues_structure",)),
    Mutant("second-cohort-unshifted", "generalisation", "pages/tissue_r2.py",
           "return _compare(key, shifted_test_donors(cohort(), tissues), None, harmonisations)",
           "return _compare(key, cohort().split(\"test\"), None, harmonisations)",
           "Tissue R² page's second cohort is the study's own test donors, not shifted",
           ("tests/test_app_second_cohort.py",)),
    Mutant("model-scored-ignores-model", "generalisation", "gtex_models/analysis/panels.py",
           "best, best_score = candidates[int(np.argmax(scores))], max(scores)",
           "best, best_score = candidates[-1], max(scores)",
           "the model-scored panel design starts from a random panel whatever the model's scores say",
           ("tests/test_panels.py::test_model_scored_design_keeps_the_few_genes_the_model_reads",)),
    Mutant("model-scored-is-linear", "generalisation", "gtex_models/analysis/panels.py",
           "    return np.sort(best).astype(np.int64)",
           "    return np.sort(linear).astype(np.int64)",
           "the model-scored panel design returns the linear design (the search's result dropped)",
           ("tests/test_panels.py::test_model_scored_design_finds_the_genes_the_model_can_use",)),
    Mutant("probe-ignored-at-impute-time", "generalisation", "gtex_models/models/calibration.py",
           "        return probe_factor(*probe_sums(residual, probe, spread), self.probe_prior)",
           "        return np.ones(cohort.n_samples)",
           "intervals ignore how hard the sample's own observed values are to impute (calibrated with the probe)",
           ("tests/test_calibration.py::test_poor_arrays_get_wider_intervals_from_the_probe_and_are_covered_like_the_good_ones",)),
    Mutant("small-validation-masked-once", "generalisation", "gtex_models/models/calibration.py",
           "    n_passes = calibration_passes(cohort.n_samples) if n_passes is None else n_passes",
           "    n_passes = 1 if n_passes is None else n_passes",
           "a small validation set is masked once: its rate bins get too few samples for their own quantiles",
           ("tests/test_calibration.py::test_a_small_validation_set_is_masked_again_so_that_rate_bins_get_their_own_quantiles",)),
    Mutant("probe-never-fitted", "generalisation", "gtex_models/models/calibration.py",
           "    prior = _fit_probe_prior(residual, hidden, spread, squares, count)",
           "    prior = math.inf",
           "calibration without the probe factor: every sample of a group and rate gets the same width",
           ("tests/test_calibration.py::test_poor_arrays_get_wider_intervals_from_the_probe_and_are_covered_like_the_good_ones",)),
    Mutant("gauss-ignores-observed", "gauss", "gtex_models/models/gauss.py",
           "    scores = (residual / noise) @ loadings  # samples x k: L_oᵀ D_o⁻¹ r_o (missing residuals are 0)",
           "    scores = 0 * (residual / noise) @ loadings",
           "gauss imputes the group means: the sample's observed values never reach the factors",
           ("tests/test_gauss.py::test_conditional_mean_and_sd_equal_the_exact_gaussian_ones",
            "tests/test_gauss.py::test_gauss_beats_mean_and_knn_on_a_low_rank_cohort_at_every_rate")),
    Mutant("gauss-cg-not-conjugate", "gauss", "gtex_models/models/gauss.py",
           "        direction[rows] = preconditioned + (updated / rz[rows])[:, None] * direction[rows]",
           "        direction[rows] = preconditioned",
           "gauss's iterative solve takes steepest-descent steps (no conjugate directions): it stalls",
           ("tests/test_gauss.py::test_the_iterative_solve_equals_the_exact_one",)),
    Mutant("gauss-no-em", "gauss", "gtex_models/models/gauss.py",
           "        if gappy:",
           "        if False:",
           "gauss fits training data with gaps by mean-filling only (no EM)",
           ("tests/test_gauss.py::test_em_recovers_a_known_covariance_from_data_with_gaps",)),
    Mutant("intervals-ignore-conditional-sd", "gauss", "gtex_models/models/calibration.py",
           '    conditional_sd = getattr(imputer, "conditional_sd", None)',
           "    conditional_sd = None",
           "intervals of gauss ignore its conditional SD (one width per gene and sample)",
           ("tests/test_gauss.py::test_intervals_follow_the_conditional_sd_value_by_value",)),
    Mutant("hybrid-without-path", "gauss", "gtex_models/models/networks.py",
           "        return linear + self.residual_weight.to(x.dtype) * self.network._forward(completed, mask, *covariates)",
           "        return self.residual_weight.to(x.dtype) * self.network._forward(completed, mask, *covariates)",
           "the hybrid deep models drop the Gaussian conditional mean from their output",
           ("tests/test_hybrid.py::test_an_untrained_hybrid_is_exactly_the_gaussian_conditional_mean",)),
    Mutant("knn-own-group-means", "gauss", "gtex_models/models/baselines.py",
           "        return best if errors[best] < (1.0 - SHRINKAGE_MARGIN) * errors[0.0] else 0.0",
           "        return 0.0",
           "KNN, MICE and MissForest always centre on each group's own mean (no shrinkage chosen on validation)",
           ("tests/test_baselines.py::test_knn_is_at_least_as_good_as_scikit_learns_on_small_groups",)),
    # ------------------------------------------------------------------ provenance and exact values (issue #28)
    Mutant("calibrated-on-test-donors", "provenance", "gtex_models/models/calibration.py",
           '    valid = cohort.split("valid") if (cohort.samples["split"] == "valid").any() else None',
           '    valid = cohort.split("test") if (cohort.samples["split"] == "valid").any() else None',
           "intervals calibrated on the test donors instead of the validation donors (coverage stays nominal)",
           (f"{PROVENANCE}::test_the_protocols_calibration_records_its_validation_donors",
            f"{PROVENANCE}::test_a_benchmark_calibrated_on_its_test_donors_is_refused")),
    Mutant("calibrated-in-place-on-test-rows", "provenance", "gtex_models/analysis/benchmark.py",
           "return calibrate_in_place(imputer, data.fit, data.test, np.flatnonzero(~data.is_test), seed)",
           "return calibrate_in_place(imputer, data.fit, data.test, np.flatnonzero(data.is_test), seed)",
           "in place, intervals calibrated on the scored (test) rows of the pool",
           (f"{PROVENANCE}::test_an_in_place_calibration_records_the_pools_training_donors",
            f"{PROVENANCE}::test_a_benchmark_calibrated_on_its_test_donors_is_refused")),
    Mutant("calibration-donors-not-recorded", "provenance", "gtex_models/models/calibration.py",
           '            "donors": DonorSet.of_cohort(cohort).to_dict()}',
           "            }",
           "a calibration does not record its donors (no leak can be detected)",
           (f"{PROVENANCE}::test_the_protocols_calibration_records_its_validation_donors",)),
    Mutant("leak-never-seen", "provenance", "gtex_models/data/provenance.py",
           "    if not seen:\n        return None",
           "    if True:\n        return None",
           "scoring donors a model or calibration was fitted on is never refused",
           (f"{PROVENANCE}::test_evaluate_refuses_intervals_calibrated_on_the_test_donors",
            f"{PROVENANCE}::test_try_it_refuses_the_coverage_of_donors_the_calibration_saw")),
    Mutant("evaluate-intervals-unchecked", "provenance", "gtex_models/analysis/benchmark.py",
           '    note = check_unseen(calibration, truth, "the test donors scored")',
           "    note = None",
           "evaluate and benchmark score intervals without checking the calibration's donors",
           (f"{PROVENANCE}::test_evaluate_refuses_intervals_calibrated_on_the_test_donors",)),
    Mutant("try-it-intervals-unchecked", "provenance", "gtex_models/interfaces/try_it.py",
           "            result.interval_note = check_unseen(calibration, trial, \"these samples' donors\")",
           "            result.interval_note = None",
           "Try it reports the coverage of donors the calibration was fitted on",
           (f"{PROVENANCE}::test_try_it_refuses_the_coverage_of_donors_the_calibration_saw",)),
    Mutant("training-donors-unchecked", "provenance", "gtex_models/studies/build.py",
           '    roles = {"training": donors.get("fit") if metadata.get("scenario") != "inplace" else None,',
           '    roles = {"training": None,',
           "evaluate and study add-model score a checkpoint on donors it was trained on",
           (f"{PROVENANCE}::test_cli_evaluate_refuses_test_donors_the_model_was_trained_on",)),
    Mutant("study-calibration-unchecked", "provenance", "gtex_models/studies/build.py",
           '    stored = metadata.get("calibration") if calibration else None',
           "    stored = None",
           "study build keeps a model whose calibration saw its test donors",
           (f"{STUDY}::test_a_build_whose_calibration_saw_the_test_donors_is_refused",
            f"{STUDY}::test_a_models_held_out_check_refuses_a_calibration_fitted_on_the_test_donors")),
    Mutant("donor-in-two-splits", "provenance", "gtex_models/data/cohort.py",
           "        if straddling:",
           "        if False:",
           "a cohort whose donor has samples in two splits is trained and scored",
           (f"{PROVENANCE}::test_a_cohort_with_a_donor_in_two_splits_is_refused",
            f"{CROSS_TISSUE}::test_a_donor_in_two_splits_is_refused")),
    Mutant("level-reads-the-level-below", "provenance", "gtex_models/models/calibration.py",
           "position = float(np.interp(level, LEVELS, np.arange(len(LEVELS))))",
           "position = float(np.interp(level - 0.01, LEVELS, np.arange(len(LEVELS))))",
           "a 90 % interval is computed from the 89 % quantile",
           (f"{CALIBRATION}::test_a_level_reads_its_own_stored_quantile_and_interpolates_between_levels",)),
    Mutant("conformal-rank-n", "provenance", "gtex_models/models/calibration.py",
           "rank = np.ceil((counts[:, None] + 1) * LEVELS[None, :]).astype(np.int64)",
           "rank = np.ceil(counts[:, None] * LEVELS[None, :]).astype(np.int64)",
           "conformal quantile of rank ceil(n level) instead of ceil((n + 1) level)",
           (f"{CALIBRATION}::test_the_conformal_quantile_is_the_ceil_of_n_plus_1_times_level_th_smallest_score",)),
    Mutant("coverage-row-at-another-rate", "provenance", "gtex_models/models/calibration.py",
           "observed = rng.random(cohort.x.shape) >= rate",
           "observed = rng.random(cohort.x.shape) >= 1 - rate",
           "the coverage table's row for 20 % missing is measured at 80 % (and so on)",
           (f"{CALIBRATION}::test_coverage_rows_get_wider_with_each_rate_under_a_calibration_whose_widths_grow_with_it",)),
    Mutant("probe-share-before-probing", "provenance", "gtex_models/models/calibration.py",
           "spread = self.spread(rows, 1.0 - (cohort.observed & ~probe).mean(axis=1))",
           "spread = self.spread(rows, 1.0 - cohort.observed.mean(axis=1))",
           "the probe factor's scale uses the missing share before the probe hid more values",
           (f"{CALIBRATION}::test_the_probe_factor_follows_its_formula_on_a_fixed_probe_mask",)),
    Mutant("study-info-first-models-r2", "provenance", "gtex_models/studies/report.py",
           'r2 = (data.get("evaluation") or {}).get("r2_mean")',
           'r2 = (study.manifest["models"][0].get("evaluation") or {}).get("r2_mean")',
           "study info shows the first model's test R² on every row",
           (f"{STUDY}::test_study_info_reports_each_models_own_evaluation",)),
    # ------------------------------------------------------------------ issue #27: the CLI as a daily tool
    Mutant("console-script-missing", "daily-cli", "pyproject.toml",
           'gtex-models = "gtex_models.interfaces.cli.main:main"',
           'gtex-model = "gtex_models.interfaces.cli.main:main"',
           "the installed package has no gtex-models command",
           (f"{PACKAGE}::test_the_package_installs_and_runs_from_any_folder",)),
    Mutant("group-column-order", "daily-cli", "gtex_models/data/readers/samples.py",
           'GROUP_COLUMNS = ("tissue", "smtsd", "group")',
           'GROUP_COLUMNS = ("group", "smtsd", "tissue")',
           "a sample table's group column is preferred to its tissue column",
           (f"{OWN}::test_the_group_column_is_tissue_else_group_else_a_question",)),
    Mutant("group-column-silent-unknown", "daily-cli", "gtex_models/data/readers/tables.py",
           "group_column = choose_group_column(samples_path, tissue_column).require(samples_path).column",
           "group_column = choose_group_column(samples_path, tissue_column).column",
           "import makes one silent Unknown group when the table has plausible group columns",
           (f"{OWN}::test_import_without_a_group_column_refuses_and_names_the_plausible_columns",)),
    Mutant("array-log-named-tpm", "daily-cli", "gtex_models/data/naming.py",
           "        if low > ARRAY_LOG_MINIMUM:",
           "        if False:",
           "log2 array intensities (with gene symbols) are named log2(TPM + 1)",
           (f"{OWN}::test_import_without_a_group_column_refuses_and_names_the_plausible_columns",
            f"{OWN}::test_rna_seq_log_values_with_zeros_are_log2_tpm")),
    Mutant("split-not-stratified", "daily-cli", "gtex_models/data/cohort.py",
           'groups = samples["tissue"] if stratify else None',
           "groups = None",
           "import's donor split ignores the groups: small groups end up without training donors",
           (f"{SMALL}::test_import_stratifies_by_group_and_sets_the_split",)),
    Mutant("small-group-not-trained", "daily-cli", "gtex_models/data/cohort.py",
           "        if counts[0] == 0 and len(donors) >= MIN_GROUP_DONORS:  # every group that can be scored trains",
           "        if False:",
           "a stratum of two or three donors may get no training donor",
           (f"{SMALL}::test_the_donor_split_is_stratified_by_group",)),
    Mutant("baseline-checkpoint-unlisted", "daily-cli", "gtex_models/studies/build.py",
           '    return record | {"checkpoint": name}',
           "    return record",
           "a baseline's benchmark record does not name its checkpoint (study info cannot show it)",
           (f"{SMALL}::test_study_build_saves_the_baselines_as_checkpoints_that_impute_and_evaluate",)),
    Mutant("unknown-groups-not-pooled", "daily-cli", "gtex_models/models/pooled.py",
           "        out[unknown] = total / len(self.groups)",
           "        out[unknown] = self.imputer.impute(part)",
           "a sample of an unknown group is imputed by the model as it is, not as the mean over its groups",
           (f"{SMALL}::test_impute_pools_unknown_groups_only_when_asked",)),
    Mutant("benchmark-refits-every-rate", "daily-cli", "gtex_models/analysis/benchmark.py",
           '            if fit_seconds is None or scenario == "inplace":',
           "            if True:",
           "benchmark --missing-rate 0.2,0.5,0.8 retrains every method for each rate",
           (f"{SMALL}::test_benchmark_fits_each_model_once_and_scores_every_missing_rate",)),
    Mutant("calibration-blames-scores", "daily-cli", "gtex_models/models/calibration.py",
           "    if n_samples < MIN_CELL_SAMPLES:",
           "    if False:",
           "the calibration refusal blames the number of hidden values when the samples are too few",
           (f"{SMALL}::test_a_calibration_refusal_names_the_real_shortfall_the_level_and_a_fix",)),
    Mutant("wall-clock-budget", "daily-cli", "gtex_models/models/registry.py",
           '        "max_seconds": SAFETY_SECONDS,',
           '        "max_seconds": 900,',
           "deep models stop at a 900 s wall-clock budget again: results depend on the machine's load",
           (f"{SMALL}::test_deep_budgets_are_epochs_and_hitting_the_time_limit_is_reported",)),
    Mutant("panel-recommends-the-worst", "issue", "gtex_models/analysis/panels.py",
           '    return pd.DataFrame(scores).sort_values("valid_r2", ascending=False, kind="stable").reset_index(drop=True)',
           '    return pd.DataFrame(scores).sort_values("valid_r2", ascending=True, kind="stable").reset_index(drop=True)',
           "the model recommended for a panel is the one that scored worst on the validation donors",
           ("tests/test_panels.py::test_the_model_recommended_for_a_panel_is_the_validation_best_and_never_worse_"
            "than_the_group_mean",)),
    Mutant("stored-no-coverage-ignored", "daily-cli", "pages/benchmark.py",
           "    elif (why := stored_no_coverage(study_ref()[0], key)) is not None:",
           "    elif (why := None) is not None:",
           "the Benchmark page starts a background calibration that the build already found impossible",
           ("tests/test_app_precompute.py::test_a_refused_calibration_is_stored_with_its_reason_and_the_page_says_"
            "it_without_a_job",)),
    Mutant("stored-panel-ignored", "daily-cli", "pages/panels.py",
           '    if stored is not None and tuple(stored["columns"]) == columns:',
           '    if stored is not None and False:',
           "the Gene panels page designs and scores its default panel again instead of reading the study's",
           ("tests/test_app_precompute.py::test_the_panels_and_embeddings_pages_open_from_the_stored_results_"
            "without_loading_the_model",)),
    Mutant("stored-embeddings-ignored", "daily-cli", "pages/embeddings.py",
           "    matrix = stored_embeddings(current_study().path, key)",
           "    matrix = None",
           "the Tissue embeddings page loads the model (and torch) instead of reading the study's stored matrix",
           ("tests/test_app_precompute.py::test_the_panels_and_embeddings_pages_open_from_the_stored_results_"
            "without_loading_the_model",)),
    Mutant("precision-by-flags", "daily-cli", "gtex_models/models/training_settings.py",
           '    return precision_benchmark()["choice"]',
           '    return "bf16" if "avx512_bf16" in open("/proc/cpuinfo").read() else "fp32"',
           "precision auto follows the CPU flags, not a measurement",
           ("tests/test_precision.py::test_auto_takes_bf16_only_when_it_measured_clearly_faster",)),
    Mutant("third-party-warnings-shown", "daily-cli", "gtex_models/interfaces/cli/main.py",
           "        if Path(warning.filename).resolve().is_relative_to(PACKAGE_DIR):",
           "        if True:",
           "the CLI prints third-party warnings (umap's Tensorflow notice) with its own",
           (f"{POLISH}::test_third_party_warnings_are_not_shown",)),
    Mutant("option-without-help", "daily-cli", "gtex_models/interfaces/cli/main.py",
           '    build.add_argument("--description", default="", help="a few sentences on the cohort, shown in the app")',
           '    build.add_argument("--description", default="")',
           "study build --description has no help text",
           (f"{POLISH}::test_every_option_has_help_and_no_help_shows_rest_markup",)),
    Mutant("python-spelling-in-message", "daily-cli", "gtex_models/common/atomic.py",
           "Replace it with --overwrite, or choose another file name.",
           "Replace it with --overwrite (overwrite=True), or choose another file name.",
           "an error message speaks Python (overwrite=True) to CLI and app users",
           (f"{POLISH}::test_no_message_speaks_python_or_rest",)),
    # ------------------------------------------------------------------ R²'s reference (issue #26, item 5)
    Mutant("r2-reference-observed", "metric", "gtex_models/analysis/evaluation.py",
           "    return np.asarray(reference, dtype=np.float64), TRAINING",
           "    return None, OBSERVED",
           "R² goes back to the observed mean as its reference (it inflates with the missing rate)",
           (f"{EVALUATION}::test_a_fixed_predictor_scores_the_same_at_every_missing_rate",)),
    Mutant("reference-ignores-groups", "metric", "gtex_models/analysis/evaluation.py",
           "    return np.where(np.isnan(means), overall, means)",
           "    return np.tile(overall, (len(groups), 1))",
           "R²'s reference is the overall training mean, not the sample's group's (credits group differences)",
           (f"{EVALUATION}::test_the_reference_is_the_training_mean_of_the_samples_group",)),
    Mutant("across-rates-independent-masks", "metric", "gtex_models/analysis/evaluation.py",
           "        yield np.mod(u + r * rate, 1.0) >= rate",
           "        yield rng.random(shape) >= rate",
           "the masks of a rate are independent: at low rates a gene's R² rests on fewer distinct samples",
           (f"{EVALUATION}::test_a_fixed_predictor_scores_the_same_at_every_missing_rate",
            f"{EVALUATION}::test_coverage_masks_hide_every_value_equally_often")),
    Mutant("benchmark-reference-dropped", "metric", "gtex_models/analysis/benchmark.py",
           "    scores = _score(cohort_test.x, imputed, observed, reference_values(cohort_test, train))",
           "    scores = _score(cohort_test.x, imputed, observed, reference_values(cohort_test, None))",
           "the benchmark (inductive) scores against 0, not the training group means",
           (f"{BENCHMARK}::test_evaluate_imputer_record",)),
    Mutant("inplace-reference-dropped", "metric", "gtex_models/analysis/benchmark.py",
           "**_score(test.x, imputed[rows], data.observed[rows], reference_values(test, data.train_donors)),",
           "**_score(test.x, imputed[rows], data.observed[rows], reference_values(test, None)),",
           "the in-place benchmark scores against 0, not the training group means",
           (f"{BENCHMARK}::test_the_group_mean_imputer_scores_zero_in_every_table",)),
    Mutant("tables-reference-dropped", "metric", "gtex_models/analysis/benchmark.py",
           "    reference = reference_values(extended, train)",
           "    reference = reference_values(extended, None)",
           "the study's per-tissue and across-rates tables score against 0, not the training group means",
           (f"{BENCHMARK}::test_the_group_mean_imputer_scores_zero_in_every_table",)),
    Mutant("try-it-reference-dropped", "metric", "gtex_models/interfaces/try_it.py",
           '    reference = reference_values(trial, cohort.split("train"))',
           "    reference = reference_values(trial, None)",
           '"Try it" scores against 0, not the training group means',
           (f"{INFERENCE}::test_hide_and_impute_hides_the_values_from_the_model_and_scores_them",)),
    Mutant("other-cohort-own-reference-dropped", "metric", "gtex_models/analysis/other_cohort.py",
           '                                                                reference_values(test, modelled.split("train")))',
           "                                                                0.0)",
           "the second cohort's own test donors are scored against 0, not their groups' training means",
           ("tests/test_other_cohort.py::test_the_unshifted_test_donors_score_like_the_models_own",)),
    Mutant("softimpute-no-soft-threshold", "softimpute", "gtex_models/models/softimpute.py",
           "    return np.maximum(values - lam, 0.0)",
           "    return np.maximum(values, 0.0)",
           "softimpute keeps the singular values unshrunk (a rank-capped SVD, not the nuclear-norm solution)",
           (f"{SOFTIMPUTE}::test_als_on_a_complete_matrix_is_the_soft_thresholded_svd",
            f"{SOFTIMPUTE}::test_lambda_chosen_on_the_validation_donors_beats_a_fixed_bad_one")),
    Mutant("softimpute-never-iterates", "softimpute", "gtex_models/models/softimpute.py",
           "    for iteration in range(1, max_iterations + 1):",
           "    for iteration in range(1, 1):",
           "softImpute-ALS never iterates: the gaps stay filled with 0 (the first soft-thresholded SVD)",
           (f"{SOFTIMPUTE}::test_recovers_a_low_rank_matrix_from_half_its_entries",
            f"{SOFTIMPUTE}::test_fold_in_equals_the_in_place_completion_of_the_same_row")),
    Mutant("softimpute-als-no-penalty", "softimpute", "gtex_models/models/softimpute.py",
           "    ridge = lam * np.eye(a.shape[1])",
           "    ridge = 1e-9 * np.eye(a.shape[1])",
           "the ALS updates drop the λ/2 (‖A‖² + ‖B‖²) penalty (plain alternating least squares)",
           (f"{SOFTIMPUTE}::test_als_with_gaps_reaches_the_solution_of_the_soft_thresholded_svd_iteration",)),
    Mutant("softimpute-fold-in-ignores-observed", "softimpute", "gtex_models/models/softimpute.py",
           "        projections = (np.where(observed, residual, 0.0).astype(np.float32) @ basis).astype(np.float64)",
           "        projections = 0 * (np.where(observed, residual, 0.0).astype(np.float32) @ basis).astype(np.float64)",
           "softimpute imputes the expectation: a sample's observed values never reach the fold-in",
           (f"{SOFTIMPUTE}::test_beats_the_group_mean_on_a_low_rank_cohort_at_every_rate",)),
    Mutant("softimpute-first-lambda", "softimpute", "gtex_models/models/softimpute.py",
           "            best = min(best, (score, penalty))",
           "            best = best if best[0] < np.inf else (score, penalty)",
           "softimpute keeps the first λ of the path (0.9 λ_max) instead of the one the validation donors prefer",
           (f"{SOFTIMPUTE}::test_lambda_chosen_on_the_validation_donors_beats_a_fixed_bad_one",)),
    # ------------------------------------------------------------------ cross-tissue imputation per donor (#29)
    Mutant("donor-no-shared-effect", "cross-tissue", "gtex_models/models/shared_effects.py",
           "    shrink = shared / (1.0 + shared * evidence.weight)  # c",
           "    shrink = 0.0 * shared  # c",
           "the gene-specific donor effect e is dropped from the donor posterior",
           (f"{CROSS_TISSUE}::test_donor_posterior_is_the_dense_gaussian_conditional",
            f"{CROSS_TISSUE}::test_donor_oracle_matches_brute_force_enumeration")),
    Mutant("donor-oracle-marginal-states", "cross-tissue", "gtex_models/models/donor_oracle.py",
           "        log_joint.append(log_prior + posterior.log_evidence)",
           "        log_joint.append(log_prior)",
           "donor oracle weighs state combinations by their prior, not by the donor's values",
           (f"{CROSS_TISSUE}::test_donor_oracle_matches_brute_force_enumeration",)),
    Mutant("donor-gauss-blind", "cross-tissue", "gtex_models/models/donor_gauss.py",
           "            + posterior.shared_mean[donor_of])",
           "            + posterior.shared_mean[donor_of]) * 0 + expected + model.offsets(rows.group)",
           "donor-gauss predicts each group's expectation: the donor's samples never reach a prediction",
           (f"{CROSS_TISSUE}::test_the_donor_gaussian_recovers_most_of_the_oracles_gain",)),
    Mutant("donor-gauss-no-px", "cross-tissue", "gtex_models/models/donor_gauss.py",
           "            loadings = loadings @ np.linalg.cholesky(second.mean(axis=0))",
           "            loadings = loadings",
           "plain EM instead of parameter-expanded EM: the loadings stop at about half their scale",
           (f"{CROSS_TISSUE}::test_em_recovers_the_cross_tissue_covariance_of_data_drawn_from_the_model",)),
    Mutant("cross-tissue-fit-on-everyone", "cross-tissue", "gtex_models/analysis/cross_tissue.py",
           "        imputer.fit(data.fit, valid=data.valid, progress=lambda f, m: step(0.6 * f, m))",
           "        imputer.fit(cohort, valid=data.valid, progress=lambda f, m: step(0.6 * f, m))",
           "the methods are fitted on every donor, the test donors included",
           (f"{CROSS_TISSUE}::test_no_test_donor_reaches_a_fit",)),
    Mutant("cross-tissue-target-shown", "cross-tissue", "gtex_models/analysis/cross_tissue.py",
           "        hidden = hide_samples(cohort.subset_samples(rows), position)",
           "        hidden = cohort.subset_samples(rows)",
           "a target's own values reach the method that predicts it",
           (f"{CROSS_TISSUE}::test_a_target_is_hidden_before_it_is_predicted",)),
    Mutant("donors-page-target-shown", "cross-tissue", "pages/donors.py",
           "        return hide_samples(donor, rows[:1]), int(rows[0]), np.asarray(donor.x[rows[0]])",
           "        return donor, int(rows[0]), np.asarray(donor.x[rows[0]])",
           "the Donors page compares a collected tissue with a prediction that saw it",
           ("tests/test_app_donors.py::test_the_page_shows_every_method_and_a_hidden_tissue_against_its_measurement",)),
    Mutant("donor-table-targets-ignored", "cross-tissue", "gtex_models/interfaces/donor_upload.py",
           "    targets = table[~listed].reset_index(drop=True)",
           "    targets = table[~listed & (table['sample_id'] != '')].reset_index(drop=True)",
           "impute --donors drops the targets without a sample id (the documented way to name one)",
           ("tests/test_cli_cross_tissue.py::test_impute_donors_predicts_each_target_with_calibrated_intervals",)),
    # ------------------------------------------------------------------ issue #27: the app as a daily tool
    Mutant("address-ignored", "app", "pages/_shared.py",
           "    wanted = [st.session_state.pop(_PENDING_STUDY, None), _requested_study(ids),",
           "    wanted = [st.session_state.pop(_PENDING_STUDY, None), None,",
           "a link or a reload with ?study=NAME opens the default study instead",
           ("tests/test_app_address.py::test_a_link_opens_its_study_and_model",)),
    Mutant("address-not-written", "app", "pages/_address.py",
           "        st.query_params[parameter] = value",
           "        pass",
           "the selected study and model never reach the address: a reload loses them",
           ("tests/test_app_address.py::test_the_selection_is_written_to_the_address_and_a_new_session_keeps_it",)),
    Mutant("address-request-repeated", "app", "pages/_address.py",
           "    if value is None or value == st.session_state.get(_WRITTEN, {}).get(parameter):",
           "    if value is None:",
           "the address's study and model win at every run: the pickers can no longer change them",
           ("tests/test_app_address.py::test_a_link_is_answered_once",)),
    Mutant("address-unknown-silent", "app", "pages/_shared.py",
           '    address.note(f"This server has no study {wanted!r} (the address names it): showing "',
           '    (f"This server has no study {wanted!r} (the address names it): showing "',
           "an unknown study in the address falls back to the demo without a word",
           ("tests/test_app_address.py::test_an_unknown_study_in_the_address_says_so_and_opens_the_demo",)),
    Mutant("example-reads-the-session", "app", "pages/impute.py",
           "partial(example_csv, *study_ref()), file_name=",
           "lambda: example_csv(*study_ref()), file_name=",
           "the example download reads the session outside the page's run: the demo's file on an own study",
           ("tests/test_browser_daily.py::test_the_example_of_an_own_study_is_its_own_and_imputes",)),
    Mutant("words-always-tissue", "app", "gtex_models/interfaces/naming.py",
           '    return "tissue" if names and are_gtex_tissues(names) else "group"',
           '    return "tissue"',
           "a cohort's own groups are called tissues",
           ("tests/test_naming.py",)),
    Mutant("scale-always-tpm", "app", "gtex_models/interfaces/naming.py",
           "    if source in RNA_SEQ_SOURCES and not probes:",
           "    if True:",
           "a microarray study shows log2(TPM + 1) on its axes and Scale metric",
           ("tests/test_app_pages.py::test_impute_on_a_microarray_study_asks_for_the_group_only",)),
    Mutant("too-few-drawn-as-scored", "app", "gtex_models/interfaces/plots.py",
           "    small = too_few(test_counts or {}, [t for t in tissues if t != POOLED])",
           "    small = {}",
           "a group of 3 test samples is drawn as scored and pulls the R² axis below -1",
           ("tests/test_plots.py::test_a_group_with_too_few_test_samples_is_grey_labelled_and_kept_on_the_axis",)),
    Mutant("try-it-pooled-headline", "app", "pages/impute.py",
           '    cols[0].metric(MEAN_R2, f"{r2.mean():.3f}", help=(',
           '    cols[0].metric(MEAN_R2, f"{trial.r2_pooled:.3f}", help=(',
           "Try it's headline is the pooled R² again, not the README's per-gene R²",
           ("tests/test_app_pages.py::test_try_it_controls_change_the_samples_and_the_rate_scored",)),
    Mutant("coverage-not-stored", "app", "gtex_models/studies/precompute.py",
           "    write_coverage(study_dir, key, table)",
           "    pass",
           "a built study lacks its models' coverage: the model page computes it for minutes",
           ("tests/test_app_precompute.py::test_a_built_study_stores_each_models_coverage",)),
    Mutant("page-ignores-stored-coverage", "app", "pages/benchmark.py",
           "        table = stored_coverage(*study_ref(), key)",
           "        table = None",
           "the model page recomputes the coverage the study stores",
           ("tests/test_app_precompute.py::test_the_page_shows_stored_coverage_at_once",)),
    Mutant("cohort-root-escaped", "app", "gtex_models/interfaces/deployment.py",
           "        if not resolved.is_relative_to(self.cohort_root):",
           "        if False:",
           "a visitor reads any cohort folder of the server despite GTEX_COHORT_ROOT",
           ("tests/test_deployment.py::test_no_path_leads_out_of_the_root",)),
    Mutant("cohort-root-links-followed-out", "app", "gtex_models/interfaces/deployment.py",
           "        resolved = (self.cohort_root / path).resolve()",
           "        resolved = Path(os.path.normpath(self.cohort_root / path))",
           "a symbolic link inside GTEX_COHORT_ROOT leads out of it",
           ("tests/test_deployment.py::test_no_path_leads_out_of_the_root",)),
    Mutant("builds-uncapped", "app", "pages/new_study.py",
           "        busy = len(running_builds()) >= settings.max_builds",
           "        busy = False",
           "a shared server starts builds beyond GTEX_MAX_BUILDS",
           ("tests/test_app_deployment.py::test_no_build_starts_beyond_the_cap_on_concurrent_builds",)),
    Mutant("read-only-ignored", "app", "app.py",
           "if not settings.read_only:  # a read-only server builds no study",
           "if True:",
           "a read-only server still offers the New study page",
           ("tests/test_app_deployment.py::test_a_read_only_server_has_no_new_study_page",)),
)


def _repository_files(root: Path) -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            check=True, capture_output=True).stdout.decode()
    return [name for name in listed.split("\0") if name and (root / name).is_file()]


def copy_repository(root: Path, destination: Path) -> None:
    """Copy the files git tracks or would track (not ignored) to ``destination``."""
    for name in _repository_files(root):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)


def check_applies(mutant: Mutant, root: Path) -> str | None:
    """None if the mutant applies (its snippet occurs exactly once), else why not."""
    path = root / mutant.file
    if not path.is_file():
        return f"{mutant.file} does not exist"
    count = path.read_text().count(mutant.original)
    return None if count == 1 else f"its snippet occurs {count} times in {mutant.file}"


def run_tests(copy: Path, tests: tuple[str, ...], timeout: float) -> tuple[str, str, float]:
    """Run ``tests`` in ``copy``; returns (outcome, first failing test or '', seconds)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=copy, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)  # no terminal: a background job touching it would be stopped
    except subprocess.TimeoutExpired:
        return "timeout", f"no result after {timeout:.0f} s", time.perf_counter() - start
    seconds = time.perf_counter() - start
    if done.returncode == 0:
        return "survived", "", seconds
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", done.stdout, flags=re.MULTILINE)
    if done.returncode in (1, 2) and failed:
        return "killed", failed[0], seconds
    tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
    return "error", f"pytest exit {done.returncode}: {' / '.join(tail)}", seconds


def _machine(start_load: float) -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, 1-min load {start_load:.1f} at start, {os.getloadavg()[0]:.1f} at end"


def _commit(root: Path) -> str:
    described = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True, text=True)
    return described.stdout.strip() or "unknown"


def write_report(results: list[tuple[Mutant, str, str, float]], seconds: float, start_load: float, path: Path) -> None:
    survivors = [m.name for m, outcome, _, _ in results if outcome != "killed"]
    lines = [
        "# Mutation check",
        "",
        f"<!-- {datetime.now():%Y-%m-%d %H:%M}; commit {_commit(ROOT)}; {_machine(start_load)}; "
        f"command: python scripts/mutation_check.py -->",
        "",
        f"{len(results) - len(survivors)} of {len(results)} mutants killed in {seconds / 60:.1f} min"
        + (f"; not killed: {', '.join(survivors)}." if survivors else "; none survived."),
        "",
    ]
    titles = {"issue": "Mutants of issue #18", "generalisation": "A different set (generalisation)",
              "provenance": "Provenance and exact values (issue #28)"}
    for group in dict.fromkeys(mutant.group for mutant, _, _, _ in results):
        title = titles.get(group, group)
        lines += [f"## {title}", "", "| Mutant | File | What it breaks | Result | Caught by | Seconds |",
                  "|---|---|---|---|---|---|"]
        for mutant, outcome, detail, took in results:
            if mutant.group == group:
                lines.append(f"| {mutant.name} | {mutant.file} | {mutant.description} | {outcome} | "
                             f"{detail.replace('|', '/') or '-'} | {took:.0f} |")
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and whether each still applies")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this mutant (repeatable)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, metavar="SECONDS",
                        help=f"limit of one mutant's test run (default {TIMEOUT_S}); a run past it is a "
                             "'timeout', not a kill")
    args = parser.parse_args(argv)

    names = [m.name for m in MUTANTS]
    unknown = sorted(set(args.only or []) - set(names))
    if unknown:
        print(f"error: unknown mutant(s) {', '.join(unknown)}; see --list", file=sys.stderr)
        return 2
    if args.list:
        for mutant in MUTANTS:
            problem = check_applies(mutant, ROOT)
            print(f"{mutant.name:30s} {mutant.group:15s} {mutant.description}"
                  + (f"  [STALE: {problem}]" if problem else ""))
        return 0
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    stale = {m.name: problem for m in chosen if (problem := check_applies(m, ROOT))}
    if stale:
        for name, problem in stale.items():
            print(f"error: mutant {name} no longer applies: {problem}; update it in {Path(__file__).name}",
                  file=sys.stderr)
        return 2

    start, start_load = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mutation-check-") as directory:
        copy = Path(directory)
        copy_repository(ROOT, copy)
        tests = tuple(dict.fromkeys(test for m in chosen for test in m.tests))
        print(f"unmutated: running {len(tests)} test selection(s) ...", flush=True)
        outcome, detail, took = run_tests(copy, tests, args.timeout * len(chosen))  # as long as every mutant
        if outcome != "survived":
            print(f"error: without any mutant, the tests do not pass ({detail}); fix them first", file=sys.stderr)
            return 2
        print(f"unmutated: all pass ({took:.0f} s)", flush=True)
        results = []
        for mutant in chosen:
            path = copy / mutant.file
            original = path.read_text()
            path.write_text(original.replace(mutant.original, mutant.mutated))
            try:
                outcome, detail, took = run_tests(copy, mutant.tests, args.timeout)
            finally:
                path.write_text(original)
            results.append((mutant, outcome, detail, took))
            print(f"{mutant.name:30s} {outcome:8s} {took:5.0f} s  {detail}", flush=True)
    seconds = time.perf_counter() - start
    survivors = [m.name for m, outcome, _, _ in results if outcome != "killed"]
    print(f"{len(results) - len(survivors)}/{len(results)} killed in {seconds / 60:.1f} min"
          + (f"; not killed: {', '.join(survivors)}" if survivors else ""))
    if not args.only:
        write_report(results, seconds, start_load, RESULTS)
        print(f"written: {RESULTS.relative_to(ROOT)}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
