"""Plotly figures of the Donors page (cross-tissue imputation per donor), testable without Streamlit."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from gtex_models.interfaces.plots import R2_TITLE, TEMPLATE, r2_range

STATUS_COLORS = {"collected": "#2ca02c", "imputed": "#d62728", "": "#e5e5e5"}


def method_boxes(boxes: pd.DataFrame, labels: Mapping[str, str], order: Sequence[str] | None = None) -> go.Figure:
    """Per-gene R² of each method in each target group, as grouped horizontal boxes (``boxes``: rows of
    :func:`gtex_models.studies.donors.box_statistics`). Groups ordered by the first method's median, best on top."""
    methods = list(dict.fromkeys(boxes["method"]))
    first = boxes[boxes["method"] == methods[0]].sort_values("median")
    tissues = list(order or first["tissue"]) + sorted(set(boxes["tissue"]) - set(order or first["tissue"]))
    figure = go.Figure()
    for method, color in zip(methods, qualitative.Plotly * 3):
        rows = boxes[boxes["method"] == method].set_index("tissue").reindex(tissues).dropna(subset=["median"])
        figure.add_trace(go.Box(
            y=rows.index.tolist(), q1=rows["q1"], median=rows["median"], q3=rows["q3"], mean=rows["mean"],
            lowerfence=rows["lowerfence"], upperfence=rows["upperfence"], orientation="h",
            name=labels.get(method, method), marker_color=color, line={"width": 1},
            hovertemplate="%{y}<extra>" + labels.get(method, method) + "</extra>"))
    figure.update_layout(template=TEMPLATE, boxmode="group", height=max(380, 16 * len(tissues) * max(1, len(methods))
                                                                          // 2 + 120),
                         xaxis={"title": R2_TITLE + ", target group over the test donors",
                                "range": r2_range(boxes["lowerfence"])},
                         yaxis={"title": None, "categoryorder": "array", "categoryarray": tissues},
                         legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"},
                         margin={"l": 10, "r": 10, "t": 40, "b": 40})
    return figure


def r2_by_sources(by_sources: pd.DataFrame, labels: Mapping[str, str]) -> go.Figure:
    """R² (pooled over target groups) against the number of the donor's other samples used, one line per method."""
    figure = go.Figure()
    for method, rows in by_sources.groupby("method", sort=False):
        figure.add_trace(go.Scatter(x=rows["n_sources"], y=rows["r2"], mode="lines+markers",
                                    name=labels.get(method, method),
                                    customdata=rows["n_targets"],
                                    hovertemplate="%{x} source(s): R² %{y:.3f} (%{customdata} targets)<extra></extra>"))
    figure.update_layout(template=TEMPLATE, height=360, xaxis={"title": "Source samples of the donor (log scale)",
                                                               "type": "log"},
                         yaxis_title="R² (per gene, pooled over target groups)",
                         margin={"l": 10, "r": 10, "t": 30, "b": 40})
    return figure


def donor_grid(status: pd.Series) -> go.Figure:
    """One donor's groups: collected (a sample), imputed (the chosen target) or neither (``status`` by group)."""
    codes = {name: i for i, name in enumerate(STATUS_COLORS)}
    values = [[codes.get(s, 2) for s in status]]
    scale = []
    for i, color in enumerate(STATUS_COLORS.values()):
        scale += [[i / 3, color], [(i + 1) / 3, color]]
    figure = go.Figure(go.Heatmap(z=values, x=status.index.astype(str), y=[""], zmin=-0.5, zmax=2.5,
                                  colorscale=scale, showscale=False, xgap=2,
                                  customdata=[[s or "not collected" for s in status]],
                                  hovertemplate="%{x}: %{customdata}<extra></extra>"))
    figure.update_layout(template=TEMPLATE, height=220, xaxis={"tickangle": -60}, margin={"l": 10, "r": 10, "t": 10,
                                                                                         "b": 10})
    return figure


def target_profile(profile: pd.DataFrame, unit: str, max_genes: int = 40) -> go.Figure:
    """A predicted profile's genes that differ most from the group's mean, with intervals and the truth if known.

    ``profile``: index genes, columns ``predicted``, ``lower``, ``upper``, ``group_mean`` and optionally ``truth``.
    """
    order = (profile["predicted"] - profile["group_mean"]).abs().sort_values(ascending=False).index[:max_genes]
    rows = profile.loc[order]
    figure = go.Figure(go.Scatter(
        x=rows.index.astype(str), y=rows["predicted"], mode="markers", name="predicted (calibrated interval)",
        marker={"size": 7, "color": "#d62728"},
        error_y={"type": "data", "symmetric": False, "array": rows["upper"] - rows["predicted"],
                 "arrayminus": rows["predicted"] - rows["lower"], "thickness": 1.2, "color": "#d62728"}))
    figure.add_trace(go.Scatter(x=rows.index.astype(str), y=rows["group_mean"], mode="markers", name="group mean",
                                marker={"symbol": "line-ew-open", "size": 12, "color": "#555555"}))
    if "truth" in rows and rows["truth"].notna().any():
        figure.add_trace(go.Scatter(x=rows.index.astype(str), y=rows["truth"], mode="markers", name="measured (hidden)",
                                    marker={"symbol": "x", "size": 8, "color": "#1f77b4"}))
    figure.update_layout(template=TEMPLATE, height=420, xaxis={"title": "Gene (most donor-specific first)",
                                                               "tickangle": -60},
                         yaxis_title=f"Expression ({unit})", legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"},
                         margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure


def profile_r2(truth: np.ndarray, predicted: np.ndarray, group_mean: np.ndarray) -> float:
    """R² of one predicted profile across genes, against the group's mean profile as reference."""
    total = float(((truth - group_mean) ** 2).sum())
    return 1.0 - float(((truth - predicted) ** 2).sum()) / total if total > 0 else float("nan")
