"""Bounded raw-row recording: exact per-query rows up to a cap, then a histogram and a reservoir.

A :class:`RowRecorder` keeps the first ``cap`` rows exactly (preallocated int64 columns). Rows
past the cap are not kept one by one; they go, a block of ``chunk_rows`` at a time, into

* an HDR histogram of latency (``hdrhistogram`` package; exact counts per bucket, bucket width
  at most ``1 / sub_bucket_half_count`` of the bucket's lowest value: 1/1024 for 3 significant
  digits), which from then on also holds the exact rows, so percentiles cover every row;
* a uniform reservoir of ``reservoir_rows`` rows (Algorithm R, seeded; applied per block with
  the same draws and the same last-write-wins order as one row at a time);
* a time histogram of completions (``time_bins`` bins whose width doubles as the run grows), so
  window throughput stays available;
* exact running count, sum, minimum and maximum of latency.

Memory is bounded by ``cap + chunk_rows + reservoir_rows`` rows plus the histograms, whatever
the run length. Latency is ``end_col - start_col`` (the one definition of
:func:`harness.core.records.latency_ns` when those are ``completed_ns`` and ``scheduled_ns``);
rows whose end is 0 (never completed) or whose latency is negative are left out of the
histograms and counted in ``excluded_rows``.

Hot path (a caller's measurement loop): :meth:`RowRecorder.begin` gives one writable
``memoryview`` per column and a row limit; the loop writes row ``i`` of each view, and when
``i`` reaches the limit calls :meth:`RowRecorder.spill`, which absorbs the block (only after the
cap) and hands back the next views and limit. :meth:`RowRecorder.finish` takes the count written
in the last block. Nothing per row is allocated beyond the integers the clock returns.
:meth:`RowRecorder.extend` records whole arrays at once (open-loop scenarios that hold their
rows in arrays already).

Size: over 400 lines because :class:`RowRecorder` is one object whose hot path, overflow into
the histograms and reservoir, and read-back share its preallocated buffers; split apart, each
part would reach into the others' state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.core import early_stopping, stats
from harness.core.metrics import Metric

#: exact rows kept by default (MLPerf-sized runs stay exact)
DEFAULT_RAW_ROWS_CAP = 2_000_000
#: rows of the uniform reservoir kept past the cap
DEFAULT_RESERVOIR_ROWS = 100_000
#: rows absorbed at once past the cap
CHUNK_ROWS = 1 << 16
#: HDR significant decimal digits of latency
SIGNIFICANT_DIGITS = 3
#: largest latency the histogram tracks (24 h in ns; below 2**53, so float conversion is exact)
HIGHEST_TRACKABLE_NS = 24 * 3600 * 10**9
#: bins of the completion-time histogram
TIME_BINS = 1 << 14

View = memoryview


@dataclass(frozen=True)
class Bucketed:
    """Recorded HDR buckets in value order: ``low``/``high`` bounds (inclusive, ns) and counts."""

    low: np.ndarray
    high: np.ndarray
    count: np.ndarray

    @property
    def cumulative(self) -> np.ndarray:
        return np.cumsum(self.count)


def lowest_equivalent(values: np.ndarray, sub_bucket_half_count_magnitude: int) -> np.ndarray:
    """Vectorised HDR ``get_lowest_equivalent_value`` for non-negative int64 ``values`` (unit 1 ns).

    ``bucket = bit_length(v | (2 * half_count - 1)) - (half_count_magnitude + 1)``;
    ``lowest = (v >> bucket) << bucket``. Values must be below 2**53 (exact as float64).
    """
    v = np.asarray(values, dtype=np.int64)
    mask = (1 << (sub_bucket_half_count_magnitude + 1)) - 1
    _, exp = np.frexp((v | mask).astype(np.float64))  # exp = bit_length for 0 < x < 2**53
    bucket = (exp - (sub_bucket_half_count_magnitude + 1)).astype(np.int64)
    return (v >> bucket) << bucket


class RowRecorder:
    """Raw per-query rows: exact up to ``cap``, then histogram + reservoir (see module doc).

    ``columns`` are int64 columns in the order the hot path writes them; ``start_col`` and
    ``end_col`` define latency; ``seed`` seeds the reservoir.
    """

    def __init__(
        self,
        columns: Sequence[str],
        cap: int = DEFAULT_RAW_ROWS_CAP,
        *,
        start_col: str = "scheduled_ns",
        end_col: str = "completed_ns",
        reservoir_rows: int = DEFAULT_RESERVOIR_ROWS,
        chunk_rows: int = CHUNK_ROWS,
        significant_digits: int = SIGNIFICANT_DIGITS,
        seed: int = 0,
    ) -> None:
        cols = list(columns)
        if len(set(cols)) != len(cols) or not cols:
            raise ValueError(f"recorder columns must be distinct and non-empty, got {cols}")
        for name, c in (("start_col", start_col), ("end_col", end_col)):
            if c not in cols:
                raise ValueError(f"recorder {name} {c!r} is not one of the columns {cols}")
        if cap < 0 or reservoir_rows < 1 or chunk_rows < 1:
            raise ValueError(
                f"recorder needs cap >= 0, reservoir_rows >= 1, chunk_rows >= 1; "
                f"got {cap}, {reservoir_rows}, {chunk_rows}"
            )
        if not 1 <= significant_digits <= 5:
            raise ValueError(f"significant_digits must be 1..5, got {significant_digits}")
        self.columns = tuple(cols)
        self.cap = int(cap)
        self.reservoir_rows = int(reservoir_rows)
        self.chunk_rows = int(chunk_rows)
        self.significant_digits = int(significant_digits)
        self.seed = int(seed)
        self._si = cols.index(start_col)
        self._ei = cols.index(end_col)
        # np.empty maps pages lazily: only rows actually written become resident; the room past
        # the cap receives the reservoir rows in rows(), so kept rows are never concatenated
        self._exact = [np.empty(self.cap + self.reservoir_rows, dtype=np.int64) for _ in cols]
        self._chunk: list[np.ndarray] | None = None
        self._n_exact = 0
        self._n_over = 0  # rows absorbed past the cap
        self._in_exact = True
        self._finished = False
        self._hist: Any = None
        self._res: list[np.ndarray] | None = None
        self._res_id: np.ndarray | None = None
        self._rng = np.random.default_rng(self.seed)
        self._lat_sum = 0
        self._lat_n = 0
        self._lat_min: int | None = None
        self._lat_max: int | None = None
        self.excluded_rows = 0
        self._t_origin: int | None = None
        self._t_last: int | None = None
        self._t_shift = 0
        self._t_bins: np.ndarray | None = None
        self._first: tuple[int, ...] | None = None
        self._last: tuple[int, ...] | None = None

    # ------------------------------------------------------------------ hot path

    def begin(self) -> tuple[tuple[View, ...], int]:
        """Writable views of the first block and its row limit."""
        if self.cap == 0:
            self._in_exact = False
            return self._chunk_views()
        return tuple(a.data for a in self._exact), self.cap

    def spill(self, filled: int) -> tuple[tuple[View, ...], int]:
        """The current block holds ``filled`` rows (its limit): absorb it and return the next."""
        if self._in_exact:
            self._n_exact = filled
            self._note_edges(self._exact, filled)
            self._in_exact = False  # the histogram starts with the first row past the cap
            return self._chunk_views()
        assert self._chunk is not None
        self._note_edges(self._chunk, filled)
        self._absorb([c[:filled] for c in self._chunk])
        return self._chunk_views()

    def finish(self, filled: int) -> None:
        """The last block holds ``filled`` rows; no more rows follow."""
        if self._finished:
            raise RuntimeError("RowRecorder.finish called twice")
        self._finished = True
        if self._in_exact:
            self._n_exact = filled
            self._note_edges(self._exact, filled)
        elif self._chunk is not None and filled:
            self._note_edges(self._chunk, filled)
            self._absorb([c[:filled] for c in self._chunk])

    def extend(self, columns: Mapping[str, np.ndarray]) -> None:
        """Record whole columns at once (same length each), then :meth:`finish` implicitly."""
        arrays = [np.asarray(columns[c], dtype=np.int64) for c in self.columns]
        n = int(arrays[0].size) if arrays else 0
        if any(a.shape != (n,) for a in arrays):
            raise ValueError(f"recorder.extend: columns {self.columns} must be 1-D of one length")
        if self._finished:
            raise RuntimeError("RowRecorder.extend after finish")
        self._note_edges(arrays, n)
        k = min(n, self.cap)
        for dst, src in zip(self._exact, arrays):
            dst[:k] = src[:k]
        self._n_exact = k
        if n > self.cap:
            self._in_exact = False
            for i in range(self.cap, n, self.chunk_rows):
                self._absorb([a[i : i + self.chunk_rows] for a in arrays])
        self._finished = True

    # ------------------------------------------------------------------ absorbing

    def _note_edges(self, block: Sequence[np.ndarray], filled: int) -> None:
        if filled:
            if self._first is None:
                self._first = tuple(int(c[0]) for c in block)
            self._last = tuple(int(c[filled - 1]) for c in block)

    def _chunk_views(self) -> tuple[tuple[View, ...], int]:
        if self._chunk is None:
            self._chunk = [np.empty(self.chunk_rows, dtype=np.int64) for _ in self.columns]
        return tuple(a.data for a in self._chunk), self.chunk_rows

    def _start_overflow(self) -> None:
        # deferred: only a run past its raw-row cap needs the histogram library
        from hdrh.histogram import HdrHistogram

        self._hist = HdrHistogram(1, HIGHEST_TRACKABLE_NS, self.significant_digits)
        self._res = [np.empty(self.reservoir_rows, dtype=np.int64) for _ in self.columns]
        self._res_id = np.empty(self.reservoir_rows, dtype=np.int64)
        self._t_bins = np.zeros(TIME_BINS, dtype=np.int64)
        for i in range(0, self._n_exact, self.chunk_rows):  # in blocks: bounded temporaries
            self._summarise([a[i : min(i + self.chunk_rows, self._n_exact)] for a in self._exact])

    def _summarise(self, block: list[np.ndarray]) -> None:
        """Latency histogram, exact moments and completion-time bins of ``block``."""
        end = block[self._ei]
        lat = end - block[self._si]
        ok = (end > 0) & (lat >= 0) & (lat <= HIGHEST_TRACKABLE_NS)
        if not ok.all():
            self.excluded_rows += int(ok.size - np.count_nonzero(ok))
            lat = lat[ok]
            end = end[ok]
        if lat.size == 0:
            return
        h = self._hist
        low = lowest_equivalent(lat, h.sub_bucket_half_count_magnitude)
        vals, counts = np.unique(low, return_counts=True)
        for v, c in zip(vals.tolist(), counts.tolist()):
            h.record_value(v, c)
        self._lat_sum += int(lat.sum())
        self._lat_n += int(lat.size)
        lo, hi = int(lat.min()), int(lat.max())
        self._lat_min = lo if self._lat_min is None else min(self._lat_min, lo)
        self._lat_max = hi if self._lat_max is None else max(self._lat_max, hi)
        self._bin_times(end)

    def _bin_times(self, end: np.ndarray) -> None:
        assert self._t_bins is not None
        if self._t_origin is None:
            self._t_origin = int(end.min())
        self._t_last = max(self._t_last or 0, int(end.max()))
        off = np.maximum(end - self._t_origin, 0)
        top = int(off.max())
        while (top >> self._t_shift) >= TIME_BINS:  # double the bin width: fold pairs
            self._t_bins = np.concatenate(
                [self._t_bins.reshape(-1, 2).sum(axis=1), np.zeros(TIME_BINS // 2, dtype=np.int64)]
            )
            self._t_shift += 1
        self._t_bins += np.bincount(off >> self._t_shift, minlength=TIME_BINS)

    def _absorb(self, block: list[np.ndarray]) -> None:
        m = int(block[0].size)
        if m == 0:
            return
        if self._hist is None:
            self._start_overflow()
        self._summarise(block)
        assert self._res is not None and self._res_id is not None
        k = self.reservoir_rows
        j = np.arange(self._n_over, self._n_over + m, dtype=np.int64)  # overflow index of each row
        ids = j + self._n_exact
        fill = j < k
        if fill.any():  # Algorithm R: the first k rows fill the reservoir
            slots = j[fill]
            for dst, src in zip(self._res, block):
                dst[slots] = src[fill]
            self._res_id[slots] = ids[fill]
        rest = ~fill
        if rest.any():  # row j replaces slot r ~ U{0..j} when r < k, later rows win
            r = self._rng.integers(0, j[rest] + 1)
            take = r < k
            pos = np.flatnonzero(rest)[take]
            slots = r[take]
            if slots.size:
                rev_slots = slots[::-1]
                uniq, first = np.unique(rev_slots, return_index=True)
                src_rows = pos[::-1][first]
                for dst, src in zip(self._res, block):
                    dst[uniq] = src[src_rows]
                self._res_id[uniq] = ids[src_rows]
        self._n_over += m

    # ------------------------------------------------------------------ results

    @property
    def total_rows(self) -> int:
        """Rows recorded (kept or not)."""
        return self._n_exact + self._n_over

    def first_row(self) -> dict[str, int]:
        """Values of the first recorded row (empty when none)."""
        return {} if self._first is None else dict(zip(self.columns, self._first))

    def last_row(self) -> dict[str, int]:
        """Values of the last recorded row (empty when none)."""
        return {} if self._last is None else dict(zip(self.columns, self._last))

    @property
    def overflowed(self) -> bool:
        """True once rows went past the cap (percentiles then come from the histogram)."""
        return self._hist is not None

    @property
    def relative_error(self) -> float:
        """Bound on |reported - true| / true of a histogram percentile (0 when exact)."""
        if self._hist is None:
            return 0.0
        return 1.0 / float(self._hist.sub_bucket_half_count)

    def exact(self) -> dict[str, np.ndarray]:
        """The exact rows (the first ``min(total, cap)``), views into the recorder's arrays."""
        return {c: a[: self._n_exact] for c, a in zip(self.columns, self._exact)}

    def rows(self) -> dict[str, np.ndarray]:
        """Kept rows with a ``query_id`` (row index in recording order) column: the exact rows,
        then (after overflow) the reservoir rows in ``query_id`` order plus a ``row_weight``
        column (float32: 1 for exact rows; rows past the cap / reservoir size for reservoir rows)."""
        ne = self._n_exact
        if self._res is None or self._res_id is None or self._n_over == 0:
            out: dict[str, np.ndarray] = {"query_id": np.arange(ne, dtype=np.int64)}
            out.update(self.exact())
            return out
        k = min(self.reservoir_rows, self._n_over)
        order = np.argsort(self._res_id[:k], kind="stable")
        qid = np.arange(ne + k, dtype=np.int64)
        qid[ne:] = self._res_id[:k][order]
        out = {"query_id": qid}
        for c, dst, r in zip(self.columns, self._exact, self._res):
            dst[ne : ne + k] = r[:k][order]  # the room past the exact rows
            out[c] = dst[: ne + k]
        weight = np.ones(ne + k, dtype=np.float32)  # 7 significant digits: ample for a weight
        weight[ne:] = self._n_over / k
        out["row_weight"] = weight
        return out

    def record_info(self) -> dict[str, Any]:
        """What was kept, for the cell record (``extra["raw_rows"]``)."""
        info: dict[str, Any] = {
            "total_rows": self.total_rows,
            "exact_rows": self._n_exact,
            "cap": self.cap,
            "overflowed": self.overflowed,
        }
        if self.overflowed:
            kept_res = min(self.reservoir_rows, self._n_over)
            info.update(
                reservoir_rows=kept_res,
                rows_not_kept=self._n_over - kept_res,
                reservoir_method=f"Algorithm R over the rows past the cap, seed {self.seed}; "
                "row_weight = rows past the cap / reservoir rows",
                histogram=self.histogram_info(),
                excluded_rows=self.excluded_rows,
            )
        return info

    def histogram_info(self) -> dict[str, Any]:
        """Histogram settings, error bound and its encoded counts (HdrHistogram V2, base64)."""
        h = self._hist
        if h is None:
            return {}
        enc = h.encode()
        return {
            "kind": "HdrHistogram of latency_ns (completed - scheduled)",
            "significant_digits": self.significant_digits,
            "relative_error": self.relative_error,
            "lowest_trackable_ns": 1,
            "highest_trackable_ns": HIGHEST_TRACKABLE_NS,
            "count": int(h.get_total_count()),
            "encoded": enc.decode() if isinstance(enc, bytes) else str(enc),
        }

    def buckets(self) -> Bucketed:
        """Recorded latency buckets (after overflow)."""
        h = self._hist
        if h is None:
            raise RuntimeError("no histogram: the recorder did not overflow; use exact() rows")
        highs, counts = [], []
        for it in h.get_recorded_iterator():
            highs.append(int(it.value_iterated_to))
            counts.append(int(it.count_at_value_iterated_to))
        high = np.asarray(highs, dtype=np.int64)
        low = np.asarray([h.get_lowest_equivalent_value(v) for v in highs], dtype=np.int64)
        return Bucketed(low, high, np.asarray(counts, dtype=np.int64))

    # ------------------------------------------------------------------ summaries

    def latencies_ns(self) -> np.ndarray:
        """Exact latencies of every row (only before overflow)."""
        if self.overflowed:
            raise RuntimeError("the recorder overflowed: latencies of rows past the cap were not kept")
        e = self._exact
        return e[self._ei][: self._n_exact] - e[self._si][: self._n_exact]

    def percentile_ns(self, q: float) -> int:
        """LoadGen-rank percentile (``sorted[floor(n*q)]``) from the histogram: the highest value
        of the bucket holding that rank, within :attr:`relative_error` above the true value."""
        b = self.buckets()
        n = int(b.count.sum())
        k = stats.percentile_index(n, q)
        return int(b.high[int(np.searchsorted(b.cumulative, k, side="right"))])

    def quantile_ci_ns(self, q: float, confidence: float = 0.95) -> tuple[int, int]:
        """Exact percentile-bootstrap CI of the rank-``floor(n*q)`` order statistic, at bucket
        resolution: ``P(x*_(k) <= bucket j) = P(Binomial(n, F_j) >= k + 1)``."""
        from scipy.special import betainc  # P(Binomial(n, F) >= k + 1) = I_F(k + 1, n - k)

        b = self.buckets()
        cum = b.cumulative
        n = int(cum[-1])
        k = stats.percentile_index(n, q)
        cdf = betainc(k + 1, n - k, cum / n)
        alpha = (1.0 - confidence) / 2.0
        lo = min(int(np.searchsorted(cdf, alpha, side="left")), cum.size - 1)
        hi = min(int(np.searchsorted(cdf, 1.0 - alpha, side="left")), cum.size - 1)
        return int(b.high[lo]), int(b.high[hi])

    def method(self) -> str:
        """How histogram percentiles are computed, with their error bound."""
        return (
            f"HDR histogram ({self.significant_digits} significant digits) over all {self._lat_n} rows: "
            f"loadgen rank floor(n*q) on exact counts, value = upper bound of its bucket, at most "
            f"{self.relative_error:.3%} above the true order statistic; CI: exact percentile bootstrap of "
            f"that order statistic at bucket resolution"
        )

    def latency_metrics(
        self, headline_q: float, prefix: str = "latency", qs: Sequence[float] = stats.DEFAULT_QS
    ) -> dict[str, Metric]:
        """Percentile metrics (ms) from the histogram, as
        :func:`harness.measure.scenarios.summary.latency_metrics` gives from exact rows: CIs
        for p50 and the headline; mean, min and max are exact."""
        if self._lat_n == 0:
            return {}
        hkey = stats.percentile_key(headline_q)
        all_qs = list(qs) + ([headline_q] if hkey not in {stats.percentile_key(q) for q in qs} else [])
        method = self.method()
        out: dict[str, Metric] = {}
        for q in all_qs:
            key = stats.percentile_key(q)
            lo_hi: tuple[float | None, float | None] = (None, None)
            if key in ("p50", hkey):
                lo, hi = self.quantile_ci_ns(q)
                lo_hi = (lo / stats.NS_PER_MS, hi / stats.NS_PER_MS)
            out[f"{prefix}_{key}"] = Metric(
                value=self.percentile_ns(q) / stats.NS_PER_MS,
                unit="ms",
                ci_low=lo_hi[0],
                ci_high=lo_hi[1],
                method=method,
            )
        assert self._lat_min is not None and self._lat_max is not None
        out[f"{prefix}_mean"] = Metric(value=self._lat_sum / self._lat_n / stats.NS_PER_MS, unit="ms")
        out[f"{prefix}_min"] = Metric(value=self._lat_min / stats.NS_PER_MS, unit="ms")
        out[f"{prefix}_max"] = Metric(value=self._lat_max / stats.NS_PER_MS, unit="ms")
        return out

    def early_stopping(self, p: float, confidence: float = 0.99) -> tuple[bool, int, int, float]:
        """MLPerf early stopping from the histogram: ``(valid, n, min_queries, value_ns)``.

        The index ``n - t`` (largest ``t`` with ``I_p(n - t, t + 1) <= 1 - confidence``) depends
        only on ``n``, so it is found by bisection; its value is the upper bound of the bucket
        holding that rank (within :attr:`relative_error`). ``value_ns`` is NaN when not valid.
        """
        b = self.buckets()
        cum = b.cumulative
        n = int(cum[-1])
        min_q = early_stopping.early_stopping_min_queries(p, confidence)
        if n < min_q:
            return False, n, min_q, math.nan

        def ok(t: int) -> bool:
            return early_stopping.early_stopping_min_passing(t, p, confidence) <= n - t

        if not ok(1):
            return False, n, min_q, math.nan
        lo, hi = 1, n - 1
        while lo < hi:  # largest t with ok(t); ok is true for small t
            mid = (lo + hi + 1) // 2
            if ok(mid):
                lo = mid
            else:
                hi = mid - 1
        idx = n - lo
        return True, n, min_q, float(b.high[int(np.searchsorted(cum, idx, side="right"))])

    def window_throughput(self, samples_per_row: int, n_windows: int = 10) -> tuple[np.ndarray, int]:
        """Samples/s in ``n_windows`` equal windows between the first and last completion, from
        the completion-time bins, and the bin width (ns): each window edge may misplace the
        completions of one bin."""
        if self._t_bins is None or self._t_origin is None or self._t_last is None:
            raise RuntimeError("no completion bins: the recorder did not overflow; use exact() rows")
        t0, t1 = self._t_origin, self._t_last
        if t1 <= t0:
            return np.array([], dtype=float), 1 << self._t_shift
        width = 1 << self._t_shift
        nz = np.flatnonzero(self._t_bins)
        mid = t0 + nz * width + width // 2
        edges = np.linspace(t0, t1, n_windows + 1)
        idx = np.clip(np.searchsorted(edges, mid, side="right") - 1, 0, n_windows - 1)
        per = np.bincount(idx, weights=self._t_bins[nz].astype(float) * samples_per_row, minlength=n_windows)
        return per / ((t1 - t0) / n_windows / 1e9), width


def bounded_columns(
    columns: Mapping[str, np.ndarray], cap: int, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Rows an open-loop run already holds in int64 arrays (bounded by its schedule), bounded
    for writing: all of them up to ``cap`` rows, else the first ``cap`` plus a seeded reservoir
    of the rest with ``row_weight`` (:meth:`RowRecorder.rows`). Also returns what was kept
    (:meth:`RowRecorder.record_info`). A ``query_id`` column is replaced by the row index."""
    names = [c for c in columns if c != "query_id"]
    n = int(np.asarray(columns[names[0]]).size) if names else 0
    if n <= cap:
        return dict(columns), {"total_rows": n, "exact_rows": n, "cap": cap, "overflowed": False}
    rec = RowRecorder(names, cap, seed=seed)
    rec.extend({c: columns[c] for c in names})
    return rec.rows(), rec.record_info()
