"""Plotly figures of the app, one builder per view (testable without Streamlit).

Every figure has axis titles with units; tissues use their GTEx display colours, groups of other
cohorts the colours of :data:`GROUP_PALETTE`; brain regions are drawn as diamonds so that they read
as one group. Units and group words are the caller's (:class:`~gtex_models.interfaces.naming.Words`;
the defaults are GTEx's). Groups with fewer test samples than :data:`MIN_SCORED_SAMPLES` are drawn
grey, labelled with their count, and never set an R² axis.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative, sample_colorscale
from plotly.subplots import make_subplots

from gtex_models.common.choices import ALL_TISSUES
from gtex_models.data.reference import are_gtex_tissues, tissue_colors

TEMPLATE = "plotly_white"
R2_TITLE = "R² (per gene, hidden values)"
LOG_UNIT = "log2(TPM + 1)"
MIN_SCORED_SAMPLES = 10
"""A group's R² from fewer distinct test samples is mostly noise (a few samples' spread as reference)."""
TOO_FEW_COLOR = "#b0b0b0"
SAMPLES_COLORSCALE = "Viridis"
R2_COLORSCALE = "RdBu"
BOX_ORDERS = ("median R²", "training samples", "name")
POOLED = ALL_TISSUES


def _hex(color: str) -> str:
    """``"#1F77B4"`` as is; ``"rgb(27,158,119)"`` (some plotly palettes) as ``"#1b9e77"``."""
    if color.startswith("#"):
        return color
    red, green, blue = (int(float(v)) for v in color[color.index("(") + 1:color.index(")")].split(",")[:3])
    return f"#{red:02x}{green:02x}{blue:02x}"


# colours of groups that are not GTEx tissues (a user's own cohort), given in the groups' sorted order
GROUP_PALETTE = tuple(dict.fromkeys(_hex(c).lower() for c in (*qualitative.D3, *qualitative.Dark2, *qualitative.Set1)))


def group_colors(groups: Sequence[str]) -> dict[str, str]:
    """A colour per group: the GTEx display colour of a GTEx tissue name, else the next colour of
    :data:`GROUP_PALETTE` (groups sorted by name, so the same set of groups always gets the same colours)."""
    gtex = tissue_colors()
    others = sorted({str(g) for g in groups} - set(gtex))
    palette = {name: GROUP_PALETTE[i % len(GROUP_PALETTE)] for i, name in enumerate(others)}
    return {str(g): gtex.get(str(g)) or palette[str(g)] for g in groups}


def _rgba(hex_color: str, alpha: float) -> str:
    value = hex_color.lstrip("#")
    red, green, blue = (int(value[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({red}, {green}, {blue}, {alpha})"


def organ(tissue: str) -> str:
    """The organ of a GTEx tissue name: ``"Brain - Cortex"`` -> ``"Brain"``."""
    return str(tissue).split(" - ")[0]


# ----------------------------------------------------------------------------- Fig. 2: R² per tissue
def box_statistics(per_tissue: pd.DataFrame) -> pd.DataFrame:
    """Per tissue: quartiles, Tukey fences (1.5 IQR, within the data), mean and number of genes."""
    records = []
    for tissue, group in per_tissue.dropna(subset=["r2"]).groupby("tissue"):
        r2 = group["r2"].to_numpy(dtype=float)
        q1, median, q3 = np.quantile(r2, [0.25, 0.5, 0.75])
        iqr = q3 - q1
        records.append({
            "tissue": tissue,
            "q1": q1, "median": median, "q3": q3,
            "lowerfence": r2[r2 >= q1 - 1.5 * iqr].min(),
            "upperfence": r2[r2 <= q3 + 1.5 * iqr].max(),
            "mean": r2.mean(),
            "n_genes": len(r2),
        })
    return pd.DataFrame.from_records(records)


def too_few(test_counts: Mapping[str, int], groups: Sequence[str]) -> dict[str, int]:
    """The ``groups`` with fewer than :data:`MIN_SCORED_SAMPLES` test samples (``test_counts``; groups it does not
    list are not judged), with their count."""
    return {str(g): int(test_counts[g]) for g in groups if g in test_counts and test_counts[g] < MIN_SCORED_SAMPLES}


def too_few_label(group: str, n: int) -> str:
    """``"Vagina (4 test samples: too few to score)"``."""
    return f"{group} ({n} test sample{'s' if n != 1 else ''}: too few to score)"


def tissue_r2_boxplot(
    per_tissue: pd.DataFrame, train_counts: Mapping[str, int], order: str = "median R²", title: str = "",
    test_counts: Mapping[str, int] | None = None,
) -> go.Figure:
    """Box plot of per-gene R² in each tissue, coloured by the tissue's number of training samples.

    Parameters
    ----------
    per_tissue : ``tissue``, ``gene``, ``r2``.
    train_counts : training samples per tissue.
    order : one of :data:`BOX_ORDERS` (the best, the largest or the first at the top).
    test_counts : distinct test samples per group: a group with too few (:func:`too_few`) is drawn grey,
        labelled with its count, and left out of the axis range.
    """
    if order not in BOX_ORDERS:
        raise ValueError(f"Unknown order {order!r}; use one of {BOX_ORDERS}.")
    stats = box_statistics(per_tissue)
    stats["n_train"] = [int(train_counts.get(t, 0)) for t in stats["tissue"]]
    key = {"median R²": ("median", True), "training samples": ("n_train", True), "name": ("tissue", False)}[order]
    stats = stats.sort_values(key[0], ascending=not key[1]).iloc[::-1]  # plotly draws bottom-up
    low, high = float(stats["n_train"].min()), float(stats["n_train"].max())
    fractions = (stats["n_train"] - low) / (high - low) if high > low else np.full(len(stats), 0.5)
    colors = sample_colorscale(SAMPLES_COLORSCALE, list(fractions))
    small = too_few(test_counts or {}, stats["tissue"].tolist())
    figure = go.Figure()
    for row, color in zip(stats.itertuples(index=False), colors):
        name = too_few_label(row.tissue, small[row.tissue]) if row.tissue in small else row.tissue
        figure.add_trace(go.Box(
            y=[name], q1=[row.q1], median=[row.median], q3=[row.q3], lowerfence=[row.lowerfence],
            upperfence=[row.upperfence], mean=[row.mean], orientation="h", name=name,
            fillcolor=TOO_FEW_COLOR if row.tissue in small else color, showlegend=False,
            line={"color": TOO_FEW_COLOR if row.tissue in small else "#333333", "width": 1},
            hovertemplate=(f"<b>{name}</b><br>median R² {row.median:.3f}<br>"
                           f"{row.n_genes:,} genes · {row.n_train:,} training samples<extra></extra>"),
        ))
    figure.add_trace(go.Scatter(  # carries the colour bar only
        x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
        marker={"colorscale": SAMPLES_COLORSCALE, "cmin": low, "cmax": high, "color": [low],
                "showscale": True, "colorbar": {"title": {"text": "Training<br>samples"}, "thickness": 14}},
    ))
    figure.update_layout(
        template=TEMPLATE, title=title or None, height=max(360, 20 * len(stats) + 120),
        margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 50},
        xaxis={"title": R2_TITLE, "range": r2_range(stats.loc[~stats["tissue"].isin(small), "lowerfence"])},
        yaxis_title=None,
    )
    return figure


def r2_range(values: Sequence[float] | np.ndarray, floor: float = -1.0) -> list[float]:
    """An R² axis range: up to 1, down to the data's minimum but not below ``floor`` (outliers clip)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    low = max(float(finite.min()) if finite.size else 0.0, floor)
    return [min(low, 0.0) - 0.05, 1.02]


