"""Host detection: what this machine reports about itself, and the hardware profile it maps to.

The one place that reads ``/proc/cpuinfo``, psutil and NVML about the host. The environment
manifest (:mod:`harness.measure.environment`) and the host profile of every run
(:func:`host_profile`) both come from here. Matching a detected host to a shipped profile,
building a ``local`` profile and applying overrides are pure functions of
:mod:`harness.core.hardware`.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from pathlib import Path

import psutil

from harness.core.hardware import HardwareProfile, apply_overrides, load_profiles
from harness.core.host_match import GpuInfo, HostInfo, match_host

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


def detect_gpus() -> tuple[list[GpuInfo], str]:
    """NVIDIA GPUs via NVML and how they were detected (``"nvml"``, or why none could be)."""
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
            gpus.append(GpuInfo(index=i, name=str(name), memory_bytes=mem, driver=str(driver)))
        return gpus, "nvml"
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
