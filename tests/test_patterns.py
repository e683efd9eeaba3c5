"""Missingness patterns: masks, training masks, and their use by the benchmark and the R²-across-rates estimator."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from gtex_models.analysis.benchmark import evaluate_imputer, run_benchmark, to_markdown
from gtex_models.analysis.evaluation import (
    extended_test_indices,
    mask_repeats,
    r2_across_missing_rates,
    r2_per_tissue,
    reference_values,
)
from gtex_models.data.cohort import Cohort
from gtex_models.data.masks import mcar_mask
from gtex_models.data.patterns import Pattern
from gtex_models.data.simulate import simulate_cohort
from gtex_models.models.registry import make_imputer


@pytest.fixture(scope="module")
def tiny() -> Cohort:
    cohort = simulate_cohort(n_donors=20, n_genes=400)
    return cohort.subset_samples(cohort.samples["tissue"].isin(cohort.split("train").tissues).to_numpy())


def symbols_only_cohort(n_groups: int = 2, seed: int = 0) -> Cohort:
    """A cohort unlike the demo: made-up symbols (no Ensembl IDs), ``n_groups`` groups, no sex or age, log values."""
    rng = np.random.default_rng(seed)
    n_samples, n_genes = 120, 60
    group = rng.integers(0, n_groups, n_samples)
    factors = rng.normal(size=(n_samples, 3))
    log = 6 + group[:, None] * rng.normal(0, 1, n_genes) + factors @ rng.normal(0, 1, (3, n_genes)) \
        + rng.normal(0, 0.3, (n_samples, n_genes))
    genes = pd.DataFrame({"ensembl_gene_id": "", "symbol": [f"G{j}" for j in range(n_genes)]})
    samples = pd.DataFrame({"sample_id": [f"S{i}" for i in range(n_samples)],
                            "donor_id": [f"D{i}" for i in range(n_samples)],
                            "tissue": [f"group {g}" for g in group], "sex": "unknown", "age": np.nan})
    return Cohort.from_raw(log, genes, samples, scale="log", seed=seed)


def test_mcar_is_the_protocols_mask(tiny: Cohort) -> None:
    np.testing.assert_array_equal(Pattern("mcar", 0.3).observed(tiny, 5), mcar_mask(tiny.x.shape, 0.3, 0.3, seed=5))


def test_mnar_hides_low_values_at_the_target_rate(tiny: Cohort) -> None:
    log = tiny.x * tiny.transform.std + tiny.transform.mean
    for rate in (0.2, 0.6):
        observed = Pattern("mnar", rate, slope=2.0).observed(tiny, 0)
        assert abs((~observed).mean() - rate) < 0.01
        assert log[~observed].mean() < log[observed].mean() - 1.0  # the low values are the missing ones
    gentle, steep = (Pattern("mnar", 0.5, slope=s).observed(tiny, 0) for s in (0.5, 8.0))
    gap = [log[observed].mean() - log[~observed].mean() for observed in (gentle, steep)]
    assert gap[1] > gap[0] > 0


def test_block_hides_whole_blocks(tiny: Cohort) -> None:
    pattern = Pattern("block", 0.5, block_size=40)
    observed = pattern.observed(tiny, 0)
    blocks = observed.reshape(len(observed), -1, 40)  # 400 genes: 10 blocks
    assert (blocks.all(axis=2) | ~blocks.any(axis=2)).all()  # each block all observed or all missing
    assert (blocks.all(axis=2).sum(axis=1) == 5).all()  # half of each sample's blocks
    assert not (observed == observed[0]).all()  # samples lose different blocks


def test_panel_observes_the_panel_genes_only(tiny: Cohort) -> None:
    observed = Pattern("panel", panel=(3, 1, 7)).observed(tiny)
    assert observed.all(axis=0).tolist() == [j in (1, 3, 7) for j in range(tiny.n_genes)]
    assert not observed[:, [0, 2]].any()


@pytest.mark.parametrize("bad", [dict(name="panel"), dict(name="nope"), dict(name="mcar", rate=1.5),
                                 dict(name="mnar", slope=0.0), dict(name="block", block_size=0)])
def test_bad_patterns_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        Pattern(**bad)


def test_a_panel_of_every_gene_is_refused(tiny: Cohort) -> None:
    with pytest.raises(ValueError, match="covers all"):
        Pattern("panel", panel=tuple(range(tiny.n_genes))).observed(tiny)


def test_training_masks_follow_the_pattern() -> None:
    known = torch.ones(6, 20)
    known[0, 2] = 0.0
    panel = Pattern("panel", panel=(2, 5)).torch_mask(known, 0.5, 0.5, torch.Generator().manual_seed(0))
    assert panel[:, [2, 5]].sum().item() == 11 and panel.sum().item() == 11  # panel genes that are known
    block = Pattern("block", 0.5, block_size=5).torch_mask(torch.ones(6, 20), 0.5, 0.5, torch.Generator().manual_seed(0))
    per_block = block.reshape(6, 4, 5)
    assert ((per_block.sum(axis=2) == 0) | (per_block.sum(axis=2) == 5)).all()
    with pytest.raises(ValueError, match="mnar"):
        Pattern("mnar", 0.5).torch_mask(known, 0.5, 0.5)


def test_benchmark_scores_every_method_under_every_pattern(tiny: Cohort) -> None:
    patterns = [Pattern("mcar", 0.5), Pattern("mnar", 0.5), Pattern("block", 0.5, block_size=40)]
    records = run_benchmark(tiny, ["mean", "oracle"], patterns=patterns)
    assert [(r["method"], r["pattern"]) for r in records] == [
        (m, p) for m in ("mean", "oracle") for p in ("mcar", "mnar (slope 2)", "block (40 genes)")]
    r2 = {(r["method"], r["pattern"]): r["r2_mean"] for r in records}
    for pattern in ("mcar", "mnar (slope 2)", "block (40 genes)"):
        assert r2["oracle", pattern] > r2["mean", pattern] + 0.2
        # R²'s reference is each value's group mean over the training donors under every pattern: the group-mean
        # imputer (fitted on those donors) scores 0, even under MNAR, whose hidden values are the low ones
        assert r2["mean", pattern] == pytest.approx(0.0, abs=1e-4)
    assert "| mean | inductive | mnar (slope 2) | 0.50 |" in to_markdown(records)


def test_a_panel_scores_the_genes_outside_it(tiny: Cohort) -> None:
    train, test = tiny.split("train"), tiny.split("test")
    pattern = Pattern("panel", panel=tuple(range(0, 400, 4)))
    oracle = evaluate_imputer(make_imputer("oracle").fit(train), test, pattern=pattern, train=train)
    mean = evaluate_imputer(make_imputer("mean").fit(train), test, pattern=pattern, train=train)
    assert oracle["pattern"] == "panel (100 genes)" and oracle["missing_rate"] == 0.75
    assert oracle["n_genes"] == 300  # the panel genes are not scored
    assert oracle["r2_mean"] > mean["r2_mean"] + 0.2


def test_inplace_refuses_a_panel(tiny: Cohort) -> None:
    with pytest.raises(ValueError, match="inductive"):
        run_benchmark(tiny, ["mean"], scenario="inplace", patterns=[Pattern("panel", panel=(0, 1))])


def test_a_panel_trained_pmi_beats_an_mcar_trained_one_on_its_panel(tiny: Cohort) -> None:
    from tests.conftest import SMALL_PMI

    train, valid, test = tiny.split("train"), tiny.split("valid"), tiny.split("test")
    pattern = Pattern("panel", panel=tuple(range(0, 400, 5)))
    scores = {}
    for name, extra in (("mcar", {}), ("panel", {"pattern": pattern.to_dict()})):
        pmi = make_imputer("pmi", **SMALL_PMI, **extra).fit(train, valid)
        scores[name] = evaluate_imputer(pmi, test, pattern=pattern, train=train)["r2_mean"]
    assert scores["panel"] > scores["mcar"] + 0.02


def test_across_rates_pools_masks_until_each_gene_has_enough_hidden_values(tiny: Cohort) -> None:
    assert [mask_repeats(r, 50) for r in (0.1, 0.2, 0.5, 0.9)] == [10, 5, 2, 2]  # every value hidden at least once
    counts = tiny.samples["tissue"].value_counts()
    large = tiny.subset_samples(tiny.samples["tissue"].isin(counts.index[counts >= 14]).to_numpy())
    extended = large.subset_samples(extended_test_indices(large.samples["tissue"], 50, seed=0))
    noisy = np.random.default_rng(0).normal(0, 0.7, extended.x.shape).astype(np.float32)
    reference = reference_values(extended, tiny.split("train"))

    def impute(masked: Cohort) -> np.ndarray:  # truth plus noise: per-tissue R² ~0.5 at every rate
        return extended.x + noisy

    table = r2_across_missing_rates(impute, extended, (0.1,), seed=0, reference=reference)
    assert set(table["n_masks"]) == {10}
    pooled = table.loc[table["tissue"] != "All tissues", "r2_std"].mean()
    observed = mcar_mask(extended.x.shape, 0.1, 0.1, seed=0)  # one mask: about 5 hidden values per gene and tissue
    single = r2_per_tissue(extended.x, impute(extended), observed, extended.samples["tissue"],
                           extended.genes["symbol"], reference).groupby("tissue")["r2"].std().mean()
    assert pooled < 0.6 * single  # per-gene R² far less scattered with 50 hidden values than with 5


def test_every_pattern_works_on_a_cohort_unlike_the_demo() -> None:
    cohort = symbols_only_cohort(n_groups=1)
    train, test = cohort.split("train"), cohort.split("test")
    knn = make_imputer("knn").fit(train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for pattern in (Pattern("mcar"), Pattern("mnar"), Pattern("block", block_size=10), Pattern("panel", panel=(0, 1, 2))):
            record = evaluate_imputer(knn, test, pattern=pattern, train=train)
            assert record["r2_mean"] > 0.3, pattern