# ----------------------------------------------------------------------------- Fig. 4: R² vs missing rate
def r2_vs_missing_rate(tables: Mapping[str, pd.DataFrame], tissues: Sequence[str],
                       test_counts: Mapping[str, int] | None = None, pooled_label: str = POOLED) -> go.Figure:
    """Mean per-gene R² against the missing rate, ±1 SD band, one panel per method (side by side).

    Parameters
    ----------
    tables : method label -> ``missing_rate``, ``tissue``, ``r2_mean``, ``r2_std``.
    tissues : the tissues to draw (``"All tissues"`` for the pooled curve).
    test_counts : distinct test samples per group: a group with too few (:func:`too_few`) is drawn as a grey
        dashed line labelled with its count, clipped to the axis, which it does not set.
    pooled_label : the pooled curve's name (``"All groups"`` for a cohort's own groups).
    """
    labels = list(tables)
    colors = group_colors(sorted(set().union(*(set(t["tissue"]) for t in tables.values())) - {POOLED}))
    small = too_few(test_counts or {}, [t for t in tissues if t != POOLED])
    figure = make_subplots(rows=1, cols=max(len(labels), 1), shared_yaxes=True, subplot_titles=labels,
                           horizontal_spacing=0.04)
    scored = [t[t["tissue"].isin(set(tissues) - set(small))] for t in tables.values()]
    floor = _r2_rows_range(scored)[0]
    for col, label in enumerate(labels, start=1):
        table = tables[label]
        for tissue in tissues:
            rows = table[table["tissue"] == tissue]
            if rows.empty:
                continue
            if tissue in small:
                _too_few_curve(figure, rows, too_few_label(tissue, small[tissue]), floor, label, col, col == 1)
            else:
                color = "#222222" if tissue == POOLED else colors[tissue]
                name = pooled_label if tissue == POOLED else tissue
                _r2_curve(figure, rows, name, color, label, col=col, legend=col == 1)
        figure.update_xaxes(title_text="Missing rate (share of values hidden)", tickformat=".0%", row=1, col=col)
    _r2_axes(figure, scored)
    return figure


