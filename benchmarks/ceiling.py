"""How far the demo's deep models are from what can be learnt from its training donors, and why in place scores lower.

1. **A learnt linear-Gaussian imputer** (a diagnostic, not one of the project's methods): each tissue's mean
   over the training donors plus one within-tissue gene-gene covariance pooled over tissues, shrunk towards
   its diagonal (``--shrinkages``, the one with the best R² on the masked validation donors is reported);
   a hidden value is its Gaussian conditional mean given the sample's observed values. It is what a linear
   model can learn from these donors; the exact-parameter linear predictor (0.664) and the oracle (0.725)
   know the simulation's true parameters.
2. **In place against inductive at equal epochs** (``--epochs N``, 0 skips it): PMI with its inductive
   config; PMI in place with its in-place config (the protocol: training donors' values half hidden too);
   and in place with complete training donors (only the test donors' values hidden), the inductive config.
   With ``--widths 2048,4096`` it trains instead inductive PMIs with one hidden layer of each width.
3. **More donors** (``--donors 600,1200``): cohorts simulated with the demo's parameters (same seed and genes,
   more donors), the linear-Gaussian imputer (and with ``--epochs``, the inductive PMI) against the oracle:
   how much of the gap to the oracle is the demo's 180 training donors.

Both on the demo cohort with build-demo's protocol (test values hidden at 50 %, seed 0)::

    python benchmarks/ceiling.py                       # the linear-Gaussian imputer, 4 shrinkages (~5 min)
    python benchmarks/ceiling.py --shrinkages 0.5 --epochs 132    # + three PMI trainings (~15 min)
    python benchmarks/ceiling.py --shrinkages "" --epochs 150 --widths 2048 --out ceiling_width
    python benchmarks/ceiling.py --shrinkages 0.3,0.5 --donors 300,600,1200 [--epochs 60] --out ceiling_donors
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import replace

import numpy as np

try:
    from benchmarks._common import load_average, markdown_table, write_results
except ImportError:
    from _common import load_average, markdown_table, write_results


class LinearGaussian:
    """Tissue means and a pooled within-tissue covariance (shrunk towards its diagonal) learnt from complete
    samples; imputes each sample's hidden values by their Gaussian conditional mean."""

    method = "linear-gaussian"

    def __init__(self, shrinkage: float) -> None:
        self.shrinkage = shrinkage

    def fit(self, train, valid=None, progress=None) -> "LinearGaussian":
        x = np.asarray(train.x, dtype=np.float64)
        tissues = train.samples["tissue"].to_numpy(dtype=object)
        self.means = {t: x[tissues == t].mean(axis=0) for t in set(tissues)}
        residual = x - np.stack([self.means[t] for t in tissues])
        covariance = residual.T @ residual / max(len(x) - len(self.means), 1)
        diagonal = np.diag(np.diag(covariance)) + 1e-6 * np.eye(len(covariance))
        self.covariance = (1 - self.shrinkage) * covariance + self.shrinkage * diagonal
        return self

    def impute(self, cohort) -> np.ndarray:
        x = np.asarray(cohort.x, dtype=np.float64)
        out = x.copy()
        for i, tissue in enumerate(cohort.samples["tissue"].to_numpy(dtype=object)):
            mean, known = self.means[tissue], ~np.isnan(x[i])
            hidden = ~known
            if hidden.any():
                weights = np.linalg.solve(self.covariance[np.ix_(known, known)], x[i, known] - mean[known])
                out[i, hidden] = mean[hidden] + self.covariance[np.ix_(hidden, known)] @ weights
        return out.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shrinkages", default="0.1,0.3,0.5,0.7")
    parser.add_argument("--epochs", type=int, default=0, help="also train the three PMIs for this many epochs")
    parser.add_argument("--widths", default="", help="with --epochs: inductive PMIs of these hidden widths instead")
    parser.add_argument("--donors", default="", help="cohorts of these many donors simulated like the demo")
    parser.add_argument("--out", default="ceiling")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from gtex_models.analysis.benchmark import scenario_data
    from gtex_models.common.paths import CONFIG_DIR
    from gtex_models.data.patterns import mask_cohort
    from gtex_models.data.simulate import simulate_cohort
    from gtex_models.models.registry import make_imputer
    from gtex_models.studies.build import protocol_cohort
    from gtex_models.studies.demo import load_demo_cohort
    from gtex_models.studies.experiment import Experiment

    shrinkages = [float(s) for s in args.shrinkages.split(",") if s]

    def experiment(config: str, scenario: str, width: int | None = None) -> Experiment:
        base = Experiment.from_yaml(CONFIG_DIR / "demo" / config)
        training = {**base.training, "max_epochs": args.epochs, "max_seconds": None}
        model = base.model if width is None else {**base.model, "hidden_sizes": [width]}
        return Experiment(base.method, scenario, None, 0.5, model, training)

    if args.donors:
        rows = []
        for donors in (int(d) for d in args.donors.split(",")):
            cohort = simulate_cohort(n_donors=donors, n_genes=2000, seed=0)
            inductive = scenario_data(protocol_cohort(cohort), "inductive", 0.5, 0)
            label = f"{donors} donors ({inductive.fit.n_donors} training, {inductive.fit.n_samples:,} samples)"
            runs = [("oracle", make_imputer("oracle"))]
            if args.epochs:
                runs.append((f"PMI, inductive config, {args.epochs} epochs",
                             experiment("pmi_inductive_all.yaml", "inductive").make_imputer()))
            rows += [{**row, "run": f"{label}: {row['run']}"} for row in linear_rows(inductive, shrinkages)]
            for name, imputer in runs:
                rows.append({**fitted_row(name, imputer, inductive), "run": f"{label}: {name}"})
                print(rows[-1], flush=True)
        finish(rows, args.out)
        return

    protocol = protocol_cohort(load_demo_cohort())
    inductive = scenario_data(protocol, "inductive", 0.5, 0)
    rows = linear_rows(inductive, shrinkages)

    if args.epochs:
        widths = [int(w) for w in args.widths.split(",") if w]
        if widths:
            runs = [(f"PMI, inductive config, one hidden layer of {width}",
                     experiment("pmi_inductive_all.yaml", "inductive", width), inductive) for width in widths]
        else:
            in_place = scenario_data(protocol, "inplace", 0.5, 0)
            observed = in_place.observed.copy()
            observed[~in_place.is_test] = True
            complete_train = replace(in_place, fit=mask_cohort(in_place.test, observed), observed=observed)
            runs = [("PMI, inductive config", experiment("pmi_inductive_all.yaml", "inductive"), inductive),
                    ("PMI in place (protocol: training donors half hidden too)",
                     experiment("pmi_inplace_all.yaml", "inplace"), in_place),
                    ("PMI in place, training donors complete, inductive config",
                     experiment("pmi_inductive_all.yaml", "inplace"), complete_train)]
        for name, run, data in runs:
            rows.append(fitted_row(f"{name}, {args.epochs} epochs", run.make_imputer(), data))
            print(rows[-1], flush=True)
    finish(rows, args.out)


