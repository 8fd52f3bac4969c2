"""Closed-loop steady-state verdicts and extension, on a scripted clock (no real timing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from test_online import FakeCtx

from harness.measure.scenarios import closed
from harness.measure.scenarios.closed import OfflineScenario, SingleStreamOptions, SingleStreamScenario


class ScriptedBackend:
    """Each ``infer`` advances a fake clock by ``service(call)`` ns (the clock the loop reads)."""

    def __init__(self, service: Callable[[int], int]) -> None:
        self.t = 10**9
        self.calls = 0
        self.service = service

    def clock(self) -> int:
        return self.t

    def infer(self, prepared: Any) -> None:
        self.calls += 1
        self.t += self.service(self.calls)


def _run(monkeypatch: pytest.MonkeyPatch, be: ScriptedBackend, scenario: Any) -> Any:
    monkeypatch.setattr(closed, "now_ns", be.clock)
    return scenario.run(FakeCtx(be))


def test_short_run_is_extended_until_the_verdict_is_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    be = ScriptedBackend(lambda i: 1_000_000)  # a steady 1 ms per query
    stop = {"min_duration_s": 0.2, "min_queries": 10, "max_duration_s": 30, "warmup_s": 0, "warmup_queries": 2}
    res = _run(monkeypatch, be, OfflineScenario(OfflineScenario.Options(stop=stop)))
    ss = res.extra["steady_state"]
    # 0.2 s gives thirds far below 1 s: the loop ran on to three 1 s windows, then stopped
    assert ss["verdict"] == "stable" and res.validity["steady_state"]
    assert ss["extensions"] == 1 and ss["window_s"] == pytest.approx(1.0, rel=0.01)
    n = res.queries["completed_ns"].size
    assert n == pytest.approx(3000, abs=2) and res.metrics["throughput"].value == pytest.approx(1000, rel=0.01)
    # the joined rows are one contiguous loop, in order
    assert np.all(np.diff(res.queries["issued_ns"]) > 0) and np.array_equal(res.queries["query_id"], np.arange(n))


def test_drifting_loop_is_unstable_and_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    be = ScriptedBackend(lambda i: 1_000_000 + 200 * i)  # every query 0.2 us slower than the last
    stop = {
        "min_duration_s": 3.0,
        "min_queries": 10,
        "max_duration_s": 30,
        "warmup_s": 0,
        "warmup_queries": 2,
        "max_attempts": 2,
    }
    res = _run(monkeypatch, be, OfflineScenario(OfflineScenario.Options(stop=stop)))
    ss = res.extra["steady_state"]
    assert ss["verdict"] == "unstable" and not res.validity["steady_state"]
    assert ss["last_to_first"] < 1 / 1.1 and ss["interval"][1] < 1 / 1.1 and ss["ratio"] > 1.1
    discarded = res.warmup["discarded_unstable_attempts"]
    assert len(discarded) == 1 and discarded[0]["steady_state_ratio"] > 1.1


def test_inconclusive_run_stops_at_max_duration_and_stays_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    # phases of 1 ms and 3 ms queries, 0.3 s each: too noisy for a 10 % verdict in 4 s
    phase = np.repeat(rng.integers(0, 2, 200), 150)
    be = ScriptedBackend(lambda i: 1_000_000 + 2_000_000 * int(phase[i % phase.size]))
    stop = {"min_duration_s": 0.5, "min_queries": 10, "max_duration_s": 4.0, "warmup_s": 0, "warmup_queries": 2}
    res = _run(monkeypatch, be, OfflineScenario(OfflineScenario.Options(stop=stop)))
    ss = res.extra["steady_state"]
    assert ss["verdict"] == "inconclusive" and res.validity["steady_state"]
    assert ss["stopped"] == "stop.max_duration_s reached" and "straddles" in ss["note"]
    assert res.extra["elapsed_ns"] >= 4.0e9 * 0.99


def test_max_queries_caps_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    be = ScriptedBackend(lambda i: 1_000_000)
    stop = {"min_duration_s": 0.1, "min_queries": 10, "max_queries": 500, "warmup_s": 0, "warmup_queries": 2}
    opts = SingleStreamOptions(stop=stop)
    res = _run(monkeypatch, be, SingleStreamScenario(opts))
    ss = res.extra["steady_state"]
    assert res.queries["completed_ns"].size == 500
    assert ss["verdict"] == "inconclusive" and ss["stopped"].startswith("stop.max_queries")
    assert res.validity["steady_state"] and "need >= 1 s" in ss["note"]


def test_meters_cover_exactly_the_kept_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """A discarded (unstable) attempt is outside the window the meters report: each attempt
    opens its own window on the real cell context, and the last one is the kept attempt's."""
    from harness.measure.worker import RunnerContext

    class Backend(ScriptedBackend):
        def prepare(self, inputs: Any) -> Any:
            return inputs

    windows: list[list[int]] = []

    class Meter:
        def __enter__(self) -> Meter:
            windows.append([be.t])
            return self

        def __exit__(self, *exc: object) -> None:
            windows[-1].append(be.t)

    class Workload:
        def make_inputs(self, batch_size: int, seed: int) -> Any:
            return batch_size

    # the first attempt drifts (each query 0.2 us slower), the second is steady
    be = Backend(lambda i: 1_000_000 + (200 * i if len(windows) < 2 else 0))
    stop = {"min_duration_s": 3.0, "min_queries": 10, "max_duration_s": 30, "warmup_s": 0, "warmup_queries": 2}
    monkeypatch.setattr(closed, "now_ns", be.clock)
    ctx = RunnerContext(be, Workload(), seed=0, meters=[Meter()])
    res = OfflineScenario(OfflineScenario.Options(stop={**stop, "max_attempts": 3})).run(ctx)
    assert res.extra["steady_state"]["verdict"] == "stable"
    assert len(res.warmup["discarded_unstable_attempts"]) == 1 and len(windows) == 2
    start, end = windows[-1]
    assert start <= int(res.queries["issued_ns"][0]) and int(res.queries["completed_ns"][-1]) <= end
    # the kept window starts after the discarded attempt ended
    assert start >= windows[0][1]
