"""Interleaved A/B measurement: variants of one closed-loop cell take turns in short blocks.

On a shared machine the speed of the host drifts by tens of per cent over seconds (other
tenants, frequency, steal time). Two runs measured one after the other differ by that drift,
so a gate comparing them must either tolerate it or cry wolf. Here each variant (e.g. base
and head of a change) is loaded in its *own* worker process, warmed up, and then the
variants take turns: in every round each variant measures one block of ``block_ms`` in a
seeded random order, while the others wait idle on a pipe. A drift then hits the blocks of
one round alike, and the gate compares the variants block by block
(:mod:`harness.analysis.gate.paired`), which cancels it.

Processes differ too: two processes of the *same* code run a few per cent apart for their
whole life (memory layout, placement). So each variant runs in ``workers`` processes (3 by
default) and every round picks one of them, each equally often (to within one block when
the rounds are not a multiple of the workers) in a seeded random order; the per-process
luck then varies from round to round and shrinks in the paired comparison. It does not
vanish (the rounds share only ``workers**2`` process pairs), so the gate's interval is
conditional on these processes and the threshold must absorb the rest: calibrate it with
A/A sessions.

Contract:

* closed-loop scenarios only (``offline``, ``single-stream``): the next query is issued when
  the previous one completes, so a block can start and stop anywhere. Other scenarios give
  :class:`InterleaveError`.
* a block first issues ``block_warmup_queries`` unrecorded queries (caches are cold after
  another process ran), then measures until ``block_ms`` and ``block_min_queries`` are both
  reached.
* raw rows carry ``block`` (the round), ``block_position`` (the turn within the round) and
  ``worker`` (which of the variant's processes measured it);
  latency = completed - issued, in integer ns from the monotonic clock.
* energy is not metered: the blocks of several processes share one wall-clock window, so no
  window belongs to one variant. The record says so in ``extra``.
* a variant that fails to load, crashes or hangs fails the cell for every variant, with the
  reason on the one that failed.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import secrets
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.core.records import CLOSED_LOOP_SCENARIOS, CellRecord, CellSpec, RunRecord, utc_now

POOL = 8  # distinct staged batches, reused cyclically (as the closed-loop scenarios do)
ENERGY_NOTE = (
    "energy not metered: in an interleaved A/B measurement the blocks of several processes share one wall-clock window"
)


class InterleaveError(ValueError):
    """A cell or option that cannot be measured interleaved; the message says why."""


class InterleaveOptions(BaseModel):
    """How the variants take turns."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rounds: int = Field(100, ge=10, le=10_000, description="rounds; each variant measures one block per round")
    block_ms: float = Field(25.0, gt=0, le=60_000, description="minimum measured duration of one block")
    workers: int = Field(3, ge=1, le=64, description="worker processes per variant (each loads the model)")
    block_min_queries: int = Field(5, ge=1, description="minimum measured queries of one block")
    block_warmup_queries: int = Field(2, ge=0, description="unrecorded queries at the start of each block")
    seed: int = Field(0, description="seed of the order of turns within each round")
    start_timeout_s: float = Field(300.0, gt=0, description="limit for a worker to load and warm up")
    block_timeout_s: float = Field(
        120.0, gt=0, description="limit for one block; a block itself stops measuring at half of it (slow queries)"
    )
    cpus: tuple[int, ...] | None = Field(
        None,
        description="pin every variant's worker to these CPUs (one set for all, so no variant gets "
        "a core of its own); default: the CPUs this process may use",
    )

    @model_validator(mode="after")
    def _block_fits_its_timeout(self) -> InterleaveOptions:
        if self.block_ms / 1e3 > self.block_timeout_s / 4:
            raise ValueError(
                f"block_ms ({self.block_ms:g} ms) must be at most a quarter of block_timeout_s "
                f"({self.block_timeout_s:g} s): a block stops measuring at half its timeout"
            )
        return self


@dataclass(frozen=True)
class Variant:
    """One side of the comparison: a cell spec, extra import paths (e.g. a checkout of the base
    commit holding the user's model code) and an optional injected slowdown (a fraction)."""

    label: str
    spec: CellSpec
    pythonpath: tuple[str, ...] = ()
    slowdown: float = 0.0


