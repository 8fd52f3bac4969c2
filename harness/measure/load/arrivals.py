"""Open-loop arrival schedules: pre-generated, seeded, integer nanosecond offsets.

Every function here is pure: the same arguments give the same ``int64`` array of offsets
(ns from the start of the schedule, non-decreasing, >= 0). Nothing is drawn
while the clock runs; a scenario adds its start time to the offsets and issues at those times.

Processes
---------
* ``poisson`` (default): exponential gaps with mean ``1 / rate_qps`` (MLPerf LoadGen Server).
* ``constant``: gaps of exactly ``1 / rate_qps``.
* ``gamma``: gamma-distributed gaps with squared coefficient of variation ``burstiness``
  (CV^2; shape = 1 / burstiness, scale = burstiness / rate). ``burstiness = 1`` is Poisson,
  ``< 1`` is smoother, ``> 1`` burstier.
* ``trace``: replay of timestamps from a CSV file (see :func:`load_trace`).

Length and exact rate
---------------------
A schedule is sized either by ``count`` (number of arrivals) or by ``duration_s``
(``count = round(rate_qps * duration_s)``). With ``exact_rate=True`` (the default) the
``count + 1`` gaps are drawn from the process and rescaled so that they sum to exactly
``count / rate_qps``; the arrivals are the first ``count`` partial sums, so all of them fall
in ``[0, count / rate_qps)`` and the offered load of the schedule then *is* the target rate, not a
sample around it (a 10 s Poisson schedule at 1000 QPS otherwise misses its target by 1 % one
time in three). For Poisson this is exactly the process conditioned on its count (arrivals
are uniform order statistics); for gamma it preserves the gap distribution's shape. With
``exact_rate=False`` the raw renewal process is returned.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Literal

import numpy as np

ArrivalKind = Literal["poisson", "constant", "gamma", "trace"]
ARRIVAL_KINDS: tuple[str, ...] = ("poisson", "constant", "gamma", "trace")

NS_PER_S = 1_000_000_000
_TRACE_UNITS = {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0}


class TraceError(ValueError):
    """A trace file that cannot be replayed (the message names the file and line)."""


def _count(rate_qps: float, duration_s: float | None, count: int | None) -> int:
    if not (rate_qps > 0 and math.isfinite(rate_qps)):
        raise ValueError(f"rate_qps must be a positive finite number, got {rate_qps!r}")
    if (duration_s is None) == (count is None):
        raise ValueError("give exactly one of duration_s or count")
    if count is not None:
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        return int(count)
    assert duration_s is not None
    if duration_s < 0 or not math.isfinite(duration_s):
        raise ValueError(f"duration_s must be >= 0 and finite, got {duration_s!r}")
    return int(round(rate_qps * duration_s))


def _offsets(gaps_s: np.ndarray, n: int, rate_qps: float, exact_rate: bool) -> np.ndarray:
    """Offsets of ``n`` arrivals: cumulative sums of the first ``n`` of ``n + 1`` gaps.

    With ``exact_rate`` the gaps are rescaled to sum to ``n / rate_qps``, so all ``n``
    arrivals fall in ``[0, n / rate_qps)``.
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    gaps = np.asarray(gaps_s, dtype=np.float64)
    if exact_rate:
        total = float(gaps.sum())
        if total > 0:
            gaps = gaps * (n / rate_qps / total)
    return np.round(np.cumsum(gaps[:n]) * NS_PER_S).astype(np.int64)


def constant(
    rate_qps: float, *, duration_s: float | None = None, count: int | None = None, seed: int = 0
) -> np.ndarray:
    """Arrivals every ``1 / rate_qps`` seconds (``seed`` is accepted and unused)."""
    n = _count(rate_qps, duration_s, count)
    return np.round(np.arange(n, dtype=np.float64) * (NS_PER_S / rate_qps)).astype(np.int64)


def poisson(
    rate_qps: float,
    *,
    duration_s: float | None = None,
    count: int | None = None,
    seed: int = 0,
    exact_rate: bool = True,
) -> np.ndarray:
    """Poisson arrivals (exponential gaps, mean ``1 / rate_qps``)."""
    n = _count(rate_qps, duration_s, count)
    rng = np.random.default_rng(seed)
    return _offsets(rng.exponential(1.0 / rate_qps, size=n + 1), n, rate_qps, exact_rate)


def gamma(
    rate_qps: float,
    *,
    burstiness: float = 1.0,
    duration_s: float | None = None,
    count: int | None = None,
    seed: int = 0,
    exact_rate: bool = True,
) -> np.ndarray:
    """Gamma renewal arrivals: mean gap ``1 / rate_qps``, gap CV^2 = ``burstiness``."""
    if not (burstiness > 0 and math.isfinite(burstiness)):
        raise ValueError(f"burstiness (CV^2 of the gaps) must be > 0, got {burstiness!r}")
    n = _count(rate_qps, duration_s, count)
    rng = np.random.default_rng(seed)
    shape = 1.0 / burstiness
    gaps = rng.gamma(shape, burstiness / rate_qps, size=n + 1)
    return _offsets(gaps, n, rate_qps, exact_rate)


