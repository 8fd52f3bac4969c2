"""Closed-loop scenarios: batch/offline (throughput) and single-stream (latency).

Both issue the next query when the previous one completes, so the scheduled time of a query
is its issue time and latency = completed - issued. Warm-up runs the same loop first and is
recorded apart.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from harness.core import stats
from harness.core.clock import now_ns
from harness.core.metrics import Metric
from harness.measure.scenarios.base import (
    CellContext,
    Scenario,
    ScenarioOptions,
    ScenarioResult,
    StopRule,
    closed_loop,
)
from harness.measure.scenarios.summary import latency_metrics, window_throughput

POOL = 8  # distinct staged batches, reused cyclically


def _measure(ctx: CellContext, batch_size: int, stop: StopRule) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    pool = [ctx.batch(batch_size, i) for i in range(POOL)]
    infer = ctx.backend.infer
    warm_stop = StopRule(
        min_duration_s=stop.warmup_s,
        min_queries=max(stop.warmup_queries, 1),
        max_duration_s=max(stop.warmup_s * 4, 1.0) + 30.0,
        warmup_s=0,
        warmup_queries=0,
    )
    w_starts, w_ends = closed_loop(infer, itertools.cycle(pool), warm_stop, now_ns)
    warmup = {
        "queries": len(w_starts),
        "duration_s": (w_ends[-1] - w_starts[0]) / 1e9 if w_starts else 0.0,
        "first_query_ms": (w_ends[0] - w_starts[0]) / 1e6 if w_starts else None,
    }
    discarded: list[dict[str, Any]] = []
    with ctx.window():
        for attempt in range(stop.max_attempts):
            starts, ends = closed_loop(infer, itertools.cycle(pool), stop, now_ns)
            if attempt + 1 == stop.max_attempts:
                break
            e = np.asarray(ends, dtype=np.int64)
            wt = window_throughput(e, np.full(e.size, batch_size, dtype=np.int64))
            steady = stats.steady_state(wt) if wt.size >= 3 else None
            if steady is None or steady.stable:
                break
            discarded.append(
                {
                    "queries": len(starts),
                    "steady_state_ratio": float(steady.ratio),
                    "throughput": len(starts) * batch_size / ((ends[-1] - starts[0]) / 1e9),
                }
            )
    warmup["discarded_unstable_attempts"] = discarded
    return np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64), warmup


def _common(
    starts: np.ndarray, ends: np.ndarray, batch_size: int, stop: StopRule, headline_q: float
) -> tuple[dict[str, np.ndarray], dict[str, Metric], dict[str, bool], dict[str, Any]]:
    n = int(starts.size)
    lat = ends - starts
    elapsed_ns = int(ends[-1] - starts[0]) if n else 0
    samples = np.full(n, batch_size, dtype=np.int64)
    queries = {
        "query_id": np.arange(n, dtype=np.int64),
        "batch_size": samples,
        "scheduled_ns": starts,
        "issued_ns": starts,
        "completed_ns": ends,
    }
    metrics = latency_metrics(lat, headline_q)
    if elapsed_ns > 0:
        metrics["throughput"] = Metric(value=n * batch_size / (elapsed_ns / 1e9), unit="samples/s")
        metrics["queries_per_s"] = Metric(value=n / (elapsed_ns / 1e9), unit="queries/s")
    wt = window_throughput(ends, samples)
    steady = stats.steady_state(wt) if wt.size >= 3 else None
    validity = {
        "min_duration_met": elapsed_ns >= stop.min_duration_s * 1e9,
        "min_queries_met": n >= stop.min_queries,
    }
    extra: dict[str, Any] = {"elapsed_ns": elapsed_ns}
    if steady is not None:
        validity["steady_state"] = bool(steady.stable)
        extra["window_throughput"] = [float(x) for x in wt]
        extra["steady_state"] = {"ratio": float(steady.ratio), "rule": "max/min of the last 3 windows <= 1.10"}
    return queries, metrics, validity, extra


class OfflineScenario(Scenario):
    """Batch/offline [MLPerf Offline]: back-to-back batches of ``batch_size``; headline
    samples/s. A batch-size sweep is expressed in the suite and expands to one cell per size."""

    name: ClassVar[str] = "offline"
    headline: ClassVar[str] = "throughput"

    def run(self, ctx: CellContext) -> ScenarioResult:
        o = self.options
        starts, ends, warmup = _measure(ctx, o.batch_size, o.stop)
        w = (int(starts[0]), int(ends[-1])) if starts.size else None
        queries, metrics, validity, extra = _common(starts, ends, o.batch_size, o.stop, 0.99)
        return ScenarioResult(queries, metrics, validity, warmup, extra=extra, window_ns=w)


class SingleStreamOptions(ScenarioOptions):
    target_percentile: float = Field(0.90, gt=0, lt=1, description="headline percentile (MLPerf: 0.90)")
    confidence: float = Field(0.99, gt=0, lt=1, description="early-stopping confidence")


class SingleStreamScenario(Scenario):
    """Single-stream [MLPerf SingleStream]: one query at a time; headline p90 latency with
    MLPerf early stopping (the conservative order statistic the criterion allows)."""

    name: ClassVar[str] = "single-stream"
    Options: ClassVar[type[ScenarioOptions]] = SingleStreamOptions
    headline: ClassVar[str] = "latency_early_stop"

    def run(self, ctx: CellContext) -> ScenarioResult:
        o = self.options
        assert isinstance(o, SingleStreamOptions)
        starts, ends, warmup = _measure(ctx, o.batch_size, o.stop)
        w = (int(starts[0]), int(ends[-1])) if starts.size else None
        queries, metrics, validity, extra = _common(starts, ends, o.batch_size, o.stop, o.target_percentile)
        es = stats.early_stopping_percentile(ends - starts, o.target_percentile, o.confidence)
        validity["early_stopping_met"] = bool(es.valid)
        if es.valid:
            metrics["latency_early_stop"] = Metric(
                value=es.conservative_value / 1e6,
                unit="ms",
                method=f"MLPerf early stopping, p{o.target_percentile * 100:g} at confidence {o.confidence}",
            )
        extra["early_stopping"] = {"n": es.n, "min_queries": es.min_queries}
        return ScenarioResult(queries, metrics, validity, warmup, extra=extra, window_ns=w)