def _too_few_curve(figure: go.Figure, rows: pd.DataFrame, name: str, floor: float, detail: str, col: int,
                   legend: bool) -> None:
    """A group too small to score: grey, dashed, no band, clipped at the axis ``floor`` (hover: the true mean)."""
    rows = rows.sort_values("missing_rate")
    figure.add_trace(go.Scatter(
        x=rows["missing_rate"], y=rows["r2_mean"].clip(lower=floor), customdata=rows["r2_mean"], mode="lines+markers",
        name=name, legendgroup=name, showlegend=legend, line={"color": TOO_FEW_COLOR, "width": 1.5, "dash": "dash"},
        hovertemplate=f"<b>{name}</b> · {detail}<br>missing rate %{{x:.0%}}<br>R² %{{customdata:.3f}}<extra></extra>",
    ), row=1, col=col)


COHORT_COLORS = ("#222222", "#d62728", "#1f77b4", "#2ca02c")  # the own test donors first, then each harmonisation


def cohort_r2_vs_missing_rate(tables: Mapping[str, pd.DataFrame], tissue: str = POOLED) -> go.Figure:
    """Mean per-gene R² against the missing rate of several cohorts in one panel, ±1 SD band (Viñas et al.
    2021, Fig. 4: another cohort beside the model's own test donors).

    Parameters
    ----------
    tables : row label (``"own test donors"``, ``"other cohort (own)"``, ...) -> ``missing_rate``, ``tissue``,
        ``r2_mean``, ``r2_std`` (:attr:`gtex_models.analysis.other_cohort.CohortComparison.tables`).
    tissue : the tissue whose curves are drawn (``"All tissues"``: all pooled).
    """
    figure = go.Figure()
    for i, (label, table) in enumerate(tables.items()):
        rows = table[table["tissue"] == tissue]
        if not rows.empty:
            _r2_curve(figure, rows, label, COHORT_COLORS[i % len(COHORT_COLORS)], tissue)
    figure.update_xaxes(title_text="Missing rate (share of values hidden)", tickformat=".0%")
    _r2_axes(figure, [t[t["tissue"] == tissue] for t in tables.values()])
    return figure


def _r2_curve(figure: go.Figure, rows: pd.DataFrame, name: str, color: str, detail: str, col: int | None = None,
              legend: bool = True) -> None:
    """One mean R² curve against the missing rate with its ±1 SD band (``detail``: after the name on hover)."""
    rows = rows.sort_values("missing_rate")
    where = {"row": 1, "col": col} if col is not None else {}
    rate = rows["missing_rate"].to_numpy()
    mean, sd = rows["r2_mean"].to_numpy(), rows["r2_std"].fillna(0).to_numpy()
    figure.add_trace(go.Scatter(
        x=np.concatenate([rate, rate[::-1]]), y=np.concatenate([mean + sd, (mean - sd)[::-1]]),
        mode="lines", fill="toself", fillcolor=_rgba(color, 0.15), line={"width": 0}, hoverinfo="skip",
        legendgroup=name, showlegend=False,
    ), **where)
    figure.add_trace(go.Scatter(
        x=rate, y=mean, mode="lines+markers", name=name, legendgroup=name, line={"color": color, "width": 2},
        showlegend=legend, customdata=sd,
        hovertemplate=f"<b>{name}</b> · {detail}<br>missing rate %{{x:.0%}}<br>R² %{{y:.3f}} ± %{{customdata:.3f}}<extra></extra>",
    ), **where)


