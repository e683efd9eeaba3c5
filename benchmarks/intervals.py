"""Calibrated intervals on the demo study: coverage and width per method, at several test missing rates.

Each method is calibrated once (:func:`gtex_models.models.calibration.calibrate_held_out`: the demo's validation
donors, missing rates spread over 0.05-0.95), then scored on the test donors at test missing rates
0.1 / 0.3 / 0.5 / 0.7 / 0.9 (a new MCAR mask each): pooled coverage of 90 % intervals, the lowest tissue's,
and the median width (log2(TPM + 1) units) against the narrowest **constant per-gene width with the same
coverage** (each gene's quantile of |error| at the achieved coverage, fitted on the test values themselves:
a lower bound for any per-gene constant width). With the simulation's oracle, its exact Gaussian interval
(the conditional SD of every hidden value) is the narrowest interval with the right coverage.

Models: the demo study's inductive checkpoints (``data/demo``, e.g. PMI) are scored as above; an in-place
checkpoint (GAIN-GTEx) saw the test donors' observed values during training, so it is calibrated and scored
the in-place way, at its protocol's mask only (``--inplace-rate``, 0.5; calibrated on the pool's training
donors, :func:`gtex_models.models.calibration.calibrate_in_place`); baselines (``--baselines``) are fitted on the training
donors here. KNN, MICE and MissForest impute slowly (minutes per pass on 2 cores): ``--test-samples N`` scores
a random subset of the test samples.

    python benchmarks/intervals.py [--baselines mean,knn,mice] [--test-samples 600] [--level 0.9]
    python benchmarks/intervals.py --models "" --baselines knn,mice,missforest --test-samples 600 --out intervals_baselines
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from _common import markdown_table, write_results

RATES = (0.1, 0.3, 0.5, 0.7, 0.9)


def constant_width(truth: np.ndarray, imputed: np.ndarray, observed: np.ndarray, target: float,
                   log_std: np.ndarray, tissues) -> tuple[float, float]:
    """``ŷ ± c_gene``, each gene's ``c`` its ``target`` quantile of |error| on these values: median width (log2)
    and the lowest tissue's coverage."""
    from gtex_models.models.calibration import interval_scores

    hidden = ~observed
    error = np.where(hidden, np.abs(truth - imputed), np.nan)
    half = np.nanquantile(error, target, axis=0)[None, :]
    scores = interval_scores(truth, imputed - half, imputed + half, observed, tissues, log_std)
    return scores["width_median"], scores["coverage_min_group"]


def score(name: str, imputer, calibration, test, observed, level: float, imputed=None, masked=None,
          oracle=None) -> dict[str, Any]:
    """One row: coverage, lowest group's, widths (calibrated, constant per gene, the oracle's exact)."""
    from gtex_models.analysis.evaluation import r2_per_gene
    from gtex_models.data.patterns import mask_cohort
    from gtex_models.models.calibration import interval_scores

    masked = mask_cohort(test, observed) if masked is None else masked
    start = time.perf_counter()
    imputed = imputer.impute(masked) if imputed is None else imputed
    seconds = time.perf_counter() - start
    lower, upper = calibration.interval(imputer, masked, imputed, level)
    scores = interval_scores(test.x, lower, upper, observed, test.samples["tissue"], test.transform.std)
    row = {"method": name, "missing_rate": float(1 - observed.mean()), "coverage": scores["coverage"],
           "coverage_min_group": scores["coverage_min_group"],
           "worst_group": min(scores["coverage_per_group"], key=scores["coverage_per_group"].get),
           "width_median": scores["width_median"],
           "r2_mean": float(np.nanmean(r2_per_gene(test.x, imputed, observed))), "impute_seconds": seconds}
    row["constant_width"], row["constant_min_group"] = constant_width(
        test.x, imputed, observed, scores["coverage"], test.transform.std, test.samples["tissue"])
    if oracle is not None:
        row.update(oracle_widths(oracle, masked, observed, test, level))
    return row


