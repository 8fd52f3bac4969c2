"""Continuous-batching engine: one thread steps a backend for every active sequence.

Callers only :meth:`Engine.submit` requests (thread-safe; cheap). The engine thread, between
steps, takes the submitted requests into its :class:`~harness.measure.serving.scheduler.Scheduler`,
plans a step, runs the decodes (``backend.decode_step``) and then the prefill chunks
(``backend.prefill``), and stamps each token with the clock (``time.perf_counter_ns``) right
after the call that made it host-visible: all tokens of one call share that time.

Callbacks run in the engine thread and must be short: ``on_admit(req_id, t_ns)`` when a request
gets its first chunk, ``on_token(req_id, token, t_ns)`` per token, ``on_finish(req_id, t_ns)``
after its last token (it may :meth:`submit` the next request: a closed loop).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.core.clock import now_ns
from harness.measure.backends.base import PrefillChunk
from harness.measure.serving.scheduler import EngineLimits, Scheduler, kv_reservation

TokenCallback = Callable[[int, int, int], None]
TimeCallback = Callable[[int, int], None]


def _ignore(*_: int) -> None:
    return None


class Engine:
    """Iteration-level scheduling over a backend with batched stepping (see module docstring).

    Lifecycle: ``open()`` (optional, untimed: allocates the caches) -> ``submit(...)`` any
    number of times, before or after ``start()`` -> ``wait_idle()`` and/or ``stop(drop_waiting)``
    -> ``close()``. Requests submitted before ``start()`` are all seen by the first step. An exception in the engine thread ends it; the
    next ``wait_idle``/``close`` re-raises it.
    """

    def __init__(
        self,
        backend: Any,
        limits: EngineLimits,
        clock: Callable[[], int] = now_ns,
        on_token: TokenCallback = _ignore,
        on_admit: TimeCallback = _ignore,
        on_finish: TimeCallback = _ignore,
    ) -> None:
        self.backend, self.limits, self.clock = backend, limits, clock
        self.on_token, self.on_admit, self.on_finish = on_token, on_admit, on_finish
        self._inbox: queue.SimpleQueue[tuple[int, np.ndarray, int] | None] = queue.SimpleQueue()
        self._sched = Scheduler(limits)
        self._prompts: dict[int, np.ndarray] = {}
        self._last: dict[int, int] = {}  # req_id -> last token (fed to the next decode)
        self._cv = threading.Condition()
        self._submitted = 0
        self._settled = 0  # finished or dropped
        self._stop = False
        self._drop = False
        self._thread: threading.Thread | None = None
        self._opened = False
        self.error: BaseException | None = None
        #: counters: steps, decode tokens, prefill tokens, most sequences decoding in one step
        self.stats = {"steps": 0, "decode_tokens": 0, "prefill_tokens": 0, "max_decode_batch": 0, "dropped": 0}

    # ----------------------------------------------------------------- caller side

    def open(self) -> None:
        """Allocate the backend's sequence caches (once)."""
        if not self._opened:
            self.backend.begin_stepping(self.limits.max_num_seqs)
            self._opened = True

    def start(self) -> None:
        """Start the engine thread (opening first if needed)."""
        self.open()
        self._thread = threading.Thread(target=self._loop, name="token-engine", daemon=True)
        self._thread.start()

    def submit(self, req_id: int, prompt_ids: np.ndarray, max_new_tokens: int) -> None:
        """Queue a request (any thread). Bad sizes raise here, in the caller's thread."""
        prompt_ids = np.asarray(prompt_ids).reshape(-1)
        prompt_len = int(prompt_ids.size)
        cap = self.limits.kv_cache_tokens
        if prompt_len < 1 or max_new_tokens < 1:
            raise ValueError(f"engine: request {req_id} needs a non-empty prompt and max_new_tokens >= 1")
        if cap is not None and kv_reservation(prompt_len, max_new_tokens) > cap:
            raise ValueError(
                f"engine: request {req_id} needs {kv_reservation(prompt_len, max_new_tokens)} cached "
                f"tokens, more than kv_cache_tokens={cap}"
            )
        with self._cv:
            self._submitted += 1
        self._inbox.put((req_id, prompt_ids, int(max_new_tokens)))

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Block until every submitted request finished or was dropped (True), the timeout
        passed (False) or the engine failed (re-raises its error)."""
        with self._cv:
            self._cv.wait_for(lambda: self._settled >= self._submitted or self.error is not None, timeout_s)
            if self.error is not None:
                raise self.error
            return self._settled >= self._submitted

    def stop(self, drop_waiting: bool = False) -> None:
        """Ask the thread to end once idle; ``drop_waiting`` drops requests not yet admitted
        (running ones finish)."""
        with self._cv:
            self._stop = True
            self._drop = self._drop or drop_waiting
        self._inbox.put(None)

    def close(self) -> None:
        """Stop (dropping waiting requests), join the thread, free the caches; re-raises an
        engine error. Safe to call twice."""
        if self._thread is not None:
            self.stop(drop_waiting=True)
            self._thread.join()
            self._thread = None
        if self._opened:
            self._opened = False
            self.backend.end_stepping()
        if self.error is not None:
            raise self.error

    # ----------------------------------------------------------------- engine thread

    def _take(self, block: bool) -> None:
        sched = self._sched
        while True:
            try:
                item = self._inbox.get(block=block)
            except queue.Empty:
                return
            block = False
            if item is not None:
                rid, prompt, n_new = item
                self._prompts[rid] = prompt
                sched.add(rid, int(prompt.size), n_new)

    def _settle(self, n: int) -> None:
        with self._cv:
            self._settled += n
            if self._settled >= self._submitted:
                # wake waiters only when idle: a woken thread would compete with this one for
                # the GIL in the middle of a step (up to the 5 ms switch interval)
                self._cv.notify_all()

    def _loop(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            with self._cv:
                self.error = exc
                self._cv.notify_all()

    def _run(self) -> None:
        sched, be, clock, stats = self._sched, self.backend, self.clock, self.stats
        prompts, last = self._prompts, self._last
        while True:
            with self._cv:
                stopping, drop = self._stop, self._drop
            self._take(block=sched.idle and not stopping)
            if drop and sched.waiting:
                dropped = sched.drop_waiting()
                for rid in dropped:
                    prompts.pop(rid, None)
                stats["dropped"] += len(dropped)
                self._settle(len(dropped))
            if sched.idle:
                if stopping:
                    return
                continue
            plan = sched.plan()
            if plan.empty:  # cannot happen with valid limits; guards against a busy loop
                raise RuntimeError("engine: no work could be scheduled")
            t_plan = clock()
            for rid in plan.admitted:
                self.on_admit(rid, t_plan)
            if plan.decodes:
                toks = be.decode_step([(rid, last[rid]) for rid in plan.decodes])
                t = clock()
                for rid, tok in zip(plan.decodes, toks):
                    last[rid] = tok
                    self.on_token(rid, tok, t)
                stats["decode_tokens"] += len(plan.decodes)
                stats["max_decode_batch"] = max(stats["max_decode_batch"], len(plan.decodes))
            if plan.chunks:
                chunks = [
                    PrefillChunk(rid, prompts[rid][start : start + n], start, start + n == prompts[rid].size)
                    for rid, start, n in plan.chunks
                ]
                firsts = be.prefill(chunks)
                t = clock()
                for c, tok in zip(chunks, firsts):
                    if tok is not None:
                        last[c.seq_id] = tok
                        self.on_token(c.seq_id, tok, t)
                stats["prefill_tokens"] += sum(n for _, _, n in plan.chunks)
            stats["steps"] += 1
            finished = sched.complete(plan)
            if finished:
                t = clock()
                for rid in finished:
                    be.release(rid)
                    prompts.pop(rid, None)
                    last.pop(rid, None)
                    self.on_finish(rid, t)
                self._settle(len(finished))
