"""R² of the genes outside a panel against panel size, per method, for designed, most-variable and random panels.

On the demo study (simulated, 2,000 genes): the panel is designed on the training donors
(:func:`gtex_models.analysis.panels.design_panel`, greedy; one run to the largest size gives every smaller panel as
its prefix), the most variable genes and random panels (``--random-seeds`` draws, averaged) are its
competitors. Each method imputes the genes outside the panel on the test donors (``--test-samples`` of them,
drawn once) and is scored by :func:`gtex_models.analysis.panels.panel_r2` (mean per-gene R², pooled residuals,
reference: the tissue's training mean). Methods: the demo's PMI (trained with MCAR masks), the
per-tissue mean, KNN, ``gauss`` (the Gaussian conditional; baselines are fitted on the training donors with
the validation donors choosing their settings), the oracle (exact conditional mean, the ceiling) and
``exact-linear`` (the best linear predictor under the simulation's true parameters: the ceiling of any
linear method, :func:`gtex_models.models.oracle.linear_conditional_mean`). For the methods of ``--model-scored``
(default: the neural ones, whose imputations take well under a second) the model-scored panel
(:func:`gtex_models.analysis.panels.model_scored_panel`: candidates scored with the method itself on 300 validation
donors, then a local search) is added; KNN and the oracle take 20-40 s per imputation of the 300 samples, too
slow for its 45 scorings per size. ``--panel-pmi K`` adds a PMI trained
with the designed panel of size K as its training pattern, ``--wide-gain S`` an inductive GAIN-GTEx trained
S seconds with masks hiding 30-100 % of each sample (the demo's GAIN-GTEx is in place and saw 10-50 %).

Examples::

    python benchmarks/panels.py                          # sizes 50 ... 1000, PMI, mean, KNN, oracle
    python benchmarks/panels.py --sizes 50,200 --methods pmi,oracle --test-samples 300
    python benchmarks/panels.py --sizes 50,100,200,500 --methods pmi,gain_all,mean,knn,oracle --test-samples 300
    python benchmarks/panels.py --sizes 50,200 --methods gauss_all,exact-linear,oracle --model-scored "" \
        --random-seeds 5 --test-samples 300 --out panels_ceiling
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

try:
    from benchmarks._common import ROOT, load_average, markdown_table, write_results
except ImportError:
    from _common import ROOT, load_average, markdown_table, write_results


class ExactLinear:
    """The best linear predictor of a simulated cohort's values under its true parameters (a ceiling, not a method)."""

    method = "exact-linear"

    def __init__(self, cohort) -> None:
        from gtex_models.models.oracle import OracleImputer

        self.params = OracleImputer().fit(cohort).params

    def impute(self, cohort) -> np.ndarray:
        from gtex_models.models.oracle import linear_conditional_mean

        observed = ~np.isnan(cohort.x)
        std, centre = cohort.transform.std.astype(np.float64), cohort.transform.mean.astype(np.float64)
        tissue_index = pd.Index(self.params.tissue_names).get_indexer(cohort.samples["tissue"])
        gene_index = pd.Index(self.params.genes["ensembl_gene_id"]).get_indexer(cohort.genes["ensembl_gene_id"])
        log_expr = np.where(observed, np.nan_to_num(cohort.x) * std + centre, 0.0)
        linear = linear_conditional_mean(self.params, tissue_index, cohort.samples["sex"].to_numpy(),
                                         cohort.samples["age"].to_numpy(), log_expr, observed, gene_index)
        return ((linear - centre) / std).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default=str(ROOT / "data" / "demo"))
    parser.add_argument("--model", default="pmi_all", help="the study's model scored as 'pmi'")
    parser.add_argument("--sizes", default="50,100,200,500,1000")
    parser.add_argument("--methods", default="pmi,mean,knn,oracle",
                        help="'pmi' (the --model), baselines, 'oracle', or other model keys of the study (gain_all)")
    parser.add_argument("--model-scored", default="pmi,gain_all",
                        help="methods that also get a model-scored panel of each size ('' for none)")
    parser.add_argument("--random-seeds", type=int, default=2)
    parser.add_argument("--test-samples", type=int, default=600)
    parser.add_argument("--panel-pmi", type=int, default=None, help="also train a PMI on the designed panel of this size")
    parser.add_argument("--panel-pmi-seconds", type=float, default=300)
    parser.add_argument("--wide-gain", type=float, default=None, metavar="SECONDS",
                        help="also train an inductive GAIN-GTEx whose training masks hide 30-100 %% of each sample "
                             "(as the demo's PMI) for this many seconds, scored as 'gain-wide'")
    parser.add_argument("--out", default="panels")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from gtex_models.analysis.benchmark import known_groups_only
    from gtex_models.analysis.panels import (
        design_panel,
        model_scored_panel,
        most_variable_panel,
        panel_r2,
        random_panel,
    )
    from gtex_models.models.model_space import ModelSpace, cohort_for_model
    from gtex_models.models.registry import default_settings, make_imputer
    from gtex_models.studies.study import Study

    study = Study.open(args.study)
    pmi, metadata = study.load_model(args.model)
    cohort = cohort_for_model(study.cohort(), ModelSpace.from_metadata(metadata))
    train = cohort.split("train")
    test = known_groups_only(cohort.split("test"), train.tissues)
    rows_kept = np.sort(np.random.default_rng(0).choice(test.n_samples, min(args.test_samples, test.n_samples),
                                                        replace=False))
    test = test.subset_samples(rows_kept)
    valid = known_groups_only(cohort.split("valid"), train.tissues)
    sizes = [int(k) for k in args.sizes.split(",")]
    start = time.perf_counter()
    designed = design_panel(train, max(sizes))
    design_seconds = time.perf_counter() - start
    print(f"designed panel of {max(sizes)} genes in {design_seconds:.1f} s; {test.n_samples} test samples")

    imputers = {}
    for method in args.methods.split(","):
        if method in study.models:
            imputers[method] = study.load_model(method)[0]
        elif method == "exact-linear":
            imputers[method] = ExactLinear(cohort)
        else:
            imputers[method] = pmi if method == "pmi" else make_imputer(method).fit(train, valid)
    if args.panel_pmi:
        settings = {**default_settings("pmi", cohort.n_samples, cohort.n_genes), "max_seconds": args.panel_pmi_seconds}
        from gtex_models.data.patterns import Pattern

        pattern = Pattern("panel", panel=tuple(int(j) for j in designed[: args.panel_pmi]))
        start = time.perf_counter()
        imputers[f"pmi-panel{args.panel_pmi}"] = make_imputer("pmi", **settings, pattern=pattern.to_dict()).fit(
            train, cohort.split("valid"))
        print(f"panel-trained PMI fitted in {time.perf_counter() - start:.0f} s")
    if args.wide_gain:
        settings = {**default_settings("gain", cohort.n_samples, cohort.n_genes), "max_seconds": args.wide_gain,
                    "m_low": 0.3, "m_high": 1.0}
        start = time.perf_counter()
        imputers["gain-wide"] = make_imputer("gain", **settings).fit(train, cohort.split("valid"))
        print(f"GAIN-GTEx with 30-100 % training masks fitted in {time.perf_counter() - start:.0f} s")

    rows = []
    for k in sizes:
        panels = {"designed": [designed[:k]], "most-variable": [most_variable_panel(train, k)],
                  "random": [random_panel(cohort.n_genes, k, seed) for seed in range(args.random_seeds)]}
        for method, imputer in imputers.items():
            if method.startswith("pmi-panel") and k != args.panel_pmi:
                continue
            row = {"method": method, "k": k}
            for name, draws in panels.items():
                tick = time.perf_counter()
                row[name] = float(np.mean([panel_r2(imputer, test, panel, train).r2_mean for panel in draws]))
                row[f"{name}_seconds"] = time.perf_counter() - tick
            if method in args.model_scored.split(","):
                tick = time.perf_counter()
                panel = model_scored_panel(imputer, train, valid, k, linear=designed)
                row["model-scored"] = panel_r2(imputer, test, panel, train).r2_mean
                row["model-scored_seconds"] = time.perf_counter() - tick
                row["model_scored_minus_random"] = row["model-scored"] - row["random"]
            row["designed_minus_random"] = row["designed"] - row["random"]
            rows.append(row)
            print(row, flush=True)
    columns = [("method", "Method", ""), ("k", "Panel size", "{}"), ("designed", "Designed", "{:.3f}"),
               ("most-variable", "Most variable", "{:.3f}"), ("random", "Random", "{:.3f}"),
               ("designed_minus_random", "Designed − random", "{:+.3f}"), ("model-scored", "Model-scored", "{:.3f}"),
               ("model_scored_minus_random", "Model-scored − random", "{:+.3f}")]
    table = markdown_table(rows, columns)
    print(table)
    write_results(args.out, {"rows": rows, "design_seconds": design_seconds, "test_samples": test.n_samples,
                             "load_average": load_average(), "study": args.study, "model": args.model}, table)


if __name__ == "__main__":
    main()
