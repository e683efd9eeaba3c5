"""Plotly figure builders: traces, order, colours, axis titles with units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from gtex_models.data.reference import tissue_colors
from gtex_models.interfaces import plots

TISSUES = ["Whole Blood", "Brain - Cortex", "Brain - Cerebellum", "Liver", "Lung"]


@pytest.fixture(scope="module")
def per_tissue() -> pd.DataFrame:
    """R² of 50 genes in five tissues; tissue i has median R² about 0.1 * (i + 1)."""
    rng = np.random.default_rng(0)
    rows = [{"tissue": t, "gene": f"G{g}", "r2": 0.1 * (i + 1) + rng.normal(0, 0.05)}
            for i, t in enumerate(TISSUES) for g in range(50)]
    return pd.DataFrame(rows)


def _titles(figure: go.Figure) -> tuple[str | None, str | None]:
    return figure.layout.xaxis.title.text, figure.layout.yaxis.title.text


def _boxes(figure: go.Figure) -> list[go.Box]:
    return [trace for trace in figure.data if trace.type == "box"]


def test_boxplot_has_one_box_per_tissue_coloured_by_training_samples(per_tissue):
    counts = {t: 100 * (i + 1) for i, t in enumerate(TISSUES)}
    figure = plots.tissue_r2_boxplot(per_tissue, counts)
    boxes = _boxes(figure)
    assert [b.y[0] for b in boxes][::-1] == TISSUES[::-1]  # best median at the top (drawn last)
    assert boxes[0].fillcolor != boxes[-1].fillcolor
    colorbar = [t for t in figure.data if t.type == "scatter"][0]
    assert colorbar.marker.showscale and colorbar.marker.cmax == 500
    assert figure.layout.xaxis.title.text == plots.R2_TITLE
    by_name = plots.tissue_r2_boxplot(per_tissue, counts, order="name")
    assert [b.y[0] for b in _boxes(by_name)] == sorted(TISSUES, reverse=True)
    by_samples = plots.tissue_r2_boxplot(per_tissue, {**counts, "Liver": 10_000}, order="training samples")
    assert _boxes(by_samples)[-1].y[0] == "Liver"
    with pytest.raises(ValueError, match="Unknown order"):
        plots.tissue_r2_boxplot(per_tissue, counts, order="random")


def test_box_statistics_use_tukey_fences():
    table = pd.DataFrame({"tissue": "Lung", "gene": list("abcdef"), "r2": [0.5, 0.6, 0.7, 0.8, 0.9, -5.0]})
    stats = plots.box_statistics(table).iloc[0]
    assert stats["median"] == pytest.approx(0.65)
    assert stats["lowerfence"] == 0.5  # -5 is an outlier
    assert stats["n_genes"] == 6


def test_r2_axis_clips_extreme_outliers():
    assert plots.r2_range([0.2, 0.9]) == [-0.05, 1.02]
    assert plots.r2_range([-30.0, 0.5]) == [-1.05, 1.02]


def test_cohort_r2_vs_missing_rate_draws_each_cohort_in_one_panel():
    rates = [0.1, 0.5, 0.9]
    tables = {label: pd.DataFrame([{"missing_rate": r, "tissue": t, "r2_mean": top - 0.3 * r, "r2_std": 0.1}
                                   for r in rates for t in [plots.POOLED, "Liver"]])
              for label, top in (("own test donors", 0.8), ("other cohort (own)", 0.5))}
    figure = plots.cohort_r2_vs_missing_rate(tables, "Liver")
    lines = [t for t in figure.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == list(tables) and len({t.line.color for t in lines}) == 2
    np.testing.assert_allclose(lines[1].y, [0.5 - 0.3 * r for r in rates])
    assert "Liver" in lines[0].hovertemplate and not figure.layout.annotations  # one panel
    assert figure.layout.yaxis.title.text == "Mean R² per gene (±1 SD)"

def test_r2_vs_missing_rate_panels_side_by_side():
    rates = [0.1, 0.5, 0.9]
    table = pd.DataFrame([{"missing_rate": r, "tissue": t, "r2_mean": 0.8 - 0.3 * r, "r2_std": 0.1}
                          for r in rates for t in [plots.POOLED, "Liver", "Lung"]])
    figure = plots.r2_vs_missing_rate({"PMI": table, "GAIN-GTEx": table}, [plots.POOLED, "Liver"])
    assert [a.text for a in figure.layout.annotations] == ["PMI", "GAIN-GTEx"]
    lines = [t for t in figure.data if t.mode == "lines+markers"]
    bands = [t for t in figure.data if t.fill == "toself"]
    assert len(lines) == len(bands) == 4
    assert all(band.mode == "lines" and band.line.width == 0 for band in bands)  # no stray markers
    assert sum(t.showlegend for t in lines) == 2
    liver = next(t for t in lines if t.name == "Liver")
    assert liver.line.color == tissue_colors()["Liver"]
    band = bands[1]
    np.testing.assert_allclose(band.y[:3], table.query("tissue == 'Liver'")["r2_mean"] + 0.1)
    assert figure.layout.xaxis.title.text.startswith("Missing rate")
    assert figure.layout.yaxis.title.text == "Mean R² per gene (±1 SD)"


def test_embedding_scatter_groups_organs_and_marks_the_brain():
    coords = pd.DataFrame({"tissue": TISSUES, "x": np.arange(5.0), "y": np.arange(5.0) ** 2})
    figure = plots.embedding_scatter(coords, "x", "y", "UMAP 1", "UMAP 2")
    assert sum(len(t.x) for t in figure.data) == len(TISSUES)
    brain = figure.data[0]
    assert brain.name == "Brain (2)" and brain.marker.symbol == "diamond"
    assert sorted(brain.text) == ["Brain - Cerebellum", "Brain - Cortex"]
    assert all(t.marker.symbol == "circle" for t in figure.data[1:])
    assert _titles(figure) == ("UMAP 1", "UMAP 2")


def test_pathway_heatmap_and_best_worst_genes(per_tissue):
    figure = plots.pathway_heatmap(per_tissue, genes=["G1", "G2", "G3"])
    heatmap = figure.data[0]
    assert np.asarray(heatmap.z).shape == (3, len(TISSUES))
    means = per_tissue[per_tissue["gene"].isin(["G1", "G2", "G3"])].groupby("gene")["r2"].mean()
    assert list(heatmap.y) == means.sort_values().index.tolist()  # best at the top
    assert heatmap.zmin == -1 and heatmap.zmax == 1
    per_gene = pd.DataFrame({"gene": [f"G{i}" for i in range(30)], "r2": np.linspace(-0.5, 0.9, 30)})
    bars = plots.best_worst_genes(per_gene, n=5).data[0]
    assert len(bars.y) == 10
    assert bars.y[-1] == "G29" and bars.y[0] == "G0"


def test_imputed_vs_true_subsamples_and_reports_r2():
    truth = np.random.default_rng(0).normal(5, 1, 50_000)
    figure = plots.imputed_vs_true(truth, truth + 0.1, 0.99, max_points=1000)
    assert len(figure.data[0].x) == 1000
    assert "R² = 0.990" in figure.layout.title.text
    assert "log2(TPM + 1)" in figure.layout.xaxis.title.text


def test_expression_preview_shows_gaps_then_filled_values():
    values = pd.DataFrame(np.arange(12.0).reshape(3, 4), index=["s1", "s2", "s3"], columns=list("ABCD"))
    observed = pd.DataFrame([[True, False, True, False]] * 3, index=values.index, columns=values.columns)
    observed.loc["s1", "A"] = False
    figure = plots.expression_preview(values, observed, plots.LOG_UNIT, max_genes=3)
    upload, imputed = figure.data
    assert list(upload.x) == ["A", "B", "D"]  # A has both observed and missing values: first
    assert np.isnan(np.asarray(upload.z, dtype=float)[0, 0]) and not np.isnan(np.asarray(imputed.z, dtype=float)).any()


def test_training_curves_mark_the_best_epoch():
    history = {"train_loss": {"generator": [1.0, 0.8, 0.7], "discriminator": [0.7, 0.69, 0.68]},
               "valid_loss": [0.9, 0.85, 0.86], "best_epoch": 2}
    figure = plots.training_curves(history)
    assert [t.name for t in figure.data] == ["train · generator", "train · discriminator", "validation"]
    assert figure.layout.shapes[0].x0 == 2
    assert _titles(figure) == ("Epoch", "Loss (MSE, model space)")


def test_interval_chart_and_benchmark_bars():
    values = pd.Series([1.0, 2.0, 3.0], index=["A", "B", "C"])
    observed = pd.Series([True, False, False], index=values.index)
    figure = plots.interval_chart(values, values - [0, 0.5, 0.1], values + [0, 0.5, 0.1], observed, "TPM")
    assert list(figure.data[0].x) == ["B", "C"]  # imputed only, widest first
    records = pd.DataFrame({"method": ["pmi", "gain", "pmi"], "scenario": ["inductive", "inductive", "inplace"],
                            "r2_mean": [0.6, 0.5, 0.7], "r2_std": [0.1, 0.1, 0.1]})
    bars = plots.benchmark_bars(records)
    assert [t.name for t in bars.data] == ["inductive", "inplace"]
    assert bars.layout.yaxis.title.text == "Mean R² per gene (±1 SD)"


def test_gene_r2_by_tissue_has_one_series_per_model(per_tissue):
    figure = plots.gene_r2_by_tissue({"pathway model": per_tissue, "all-genes model": per_tissue}, "G3")
    assert [t.name for t in figure.data] == ["pathway model", "all-genes model"]
    assert list(figure.data[0].x) == sorted(TISSUES)
    assert figure.layout.title.text.startswith("G3")


def test_groups_that_are_not_gtex_tissues_get_distinct_palette_colours():
    groups = ["tumour", "Liver", "normal", "adjacent"]
    colors = plots.group_colors(groups)
    assert colors["Liver"] == tissue_colors()["Liver"]  # a GTEx name keeps its GTEx colour
    others = [colors[g] for g in ("adjacent", "normal", "tumour")]
    assert others == list(plots.GROUP_PALETTE[:3])  # sorted by name, then the palette in order
    assert len(set(colors.values())) == len(groups)
    coords = pd.DataFrame({"tissue": groups, "x": [0, 1, 2, 3], "y": [0, 1, 0, 1]})
    figure = plots.embedding_scatter(coords, "x", "y", "X", "Y")
    drawn = {t: c for trace in figure.data for t, c in zip(trace.text, trace.marker.color)}
    assert drawn == colors
    table = pd.DataFrame([{"missing_rate": r, "tissue": t, "r2_mean": 0.5, "r2_std": 0.1}
                          for r in (0.2, 0.8) for t in [plots.POOLED, *groups]])
    lines = [t for t in plots.r2_vs_missing_rate({"PMI": table}, ["normal"]).data if t.mode == "lines+markers"]
    assert lines[0].line.color == colors["normal"]  # the same colour whatever the tissues chosen


def test_are_gtex_tissues():
    from gtex_models.data.reference import are_gtex_tissues

    assert are_gtex_tissues(["Whole Blood", "Brain - Cortex"])
    assert not are_gtex_tissues(["Whole Blood", "tumour"])


# ------------------------------------------------------------------------ groups too small to score (issue #27)
def _across(groups: dict[str, float]) -> pd.DataFrame:
    """R² against the missing rate: each group's curve at its level, the pooled curve at 0.5."""
    rates = [0.1, 0.5, 0.9]
    rows = [{"missing_rate": r, "tissue": g, "r2_mean": level, "r2_std": 0.05, "n_genes": 100}
            for g, level in {plots.POOLED: 0.5, **groups}.items() for r in rates]
    return pd.DataFrame(rows)


