"""Sensor streams (deadlines, backlog detection) and token streams (TTFT/TPOT/ITL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from test_online import FakeCtx

from harness.core import stats
from harness.core.clock import now_ns, wait_until_ns
from harness.measure.backends.null import NullBackend
from harness.measure.scenarios.sensor_stream import (
    SensorStreamOptions,
    SensorStreamScenario,
    detect_backlog_growth,
    stream_schedule,
)
from harness.measure.scenarios.token_stream import (
    TokenStreamOptions,
    TokenStreamScenario,
    draw_requests,
    token_metrics,
)

# ---------------------------------------------------------------- sensor streams


def test_stream_schedule_is_phase_staggered() -> None:
    offs, stream, item = stream_schedule(4, 100.0, 3)
    assert offs.size == 12 and np.all(np.diff(offs) >= 0)
    # 4 streams at 100 Hz, staggered by 2.5 ms: a constant 400 Hz merged stream
    np.testing.assert_array_equal(np.diff(offs), np.full(11, 2_500_000))
    assert list(stream[:4]) == [0, 1, 2, 3] and list(item[:4]) == [0, 0, 0, 0]


def test_backlog_detector_on_synthetic_queues() -> None:
    rng = np.random.default_rng(0)
    sched = np.arange(2000, dtype=np.int64) * 1_000_000  # 1000 items/s for 2 s
    # overloaded: the server completes one item every 1.25 ms (800/s) -> backlog +200/s
    over = np.arange(2000, dtype=np.int64) * 1_250_000 + 500_000
    t = detect_backlog_growth(sched, over, 1000.0)
    assert t.growing and t.slope_items_per_s == pytest.approx(200, rel=0.1) and t.p_value < 1e-6
    assert t.lateness_slope_ms_per_s > 0
    # keeping up: constant service plus noise -> no growth
    ok = sched + 300_000 + rng.integers(0, 400_000, size=2000)
    t = detect_backlog_growth(sched, ok, 1000.0)
    assert not t.growing
    # a significant but negligible drift stays below the practical threshold
    drift = sched + 300_000 + np.arange(2000) * 50  # latency grows 0.1 ms over the run
    assert not detect_backlog_growth(sched, drift, 1000.0).growing
    # items that never completed stay in the backlog
    never = np.where(np.arange(2000) < 1000, sched + 100_000, 0)
    assert detect_backlog_growth(sched, never, 1000.0).growing


class FixedService(NullBackend):
    def __init__(self, service_ns: int) -> None:
        super().__init__()
        self.service_ns = service_ns

    def infer(self, prepared: Any) -> None:
        wait_until_ns(now_ns() + self.service_ns)


SENSOR_STOP = {"min_duration_s": 0.5, "min_queries": 20, "max_duration_s": 20, "warmup_s": 0.0, "warmup_queries": 2}


def test_overloaded_sensor_stream_is_detected() -> None:
    # 4 streams x 100 Hz = 400 items/s into a 5 ms model (capacity 200 items/s)
    opts = SensorStreamOptions(streams=4, rate_hz=100.0, deadline_ms=20.0, stop=SENSOR_STOP)
    res = SensorStreamScenario(opts).run(FakeCtx(FixedService(5_000_000)))
    assert res.extra["backlog"]["growing"] and not res.validity["backlog_stable"]
    assert res.metrics["backlog_growth_items_per_s"].value > 50
    assert res.metrics["deadline_miss_rate"].value > 0.5
    q = res.queries
    assert np.all(q["deadline_ns"] == q["scheduled_ns"] + 20_000_000)
    assert set(np.unique(q["stream"])) == {0, 1, 2, 3}


def test_idle_sensor_stream_is_not_flagged() -> None:
    opts = SensorStreamOptions(streams=2, rate_hz=100.0, max_batch_size=2, stop=SENSOR_STOP)
    res = SensorStreamScenario(opts).run(FakeCtx(NullBackend()))
    assert not res.extra["backlog"]["growing"] and res.validity["backlog_stable"]
    assert res.validity["all_completed"]
    missed = (res.queries["completed_ns"] > res.queries["deadline_ns"]).mean()
    assert res.metrics["deadline_miss_rate"].value == pytest.approx(missed)
    assert len(res.extra["per_stream_miss_rate"]) == 2


def test_sensor_options_reject_batch_size() -> None:
    with pytest.raises(ValidationError, match="max_batch_size"):
        SensorStreamOptions(batch_size=4)


# ---------------------------------------------------------------- token streams


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_000_000_000

    def __call__(self) -> int:
        return self.t


class ScriptedDecoder(NullBackend):
    """Advances a fake clock by ``prefill_ns`` before the first token and by the scripted
    ``gaps_ns`` (cycled) before each following token (``generate`` only: run with
    ``engine="naive"``)."""

    def __init__(self, clock: FakeClock, prefill_ns: int, gaps_ns: list[int]) -> None:
        super().__init__()
        self.clock, self.prefill_ns, self.gaps_ns = clock, prefill_ns, gaps_ns
        self.requests: list[tuple[int, int]] = []

    def generate(self, prompt_ids: np.ndarray, max_new_tokens: int) -> Iterator[int]:
        self.requests.append((int(prompt_ids.size), max_new_tokens))
        self.clock.t += self.prefill_ns
        yield 0
        for i in range(1, max_new_tokens):
            self.clock.t += self.gaps_ns[(i - 1) % len(self.gaps_ns)]
            yield i


def test_token_metrics_follow_definitions_on_scripted_times() -> None:
    clock = FakeClock()
    be = ScriptedDecoder(clock, prefill_ns=10_000_000, gaps_ns=[2_000_000, 3_000_000, 4_000_000])
    opts = TokenStreamOptions(
        mode="closed",
        engine="naive",
        output_len=4,
        prompt_len=[3, 9],
        ttft_slo_ms=10.0,
        tpot_slo_ms=2.5,
        stop={"min_duration_s": 0, "min_queries": 20, "warmup_queries": 0, "max_queries": 20},
    )
    res = TokenStreamScenario(opts, clock=clock).run(FakeCtx(be))
    m = res.metrics
    # each request: TTFT 10 ms, tokens at +2, +3, +4 ms -> e2e 19 ms, TPOT 9/3 = 3 ms
    assert m["ttft_p50"].value == pytest.approx(10.0) and m["ttft_p99"].value == pytest.approx(10.0)
    assert m["latency_p50"].value == pytest.approx(19.0)
    assert m["tpot_p50"].value == pytest.approx(3.0)
    # ITL pools every gap: 2, 3, 4 ms in equal numbers -> median 3, max 4, min 2
    assert m["itl_p50"].value == pytest.approx(3.0)
    assert m["itl_min"].value == pytest.approx(2.0) and m["itl_max"].value == pytest.approx(4.0)
    # 20 requests x 4 tokens over 20 x 19 ms of (fake) window
    assert m["output_tokens_per_s"].value == pytest.approx(80 / 0.380)
    # TTFT meets its 10 ms SLO, TPOT (3 ms) misses 2.5 ms -> no request is good
    assert m["goodput"].value == 0.0
    tok = res.tokens
    assert tok is not None and tok["t_ns"].size == 80
    assert list(tok["index"][:4]) == [0, 1, 2, 3] and set(tok["query_id"]) == set(range(20))
    q = res.queries
    np.testing.assert_array_equal(q["n_tokens"], np.full(20, 4))
    np.testing.assert_array_equal(q["first_token_ns"] - q["scheduled_ns"], np.full(20, 10_000_000))
    assert all(3 <= p <= 9 and n == 4 for p, n in be.requests)


def test_token_warmup_honours_both_minimums() -> None:
    clock = FakeClock()
    be = ScriptedDecoder(clock, prefill_ns=10_000_000, gaps_ns=[3_000_000])
    opts = TokenStreamOptions(
        mode="closed",
        engine="naive",
        output_len=4,
        prompt_len=4,
        stop={"min_duration_s": 0, "min_queries": 5, "max_queries": 5, "warmup_queries": 2, "warmup_s": 0.1},
    )
    res = TokenStreamScenario(opts, clock=clock).run(FakeCtx(be))
    # 19 ms per request: 0.1 s needs 6 requests (more than the 2 asked for)
    assert res.warmup["queries"] == 6 and res.warmup["duration_s"] == pytest.approx(0.114)
    assert len(be.requests) == 6 + 5
    opts = opts.model_copy(update={"stop": opts.stop.model_copy(update={"warmup_queries": 9})})
    be2 = ScriptedDecoder(FakeClock(), prefill_ns=10_000_000, gaps_ns=[3_000_000])
    res = TokenStreamScenario(opts, clock=be2.clock).run(FakeCtx(be2))
    assert res.warmup["queries"] == 9


def test_goodput_counts_requests_meeting_both_slos() -> None:
    sched = np.array([0, 0, 0], dtype=np.int64)
    times = [[5, 7, 9], [50, 52], [5, 100]]  # TTFT 5/50/5, TPOT 2/2/95
    m, per = token_metrics(sched, times, (0, 1_000_000_000), ttft_slo_ms=1e-5, tpot_slo_ms=1e-5)
    np.testing.assert_allclose(per["ttft_ns"], [5, 50, 5])
    np.testing.assert_allclose(per["tpot_ns"], [2, 2, 95])
    assert m["goodput"].value == pytest.approx(1.0)  # only the first: TTFT <= 10 ns, TPOT <= 10 ns


@pytest.mark.parametrize("engine", ["continuous", "naive"])
def test_open_loop_rows_are_consistent(engine: str) -> None:
    opts = TokenStreamOptions(
        mode="open",
        engine=engine,
        target_qps=400.0,
        prompt_len=4,
        output_len=[1, 6],
        max_concurrency=2,
        stop={"min_duration_s": 0.2, "min_queries": 40, "warmup_queries": 1},
    )
    res = TokenStreamScenario(opts).run(FakeCtx(NullBackend()))
    q, tok = res.queries, res.tokens
    assert tok is not None
    assert q["scheduled_ns"].size == 80 and np.all(q["n_tokens"] == q["output_len"])
    assert tok["t_ns"].size == q["n_tokens"].sum()
    assert np.all(q["issued_ns"] >= q["scheduled_ns"]) and np.all(q["dispatch_ns"] >= q["issued_ns"])
    assert np.all(q["first_token_ns"] >= q["dispatch_ns"])
    ttft = q["first_token_ns"] - q["scheduled_ns"]
    assert res.metrics["ttft_p50"].value == pytest.approx(stats.percentile(ttft, 0.5) / 1e6)
    assert res.metrics["offered_qps"].value == 400.0 and res.metrics["offered_qps"].kind == "configured"
    assert res.extra["engine"] == engine and "engine_fallback" not in res.extra


class ScriptedStepper(NullBackend):
    """Batched stepping on a fake clock: each ``prefill`` call takes ``prefill_ns``, each
    ``decode_step`` call ``decode_ns`` whatever the batch (an ideal batched model)."""

    def __init__(self, clock: FakeClock, prefill_ns: int, decode_ns: int) -> None:
        super().__init__()
        self.clock, self.prefill_ns, self.decode_ns = clock, prefill_ns, decode_ns
        self.batches: list[int] = []

    def prefill(self, chunks: Any) -> list[int | None]:
        self.clock.t += self.prefill_ns
        return super().prefill(chunks)

    def decode_step(self, active: Any) -> list[int]:
        self.clock.t += self.decode_ns
        self.batches.append(len(active))
        return super().decode_step(active)


def test_continuous_engine_times_follow_definitions_on_a_fake_clock() -> None:
    clock = FakeClock()
    be = ScriptedStepper(clock, prefill_ns=10_000_000, decode_ns=2_000_000)
    opts = TokenStreamOptions(
        mode="closed",
        concurrency=4,
        prompt_len=5,
        output_len=4,
        stop={"min_duration_s": 0, "min_queries": 12, "warmup_queries": 0, "warmup_s": 0, "max_queries": 12},
    )
    res = TokenStreamScenario(opts, clock=clock).run(FakeCtx(be))
    m, q = res.metrics, res.queries
    assert res.extra["engine"] == "continuous" and res.extra["engine_stats"]["max_decode_batch"] == 4
    # 3 waves of 4 requests: one prefill step (10 ms, first tokens), then 3 decode steps of
    # 2 ms for all four at once
    assert be.batches == [4] * 9
    np.testing.assert_array_equal(q["first_token_ns"] - q["scheduled_ns"], np.full(12, 10_000_000))
    assert m["ttft_p99"].value == pytest.approx(10.0) and m["tpot_p50"].value == pytest.approx(2.0)
    assert m["itl_min"].value == pytest.approx(2.0) and m["itl_max"].value == pytest.approx(2.0)
    assert m["output_tokens_per_s"].value == pytest.approx(48 / (3 * 0.016))
    # a wave is scheduled when the previous one finished, and admitted at once
    np.testing.assert_array_equal(q["dispatch_ns"], q["scheduled_ns"])
    assert sorted(set(q["scheduled_ns"] - q["scheduled_ns"].min())) == [0, 16_000_000, 32_000_000]


def test_engine_warmup_honours_both_minimums() -> None:
    clock = FakeClock()
    be = ScriptedStepper(clock, prefill_ns=10_000_000, decode_ns=2_000_000)
    opts = TokenStreamOptions(
        output_len=4,
        prompt_len=4,
        stop={"min_duration_s": 0, "min_queries": 3, "max_queries": 3, "warmup_queries": 2, "warmup_s": 0.1},
    )
    res = TokenStreamScenario(opts, clock=clock).run(FakeCtx(be))
    # 16 ms per request, one at a time: 0.1 s needs 7 requests (more than the 2 asked for)
    assert res.warmup["queries"] == 7 and res.warmup["duration_s"] == pytest.approx(0.112)
    assert res.extra["engine_stats"]["steps"] == 3 * 4  # the measurement's own steps only


def test_backend_without_batched_stepping_falls_back_to_naive_with_reason() -> None:
    clock = FakeClock()
    be = ScriptedDecoder(clock, prefill_ns=1_000_000, gaps_ns=[1_000_000])
    be.stepping_unsupported = lambda: "no slot caches here"  # type: ignore[method-assign]
    opts = TokenStreamOptions(
        output_len=3,
        stop={"min_duration_s": 0, "min_queries": 3, "warmup_queries": 0, "warmup_s": 0, "max_queries": 3},
    )
    res = TokenStreamScenario(opts, clock=clock).run(FakeCtx(be))
    assert res.extra["engine"] == "naive" and res.extra["engine_requested"] == "continuous"
    assert res.extra["engine_fallback"] == "no slot caches here"
    assert len(be.requests) == 3 and res.validity["all_completed"]


def test_lengths_are_seeded_and_in_range() -> None:
    o = TokenStreamOptions(prompt_len=[2, 5], output_len=[3, 3])
    p1, l1 = draw_requests(o, 50, 100, seed=4)
    p2, l2 = draw_requests(o, 50, 100, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(p1, p2)) and np.array_equal(l1, l2)
    assert {p.size for p in p1} <= {2, 3, 4, 5} and set(l1) == {3}
    assert all(p.max() < 100 for p in p1)
    with pytest.raises(ValidationError, match="lo <= hi"):
        TokenStreamOptions(output_len=[5, 2])


def test_kv_budget_limits_sequences_decoding_together() -> None:
    # each request reserves 4 + 4 - 1 = 7 cached tokens: 14 hold two of the four clients
    opts = TokenStreamOptions(
        concurrency=4,
        prompt_len=4,
        output_len=4,
        kv_cache_tokens=14,
        stop={"min_duration_s": 0, "min_queries": 16, "warmup_queries": 0, "warmup_s": 0, "max_queries": 16},
    )
    res = TokenStreamScenario(opts).run(FakeCtx(NullBackend()))
    assert res.extra["engine_stats"]["max_decode_batch"] == 2
    assert res.extra["engine_limits"]["kv_cache_tokens"] == 14 and res.validity["all_completed"]
    q = res.queries
    assert np.any(q["dispatch_ns"] > q["issued_ns"])  # some requests queued for KV space


def test_engine_options_are_checked() -> None:
    with pytest.raises(ValidationError, match="max_batched_tokens"):
        TokenStreamOptions(concurrency=8, max_batched_tokens=4)
    with pytest.raises(ValidationError, match="kv_cache_tokens"):
        TokenStreamOptions(prompt_len=[4, 10], output_len=8, kv_cache_tokens=16)  # needs 17
    with pytest.raises(ValidationError, match="engine"):
        TokenStreamOptions(engine="paged")
    assert TokenStreamOptions(mode="open", max_concurrency=6).engine_limits().max_num_seqs == 6
