"""Execute one cell (in whatever process calls it; the runner calls it in a fresh worker).

Order: build workload -> construct and load backend (timed as load) -> parity check ->
stage samples (untimed) -> scenario (warm-up, then the measurement window with meters) ->
raw timestamps to Parquet -> summary, energy and cost -> :class:`CellRecord`.
"""

from __future__ import annotations

import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core import plugins
from harness.core.clock import now_ns
from harness.core.hardware import HardwareProfile
from harness.core.metrics import Metric
from harness.core.records import CellRecord, CellSpec, CellStatus, Parity, utc_now
from harness.measure.cell_economics import attach_energy_and_cost
from harness.measure.host import cell_cost_basis
from harness.measure.meters.rapl import RaplMeter
from harness.measure.meters.select import default_meters
from harness.measure.parity import check
from harness.measure.procs import die_with_parent
from harness.measure.scenarios.base import CellContext
from harness.measure.variants import apply as variants
from harness.store.results import write_table
from workloads.registry import get_workload


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
        """The measurement window. Entering it again (a repeated attempt) restarts every meter:
        the last window is the one recorded, so power and energy cover exactly the kept
        attempt. Windows do not nest."""
        if self._entered:
            raise RuntimeError("measurement windows do not nest")
        self._entered = True
        with ExitStack() as stack:
            for m in self.meters:
                stack.enter_context(m)
            start = now_ns()
            try:
                yield
            finally:
                self.window_ns = (start, now_ns())
                self._entered = False


def make_workload(spec: CellSpec) -> Any:
    """The zoo workload of ``spec`` (model, size, model parameters)."""

    return get_workload(spec.model, spec.size, **spec.model_params)


def workload_info(workload: Any) -> dict[str, Any]:
    """``workload.info()`` as a dict, or ``{"error": ...}`` saying why it could not be had."""
    try:
        info: dict[str, Any] = workload.info().to_dict()
    except Exception as exc:  # info needs torch for zoo models; record, don't hide
        info = {"error": f"{type(exc).__name__}: {exc}"}
    return info


class BackendUnavailable(Exception):
    """The backend of a cell reports itself unavailable on this host; the message says why."""


@dataclass
class LoadedBackend:
    """A backend plugin instance with the workload loaded on the cell's device.

    ``load_time_ns``: integer ns (monotonic clock) that ``backend.load`` took."""

    backend: Any  # a backend plugin (harness.measure.backends.base protocol)
    load_time_ns: int


def load_backend(spec: CellSpec, workload: Any) -> LoadedBackend:
    """Construct ``spec.backend`` with ``spec.backend_options`` and load ``workload`` on
    ``spec.device``, timing the load. The one way every measurement loads a backend.

    Raises :class:`BackendUnavailable` when the backend says it cannot run here, and
    whatever the plugin raises otherwise (then the backend, if constructed, is closed first).
    """
    cls = plugins.load("backend", spec.backend)
    ok, why = cls.available()
    if not ok:
        raise BackendUnavailable(f"backend unavailable: {why}")
    backend = cls(**spec.backend_options)
    try:
        t0 = now_ns()
        backend.load(workload, spec.device)
        load_ns = now_ns() - t0
    except BaseException:
        close_backend(backend, spec.backend)
        raise
    return LoadedBackend(backend, load_ns)


def close_backend(backend: Any, name: str) -> None:
    """``backend.close()``; a failure is reported on stderr, never raised (the numbers stand)."""
    try:
        backend.close()
    except Exception as exc:
        print(f"warning: {name}.close() failed: {type(exc).__name__}: {exc}", file=sys.stderr)


def _default_meters(spec: CellSpec, profile: HardwareProfile | None) -> list[Any]:
    """The cell's device meters; an accelerator cell also meters the host CPU where RAPL is
    readable (its share is added to the cell's power, :mod:`harness.measure.cell_economics`)."""
    devices = [spec.device]
    if spec.device != "cpu" and RaplMeter.available()[0]:
        devices.append("cpu")
    return default_meters(profile, devices)