def _r2_rows_range(drawn: Sequence[pd.DataFrame]) -> list[float]:
    """The R² axis range of the drawn rows (mean - SD included)."""
    lows = [t["r2_mean"] - t["r2_std"].fillna(0) for t in drawn]
    return r2_range(pd.concat(lows) if lows else [])


def _r2_axes(figure: go.Figure, drawn: Sequence[pd.DataFrame]) -> None:
    """The R² axis range of the drawn rows, titles and layout of an R²-vs-rate figure."""
    figure.update_yaxes(range=_r2_rows_range(drawn))
    figure.layout.yaxis.title.text = "Mean R² per gene (±1 SD)"  # the first panel's
    figure.update_layout(template=TEMPLATE, height=460, margin={"l": 10, "r": 10, "t": 40, "b": 50},
                         legend={"orientation": "h", "y": -0.25})


# ----------------------------------------------------------------------------- Fig. 3: embeddings
def embedding_scatter(coords: pd.DataFrame, x: str, y: str, x_title: str, y_title: str,
                      title: str = "") -> go.Figure:
    """Tissues as points in an embedding view, GTEx colours, one legend entry per organ (per group for a
    cohort's own groups).

    Brain regions are large diamonds so they read as one group; hover gives the full tissue name.
    """
    figure = go.Figure()
    colors = group_colors(coords["tissue"].tolist())
    groups = coords.assign(_organ=coords["tissue"].map(organ))
    order = sorted(groups["_organ"].unique(), key=lambda name: (name != "Brain", name))
    for name in order:
        rows = groups[groups["_organ"] == name]
        brain = name == "Brain"
        figure.add_trace(go.Scatter(
            x=rows[x], y=rows[y], mode="markers", name=f"{name} ({len(rows)})" if len(rows) > 1 else name,
            text=rows["tissue"], hovertemplate="<b>%{text}</b><extra></extra>",
            marker={"color": [colors[t] for t in rows["tissue"]], "size": 15 if brain else 11,
                    "symbol": "diamond" if brain else "circle",
                    "line": {"color": "#222222" if brain else "#ffffff", "width": 1.5 if brain else 1}},
        ))
    figure.update_layout(template=TEMPLATE, title=title or None, height=680, xaxis_title=x_title,
                         yaxis_title=y_title, margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 10},
                         legend={"title": {"text": "Organ" if are_gtex_tissues(coords["tissue"]) else "Group"},
                                 "font": {"size": 11}, "orientation": "h",
                                 "yanchor": "top", "y": -0.12, "xanchor": "left", "x": 0})
    return figure


# ----------------------------------------------------------------------------- Fig. 5: pathway genes
def pathway_heatmap(per_tissue: pd.DataFrame, genes: Sequence[str] | None = None, title: str = "",
                    group: str = "tissue") -> go.Figure:
    """Per-gene R² as a genes x tissues heat map; genes sorted by mean R² (best at the top).

    Colours are clipped to [-1, 1]; hover shows the exact value.
    """
    table = per_tissue if genes is None else per_tissue[per_tissue["gene"].isin(set(genes))]
    matrix = table.pivot_table(index="gene", columns="tissue", values="r2", aggfunc="mean")
    matrix = matrix.loc[matrix.mean(axis=1).sort_values(ascending=True).index]
    figure = go.Figure(go.Heatmap(
        z=matrix.clip(-1, 1).to_numpy(), x=matrix.columns.to_list(), y=matrix.index.to_list(),
        customdata=matrix.to_numpy(), colorscale=R2_COLORSCALE, zmin=-1, zmax=1, zmid=0,
        colorbar={"title": {"text": "R²"}, "thickness": 14},
        hovertemplate="<b>%{y}</b> in %{x}<br>R² %{customdata:.3f}<extra></extra>",
    ))
    figure.update_layout(
        template=TEMPLATE, title=title or None, height=min(max(360, 12 * len(matrix) + 220), 1500),
        xaxis={"title": group.capitalize(), "tickangle": -50, "tickfont": {"size": 10}},
        yaxis={"title": "Gene", "tickfont": {"size": 9}, "showticklabels": len(matrix) <= 120},
        margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 10},
    )
    return figure


