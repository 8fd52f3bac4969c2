"""Bounded raw-row recorder: exact rows below the cap, histogram + reservoir above it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core import early_stopping, stats
from harness.measure.backends.null import NullBackend
from harness.measure.load.recorder import RowRecorder, bounded_columns, lowest_equivalent
from harness.measure.scenarios.base import CellContext
from harness.measure.scenarios.closed import ClosedOptions, OfflineScenario, SingleStreamOptions, SingleStreamScenario
from harness.measure.scenarios.summary import latency_metrics, window_throughput

COLS = ("scheduled_ns", "completed_ns")


def _rows(lat: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    gaps = np.random.default_rng(seed).integers(1, 5_000, lat.size)
    start = 1_000_000 + np.cumsum(gaps)
    return start, start + lat


def _feed(rec: RowRecorder, start: np.ndarray, end: np.ndarray) -> None:
    """Row by row through the hot-path interface, as a measurement loop does."""
    (vs, ve), lim = rec.begin()
    i = 0
    for s, e in zip(start.tolist(), end.tolist()):
        vs[i] = s
        ve[i] = e
        i += 1
        if i == lim:
            (vs, ve), lim = rec.spill(i)
            i = 0
    rec.finish(i)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**46), min_size=1, max_size=50), st.integers(1, 5))
def test_lowest_equivalent_matches_hdrhistogram(values: list[int], digits: int) -> None:
    from hdrh.histogram import HdrHistogram

    h = HdrHistogram(1, 2**47, digits)
    got = lowest_equivalent(np.asarray(values, dtype=np.int64), h.sub_bucket_half_count_magnitude)
    assert got.tolist() == [h.get_lowest_equivalent_value(v) for v in values]


def test_below_cap_rows_are_exact() -> None:
    lat = np.random.default_rng(1).integers(100, 10**7, 5_000)
    start, end = _rows(lat)
    rec = RowRecorder(COLS, cap=5_000, chunk_rows=333)
    _feed(rec, start, end)
    assert not rec.overflowed and rec.total_rows == 5_000
    rows = rec.rows()
    assert set(rows) == {"query_id", *COLS}  # no row_weight: every row is kept
    assert np.array_equal(rows["scheduled_ns"], start) and np.array_equal(rows["completed_ns"], end)
    assert np.array_equal(rows["query_id"], np.arange(5_000))
    assert np.array_equal(rec.latencies_ns(), lat)
    assert rec.record_info() == {"total_rows": 5_000, "exact_rows": 5_000, "cap": 5_000, "overflowed": False}
    assert rec.relative_error == 0.0
    with pytest.raises(RuntimeError, match="did not overflow"):
        rec.percentile_ns(0.5)


def test_above_cap_keeps_exact_prefix_and_a_reservoir() -> None:
    n, cap, k = 20_000, 3_000, 500
    lat = np.random.default_rng(2).integers(1_000, 10**8, n)
    start, end = _rows(lat)
    rec = RowRecorder(COLS, cap=cap, reservoir_rows=k, chunk_rows=777, seed=5)
    _feed(rec, start, end)
    assert rec.overflowed and rec.total_rows == n
    rows = rec.rows()
    ids = rows["query_id"]
    assert ids.size == cap + k
    assert np.array_equal(ids[:cap], np.arange(cap))
    res_ids = ids[cap:]
    assert np.all(np.diff(res_ids) > 0) and res_ids.min() >= cap and res_ids.max() < n
    assert np.array_equal(rows["scheduled_ns"], start[ids]) and np.array_equal(rows["completed_ns"], end[ids])
    assert np.all(rows["row_weight"][:cap] == 1.0)
    assert np.allclose(rows["row_weight"][cap:], (n - cap) / k)
    info = rec.record_info()
    assert info["rows_not_kept"] == n - cap - k and info["reservoir_rows"] == k
    assert info["histogram"]["count"] == n and info["histogram"]["relative_error"] == rec.relative_error
    assert rec.first_row() == {"scheduled_ns": start[0], "completed_ns": end[0]}
    assert rec.last_row() == {"scheduled_ns": start[-1], "completed_ns": end[-1]}
    # the encoded histogram decodes to the same counts
    from hdrh.histogram import HdrHistogram

    h = HdrHistogram.decode(info["histogram"]["encoded"])
    assert h.get_total_count() == n
    # exact moments
    m = rec.latency_metrics(0.99)
    assert m["latency_mean"].value == pytest.approx(lat.mean() / 1e6)
    assert m["latency_min"].value == lat.min() / 1e6 and m["latency_max"].value == lat.max() / 1e6
    assert "HDR histogram" in m["latency_p99"].method
    assert set(m) == set(latency_metrics(lat, 0.99))


def test_hot_path_and_extend_agree() -> None:
    lat = np.random.default_rng(3).integers(0, 10**9, 9_000)
    start, end = _rows(lat)
    a = RowRecorder(COLS, cap=1_000, reservoir_rows=300, chunk_rows=512, seed=9)
    b = RowRecorder(COLS, cap=1_000, reservoir_rows=300, chunk_rows=512, seed=9)
    _feed(a, start, end)
    b.extend({"scheduled_ns": start, "completed_ns": end})
    ra, rb = a.rows(), b.rows()
    assert all(np.array_equal(ra[c], rb[c]) for c in ra)
    assert a.histogram_info()["encoded"] == b.histogram_info()["encoded"]


@settings(max_examples=150, deadline=None)
@given(
    lat=st.lists(st.integers(min_value=0, max_value=10**11), min_size=1, max_size=600),
    cap=st.integers(0, 50),
    chunk=st.integers(1, 97),
    q=st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0]),
)
def test_histogram_percentile_error_is_within_the_stated_bound(lat: list[int], cap: int, chunk: int, q: float) -> None:
    a = np.asarray(lat, dtype=np.int64)
    start, end = _rows(a)
    rec = RowRecorder(COLS, cap=cap, reservoir_rows=10, chunk_rows=chunk)
    rec.extend({"scheduled_ns": start, "completed_ns": end})
    if not rec.overflowed:
        assert a.size <= cap
        return
    true = stats.percentile(a, q)
    got = rec.percentile_ns(q)
    assert true <= got <= true + rec.relative_error * true
    # the bucket-resolution bootstrap CI brackets the exact one within the same bound
    lo, hi = rec.quantile_ci_ns(q)
    ex_lo, ex_hi = stats.quantile_ci(a, q)
    assert ex_lo <= lo <= ex_lo + rec.relative_error * ex_lo
    assert ex_hi <= hi <= ex_hi + rec.relative_error * ex_hi


def test_early_stopping_from_histogram_matches_exact_within_bound() -> None:
    lat = np.random.default_rng(4).lognormal(12, 0.8, 40_000).astype(np.int64)
    start, end = _rows(lat)
    rec = RowRecorder(COLS, cap=100, chunk_rows=4_096)
    rec.extend({"scheduled_ns": start, "completed_ns": end})
    for p in (0.9, 0.99):
        es = early_stopping.early_stopping_percentile(lat, p, 0.99)
        valid, n, min_q, value = rec.early_stopping(p, 0.99)
        assert (valid, n, min_q) == (es.valid, es.n, es.min_queries)
        assert es.conservative_value <= value <= es.conservative_value * (1 + rec.relative_error)
    few = RowRecorder(COLS, cap=1, chunk_rows=8)
    few.extend({"scheduled_ns": start[:30], "completed_ns": end[:30]})
    assert few.early_stopping(0.9)[0] is False


def test_window_throughput_from_bins_tracks_the_exact_one() -> None:
    lat = np.full(200_000, 1_000, dtype=np.int64)
    start, end = _rows(lat, seed=6)
    rec = RowRecorder(COLS, cap=10, chunk_rows=10_000)
    rec.extend({"scheduled_ns": start, "completed_ns": end})
    exact = window_throughput(end, np.ones(end.size))
    approx, width = rec.window_throughput(1)
    span = int(end[-1] - end[0])
    assert width * 1_000 <= span  # bins are fine compared with the windows
    # each edge may misplace the completions of one bin: at most 2 bins' share per window
    per_bin = exact.max() * width / (span / 10)
    assert np.all(np.abs(approx - exact) <= 2 * per_bin + 1e-9)


def test_reservoir_is_uniform_over_rows_past_the_cap() -> None:
    cap, over, k, trials = 5, 40, 8, 1_500
    start, end = _rows(np.arange(cap + over, dtype=np.int64))
    hits = np.zeros(cap + over, dtype=np.int64)
    for seed in range(trials):
        rec = RowRecorder(COLS, cap=cap, reservoir_rows=k, chunk_rows=7, seed=seed)
        rec.extend({"scheduled_ns": start, "completed_ns": end})
        hits[rec.rows()["query_id"][cap:]] += 1
    assert np.all(hits[:cap] == 0)
    freq = hits[cap:] / trials
    # each row past the cap is kept with probability k / over = 0.2; binomial sd ~ 0.0103
    assert np.all(np.abs(freq - k / over) < 0.05), freq
    from scipy.stats import chisquare

    assert chisquare(hits[cap:]).pvalue > 1e-4


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="start_col 'scheduled_ns' is not one of the columns"):
        RowRecorder(("a", "b"))
    with pytest.raises(ValueError, match="end_col 'b'"):
        RowRecorder(("a", "c"), start_col="a", end_col="b")
    with pytest.raises(ValueError, match="cap >= 0"):
        RowRecorder(COLS, cap=-1)
    with pytest.raises(ValueError, match="significant_digits"):
        RowRecorder(COLS, significant_digits=9)


# ---------------------------------------------------------------- closed-loop scenarios


class Ctx(CellContext):
    def __init__(self) -> None:
        self.backend = NullBackend()
        self.workload = None
        self.seed = 0

    def batch(self, batch_size: int, index: int = 0) -> Any:
        return {}

    @contextmanager
    def window(self) -> Iterator[None]:
        yield


STOP = {"min_duration_s": 0.0, "min_queries": 6_000, "max_queries": 6_000, "warmup_s": 0.0, "warmup_queries": 2}


def test_single_stream_past_the_cap_reports_histogram_percentiles() -> None:
    o = SingleStreamOptions.model_validate({"raw_rows_cap": 1_000, "stop": STOP})
    res = SingleStreamScenario(o).run(Ctx())
    info = res.extra["raw_rows"]
    assert info["total_rows"] == 6_000 and info["exact_rows"] == 1_000 and info["overflowed"]
    kept = info["exact_rows"] + info["reservoir_rows"]
    assert info["rows_not_kept"] == 6_000 - kept
    assert {v.size for v in res.queries.values()} == {kept}
    assert "HDR histogram" in res.metrics["latency_p90"].method
    assert res.validity["early_stopping_met"] and "HDR" in res.metrics["latency_early_stop"].method
    qps = res.metrics["queries_per_s"].value
    assert qps is not None and qps > 0
    assert len(res.extra["window_throughput"]) == 10


def test_offline_below_the_cap_keeps_every_row() -> None:
    o = ClosedOptions.model_validate({"raw_rows_cap": 10_000, "stop": STOP, "batch_size": 4})
    res = OfflineScenario(o).run(Ctx())
    q = res.queries
    assert q["query_id"].size == 6_000 and "row_weight" not in q
    assert np.all(q["batch_size"] == 4) and np.array_equal(q["scheduled_ns"], q["issued_ns"])
    assert np.all(q["completed_ns"] >= q["issued_ns"])
    assert res.extra["raw_rows"] == {"total_rows": 6_000, "exact_rows": 6_000, "cap": 10_000, "overflowed": False}
    assert res.warmup["queries"] >= 2
    assert "HDR" not in res.metrics["latency_p99"].method


def test_bounded_columns_keep_small_runs_whole_and_sample_large_ones() -> None:
    lat = np.arange(1, 1_001, dtype=np.int64)
    start, end = _rows(lat)
    cols = {"query_id": np.arange(1_000), "scheduled_ns": start, "completed_ns": end, "instance": lat % 3}
    same, info = bounded_columns(cols, 1_000)
    assert same == cols and info["overflowed"] is False
    kept, info = bounded_columns(cols, 200, seed=1)
    assert info["exact_rows"] == 200 and info["reservoir_rows"] == 800 and info["rows_not_kept"] == 0
    assert np.array_equal(kept["query_id"], np.arange(1_000))  # reservoir larger than the rest: all kept
    assert np.array_equal(kept["instance"], cols["instance"]) and np.all(kept["row_weight"] == 1.0)


def test_online_scenario_bounds_its_written_rows() -> None:
    from harness.measure.scenarios.online import OnlineOptions, OnlineScenario

    stop = {"min_duration_s": 0.2, "min_queries": 100, "max_duration_s": 20, "warmup_s": 0.0, "warmup_queries": 3}
    o = OnlineOptions.model_validate({"target_qps": 2_000.0, "raw_rows_cap": 150, "stop": stop})
    res = OnlineScenario(o).run(Ctx())
    info = res.extra["raw_rows"]
    assert info["total_rows"] == 400 and info["exact_rows"] == 150 and info["overflowed"]
    assert res.queries["query_id"].size == 150 + info["reservoir_rows"]
    assert "row_weight" in res.queries
    assert res.metrics["latency_p50"].method and "HDR" not in res.metrics["latency_p50"].method  # every row
