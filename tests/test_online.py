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
    """Stages dict batches that record their size; the window may be entered once."""

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
        assert self.windows == 0, "window entered twice"
        self.windows += 1
        yield


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
