"""Sensor-stream scenario: K fixed-rate streams into a windowed model, a deadline per item.

Each of ``streams`` streams produces one item (= one window = one sample) every
``1 / rate_hz`` seconds; stream ``s`` is phase-staggered by ``s / (streams * rate_hz)``.
Item ``j`` of stream ``s`` is scheduled at ``start + s / (K * rate) + j / rate`` and must
complete by ``scheduled + deadline_ms``. Items are served like the ``online`` scenario's
queries (:func:`harness.measure.scenarios.online.serve`: the model-instance threads read the
schedule and batch for themselves; no issuer thread), so items may be batched across streams
(``max_batch_size``, ``max_queue_delay_ms``). Warm-up runs every batch size the batcher can
form on every instance, then a warm-up schedule, before the window opens.

Per item: latency = completed - scheduled; a miss is an item completed after its deadline
(or never). Headline: the deadline-miss rate, and whether the backlog grows.

Backlog growth is *detected*, not assumed (:func:`detect_backlog_growth`): the backlog
B(t) = items scheduled by t - items completed by t is sampled on a regular grid over the
schedule, and a least-squares line is fitted (``scipy.stats.linregress``). The backlog is
called growing when the slope is positive with one-sided p < ``alpha`` **and** the slope is
at least ``min_growth_fraction`` of the offered item rate (a statistically significant but
negligible drift, e.g. from autocorrelated queue noise, does not count). The slope of
lateness (latency vs scheduled time) is reported alongside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, model_validator

from harness.core import stats
from harness.core.metrics import Metric
from harness.core.records import latency_ns
from harness.measure.load.batching import DynamicBatcher
from harness.measure.load.recorder import bounded_columns
from harness.measure.scenarios.base import BoundedRowsOptions, CellContext, Scenario, ScenarioOptions, ScenarioResult
from harness.measure.scenarios.online import record_placement, serve, stage_pools
from harness.measure.scenarios.open_loop import LATE_FRACTION, LATE_NS, open_loop_steady_state
from harness.measure.scenarios.summary import latency_metrics


class SensorStreamOptions(BoundedRowsOptions):
    """Options of the ``sensor-stream`` scenario."""

    streams: int = Field(4, ge=1, description="number of independent sensor streams (K)")
    rate_hz: float = Field(50.0, gt=0, description="items per second produced by each stream")
    deadline_ms: float | None = Field(
        None, gt=0, description="deadline after each item's scheduled time (default: one period)"
    )
    max_batch_size: int = Field(1, ge=1, description="largest batch of items across streams")
    max_queue_delay_ms: float = Field(0.0, ge=0, description="longest an item is held for batching")
    instances: int = Field(1, ge=1, description="model instances (one worker thread each)")
    alpha: float = Field(0.01, gt=0, lt=0.5, description="significance level of the backlog-growth test")
    min_growth_fraction: float = Field(
        0.01, ge=0, description="smallest backlog growth (fraction of the offered item rate) that counts"
    )

    @model_validator(mode="after")
    def _check(self) -> SensorStreamOptions:
        if self.batch_size != 1:
            raise ValueError(
                "sensor-stream: batch_size must be 1 (one item = one window = one sample); "
                "use max_batch_size to batch across streams"
            )
        return self

    @property
    def period_ns(self) -> int:
        return int(round(1e9 / self.rate_hz))

    @property
    def deadline_ns(self) -> int:
        return self.period_ns if self.deadline_ms is None else int(round(self.deadline_ms * 1e6))


def stream_schedule(streams: int, rate_hz: float, items_per_stream: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets_ns, stream, item) of all items, sorted by scheduled time (ties by stream)."""
    period = 1e9 / rate_hz
    s = np.repeat(np.arange(streams, dtype=np.int64), items_per_stream)
    j = np.tile(np.arange(items_per_stream, dtype=np.int64), streams)
    t = np.round(s * (period / streams) + j * period).astype(np.int64)
    order = np.lexsort((s, t))
    return t[order], s[order], j[order]