def execute_cell(
    spec: CellSpec,
    run_dir: Path,
    profile: HardwareProfile | None = None,
    meters: list[Any] | None = None,
    wrap_backend: Callable[[Any], Any] | None = None,
) -> CellRecord:
    """Run ``spec`` in this process and return its record. Errors become a ``failed`` record,
    an unavailable backend a ``skipped`` one.

    ``wrap_backend`` (optional) is applied to the loaded backend; benchmarks use it to inject
    a known slowdown.
    """
    cid = spec.cell_id
    started = utc_now()
    t_wall = time.monotonic()
    winfo: dict[str, Any] = {}
    load_ns: int | None = None
    parity: Parity | None = None
    # the profile the cell is priced with: the accelerator's for cuda:N, the host CPU's for cpu
    basis = cell_cost_basis(spec.device, profile) if profile is not None else None

    def record(status: CellStatus, **fields: Any) -> CellRecord:
        return CellRecord(
            cell_id=cid,
            spec=spec,
            started_utc=started,
            profile_id=basis.profile.id if basis is not None else None,
            workload_info=winfo,
            load_time_ns=load_ns,
            parity=parity,
            status=status,
            wall_s=time.monotonic() - t_wall,
            **fields,
        )

    backend = None
    try:
        workload = make_workload(spec)
        winfo = workload_info(workload)
        variant = variants.setup(spec, workload)  # a pass-through for a cell without a variant
        if variant.skip_reason is not None:
            return record("skipped", error=variant.skip_reason)
        try:
            loaded = load_backend(variant.spec, variant.workload)
        except BackendUnavailable as exc:
            return record("skipped", error=str(exc))
        backend = variant.wrap(loaded.backend)
        load_ns = loaded.load_time_ns
        if wrap_backend is not None:
            backend = wrap_backend(backend)
        if variant.active:  # accuracy cost against the fp32 eager reference
            parity = variant.measure(backend)
        elif spec.parity:
            parity = check(backend, workload, spec.backend_options.get("dtype", "fp32"))
        scls = plugins.load("scenario", spec.scenario)
        scenario = scls(scls.parse_options(spec.scenario_options))
        if meters is None:
            meters = _default_meters(spec, profile)
        ctx = RunnerContext(backend, workload, spec.seed, meters)
        result = scenario.run(ctx)
        backend_info = backend.describe()
        raw_rel = f"raw/{cid}.parquet"
        write_table(run_dir / raw_rel, result.queries)
        tok_rel = None
        if result.tokens is not None:
            tok_rel = f"raw/{cid}.tokens.parquet"
            write_table(run_dir / tok_rel, result.tokens)
        readings = [r for m in meters for r in m.collect()]
        metrics = dict(result.metrics)
        metrics.update(attach_energy_and_cost(metrics, readings, profile, basis))
        metrics["load_time_ms"] = Metric(value=load_ns / 1e6, unit="ms")
        variant_extra = variant.finish(backend)
        metrics.update(variant.metrics)
        validity = {**result.validity, **variant.validity}
        if parity is not None and parity.checked:
            validity["outputs_matched"] = bool(parity.passed)
        return record(
            "ok",
            backend_info=backend_info,
            raw_file=raw_rel,
            tokens_file=tok_rel,
            metrics=metrics,
            validity=validity,
            valid=all(validity.values()),
            warmup=result.warmup,
            readings=readings,
            extra={**result.extra, **variant_extra},
        )
    except Exception as exc:  # one cell's failure never ends the suite
        tb = traceback.format_exc(limit=8)
        oom = isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()
        return record("failed", error=f"{type(exc).__name__}: {exc}", extra={"traceback": tb, "oom": oom})
    finally:
        if backend is not None:
            close_backend(backend, spec.backend)


def worker_main(
    spec_json: str, run_dir: str, profile_json: str | None, conn: Any, parent_pid: int | None = None
) -> None:
    """Entry point of the fresh worker process: run the cell and send its record as JSON.

    The worker dies with its parent (``parent_pid``) and ignores SIGINT and SIGTERM: the parent
    decides what they mean and stops the worker itself."""

    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    profile = HardwareProfile.model_validate_json(profile_json) if profile_json else None
    spec = CellSpec.model_validate_json(spec_json)
    record = execute_cell(spec, Path(run_dir), profile)
    conn.send(record.model_dump_json())
    conn.close()
