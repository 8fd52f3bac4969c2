"""Run a suite: each cell in a fresh worker process, with a timeout, saving after every cell.

* A crash (non-zero exit, signal, out-of-memory kill), an exception or a hang in one cell is
  recorded as that cell's failure with its reason; the suite goes on.
* When a batch-size sweep cell fails for lack of memory, the larger batch sizes of the same
  sweep are skipped with that reason.
* Ctrl-C stops the current cell, marks it ``interrupted``, saves the run as ``interrupted``
  and keeps every cell already measured.
* ``run.json`` is rewritten atomically after every cell.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from harness.core.records import CellRecord, CellSpec, RunRecord, utc_now
from harness.measure.environment import manifest
from harness.store.results import DEFAULT_ROOT, new_run_id, save_run

ProgressFn = Callable[[int, int, CellSpec, CellRecord | None], None]


def _kill_tree(pid: int) -> None:
    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    _kill_all(parent.children(recursive=True) + [parent])


def _kill_all(procs: list[psutil.Process]) -> None:
    """SIGKILL every process of ``procs`` that still exists and wait up to 5 s for them."""
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=5)


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "worker did not exit"
    if code < 0:
        sig = -code
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = " (likely killed for lack of memory)" if sig == signal.SIGKILL else ""
        return f"worker killed by {name}{hint}"
    return f"worker exited with code {code} before reporting a result"


def run_cell_isolated(spec: CellSpec, run_dir: Path, profile: Any = None) -> CellRecord:
    """Run one cell in a fresh ``spawn`` process; never raises for a cell's own failure
    (KeyboardInterrupt is re-raised after the worker is stopped)."""
    ctx = mp.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    from harness.measure.worker import worker_main

    pjson = profile.model_dump_json() if profile is not None else None
    proc = ctx.Process(target=worker_main, args=(spec.model_dump_json(), str(run_dir), pjson, child_conn), daemon=False)
    started = utc_now()
    t0 = time.monotonic()
    proc.start()
    child_conn.close()
    base = {"cell_id": spec.cell_id, "spec": spec, "started_utc": started, "profile_id": getattr(profile, "id", None)}
    try:
        deadline = t0 + spec.timeout_s
        while True:
            if parent_conn.poll(0.1):
                try:
                    payload = parent_conn.recv()
                except EOFError:
                    proc.join(5)
                    return CellRecord(
                        **base, status="crashed", error=_exit_reason(proc.exitcode), wall_s=time.monotonic() - t0
                    )
                proc.join(10)
                if proc.is_alive():
                    _kill_tree(proc.pid)
                try:
                    return CellRecord.model_validate_json(payload)
                except ValueError as exc:
                    return CellRecord(
                        **base,
                        status="crashed",
                        error=f"worker sent an unreadable result: {exc}",
                        wall_s=time.monotonic() - t0,
                    )
            if not proc.is_alive():
                if parent_conn.poll(0.2):  # result sent just before exit
                    continue
                return CellRecord(
                    **base,
                    status="crashed",
                    error=_exit_reason(proc.exitcode),
                    wall_s=time.monotonic() - t0,
                    extra={"oom": proc.exitcode == -signal.SIGKILL},
                )
            if time.monotonic() > deadline:
                _kill_tree(proc.pid)
                return CellRecord(
                    **base,
                    status="timeout",
                    error=f"cell exceeded its timeout of {spec.timeout_s:g} s and was stopped",
                    wall_s=time.monotonic() - t0,
                )
    except KeyboardInterrupt:
        _kill_tree(proc.pid)
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
    profile: Any = None,
    progress: ProgressFn | None = None,
    isolate: bool = True,
) -> RunRecord:
    """Run ``cells`` and save a run record under ``root``; returns the record.

    ``profile`` is the hardware profile of this host (default: matched or built by
    :func:`host_profile`); it feeds the TDP power model and the price.
    ``isolate=False`` runs cells in this process (for the pytest fixture and debugging);
    timeouts and crash isolation then do not apply.
    """
    root = Path(root)
    if profile is None:
        profile = host_profile()
    record = RunRecord(
        run_id=new_run_id(name),
        suite_name=name,
        suite=suite or {},
        suite_path=str(suite_path) if suite_path else None,
        environment=manifest(suite_path),
    )
    record.environment["profile_id"] = profile.id
    record.environment["profile"] = profile.model_dump(mode="json")
    run_dir = root / record.run_id
    save_run(record, root)
    oom_sweeps: dict[tuple[str, ...], int] = {}
    try:
        for i, spec in enumerate(cells):
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
                cell = run_cell_isolated(spec, run_dir, profile)
            else:
                from harness.measure.worker import execute_cell

                cell = execute_cell(spec, run_dir, profile)
            if cell.status in ("failed", "crashed") and cell.extra.get("oom"):
                oom_sweeps[key] = min(bs, oom_sweeps.get(key, bs))
            record.cells.append(cell)
            save_run(record, root)
            if progress:
                progress(i + 1, len(cells), spec, cell)
    except BaseException as exc:  # Ctrl-C, or a failure of the runner itself: keep what was measured
        done = {c.cell_id for c in record.cells}
        why = (
            "run interrupted before this cell finished"
            if isinstance(exc, KeyboardInterrupt)
            else f"runner failed: {type(exc).__name__}: {exc}"
        )
        for spec in cells:
            if spec.cell_id not in done:
                record.cells.append(CellRecord(cell_id=spec.cell_id, spec=spec, status="interrupted", error=why))
                break
        record.status = "interrupted"
        save_run(record, root)
        raise
    record.status = "complete"
    save_run(record, root)
    return record


def run_suite(
    path: str | Path,
    *,
    root: Path = DEFAULT_ROOT,
    profile: Any = None,
    progress: ProgressFn | None = None,
    only: Callable[[CellSpec], bool] | None = None,
) -> RunRecord:
    """Load, validate, expand and run a suite file."""
    import yaml

    from harness.core.spec import load_suite

    suite, cells = load_suite(path)
    if only is not None:
        cells = [c for c in cells if only(c)]
    data = yaml.safe_load(Path(path).read_text())
    return run_cells(
        cells, name=suite.name, root=root, suite=data, suite_path=Path(path), profile=profile, progress=progress
    )


def host_profile(overrides: dict[str, Any] | None = None) -> Any:
    """The hardware profile matched to (or built for) this host, with user overrides."""
    from harness.core.hardware import apply_overrides, detect_host, load_profiles, match_host

    profile = match_host(detect_host(), load_profiles())
    if overrides:
        profile = apply_overrides(profile, **overrides)
    return profile
