"""Altair chart builders for the app: each takes a table from a view model (:mod:`harness.app.data`,
:mod:`harness.app.compare_data`, ...) and returns a chart. Provenance is in every tooltip and,
where a chart mixes kinds, in the point shape or bar opacity. Every axis names its unit.
Invalid cells and SLO misses (the tables' ``flag`` column) are marked: dashed CDF lines, red or
orange outlines on bars, rings around points, with a "marked" legend. Legends sit on the right
with short cell names, so the plot keeps its height however many cells are chosen.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd

#: chart builders return Any: altair's chained builders are untyped (their methods return Any)
_LEGEND = {"orient": "right", "labelLimit": 340, "symbolLimit": 40}
FLAG_DOMAIN = ["invalid cell", "SLO missed"]
FLAG_RANGE = ["#d62728", "#ff7f0e"]


def _flag_stroke() -> Any:
    return alt.Stroke("flag:N", title="marked", scale=alt.Scale(domain=FLAG_DOMAIN, range=FLAG_RANGE))


def _flag_rings(df: pd.DataFrame, x: Any, y: Any) -> Any | None:
    """Open rings around the points whose ``flag`` is set (None when none is)."""
    flagged = df[df["flag"].astype(str) != ""] if "flag" in df else df.iloc[0:0]
    if flagged.empty:
        return None
    return (
        alt.Chart(flagged)
        .mark_point(size=320, filled=False, strokeWidth=2.5)
        .encode(x=x, y=y, stroke=_flag_stroke(), tooltip=["key", "flag"])
    )


def latency_cdf_chart(cdf: pd.DataFrame) -> Any:
    """Per-query latency CDF of each cell; an invalid cell's line is dashed."""
    cdf = cdf.assign(line=[f or "valid" for f in cdf["flag"]])
    return (
        alt.Chart(cdf)
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("latency_ms:Q", title="latency (ms, completed - scheduled)", scale=alt.Scale(type="log")),
            y=alt.Y("cdf:Q", title="fraction of queries", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("cell:N", title="cell", legend=_LEGEND),
            strokeDash=alt.StrokeDash(
                "line:N", title="line", scale=alt.Scale(domain=["valid", "invalid cell"], range=[[1, 0], [6, 3]])
            ),
            tooltip=[
                "cell",
                "key",
                alt.Tooltip("latency_ms:Q", title="latency (ms)", format=".4g"),
                alt.Tooltip("cdf:Q", format=".3f"),
                "n_queries",
                "provenance",
                "flag",
            ],
        )
        .properties(height=320)
    )


def percentile_bars(long: pd.DataFrame) -> Any:
    """Latency percentiles per cell with CI whiskers where the metric has an interval."""
    base = alt.Chart(long).encode(
        x=alt.X(
            "metric:N", title=None, sort=["latency_p50", "latency_p90", "latency_p99"], axis=alt.Axis(labelAngle=0)
        ),
        xOffset="cell:N",
        color=alt.Color("cell:N", title="cell", legend=_LEGEND),
    )
    bars = base.mark_bar(strokeWidth=3).encode(
        y=alt.Y("value:Q", title="latency (ms)"),
        opacity=alt.Opacity("kind:N", title="provenance", legend=alt.Legend(orient="right")),
        stroke=_flag_stroke(),
        tooltip=[
            "cell",
            "flag",
            "metric",
            alt.Tooltip("value:Q", format=".4g"),
            alt.Tooltip("ci_low:Q", format=".4g"),
            alt.Tooltip("ci_high:Q", format=".4g"),
            "provenance",
        ],
    )
    ci = long.dropna(subset=["ci_low", "ci_high"])
    if ci.empty:
        return bars.properties(height=300)
    whiskers = (
        alt.Chart(ci)
        .mark_rule(color="black")
        .encode(
            x=alt.X("metric:N", sort=["latency_p50", "latency_p90", "latency_p99"]),
            xOffset="cell:N",
            y="ci_low:Q",
            y2="ci_high:Q",
        )
    )
    return (bars + whiskers).properties(height=300)


def throughput_chart(df: pd.DataFrame) -> Any:
    x = alt.X("batch_size:Q", title="batch size (samples per batch)", scale=alt.Scale(type="log", base=2))
    y = alt.Y("throughput:Q", title="throughput (samples/s)")
    line = (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=x,
            y=y,
            color=alt.Color("series:N", legend=_LEGEND),
            shape=alt.Shape("provenance:N"),
            tooltip=[
                "key",
                "batch_size",
                alt.Tooltip("throughput:Q", title="throughput (samples/s)", format=",.4g"),
                "provenance",
                "flag",
                "failed_checks",
            ],
        )
    )
    rings = _flag_rings(df, x, y)
    return (line if rings is None else alt.layer(line, rings)).properties(height=300)


