"""Run a suite: each cell in a fresh worker process, with a timeout, saving after every cell.

* A crash (non-zero exit, signal, out-of-memory kill), an exception or a hang in one cell is
  recorded as that cell's failure with its reason; the suite goes on.
* When a batch-size sweep cell fails for lack of memory, the larger batch sizes of the same
  sweep are skipped with that reason.
* Ctrl-C and SIGTERM stop the current cell (its worker and the worker's children are killed),
  mark it ``interrupted``, save the run as ``interrupted`` and keep every cell already
  measured. A worker dies with this process whatever kills it.
* ``run.json`` is rewritten atomically after every cell (:mod:`harness.measure.lifecycle`).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from harness.core.hardware import HardwareProfile
from harness.core.records import CellRecord, CellSpec, CellStatus, RunRecord, utc_now
from harness.core.spec import SpecError, load_suite
from harness.core.yamlloc import read_yaml
from harness.measure.host import host_profile
from harness.measure.lifecycle import RunRecorder, Terminated
from harness.measure.procs import exit_reason, kill_tree, oom_kill_count
from harness.measure.worker import execute_cell, worker_main
from harness.store.results import DEFAULT_ROOT

ProgressFn = Callable[[int, int, CellSpec, CellRecord | None], None]


def _worker_failure(
    spec: CellSpec,
    started: str,
    profile: HardwareProfile | None,
    t0: float,
    status: CellStatus,
    error: str,
    **extra: Any,
) -> CellRecord:
    """The record of a cell whose worker did not report a result; ``wall_s`` counts from ``t0``
    (``time.monotonic()`` seconds)."""
    return CellRecord(
        cell_id=spec.cell_id,
        spec=spec,
        started_utc=started,
        profile_id=profile.id if profile is not None else None,
        status=status,
        error=error,
        wall_s=time.monotonic() - t0,
        extra=extra,
    )


def _crashed(
    spec: CellSpec,
    started: str,
    profile: HardwareProfile | None,
    t0: float,
    code: int | None,
    oom_before: int | None,
    peak_rss_bytes: int,
) -> CellRecord:
    """The record of a worker that ended without a result. A SIGKILL (the OOM killer's signal)
    is marked ``oom`` so the larger batch sizes of its sweep are skipped; ``oom_evidence`` says
    whether the cgroup's OOM kill counter confirms it (``oom_kill``) or only the signal does.
    ``peak_rss_bytes`` is the largest resident size seen in samples every 0.1 s (a lower bound
    of the true peak)."""
    after = oom_kill_count() if oom_before is not None else None
    oom_killed = None if after is None or oom_before is None else after > oom_before
    sigkill = code == -signal.SIGKILL
    extra: dict[str, Any] = {"oom": sigkill, "peak_rss_bytes": peak_rss_bytes}
    if sigkill:
        extra["oom_evidence"] = "oom_kill" if oom_killed else "sigkill"
    reason = exit_reason(code, oom_killed)
    if sigkill and peak_rss_bytes:
        reason += f"; resident memory reached at least {peak_rss_bytes / 1e9:.2f} GB"
    return _worker_failure(spec, started, profile, t0, "crashed", reason, **extra)


def _rss(proc: psutil.Process | None) -> int:
    """Resident bytes of ``proc`` (0 when it is gone). One read of ``/proc/<pid>/statm``, about
    0.2 ms: cheap enough to take every 0.1 s while a cell measures. Its children are not
    counted: listing them scans every process of the host (tens of ms), which would take CPU
    from the measurement."""
    if proc is None:
        return 0
    try:
        return int(proc.memory_info().rss)
    except psutil.Error:
        return 0


def run_cell_isolated(spec: CellSpec, run_dir: Path, profile: HardwareProfile | None = None) -> CellRecord:
    """Run one cell in a fresh ``spawn`` process; never raises for a cell's own failure
    (KeyboardInterrupt, :class:`Terminated` included, is re-raised after the worker is stopped).

    The worker is killed with its children on a timeout or an interrupt, and by the kernel if
    this process dies (:func:`harness.measure.procs.die_with_parent`)."""
    ctx = mp.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    pjson = profile.model_dump_json() if profile is not None else None
    proc = ctx.Process(
        target=worker_main,
        args=(spec.model_dump_json(), str(run_dir), pjson, child_conn, os.getpid()),
        daemon=False,
    )
    started = utc_now()
    oom_before = oom_kill_count()
    t0 = time.monotonic()
    proc.start()
    child_conn.close()
    pid = proc.pid
    assert pid is not None  # set by start()
    try:
        ps: psutil.Process | None = psutil.Process(pid)
    except psutil.Error:
        ps = None
    peak_rss = 0
    try:
        deadline = t0 + spec.timeout_s
        while True:
            peak_rss = max(peak_rss, _rss(ps))
            if parent_conn.poll(0.1):
                try:
                    payload = parent_conn.recv()
                except EOFError:  # the worker ended without sending a result
                    proc.join(5)
                    return _crashed(spec, started, profile, t0, proc.exitcode, oom_before, peak_rss)
                proc.join(10)
                if proc.is_alive():
                    kill_tree(pid)
                try:
                    return CellRecord.model_validate_json(payload)
                except ValueError as exc:
                    return _worker_failure(
                        spec, started, profile, t0, "crashed", f"worker sent an unreadable result: {exc}"
                    )
            if not proc.is_alive():
                if parent_conn.poll(0.2):  # result sent just before exit
                    continue
                return _crashed(spec, started, profile, t0, proc.exitcode, oom_before, peak_rss)
            if time.monotonic() > deadline:
                kill_tree(pid)
                return _worker_failure(
                    spec,
                    started,
                    profile,
                    t0,
                    "timeout",
                    f"cell exceeded its timeout of {spec.timeout_s:g} s and was stopped",
                )
    except KeyboardInterrupt:
        kill_tree(pid)
        raise
    finally:
        parent_conn.close()


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While active (in the main thread only), SIGTERM raises :class:`Terminated`, so a run
    stopped by ``timeout``, a CI cancellation or a container stop ends like Ctrl-C: the worker
    is killed, the cell in progress is recorded ``interrupted`` and the run saved."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: object) -> None:
        raise Terminated(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _sweep_key(spec: CellSpec) -> tuple[str, ...]:
    opts = {k: v for k, v in spec.scenario_options.items() if k != "batch_size"}
    return (
        spec.model,
        spec.size,
        spec.backend,
        spec.device,
        spec.scenario,
        repr(sorted(opts.items(), key=str)),
        repr(sorted(spec.backend_options.items(), key=str)),
    )


def run_cells(
    cells: list[CellSpec],
    *,
    name: str = "run",
    root: Path = DEFAULT_ROOT,
    suite: dict[str, Any] | None = None,
    suite_path: Path | None = None,
    profile: HardwareProfile | None = None,
    progress: ProgressFn | None = None,
    isolate: bool = True,
) -> RunRecord:
    """Run ``cells`` and save a run record under ``root``; returns the record.

    ``profile`` is the hardware profile of this host (default: matched or built by
    :func:`host_profile`); it feeds the TDP power model and the price.
    ``isolate=False`` runs cells in this process (for the pytest fixture and debugging);
    timeouts and crash isolation then do not apply. The record's life (environment, saves,
    status) is :class:`~harness.measure.lifecycle.RunRecorder`'s.
    """
    if profile is None:
        profile = host_profile()
    oom_sweeps: dict[tuple[str, ...], int] = {}
    with (
        sigterm_interrupts(),
        RunRecorder.start(name, Path(root), profile, suite=suite, suite_path=suite_path) as rec,
    ):
        for i, spec in enumerate(cells):
            rec.begin(spec)
            if progress:
                progress(i, len(cells), spec, None)
            key = _sweep_key(spec)
            bs = spec.batch_size
            if key in oom_sweeps and bs > oom_sweeps[key]:
                cell = CellRecord(
                    cell_id=spec.cell_id,
                    spec=spec,
                    status="skipped",
                    error=f"batch size {oom_sweeps[key]} of this sweep ran out of memory",
                )
            elif isolate:
                cell = run_cell_isolated(spec, rec.run_dir, profile)
            else:
                cell = execute_cell(spec, rec.run_dir, profile)
            if cell.status in ("failed", "crashed") and cell.extra.get("oom"):
                oom_sweeps[key] = min(bs, oom_sweeps.get(key, bs))
            rec.add(cell)
            if progress:
                progress(i + 1, len(cells), spec, cell)
    return rec.record


def run_suite(
    path: str | Path,
    *,
    root: Path = DEFAULT_ROOT,
    profile: HardwareProfile | None = None,
    progress: ProgressFn | None = None,
    only: Callable[[CellSpec], bool] | None = None,
    executor: Callable[..., RunRecord] | None = None,
) -> RunRecord:
    """Load, validate, expand and run a suite file. Raises :class:`SpecError` for a bad suite
    and when ``only`` keeps none of its cells (before anything runs or is written).

    ``executor`` runs the cells in place of :func:`run_cells` (same keyword arguments), e.g. a
    :class:`harness.cluster.executor.ClusterExecutor` that schedules them across a cluster."""

    suite, cells = load_suite(path)
    if only is not None:
        kept = [c for c in cells if only(c)]
        if not kept:
            examples = ", ".join(c.cell_id for c in cells[:3])
            raise SpecError(str(path), None, "--only", f"matches none of the {len(cells)} cells (ids like: {examples})")
        cells = kept
    _, data = read_yaml(path, "suite file")
    return (executor or run_cells)(
        cells, name=suite.name, root=root, suite=data, suite_path=Path(path), profile=profile, progress=progress
    )