@dataclass(frozen=True)
class BacklogTest:
    """Result of :func:`detect_backlog_growth` (slopes per second of schedule time)."""

    growing: bool
    slope_items_per_s: float
    p_value: float
    threshold_items_per_s: float
    lateness_slope_ms_per_s: float
    lateness_p_value: float
    points: int


def _one_sided_slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    # deferred: scipy.stats takes ~1 s to import (CLI and worker start-up)
    from scipy import stats as sps

    if x.size < 3 or np.ptp(x) == 0:
        return 0.0, 1.0
    if np.ptp(y) == 0:
        return 0.0, 1.0
    r = sps.linregress(x, y, alternative="greater")
    return float(r.slope), float(r.pvalue)


def detect_backlog_growth(
    scheduled_ns: np.ndarray,
    completed_ns: np.ndarray,
    offered_rate_per_s: float,
    *,
    alpha: float = 0.01,
    min_growth_fraction: float = 0.01,
    grid_points: int = 200,
) -> BacklogTest:
    """Fit backlog and lateness against time over the schedule; see the module docstring.

    ``completed_ns <= 0`` marks items that never completed (they stay in the backlog).
    """
    sched = np.asarray(scheduled_ns, dtype=np.int64)
    comp = np.asarray(completed_ns, dtype=np.int64)
    if sched.size < 3:
        return BacklogTest(False, 0.0, 1.0, 0.0, 0.0, 1.0, 0)
    done = comp > 0
    t0, t1 = int(sched.min()), int(sched.max())
    grid = np.linspace(t0, t1, grid_points)
    arrived = np.searchsorted(np.sort(sched), grid, side="right")
    finished = np.searchsorted(np.sort(comp[done]), grid, side="right")
    backlog = (arrived - finished).astype(float)
    x_s = (grid - t0) / 1e9
    slope, p = _one_sided_slope(x_s, backlog)
    lat_ms = (comp[done] - sched[done]) / 1e6
    l_slope, l_p = _one_sided_slope((sched[done] - t0) / 1e9, lat_ms)
    threshold = min_growth_fraction * offered_rate_per_s
    growing = bool(p < alpha and slope > 0 and slope >= threshold)
    return BacklogTest(growing, slope, p, threshold, l_slope, l_p, int(grid.size))


