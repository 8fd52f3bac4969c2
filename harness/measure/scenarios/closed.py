"""Closed-loop scenarios: batch/offline (throughput) and single-stream (latency).

Both issue the next query when the previous one completes, so the scheduled time of a query
is its issue time and latency = completed - issued. Warm-up runs the same loop first and is
recorded apart.

Steady state (:func:`harness.core.batch_means.closed_loop_stability`): the throughput of the
last third of the run against the first, each third at least 1 s with 50 completions, with a
batch-means interval. ``stable`` or ``unstable`` ends the measurement; ``inconclusive``
extends it (the loop runs on, doubling the elapsed time, until the verdict is reached, or
``stop.max_duration_s``, ``stop.max_queries`` or ``raw_rows_cap`` is reached; the short pause
to compute each verdict is recorded as ``extension_gaps_ns``). Only ``unstable`` makes the
cell invalid and, with ``stop.max_attempts`` > 1, repeats the measurement.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from harness.core import batch_means, early_stopping
from harness.core.clock import now_ns
from harness.core.metrics import Metric
from harness.core.stop import StopRule
from harness.measure.load.recorder import RowRecorder
from harness.measure.scenarios.base import (
    BoundedRowsOptions,
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


def _stability(recs: list[RowRecorder], batch_size: int) -> batch_means.StabilityResult:
    """Steady-state verdict of the rows recorded so far (exact rows, or the completion bins of
    a recorder that overflowed its cap). Window minimums are read at call time."""
    kw: dict[str, Any] = {
        "min_window_s": batch_means.MIN_WINDOW_S,
        "min_window_completions": batch_means.MIN_WINDOW_COMPLETIONS,
    }
    if len(recs) == 1 and recs[0].overflowed:
        rec = recs[0]
        m = batch_means.SUB_BATCHES
        rates, _ = rec.window_throughput(batch_size, 3 * m)
        span_s = (rec.last_row()["completed_ns"] - rec.first_row()["completed_ns"]) / 1e9
        if rates.size != 3 * m or span_s <= 0:
            nan = float("nan")
            return batch_means.StabilityResult("inconclusive", nan, nan, nan, 0.10, 0.95, 0.0, reason="no span")
        counts = rates.reshape(3, m).sum(axis=1) * (span_s / (3 * m)) / batch_size
        return batch_means.stability_from_rates(rates, span_s / 3, counts.round().astype(int), **kw)
    e = np.concatenate([r.exact()["completed_ns"] for r in recs])
    start = recs[0].first_row().get("issued_ns")
    return batch_means.closed_loop_stability(e, np.full(e.size, batch_size), start_ns=start, **kw)


def _extend_while_inconclusive(
    infer: Any, batches: Any, rec: RowRecorder, stop: StopRule, batch_size: int, cap: int, seed: int
) -> tuple[RowRecorder, batch_means.StabilityResult, dict[str, Any]]:
    """Run on while the steady-state verdict is inconclusive (see the module doc).

    Each extension is a further closed loop recorded apart, sized to double the elapsed time
    (at least to the three 1 s windows the verdict needs) within the stop rule's maximums and
    the row cap; the segments are then joined into one recorder of exact rows.
    """
    recs = [rec]
    steady = _stability(recs, batch_size)
    info: dict[str, Any] = {"extensions": 0, "extension_gaps_ns": 0}
    if not rec.total_rows:
        return rec, steady, info
    t_first = rec.first_row()["issued_ns"]
    limit_q = cap if stop.max_queries is None else min(cap, stop.max_queries)
    while steady.verdict == "inconclusive":
        if recs[-1].overflowed:
            info["stopped"] = f"raw_rows_cap ({cap}) reached"
            break
        total = sum(r.total_rows for r in recs)
        last_end = recs[-1].last_row()["completed_ns"]
        elapsed_s = (last_end - t_first) / 1e9
        room_q, room_s = limit_q - total, stop.max_duration_s - elapsed_s
        if room_q <= 0 or room_s <= 0:
            info["stopped"] = (
                "stop.max_queries or raw_rows_cap reached" if room_q <= 0 else "stop.max_duration_s reached"
            )
            break
        chunk_s = min(max(elapsed_s, 3 * batch_means.MIN_WINDOW_S - elapsed_s), room_s)
        seg_stop = StopRule(
            min_duration_s=chunk_s,
            min_queries=1,
            max_duration_s=chunk_s,
            max_queries=room_q,
            warmup_s=0,
            warmup_queries=0,
            max_attempts=1,
        )
        seg = _recorder(room_q, seed + len(recs))
        closed_loop_recorded(infer, batches, seg_stop, now_ns, seg)
        if not seg.total_rows:
            break
        info["extension_gaps_ns"] += seg.first_row()["issued_ns"] - last_end
        info["extensions"] += 1
        recs.append(seg)
        steady = _stability(recs, batch_size)
    if len(recs) > 1:
        rec = _recorder(cap, seed)
        rec.extend({c: np.concatenate([r.exact()[c] for r in recs]) for c in ("issued_ns", "completed_ns")})
    return rec, steady, info


def _measure(
    ctx: CellContext, batch_size: int, stop: StopRule, cap: int
) -> tuple[RowRecorder, dict[str, Any], batch_means.StabilityResult, dict[str, Any]]:
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
    for attempt in range(stop.max_attempts):
        # one window per attempt: the meters' window is exactly the kept attempt's
        with ctx.window():
            batches = itertools.cycle(pool)
            rec = _recorder(cap, ctx.seed)
            closed_loop_recorded(infer, batches, stop, now_ns, rec)
            rec, steady, ext = _extend_while_inconclusive(infer, batches, rec, stop, batch_size, cap, ctx.seed)
        if steady.verdict != "unstable" or attempt + 1 == stop.max_attempts:
            break
        n = rec.total_rows
        discarded.append(
            {
                "queries": n,
                "steady_state_ratio": float(steady.spread),
                "last_to_first": float(steady.ratio),
                "throughput": n * batch_size / ((rec.last_row()["completed_ns"] - rec.first_row()["issued_ns"]) / 1e9),
            }
        )
    warmup["discarded_unstable_attempts"] = discarded
    return rec, warmup, steady, ext


def _common(
    rec: RowRecorder,
    batch_size: int,
    stop: StopRule,
    headline_q: float,
    steady: batch_means.StabilityResult,
    ext: dict[str, Any],
) -> tuple[dict[str, np.ndarray], dict[str, Metric], dict[str, bool], dict[str, Any]]:
    n = rec.total_rows
    elapsed_ns = int(rec.last_row()["completed_ns"] - rec.first_row()["issued_ns"]) if n else 0
    rows = rec.rows()
    kept = int(rows["query_id"].size)
    queries = {
        "query_id": rows["query_id"],
        "batch_size": np.full(kept, batch_size, dtype=np.int32),  # int32: 8 MB less at the row cap
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
    wt = _window_throughput(rec, batch_size) if n >= 2 else np.array([], dtype=float)
    validity = {
        "min_duration_met": elapsed_ns >= stop.min_duration_s * 1e9,
        "min_queries_met": n >= stop.min_queries,
        # only a shown change invalidates; an inconclusive verdict is recorded with its note
        "steady_state": steady.verdict != "unstable",
    }
    extra: dict[str, Any] = {"elapsed_ns": elapsed_ns, "raw_rows": rec.record_info()}
    if wt.size:
        extra["window_throughput"] = [float(x) for x in wt]
    extra["steady_state"] = {
        "verdict": steady.verdict,
        # max(r, 1/r) of the last-to-first throughput ratio r: the spread the gate reads
        "ratio": float(steady.spread) if steady.spread < float("inf") else None,
        "last_to_first": steady.ratio,
        "interval": [steady.ratio_low, steady.ratio_high],
        "tolerance": steady.tolerance,
        "confidence": steady.confidence,
        "window_s": steady.window_s,
        "window_throughput": list(steady.window_throughput),
        "sub_batches": steady.sub_batches,
        "method": batch_means.STABILITY_METHOD,
        **ext,
    }
    if steady.reason:
        extra["steady_state"]["note"] = steady.reason
    return queries, metrics, validity, extra


def _window(rec: RowRecorder) -> tuple[int, int] | None:
    """(first issue, last completion) of the measurement, None when nothing ran."""
    if not rec.total_rows:
        return None
    return int(rec.first_row()["issued_ns"]), int(rec.last_row()["completed_ns"])


class ClosedOptions(BoundedRowsOptions):
    """Options shared by the closed-loop scenarios."""


class OfflineScenario(Scenario):
    """Batch/offline [MLPerf Offline]: back-to-back batches of ``batch_size``; headline
    samples/s. A batch-size sweep is expressed in the suite and expands to one cell per size."""

    name: ClassVar[str] = "offline"
    Options: ClassVar[type[ScenarioOptions]] = ClosedOptions
    headline: ClassVar[str] = "throughput"

    def run(self, ctx: CellContext) -> ScenarioResult:
        o = self.options
        assert isinstance(o, ClosedOptions)
        rec, warmup, steady, ext = _measure(ctx, o.batch_size, o.stop, o.raw_rows_cap)
        w = _window(rec)
        queries, metrics, validity, extra = _common(rec, o.batch_size, o.stop, 0.99, steady, ext)
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
        rec, warmup, steady, ext = _measure(ctx, o.batch_size, o.stop, o.raw_rows_cap)
        w = _window(rec)
        queries, metrics, validity, extra = _common(rec, o.batch_size, o.stop, o.target_percentile, steady, ext)
        method = f"MLPerf early stopping, p{o.target_percentile * 100:g} at confidence {o.confidence}"
        if rec.overflowed:
            valid, n_es, min_q, value_ns = rec.early_stopping(o.target_percentile, o.confidence)
            method += f"; order statistic from the {rec.method()}"
        else:
            es = early_stopping.early_stopping_percentile(rec.latencies_ns(), o.target_percentile, o.confidence)
            valid, n_es, min_q, value_ns = es.valid, es.n, es.min_queries, es.conservative_value
        validity["early_stopping_met"] = bool(valid)
        if valid:
            metrics["latency_early_stop"] = Metric(value=value_ns / 1e6, unit="ms", method=method)
        extra["early_stopping"] = {"n": n_es, "min_queries": min_q}
        return ScenarioResult(queries, metrics, validity, warmup, extra=extra, window_ns=w)