def linear_rows(data, shrinkages) -> list[dict]:
    """The linear-Gaussian imputer at each shrinkage: R² on the masked validation and test donors."""
    from gtex_models.analysis.benchmark import score_fitted
    from gtex_models.analysis.evaluation import r2_per_gene
    from gtex_models.data.patterns import mask_cohort

    valid_observed = np.random.default_rng(1).random(data.valid.x.shape) >= 0.5
    rows = []
    for shrinkage in shrinkages:
        start = time.perf_counter()
        model = LinearGaussian(shrinkage).fit(data.fit)
        valid_imputed = model.impute(mask_cohort(data.valid, valid_observed))
        valid_r2 = float(np.nanmean(r2_per_gene(data.valid.x, valid_imputed, valid_observed)))
        rows.append({"run": f"linear-Gaussian, shrinkage {shrinkage}", "scenario": "inductive", "valid_r2": valid_r2,
                     "r2_mean": score_fitted(model, data)["r2_mean"], "seconds": time.perf_counter() - start})
        print(rows[-1], flush=True)
    return rows


def fitted_row(name: str, imputer, data) -> dict:
    """Fit ``imputer`` on the scenario's training data and score it on its test donors."""
    from gtex_models.analysis.benchmark import score_fitted

    start = time.perf_counter()
    imputer.fit(data.fit, valid=data.valid)
    return {"run": name, "scenario": data.scenario, "r2_mean": score_fitted(imputer, data)["r2_mean"],
            "seconds": time.perf_counter() - start}


def finish(rows: list[dict], out: str) -> None:
    columns = [("run", "Run", ""), ("scenario", "Scenario", ""), ("valid_r2", "Validation R²", "{:.3f}"),
               ("r2_mean", "Test R² mean", "{:.3f}"), ("seconds", "Seconds", "{:.0f}")]
    table = markdown_table(rows, columns)
    print(table)
    write_results(out, {"rows": rows, "load_average": load_average()}, table)


if __name__ == "__main__":
    main()