class SensorStreamScenario(Scenario):
    """K phase-staggered fixed-rate streams with per-item deadlines; headline deadline-miss rate."""

    name: ClassVar[str] = "sensor-stream"
    Options: ClassVar[type[ScenarioOptions]] = SensorStreamOptions
    headline: ClassVar[str] = "deadline_miss_rate"

    def run(self, ctx: CellContext) -> ScenarioResult:

        o = self.options
        assert isinstance(o, SensorStreamOptions)
        total_rate = o.streams * o.rate_hz
        policy = DynamicBatcher(o.max_batch_size, int(round(o.max_queue_delay_ms * 1e6)))
        pools = stage_pools(ctx, o.max_batch_size, 1)
        infer = ctx.backend.infer
        warm: dict[str, Any] = {}
        if o.stop.warmup_s > 0 or o.stop.warmup_queries > 0:
            per = max(math.ceil(o.stop.warmup_s * o.rate_hz), math.ceil(o.stop.warmup_queries / o.streams), 1)
            w_offs, _, _ = stream_schedule(o.streams, o.rate_hz, per)
            w = serve(
                infer,
                pools,
                w_offs,
                policy,
                o.instances,
                deadline_ns=int(max(o.stop.warmup_s * 4, 1.0) * 1e9) + 30 * 10**9,
                warm=True,
            )
            warm = {
                "batch_sizes": list(w.warmed_sizes),
                "queries": int(w.done.sum()),
                "duration_s": (int(w.completed_ns.max()) - w.start_ns) / 1e9,
            }
        per_stream = max(math.ceil(o.stop.min_duration_s * o.rate_hz), math.ceil(o.stop.min_queries / o.streams), 1)
        if o.stop.max_queries is not None:
            per_stream = max(1, min(per_stream, o.stop.max_queries // o.streams))
        offs, stream, item = stream_schedule(o.streams, o.rate_hz, per_stream)
        span_ns = int(round(per_stream / o.rate_hz * 1e9))
        with ctx.window():
            run = serve(
                infer,
                pools,
                offs,
                policy,
                o.instances,
                nominal_span_ns=span_ns,
                deadline_ns=int(o.stop.max_duration_s * 1e9),
            )
        done = run.done
        n, n_done = int(done.size), int(done.sum())
        deadline = run.scheduled_ns + o.deadline_ns
        missed = ~done | (run.completed_ns > deadline)
        lat = latency_ns(run.completed_ns, run.scheduled_ns)[done]
        delay = run.issued_ns - run.scheduled_ns
        issued = run.issued_ns > 0
        # counted, not dropped: an item not completed by the end of the window is +inf (schedule order)
        lat_all = np.full(n, np.inf)
        lat_all[done] = lat.astype(float)
        lat_all = lat_all[np.argsort(run.scheduled_ns, kind="stable")]
        metrics: dict[str, Metric] = latency_metrics(lat_all, 0.99, in_order=True) if n else {}
        metrics["deadline_miss_rate"] = Metric(
            value=float(missed.mean()),
            unit="fraction",
            method=f"items completed after scheduled + {o.deadline_ns / 1e6:g} ms, or never",
        )
        bt = detect_backlog_growth(
            run.scheduled_ns, run.completed_ns, total_rate, alpha=o.alpha, min_growth_fraction=o.min_growth_fraction
        )
        metrics["backlog_growth_items_per_s"] = Metric(
            value=bt.slope_items_per_s,
            unit="items/s",
            method="least-squares slope of backlog vs time over the schedule (scipy.stats.linregress)",
        )
        metrics["lateness_growth_ms_per_s"] = Metric(
            value=bt.lateness_slope_ms_per_s, unit="ms/s", method="least-squares slope of latency vs scheduled time"
        )
        end = max(run.end_ns, int(run.completed_ns.max()) if n_done else run.end_ns)
        window_s = (end - run.start_ns) / 1e9
        metrics["offered_qps"] = Metric(
            value=total_rate, unit="queries/s", provenance="configured:streams*rate_hz", method="streams * rate_hz"
        )
        metrics["achieved_qps"] = Metric(value=n_done / window_s, unit="queries/s")
        metrics["throughput"] = Metric(value=n_done / window_s, unit="samples/s")
        metrics["issue_delay_p99"] = Metric(
            value=float(stats.percentile(delay[issued], 0.99)) / 1e6 if issued.any() else None,
            unit="ms",
        )
        late = float(np.mean(delay[issued] > LATE_NS)) if issued.any() else 1.0
        validity = {
            "min_duration_met": span_ns >= o.stop.min_duration_s * 1e9 - 1,
            "min_queries_met": n_done >= o.stop.min_queries,
            "all_completed": n_done == n,
            "generator_kept_up": late <= LATE_FRACTION,
            "backlog_stable": not bt.growing,
        }
        ss_valid, ss_info = open_loop_steady_state(run, done, end) if n else (None, {})
        if ss_valid is not None:
            validity["steady_state"] = ss_valid
        per_stream_miss = [float(missed[stream == s].mean()) for s in range(o.streams)]
        extra: dict[str, Any] = {
            "backlog": {
                "growing": bt.growing,
                "slope_items_per_s": bt.slope_items_per_s,
                "p_value": bt.p_value,
                "threshold_items_per_s": bt.threshold_items_per_s,
                "lateness_slope_ms_per_s": bt.lateness_slope_ms_per_s,
                "lateness_p_value": bt.lateness_p_value,
                "alpha": o.alpha,
            },
            "per_stream_miss_rate": per_stream_miss,
            "late_fraction": late,
            "items_scheduled": n,
            "items_completed": n_done,
            "queries_incomplete": n - n_done,
            "steady_state": ss_info,
            "placement": record_placement(o.instances),
        }
        queries = run.columns(1)
        queries["stream"] = stream
        queries["item"] = item
        queries["deadline_ns"] = deadline
        queries, extra["raw_rows"] = bounded_columns(queries, o.raw_rows_cap, ctx.seed)
        return ScenarioResult(queries, metrics, validity, warm, extra=extra, window_ns=(run.start_ns, end))
