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
from harness.core.stop import StopRule
from harness.measure.load.recorder import DEFAULT_RAW_ROWS_CAP, RowRecorder
from harness.measure.scenarios.base import (
    CellContext,
    Scenario,
    ScenarioOptions,
    ScenarioResult,
    closed_loop_recorded,
)
from harness.measure.scenarios.summary import latency_metrics, window_throughput

POOL = 8  # distinct staged batches, reused cyclically


def _recorder(cap: int, seed: int) -> RowRecorder:
    return RowRecorder(("issued_ns", "completed_ns"), cap, start_col="issued_ns", seed=seed)


def _window_throughput(rec: RowRecorder, batch_size: int) -> np.ndarray:
    """Samples/s per window: from the exact rows, or from the recorder's completion bins."""
    if rec.overflowed:
        return rec.window_throughput(batch_size)[0]
    e = rec.exact()["completed_ns"]
    return window_throughput(e, np.full(e.size, batch_size, dtype=np.int64))


def _measure(ctx: CellContext, batch_size: int, stop: StopRule, cap: int) -> tuple[RowRecorder, dict[str, Any]]:
    pool = [ctx.batch(batch_size, i) for i in range(POOL)]
    infer = ctx.backend.infer
    warm_stop = StopRule(
        min_duration_s=stop.warmup_s,
        min_queries=max(stop.warmup_queries, 1),
        max_duration_s=max(stop.warmup_s * 4, 1.0) + 30.0,
        max_queries=None,
        warmup_s=0,
        warmup_queries=0,
        max_attempts=1,
    )
    # warm-up rows are not kept: a small recorder keeps the first and last rows in bounded memory
    warm = RowRecorder(("issued_ns", "completed_ns"), 1, start_col="issued_ns", reservoir_rows=1, chunk_rows=4096)
    n_warm = closed_loop_recorded(infer, itertools.cycle(pool), warm_stop, now_ns, warm)
    first, last = warm.first_row(), warm.last_row()
    warmup: dict[str, Any] = {
        "queries": n_warm,
        "duration_s": (last["completed_ns"] - first["issued_ns"]) / 1e9 if n_warm else 0.0,
        "first_query_ms": (first["completed_ns"] - first["issued_ns"]) / 1e6 if n_warm else None,
    }
    del warm
    discarded: list[dict[str, Any]] = []
    with ctx.window():
        for attempt in range(stop.max_attempts):
            rec = _recorder(cap, ctx.seed)
            n = closed_loop_recorded(infer, itertools.cycle(pool), stop, now_ns, rec)
            if attempt + 1 == stop.max_attempts:
                break
            wt = _window_throughput(rec, batch_size)
            steady = stats.steady_state(wt) if wt.size >= 3 else None
            if steady is None or steady.stable:
                break
            discarded.append(
                {
                    "queries": n,
                    "steady_state_ratio": float(steady.ratio),
                    "throughput": n
                    * batch_size
                    / ((rec.last_row()["completed_ns"] - rec.first_row()["issued_ns"]) / 1e9),
                }
            )
    warmup["discarded_unstable_attempts"] = discarded
    return rec, warmup


def _common(
    rec: RowRecorder, batch_size: int, stop: StopRule, headline_q: float
) -> tuple[dict[str, np.ndarray], dict[str, Metric], dict[str, bool], dict[str, Any]]:
    n = rec.total_rows
    elapsed_ns = int(rec.last_row()["completed_ns"] - rec.first_row()["issued_ns"]) if n else 0
    rows = rec.rows()
    kept = int(rows["query_id"].size)
    queries = {
        "query_id": rows["query_id"],
        "batch_size": np.full(kept, batch_size, dtype=np.int64),
        "scheduled_ns": rows["issued_ns"],
        "issued_ns": rows["issued_ns"],
        "completed_ns": rows["completed_ns"],
    }
    if "row_weight" in rows:
        queries["row_weight"] = rows["row_weight"]
    metrics = rec.latency_metrics(headline_q) if rec.overflowed else latency_metrics(rec.latencies_ns(), headline_q)
    if elapsed_ns > 0:
        metrics["throughput"] = Metric(value=n * batch_size / (elapsed_ns / 1e9), unit="samples/s")
        metrics["queries_per_s"] = Metric(value=n / (elapsed_ns / 1e9), unit="queries/s")
    wt = _window_throughput(rec, batch_size)
    steady = stats.steady_state(wt) if wt.size >= 3 else None
    validity = {
        "min_duration_met": elapsed_ns >= stop.min_duration_s * 1e9,
        "min_queries_met": n >= stop.min_queries,
    }
    extra: dict[str, Any] = {"elapsed_ns": elapsed_ns, "raw_rows": rec.record_info()}
    if steady is not None:
        validity["steady_state"] = bool(steady.stable)
        extra["window_throughput"] = [float(x) for x in wt]
        extra["steady_state"] = {"ratio": float(steady.ratio), "rule": "max/min of the last 3 windows <= 1.10"}
    return queries, metrics, validity, extra


def _window(rec: RowRecorder) -> tuple[int, int] | None:
    """(first issue, last completion) of the measurement, None when nothing ran."""
    if not rec.total_rows:
        return None
    return int(rec.first_row()["issued_ns"]), int(rec.last_row()["completed_ns"])


class ClosedOptions(ScenarioOptions):
    """Options shared by the closed-loop scenarios."""

    raw_rows_cap: int = Field(
        DEFAULT_RAW_ROWS_CAP,
        ge=1,
        description="raw per-query rows kept exactly; past it an HDR latency histogram and a uniform "
        "reservoir of rows (harness.measure.load.recorder) keep memory and disk bounded",
    )


class OfflineScenario(Scenario):
    """Batch/offline [MLPerf Offline]: back-to-back batches of ``batch_size``; headline
    samples/s. A batch-size sweep is expressed in the suite and expands to one cell per size."""

    name: ClassVar[str] = "offline"
    Options: ClassVar[type[ScenarioOptions]] = ClosedOptions
    headline: ClassVar[str] = "throughput"

    def run(self, ctx: CellContext) -> ScenarioResult:
        o = self.options
        assert isinstance(o, ClosedOptions)
        rec, warmup = _measure(ctx, o.batch_size, o.stop, o.raw_rows_cap)
        w = _window(rec)
        queries, metrics, validity, extra = _common(rec, o.batch_size, o.stop, 0.99)
        return ScenarioResult(queries, metrics, validity, warmup, extra=extra, window_ns=w)


class SingleStreamOptions(ClosedOptions):
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
        rec, warmup = _measure(ctx, o.batch_size, o.stop, o.raw_rows_cap)
        w = _window(rec)
        queries, metrics, validity, extra = _common(rec, o.batch_size, o.stop, o.target_percentile)
        method = f"MLPerf early stopping, p{o.target_percentile * 100:g} at confidence {o.confidence}"
        if rec.overflowed:
            valid, n_es, min_q, value_ns = rec.early_stopping(o.target_percentile, o.confidence)
            method += f"; order statistic from the {rec.method()}"
        else:
            es = stats.early_stopping_percentile(rec.latencies_ns(), o.target_percentile, o.confidence)
            valid, n_es, min_q, value_ns = es.valid, es.n, es.min_queries, es.conservative_value
        validity["early_stopping_met"] = bool(valid)
        if valid:
            metrics["latency_early_stop"] = Metric(value=value_ns / 1e6, unit="ms", method=method)
        extra["early_stopping"] = {"n": n_es, "min_queries": min_q}
        return ScenarioResult(queries, metrics, validity, warmup, extra=extra, window_ns=w)