# ------------------------------------------------------------------------------- worker


def _scenario_plan(spec: CellSpec) -> tuple[int, Any, float]:
    """(batch size, stop rule, headline percentile) of a closed-loop cell."""
    from harness.core import plugins

    if spec.scenario not in CLOSED_LOOP_SCENARIOS:
        raise InterleaveError(
            f"{spec.cell_id}: scenario {spec.scenario!r} cannot be interleaved; allowed: "
            f"{', '.join(sorted(CLOSED_LOOP_SCENARIOS))} (closed-loop scenarios)"
        )
    scls = plugins.load("scenario", spec.scenario)
    opts = scls.parse_options(spec.scenario_options)
    return int(opts.batch_size), opts.stop, float(getattr(opts, "target_percentile", 0.99))


def _variant_worker(conn: Any, spec_json: str, pythonpath: Sequence[str], fraction: float, options_json: str) -> None:
    """Worker process: load and warm up one variant, then measure a block per ``("block", r)``
    message until ``("stop",)``. Replies ``("ready", info)``, ``("block", starts, ends)``,
    ``("done", backend_info)``, ``("skipped", why)`` or ``("error", message, traceback)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    for p in reversed(list(pythonpath)):
        sys.path.insert(0, p)
    backend = None
    try:
        opts = InterleaveOptions.model_validate_json(options_json)
        if opts.cpus:
            import os

            os.sched_setaffinity(0, set(opts.cpus))
        from harness.core import plugins
        from harness.core.clock import now_ns
        from harness.measure.scenarios.base import StopRule, closed_loop
        from harness.measure.worker import make_workload

        spec = CellSpec.model_validate_json(spec_json)
        batch_size, stop, _ = _scenario_plan(spec)
        workload = make_workload(spec)
        try:
            winfo = workload.info().to_dict()
        except Exception as exc:  # info needs torch for zoo models; record, don't hide
            winfo = {"error": f"{type(exc).__name__}: {exc}"}
        cls = plugins.load("backend", spec.backend)
        ok, why = cls.available()
        if not ok:
            conn.send(("skipped", f"backend unavailable: {why}"))
            return
        backend = cls(**spec.backend_options)
        t0 = now_ns()
        backend.load(workload, spec.device)
        load_ns = now_ns() - t0
        if fraction:
            from harness.measure.inject import SlowdownBackend

            backend = SlowdownBackend(backend, fraction)
        pool = [backend.prepare(workload.make_inputs(batch_size, seed=spec.seed * 100_003 + i)) for i in range(POOL)]
        infer = backend.infer
        cyc = itertools.cycle(pool)
        warm = StopRule(
            min_duration_s=stop.warmup_s,
            min_queries=max(stop.warmup_queries, 1),
            max_duration_s=max(stop.warmup_s * 4, 1.0) + 30.0,
            warmup_s=0,
            warmup_queries=0,
        )
        ws, we = closed_loop(infer, cyc, warm, now_ns)
        conn.send(
            (
                "ready",
                {
                    "load_time_ns": load_ns,
                    "workload_info": winfo,
                    "warmup": {
                        "queries": len(ws),
                        "duration_s": (we[-1] - ws[0]) / 1e9,
                        "first_query_ms": (we[0] - ws[0]) / 1e6,
                    },
                },
            )
        )
        block = StopRule(
            min_duration_s=opts.block_ms / 1e3,
            min_queries=opts.block_min_queries,
            max_duration_s=opts.block_timeout_s / 2,
            warmup_s=0,
            warmup_queries=0,
        )
        while True:
            try:
                msg = conn.recv()
            except EOFError:  # the coordinator is gone: nothing left to report to
                return
            if msg[0] == "stop":
                break
            for _ in range(opts.block_warmup_queries):
                infer(next(cyc))
            s, e = closed_loop(infer, cyc, block, now_ns)
            conn.send(("block", np.asarray(s, dtype=np.int64), np.asarray(e, dtype=np.int64)))
        try:
            info = backend.describe()
        except Exception as exc:  # the blocks stand; say what describe() did
            info = {"describe_error": f"{type(exc).__name__}: {exc}"}
        conn.send(("done", info))
    except Exception as exc:
        try:
            conn.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=8)))
        except OSError:  # the coordinator is gone
            pass
    finally:
        if backend is not None:
            try:
                backend.close()
            except Exception as exc:  # the numbers stand; say so on stderr
                print(f"warning: close() failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        conn.close()


# ------------------------------------------------------------------------------- coordinator


class _WorkerFailed(Exception):
    def __init__(self, status: str, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.status, self.reason, self.detail = status, reason, detail


def _check(msg: Any) -> tuple[Any, ...]:
    """A worker's reply, or the failure it reports."""
    if not isinstance(msg, tuple) or not msg:
        raise _WorkerFailed("failed", f"unexpected reply from a worker: {msg!r:.200}")
    if msg[0] == "error":
        raise _WorkerFailed("failed", msg[1], msg[2])
    if msg[0] == "skipped":
        raise _WorkerFailed("skipped", msg[1])
    return tuple(msg)


