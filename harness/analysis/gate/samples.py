"""Samples the gate compares, from a cell's raw per-query table.

* latency: per query, :func:`harness.core.records.query_latency_ms` (completed - scheduled, ms);
* throughput: samples completed per window of :data:`THROUGHPUT_WINDOW_NS`, in samples/s;
  for an interleaved run (a ``block`` column) samples per block over the block's duration,
  so the other side's turns never count as this side's time.

A long run keeps its first rows exactly and a uniform reservoir of the rest, each reservoir row
standing for ``row_weight`` queries (:mod:`harness.measure.load.recorder`). The gate compares
a uniform sample of the whole run instead (:func:`uniform_rows`): the exact rows thinned to the
reservoir's rate, so the beginning of a run does not outweigh the rest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.gate.rules import GateError, GateMetric
from harness.core import stats
from harness.core.records import latency_ns, query_latency_ms
from harness.store.refs import LoadedRun
from harness.store.results import ResultsError

#: per-window throughput samples: windows of 100 ms (shorter when the run is under 1 s)
THROUGHPUT_WINDOW_NS = 100_000_000
MIN_THROUGHPUT_WINDOWS = 10


def read_raw(run: LoadedRun, cell_id: str) -> pd.DataFrame:
    """The raw per-query table of ``cell_id`` in ``run`` as a uniform sample of the run
    (:func:`uniform_rows`); a store error becomes a :class:`GateError` with the same message
    (exit code 2)."""
    try:
        return uniform_rows(run.raw(cell_id))
    except ResultsError as exc:
        raise GateError(str(exc)) from None


def uniform_rows(raw: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """A table whose rows are a uniform sample of every query of the run.

    Without a ``row_weight`` column (every query kept), or with every weight 1, ``raw`` itself.
    Otherwise the reservoir rows (weight ``w`` > 1) are kept and the exact rows (weight 1) are
    thinned to ``1 / w`` of them (seeded, order kept), so each remaining row stands for ``w``
    queries; ``row_weight`` is then ``w`` on every row (throughput sums it)."""
    if "row_weight" not in raw:
        return raw
    weight = np.asarray(raw["row_weight"], dtype=np.float64)
    heavy = weight > 1.0
    if not heavy.any():
        return raw
    w = float(np.median(weight[heavy]))
    exact = np.flatnonzero(~heavy)
    take = int(round(exact.size / w))
    rng = np.random.default_rng(seed)
    keep_exact = np.sort(rng.choice(exact, size=min(take, exact.size), replace=False))
    out = raw.iloc[np.concatenate([keep_exact, np.flatnonzero(heavy)])].copy()
    out["row_weight"] = w
    return out.reset_index(drop=True)


def _weights(raw: pd.DataFrame) -> np.ndarray | None:
    """Samples each row stands for: ``batch_size`` x ``row_weight`` (None: one each)."""
    if "batch_size" not in raw and "row_weight" not in raw:
        return None
    w = np.asarray(raw["batch_size"], dtype=float) if "batch_size" in raw else np.ones(len(raw))
    if "row_weight" in raw:
        w = w * np.asarray(raw["row_weight"], dtype=float)
    return w


def latency_samples_ms(raw: pd.DataFrame) -> np.ndarray:
    """Per-query latency in ms (``completed_ns - scheduled_ns``) from a raw table."""
    return query_latency_ms(raw)


def window_throughput_samples(
    completed_ns: np.ndarray, batch_size: np.ndarray | None = None, window_ns: int = THROUGHPUT_WINDOW_NS
) -> np.ndarray:
    """Samples/s in consecutive full windows of ``window_ns`` from the first completion.

    Runs shorter than ``MIN_THROUGHPUT_WINDOWS`` windows use ``duration / MIN_THROUGHPUT_WINDOWS``
    windows instead. The partial last window is dropped."""
    t = np.sort(np.asarray(completed_ns, dtype=np.int64))
    if t.size < 2:
        return np.array([], dtype=float)
    w = np.ones(t.size) if batch_size is None else np.asarray(batch_size, dtype=float)[np.argsort(completed_ns)]
    dur = int(t[-1] - t[0])
    if dur <= 0:
        return np.array([], dtype=float)
    win = min(window_ns, dur // MIN_THROUGHPUT_WINDOWS) if dur < window_ns * MIN_THROUGHPUT_WINDOWS else window_ns
    win = max(int(win), 1)
    n_full = dur // win
    if n_full < 1:
        return np.array([], dtype=float)
    idx = (t - t[0]) // win
    keep = idx < n_full
    per = np.bincount(idx[keep], weights=w[keep], minlength=n_full)
    return np.asarray(per / (win / 1e9), dtype=float)


def block_values(raw: pd.DataFrame, metric: GateMetric) -> dict[int, float]:
    """Per-block value of ``metric`` from an interleaved raw table (a ``block`` column):
    {round: statistic of the block's query latencies (ms)}, or for throughput the block's
    samples over its duration (samples/s); blocks of zero duration are left out."""
    block = np.asarray(raw["block"], dtype=np.int64)
    start = np.asarray(raw["scheduled_ns"], dtype=np.int64)
    end = np.asarray(raw["completed_ns"], dtype=np.int64)
    w = _weights(raw)
    bs = np.ones(block.size) if w is None else w
    lat_ms = latency_ns(end, start) / 1e6
    out: dict[int, float] = {}
    fn = stats.resolve_statistic(metric.statistic)
    for k in np.unique(block):
        m = block == k
        if metric.samples == "throughput":
            dur = int(end[m].max() - start[m].min())
            if dur > 0:
                out[int(k)] = float(bs[m].sum() / (dur / 1e9))
        elif m.sum() >= 1:
            out[int(k)] = float(np.asarray(fn(lat_ms[m])))
    return out


def is_interleaved(raw: pd.DataFrame) -> bool:
    """Whether a raw table comes from an interleaved session (it has a ``block`` column)."""
    return "block" in raw


def cell_samples(raw: pd.DataFrame, metric: GateMetric) -> np.ndarray:
    """Samples of ``metric``: per-query latency (ms), or throughput per 100 ms window; for an
    interleaved run throughput per block (:func:`block_values`)."""
    if metric.samples == "latency":
        return latency_samples_ms(raw)
    if is_interleaved(raw):
        return np.asarray(list(block_values(raw, metric).values()), dtype=float)
    return window_throughput_samples(np.asarray(raw["completed_ns"]), _weights(raw))
