"""The coordinator of an interleaved measurement: starts every variant's workers, hands out
the blocks round by round, and stops (or kills) every worker whatever happens.

See :mod:`harness.measure.interleave` for the design and the contract.
"""

from __future__ import annotations

import multiprocessing as mp
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import psutil

from harness.core.records import CellRecord, CellStatus, utc_now
from harness.measure.interleave.options import InterleaveError, InterleaveOptions, Variant, closed_loop_plan
from harness.measure.interleave.summary import Block, Session, SideResult, summarise
from harness.measure.interleave.worker import (
    BlockTimes,
    Done,
    Failed,
    MeasureBlock,
    Ready,
    Reply,
    Skipped,
    StopWorker,
    variant_worker,
)
from harness.measure.procs import exit_reason, kill_all

R = TypeVar("R", Ready, BlockTimes, Done)


class _WorkerFailed(Exception):
    """A worker that failed, crashed, timed out or was skipped; ``detail`` is a traceback."""

    def __init__(self, status: CellStatus, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.status, self.reason, self.detail = status, reason, detail


@dataclass
class _Worker:
    """One worker process of a side and the coordinator's end of its pipe."""

    proc: Any  # multiprocessing SpawnProcess
    conn: Any  # multiprocessing Connection
    ready: Ready | None = None
    backend_info: dict[str, Any] = field(default_factory=dict)
    stopped: bool = False


@dataclass
class _Side:
    variant: Variant
    workers: list[_Worker] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    def result(self) -> SideResult:
        ready = [w.ready for w in self.workers if w.ready is not None]
        return SideResult(self.variant, ready, self.workers[0].backend_info, self.blocks)


def _check(msg: object, expect: type[R]) -> R:
    """A worker's reply of type ``expect``, or the failure it reports."""
    if isinstance(msg, Failed):
        raise _WorkerFailed("failed", msg.message, msg.traceback)
    if isinstance(msg, Skipped):
        raise _WorkerFailed("skipped", msg.reason)
    if not isinstance(msg, expect):
        raise _WorkerFailed("failed", f"unexpected reply from a worker: {msg!r:.200}")
    return msg


def _recv(w: _Worker, deadline: float, what: str, expect: type[R]) -> R:
    """Next message from worker ``w``, sleeping until it arrives, the worker dies or
    ``deadline`` (``time.monotonic()`` seconds) passes."""
    while True:
        remaining = max(0.0, deadline - time.monotonic())
        ready = wait([w.conn, w.proc.sentinel], timeout=remaining)
        if w.conn in ready or w.conn.poll():
            try:
                msg: Reply = w.conn.recv()
            except EOFError:
                w.proc.join(5)
                raise _WorkerFailed("crashed", exit_reason(w.proc.exitcode)) from None
            return _check(msg, expect)
        if w.proc.sentinel in ready and not w.conn.poll(0.2):
            w.proc.join(5)
            raise _WorkerFailed("crashed", exit_reason(w.proc.exitcode))
        if remaining <= 0:
            raise _WorkerFailed("timeout", f"{what} exceeded its time limit and was stopped")


def _send(w: _Worker, msg: MeasureBlock | StopWorker) -> None:
    try:
        w.conn.send(msg)
    except OSError:  # the worker died while idle (e.g. killed for memory)
        w.proc.join(5)
        raise _WorkerFailed("crashed", exit_reason(w.proc.exitcode)) from None


def _kill(proc: Any) -> None:
    """Kill a worker and whatever it started; the worker is reaped through ``multiprocessing``
    so its ``exitcode`` is set."""
    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        kids = []
    proc.kill()
    proc.join(5)
    kill_all(kids)


def _spawn(side: _Side, opts: InterleaveOptions, every: list[_Worker]) -> None:
    """Start ``opts.workers`` processes for ``side`` (each is also appended to ``every`` at once,
    so a failure part-way still stops the ones already started)."""
    ctx = mp.get_context("spawn")
    v = side.variant
    for _ in range(opts.workers):
        parent, child = ctx.Pipe()
        args = (child, v.spec.model_dump_json(), tuple(v.pythonpath), float(v.slowdown), opts.model_dump_json())
        proc = ctx.Process(target=variant_worker, daemon=False, args=args)
        try:
            proc.start()
        finally:
            child.close()
            if proc.pid is None:  # did not start: nothing will read the pipe
                parent.close()
        w = _Worker(proc, parent)
        side.workers.append(w)
        every.append(w)


def _start_all(sides: Sequence[_Side], labels: Sequence[str], limit_s: float) -> dict[int, _WorkerFailed]:
    """Wait for every worker's :class:`Ready` at once; {side index: failure}. On a crash or an
    error the wait ends at once; at the deadline every side with a worker still loading is
    blamed (not the side that happens to be checked first). A side whose backend reports
    itself unavailable is ``skipped`` only when every side is: where the others load, the
    one that cannot has broken (e.g. a head whose import now fails inside ``available()``)."""
    deadline = time.monotonic() + limit_s
    pending = [(i, w) for i, s in enumerate(sides) for w in s.workers]
    failures: dict[int, _WorkerFailed] = {}
    skips: dict[int, _WorkerFailed] = {}
    while pending and not failures:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            for i, _ in pending:
                why = f"{labels[i]}: a worker's loading and warm-up exceeded start_timeout_s={limit_s:g} s and was stopped"
                failures.setdefault(i, _WorkerFailed("timeout", why))
            break
        ready = set(wait([o for _, w in pending for o in (w.conn, w.proc.sentinel)], timeout=remaining))
        still = []
        for i, w in pending:
            if w.conn in ready or w.proc.sentinel in ready:
                try:
                    w.ready = _recv(w, deadline, f"{labels[i]}: loading and warm-up", Ready)
                except _WorkerFailed as exc:
                    (skips if exc.status == "skipped" else failures).setdefault(i, exc)
                continue
            still.append((i, w))
        pending = [(i, w) for i, w in still if i not in skips]  # one answer per skipped side is enough
    if failures or not skips or len(skips) == len(sides):
        return failures or skips
    return {
        i: _WorkerFailed("failed", f"{labels[i]}: {exc.reason}, while the other side's backend loads")
        for i, exc in skips.items()
    }


def _schedule(opts: InterleaveOptions, rng: np.random.Generator) -> np.ndarray:
    """Which worker measures in each round: a fresh permutation of the workers every
    ``opts.workers`` rounds, so each is used equally often (to within one)."""
    m = opts.workers
    return np.concatenate([rng.permutation(m) for _ in range(-(-opts.rounds // m))])[: opts.rounds]


def _run_rounds(
    sides: Sequence[_Side],
    labels: Sequence[str],
    opts: InterleaveOptions,
    progress: Callable[[int, int], None] | None,
) -> dict[int, _WorkerFailed]:
    """Every round, each side measures one block in a seeded random order; {side: failure}."""
    rng = np.random.default_rng(opts.seed)
    schedule = [_schedule(opts, rng) for _ in sides]
    for r in range(opts.rounds):
        for pos, i in enumerate(int(x) for x in rng.permutation(len(sides))):
            wi = int(schedule[i][r])
            w = sides[i].workers[wi]
            what = f"{labels[i]}: block {r} (block_timeout_s={opts.block_timeout_s:g} s)"
            try:
                _send(w, MeasureBlock(r))
                t = _recv(w, time.monotonic() + opts.block_timeout_s, what, BlockTimes)
            except _WorkerFailed as exc:
                return {i: exc}
            sides[i].blocks.append(Block(r, pos, wi, t.issued_ns, t.completed_ns))
        if progress is not None:
            progress(r + 1, opts.rounds)
    return {}


def _stop_all(sides: Sequence[_Side], labels: Sequence[str]) -> dict[int, _WorkerFailed]:
    """Ask every worker to stop and collect its ``backend.describe()``; {side: failure}."""
    for i, s in enumerate(sides):
        for w in s.workers:
            try:
                _send(w, StopWorker())
                w.backend_info = _recv(w, time.monotonic() + 60.0, f"{labels[i]}: closing", Done).backend_info
                w.stopped = True
            except _WorkerFailed as exc:
                return {i: exc}
    return {}


def _shutdown(every: Sequence[_Worker]) -> None:
    """Idle workers wait in ``recv()``: tell them to stop, then give all one shared 5 s deadline
    and kill what is left."""
    for w in every:
        if not w.stopped and w.proc.is_alive():
            try:
                w.conn.send(StopWorker())
            except OSError:
                pass
    end = time.monotonic() + 5.0
    for w in every:
        w.proc.join(max(0.0, end - time.monotonic()))
        try:
            if w.proc.is_alive():
                _kill(w.proc)
        except Exception as exc:  # keep closing the others; say what could not be stopped
            print(f"warning: could not stop worker {w.proc.pid}: {type(exc).__name__}: {exc}", file=sys.stderr)
        w.conn.close()


def _failure_records(sides: Sequence[_Side], failures: dict[int, _WorkerFailed], s: Session) -> list[CellRecord]:
    """A failed side's record carries its own reason; the others are ``skipped``, naming the
    partners that broke (``extra.partner_failed``, unless every failure is a skip)."""
    broke = {s.labels[j]: f for j, f in sorted(failures.items())}

    def record(side: _Side, status: CellStatus, error: str, extra: dict[str, Any]) -> CellRecord:
        return CellRecord(
            cell_id=s.cell_id,
            spec=side.variant.spec,
            started_utc=s.started_utc,
            wall_s=s.wall_s,
            status=status,
            error=error,
            extra=extra,
        )

    out: list[CellRecord] = []
    for i, side in enumerate(sides):
        if i in failures:
            exc = failures[i]
            out.append(record(side, exc.status, exc.reason, {"traceback": exc.detail} if exc.detail else {}))
            continue
        failed = [k for k, f in broke.items() if f.status != "skipped"]
        why = "; ".join(f"{k!r} {f.status}: {f.reason}" for k, f in broke.items())
        extra = {"partner_failed": ", ".join(failed)} if failed else {}
        out.append(record(side, "skipped", f"not measured: interleaved partner {why}", extra))
    return out


def measure_interleaved(
    variants: Sequence[Variant],
    run_dirs: Sequence[Path],
    options: InterleaveOptions | None = None,
    session: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[CellRecord]:
    """Measure ``variants`` (>= 2, closed-loop, same batch size) interleaved; return one
    record per variant, its raw rows written under the matching ``run_dirs`` entry.

    Each variant runs in ``options.workers`` processes; in every round it measures one block
    in one of them, each used equally often (to within one) in a seeded random order, so one
    process's luck (memory layout, placement: a few per cent on a shared VM) is spread over
    several and shrinks in the paired comparison (it does not vanish: see the package doc).
    Every record carries the id of the cell of the first variant, so the runs match cell by
    cell in the gate even when the variants' specs differ. Never raises for a variant's own
    failure (KeyboardInterrupt is re-raised after the workers are stopped)."""
    try:  # again: model_copy(update=...) does not validate
        opts = InterleaveOptions(**(options or InterleaveOptions()).model_dump())
    except ValueError as exc:
        raise InterleaveError(str(exc)) from None
    if len(variants) < 2 or len(variants) != len(run_dirs):
        raise InterleaveError("need >= 2 variants and one run directory per variant")
    if len({Path(d).resolve() for d in run_dirs}) != len(run_dirs):
        raise InterleaveError(f"run directories must differ: {[str(d) for d in run_dirs]}")
    labels = [v.label for v in variants]
    if len(set(labels)) != len(variants):
        raise InterleaveError(f"variant labels must differ: {labels}")
    plans = [closed_loop_plan(v.spec) for v in variants]
    if len({p.batch_size for p in plans}) != 1:
        raise InterleaveError(f"variants must share the batch size; got {[p.batch_size for p in plans]}")
    started = utc_now()
    t_wall = time.monotonic()
    sides = [_Side(v) for v in variants]
    every: list[_Worker] = []
    try:
        for side in sides:
            _spawn(side, opts, every)
        failures = _start_all(sides, labels, opts.start_timeout_s)
        failures = failures or _run_rounds(sides, labels, opts, progress)
        failures = failures or _stop_all(sides, labels)
    except KeyboardInterrupt:
        for w in every:
            _kill(w.proc)
        raise
    finally:
        _shutdown(every)
    s = Session(
        session or secrets.token_hex(6),
        labels,
        opts,
        variants[0].spec.cell_id,
        started,
        time.monotonic() - t_wall,
    )
    if failures:
        return _failure_records(sides, failures, s)
    return [summarise(side.result(), Path(d), plan, s) for side, d, plan in zip(sides, run_dirs, plans)]
