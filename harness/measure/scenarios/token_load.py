"""Load drivers of the token-stream scenario: per-thread batch-1 (``naive``) and the
continuous-batching engine (``continuous``).

naive: each request is served by one thread calling ``backend.generate`` (batch 1); tokens are
stamped by that thread. continuous: the load generator only submits requests; one engine thread
(:class:`harness.measure.serving.engine.Engine`) runs every model step and stamps the tokens.

* closed loop (:func:`run_closed`, :func:`run_closed_engine`) -- ``concurrency`` clients; a
  client sends its next request when the previous one finished (scheduled = issued = that
  time), until the stop rule allows stopping or the prompts run out.
* open loop (:func:`run_open`, :func:`run_open_engine`) -- requests are issued at
  ``start + offsets``; those not started (admitted) ``deadline_ns`` after the start are dropped
  (running ones finish).

``dispatch`` is the time a request's service started: a worker thread took it (naive) or the
engine admitted it, i.e. scheduled its first prefill chunk (continuous).
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.core.clock import SPIN_NS, now_ns, wait_until_ns
from harness.measure.scenarios.online import LEAD_NS, SWITCH_INTERVAL_S
from harness.measure.serving.engine import Engine
from harness.measure.serving.scheduler import EngineLimits


def choose_engine(requested: str, backend: Any) -> tuple[str, str | None]:
    """The engine a cell runs (``requested``: ``continuous`` or ``naive``) and, when
    ``continuous`` was asked for but the backend cannot step, why."""
    if requested == "naive":
        return "naive", None
    probe = getattr(backend, "stepping_unsupported", None)
    why = "the backend has no stepping_unsupported()/batched-stepping contract" if probe is None else probe()
    return ("naive", why) if why else ("continuous", None)


class TokenRecorder:
    """Per-request times (ns): each list entry is written by one thread at a time."""

    def __init__(self, n: int) -> None:
        self.issued = [0] * n  # handed to the server (open loop) / sent (closed loop)
        self.dispatch = [0] * n  # service started (engine: admitted)
        self.times: list[list[int]] = [[] for _ in range(n)]
        self.scheduled = [0] * n
        self.start_ns = 0

    def truncate(self, used: int) -> None:
        """Keep the first ``used`` requests (the ones sent)."""
        self.issued, self.scheduled = self.issued[:used], self.scheduled[:used]
        self.dispatch, self.times = self.dispatch[:used], self.times[:used]


def _generate(
    backend: Any, rec: TokenRecorder, i: int, prompt: np.ndarray, n_new: int, clock: Callable[[], int]
) -> None:
    ts = rec.times[i]
    append = ts.append
    for _tok in backend.generate(prompt, int(n_new)):
        append(clock())


def run_closed(
    backend: Any,
    prompts: list[np.ndarray],
    olens: np.ndarray,
    concurrency: int,
    stop: Any,
    clock: Callable[[], int] = now_ns,
) -> TokenRecorder:
    """``concurrency`` clients send requests back to back until ``stop`` allows stopping
    (or the prompts run out). Request ids are taken in order from a shared counter."""
    n = len(prompts)
    rec = TokenRecorder(n)
    lock = threading.Lock()
    t0 = clock()
    rec.start_ns = t0
    st = {"started": 0, "completed": 0, "last_end": t0}
    errors: list[BaseException] = []

    def client() -> None:
        try:
            while True:
                with lock:
                    i = st["started"]
                    if i >= n or errors or stop.done(st["completed"], st["last_end"] - t0):
                        return
                    st["started"] = i + 1
                t = clock()
                rec.scheduled[i] = rec.issued[i] = rec.dispatch[i] = t
                _generate(backend, rec, i, prompts[i], int(olens[i]), clock)
                end = rec.times[i][-1] if rec.times[i] else clock()
                with lock:
                    st["completed"] += 1
                    st["last_end"] = max(st["last_end"], end)
        except BaseException as exc:
            errors.append(exc)

    if concurrency == 1:
        client()
    else:
        threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    rec.truncate(st["started"])
    return rec


def run_open(
    backend: Any,
    prompts: list[np.ndarray],
    olens: np.ndarray,
    offsets_ns: np.ndarray,
    max_concurrency: int,
    deadline_ns: int,
    clock: Callable[[], int] = now_ns,
) -> tuple[TokenRecorder, int]:
    """Issue requests at ``start + offsets_ns``; ``max_concurrency`` worker threads serve them
    FIFO. Requests not started ``deadline_ns`` after the start are dropped. Returns the
    recorder and the start time."""
    n = len(prompts)
    rec = TokenRecorder(n)
    q: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    abort = threading.Event()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            while True:
                i = q.get()
                if i is None or abort.is_set():
                    return
                rec.dispatch[i] = clock()
                _generate(backend, rec, i, prompts[i], int(olens[i]), clock)
        except BaseException as exc:
            errors.append(exc)
            abort.set()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max_concurrency)]
    for t in threads:
        t.start()
    start = clock() + LEAD_NS
    old_switch = sys.getswitchinterval()
    sys.setswitchinterval(min(old_switch, SWITCH_INTERVAL_S))
    try:
        for i, off in enumerate(offsets_ns.tolist()):
            target = start + off
            rec.scheduled[i] = target
            rec.issued[i] = wait_until_ns(target, SPIN_NS, clock)
            q.put(i)
            if abort.is_set():
                break
    finally:
        for _ in threads:
            q.put(None)
        limit = start + deadline_ns
        for t in threads:
            t.join(max((limit - clock()) * 1e-9, 0.0))
        if any(t.is_alive() for t in threads):
            abort.set()  # requests still queued are dropped; running ones finish
            for t in threads:
                t.join()
        sys.setswitchinterval(old_switch)
    if errors:
        raise errors[0]
    return rec, start


def _engine(backend: Any, rec: TokenRecorder, limits: EngineLimits, clock: Callable[[], int]) -> Engine:
    times, dispatch = rec.times, rec.dispatch

    def on_token(i: int, _tok: int, t: int) -> None:
        times[i].append(t)

    def on_admit(i: int, t: int) -> None:
        dispatch[i] = t

    return Engine(backend, limits, clock, on_token=on_token, on_admit=on_admit)


def run_closed_engine(
    backend: Any,
    prompts: list[np.ndarray],
    olens: np.ndarray,
    concurrency: int,
    stop: Any,
    limits: EngineLimits,
    clock: Callable[[], int] = now_ns,
) -> tuple[TokenRecorder, dict[str, int]]:
    """Closed loop through the engine; ``stop.done(completed, elapsed_ns)`` is asked before
    each new request (as in the per-thread mode). Returns the recorder and engine counters."""
    n = len(prompts)
    rec = TokenRecorder(n)
    lock = threading.Lock()
    st = {"started": 0, "completed": 0, "last_end": 0}
    engine = _engine(backend, rec, limits, clock)

    def send() -> None:
        with lock:
            i = st["started"]
            if i >= n or stop.done(st["completed"], st["last_end"] - rec.start_ns):
                return
            st["started"] = i + 1
            t = clock()
            rec.scheduled[i] = rec.issued[i] = t
        engine.submit(i, prompts[i], int(olens[i]))

    def on_finish(i: int, _t: int) -> None:
        with lock:
            st["completed"] += 1
            st["last_end"] = max(st["last_end"], rec.times[i][-1])
        send()

    engine.on_finish = on_finish
    engine.open()
    try:
        rec.start_ns = st["last_end"] = clock()
        for _ in range(concurrency):
            send()
        engine.start()  # the first step sees every client's first request
        engine.wait_idle()
    finally:
        engine.close()
    rec.truncate(st["started"])
    return rec, dict(engine.stats)


def run_open_engine(
    backend: Any,
    prompts: list[np.ndarray],
    olens: np.ndarray,
    offsets_ns: np.ndarray,
    limits: EngineLimits,
    deadline_ns: int,
    clock: Callable[[], int] = now_ns,
) -> tuple[TokenRecorder, int, dict[str, int]]:
    """Open loop through the engine. Returns the recorder, the start time and engine counters."""
    rec = TokenRecorder(len(prompts))
    engine = _engine(backend, rec, limits, clock)
    engine.start()
    start = clock() + LEAD_NS
    old_switch = sys.getswitchinterval()
    sys.setswitchinterval(min(old_switch, SWITCH_INTERVAL_S))
    try:
        for i, off in enumerate(offsets_ns.tolist()):
            target = start + off
            rec.scheduled[i] = target
            rec.issued[i] = wait_until_ns(target, SPIN_NS, clock)
            engine.submit(i, prompts[i], int(olens[i]))
            if engine.error is not None:
                break
        if not engine.wait_idle(max(start + deadline_ns - clock(), 0) * 1e-9):
            engine.stop(drop_waiting=True)  # requests still queued are dropped; running ones finish
            engine.wait_idle()
    finally:
        sys.setswitchinterval(old_switch)
        engine.close()
    return rec, start, dict(engine.stats)
