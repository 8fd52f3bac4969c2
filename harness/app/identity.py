"""What a run and a cell ran on, and short names for cells: the accelerator identity the app
shows in every table, filter, picker and chart legend.

A cell that ran on an accelerator (its spec's device is not ``cpu``) is named after that
accelerator, taken in this order: the host identity the run recorded
(``environment.host.accelerators[i]``: ``name``, else its ``profile_id``; ``i`` from a
``cuda:i`` device, else 0), the device name its backend reported (``backend_info.cuda_device``),
the environment's GPU list (``environment.gpus[i].name``). A CPU cell is named after the CPU
model. Nothing here imports Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.core.records import CellRecord, RunRecord

#: the name shown when a record does not say what it ran on
UNKNOWN = "unknown"


def _device_index(device: str) -> int:
    _, _, idx = device.partition(":")
    return int(idx) if idx.isdigit() else 0


def _recorded_accelerator(env: Mapping[str, Any], idx: int) -> str | None:
    """The name of accelerator ``idx`` as the run's host identity recorded it
    (``environment.host.accelerators``: mappings with ``index``, ``name``, ``profile_id``), else None."""
    host = env.get("host")
    accs = host.get("accelerators") if isinstance(host, Mapping) else None
    for a in accs if isinstance(accs, list) else []:
        if isinstance(a, Mapping) and a.get("index") == idx:
            name = a.get("name") or a.get("profile_id")
            if name:
                return str(name)
    return None


def _gpu_names(env: Mapping[str, Any]) -> list[str]:
    return [str(g.get("name")) for g in env.get("gpus") or [] if isinstance(g, Mapping) and g.get("name")]


def is_accelerated(cell: CellRecord) -> bool:
    """Whether the cell ran on an accelerator (its device is not ``cpu``)."""
    return cell.spec.device.split(":", 1)[0] != "cpu"


def cell_hardware(run: RunRecord, cell: CellRecord) -> str:
    """What ``cell`` ran on: the accelerator's name for a device other than ``cpu`` (module doc
    for the order of sources), else the CPU model; :data:`UNKNOWN` when the record has neither."""
    env = run.environment
    if is_accelerated(cell):
        idx = _device_index(cell.spec.device)
        named = _recorded_accelerator(env, idx)
        if named:
            return named
        reported = cell.backend_info.get("cuda_device") or cell.backend_info.get("device_name")
        if reported:
            return str(reported)
        gpus = _gpu_names(env)
        if gpus:
            return gpus[idx] if idx < len(gpus) else gpus[0]
        return f"{cell.spec.device} ({UNKNOWN})"
    return str(env.get("cpu_model") or UNKNOWN)


def run_accelerators(run: RunRecord) -> list[str]:
    """Distinct accelerators the run's cells ran on (sorted); empty for a CPU-only run."""
    return sorted({cell_hardware(run, c) for c in run.cells if is_accelerated(c)})


def run_hardware_label(run: RunRecord) -> str:
    """How a run is labelled: its accelerators (``NVIDIA H200``), with ``+ CPU`` when some of
    its cells ran on the CPU; the CPU model for a CPU-only run."""
    acc = run_accelerators(run)
    if not acc:
        return str(run.environment.get("cpu_model") or UNKNOWN)
    cpu = any(not is_accelerated(c) for c in run.cells)
    return ", ".join(acc) + (" + CPU" if cpu else "")


def short_accelerator(name: str) -> str:
    """A hardware name without its vendor prefix and CPU-branding noise, for legends
    (``NVIDIA H200`` -> ``H200``)."""
    for prefix in ("NVIDIA ", "AMD ", "Intel(R) ", "Intel "):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name.replace("(R)", "").replace("(TM)", "").replace(" Processor", "").replace("  ", " ").strip()


def cell_name(run: RunRecord, cell: CellRecord) -> str:
    """A short readable name of a cell for legends and pickers, unique within a run:
    ``bert-standard torch@H200 online bs1 #3f07 · f3f9`` (model-size, backend@hardware,
    scenario, batch size, the start of the cell id's options hash where it has one, the run
    id's last part)."""
    s = cell.spec
    hw = short_accelerator(cell_hardware(run, cell)) if is_accelerated(cell) else "CPU"
    last = cell.cell_id.rsplit(".", 1)[-1]
    opts = f" #{last[:4]}" if last != f"bs{s.batch_size}" and "." in cell.cell_id else ""
    return f"{s.model}-{s.size} {s.backend}@{hw} {s.scenario} bs{s.batch_size}{opts} · {run_tag(run.run_id)}"


def run_tag(run_id: str) -> str:
    """The last ``-`` separated part of a run id (its random suffix), to tell runs apart briefly."""
    return run_id.rsplit("-", 1)[-1]
