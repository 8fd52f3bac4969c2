"""Which hardware profile a detected host is: matching by name, or a ``local`` profile.

:func:`match_host` matches what a machine reports (:class:`HostInfo`, detected by
:mod:`harness.measure.host`) to a shipped profile by its aliases (CUDA devices to their GPU
profile, the CPU to its CPU profile); a CPU without a profile gets :func:`local_profile`, whose
TDP and price are estimated by stated rules and flagged so. Pure functions: no detection here.
"""

from __future__ import annotations

import re
from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from harness.core.hardware import HardwareProfile, Price

#: Default wattage rule for ``local`` CPU profiles (see :func:`local_profile`).
LOCAL_W_PER_CORE = 7.0


LOCAL_MIN_TDP_W = 10.0


LOCAL_IDLE_FRACTION = 0.3


class GpuInfo(BaseModel):
    """One GPU as the host reports it; ``memory_bytes`` in bytes, ``driver`` the driver version."""

    model_config = ConfigDict(frozen=True)

    index: int
    name: str
    memory_bytes: int | None = None
    driver: str | None = None


class HostInfo(BaseModel):
    """What a machine reports about itself (detected by :mod:`harness.measure.host`)."""

    model_config = ConfigDict(frozen=True)

    cpu_model: str
    machine: str
    system: str
    logical_cores: int
    physical_cores: int | None
    memory_bytes: int
    gpus: list[GpuInfo] = Field(default_factory=list)
    gpu_detection: str = ""


def _norm(s: str) -> str:
    s = s.lower()
    s = re.sub(r"\((r|tm|c)\)", " ", s)
    s = re.sub(r"@.*$", " ", s)
    s = re.sub(r"\b(cpu|processor|nvidia|amd|intel|tesla)\b", " ", s)
    s = re.sub(r"[^a-z0-9+]+", " ", s)
    return " ".join(s.split())


def _matches(reported: str, profile: HardwareProfile) -> bool:
    rep = f" {_norm(reported)} "
    for cand in [*profile.aliases, profile.model]:
        c = _norm(cand)
        if c and f" {c} " in rep:
            return True
    return False


def estimated_thread_price(profiles: dict[str, HardwareProfile] | None) -> tuple[float, str] | None:
    """Median on-demand USD per hardware thread-hour over the shipped CPU profiles with a price
    (cloud vCPUs are hardware threads), and a description of the rule."""
    rates = sorted(
        p.prices[-1].usd_per_device_hour / p.threads
        for p in (profiles or {}).values()
        if p.kind == "cpu" and p.prices and p.threads
    )
    if not rates:
        return None
    mid = len(rates) // 2
    median = rates[mid] if len(rates) % 2 else (rates[mid - 1] + rates[mid]) / 2
    ids = ", ".join(sorted(p.id for p in (profiles or {}).values() if p.kind == "cpu" and p.prices and p.threads))
    return median, f"estimate: median on-demand USD per hardware thread-hour of shipped CPU profiles ({ids})"


def local_profile(host: HostInfo, profiles: dict[str, HardwareProfile] | None = None) -> HardwareProfile:
    """A ``local`` CPU profile built from what was detected; power and price are not from a source.

    Rule (recorded in ``notes`` and in ``estimated``): ``tdp_w = max(10, 7 W x physical cores)``
    and ``idle_w = 0.3 x tdp_w``. Price: logical cores x the median USD per thread-hour of the
    shipped CPU profiles (:func:`estimated_thread_price`), flagged uncertain; override it with
    :func:`apply_overrides` for a real figure.
    """
    cores = host.physical_cores or max(1, host.logical_cores // 2)
    tdp = max(LOCAL_MIN_TDP_W, LOCAL_W_PER_CORE * cores)
    idle = round(LOCAL_IDLE_FRACTION * tdp, 3)
    slug = re.sub(r"[^a-z0-9]+", "-", _norm(host.cpu_model)).strip("-")[:48] or "cpu"
    prices = []
    rate = estimated_thread_price(profiles)
    if rate is not None:
        prices.append(
            Price(
                provider="estimate",
                instance=f"{host.logical_cores} hardware threads",
                usd_per_device_hour=round(rate[0] * host.logical_cores, 6),
                date=date.today().isoformat(),
                source=rate[1],
                uncertain=True,
            )
        )
    return HardwareProfile(
        id=f"local-{slug}",
        kind="cpu",
        vendor="unknown",
        model=host.cpu_model,
        memory_gb=round(host.memory_bytes / 1e9, 3),
        tdp_w=tdp,
        idle_w=idle,
        cores=cores,
        threads=host.logical_cores,
        supported_backends=["null", "torch", "onnxruntime"],
        sources=["detected: /proc/cpuinfo, psutil"],
        notes=(
            f"local profile generated from the host; tdp_w = max({LOCAL_MIN_TDP_W:g}, "
            f"{LOCAL_W_PER_CORE:g} W x {cores} physical cores), idle_w = {LOCAL_IDLE_FRACTION:g} x tdp_w "
            "(estimated rule, not a datasheet value); price = logical cores x median cloud price per "
            "hardware thread (estimate; set a real one with an override)"
        ),
        estimated=["tdp_w", "idle_w"],
        prices=prices,
    )


def match_host(host: HostInfo, profiles: dict[str, HardwareProfile], device: str = "cpu") -> HardwareProfile:
    """The shipped profile for ``device`` of this host, else a ``local`` profile (CPU only).

    ``device`` is ``cpu`` or ``cuda:N``. CPUs match on the model string (``model`` or one of the
    ``aliases`` appears, normalised, in ``/proc/cpuinfo``'s model name); GPUs on the NVML name.
    An unmatched GPU raises ``LookupError`` (no rule to estimate a GPU's specs).
    """
    if device == "cpu":
        for p in profiles.values():
            if p.kind == "cpu" and _matches(host.cpu_model, p):
                return p
        return local_profile(host, profiles)
    m = re.fullmatch(r"cuda(?::(\d+))?", device)
    if not m:
        raise ValueError(f"unknown device {device!r}; allowed: cpu, cuda, cuda:N")
    idx = int(m.group(1) or 0)
    gpu = next((g for g in host.gpus if g.index == idx), None)
    if gpu is None:
        raise LookupError(f"device {device} not found on this host ({host.gpu_detection or 'no GPUs'})")
    for p in profiles.values():
        if p.kind == "gpu" and _matches(gpu.name, p):
            return p
    known = ", ".join(sorted(k for k, p in profiles.items() if p.kind == "gpu"))
    raise LookupError(f"no hardware profile matches GPU {gpu.name!r}; known GPU profiles: {known}")