def test_a_group_with_too_few_test_samples_is_grey_labelled_and_kept_on_the_axis():
    table = _across({"case": 0.4, "control": 0.3, "rare": -3.0})
    counts = {"case": 40, "control": 25, "rare": 3}
    figure = plots.r2_vs_missing_rate({"PMI": table}, [plots.POOLED, "case", "control", "rare"], counts, "All groups")
    named = {t.name: t for t in figure.data if t.name}
    assert set(named) == {"All groups", "case", "control", "rare (3 test samples: too few to score)"}
    rare = named["rare (3 test samples: too few to score)"]
    assert rare.line.color == plots.TOO_FEW_COLOR and rare.line.dash == "dash"
    low = figure.layout.yaxis.range[0]
    assert low == pytest.approx(-0.05)  # set by the scoreable groups only (0.3 - SD stays above 0)
    assert min(rare.y) >= low  # clipped to the axis, not drawn off it
    np.testing.assert_allclose(rare.customdata, -3.0)  # the hover tells the true value
    scored_only = plots.r2_vs_missing_rate({"PMI": table}, [plots.POOLED, "case", "control", "rare"], {})
    assert scored_only.layout.yaxis.range[0] < -1  # without the counts, the group would set the axis


def test_the_boxplot_greys_a_group_with_too_few_test_samples(per_tissue):
    table = pd.concat([per_tissue, pd.DataFrame({"tissue": "Vagina", "gene": [f"G{g}" for g in range(50)],
                                                 "r2": np.linspace(-4, -1, 50)})])
    counts = {t: 100 for t in [*TISSUES, "Vagina"]}
    figure = plots.tissue_r2_boxplot(table, counts, test_counts={**{t: 30 for t in TISSUES}, "Vagina": 4})
    grey = [b for b in _boxes(figure) if b.fillcolor == plots.TOO_FEW_COLOR]
    assert [b.y[0] for b in grey] == ["Vagina (4 test samples: too few to score)"]
    assert figure.layout.xaxis.range[0] > -0.1  # its fences (down to -4) do not stretch the axis
    assert plots.too_few({"a": 9, "b": 10}, ["a", "b", "c"]) == {"a": 9}  # c: not counted, not judged