def latency_qps_chart(points: pd.DataFrame, slo: pd.DataFrame, peaks: pd.DataFrame, percentile: str) -> Any:
    x = alt.X("offered_qps:Q", title="offered load (queries/s)")
    y = alt.Y("latency_ms:Q", title=f"{percentile} (ms)")
    layers = [
        alt.Chart(points)
        .mark_line(point=True)
        .encode(
            x=x,
            y=y,
            color=alt.Color("series:N", legend=_LEGEND),
            shape=alt.Shape("source:N"),
            tooltip=[
                "key",
                "source",
                alt.Tooltip("offered_qps:Q", title="offered (queries/s)", format=",.4g"),
                alt.Tooltip("latency_ms:Q", title="latency (ms)", format=".4g"),
                "passed",
                "provenance",
                "flag",
            ],
        )
    ]
    rings = _flag_rings(points, x, y)
    if rings is not None:
        layers.append(rings)
    if not slo.empty:
        layers.append(
            alt.Chart(slo)
            .mark_rule(strokeDash=[6, 3], color="red")
            .encode(y="slo_ms:Q", tooltip=["series", alt.Tooltip("slo_ms:Q", title="SLO (ms)")])
        )
    if not peaks.empty:
        layers.append(
            alt.Chart(peaks)
            .mark_rule(color="green")
            .encode(
                x="peak_qps:Q", tooltip=["series", alt.Tooltip("peak_qps:Q", title="peak (queries/s)"), "provenance"]
            )
        )
    return alt.layer(*layers).properties(height=320)


def metric_bars(long: pd.DataFrame, title: str) -> Any:
    """One small bar chart per metric (independent scales; each panel's header names the
    metric and its unit), bars per cell, opacity by provenance kind, invalid cells outlined."""
    df = long.assign(panel=[f"{m} ({u})" if u else m for m, u in zip(long["metric"], long["unit"])])
    return (
        alt.Chart(df)
        .mark_bar(strokeWidth=3)
        .encode(
            x=alt.X("cell:N", title=None, axis=alt.Axis(labels=False, ticks=False)),
            y=alt.Y("value:Q", title=None),
            color=alt.Color("cell:N", title="cell", legend=_LEGEND),
            opacity=alt.Opacity("kind:N", title="provenance"),
            stroke=_flag_stroke(),
            tooltip=["cell", "metric", alt.Tooltip("value:Q", format=".4g"), "unit", "provenance", "flag"],
        )
        .properties(width=180, height=160)
        .facet(
            facet=alt.Facet("panel:N", title=title),
            columns=3,
        )
        .resolve_scale(y="independent")
    )


def history_chart(hist: pd.DataFrame, metric: str, verdicts: dict[str, str] | None = None, x_axis: str = "time") -> Any:
    """``metric`` over runs with CI whiskers; points coloured by the gate verdict against the
    previous run (``verdicts``: run id -> verdict). ``x_axis``: ``time`` (run time, UTC) or
    ``commit`` (one slot per run, labelled by commit, in time order)."""
    df = hist.dropna(subset=["value"]).copy()
    df["time"] = df["time"].astype(str)
    df["run"] = [f"{(c or 'no commit')[:8]} · {t[5:16]}" for c, t in zip(df["commit"], df["created_utc"])]
    if verdicts:
        df["verdict"] = [verdicts.get(r, "baseline") for r in df["run_id"]]
    else:
        df["verdict"] = "not gated"
    enc_x = (
        alt.X("time:T", title="run time (UTC)")
        if x_axis == "time"
        else alt.X("run:O", title="commit · run time (UTC)", sort=list(df["run"]), axis=alt.Axis(labelAngle=-30))
    )
    unit = next((str(u) for u in df.get("unit", pd.Series(dtype=object)).dropna() if u), "")
    y_title = f"{metric} ({unit})" if unit else metric
    line = alt.Chart(df).mark_line(color="gray").encode(x=enc_x, y=alt.Y("value:Q", title=y_title))
    pts = (
        alt.Chart(df)
        .mark_point(size=90, filled=True)
        .encode(
            x=enc_x,
            y="value:Q",
            color=alt.Color(
                "verdict:N",
                scale=alt.Scale(
                    domain=[
                        "baseline",
                        "no change",
                        "improvement",
                        "inconclusive",
                        "regression",
                        "failed",
                        "not gated",
                        "not applicable",
                        "error",
                    ],
                    range=[
                        "#888888",
                        "#4c78a8",
                        "#54a24b",
                        "#f2cf5b",
                        "#e45756",
                        "#b00000",
                        "#888888",
                        "#bbbbbb",
                        "#000000",
                    ],
                ),
            ),
            tooltip=[
                "run_id",
                "commit",
                "created_utc",
                alt.Tooltip("value:Q", format=".4g"),
                "unit",
                "provenance",
                "verdict",
            ],
        )
    )
    layers = [line, pts]
    ci = df.dropna(subset=["ci_low", "ci_high"])
    if not ci.empty:
        layers.append(alt.Chart(ci).mark_rule().encode(x=enc_x, y="ci_low:Q", y2="ci_high:Q"))
    return alt.layer(*layers).properties(height=320)


