"""Online scenario [MLPerf Server]: open-loop arrivals into a dynamic batcher.

A seeded schedule (:mod:`harness.measure.load.arrivals`) is generated before the clock starts.
No thread issues it: the model-instance threads read arrivals from the schedule and run the
:class:`~harness.measure.load.batching.DynamicBatcher` policy themselves
(:mod:`harness.measure.load.server`). An idle instance blocks (GIL released, no spin) until the
first time the policy would dispatch, then runs ``backend.infer`` on a staged batch of exactly
the dispatched size (a pool per size ``1..max_batch_size`` is staged before the clock; nothing
is staged on the clock). While a model runs, the harness has nothing runnable in the process.
Warm-up (outside the window) first runs every batch size the batcher can form on every
instance, then a warm-up schedule.

Per query the raw record holds ``scheduled_ns``, ``issued_ns``, ``dispatch_ns`` (service
start), ``completed_ns``, ``served_batch`` (queries in the batch it was served in), ``instance``
and ``batch_size`` (samples per query). **Latency = completed - scheduled**: lag in noticing an
arrival is charged to latency, so a stalled system cannot throttle its own offered load.
``issued_ns`` is when the server noticed the query (an idle instance's wake-up for it; the
arrival itself for a query that queued). Issue delay (issued - scheduled) is reported apart;
the run is flagged (``generator_kept_up = False``) when more than 1 % of queries were noticed
more than 1 ms late. Queue time = dispatch - issued; service time = completed - dispatch.

The schedule spans ``stop.min_duration_s`` at ``target_qps`` and holds at least
``stop.min_queries`` queries (extended at the same rate when needed; ``stop.max_queries``
and ``stop.max_duration_s`` cap it, and a run cut short of its minimums is flagged). Queries still unfinished ``stop.max_duration_s`` after the start
are counted, not dropped: they enter latency percentiles, early stopping and the SLO test as
``+inf`` (``queries_incomplete``), and the run is marked invalid (``all_completed = False``).
Summary and validity: :mod:`harness.measure.scenarios.open_loop` (docs/scenarios.md).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from harness.core.clock import now_ns
from harness.core.metrics import Metric
from harness.measure.load import arrivals
from harness.measure.load.batching import DynamicBatcher
from harness.measure.load.peak import Probe, drive, peak_profile
from harness.measure.load.recorder import bounded_columns
from harness.measure.load.server import LEAD_NS as LEAD_NS  # the first arrival's lead; re-exported
from harness.measure.load.server import placement, run_schedule
from harness.measure.scenarios.base import CellContext, Scenario, ScenarioOptions, ScenarioResult
from harness.measure.scenarios.open_loop import (
    LATE_FRACTION as LATE_FRACTION,
)
from harness.measure.scenarios.open_loop import (
    LATE_NS as LATE_NS,
)
from harness.measure.scenarios.open_loop import (
    OnlineOptions as OnlineOptions,
)
from harness.measure.scenarios.open_loop import (
    OpenLoopRun as OpenLoopRun,
)
from harness.measure.scenarios.open_loop import (
    summarize_online as summarize_online,
)

#: GIL switch interval while serving (s), so an instance back from the model soon gets the GIL;
#: restored afterwards
SWITCH_INTERVAL_S = 1e-4


def pool_depth(k: int) -> int:
    """Staged batches per size ``k``: 8 distinct singles, fewer of the larger sizes."""
    return max(1, 8 // k)


def stage_pools(ctx: CellContext, max_batch_size: int, samples_per_query: int = 1) -> dict[int, list[Any]]:
    """Stage ``pool_depth(k)`` batches of every size ``k`` in ``1..max_batch_size`` (untimed)."""
    return {
        k: [ctx.batch(k * samples_per_query, i) for i in range(pool_depth(k))] for k in range(1, max_batch_size + 1)
    }


def serve(
    infer: Callable[[Any], Any],
    pools: Mapping[int, Sequence[Any]],
    offsets_ns: np.ndarray,
    policy: DynamicBatcher,
    instances: int = 1,
    *,
    nominal_span_ns: int | None = None,
    deadline_ns: int | None = None,
    clock: Callable[[], int] = now_ns,
    warm: bool = False,
) -> OpenLoopRun:
    """Serve queries arriving at ``start + offsets_ns`` with ``policy``-batched model instances.

    The instance threads read arrivals from the schedule themselves and run the batcher
    (:func:`harness.measure.load.server.run_schedule`); ``issued_ns`` is when the server noticed
    the query. ``pools[k]`` are staged batches of ``k`` queries. With ``warm`` each instance
    first runs every batch size the policy can form (before the schedule starts).
    ``deadline_ns`` (relative to the start) bounds the whole run: queries not dispatched by
    then are dropped (``completed_ns = 0``). Exceptions raised by ``infer`` stop the run and are
    re-raised here.
    """
    old_switch = sys.getswitchinterval()
    sys.setswitchinterval(min(old_switch, SWITCH_INTERVAL_S))
    try:
        r = run_schedule(infer, pools, offsets_ns, policy, instances, deadline_ns=deadline_ns, warm=warm, clock=clock)
    finally:
        sys.setswitchinterval(old_switch)
    n = int(r.arrivals_ns.size)
    span = nominal_span_ns if nominal_span_ns is not None else (int(r.arrivals_ns[-1]) - r.start_ns if n else 0)
    return OpenLoopRun(
        start_ns=r.start_ns,
        end_ns=r.start_ns + span,
        scheduled_ns=r.arrivals_ns,
        issued_ns=r.seen_ns,
        dispatch_ns=r.dispatch_ns,
        completed_ns=r.completed_ns,
        batch_size=r.batch_size,
        instance=r.instance,
        warmed_sizes=r.warmed_sizes,
    )


def record_placement(instances: int) -> dict[str, Any]:
    """:func:`harness.measure.load.server.placement`, warning (``RuntimeWarning``) when the
    harness and the model share the host's only one or two cores."""
    p = placement(instances)
    if "warning" in p:
        warnings.warn(p["warning"], RuntimeWarning, stacklevel=3)
    return p


