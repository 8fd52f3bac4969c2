"""Execute one cell (in whatever process calls it; the runner calls it in a fresh worker).

Order: build workload -> construct and load backend (timed as load) -> parity check ->
stage samples (untimed) -> scenario (warm-up, then the measurement window with meters) ->
raw timestamps to Parquet -> summary, energy and cost -> :class:`CellRecord`.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from harness.core import plugins
from harness.core.clock import now_ns
from harness.core.records import CellRecord, CellSpec, utc_now
from harness.measure.scenarios.base import CellContext
from harness.store.results import write_table


class RunnerContext(CellContext):
    """Staged samples and the measurement window for one cell."""

    def __init__(self, backend: Any, workload: Any, seed: int, meters: list[Any]) -> None:
        self.backend = backend
        self.workload = workload
        self.seed = seed
        self.meters = meters
        self._staged: dict[tuple[int, int], Any] = {}
        self.window_ns: tuple[int, int] | None = None
        self._entered = False

    def batch(self, batch_size: int, index: int = 0) -> Any:
        key = (batch_size, index)
        if key not in self._staged:
            inputs = self.workload.make_inputs(batch_size, seed=self.seed * 100_003 + index)
            self._staged[key] = self.backend.prepare(inputs)
        return self._staged[key]

    @contextmanager
    def window(self) -> Iterator[None]:
        if self._entered:
            raise RuntimeError("the measurement window may be entered once per cell")
        self._entered = True
        with ExitStack() as stack:
            for m in self.meters:
                stack.enter_context(m)
            start = now_ns()
            try:
                yield
            finally:
                self.window_ns = (start, now_ns())


def make_workload(spec: CellSpec) -> Any:
    from workloads.registry import get_workload

    return get_workload(spec.model, spec.size, **spec.model_params)


def _default_meters(spec: CellSpec, profile: Any) -> list[Any]:
    from harness.measure.meters.select import default_meters

    return default_meters(profile, [spec.device])


def execute_cell(
    spec: CellSpec,
    run_dir: Path,
    profile: Any = None,
    meters: list[Any] | None = None,
    wrap_backend: Any = None,
) -> CellRecord:
    """Run ``spec`` in this process and return its record. Errors become a ``failed`` record.

    ``wrap_backend`` (optional) is applied to the loaded backend; benchmarks use it to inject
    a known slowdown.
    """
    cid = spec.cell_id
    started = utc_now()
    t_wall = time.monotonic()
    rec: dict[str, Any] = {
        "cell_id": cid,
        "spec": spec,
        "started_utc": started,
        "profile_id": getattr(profile, "id", None),
    }
    backend = None
    try:
        workload = make_workload(spec)
        try:
            rec["workload_info"] = workload.info().to_dict()
        except Exception as exc:  # info needs torch for zoo models; record, don't hide
            rec["workload_info"] = {"error": f"{type(exc).__name__}: {exc}"}
        cls = plugins.load("backend", spec.backend)
        ok, why = cls.available()
        if not ok:
            return CellRecord(
                **rec, status="skipped", error=f"backend unavailable: {why}", wall_s=time.monotonic() - t_wall
            )
        backend = cls(**spec.backend_options)
        t0 = now_ns()
        backend.load(workload, spec.device)
        rec["load_time_ns"] = now_ns() - t0
        if wrap_backend is not None:
            backend = wrap_backend(backend)
        if spec.parity:
            from harness.measure.parity import check

            rec["parity"] = check(backend, workload, spec.backend_options.get("dtype", "fp32"))
        scls = plugins.load("scenario", spec.scenario)
        scenario = scls(scls.parse_options(spec.scenario_options))
        if meters is None:
            meters = _default_meters(spec, profile)
        ctx = RunnerContext(backend, workload, spec.seed, meters)
        result = scenario.run(ctx)
        rec["backend_info"] = backend.describe()
        raw_rel = f"raw/{cid}.parquet"
        write_table(run_dir / raw_rel, result.queries)
        rec["raw_file"] = raw_rel
        if result.tokens is not None:
            tok_rel = f"raw/{cid}.tokens.parquet"
            write_table(run_dir / tok_rel, result.tokens)
            rec["tokens_file"] = tok_rel
        readings = [r for m in meters for r in m.collect()]
        metrics = dict(result.metrics)
        from harness.measure.cell_economics import attach_energy_and_cost

        metrics.update(attach_energy_and_cost(metrics, readings, profile))
        if rec.get("load_time_ns") is not None:
            from harness.core.metrics import Metric

            metrics["load_time_ms"] = Metric(value=rec["load_time_ns"] / 1e6, unit="ms")
        validity = dict(result.validity)
        parity = rec.get("parity")
        if parity is not None and parity.checked:
            validity["outputs_matched"] = bool(parity.passed)
        return CellRecord(
            **rec,
            status="ok",
            metrics=metrics,
            validity=validity,
            valid=all(validity.values()),
            warmup=result.warmup,
            readings=readings,
            extra=result.extra,
            wall_s=time.monotonic() - t_wall,
        )
    except Exception as exc:  # one cell's failure never ends the suite
        tb = traceback.format_exc(limit=8)
        oom = isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()
        return CellRecord(
            **rec,
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
            extra={"traceback": tb, "oom": oom},
            wall_s=time.monotonic() - t_wall,
        )
    finally:
        if backend is not None:
            try:
                backend.close()
            except Exception as exc:  # reported on stderr: the cell's numbers stand
                import sys

                print(f"warning: {spec.backend}.close() failed: {type(exc).__name__}: {exc}", file=sys.stderr)


def worker_main(spec_json: str, run_dir: str, profile_json: str | None, conn: Any) -> None:
    """Entry point of the fresh worker process: run the cell and send its record as JSON."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    from harness.core.records import CellSpec

    profile = None
    if profile_json:
        from harness.core.hardware import HardwareProfile

        profile = HardwareProfile.model_validate_json(profile_json)
    spec = CellSpec.model_validate_json(spec_json)
    record = execute_cell(spec, Path(run_dir), profile)
    conn.send(record.model_dump_json())
    conn.close()