def pareto_chart(df: pd.DataFrame) -> Any:
    """Cost against latency of each ranked profile; the y axis names the latency metric the
    frame holds (``latency_metric``: p99 latency or TTFT)."""
    what = str(df["latency_metric"].iloc[0]) if "latency_metric" in df and len(df) else "p99 latency"
    pts = (
        alt.Chart(df)
        .mark_point(size=110, filled=True)
        .encode(
            x=alt.X("usd_per_month:Q", title="cost (USD/month, conservative)", scale=alt.Scale(type="log")),
            y=alt.Y("latency_ms:Q", title=f"{what} (ms, conservative end)", scale=alt.Scale(type="log")),
            color=alt.Color(
                "provenance:N",
                scale=alt.Scale(
                    domain=["measured", "reference", "projected", "mixed"],
                    range=["#2ca02c", "#17becf", "#d62728", "#ff7f0e"],
                ),
            ),
            shape=alt.Shape("pareto:N", title="Pareto-optimal"),
            tooltip=[
                "rank",
                "profile_id",
                "kind",
                "devices",
                alt.Tooltip("usd_per_month:Q", title="USD/month", format=",.0f"),
                alt.Tooltip("latency_ms:Q", title=f"{what} (ms)", format=".4g"),
                "provenance",
                "pareto",
            ],
        )
    )
    front = (
        alt.Chart(df[df["pareto"]].sort_values("usd_per_month"))
        .mark_line(color="black", strokeDash=[4, 2], interpolate="step-after")
        .encode(x="usd_per_month:Q", y="latency_ms:Q")
    )
    labels = (
        alt.Chart(df[df["pareto"]])
        .mark_text(align="left", dx=7, dy=-7)
        .encode(x="usd_per_month:Q", y="latency_ms:Q", text="profile_id:N")
    )
    return alt.layer(front, pts, labels).properties(height=380)


VERDICT_DOMAIN = ["regression", "improvement", "no change", "inconclusive", "untested", "not rated"]
VERDICT_RANGE = ["#e45756", "#54a24b", "#4c78a8", "#f2cf5b", "#bbbbbb", "#dddddd"]


def diff_chart(diff: pd.DataFrame) -> Any:
    """Change of each metric (per cent, B / A - 1) as a bar with its interval, coloured by
    verdict; one row per metric (per cell pair and metric for a run diff)."""
    df = diff.copy()
    pairs = df["cell_b"].nunique() > 1
    df["row"] = [f"{b} · {m}" if pairs else m for b, m in zip(df["cell_b"], df["metric"])]
    y = alt.Y("row:N", title=None, sort=list(df["row"]), axis=alt.Axis(labelLimit=420, labelOverlap=False))
    bars = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=y,
            x=alt.X("change_pct:Q", title="change B / A - 1 (%)"),
            color=alt.Color(
                "verdict:N",
                scale=alt.Scale(domain=VERDICT_DOMAIN, range=VERDICT_RANGE),
                legend=alt.Legend(orient="right"),
            ),
            tooltip=[
                "metric",
                "unit",
                alt.Tooltip("a:Q", format=".4g"),
                alt.Tooltip("b:Q", format=".4g"),
                alt.Tooltip("change_pct:Q", title="change (%)", format="+.1f"),
                alt.Tooltip("ci_low_pct:Q", title="CI low (%)", format="+.1f"),
                alt.Tooltip("ci_high_pct:Q", title="CI high (%)", format="+.1f"),
                "verdict",
                "method",
            ],
        )
    )
    layers = [bars, alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(color="black").encode(x="x:Q")]
    ci = df.dropna(subset=["ci_low_pct", "ci_high_pct"])
    if not ci.empty:
        layers.append(
            alt.Chart(ci).mark_rule(color="black", strokeWidth=2).encode(y=y, x="ci_low_pct:Q", x2="ci_high_pct:Q")
        )
    return alt.layer(*layers).properties(height=max(120, 22 * len(df)))
