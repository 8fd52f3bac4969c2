"""The cluster driver: a suite's cells as Ray tasks, one run record on this machine.

Contract (:class:`ClusterExecutor`, called like :func:`harness.measure.runner.run_cells`):

* Every cell is submitted at once as a Ray task asking for the resources of its device
  (:mod:`harness.cluster.resources`); Ray starts it on a node that has them free, so cells never
  share a device while measuring. A cell no live node can ever run is recorded ``skipped`` with
  the resources it needs and those the nodes offer; nothing waits for it.
* On the node the cell runs as on a single host (:func:`harness.cluster.node.run_on_node`:
  fresh worker process, timeout, the node's own host profile and environment). Its raw files
  come back as bytes and are written atomically into ``<root>/<run_id>/raw/``; the cell is
  appended and ``run.json`` rewritten atomically as each result arrives
  (:class:`~harness.measure.lifecycle.RunRecorder`), so a driver stopped at any point keeps
  every cell measured so far.
* A task lost with its node or Ray worker (not a cell's own failure, which is a record like any
  other) is submitted again, ``retries`` times (default once); Ray places it on a live eligible
  node. Past that, or when no live node can run it any more (checked every ``poll_s`` while
  nothing finishes), the cell is cancelled and recorded ``crashed`` with the reason and each
  lost attempt's.
* The run's ``environment`` is the driver's, plus ``cluster``: the address, the Ray version, the
  profile the run was named to (or None: each node used its own) and ``nodes``: per Ray node
  id, its IP and resources and the environment that node recorded (manifest, host profile,
  host identity). Each cell's ``extra["cluster"]`` names the node it ran on and its attempts.
* Ctrl-C / SIGTERM cancel the tasks in flight, record each of their cells ``interrupted`` and
  save the run ``interrupted``.

Not done on a cluster: skipping the larger batch sizes of a sweep after an out-of-memory cell
(its cells run concurrently; each is recorded with its own outcome).
"""

from __future__ import annotations

import logging
import platform
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.cluster.node import run_on_node
from harness.cluster.resources import Requirements, cell_requirements, unplaceable_reason
from harness.core.hardware import HardwareProfile
from harness.core.records import CellRecord, CellSpec, CellStatus, RunRecord
from harness.measure.host import host_profile
from harness.measure.lifecycle import RunRecorder, interrupt_reason
from harness.measure.runner import ProgressFn, sigterm_interrupts
from harness.store.results import DEFAULT_ROOT, atomic_write_bytes


class ClusterError(RuntimeError):
    """The cluster cannot be used (Ray missing, address unreachable); the message says why."""


def import_ray() -> Any:
    """The ``ray`` module, or :class:`ClusterError` saying how to install it."""
    try:
        # deferred: Ray is an optional dependency (the [cluster] extra), kept out of `import harness`
        import ray
    except ImportError as exc:
        raise ClusterError(f"Ray is not installed ({exc}); pip install 'inference-harness[cluster]'") from None
    return ray


def address_problem(address: str, timeout_s: float = 5.0) -> str | None:
    """Why ``address`` cannot be a Ray cluster (not ``ray://HOST:PORT``, ``HOST:PORT`` or
    ``auto``; nothing accepts a TCP connection there within ``timeout_s`` seconds), or None.
    Checked before connecting: Ray itself retries an unreachable address for minutes."""
    if address == "auto":
        return None
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return f"address {address!r} is not one of ray://HOST:PORT, HOST:PORT, auto"
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        return f"nothing answers at {host}:{port} ({exc.strerror or exc}); is the head node started (ray start --head)?"
    return None


def cell_task(spec_json: str, profile_json: str | None, overrides: Mapping[str, float] | None) -> dict[str, Any]:
    """The Ray task body: :func:`run_on_node` plus the Ray node id and IP it ran on."""
    ray = import_ray()
    out = run_on_node(spec_json, profile_json, overrides)
    out["node_id"] = ray.get_runtime_context().get_node_id()
    out["node_ip"] = ray.util.get_node_ip_address()
    return out


def live_nodes(ray: Any) -> dict[str, dict[str, Any]]:
    """Live Ray nodes: node id -> ``{"ip": ..., "resources": {name: total}}``."""
    return {
        n["NodeID"]: {"ip": n.get("NodeManagerAddress"), "resources": dict(n.get("Resources") or {})}
        for n in ray.nodes()
        if n.get("Alive")
    }