def _recv(conn: Any, proc: Any, deadline: float, what: str) -> tuple[Any, ...]:
    """Next message from a worker, sleeping until it arrives, the worker dies or ``deadline``
    (``time.monotonic()`` seconds) passes."""
    from multiprocessing.connection import wait

    from harness.measure.procs import exit_reason as _exit_reason

    while True:
        remaining = max(0.0, deadline - time.monotonic())
        ready = wait([conn, proc.sentinel], timeout=remaining)
        if conn in ready or conn.poll():
            try:
                msg = conn.recv()
            except EOFError:
                proc.join(5)
                raise _WorkerFailed("crashed", _exit_reason(proc.exitcode)) from None
            return _check(msg)
        if proc.sentinel in ready and not conn.poll(0.2):
            proc.join(5)
            raise _WorkerFailed("crashed", _exit_reason(proc.exitcode))
        if remaining <= 0:
            raise _WorkerFailed("timeout", f"{what} exceeded its time limit and was stopped")


def _kill(proc: Any) -> None:
    """Kill a worker and whatever it started; the worker is reaped through ``multiprocessing``
    so its ``exitcode`` is set."""
    import psutil

    from harness.measure.procs import kill_all as _kill_all

    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        kids = []
    proc.kill()
    proc.join(5)
    _kill_all(kids)


def _start_all(sides: Sequence[_Side], labels: Sequence[str], limit_s: float) -> dict[int, _WorkerFailed]:
    """Wait for every worker's ``ready`` at once; {side index: failure}. On a crash or an
    error the wait ends at once; at the deadline every side with a worker still loading is
    blamed (not the side that happens to be checked first). A side whose backend reports
    itself unavailable is ``skipped`` only when every side is: where the others load, the
    one that cannot has broken (e.g. a head whose import now fails inside ``available()``)."""
    from multiprocessing.connection import wait

    deadline = time.monotonic() + limit_s
    pending = [(i, w) for i, s in enumerate(sides) for w in s.workers]
    failures: dict[int, _WorkerFailed] = {}
    skips: dict[int, _WorkerFailed] = {}
    while pending and not failures:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            for i, _ in pending:
                failures.setdefault(
                    i,
                    _WorkerFailed(
                        "timeout",
                        f"{labels[i]}: a worker's loading and warm-up exceeded start_timeout_s={limit_s:g} s "
                        "and was stopped",
                    ),
                )
            break
        ready = set(wait([o for _, w in pending for o in (w.conn, w.proc.sentinel)], timeout=remaining))
        still = []
        for i, w in pending:
            if w.conn in ready or w.proc.sentinel in ready:
                try:
                    w.info = _recv(w.conn, w.proc, deadline, f"{labels[i]}: loading and warm-up")[1]
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


def _send(w: Any, msg: tuple[Any, ...]) -> None:
    from harness.measure.procs import exit_reason as _exit_reason

    try:
        w.conn.send(msg)
    except OSError:  # the worker died while idle (e.g. killed for memory)
        w.proc.join(5)
        raise _WorkerFailed("crashed", _exit_reason(w.proc.exitcode)) from None


