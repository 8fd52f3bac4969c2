"""Small helpers shared by the meters: a sampling thread and trapezoid integration."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

Clock = Callable[[], int]


class Sampler:
    """Call ``fn`` every ``period_s`` on a daemon thread between :meth:`start` and :meth:`stop`.

    ``fn`` is called once at start and once at stop as well, so even a short window has two
    samples. An exception raised by ``fn`` is kept and re-raised by :meth:`stop` (a broken meter
    fails the run; it is never silently dropped).
    """

    def __init__(self, fn: Callable[[], None], period_s: float, name: str) -> None:
        if period_s <= 0:
            raise ValueError(f"period_s must be > 0, got {period_s}")
        self._fn = fn
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._name = name

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self._fn()
            except BaseException as exc:  # re-raised in stop()
                self._error = exc
                return

    def start(self) -> None:
        self._stop.clear()
        self._error = None
        self._fn()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise RuntimeError(f"{self._name} sampling failed: {self._error}") from self._error
        self._fn()


def trapezoid_j(samples: Sequence[tuple[float, float]]) -> float:
    """Integral of (t_s, watts) samples by the trapezoid rule, in joules. Needs sorted times."""
    total = 0.0
    for (t0, w0), (t1, w1) in zip(samples, samples[1:]):
        total += (t1 - t0) * (w0 + w1) / 2.0
    return total


def integrate_window_j(samples: Sequence[tuple[float, float]], start_s: float, end_s: float) -> float:
    """Energy (J) of piecewise-linear (t_s, watts) samples clipped to ``[start_s, end_s]``.

    The samples must cover the window (first time <= start, last time >= end).
    """
    pts = sorted(samples)
    if not pts or pts[0][0] > start_s or pts[-1][0] < end_s:
        raise ValueError("samples do not cover the window")

    def at(t: float) -> float:
        for (t0, w0), (t1, w1) in zip(pts, pts[1:]):
            if t0 <= t <= t1:
                return w0 if t1 == t0 else w0 + (w1 - w0) * (t - t0) / (t1 - t0)
        return pts[-1][1]

    inner = [(t, w) for t, w in pts if start_s < t < end_s]
    return trapezoid_j([(start_s, at(start_s)), *inner, (end_s, at(end_s))])


def now_ns() -> int:
    return time.perf_counter_ns()