@dataclass
class _Flight:
    """One cell on its way through the cluster: its needs and each lost attempt's reason."""

    spec: CellSpec
    needs: Requirements
    lost: list[str] = field(default_factory=list)


def _one_line(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class ClusterExecutor:
    """Runs cells on the Ray cluster at ``address`` (``ray://HOST:PORT``, ``HOST:PORT`` or
    ``auto``); an instance is passed to :func:`harness.measure.runner.run_suite` as its executor.

    ``profile``: the hardware profile the run is named to (cells of its kind run only on nodes
    labelled ``profile:<id>`` and are priced with it), or None: every node detects its own,
    with ``overrides`` (``tdp_w``, ``idle_w``, ``usd_per_hour``) applied. ``retries``: how many
    times a cell whose node or Ray worker was lost is submitted again. ``poll_s``: seconds
    between checks that every waiting cell still has a live node that can run it.
    """

    address: str
    profile: HardwareProfile | None = None
    overrides: Mapping[str, float] | None = None
    retries: int = 1
    poll_s: float = 1.0
    _task: Any = field(default=None, init=False, repr=False)

    def __call__(
        self,
        cells: list[CellSpec],
        *,
        name: str = "run",
        root: Path = DEFAULT_ROOT,
        suite: dict[str, Any] | None = None,
        suite_path: Path | None = None,
        profile: HardwareProfile | None = None,
        progress: ProgressFn | None = None,
    ) -> RunRecord:
        """Run ``cells`` across the cluster and save one run record under ``root``; returns it.
        ``profile`` is the driver's host profile for the run's own environment (default:
        ``self.profile``, else this host's). Raises :class:`ClusterError` when the cluster
        cannot be reached (before a run directory is created)."""
        ray = import_ray()
        connected_here = self._connect(ray)
        self._task = None  # registered again with this connection
        try:
            return self._run(ray, cells, name, Path(root), suite, suite_path, profile, progress)
        finally:
            if connected_here:
                ray.shutdown()

    def _connect(self, ray: Any) -> bool:
        """Connect to the cluster unless this process already is; True when connected here."""
        if ray.is_initialized():
            return False
        if (problem := address_problem(self.address)) is not None:
            raise ClusterError(f"cannot use the Ray cluster at {self.address!r}: {problem}")
        try:
            ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False)
        except Exception as exc:  # ConnectionError, a ray:// address without the client, ...
            raise ClusterError(f"cannot connect to the Ray cluster at {self.address!r}: {_one_line(exc)}") from None
        return True

    def _submit(self, ray: Any, spec: CellSpec, needs: Requirements) -> Any:
        if self._task is None:
            # Ray's own retry is off: a lost cell is submitted again here, so its record says so
            self._task = ray.remote(max_retries=0)(cell_task)
        task = self._task
        pjson = self.profile.model_dump_json() if self.profile is not None else None
        return task.options(**needs.ray_options()).remote(spec.model_dump_json(), pjson, dict(self.overrides or {}))

    def _run(
        self,
        ray: Any,
        cells: list[CellSpec],
        name: str,
        root: Path,
        suite: dict[str, Any] | None,
        suite_path: Path | None,
        profile: HardwareProfile | None,
        progress: ProgressFn | None,
    ) -> RunRecord:
        run_profile = profile or self.profile or host_profile(self.overrides)
        nodes = live_nodes(ray)
        info: dict[str, Any] = {
            "address": self.address,
            "driver_host": platform.node(),
            "ray_version": getattr(ray, "__version__", None),
            "named_profile": self.profile.id if self.profile is not None else None,
            "nodes": {nid: {**n, "environment": None} for nid, n in nodes.items()},
        }
        pid = self.profile.id if self.profile is not None else None
        pkind = self.profile.kind if self.profile is not None else None
        flights: dict[Any, _Flight] = {}
        total = len(cells)
        done = 0
        with (
            sigterm_interrupts(),
            RunRecorder.start(name, root, run_profile, suite=suite, suite_path=suite_path) as rec,
        ):
            rec.record.environment["cluster"] = info

            def finish(spec: CellSpec, cell: CellRecord) -> None:
                nonlocal done
                rec.add(cell)
                done += 1
                if progress:
                    progress(done, total, spec, cell)

            try:
                if progress and cells:
                    progress(0, total, cells[0], None)
                for spec in cells:
                    try:
                        needs = cell_requirements(spec.device, pid, pkind)
                    except ValueError as exc:
                        finish(spec, _record(spec, "skipped", str(exc)))
                        continue
                    why = unplaceable_reason(needs, [n["resources"] for n in nodes.values()])
                    if why is not None:
                        finish(spec, _record(spec, "skipped", why))
                        continue
                    flights[self._submit(ray, spec, needs)] = _Flight(spec, needs)
                while flights:
                    ready, _ = ray.wait(list(flights), num_returns=1, timeout=self.poll_s)
                    for ref in ready:
                        fl = flights.pop(ref)
                        cell = self._collect(ray, ref, fl, rec, info)
                        if cell is None:  # lost with its node: submitted again
                            flights[self._submit(ray, fl.spec, fl.needs)] = fl
                        else:
                            finish(fl.spec, cell)
                    if not ready:
                        self._fail_stranded(ray, flights, finish)
            except BaseException as exc:
                _cancel(ray, flights)
                if isinstance(exc, KeyboardInterrupt):
                    for fl in flights.values():
                        rec.record.cells.append(_record(fl.spec, "interrupted", interrupt_reason(exc), fl))
                raise
        return rec.record

    def _collect(self, ray: Any, ref: Any, fl: _Flight, rec: RunRecorder, info: dict[str, Any]) -> CellRecord | None:
        """The record of a finished task; None when its node was lost and it may be retried."""
        try:
            out = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the harness itself failed on the node
            return _record(fl.spec, "failed", f"the cell's task failed on its node: {_one_line(exc, 1000)}", fl)
        except ray.exceptions.RayError as exc:  # node or Ray worker lost, object lost
            fl.lost.append(_one_line(exc))
            if len(fl.lost) <= self.retries:
                return None
            return _record(
                fl.spec,
                "crashed",
                f"lost with its node or Ray worker {len(fl.lost)} time(s); last: {fl.lost[-1]}",
                fl,
            )
        spec = fl.spec
        allowed = {f"raw/{spec.cell_id}.parquet", f"raw/{spec.cell_id}.tokens.parquet"}
        for rel, data in out["files"].items():
            if rel not in allowed:
                return _record(spec, "failed", f"node returned an unexpected file {rel!r}", fl)
            atomic_write_bytes(rec.run_dir / rel, data)
        cell = CellRecord.model_validate_json(out["cell"])
        node_id = out["node_id"]
        node = info["nodes"].setdefault(node_id, {"ip": out["node_ip"], "resources": {}, "environment": None})
        if node.get("environment") is None:
            node["environment"] = out["environment"]
        cell.extra["cluster"] = {
            "node_id": node_id,
            "node_ip": out["node_ip"],
            "hostname": out["environment"].get("hostname"),
            "attempts": len(fl.lost) + 1,
            "lost_attempts": list(fl.lost),
        }
        return cell

    def _fail_stranded(self, ray: Any, flights: dict[Any, _Flight], finish: Any) -> None:
        """Record ``crashed`` (and cancel) every waiting cell no live node can run any more."""
        nodes = [n["resources"] for n in live_nodes(ray).values()]
        for ref, fl in list(flights.items()):
            why = unplaceable_reason(fl.needs, nodes)
            if why is not None:
                del flights[ref]
                _cancel(ray, {ref: fl})
                # its node went away before it finished: a failure of the run, not a skip
                finish(fl.spec, _record(fl.spec, "crashed", why + "".join(f"; lost: {x}" for x in fl.lost), fl))


def _record(spec: CellSpec, status: CellStatus, error: str, fl: _Flight | None = None) -> CellRecord:
    """A cell that produced no measurement, with why (and its lost attempts)."""
    lost = list(fl.lost) if fl is not None else []
    extra = {"cluster": {"attempts": len(lost), "lost_attempts": lost}}
    return CellRecord(cell_id=spec.cell_id, spec=spec, status=status, error=error, extra=extra)


def _cancel(ray: Any, flights: Mapping[Any, _Flight]) -> None:
    """Cancel tasks in flight (force: their workers are killed with the cell processes)."""
    for ref in flights:
        try:
            ray.cancel(ref, force=True)
        except Exception:  # already finished or its node is gone: nothing left to stop
            pass