@dataclass
class _Worker:
    proc: Any
    conn: Any
    info: dict[str, Any] = field(default_factory=dict)
    backend_info: dict[str, Any] = field(default_factory=dict)
    stopped: bool = False


@dataclass
class _Side:
    variant: Variant
    workers: list[_Worker]
    # (round, turn within the round, worker index, issued_ns, completed_ns)
    blocks: list[tuple[int, int, int, np.ndarray, np.ndarray]] = field(default_factory=list)


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
    several and shrinks in the paired comparison (it does not vanish: see the module doc).
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
    if len({v.label for v in variants}) != len(variants):
        raise InterleaveError(f"variant labels must differ: {[v.label for v in variants]}")
    plans = [_scenario_plan(v.spec) for v in variants]
    if len({p[0] for p in plans}) != 1:
        raise InterleaveError(f"variants must share the batch size; got {[p[0] for p in plans]}")
    session = session or secrets.token_hex(6)
    cell_id = variants[0].spec.cell_id
    started = utc_now()
    t_wall = time.monotonic()
    ctx = mp.get_context("spawn")
    sides = [_Side(v, []) for v in variants]
    every: list[_Worker] = []
    failures: dict[int, _WorkerFailed] = {}
    labels = [v.label for v in variants]
    rng = np.random.default_rng(opts.seed)
    m = opts.workers
    # per variant, which worker measures in each round: a fresh permutation every m rounds
    schedule = [np.concatenate([rng.permutation(m) for _ in range(-(-opts.rounds // m))])[: opts.rounds] for _ in sides]
    try:
        for s in sides:
            for _ in range(opts.workers):
                parent, child = ctx.Pipe()
                proc = ctx.Process(
                    target=_variant_worker,
                    daemon=False,
                    args=(
                        child,
                        s.variant.spec.model_dump_json(),
                        tuple(s.variant.pythonpath),
                        float(s.variant.slowdown),
                        opts.model_dump_json(),
                    ),
                )
                try:
                    proc.start()
                finally:
                    child.close()
                    if proc.pid is None:  # did not start: nothing will read the pipe
                        parent.close()
                w = _Worker(proc, parent)
                s.workers.append(w)
                every.append(w)
        failures = _start_all(sides, labels, opts.start_timeout_s)
        if not failures:
            for r in range(opts.rounds):
                for pos, i in enumerate(rng.permutation(len(sides))):
                    s = sides[int(i)]
                    wi = int(schedule[int(i)][r])
                    w = s.workers[wi]
                    try:
                        _send(w, ("block", r))
                        _, st, en = _recv(
                            w.conn,
                            w.proc,
                            time.monotonic() + opts.block_timeout_s,
                            f"{labels[int(i)]}: block {r} (block_timeout_s={opts.block_timeout_s:g} s)",
                        )
                    except _WorkerFailed as exc:
                        failures[int(i)] = exc
                        break
                    s.blocks.append((r, pos, wi, st, en))
                if failures:
                    break
                if progress is not None:
                    progress(r + 1, opts.rounds)
        if not failures:
            for i, s in enumerate(sides):
                for w in s.workers:
                    try:
                        _send(w, ("stop",))
                        w.backend_info = _recv(w.conn, w.proc, time.monotonic() + 60.0, f"{labels[i]}: closing")[1]
                        w.stopped = True
                    except _WorkerFailed as exc:
                        failures[i] = exc
                        break
                if failures:
                    break
    except KeyboardInterrupt:
        for w in every:
            _kill(w.proc)
        raise
    finally:
        # idle workers wait in recv(): tell them to stop, then give all one shared deadline
        for w in every:
            if not w.stopped and w.proc.is_alive():
                try:
                    w.conn.send(("stop",))
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
    wall = time.monotonic() - t_wall
    out: list[CellRecord] = []
    for i, (s, d, plan) in enumerate(zip(sides, run_dirs, plans)):
        base = {"cell_id": cell_id, "spec": s.variant.spec, "started_utc": started, "wall_s": wall}
        if failures:
            if i in failures:
                exc = failures[i]
                out.append(
                    CellRecord(
                        **base,
                        status=exc.status,
                        error=exc.reason,  # type: ignore[arg-type]
                        extra={"traceback": exc.detail} if exc.detail else {},
                    )
                )
            else:  # not measured because of its partners: skipped, with the partners named
                broke = {labels[j]: f for j, f in sorted(failures.items())}
                extra = (
                    {}
                    if all(f.status == "skipped" for f in broke.values())
                    else {"partner_failed": ", ".join(k for k, f in broke.items() if f.status != "skipped")}
                )
                why = "; ".join(f"{k!r} {f.status}: {f.reason}" for k, f in broke.items())
                out.append(
                    CellRecord(**base, status="skipped", extra=extra, error=f"not measured: interleaved partner {why}")
                )
            continue
        out.append(_summarise(s, Path(d), plan, opts, session, labels, base))
    return out


def _summarise(
    s: _Side,
    run_dir: Path,
    plan: tuple[int, Any, float],
    opts: InterleaveOptions,
    session: str,
    labels: list[str],
    base: dict[str, Any],
) -> CellRecord:
    from harness.core.metrics import Metric
    from harness.measure.scenarios.summary import latency_metrics
    from harness.store.results import write_table

    batch_size, stop, headline_q = plan
    starts = np.concatenate([b[3] for b in s.blocks])
    ends = np.concatenate([b[4] for b in s.blocks])

    def col(j: int) -> np.ndarray:
        return np.concatenate([np.full(b[3].size, b[j], dtype=np.int64) for b in s.blocks])

    n = int(starts.size)
    queries = {
        "query_id": np.arange(n, dtype=np.int64),
        "batch_size": np.full(n, batch_size, dtype=np.int64),
        "scheduled_ns": starts,
        "issued_ns": starts,
        "completed_ns": ends,
        "block": col(0),
        "block_position": col(1),
        "worker": col(2),
    }
    raw_rel = f"raw/{base['cell_id']}.parquet"
    write_table(run_dir / raw_rel, queries)
    durations = [int(b[4][-1] - b[3][0]) for b in s.blocks]
    measured_ns = sum(durations)
    metrics = latency_metrics(ends - starts, headline_q)
    if measured_ns > 0:
        metrics["throughput"] = Metric(
            value=n * batch_size / (measured_ns / 1e9),
            unit="samples/s",
            method="measured samples / summed block durations",
        )
        metrics["queries_per_s"] = Metric(value=n / (measured_ns / 1e9), unit="queries/s")
    loads = [w.info.get("load_time_ns") for w in s.workers if w.info.get("load_time_ns") is not None]
    load_ns = int(np.median(loads)) if loads else None
    if load_ns is not None:
        metrics["load_time_ms"] = Metric(
            value=load_ns / 1e6,
            unit="ms",
            method=f"median over {len(loads)} workers of this side, loaded concurrently with every other "
            "worker of the session (contended; not a cold-start figure)",
        )
    validity = {
        "min_queries_met": n >= stop.min_queries,
        "all_blocks_measured": len(s.blocks) == opts.rounds,
        # a block that reached its cap (half of block_timeout_s) before block_min_queries
        "block_min_queries_met": all(b[3].size >= opts.block_min_queries for b in s.blocks),
    }
    extra: dict[str, Any] = {
        "interleave": {
            "session": session,
            "variant": s.variant.label,
            "variants": labels,
            **opts.model_dump(
                include={"rounds", "block_ms", "block_min_queries", "block_warmup_queries", "seed", "workers"}
            ),
        },
        "block_durations_ns": durations,
        "stop_rule": "warm-up as in the spec; the measurement is rounds x blocks, not the spec's "
        "min/max duration and queries",
        "worker_warmup": [w.info.get("warmup", {}) for w in s.workers],
        "energy": ENERGY_NOTE,
    }
    if s.variant.slowdown:
        extra["injected_slowdown"] = s.variant.slowdown
    if s.variant.pythonpath:
        extra["pythonpath"] = list(s.variant.pythonpath)
    w0 = s.workers[0]
    return CellRecord(
        **base,
        status="ok",
        load_time_ns=load_ns,
        warmup=w0.info.get("warmup", {}),
        metrics=metrics,
        validity=validity,
        valid=all(validity.values()),
        backend_info=w0.backend_info,
        workload_info=w0.info.get("workload_info", {}),
        raw_file=raw_rel,
        extra=extra,
    )


def interleaved_partners(a: CellRecord, b: CellRecord) -> bool:
    """Whether two cell records were measured in the same interleaved session, as different
    variants (then the gate pairs their blocks)."""
    ia, ib = a.extra.get("interleave"), b.extra.get("interleave")
    return (
        isinstance(ia, dict)
        and isinstance(ib, dict)
        and ia.get("session") is not None
        and ia.get("session") == ib.get("session")
        and ia.get("variant") != ib.get("variant")
    )


# ------------------------------------------------------------------------------- runs


def run_ab(
    cells: Sequence[CellSpec],
    root: Path,
    *,
    baseline_path: Sequence[str] = (),
    current_path: Sequence[str] = (),
    inject_slowdown: float = 0.0,
    options: InterleaveOptions | None = None,
    suite_name: str = "",
    suite_path: Path | None = None,
    on_cell: Callable[[int, int, CellSpec, list[CellRecord] | None], None] | None = None,
) -> tuple[RunRecord, RunRecord]:
    """Measure every cell as baseline vs current, interleaved, into two runs under ``root``
    (ids ``...-ab-baseline-...`` and ``...-ab-current-...``), saved atomically after every
    cell. Cells of other scenarios are recorded as ``skipped`` with the reason. Ctrl-C, or any
    error that escapes a cell (e.g. a full disk), saves both runs as ``interrupted`` (as far as
    they can be saved) and re-raises."""
    from harness.measure.environment import manifest
    from harness.store.results import new_run_id, save_run

    opts = options or InterleaveOptions()
    baseline_path = tuple(str(Path(x).resolve()) for x in baseline_path)  # recorded: absolute
    current_path = tuple(str(Path(x).resolve()) for x in current_path)
    session = secrets.token_hex(6)
    env = manifest(suite_path)
    env["interleave_session"] = session
    runs = []
    for label, paths in (("baseline", baseline_path), ("current", current_path)):
        e = dict(env, ab_role=label, pythonpath=list(paths))
        if label == "current" and inject_slowdown:
            e["injected_slowdown"] = inject_slowdown
        runs.append(
            RunRecord(
                run_id=new_run_id(f"ab-{label}"),
                suite_name=suite_name,
                suite_path=str(suite_path) if suite_path else None,
                environment=e,
            )
        )
    dirs = [Path(root) / r.run_id for r in runs]
    for r in runs:
        save_run(r, root)
    try:
        for k, spec in enumerate(cells):
            if on_cell is not None:
                on_cell(k, len(cells), spec, None)
            if spec.scenario not in CLOSED_LOOP_SCENARIOS:
                recs = [
                    CellRecord(
                        cell_id=spec.cell_id,
                        spec=spec,
                        status="skipped",
                        error=f"scenario {spec.scenario!r} cannot be interleaved; allowed: "
                        f"{', '.join(sorted(CLOSED_LOOP_SCENARIOS))}",
                    )
                    for _ in runs
                ]
            else:
                variants = [
                    Variant("baseline", spec, tuple(baseline_path)),
                    Variant("current", spec, tuple(current_path), inject_slowdown),
                ]
                recs = measure_interleaved(
                    variants, dirs, opts.model_copy(update={"seed": opts.seed + k}), session=session
                )
            for r, c in zip(runs, recs):
                r.cells.append(c)
                save_run(r, root)
            if on_cell is not None:
                on_cell(k + 1, len(cells), spec, recs)
    except BaseException:
        for r in runs:
            r.status = "interrupted"
            try:
                save_run(r, root)
            except OSError:  # what was saved after the last cell stands
                pass
        raise
    for r in runs:
        r.status = "complete"
        save_run(r, root)
    return runs[0], runs[1]
