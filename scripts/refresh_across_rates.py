"""Recompute a study's R²-against-missing-rate tables with the current estimator (no retraining).

The estimator pools repeated masks so that each gene has about ``MIN_HIDDEN_PER_GENE`` hidden values per
group at every rate (:func:`gtex_models.evaluation.r2_across_missing_rates`). Tables of studies built before
it can be refreshed in place from their checkpoints and cohort::

    python scripts/refresh_across_rates.py --study data/demo
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from gtex_models.benchmark import DEFAULT_RATES, known_groups_only
    from gtex_models.evaluation import extended_test_indices, r2_across_missing_rates
    from gtex_models.model_space import ModelSpace, cohort_for_model
    from gtex_models.study import Study, write_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, required=True)
    parser.add_argument("--n-per-tissue", type=int, default=50, help="extended test set (as when the study was built)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    study = Study.open(args.study)
    cohort = study.cohort()
    for key in study.models:
        start = time.perf_counter()
        imputer, metadata = study.load_model(key)
        space = ModelSpace.from_metadata(metadata)
        test = known_groups_only(cohort_for_model(cohort, space).split("test"), space.tissues)
        extended = test.subset_samples(extended_test_indices(test.samples["tissue"], args.n_per_tissue, args.seed))
        table = r2_across_missing_rates(imputer.impute, extended, DEFAULT_RATES, args.seed)
        write_model(args.study, key, tables={"across_rates": table})
        print(f"{key}: {len(table)} rows in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
