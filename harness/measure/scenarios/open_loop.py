"""The open-loop run and its summary: options, per-query record, metrics and validity.

Shared by the ``online`` and ``online-peak`` scenarios (:mod:`harness.measure.scenarios.online`)
and the sensor streams. :func:`summarize_online` turns an :class:`OpenLoopRun` into metrics and
validity flags: latency = completed - scheduled, queries still unfinished at the end count as
``+inf`` (``queries_incomplete``), percentile intervals by batch means in schedule order, the
generator check (more than 1 % of queries noticed more than 1 ms late), the lateness trend test
and achieved-vs-offered rate for steady state, and LoadGen Server's over-latency test for the
SLO. Definitions: docs/scenarios.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from harness.core import batch_means, early_stopping, stats
from harness.core.metrics import Metric
from harness.core.records import latency_ns
from harness.measure.load.batching import DynamicBatcher
from harness.measure.scenarios.base import BoundedRowsOptions
from harness.measure.scenarios.summary import latency_metrics, window_throughput

#: a query issued more than this late counts as "late" for the generator check
LATE_NS = 1_000_000


#: the run is flagged when more than this fraction of queries is late (perf_analyzer's rule)
LATE_FRACTION = 0.01


class OnlineOptions(BoundedRowsOptions):
    """Options of the ``online`` scenario (a suite cell's ``scenario_options``)."""

    target_qps: float = Field(100.0, gt=0, description="offered load: mean arrival rate (queries/s)")
    arrival: Literal["poisson", "constant", "gamma", "trace"] = Field(
        "poisson", description="arrival process: poisson (exponential gaps), constant, gamma, trace"
    )
    burstiness: float = Field(1.0, gt=0, description="gamma arrivals: CV^2 of the gaps (1 = Poisson)")
    trace_file: str | None = Field(None, description="trace arrivals: CSV of timestamps, rescaled to target_qps")
    exact_rate: bool = Field(True, description="rescale the drawn schedule so its mean rate is exactly target_qps")
    max_batch_size: int = Field(1, ge=1, description="dynamic batcher: largest batch (queries)")
    max_queue_delay_ms: float = Field(0.0, ge=0, description="dynamic batcher: longest hold of a query")
    preferred_batch_sizes: tuple[int, ...] = Field((), description="dynamic batcher: sizes dispatched at once")
    instances: int = Field(1, ge=1, description="model instances (one worker thread each)")
    slo_ms: float | None = Field(None, gt=0, description="latency SLO for goodput and pass/fail (ms)")
    target_percentile: float = Field(0.99, gt=0, lt=1, description="percentile the SLO applies to")
    confidence: float = Field(0.99, gt=0, lt=1, description="MLPerf early-stopping confidence")

    @model_validator(mode="after")
    def _check(self) -> OnlineOptions:
        if self.arrival == "trace" and not self.trace_file:
            raise ValueError("arrival 'trace' needs trace_file (a CSV of timestamps)")
        bad = [s for s in self.preferred_batch_sizes if not 1 <= s <= self.max_batch_size]
        if bad:
            raise ValueError(f"preferred_batch_sizes {bad} must lie in 1..max_batch_size={self.max_batch_size}")
        return self

    def policy(self) -> DynamicBatcher:
        return DynamicBatcher(
            self.max_batch_size, int(round(self.max_queue_delay_ms * 1e6)), self.preferred_batch_sizes
        )


@dataclass
class OpenLoopRun:
    """Raw outcome of :func:`serve` (absolute ``perf_counter_ns``; 0 = never happened)."""

    start_ns: int  # schedule origin
    end_ns: int  # nominal end of the schedule: start + count / rate
    scheduled_ns: np.ndarray
    issued_ns: np.ndarray
    dispatch_ns: np.ndarray
    completed_ns: np.ndarray
    batch_size: np.ndarray
    instance: np.ndarray
    warmed_sizes: tuple[int, ...] = ()  # batch sizes every instance ran before the schedule

    @property
    def done(self) -> np.ndarray:
        return self.completed_ns > 0

    def columns(self, samples_per_query: int = 1) -> dict[str, np.ndarray]:
        n = self.scheduled_ns.size
        return {
            "query_id": np.arange(n, dtype=np.int64),
            "batch_size": np.full(n, samples_per_query, dtype=np.int64),
            "served_batch": self.batch_size,
            "scheduled_ns": self.scheduled_ns,
            "issued_ns": self.issued_ns,
            "dispatch_ns": self.dispatch_ns,
            "completed_ns": self.completed_ns,
            "instance": self.instance,
        }


def _pct_ms(x_ns: np.ndarray, q: float) -> float | None:
    """LoadGen-method percentile of nanosecond values, in ms (None when empty)."""
    return None if x_ns.size == 0 else stats.percentile(x_ns, q) / stats.NS_PER_MS


def summarize_online(
    run: OpenLoopRun,
    rate_qps: float,
    o: OnlineOptions,
    *,
    samples_per_query: int = 1,
) -> tuple[dict[str, Metric], dict[str, bool], dict[str, Any]]:
    """Metrics, validity flags and extra details of one open-loop run (see docs/scenarios.md).

    Queries not completed by the end of the window are counted, not dropped: they enter the
    latency percentiles, early stopping and the SLO test as ``+inf`` (``queries_incomplete``).
    Steady state is a lateness trend test on batch means plus achieved vs offered rate
    (:mod:`harness.core.batch_means`); the SLO verdict is LoadGen Server's over-latency test.
    """

    done = run.done
    n = int(run.scheduled_ns.size)
    n_done = int(done.sum())
    lat = latency_ns(run.completed_ns, run.scheduled_ns)[done]
    delay = run.issued_ns - run.scheduled_ns
    issued_mask = run.issued_ns > 0
    queue = (run.dispatch_ns - run.issued_ns)[done]
    service = (run.completed_ns - run.dispatch_ns)[done]
    last = int(run.completed_ns[done].max()) if n_done else run.end_ns
    end_ns = max(run.end_ns, last)
    window_ns = end_ns - run.start_ns
    window_s = window_ns / 1e9 if window_ns > 0 else float("nan")
    q = o.target_percentile
    # schedule order; +inf for queries not completed by the end of the window (LoadGen's rule)
    order = np.argsort(run.scheduled_ns, kind="stable")
    lat_all = np.full(n, np.inf)
    lat_all[done] = lat.astype(float)
    lat_all = lat_all[order]
    metrics: dict[str, Metric] = latency_metrics(lat_all, q, in_order=True) if n else {}
    metrics["offered_qps"] = Metric(
        value=float(rate_qps), unit="queries/s", provenance="configured:target", method="target arrival rate"
    )
    metrics["achieved_qps"] = Metric(
        value=n_done / window_s,
        unit="queries/s",
        method="completed queries / (max(schedule end, last completion) - schedule start)",
    )
    metrics["throughput"] = Metric(value=n_done * samples_per_query / window_s, unit="samples/s")
    pm = "sorted[floor(n*p)] (LoadGen), completed queries"
    for name, arr, p in (
        ("issue_delay_p50", delay[issued_mask], 0.5),
        ("issue_delay_p99", delay[issued_mask], 0.99),
        ("queue_time_p50", queue, 0.5),
        ("queue_time_p99", queue, 0.99),
        ("service_time_p50", service, 0.5),
        ("service_time_p99", service, 0.99),
    ):
        metrics[name] = Metric(value=_pct_ms(arr, p), unit="ms", method=pm)
    if n_done:
        metrics["batch_size_mean"] = Metric(value=float(run.batch_size[done].mean()), unit="queries")
    late_frac = float(np.mean(delay[issued_mask] > LATE_NS)) if issued_mask.any() else 1.0
    validity = {
        "min_duration_met": (run.end_ns - run.start_ns) >= o.stop.min_duration_s * 1e9 - 1,
        "min_queries_met": n_done >= o.stop.min_queries,
        "all_completed": n_done == n,
        "generator_kept_up": late_frac <= LATE_FRACTION,
    }
    extra: dict[str, Any] = {
        "queries_scheduled": n,
        "queries_completed": n_done,
        "queries_incomplete": n - n_done,
        "late_fraction": late_frac,
        "window_ns": window_ns,
        "rate_qps": rate_qps,
    }
    if n:
        es = early_stopping.early_stopping_percentile(lat_all, q, o.confidence)
        validity["early_stopping_met"] = bool(es.valid)
        extra["early_stopping"] = {
            "n": es.n,
            "min_queries": es.min_queries,
            "incomplete": es.n_incomplete,
            "reason": es.reason,
        }
        if es.valid:
            metrics["latency_early_stop"] = Metric(
                value=es.conservative_value / 1e6,
                unit="ms",
                method=f"MLPerf early stopping, p{q * 100:g} at confidence {o.confidence}; "
                f"{es.n_incomplete} incomplete queries count as +inf",
            )
        validity_ss, extra["steady_state"] = open_loop_steady_state(run, done, end_ns)
        if validity_ss is not None:
            validity["steady_state"] = validity_ss
        if window_s > 0:
            rc = batch_means.rate_shortfall(n_done, rate_qps, window_s)
            validity["achieved_rate_met"] = rc.ok
            extra["achieved_rate"] = {
                "completed": rc.completed,
                "expected": rc.expected,
                "allowed_shortfall": rc.allowed_shortfall,
                "method": batch_means.RATE_METHOD,
            }
    if n_done:
        wt = window_throughput(run.completed_ns[done], np.ones(n_done, dtype=np.int64))
        extra["window_throughput"] = [float(x) for x in wt]
    if o.slo_ms is not None:
        slo_ns = o.slo_ms * 1e6
        good = int(np.sum(lat <= slo_ns))
        metrics["goodput"] = Metric(
            value=good / window_s, unit="queries/s", method=f"completed queries with latency <= {o.slo_ms} ms / window"
        )
        slo = early_stopping.early_stopping_over_latency(lat_all, slo_ns, q, o.confidence)
        validity["slo_met"] = slo.passed
        extra["slo_ms"] = o.slo_ms
        extra["slo_basis"] = (
            f"LoadGen Server rule: queries over {o.slo_ms} ms (incomplete ones included) pass early stopping "
            f"at p{q * 100:g}, confidence {o.confidence}"
        )
        extra["slo"] = {
            "n": slo.n,
            "over_bound": slo.over,
            "incomplete": slo.incomplete,
            "min_passing": slo.min_passing,
            "passing": slo.n - slo.over,
            "percentile": q,
            "confidence": o.confidence,
        }
    return metrics, validity, extra


def open_loop_steady_state(run: OpenLoopRun, done: np.ndarray, end_ns: int) -> tuple[bool | None, dict[str, Any]]:
    """Lateness trend over the schedule (:func:`harness.core.batch_means.trend_test`).

    Lateness = completed - scheduled; a query not completed by the end of the window enters with
    ``end - scheduled``, a lower bound. ``None`` validity when the test could not run; only an
    ``unstable`` verdict is invalid (``inconclusive`` is recorded with its reason).
    """

    lateness = np.where(done, run.completed_ns, end_ns) - run.scheduled_ns
    tr = batch_means.trend_test(run.scheduled_ns, lateness)
    mean_ms = float(np.mean(lateness)) / 1e6 if lateness.size else float("nan")
    info: dict[str, Any] = {
        "verdict": tr.verdict,
        "method": batch_means.TREND_METHOD,
        "rise_ms": tr.rise / 1e6,
        "rise_bounds_ms": [tr.rise_low / 1e6, tr.rise_high / 1e6],
        "relative_rise": tr.relative_rise,
        "mean_lateness_ms": mean_ms,
        "p_value": tr.p_value,
        "alpha": tr.alpha,
        "tolerance": tr.tolerance,
        "batches": tr.batches,
        "tau": tr.tau,
        # spread as the gate reads it: fitted lateness growth relative to the mean, >= 1
        "ratio": max(1.0, 1.0 + tr.relative_rise) if np.isfinite(tr.relative_rise) else 1.0,
    }
    if tr.reason:
        info["note"] = tr.reason
    if tr.batches == 0 and tr.verdict == "inconclusive" and not np.isfinite(tr.rise):
        return None, info
    return tr.verdict != "unstable", info
