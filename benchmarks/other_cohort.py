"""R² against missing rate on a shifted copy of the demo's test donors, for each scale harmonisation (Fig. 4).

The demo's test donors of three tissues (by default those of the paper's Fig. 4: Whole Blood, Breast and
Lung, the healthy tissues of TCGA LAML, BRCA and LUAD) are passed through
:func:`gtex_models.analysis.other_cohort.shift_cohort` (per-gene offset SD 0.5 and log-scale SD 0.2 in log2(TPM + 1),
extra noise SD 0.3, the p53 pathway's genes up by 1, 10 % of the genes absent) — a platform shift and a
cancer-like program change of the same donors — and scored by the demo's models beside the unshifted
test donors (:func:`gtex_models.analysis.other_cohort.compare_cohorts`; mean per-gene R² over the three tissues'
genes, repeated masks). The oracle is scored on both: on the shifted cohort it reads the platform
(exact, :class:`gtex_models.models.oracle.Platform`), so it is the ceiling there.

Example::

    python benchmarks/other_cohort.py --rates 0.1,0.5,0.9
"""

from __future__ import annotations

import argparse
import time
import warnings

import pandas as pd

try:
    from benchmarks._common import ROOT, load_average, markdown_table, write_results
except ImportError:
    from _common import ROOT, load_average, markdown_table, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default=str(ROOT / "data" / "demo"))
    parser.add_argument("--models", default="pmi_all,gain_all")
    parser.add_argument("--rates", default="0.1,0.3,0.5,0.7,0.9")
    parser.add_argument("--tissues", default="Whole Blood,Breast - Mammary Tissue,Lung",
                        help="comma-separated test tissues to shift ('all': every tissue)")
    parser.add_argument("--out", default="other_cohort")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from gtex_models.analysis.evaluation import r2_across_missing_rates, reference_values
    from gtex_models.analysis.other_cohort import compare_cohorts, shifted_test_donors
    from gtex_models.common.choices import ALL_TISSUES, HARMONISATIONS
    from gtex_models.models.model_space import ModelSpace
    from gtex_models.models.oracle import OracleImputer
    from gtex_models.studies.study import Study

    study = Study.open(args.study)
    cohort = study.cohort()
    test = cohort.split("test")
    if args.tissues != "all":
        test = test.subset_samples(test.samples["tissue"].isin(args.tissues.split(",")).to_numpy())
    shifted = shifted_test_donors(cohort, test.tissues)
    rates = [float(r) for r in args.rates.split(",")]
    sections, payload = [], {}
    oracle = OracleImputer().fit(cohort)
    oracle_rows = []
    kept = test.genes["ensembl_gene_id"].isin(shifted.genes["ensembl_gene_id"]).to_numpy()
    own, train = test.subset_genes(kept), cohort.split("train").subset_genes(kept)
    for name, scored, reference in (("own test donors", own, reference_values(own, train)),  # as compare_cohorts
                                    ("other cohort", shifted, reference_values(shifted, shifted))):
        table = r2_across_missing_rates(oracle.impute, scored, rates, reference=reference)
        pooled = table[table["tissue"] == ALL_TISSUES].set_index("missing_rate")["r2_mean"]
        oracle_rows.append({"cohort": f"{name} · oracle", "harmonisation": "exact",
                            **{f"{rate:g}": round(float(pooled[rate]), 3) for rate in rates}})
    print(f"oracle\n{oracle_rows}", flush=True)
    for key in args.models.split(","):
        imputer, metadata = study.load_model(key)
        start = time.perf_counter()
        result = compare_cohorts(imputer, ModelSpace.from_metadata(metadata), shifted, metadata, HARMONISATIONS,
                                 rates, own=cohort)
        seconds = time.perf_counter() - start
        table = pd.concat([result.table.round(3), pd.DataFrame(oracle_rows)], ignore_index=True)
        print(f"{key} ({seconds:.0f} s)\n{result.report}\n{table.to_string(index=False)}", flush=True)
        columns = [("cohort", "Cohort", ""), ("harmonisation", "Scale", ""),
                   *((f"{rate:g}", f"{rate:.0%} missing", "{:.3f}") for rate in rates)]
        sections.append(f"**{study.models[key].label}** ({result.report.splitlines()[0]})\n\n"
                        + markdown_table(table.to_dict("records"), columns))
        payload[key] = {"table": table.to_dict("records"), "report": result.report, "seconds": seconds}
    write_results(args.out, {"models": payload, "shift": shifted.meta["shift"], "tissues": args.tissues,
                             "test_samples": shifted.n_samples, "load_average": load_average()},
                  "\n\n".join(sections))


if __name__ == "__main__":
    main()