def oracle_widths(oracle, masked, observed, test, level: float) -> dict[str, Any]:
    """The oracle's exact Gaussian interval ``E ± z · SD`` (conditional moments): median width and coverage."""
    from scipy.stats import norm

    from gtex_models.models.calibration import gaussian_width_median

    moments = getattr(oracle, "conditional_moments", None)
    if moments is None:  # an oracle without exact variances (an older simulator)
        return {}
    mean, variance = moments(masked)
    sd = np.sqrt(np.maximum(variance, 0.0))
    hidden = ~observed
    inside = np.abs(test.x - mean) <= norm.ppf(0.5 + level / 2) * sd
    return {"oracle_width": gaussian_width_median(sd, observed, level, test.transform.std),
            "oracle_coverage": float(inside[hidden].mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default=None, help="study folder (default: the demo, data/demo)")
    parser.add_argument("--models", default=None, help="study model keys (default: the all-genes ones; '' for none)")
    parser.add_argument("--baselines", default="mean,knn,mice", help="comma-separated baselines fitted here")
    parser.add_argument("--test-samples", type=int, default=0, help="score this many random test samples (0: all)")
    parser.add_argument("--level", type=float, default=0.9)
    parser.add_argument("--inplace-rate", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="intervals", help="name of the result files under benchmarks/results/")
    args = parser.parse_args()

    from gtex_models.analysis.benchmark import scenario_data
    from gtex_models.models.checkpoints import load_checkpoint
    from gtex_models.models.model_space import ModelSpace, cohort_for_model
    from gtex_models.models.registry import make_imputer
    from gtex_models.studies.demo import CACHE_DIR, DEMO_DIR
    from gtex_models.studies.experiment import calibrate_checkpoint
    from gtex_models.studies.study import Study

    study = Study.open(args.study or DEMO_DIR)
    cohort = study.cohort(CACHE_DIR)
    print(f"study {study.title!r} ({study.path}), cohort {cohort.summary()}, created {study.manifest.get('created')}")
    keys = ([k.strip() for k in args.models.split(",") if k.strip()] if args.models is not None
            else [k for k, entry in study.models.items() if not entry.pathway])
    oracle = None
    if cohort.meta.get("source") == "simulated":
        oracle = make_imputer("oracle").fit(cohort.split("train"))
    rng = np.random.default_rng([args.seed, 7])
    test = cohort.split("test")
    test = test.subset_samples(test.samples["tissue"].isin(cohort.split("train").tissues).to_numpy())
    if args.test_samples and args.test_samples < test.n_samples:
        test = test.subset_samples(np.sort(rng.choice(test.n_samples, args.test_samples, replace=False)))
    masks = {rate: np.random.default_rng([args.seed, int(rate * 100)]).random(test.x.shape) >= rate for rate in RATES}

    runs: list[tuple[str, Any, Any, dict[str, Any]]] = []  # name, imputer, space, checkpoint metadata
    for key in keys:
        imputer, metadata = load_checkpoint(study.checkpoint_path(key))
        runs.append((key, imputer, ModelSpace.from_metadata(metadata), metadata))
    for name in [b.strip() for b in args.baselines.split(",") if b.strip()]:
        runs.append((name, make_imputer(name).fit(cohort.split("train")), None, {"scenario": "inductive"}))

    rows, calibrations = [], {}
    for name, imputer, space, metadata in runs:
        start = time.perf_counter()
        model_cohort = cohort if space is None else cohort_for_model(cohort, space)
        calibration = calibrate_checkpoint(imputer, metadata, model_cohort, args.seed)
        calibrations[name] = {**calibration.info, "seconds": time.perf_counter() - start,
                              "probe_prior": calibration.to_state()[1]["probe_prior"]}
        print(f"{name}: calibrated ({calibration.info['scenario']}) in {calibrations[name]['seconds']:.0f} s "
              f"({calibration.info['n_scores']:,} scores, {calibration.info['n_own_cells']}/"
              f"{calibration.info['n_cells']} cells with their own quantiles)", flush=True)
        if metadata.get("scenario") == "inplace":  # the protocol's pool and mask: the model was fitted on them
            data = scenario_data(model_cohort, "inplace", args.inplace_rate, args.seed)
            scored = np.flatnonzero(data.is_test)
            imputed = imputer.impute(data.fit)[scored]
            row = score(name, imputer, calibration, data.test.subset_samples(scored), data.observed[scored],
                        args.level, imputed, data.fit.subset_samples(scored), oracle)
            rows.append({**row, "scenario": "inplace"})
            print(_line(rows[-1]), flush=True)
            continue
        model_test = test if space is None else cohort_for_model(test, space)
        for rate in RATES:
            rows.append({**score(name, imputer, calibration, model_test, masks[rate], args.level, oracle=oracle),
                         "scenario": "inductive"})
            print(_line(rows[-1]), flush=True)

    columns = [("method", "Method", ""), ("scenario", "Scenario", ""), ("missing_rate", "Test missing rate", "{:.2f}"),
               ("r2_mean", "R² mean", "{:.3f}"), ("coverage", "Coverage", "{:.3f}"),
               ("coverage_min_group", "Lowest tissue", "{:.3f}"), ("worst_group", "(which)", ""),
               ("width_median", "Median width", "{:.2f}"), ("constant_width", "Constant per-gene width", "{:.2f}"),
               ("constant_min_group", "Constant: lowest tissue", "{:.3f}"),
               ("oracle_width", "Oracle width", "{:.2f}"), ("oracle_coverage", "Oracle coverage", "{:.3f}")]
    table = markdown_table(rows, columns)
    print(table)
    write_results(args.out, {"level": args.level, "test_samples": test.n_samples, "study": str(study.path),
                                "study_created": study.manifest.get("created"), "calibrations": calibrations,
                                "rows": rows}, table)


def _line(row: dict[str, Any]) -> str:
    oracle = f", oracle width {row['oracle_width']:.2f}" if "oracle_width" in row else ""
    return (f"  {row['method']} ({row['scenario']}) at {row['missing_rate']:.2f} missing: coverage {row['coverage']:.3f} "
            f"(lowest tissue {row['coverage_min_group']:.3f}, {row['worst_group']}), median width "
            f"{row['width_median']:.2f} vs constant per-gene {row['constant_width']:.2f} (lowest tissue "
            f"{row['constant_min_group']:.3f}){oracle}; "
            f"R² {row['r2_mean']:.3f}")


if __name__ == "__main__":
    main()