def make_schedule(
    o: OnlineOptions,
    rate_qps: float,
    seed: int,
    *,
    duration_s: float | None = None,
    min_count: int = 1,
    max_count: int | None = None,
) -> tuple[np.ndarray, int]:
    """Offsets (ns) of the schedule for ``rate_qps`` and its nominal span (count / rate, ns).

    The schedule never spans more than ``stop.max_duration_s``: when ``min_count`` would need
    longer, the run is shorter than its minimum and ``min_queries_met`` is false."""
    dur = o.stop.min_duration_s if duration_s is None else duration_s
    count = max(int(round(rate_qps * dur)), min_count, 1)
    if max_count is not None:
        count = min(count, max_count)
    count = max(1, min(count, int(rate_qps * o.stop.max_duration_s)))
    offs = arrivals.schedule(
        o.arrival,
        rate_qps,
        count=count,
        seed=seed,
        burstiness=o.burstiness,
        trace_file=o.trace_file,
        exact_rate=o.exact_rate,
    )
    return offs, int(round(count / rate_qps * 1e9))


def measure_rate(
    ctx: CellContext,
    o: OnlineOptions,
    rate_qps: float,
    pools: Mapping[int, Sequence[Any]],
    *,
    seed: int,
    in_window: bool,
    warmup: bool = True,
) -> tuple[OpenLoopRun, dict[str, Any]]:
    """One full open-loop run at ``rate_qps`` (warm-up outside the window, then the schedule;
    inside ``ctx.window()`` when ``in_window``)."""
    policy = o.policy()
    infer = ctx.backend.infer
    info: dict[str, Any] = {}
    if warmup and (o.stop.warmup_s > 0 or o.stop.warmup_queries > 0):
        w_offs, w_span = make_schedule(
            o, rate_qps, seed + 1_000_003, duration_s=o.stop.warmup_s, min_count=max(o.stop.warmup_queries, 1)
        )
        w = serve(
            infer,
            pools,
            w_offs,
            policy,
            o.instances,
            nominal_span_ns=w_span,
            deadline_ns=int(max(o.stop.warmup_s * 4, 1.0) * 1e9) + 30 * 10**9,
            warm=True,
        )
        wd = w.done
        info = {
            "batch_sizes": list(w.warmed_sizes),  # each run on every instance before the schedule
            "queries": int(wd.sum()),
            "duration_s": (int(w.completed_ns[wd].max()) - w.start_ns) / 1e9 if wd.any() else 0.0,
            "first_query_ms": (int(w.completed_ns[0]) - int(w.scheduled_ns[0])) / 1e6 if wd[0] else None,
        }
    offs, span = make_schedule(o, rate_qps, seed, min_count=o.stop.min_queries, max_count=o.stop.max_queries)
    deadline = int(o.stop.max_duration_s * 1e9)
    if in_window:
        with ctx.window():
            run = serve(infer, pools, offs, policy, o.instances, nominal_span_ns=span, deadline_ns=deadline)
    else:
        run = serve(infer, pools, offs, policy, o.instances, nominal_span_ns=span, deadline_ns=deadline)
    return run, info


def open_loop_result(
    run: OpenLoopRun,
    o: OnlineOptions,
    metrics: dict[str, Metric],
    validity: dict[str, bool],
    warmup: dict[str, Any],
    extra: dict[str, Any],
    seed: int,
) -> ScenarioResult:
    """The scenario result of a served schedule: raw rows bounded by ``o.raw_rows_cap`` (their
    account in ``extra["raw_rows"]``); the window runs from the schedule's start to the last
    completion (or the schedule's end when later)."""
    end = max(run.end_ns, int(run.completed_ns.max()) if run.done.any() else run.end_ns)
    queries, extra["raw_rows"] = bounded_columns(run.columns(o.batch_size), o.raw_rows_cap, seed)
    return ScenarioResult(
        queries=queries, metrics=metrics, validity=validity, warmup=warmup, extra=extra, window_ns=(run.start_ns, end)
    )


