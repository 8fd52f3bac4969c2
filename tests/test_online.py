"""Dynamic batcher policy and the online scenario (no timing assertions)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from harness.measure.load.batching import Dispatch, DynamicBatcher, Wait, simulate

# ---------------------------------------------------------------- batcher policy (pure)


def test_policy_rules() -> None:
    p = DynamicBatcher(max_batch_size=4, max_queue_delay_ns=1000)
    assert p.decide(0, 0, 5) == Wait(None)
    assert p.decide(4, 0, 0) == Dispatch(4)
    assert p.decide(9, 0, 0) == Dispatch(4)
    assert p.decide(2, 100, 500) == Wait(1100)
    assert p.decide(2, 100, 1100) == Dispatch(2)
    assert DynamicBatcher(8, 0).decide(3, 0, 0) == Dispatch(3)
    pref = DynamicBatcher(8, 1000, preferred_batch_sizes=(2, 4))
    assert pref.decide(2, 0, 10) == Dispatch(2)
    assert pref.decide(3, 0, 10) == Wait(1000)
    assert pref.decide(3, 0, 1000) == Dispatch(2)
    with pytest.raises(ValueError, match="max_batch_size"):
        DynamicBatcher(0, 0)
    with pytest.raises(ValueError, match="preferred_batch_sizes"):
        DynamicBatcher(4, 0, preferred_batch_sizes=(8,))


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=5_000), min_size=1, max_size=120),
    max_batch=st.integers(min_value=1, max_value=8),
    delay=st.integers(min_value=0, max_value=4_000),
    service=st.integers(min_value=1, max_value=3_000),
    instances=st.integers(min_value=1, max_value=3),
)
def test_simulated_batches_respect_max_batch_and_max_delay(
    gaps: list[int], max_batch: int, delay: int, service: int, instances: int
) -> None:
    arr = np.cumsum(gaps)
    policy = DynamicBatcher(max_batch, delay)
    r = simulate(arr, lambda k: service, policy, instances)
    assert np.all(r.batch_size >= 1) and np.all(r.batch_size <= max_batch)
    assert np.all(r.dispatch_ns >= arr)
    assert np.all(r.completed_ns == r.dispatch_ns + service)
    # FIFO: dispatch order follows arrival order
    assert np.all(np.diff(r.dispatch_ns) >= 0)
    # no query is held past its max delay while an instance is idle: if it waited longer,
    # every instance was busy at its deadline
    for i in np.nonzero(r.dispatch_ns > arr + delay)[0]:
        deadline = arr[i] + delay
        busy = sum(
            1
            for inst in range(instances)
            if np.any((r.instance == inst) & (r.dispatch_ns <= deadline) & (r.completed_ns > deadline))
        )
        assert busy == instances
    # each dispatched batch holds exactly batch_size queries
    keys, cnt = np.unique(np.stack([r.dispatch_ns, r.instance], axis=1), axis=0, return_counts=True)
    for k, c in zip(keys, cnt):
        sel = (r.dispatch_ns == k[0]) & (r.instance == k[1])
        assert np.all(r.batch_size[sel] == c)


# ---------------------------------------------------------------- online scenario (threads)

from harness.measure.backends.null import NullBackend  # noqa: E402
from harness.measure.scenarios.base import CellContext  # noqa: E402
from harness.measure.scenarios.online import (  # noqa: E402
    OnlineOptions,
    OnlineScenario,
    OpenLoopRun,
    serve,
    summarize_online,
)

QUICK_STOP = {"min_duration_s": 0.2, "min_queries": 100, "max_duration_s": 20, "warmup_s": 0.0, "warmup_queries": 3}


class FakeCtx(CellContext):
    """Stages dict batches that record their size; counts measurement windows (never nested)."""

    def __init__(self, backend: Any, seed: int = 0) -> None:
        self.backend = backend
        self.workload = None
        self.seed = seed
        self.windows = 0
        self.staged: list[tuple[int, int]] = []

    def batch(self, batch_size: int, index: int = 0) -> Any:
        self.staged.append((batch_size, index))
        return {"n": batch_size, "index": index}

    @contextmanager
    def window(self) -> Iterator[None]:
        assert not getattr(self, "in_window", False), "nested windows"
        self.windows += 1
        self.in_window = True
        try:
            yield
        finally:
            self.in_window = False


class StallOnce(NullBackend):
    """Blocks for ``stall_ns`` on call number ``at`` and records when the stall ended."""

    def __init__(self, at: int, stall_ns: int) -> None:
        super().__init__()
        self.at, self.stall_ns, self.calls = at, stall_ns, 0
        self.stall_start_ns = self.stall_end_ns = 0
        self.sizes: list[int] = []

    def infer(self, prepared: Any) -> None:
        import time

        self.calls += 1
        self.sizes.append(prepared["n"])
        if self.calls == self.at:
            self.stall_start_ns = time.perf_counter_ns()
            time.sleep(self.stall_ns / 1e9)
            self.stall_end_ns = time.perf_counter_ns()


def test_stall_is_charged_from_scheduled_time() -> None:
    be = StallOnce(at=20, stall_ns=60_000_000)
    opts = OnlineOptions(target_qps=1000.0, arrival="constant", stop=QUICK_STOP)
    res = OnlineScenario(opts).run(FakeCtx(be))
    q = res.queries
    sched, issued, done = q["scheduled_ns"], q["issued_ns"], q["completed_ns"]
    lat = done - sched
    during = (sched > be.stall_start_ns) & (sched < be.stall_end_ns)
    assert during.sum() >= 20  # ~60 queries were scheduled while the backend was blocked
    # every one of them completed after the stall ended, and its latency counts from its
    # scheduled time, so it includes the part of the stall after it was scheduled
    assert np.all(done[during] >= be.stall_end_ns)
    assert np.all(lat[during] >= be.stall_end_ns - sched[during])
    # the only instance was blocked, so none of them could start service before it ended
    assert np.all(q["dispatch_ns"][during] >= be.stall_end_ns)
    assert np.all(issued[during] >= sched[during])
    assert res.metrics["latency_max"].value >= (be.stall_end_ns - be.stall_start_ns) / 1e6 * 0.5
    assert res.validity["all_completed"]


def test_online_null_backend_records_and_stages_off_clock() -> None:
    ctx = FakeCtx(NullBackend(), seed=3)
    opts = OnlineOptions(
        target_qps=2000.0,
        max_batch_size=4,
        max_queue_delay_ms=0.5,
        instances=2,
        slo_ms=50.0,
        target_percentile=0.9,
        stop=QUICK_STOP,
    )
    res = OnlineScenario(opts).run(ctx)
    q = res.queries
    n = q["scheduled_ns"].size
    assert n == 400 and ctx.windows == 1
    assert {len(v) for v in q.values()} == {n}
    assert np.all(q["issued_ns"] >= q["scheduled_ns"])
    assert np.all(q["dispatch_ns"] >= q["issued_ns"])
    assert np.all(q["completed_ns"] >= q["dispatch_ns"])
    assert set(np.unique(q["instance"])) <= {0, 1}
    assert q["served_batch"].min() >= 1 and q["served_batch"].max() <= 4
    # every dispatch size has a staged pool, all staged before the run
    assert {s for s, _ in ctx.staged} == {1, 2, 3, 4}
    for key in (
        "latency_p50",
        "latency_p99",
        "achieved_qps",
        "offered_qps",
        "goodput",
        "queue_time_p50",
        "service_time_p50",
        "issue_delay_p99",
    ):
        assert res.metrics[key].value is not None, key
    assert res.metrics["offered_qps"].value == 2000.0
    assert res.metrics["offered_qps"].kind == "configured" and res.metrics["achieved_qps"].kind == "measured"
    assert res.metrics["goodput"].value <= res.metrics["achieved_qps"].value
    assert {"generator_kept_up", "all_completed", "min_queries_met", "slo_met"} <= set(res.validity)


def test_backend_error_propagates() -> None:
    class Boom(NullBackend):
        def infer(self, prepared: Any) -> None:
            raise RuntimeError("device lost")

    opts = OnlineOptions(target_qps=500.0, stop=QUICK_STOP)
    with pytest.raises(RuntimeError, match="device lost"):
        OnlineScenario(opts).run(FakeCtx(Boom()))


def test_unfinished_queries_make_the_run_invalid() -> None:
    n = 50
    t0 = 1_000_000
    sched = t0 + np.arange(n, dtype=np.int64) * 1000
    completed = np.where(np.arange(n) < 40, sched + 500, 0)
    run = OpenLoopRun(
        t0,
        t0 + n * 1000,
        sched,
        sched.copy(),
        sched.copy(),
        completed,
        np.ones(n, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
    )
    o = OnlineOptions(target_qps=1e6, slo_ms=1.0, stop={"min_duration_s": 0, "min_queries": 10})
    metrics, validity, extra = summarize_online(run, 1e6, o)
    assert not validity["all_completed"] and not validity["slo_met"]
    assert extra["queries_completed"] == 40


def test_late_issue_flags_the_generator() -> None:
    n = 200
    sched = np.arange(n, dtype=np.int64) * 1_000_000
    issued = sched + np.where(np.arange(n) % 10 == 0, 2_000_000, 0)  # 10 % late by 2 ms
    run = OpenLoopRun(
        0, n * 1_000_000, sched, issued, issued, issued + 10, np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    )
    o = OnlineOptions(target_qps=1000.0, stop={"min_duration_s": 0, "min_queries": 10})
    metrics, validity, extra = summarize_online(run, 1000.0, o)
    assert not validity["generator_kept_up"]
    assert extra["late_fraction"] == pytest.approx(0.1)
    # latency still counts from the scheduled time
    assert metrics["latency_max"].value == pytest.approx(2.00001)


# ---------------------------------------------------------------- online validity (synthetic runs)


def _run(sched: np.ndarray, completed: np.ndarray, rate_qps: float) -> OpenLoopRun:
    n = sched.size
    served = completed > 0
    return OpenLoopRun(
        int(sched[0]),
        int(sched[0] + round(n / rate_qps * 1e9)),
        sched,
        sched.copy(),
        np.where(served, sched, 0),
        completed,
        np.ones(n, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
    )


def _poisson_sched(rng: np.random.Generator, n: int, rate_qps: float) -> np.ndarray:
    return (10**9 + np.cumsum(rng.exponential(1e9 / rate_qps, n))).astype(np.int64)


def test_incomplete_queries_are_counted_not_dropped() -> None:
    rng = np.random.default_rng(4)
    n = 2000
    sched = _poisson_sched(rng, n, 1000.0)
    lat = rng.integers(1_000_000, 2_000_000, n)
    o = OnlineOptions(target_qps=1000.0, stop={"min_duration_s": 0, "min_queries": 10})
    # 0.5 % never completed: p99 is still an observed latency, but higher than if they were dropped
    few = np.where(np.arange(n) % 200 == 199, 0, sched + lat)
    m, v, extra = summarize_online(_run(sched, few, 1000.0), 1000.0, o)
    assert extra["queries_incomplete"] == 10 and not v["all_completed"]
    dropped_p99 = float(np.sort(lat[few > 0])[int(0.99 * (n - 10))]) / 1e6
    assert m["latency_p99"].value >= dropped_p99
    assert m["latency_p99"].value == float(np.sort(lat[few > 0])[int(0.99 * n)]) / 1e6
    assert "count as +inf" in m["latency_p99"].method and "10 of 2000" in m["latency_p99"].method
    assert m["latency_p99"].ci_high is None  # its upper bound lands on an incomplete query
    assert extra["early_stopping"]["incomplete"] == 10
    # 2 % never completed: p99 lands on one of them and is reported unavailable, not finite
    many = np.where(np.arange(n) % 50 == 49, 0, sched + lat)
    m, v, extra = summarize_online(_run(sched, many, 1000.0), 1000.0, o)
    assert m["latency_p99"].value is None and "unavailable" in m["latency_p99"].method
    assert m["latency_p50"].value is not None
    assert not v["early_stopping_met"] and "incomplete" in extra["early_stopping"]["reason"]


def test_slo_verdict_is_loadgen_over_latency_early_stopping() -> None:
    from harness.core import early_stopping

    n = 2000
    sched = 10**9 + np.arange(n, dtype=np.int64) * 1_000_000
    o = OnlineOptions(target_qps=1000.0, slo_ms=5.0, stop={"min_duration_s": 0, "min_queries": 10})
    # the most queries over the bound that early stopping allows for p99 at confidence 0.99
    t_max = max(t for t in range(40) if n - t >= early_stopping.early_stopping_min_passing(t, 0.99, 0.99))
    for over, passes in ((t_max, True), (t_max + 1, False)):
        lat = np.full(n, 1_000_000)
        lat[np.linspace(0, n - 1, over).astype(int)] = 9_000_000  # 9 ms > 5 ms, spread over the run
        m, v, extra = summarize_online(_run(sched, sched + lat, 1000.0), 1000.0, o)
        assert v["slo_met"] is passes, (over, extra["slo"])
        assert extra["slo"]["over_bound"] == over and extra["slo"]["n"] == n
        # the plain p99 is 1 ms either way: the count, not the percentile, decides
        assert m["latency_p99"].value == 1.0
    # a query never completed counts as over the bound
    lat = np.full(n, 1_000_000)
    lat[np.linspace(0, n - 1, t_max).astype(int)] = 9_000_000
    completed = sched + lat
    completed[1] = 0  # within the bound, had it completed
    _, v, extra = summarize_online(_run(sched, completed, 1000.0), 1000.0, o)
    assert extra["slo"]["incomplete"] == 1 and extra["slo"]["over_bound"] == t_max + 1 and not v["slo_met"]


def test_open_loop_steady_state_is_a_lateness_trend_test() -> None:
    rng = np.random.default_rng(8)
    n = 10_000
    sched = _poisson_sched(rng, n, 1000.0)
    o = OnlineOptions(target_qps=1000.0, stop={"min_duration_s": 0, "min_queries": 10})
    steady = sched + rng.integers(1_000_000, 3_000_000, n)
    _, v, extra = summarize_online(_run(sched, steady, 1000.0), 1000.0, o)
    assert v["steady_state"] and extra["steady_state"]["verdict"] == "stable"
    assert v["achieved_rate_met"]
    # a growing backlog: lateness climbs by 10 ms over the run (5x its mean at the start)
    grow = steady + np.linspace(0, 10_000_000, n).astype(np.int64)
    _, v, extra = summarize_online(_run(sched, grow, 1000.0), 1000.0, o)
    ss = extra["steady_state"]
    assert not v["steady_state"] and ss["verdict"] == "unstable" and ss["p_value"] < 0.01
    assert ss["rise_ms"] == pytest.approx(10.0, rel=0.2) and ss["ratio"] > 1.5


def test_achieved_rate_tolerance_depends_on_the_count() -> None:
    n = 10_000
    sched = 10**9 + np.arange(n, dtype=np.int64) * 1_000_000  # 10 s at 1000 QPS
    o = OnlineOptions(target_qps=1000.0, stop={"min_duration_s": 0, "min_queries": 10})
    ok = sched + 2_000_000
    assert summarize_online(_run(sched, ok, 1000.0), 1000.0, o)[1]["achieved_rate_met"]
    # the server fell behind: the last completions end 1 s after the schedule (a 9 % shortfall,
    # far beyond the Poisson spread of about 3 % at 10 000 queries)
    slow = sched + np.linspace(2_000_000, 1_000_000_000, n).astype(np.int64)
    _, v, extra = summarize_online(_run(sched, slow, 1000.0), 1000.0, o)
    assert not v["achieved_rate_met"]
    assert (
        extra["achieved_rate"]["expected"] - extra["achieved_rate"]["completed"]
        > extra["achieved_rate"]["allowed_shortfall"]
    )


def test_serve_requires_a_pool_for_every_size() -> None:
    with pytest.raises(ValueError, match=r"sizes \[2\]"):
        serve(lambda b: None, {1: [None]}, np.zeros(3, dtype=np.int64), DynamicBatcher(2, 0))


def test_options_errors() -> None:
    with pytest.raises(ValidationError, match="trace_file"):
        OnlineOptions(arrival="trace")
    with pytest.raises(ValidationError, match="arrival"):
        OnlineOptions(arrival="weibull")
    with pytest.raises(ValidationError, match="preferred_batch_sizes"):
        OnlineOptions(max_batch_size=2, preferred_batch_sizes=(4,))
    with pytest.raises(ValidationError):
        OnlineOptions(target_qps=10, qps=3)  # typo: extra fields are errors


# ---------------------------------------------------------------- MLPerf LoadGen driver

from harness.measure.scenarios import loadgen as loadgen_driver  # noqa: E402


def test_loadgen_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(name: str, *a: Any, **k: Any) -> Any:
        if name == "mlperf_loadgen":
            raise ImportError("No module named 'mlperf_loadgen'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(loadgen_driver.LoadGenMissing, match=r"mlperf.*mlcommons-loadgen"):
        loadgen_driver.import_loadgen()
    assert loadgen_driver.available()[0] is False


def test_loadgen_log_parsing(tmp_path: Any) -> None:
    (tmp_path / "s.txt").write_text(
        "MLPerf Results Summary\nScenario : Server\nCompleted samples per second    : 998.5\n"
        "Result is : VALID\n50.00 percentile latency (ns)   : 64527\n99.00 percentile latency (ns)   : 91254\n"
    )
    (tmp_path / "d.txt").write_text(
        ':::MLLOG {"key": "result_validity", "value": "INVALID"}\n'
        ':::MLLOG {"key": "result_99.00_percentile_latency_ns", "value": 2000000}\n'
        ':::MLLOG {"key": "result_min_duration_met", "value": false}\n'
    )
    s = loadgen_driver.parse_summary(tmp_path / "s.txt")
    assert s["Completed samples per second"] == "998.5" and s["Result is"] == "VALID"
    m, v = loadgen_driver.loadgen_metrics(loadgen_driver.parse_detail(tmp_path / "d.txt"), s, "Server")
    assert m["latency_p99"].value == 2.0  # the detail log wins over the summary
    assert m["latency_p50"].value == pytest.approx(0.064527)
    assert m["achieved_qps"].value == 998.5
    assert v == {"loadgen_valid": False, "min_duration_met": False}


@pytest.mark.parametrize("lg_scenario", ["Server", "SingleStream"])
def test_loadgen_driver_runs_null_backend(lg_scenario: str, tmp_path: Any) -> None:
    pytest.importorskip("mlperf_loadgen", reason="mlcommons-loadgen (extra 'mlperf') not installed")
    opts = loadgen_driver.LoadGenOptions(
        lg_scenario=lg_scenario,
        target_qps=500.0,
        expected_latency_ms=0.05,
        log_dir=str(tmp_path),
        stop={"min_duration_s": 0.2, "min_queries": 64},
    )
    ctx = FakeCtx(NullBackend())
    res = loadgen_driver.LoadGenScenario(opts).run(ctx)
    assert ctx.windows == 1
    assert (tmp_path / "mlperf_log_summary.txt").exists()
    assert res.metrics["latency_p50"].value is not None and "mlperf_loadgen" in res.metrics["latency_p50"].method
    assert res.queries["completed_ns"].size >= 64
    assert np.all(res.queries["completed_ns"] >= res.queries["issued_ns"])
    assert "loadgen_valid" in res.validity
    if lg_scenario == "Server":
        assert res.metrics["achieved_qps"].value > 0


# ---------------------------------------------------------------- serving hand-off (no issuer)

import threading  # noqa: E402

from harness.measure.load.server import first_dispatch, placement, run_schedule  # noqa: E402


def test_formable_sizes() -> None:
    assert DynamicBatcher(4, 0).formable_sizes() == (1, 2, 3, 4)
    assert DynamicBatcher(8, 1000, preferred_batch_sizes=(2, 4)).formable_sizes() == (1, 2, 4, 8)
    assert DynamicBatcher(8, 1000, preferred_batch_sizes=(3, 8)).formable_sizes() == (1, 2, 3, 8)


def _brute_first_dispatch(policy: DynamicBatcher, arr: list[int], head: int, now: int) -> int | None:
    """First time >= now at which the policy dispatches, stepping through every candidate time."""
    cands = sorted(
        {
            now,
            *[t for t in arr[head:] if t >= now],
            *[arr[i] + policy.max_queue_delay_ns for i in range(head, len(arr))],
        }
    )
    for t in cands:
        if t < now:
            continue
        ql = sum(1 for x in arr[head:] if x <= t)
        if ql and isinstance(policy.decide(ql, arr[head], t), Dispatch):
            return t
    return None


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=3_000), min_size=0, max_size=20),
    max_batch=st.integers(min_value=1, max_value=6),
    delay=st.integers(min_value=0, max_value=4_000),
    pref=st.lists(st.integers(min_value=1, max_value=6), max_size=2),
    head=st.integers(min_value=0, max_value=20),
    now=st.integers(min_value=0, max_value=40_000),
)
def test_first_dispatch_matches_stepping_through_time(
    gaps: list[int], max_batch: int, delay: int, pref: list[int], head: int, now: int
) -> None:
    arr = [int(x) for x in np.cumsum(gaps)] if gaps else []
    policy = DynamicBatcher(max_batch, delay, tuple(p for p in pref if p <= max_batch))
    head = min(head, len(arr))
    seen = head
    while seen < len(arr) and arr[seen] <= now:
        seen += 1
    got = first_dispatch(policy, arr, head, seen, now)
    want = _brute_first_dispatch(policy, arr, head, now)
    assert (got[0] if got else None) == want
    if got and got[1] >= 0:  # the arrival it names is the first one at that time not yet queued
        assert arr[got[1]] == got[0] and got[1] >= seen and (got[1] == seen or arr[got[1] - 1] < got[0])


class Recorder(NullBackend):
    """Records (thread name, batch size, index, time) of every call; optional fixed service."""

    def __init__(self, service_ns: int = 0) -> None:
        super().__init__()
        self.service_ns = service_ns
        self.calls: list[tuple[str, int, int, int]] = []
        self.lock = threading.Lock()

    def infer(self, prepared: Any) -> None:
        import time

        t = time.perf_counter_ns()
        with self.lock:
            self.calls.append((threading.current_thread().name, prepared["n"], prepared["index"], t))
        if self.service_ns:
            time.sleep(self.service_ns / 1e9)


def _pools(max_batch: int) -> dict[int, list[Any]]:
    return {k: [{"n": k, "index": i} for i in range(2)] for k in range(1, max_batch + 1)}


def _check_served(r: Any, max_batch: int, instances: int) -> None:
    """Every query served exactly once, in FIFO order, in contiguous batches of <= max_batch."""
    n = r.arrivals_ns.size
    assert np.all(r.completed_ns > 0) and np.all(r.instance >= 0) and np.all(r.instance < instances)
    assert np.all(r.dispatch_ns >= r.arrivals_ns) and np.all(r.completed_ns >= r.dispatch_ns)
    assert np.all(r.seen_ns >= r.arrivals_ns) and np.all(r.seen_ns <= r.dispatch_ns)
    i = 0
    batches = 0
    while i < n:  # walk the batches: a batch is a run of queries sharing dispatch time and instance
        k = int(r.batch_size[i])
        assert 1 <= k <= max_batch
        sl = slice(i, i + k)
        assert np.all(r.dispatch_ns[sl] == r.dispatch_ns[i]) and np.all(r.instance[sl] == r.instance[i])
        assert np.all(r.batch_size[sl] == k)
        assert r.dispatch_ns[i] >= r.arrivals_ns[i + k - 1]  # no query dispatched before it arrived
        i += k
        batches += 1
    # FIFO: batches start in arrival order on each instance, and no batch starts before an earlier one
    starts = r.dispatch_ns[np.r_[0, np.nonzero(np.diff(r.dispatch_ns) != 0)[0] + 1]] if n else r.dispatch_ns
    assert np.all(np.diff(starts) >= 0)


@settings(max_examples=12, deadline=None)
@given(
    gaps_us=st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=60),
    max_batch=st.integers(min_value=1, max_value=5),
    delay_us=st.integers(min_value=0, max_value=500),
    instances=st.integers(min_value=1, max_value=3),
)
def test_run_schedule_serves_every_query_once_in_order(
    gaps_us: list[int], max_batch: int, delay_us: int, instances: int
) -> None:
    offs = np.cumsum(np.asarray(gaps_us, dtype=np.int64) * 1000)
    be = Recorder(service_ns=100_000)
    r = run_schedule(be.infer, _pools(max_batch), offs, DynamicBatcher(max_batch, delay_us * 1000), instances)
    _check_served(r, max_batch, instances)
    # the backend ran exactly one call per batch, with a staged batch of the dispatched size
    assert len(be.calls) == len(np.unique(np.stack([r.dispatch_ns, r.instance]), axis=1).T)
    assert sorted(k for _, k, _, _ in be.calls) == sorted(
        int(r.batch_size[i]) for i in np.r_[0, np.nonzero(np.diff(r.dispatch_ns) != 0)[0] + 1]
    )


def test_partial_batches_wait_out_the_delay() -> None:
    # arrivals every 1 ms, max batch 4, delay 2.5 ms: a batch smaller than 4 goes only once its
    # oldest query has waited 2.5 ms (a lower bound the batcher guarantees, not a timing claim)
    offs = np.arange(30, dtype=np.int64) * 1_000_000
    r = run_schedule(Recorder().infer, _pools(4), offs, DynamicBatcher(4, 2_500_000), 1)
    _check_served(r, 4, 1)
    first = np.r_[0, np.nonzero(np.diff(r.dispatch_ns) != 0)[0] + 1]
    for i in first:
        if r.batch_size[i] < 4:
            assert r.dispatch_ns[i] >= r.arrivals_ns[i] + 2_500_000
        else:
            assert r.dispatch_ns[i] >= r.arrivals_ns[i + 3]


def test_warm_runs_every_formable_size_on_every_instance_before_the_schedule() -> None:
    be = Recorder()
    policy = DynamicBatcher(8, 1_000_000, preferred_batch_sizes=(4,))
    r = run_schedule(be.infer, _pools(8), np.arange(5, dtype=np.int64) * 100_000, policy, 2, warm=True)
    assert r.warmed_sizes == (1, 2, 3, 4, 8)
    before = [c for c in be.calls if c[3] < r.start_ns]
    for inst in ("online-instance-0", "online-instance-1"):
        ran = {(k, i) for name, k, i, _ in before if name == inst}
        assert ran == {(k, i) for k in (1, 2, 3, 4, 8) for i in range(2)}  # every staged batch
    assert len(before) == 2 * 5 * 2  # nothing of the schedule ran before its start
    _check_served(r, 8, 2)


def test_deadline_drops_queued_queries_and_keeps_the_rest_consistent() -> None:
    # 20 queries at once into a 20 ms model with a 30 ms deadline: at most 2 batches start
    offs = np.zeros(20, dtype=np.int64)
    r = run_schedule(
        Recorder(service_ns=20_000_000).infer, _pools(1), offs, DynamicBatcher(1, 0), 1, deadline_ns=30_000_000
    )
    served = r.completed_ns > 0
    assert 1 <= served.sum() < 20
    assert np.all(served[: served.sum()]) and not served[served.sum() :].any()  # FIFO: the tail is dropped
    assert np.all((r.dispatch_ns > 0) == served) and np.all((r.instance >= 0) == served)


def test_warm_up_errors_propagate() -> None:
    class Boom(NullBackend):
        def infer(self, prepared: Any) -> None:
            raise RuntimeError("kernel missing for batch 3")

    with pytest.raises(RuntimeError, match="batch 3"):
        run_schedule(Boom().infer, _pools(3), np.zeros(3, dtype=np.int64), DynamicBatcher(3, 0), 2, warm=True)


def test_placement_is_recorded() -> None:
    p = placement(2)
    assert p["instance_threads"] == 2 and p["cpus_available"] >= 1
    assert ("warning" in p) == (p["cpus_available"] <= 2)


def test_online_warm_up_runs_every_formable_size_before_the_window() -> None:
    import time

    class TimedCtx(FakeCtx):
        opened_ns = 0

        @contextmanager
        def window(self) -> Iterator[None]:
            self.opened_ns = time.perf_counter_ns()
            with super().window():
                yield

    be = Recorder()
    ctx = TimedCtx(be)
    opts = OnlineOptions(target_qps=2000.0, max_batch_size=6, preferred_batch_sizes=(4,), instances=2, stop=QUICK_STOP)
    res = OnlineScenario(opts).run(ctx)
    assert res.warmup["batch_sizes"] == [1, 2, 3, 4, 6]
    before = {(name, k) for name, k, _, t in be.calls if t < ctx.opened_ns}
    for inst in ("online-instance-0", "online-instance-1"):
        assert {k for name, k in before if name == inst} >= {1, 2, 3, 4, 6}
    assert res.extra["placement"]["instance_threads"] == 2


def test_heap_is_frozen_while_the_schedule_is_served_and_released_after() -> None:
    import gc

    counts: list[int] = []

    def infer(batch: Any) -> None:
        counts.append(gc.get_freeze_count())

    assert gc.get_freeze_count() == 0
    run_schedule(infer, _pools(2), np.arange(20, dtype=np.int64) * 50_000, DynamicBatcher(2, 0), 2)
    assert counts and min(counts) > 0  # every timed query ran with the pre-existing heap frozen
    assert gc.get_freeze_count() == 0
