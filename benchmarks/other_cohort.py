"""R² against missing rate on a shifted copy of the demo's test donors, for each scale harmonisation.

The demo's test donors are passed through :func:`gtex_models.other_cohort.shift_cohort` (per-gene offset
SD 0.5 and log-scale SD 0.2 in log2(TPM + 1), extra noise SD 0.3, 10 % of the genes absent) — a platform or
batch shift of the same donors — and scored by the demo's PMI beside the unshifted test donors
(:func:`gtex_models.other_cohort.compare_cohorts`; mean per-gene R² over all groups, repeated masks).
The oracle is not shown on the shifted cohort: it knows the simulation, not the shift.

Example::

    python benchmarks/other_cohort.py --rates 0.1,0.5,0.9
"""

from __future__ import annotations

import argparse
import time
import warnings

try:
    from benchmarks._common import ROOT, load_average, markdown_table, write_results
except ImportError:
    from _common import ROOT, load_average, markdown_table, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default=str(ROOT / "data" / "demo"))
    parser.add_argument("--models", default="pmi_all,gain_all")
    parser.add_argument("--rates", default="0.1,0.3,0.5,0.7,0.9")
    parser.add_argument("--out", default="other_cohort")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from gtex_models.choices import HARMONISATIONS
    from gtex_models.model_space import ModelSpace
    from gtex_models.other_cohort import compare_cohorts, shift_cohort
    from gtex_models.study import Study

    study = Study.open(args.study)
    cohort = study.cohort()
    shifted = shift_cohort(cohort.split("test"), seed=0)
    rates = [float(r) for r in args.rates.split(",")]
    sections, payload = [], {}
    for key in args.models.split(","):
        imputer, metadata = study.load_model(key)
        start = time.perf_counter()
        result = compare_cohorts(imputer, ModelSpace.from_metadata(metadata), shifted, metadata, HARMONISATIONS,
                                 rates, own=cohort)
        seconds = time.perf_counter() - start
        table = result.table.round(3)
        print(f"{key} ({seconds:.0f} s)\n{result.report}\n{table.to_string(index=False)}", flush=True)
        columns = [("cohort", "Cohort", ""), ("harmonisation", "Scale", ""),
                   *((f"{rate:g}", f"{rate:.0%} missing", "{:.3f}") for rate in rates)]
        sections.append(f"**{study.models[key].label}** ({result.report.splitlines()[0]})\n\n"
                        + markdown_table(table.to_dict("records"), columns))
        payload[key] = {"table": table.to_dict("records"), "report": result.report, "seconds": seconds}
    write_results(args.out, {"models": payload, "shift": shifted.meta["shift"], "load_average": load_average()},
                  "\n\n".join(sections))


if __name__ == "__main__":
    main()
