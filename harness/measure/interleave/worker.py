"""The worker process of an interleaved measurement and the messages it exchanges.

A worker loads one variant (:func:`harness.measure.worker.load_backend`), warms it up, then
measures one block per :class:`MeasureBlock` until :class:`StopWorker`. Every message on the
pipe is one of the frozen dataclasses below; times are integer ns from the monotonic clock.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.core.clock import now_ns
from harness.core.records import CellSpec
from harness.core.stop import StopRule
from harness.measure.inject import SlowdownBackend
from harness.measure.interleave.options import POOL, InterleaveOptions, closed_loop_plan
from harness.measure.procs import die_with_parent
from harness.measure.scenarios.base import closed_loop
from harness.measure.worker import BackendUnavailable, close_backend, load_backend, make_workload, workload_info

# ------------------------------------------------------------------ coordinator -> worker


@dataclass(frozen=True)
class MeasureBlock:
    """Measure one block of round ``round``."""

    round: int


@dataclass(frozen=True)
class StopWorker:
    """Describe the backend, reply :class:`Done` and exit."""


# ------------------------------------------------------------------ worker -> coordinator


@dataclass(frozen=True)
class Ready:
    """Loaded and warmed up. ``load_time_ns``: ``backend.load``; ``warmup``: ``queries``,
    ``duration_s``, ``first_query_ms``."""

    load_time_ns: int
    workload_info: dict[str, Any] = field(default_factory=dict)
    warmup: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BlockTimes:
    """One block's measured queries: issued and completed times (int64 ns, equal lengths)."""

    issued_ns: np.ndarray
    completed_ns: np.ndarray


@dataclass(frozen=True)
class Done:
    """The worker stopped cleanly; ``backend_info`` is ``backend.describe()`` (or why not)."""

    backend_info: dict[str, Any]


@dataclass(frozen=True)
class Skipped:
    """The backend reports itself unavailable here."""

    reason: str


@dataclass(frozen=True)
class Failed:
    """The worker raised; ``message`` names the exception, ``traceback`` is its last frames."""

    message: str
    traceback: str


Reply = Ready | BlockTimes | Done | Skipped | Failed


def _warmup_stop(stop: StopRule) -> StopRule:
    """The worker's warm-up: the cell's own warm-up duration and queries (at least one query),
    with a generous cap."""
    return StopRule.model_validate(
        {
            "min_duration_s": stop.warmup_s,
            "min_queries": max(stop.warmup_queries, 1),
            "max_duration_s": max(stop.warmup_s * 4, 1.0) + 30.0,
            "warmup_s": 0,
            "warmup_queries": 0,
        }
    )


def variant_worker(conn: Any, spec_json: str, pythonpath: Sequence[str], fraction: float, options_json: str) -> None:
    """Worker process: load and warm up one variant, reply :class:`Ready` (or :class:`Skipped`,
    :class:`Failed`), then a :class:`BlockTimes` per :class:`MeasureBlock` until
    :class:`StopWorker`, answered by :class:`Done`. ``conn`` is the worker's end of a
    ``multiprocessing`` pipe; ``fraction`` an injected slowdown (0: none)."""
    die_with_parent(None)  # killed by the kernel if the coordinator dies, whatever kills it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    for p in reversed(list(pythonpath)):
        sys.path.insert(0, p)
    backend = None
    spec: CellSpec | None = None
    try:
        opts = InterleaveOptions.model_validate_json(options_json)
        if opts.cpus:
            os.sched_setaffinity(0, set(opts.cpus))
        spec = CellSpec.model_validate_json(spec_json)
        plan = closed_loop_plan(spec)
        workload = make_workload(spec)
        winfo = workload_info(workload)
        try:
            loaded = load_backend(spec, workload)
        except BackendUnavailable as exc:
            conn.send(Skipped(str(exc)))
            return
        backend = loaded.backend
        if fraction:
            backend = SlowdownBackend(backend, fraction)
        pool = [
            backend.prepare(workload.make_inputs(plan.batch_size, seed=spec.seed * 100_003 + i)) for i in range(POOL)
        ]
        infer = backend.infer
        cyc = itertools.cycle(pool)
        ws, we = closed_loop(infer, cyc, _warmup_stop(plan.stop), now_ns)
        warmup = {"queries": len(ws), "duration_s": (we[-1] - ws[0]) / 1e9, "first_query_ms": (we[0] - ws[0]) / 1e6}
        conn.send(Ready(loaded.load_time_ns, winfo, warmup))
        block = opts.block_stop()
        while True:
            try:
                msg = conn.recv()
            except EOFError:  # the coordinator is gone: nothing left to report to
                return
            if isinstance(msg, StopWorker):
                break
            for _ in range(opts.block_warmup_queries):
                infer(next(cyc))
            s, e = closed_loop(infer, cyc, block, now_ns)
            conn.send(BlockTimes(np.asarray(s, dtype=np.int64), np.asarray(e, dtype=np.int64)))
        try:
            info = backend.describe()
        except Exception as exc:  # the blocks stand; say what describe() did
            info = {"describe_error": f"{type(exc).__name__}: {exc}"}
        conn.send(Done(info))
    except Exception as exc:
        try:
            conn.send(Failed(f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=8)))
        except OSError:  # the coordinator is gone
            pass
    finally:
        if backend is not None:
            close_backend(backend, spec.backend if spec is not None else "backend")
        conn.close()