def load_trace(path: str | Path) -> np.ndarray:
    """Read arrival timestamps from a CSV file; return ns offsets from the first one.

    Format: one timestamp per row in the first column, or in the column whose header starts
    with ``timestamp``. An optional header names the unit by suffix (``timestamp_s``,
    ``timestamp_ms``, ``timestamp_us``, ``timestamp_ns``; default seconds). Rows must be
    finite, non-negative and non-decreasing; blank lines and lines starting with ``#`` are
    skipped. Errors name the file and line.
    """
    p = Path(path)
    if not p.is_file():
        raise TraceError(f"{p}: trace file not found")
    scale = 1e9
    col = 0
    seen_row = False
    values: list[float] = []
    with p.open(newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            if not seen_row:
                seen_row = True
                if not _is_number(row[0].strip()):
                    col, scale = _parse_header(p, lineno, [c.strip().lower() for c in row])
                    continue
            if col >= len(row):
                raise TraceError(
                    f"{p}:{lineno}: expected a timestamp in column {col + 1}, row has {len(row)} column(s)"
                )
            cell = row[col].strip()
            try:
                v = float(cell)
            except ValueError:
                raise TraceError(f"{p}:{lineno}: timestamp {cell!r} is not a number") from None
            if not math.isfinite(v) or v < 0:
                raise TraceError(f"{p}:{lineno}: timestamp {cell!r} must be finite and >= 0")
            if values and v < values[-1]:
                raise TraceError(
                    f"{p}:{lineno}: timestamp {cell} is earlier than the previous row ({values[-1]:g}); "
                    "timestamps must be non-decreasing"
                )
            values.append(v)
    if not values:
        raise TraceError(f"{p}: no timestamps found")
    arr = np.asarray(values, dtype=np.float64)
    out: np.ndarray = np.round((arr - arr[0]) * scale).astype(np.int64)
    return out


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _parse_header(p: Path, lineno: int, header: list[str]) -> tuple[int, float]:
    idx = next((i for i, h in enumerate(header) if h.startswith("timestamp")), None)
    if idx is None:
        raise TraceError(f"{p}:{lineno}: header {header} has no column named timestamp[_s|_ms|_us|_ns]")
    name = header[idx]
    unit = name.rsplit("_", 1)[1] if "_" in name else "s"
    if unit not in _TRACE_UNITS:
        raise TraceError(f"{p}:{lineno}: column {name!r}: unknown unit {unit!r}; allowed suffixes: _s, _ms, _us, _ns")
    return idx, _TRACE_UNITS[unit]


def trace(
    path: str | Path,
    *,
    rate_qps: float | None = None,
    duration_s: float | None = None,
    count: int | None = None,
) -> np.ndarray:
    """Replay a trace. With ``rate_qps`` the time axis is scaled so the trace's mean rate
    (arrivals - 1) / span equals it (the shape of the trace is kept). ``count`` or
    ``duration_s`` truncate the replay; the trace is repeated end to end when it is shorter."""
    base = load_trace(path)
    if rate_qps is not None:
        if not (rate_qps > 0 and math.isfinite(rate_qps)):
            raise ValueError(f"rate_qps must be a positive finite number, got {rate_qps!r}")
        span = int(base[-1])
        if base.size < 2 or span <= 0:
            raise TraceError(f"{path}: a trace needs two distinct timestamps to be rescaled to {rate_qps} QPS")
        base = np.round(base * ((base.size - 1) / rate_qps * NS_PER_S / span)).astype(np.int64)
    if count is None and duration_s is None:
        return base
    if base.size < 2 or base[-1] <= 0:
        period = NS_PER_S  # a single-instant trace repeats once per second
    else:
        period = int(base[-1]) + int(base[-1]) // max(base.size - 1, 1)
    if count is not None:
        reps = -(-count // base.size)
    else:
        assert duration_s is not None
        reps = int(duration_s * NS_PER_S // period) + 1
    tiled = np.concatenate([base + r * period for r in range(max(reps, 1))])
    if count is not None:
        return tiled[:count]
    assert duration_s is not None
    return tiled[tiled < duration_s * NS_PER_S]


def schedule(
    kind: str,
    rate_qps: float,
    *,
    duration_s: float | None = None,
    count: int | None = None,
    seed: int = 0,
    burstiness: float = 1.0,
    trace_file: str | Path | None = None,
    exact_rate: bool = True,
) -> np.ndarray:
    """Dispatch on ``kind`` (one of :data:`ARRIVAL_KINDS`)."""
    if kind == "poisson":
        return poisson(rate_qps, duration_s=duration_s, count=count, seed=seed, exact_rate=exact_rate)
    if kind == "constant":
        return constant(rate_qps, duration_s=duration_s, count=count, seed=seed)
    if kind == "gamma":
        return gamma(
            rate_qps, burstiness=burstiness, duration_s=duration_s, count=count, seed=seed, exact_rate=exact_rate
        )
    if kind == "trace":
        if trace_file is None:
            raise ValueError("arrival 'trace' needs trace_file (a CSV of timestamps)")
        return trace(trace_file, rate_qps=rate_qps, duration_s=duration_s, count=count)
    raise ValueError(f"unknown arrival process {kind!r}; allowed: {', '.join(ARRIVAL_KINDS)}")