def best_worst_genes(per_gene: pd.DataFrame, n: int = 10, title: str = "") -> go.Figure:
    """Horizontal bars of the ``n`` best and ``n`` worst imputed genes (``gene``, ``r2``)."""
    ranked = per_gene.dropna(subset=["r2"]).sort_values("r2", ascending=False)
    best, worst = ranked.head(n), ranked.tail(n)
    worst = worst[~worst["gene"].isin(best["gene"])]
    shown = pd.concat([best, worst]).iloc[::-1]
    colors = ["#1a9850" if g in set(best["gene"]) else "#d73027" for g in shown["gene"]]
    figure = go.Figure(go.Bar(x=shown["r2"], y=shown["gene"], orientation="h", marker_color=colors,
                              hovertemplate="<b>%{y}</b><br>R² %{x:.3f}<extra></extra>"))
    figure.update_layout(template=TEMPLATE, title=title or None, height=max(320, 22 * len(shown) + 100),
                         xaxis_title=R2_TITLE, yaxis_title="Gene",
                         margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 50})
    return figure


# ----------------------------------------------------------------------------- imputation results
def imputed_vs_true(truth: np.ndarray, imputed: np.ndarray, r2: float, max_points: int = 20_000,
                    seed: int = 0, unit: str = LOG_UNIT) -> go.Figure:
    """Scatter of imputed against true values (hidden entries only, in ``unit``) with the identity line; the
    title gives ``r2``, the R² of all hidden values pooled."""
    truth, imputed = np.asarray(truth, dtype=float).ravel(), np.asarray(imputed, dtype=float).ravel()
    if truth.size > max_points:
        keep = np.random.default_rng(seed).choice(truth.size, max_points, replace=False)
        truth, imputed = truth[keep], imputed[keep]
    low = float(min(truth.min(), imputed.min())) if truth.size else 0.0
    high = float(max(truth.max(), imputed.max())) if truth.size else 1.0
    figure = go.Figure([
        go.Scattergl(x=truth, y=imputed, mode="markers", name="hidden values",
                     marker={"size": 4, "opacity": 0.35, "color": "#3366cc"},
                     hovertemplate="true %{x:.2f}<br>imputed %{y:.2f}<extra></extra>"),
        go.Scatter(x=[low, high], y=[low, high], mode="lines", name="y = x",
                   line={"color": "#444444", "dash": "dash"}, hoverinfo="skip"),
    ])
    figure.update_layout(template=TEMPLATE, title=f"Imputed vs true, all hidden values pooled: R² = {r2:.3f}",
                         xaxis_title=f"True expression ({unit})", yaxis_title=f"Imputed expression ({unit})",
                         height=460, margin={"l": 10, "r": 10, "t": 50, "b": 50},
                         legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"})
    return figure


def expression_preview(values: pd.DataFrame, observed: pd.DataFrame, unit: str, max_samples: int = 30,
                       max_genes: int = 60) -> go.Figure:
    """Side-by-side heat maps of the upload (missing cells blank) and the imputed matrix.

    Shows the first ``max_samples`` samples and ``max_genes`` of the imputed genes, those with both
    observed and missing values first (then the most missing), so the filled gaps are visible.
    """
    rows = values.index[:max_samples]
    missing = (~observed.loc[rows]).sum(axis=0)
    imputed = values.loc[rows].notna().all(axis=0)  # features the model filled (not unknown ones)
    mixed = (missing > 0) & (missing < len(rows))
    rank = pd.DataFrame({"mixed": mixed, "missing": missing})[imputed]
    columns = rank.sort_values(["mixed", "missing"], ascending=False, kind="stable").index[:max_genes]
    shown = values.loc[rows, columns]
    mask = observed.loc[rows, columns].to_numpy()
    status = np.where(mask, "observed", "imputed")
    figure = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.03,
                           subplot_titles=("Upload (blank = missing)", "Imputed"))
    z_all = shown.to_numpy(dtype=float)
    finite = z_all[np.isfinite(z_all)]
    zmin, zmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    for col, z in ((1, np.where(mask, z_all, np.nan)), (2, z_all)):
        figure.add_trace(go.Heatmap(
            z=z, x=[str(c) for c in columns], y=[str(r) for r in rows], customdata=status,
            colorscale="Viridis", zmin=zmin, zmax=zmax, showscale=col == 2,
            colorbar={"title": {"text": unit}, "thickness": 14},
            hovertemplate="%{y} · %{x}<br>%{z:.3g} (%{customdata})<extra></extra>",
        ), row=1, col=col)
    figure.update_xaxes(title_text="Gene", tickangle=-60, tickfont={"size": 9})
    figure.update_yaxes(title_text="Sample", row=1, col=1)
    figure.update_layout(template=TEMPLATE, height=max(320, 16 * len(rows) + 200),
                         margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure


def interval_chart(result_values: pd.Series, lower: pd.Series, upper: pd.Series, observed: pd.Series,
                   unit: str, max_genes: int = 40, label: str = "5–95 % spread over noise draws") -> go.Figure:
    """One sample's imputed values with their intervals (widest first; ``label`` says what they are)."""
    imputed = (~observed) & result_values.notna()
    width = (upper - lower)[imputed].sort_values(ascending=False)
    genes = width.index[:max_genes]
    figure = go.Figure(go.Scatter(
        x=genes.astype(str), y=result_values[genes], mode="markers", name=f"imputed ({label})",
        marker={"size": 7, "color": "#d62728"},
        error_y={"type": "data", "symmetric": False, "array": (upper - result_values)[genes],
                 "arrayminus": (result_values - lower)[genes], "color": "#d62728", "thickness": 1.2},
        hovertemplate="<b>%{x}</b><br>%{y:.3g}<extra></extra>",
    ))
    figure.update_layout(template=TEMPLATE, height=420, xaxis={"title": "Gene", "tickangle": -60},
                         yaxis_title=f"Imputed expression ({unit})",
                         title=f"Imputed values with their intervals: {label} (widest first)",
                         margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return figure


def calibration_curves(table: pd.DataFrame) -> go.Figure:
    """Empirical against nominal coverage, one line per missing rate (pooled rows of
    :func:`~gtex_models.models.calibration.coverage_table`), the diagonal as reference."""
    pooled = table[table["group"] == "all"]
    figure = go.Figure(go.Scatter(x=[0.5, 1.0], y=[0.5, 1.0], mode="lines", name="perfect calibration",
                                  line={"dash": "dot", "color": "#888888"}, hoverinfo="skip"))
    for rate, rows in pooled.groupby("missing_rate"):
        figure.add_trace(go.Scatter(x=rows["level"], y=rows["coverage"], mode="lines+markers",
                                    name=f"{rate:.0%} missing",
                                    hovertemplate="nominal %{x:.0%}<br>empirical %{y:.1%}<extra></extra>"))
    figure.update_layout(template=TEMPLATE, height=400, xaxis={"title": "Nominal level", "tickformat": ".0%"},
                         yaxis={"title": "Empirical coverage (test donors)", "tickformat": ".0%"},
                         margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return figure


def coverage_by_group(table: pd.DataFrame, level: float, group: str = "Group") -> go.Figure:
    """Empirical coverage of each group at nominal ``level`` (one bar series per missing rate); ``group``: the
    axis title."""
    rows = table[(table["group"] != "all") & np.isclose(table["level"], level)]
    figure = go.Figure()
    for rate, part in rows.groupby("missing_rate"):
        figure.add_trace(go.Bar(x=part["group"], y=part["coverage"], name=f"{rate:.0%} missing",
                                hovertemplate="%{x}<br>%{y:.1%}<extra></extra>"))
    figure.add_hline(y=level, line={"dash": "dot", "color": "#222222"}, annotation_text=f"nominal {level:.0%}")
    low = float(rows["coverage"].min()) if len(rows) else level
    figure.update_layout(template=TEMPLATE, barmode="group", height=420,
                         xaxis={"title": group, "tickangle": -50, "tickfont": {"size": 9}},
                         yaxis={"title": "Empirical coverage", "tickformat": ".0%", "range": [min(low, level) - 0.05, 1]},
                         margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return figure


# ----------------------------------------------------------------------------- model card
def training_curves(history: Mapping[str, Any]) -> go.Figure:
    """Per-epoch training losses (one line per objective) and validation loss, best epoch marked."""
    figure = go.Figure()
    for name, losses in (history.get("train_loss") or {}).items():
        figure.add_trace(go.Scatter(x=list(range(1, len(losses) + 1)), y=losses, mode="lines",
                                    name=f"train · {name}"))
    valid = history.get("valid_loss") or []
    if valid:
        figure.add_trace(go.Scatter(x=list(range(1, len(valid) + 1)), y=valid, mode="lines",
                                    name="validation", line={"dash": "dash", "color": "#222222"}))
    best = history.get("best_epoch")
    if best:
        figure.add_vline(x=best, line={"color": "#2ca02c", "dash": "dot"}, annotation_text=f"best epoch {best}")
    figure.update_layout(template=TEMPLATE, height=400, xaxis_title="Epoch",
                         yaxis_title="Loss (MSE, model space)", margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0})
    return figure


def benchmark_bars(records: pd.DataFrame) -> go.Figure:
    """Mean R² (±1 SD across genes) per method, one colour per scenario."""
    figure = go.Figure()
    for scenario, rows in records.groupby("scenario", sort=False):
        figure.add_trace(go.Bar(x=rows["method"], y=rows["r2_mean"], name=str(scenario),
                                error_y={"type": "data", "array": rows["r2_std"]},
                                hovertemplate="<b>%{x}</b><br>mean R² %{y:.3f}<extra>" + str(scenario) + "</extra>"))
    figure.update_layout(template=TEMPLATE, barmode="group", height=380, xaxis_title="Method",
                         yaxis_title="Mean R² per gene (±1 SD)", legend={"title": {"text": "Scenario"}},
                         margin={"l": 10, "r": 10, "t": 30, "b": 50})
    return figure


def gene_r2_by_tissue(per_tissue: Mapping[str, pd.DataFrame], gene: str, group: str = "tissue") -> go.Figure:
    """One gene's R² in each tissue, one bar series per model (``tissue``, ``gene``, ``r2`` tables)."""
    figure = go.Figure()
    for label, table in per_tissue.items():
        rows = table[table["gene"] == gene].sort_values("tissue")
        figure.add_trace(go.Bar(x=rows["tissue"], y=rows["r2"], name=label,
                                hovertemplate="%{x}<br>R² %{y:.3f}<extra>" + label + "</extra>"))
    figure.update_layout(template=TEMPLATE, barmode="group", height=400, title=f"{gene}: R² per {group}",
                         xaxis={"title": group.capitalize(), "tickangle": -50, "tickfont": {"size": 10}},
                         yaxis_title=R2_TITLE, legend={"orientation": "h", "y": 1.02, "x": 1,
                                                       "xanchor": "right", "yanchor": "bottom"},
                         margin={"l": 10, "r": 10, "t": 60, "b": 10})
    return figure


def panel_r2_by_group(per_group: pd.DataFrame, title: str = "") -> go.Figure:
    """Bars of each group's R² of the genes outside a panel (``tissue``, ``r2``, ``n_samples``), best first."""
    table = per_group.sort_values("r2", ascending=False)
    colors = group_colors(table["tissue"].tolist())
    figure = go.Figure(go.Bar(
        x=table["tissue"], y=table["r2"], marker_color=[colors[t] for t in table["tissue"]],
        customdata=table["n_samples"],
        hovertemplate="<b>%{x}</b><br>R² %{y:.3f}<br>%{customdata} test sample(s)<extra></extra>"))
    figure.update_layout(template=TEMPLATE, title=title, height=420, margin={"t": 50, "b": 10},
                         yaxis={"title": "R² of the genes outside the panel (pooled)", "range": r2_range(table["r2"])},
                         xaxis={"title": "", "tickangle": -45})
    return figure


def panel_curve(curve: pd.DataFrame) -> go.Figure:
    """R² of the genes outside the panel against panel size, one line per strategy (``strategy``, ``k``, ``r2``)."""
    figure = go.Figure()
    for strategy, rows in curve.groupby("strategy", sort=False):
        rows = rows.sort_values("k")
        figure.add_trace(go.Scatter(x=rows["k"], y=rows["r2"], mode="lines+markers", name=strategy,
                                    hovertemplate=f"<b>{strategy}</b><br>%{{x}} genes<br>R² %{{y:.3f}}<extra></extra>"))
    figure.update_layout(template=TEMPLATE, height=400, margin={"t": 30, "b": 10}, legend_title_text="Panel",
                         xaxis={"title": "panel size (genes)", "type": "log"},
                         yaxis={"title": "mean per-gene R², genes outside the panel", "range": r2_range(curve["r2"])})
    return figure
