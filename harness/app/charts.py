"""Altair chart builders for the app: each takes a table from a view model (:mod:`harness.app.data`,
:mod:`harness.app.compare_data`, ...) and
returns a chart. Provenance is in every tooltip and, where a chart mixes kinds, in the
point shape or bar opacity.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd

#: chart builders return Any: altair's chained builders are untyped (their methods return Any)
_LEGEND = {"orient": "bottom", "columns": 1, "labelLimit": 600}


def latency_cdf_chart(cdf: pd.DataFrame) -> Any:
    return (
        alt.Chart(cdf)
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("latency_ms:Q", title="latency (ms, completed - scheduled)", scale=alt.Scale(type="log")),
            y=alt.Y("cdf:Q", title="fraction of queries", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("key:N", title="cell", legend=_LEGEND),
            tooltip=[
                "key",
                alt.Tooltip("latency_ms:Q", format=".4g"),
                alt.Tooltip("cdf:Q", format=".3f"),
                "n_queries",
                "provenance",
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
        xOffset="key:N",
        color=alt.Color("key:N", title="cell", legend=_LEGEND),
    )
    bars = base.mark_bar().encode(
        y=alt.Y("value:Q", title="latency (ms)"),
        opacity=alt.Opacity("kind:N", title="provenance", legend=alt.Legend(orient="right")),
        tooltip=[
            "key",
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
            xOffset="key:N",
            y="ci_low:Q",
            y2="ci_high:Q",
        )
    )
    return (bars + whiskers).properties(height=300)


def throughput_chart(df: pd.DataFrame) -> Any:
    return (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=alt.X("batch_size:Q", title="batch size", scale=alt.Scale(type="log", base=2)),
            y=alt.Y("throughput:Q", title="throughput (samples/s)"),
            color=alt.Color("series:N", legend=_LEGEND),
            shape=alt.Shape("provenance:N"),
            tooltip=["key", "batch_size", alt.Tooltip("throughput:Q", format=",.4g"), "provenance"],
        )
        .properties(height=300)
    )


def latency_qps_chart(points: pd.DataFrame, slo: pd.DataFrame, peaks: pd.DataFrame, percentile: str) -> Any:
    layers = [
        alt.Chart(points)
        .mark_line(point=True)
        .encode(
            x=alt.X("offered_qps:Q", title="offered load (queries/s)"),
            y=alt.Y("latency_ms:Q", title=f"{percentile} (ms)"),
            color=alt.Color("series:N", legend=_LEGEND),
            shape=alt.Shape("source:N"),
            tooltip=[
                "key",
                "source",
                alt.Tooltip("offered_qps:Q", format=",.4g"),
                alt.Tooltip("latency_ms:Q", format=".4g"),
                "passed",
                "provenance",
            ],
        )
    ]
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
            .encode(x="peak_qps:Q", tooltip=["series", alt.Tooltip("peak_qps:Q", title="peak QPS"), "provenance"])
        )
    return alt.layer(*layers).properties(height=320)


def metric_bars(long: pd.DataFrame, title: str) -> Any:
    """One small bar chart per metric (independent scales), bars per cell, opacity by
    provenance kind."""
    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            x=alt.X("key:N", title=None, axis=alt.Axis(labels=False, ticks=False)),
            y=alt.Y("value:Q", title=None),
            color=alt.Color("key:N", title="cell", legend=_LEGEND),
            opacity=alt.Opacity("kind:N", title="provenance"),
            tooltip=["key", "metric", alt.Tooltip("value:Q", format=".4g"), "unit", "provenance"],
        )
        .properties(width=180, height=160)
        .facet(
            facet=alt.Facet("metric:N", title=title),
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
    line = alt.Chart(df).mark_line(color="gray").encode(x=enc_x, y=alt.Y("value:Q", title=metric))
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
    pts = (
        alt.Chart(df)
        .mark_point(size=110, filled=True)
        .encode(
            x=alt.X("usd_per_month:Q", title="$ / month (conservative)", scale=alt.Scale(type="log")),
            y=alt.Y("latency_ms:Q", title="p99 latency (ms, conservative end)", scale=alt.Scale(type="log")),
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
                alt.Tooltip("usd_per_month:Q", format=",.0f"),
                alt.Tooltip("latency_ms:Q", format=".4g"),
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