class OnlineScenario(Scenario):
    """Online [MLPerf Server]: Poisson (or other) arrivals at ``target_qps`` into a dynamic
    batcher; headline the target-percentile latency (MLPerf early stopping when it holds)."""

    name: ClassVar[str] = "online"
    Options: ClassVar[type[ScenarioOptions]] = OnlineOptions
    headline: ClassVar[str] = "latency_p99"

    def run(self, ctx: CellContext) -> ScenarioResult:
        o = self.options
        assert isinstance(o, OnlineOptions)
        pools = stage_pools(ctx, o.max_batch_size, o.batch_size)
        run, warm = measure_rate(ctx, o, o.target_qps, pools, seed=ctx.seed, in_window=True)
        metrics, validity, extra = summarize_online(run, o.target_qps, o, samples_per_query=o.batch_size)
        extra["placement"] = record_placement(o.instances)
        return open_loop_result(run, o, metrics, validity, warm, extra, ctx.seed)


class OnlinePeakOptions(OnlineOptions):
    """``online-peak``: search the highest QPS whose ``target_percentile`` latency meets
    ``slo_ms`` (``target_qps`` is the starting rate)."""

    slo_ms: float | None = Field(..., gt=0, description="latency SLO (ms) that every passing probe meets")
    rel_tol: float = Field(0.05, gt=0, lt=1, description="stop bisecting when (fail - pass) / pass <= rel_tol")
    max_probes: int = Field(16, ge=1, description="most probes (full runs) before the search stops")
    max_qps: float | None = Field(None, gt=0, description="never probe above this rate")


def probe_from_run(run: OpenLoopRun, rate_qps: float, o: OnlineOptions) -> Any:
    """Summarise a run as a :class:`harness.measure.load.peak.Probe`."""

    metrics, validity, extra = summarize_online(run, rate_qps, o)
    es = metrics.get("latency_early_stop")
    key = f"latency_p{o.target_percentile * 100:g}"
    plain = metrics.get(key)
    lat = es.value if es is not None else (plain.value if plain is not None else None)
    achieved = metrics["achieved_qps"].value
    return Probe(
        qps=rate_qps,
        latency_ms=lat,
        valid=all(validity.values()),
        passed=bool(validity.get("slo_met", False)),
        details={
            "validity": validity,
            "achieved_qps": achieved,
            "latency_basis": "early_stop" if es is not None else key,
            "late_fraction": extra["late_fraction"],
        },
    )


class OnlinePeakScenario(Scenario):
    """Highest offered load meeting the latency SLO (LoadGen's find-peak mode): widen, then
    bisect; every probe is a full run outside the measurement window; the best passing rate
    is then re-run inside ``ctx.window()`` and that confirmatory run is the cell's result."""

    name: ClassVar[str] = "online-peak"
    Options: ClassVar[type[ScenarioOptions]] = OnlinePeakOptions
    headline: ClassVar[str] = "peak_qps"

    def run(self, ctx: CellContext) -> ScenarioResult:

        o = self.options
        assert isinstance(o, OnlinePeakOptions)
        pools = stage_pools(ctx, o.max_batch_size, o.batch_size)
        counter = [0]

        def probe(rate: float) -> Any:
            counter[0] += 1
            run, _ = measure_rate(ctx, o, rate, pools, seed=ctx.seed + counter[0], in_window=False)
            ctx.progress(min(counter[0] / (o.max_probes + 1), 0.95))
            return probe_from_run(run, rate, o)

        result = drive(peak_profile(o.target_qps, rel_tol=o.rel_tol, max_probes=o.max_probes, max_qps=o.max_qps), probe)
        final_rate = result.best_qps if result.best_qps is not None else min(p.qps for p in result.probes)
        run, warm = measure_rate(ctx, o, final_rate, pools, seed=ctx.seed, in_window=True)
        metrics, validity, extra = summarize_online(run, final_rate, o, samples_per_query=o.batch_size)
        extra["placement"] = record_placement(o.instances)
        metrics["peak_qps"] = Metric(
            value=result.best_qps,
            unit="queries/s",
            method=f"highest probed rate with p{o.target_percentile * 100:g} <= {o.slo_ms} ms "
            f"(widen x2, bisect to {o.rel_tol:g}); confirmed by the final run",
        )
        validity["peak_found"] = result.best_qps is not None
        extra["peak"] = {
            "probes": [p.to_dict() for p in result.probes],
            "n_probes": result.n_probes,
            "converged": result.converged,
            "lowest_failing_qps": result.lowest_failing_qps,
            "final_qps": final_rate,
            "final_valid": all(validity.values()),
        }
        return open_loop_result(run, o, metrics, validity, warm, extra, ctx.seed)
