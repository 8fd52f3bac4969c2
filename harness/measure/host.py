"""Host detection: what this machine reports about itself, and the hardware profiles it maps to.

The one place that reads ``/proc/cpuinfo``, psutil and NVML about the host. The environment
manifest (:mod:`harness.measure.environment`), the host CPU profile of every run
(:func:`host_profile`), the whole host's identity recorded with a run (:func:`host_record`:
CPU profile + one profile per GPU) and the profiles a cell is priced with
(:func:`cell_cost_basis`) all come from here. Matching a detected host to shipped profiles,
building a ``local`` profile and applying overrides are pure functions of
:mod:`harness.core.host_match` and :mod:`harness.core.hardware`.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from harness.core.hardware import HardwareProfile, apply_overrides, load_profiles
from harness.core.host_match import (
    CostBasis,
    GpuInfo,
    HostInfo,
    cost_basis,
    host_identity,
    match_host,
    unmatched_gpu_profile,
)
from harness.measure.meters.nvml import cuda_to_nvml_index

CPUINFO = Path("/proc/cpuinfo")
#: ``/proc/cpuinfo`` keys that name the CPU model (x86: ``model name``; ARM/others: the rest).
_CPU_MODEL_KEYS = ("model name", "Model", "Hardware", "cpu model")


def cpu_model(cpuinfo: str | Path = CPUINFO) -> str:
    """CPU model name from ``cpuinfo`` (Linux), else :func:`platform.processor`, else the machine
    type, else ``"unknown"``."""
    try:
        for line in Path(cpuinfo).read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in _CPU_MODEL_KEYS and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _pci_id(handle: Any, pynvml: Any) -> str | None:
    """``vendor:device`` (lowercase hex) from NVML's 32-bit PCI device id (device << 16 | vendor)."""
    try:
        raw = int(pynvml.nvmlDeviceGetPciInfo(handle).pciDeviceId)
    except Exception:  # NVMLError or a binding without the call: the name still matches
        return None
    return f"{raw & 0xFFFF:04x}:{(raw >> 16) & 0xFFFF:04x}"


def detect_gpus() -> tuple[list[GpuInfo], str]:
    """NVIDIA GPUs via NVML (index, name, PCI id, memory, driver) and how they were detected
    (``"nvml"``, or why none could be)."""
    try:
        # deferred: the NVML bindings load only where a GPU is detected or metered
        import pynvml
    except ImportError:
        return [], "nvidia-ml-py not installed"
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError: no driver / no device
        return [], f"NVML unavailable: {exc}"
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        if isinstance(driver, bytes):
            driver = driver.decode()
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            if isinstance(name, bytes):
                name = name.decode()
            mem = int(pynvml.nvmlDeviceGetMemoryInfo(h).total)
            gpus.append(
                GpuInfo(index=i, name=str(name), memory_bytes=mem, driver=str(driver), pci_id=_pci_id(h, pynvml))
            )
        return gpus, "nvml"
    except Exception as exc:  # NVMLError mid-query (GPU lost, driver reset): report it, detect nothing
        return [], f"NVML query failed: {type(exc).__name__}: {exc}"
    finally:
        pynvml.nvmlShutdown()


def detect_host(cpuinfo: str | Path = CPUINFO) -> HostInfo:
    """CPU model (``cpuinfo``, else :mod:`platform`), cores and memory (psutil), GPUs (NVML)."""
    gpus, how = detect_gpus()
    return HostInfo(
        cpu_model=cpu_model(cpuinfo),
        machine=platform.machine(),
        system=platform.system(),
        logical_cores=psutil.cpu_count(logical=True) or 1,
        physical_cores=psutil.cpu_count(logical=False),
        memory_bytes=int(psutil.virtual_memory().total),
        gpus=gpus,
        gpu_detection=how,
    )


#: Keys :func:`host_profile` accepts as overrides.
OVERRIDE_KEYS = ("tdp_w", "idle_w", "usd_per_hour")


def host_profile(overrides: Mapping[str, float] | None = None) -> HardwareProfile:
    """The shipped profile matched to this host's CPU, else a ``local`` profile built for it
    (:func:`harness.core.host_match.match_host`), with user ``overrides`` applied: ``tdp_w`` and
    ``idle_w`` in watts, ``usd_per_hour`` in USD per device-hour. An unknown key raises
    ``ValueError`` naming the allowed ones."""
    profile = match_host(detect_host(), load_profiles())
    if overrides:
        unknown = sorted(set(overrides) - set(OVERRIDE_KEYS))
        if unknown:
            raise ValueError(f"unknown profile override(s) {', '.join(unknown)}; allowed: {', '.join(OVERRIDE_KEYS)}")
        profile = apply_overrides(
            profile,
            tdp_w=overrides.get("tdp_w"),
            idle_w=overrides.get("idle_w"),
            usd_per_hour=overrides.get("usd_per_hour"),
        )
    return profile


def host_record(cpu: HardwareProfile, host: HostInfo | None = None) -> dict[str, Any]:
    """The whole host as a run records it (``environment["host"]``): the CPU profile ``cpu`` plus
    each GPU's index, name, memory, PCI id and matched profile id (None with a note when no
    shipped profile matches); see :class:`harness.core.host_match.HostIdentity`."""
    host = host or detect_host()
    return host_identity(host, load_profiles(), cpu).model_dump(mode="json")


def cell_cost_basis(device: str, cpu: HardwareProfile, host: HostInfo | None = None) -> CostBasis:
    """The profiles a cell on ``device`` is priced and metered with (:func:`harness.core.host_match.cost_basis`).

    ``cpu`` is the run's host profile. A ``cpu`` cell uses it alone. A ``cuda[:N]`` cell uses the
    profile of the GPU it ran on (the torch index mapped to NVML's through ``CUDA_VISIBLE_DEVICES``)
    and ``cpu`` as the host it shares with the other GPUs; a GPU that NVML did not report, or that
    no profile matches, gets a placeholder without a price (its note says why). When the caller
    named an accelerator profile for the run (``cpu.kind`` is not ``cpu``), that profile is the
    cell's and no host share is added (none is known).
    """
    if device == "cpu":
        return CostBasis(device="cpu", profile=cpu, share_rule="the cell's device is the host CPU (all of it)")
    if cpu.kind != "cpu":
        return CostBasis(device=device, profile=cpu, share_rule="profile named for the run; host not known")
    host = host or detect_host()
    try:
        nvml_device = f"cuda:{cuda_to_nvml_index(device)}"
        return cost_basis(host, load_profiles(), cpu, nvml_device)
    except (LookupError, ValueError) as exc:
        missing = GpuInfo(index=-1, name=f"{device} (not identified: {exc})")
        return CostBasis(device=device, profile=unmatched_gpu_profile(missing), host_cpu=cpu, share_rule=str(exc))
