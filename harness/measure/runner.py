"""Run a suite: each cell in a fresh worker process, with a timeout, saving after every cell.

* A crash (non-zero exit, signal, out-of-memory kill), an exception or a hang in one cell is
  recorded as that cell's failure with its reason; the suite goes on.
* When a batch-size sweep cell fails for lack of memory, the larger batch sizes of the same
  sweep are skipped with that reason.
* Ctrl-C stops the current cell, marks it ``interrupted``, saves the run as ``interrupted``
  and keeps every cell already measured.
* ``run.json`` is rewritten atomically after every cell (:mod:`harness.measure.lifecycle`).
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.core.hardware import HardwareProfile
from harness.core.records import CellRecord, CellSpec, CellStatus, RunRecord, utc_now
from harness.core.spec import SpecError, load_suite
from harness.core.yamlloc import read_yaml
from harness.measure.host import host_profile
from harness.measure.lifecycle import RunRecorder
from harness.measure.procs import exit_reason, kill_tree
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


def run_cell_isolated(spec: CellSpec, run_dir: Path, profile: HardwareProfile | None = None) -> CellRecord:
    """Run one cell in a fresh ``spawn`` process; never raises for a cell's own failure
    (KeyboardInterrupt is re-raised after the worker is stopped)."""
    ctx = mp.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    pjson = profile.model_dump_json() if profile is not None else None
    proc = ctx.Process(target=worker_main, args=(spec.model_dump_json(), str(run_dir), pjson, child_conn), daemon=False)
    started = utc_now()
    t0 = time.monotonic()
    proc.start()
    child_conn.close()
    pid = proc.pid
    assert pid is not None  # set by start()
    try:
        deadline = t0 + spec.timeout_s
        while True:
            if parent_conn.poll(0.1):
                try:
                    payload = parent_conn.recv()
                except EOFError:
                    proc.join(5)
                    return _worker_failure(spec, started, profile, t0, "crashed", exit_reason(proc.exitcode))
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
                return _worker_failure(
                    spec,
                    started,
                    profile,
                    t0,
                    "crashed",
                    exit_reason(proc.exitcode),
                    oom=proc.exitcode == -signal.SIGKILL,
                )
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
    with RunRecorder.start(name, Path(root), profile, suite=suite, suite_path=suite_path) as rec:
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
) -> RunRecord:
    """Load, validate, expand and run a suite file. Raises :class:`SpecError` for a bad suite
    and when ``only`` keeps none of its cells (before anything runs or is written)."""

    suite, cells = load_suite(path)
    if only is not None:
        kept = [c for c in cells if only(c)]
        if not kept:
            examples = ", ".join(c.cell_id for c in cells[:3])
            raise SpecError(str(path), None, "--only", f"matches none of the {len(cells)} cells (ids like: {examples})")
        cells = kept
    _, data = read_yaml(path, "suite file")
    return run_cells(
        cells, name=suite.name, root=root, suite=data, suite_path=Path(path), profile=profile, progress=progress
    )
