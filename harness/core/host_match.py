"""Which hardware profiles a detected host is made of: one CPU profile plus N accelerator profiles.

:func:`match_host` matches what a machine reports (:class:`HostInfo`, detected by
:mod:`harness.measure.host`) to a shipped profile: the CPU by its model string (a CPU without a
profile gets :func:`local_profile`, whose TDP and price are estimated by stated rules and
flagged so), each GPU by :func:`match_gpu` (PCI id, else the exact NVML name among the
profile's aliases; a GPU without a profile gets :func:`unmatched_gpu_profile`: its name and
memory, no price, a note saying so). :func:`host_identity` is the whole host as recorded in a
run's environment, and :func:`cost_basis` says which profiles price a cell on a given device
and the share of the host CPU it carries; :func:`recorded_profile_id` recovers the GPU profile of
a cell recorded before cells were priced per device. Pure functions: no detection here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

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
    pci_id: str | None = Field(default=None, description="PCI vendor:device, lowercase hex (10de:2335)")


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


def match_gpu(gpu: GpuInfo, profiles: dict[str, HardwareProfile]) -> HardwareProfile | None:
    """The shipped GPU profile of ``gpu``: the one listing its PCI id, else the one whose model or an
    alias equals its NVML name (normalised: case, punctuation and the words NVIDIA/Tesla ignored);
    ``None`` when none or several match (an NVML name like "NVIDIA H200 NVL" is not an "NVIDIA H200")."""
    gpus = [p for p in profiles.values() if p.kind == "gpu"]
    if gpu.pci_id:
        by_pci = [p for p in gpus if gpu.pci_id.lower() in p.pci_ids]
        if len(by_pci) == 1:
            return by_pci[0]
    name = _norm(gpu.name)
    by_name = [p for p in gpus if name and name in {_norm(a) for a in [*p.aliases, p.model]}]
    return by_name[0] if len(by_name) == 1 else None


def unmatched_gpu_profile(gpu: GpuInfo) -> HardwareProfile:
    """A placeholder profile for a GPU no shipped profile matches: its reported name and memory,
    no peak, no power figures and no price (so no cost is computed for it), and a note saying why."""
    slug = re.sub(r"[^a-z0-9]+", "-", gpu.name.lower()).strip("-")[:48] or "gpu"
    pci = f", PCI id {gpu.pci_id}" if gpu.pci_id else ""
    return HardwareProfile(
        id=f"unmatched-gpu-{slug}",
        kind="gpu",
        vendor="NVIDIA" if "nvidia" in gpu.name.lower() or gpu.pci_id and gpu.pci_id.startswith("10de:") else "unknown",
        model=gpu.name,
        aliases=[gpu.name],
        memory_gb=round(gpu.memory_bytes / 1e9, 3) if gpu.memory_bytes else None,
        sources=["detected: NVML"],
        notes=(
            f"no shipped hardware profile matches the GPU {gpu.name!r}{pci}; no price and no specs, so its "
            "cells carry no cost (add the NVML name to a profile's aliases, or its PCI id to pci_ids)"
        ),
    )


class Accelerator(BaseModel):
    """One accelerator of a host as recorded in a run: what it reported and the profile it matched
    (``profile_id`` is None for an unmatched device; ``note`` says why)."""

    model_config = ConfigDict(frozen=True)

    device: str = Field(description="the device string cells use for it (cuda:N)")
    index: int
    name: str
    memory_bytes: int | None = None
    pci_id: str | None = None
    profile_id: str | None = None
    note: str = ""


class HostIdentity(BaseModel):
    """The whole host: its CPU profile and each accelerator's profile (recorded in a run's environment)."""

    model_config = ConfigDict(frozen=True)

    cpu_model: str
    cpu_profile_id: str
    accelerators: list[Accelerator] = Field(default_factory=list)
    detection: str = Field(default="", description="how accelerators were detected, or why none could be")


def host_identity(host: HostInfo, profiles: dict[str, HardwareProfile], cpu: HardwareProfile) -> HostIdentity:
    """``host`` as one CPU profile (``cpu``, as matched or overridden) plus its GPUs' profiles."""
    accs = []
    for g in host.gpus:
        p = match_gpu(g, profiles)
        accs.append(
            Accelerator(
                device=f"cuda:{g.index}",
                index=g.index,
                name=g.name,
                memory_bytes=g.memory_bytes,
                pci_id=g.pci_id,
                profile_id=p.id if p is not None else None,
                note="" if p is not None else unmatched_gpu_profile(g).notes,
            )
        )
    return HostIdentity(
        cpu_model=host.cpu_model, cpu_profile_id=cpu.id, accelerators=accs, detection=host.gpu_detection
    )


class CostBasis(BaseModel):
    """What a cell on ``device`` is priced and metered with.

    ``profile`` is the device's own profile (the host CPU's for a ``cpu`` cell, the accelerator's
    for ``cuda:N``). ``host_cpu`` and ``host_share`` are the host CPU profile and the fraction of it
    an accelerator cell carries (``1 / number of accelerators``; 0 and None for a CPU cell, which
    is the CPU). ``share_rule`` states the rule in words for the metrics' methods.
    """

    model_config = ConfigDict(frozen=True)

    device: str
    profile: HardwareProfile
    host_cpu: HardwareProfile | None = None
    host_share: float = Field(default=0.0, ge=0.0, le=1.0)
    share_rule: str = ""


def cost_basis(host: HostInfo, profiles: dict[str, HardwareProfile], cpu: HardwareProfile, device: str) -> CostBasis:
    """The :class:`CostBasis` of a cell on ``device`` (``cpu``, ``cuda`` or ``cuda:N``; ``cuda`` is
    GPU 0) of ``host``, whose CPU profile is ``cpu``. An unmatched GPU gets
    :func:`unmatched_gpu_profile` (no price); a GPU index the host lacks raises ``LookupError``."""
    if device == "cpu":
        return CostBasis(device="cpu", profile=cpu, share_rule="the cell's device is the host CPU (all of it)")
    acc = match_host(host, profiles, device)
    n = max(1, len(host.gpus))
    return CostBasis(
        device=device,
        profile=acc,
        host_cpu=cpu,
        host_share=1.0 / n,
        share_rule=f"host CPU {cpu.id} / {n} accelerator(s) on the host",
    )


def match_host(host: HostInfo, profiles: dict[str, HardwareProfile], device: str = "cpu") -> HardwareProfile:
    """The shipped profile for ``device`` of this host, else a ``local`` CPU profile or an
    unmatched-GPU placeholder.

    ``device`` is ``cpu``, ``cuda`` or ``cuda:N``. CPUs match on the model string (``model`` or one
    of the ``aliases`` appears, normalised, in ``/proc/cpuinfo``'s model name); GPUs by
    :func:`match_gpu`; a GPU no profile matches gets :func:`unmatched_gpu_profile` (no price, a
    note). A GPU index the host does not have raises ``LookupError``.
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
    return match_gpu(gpu, profiles) or unmatched_gpu_profile(gpu)


def recorded_profile_id(
    environment: Mapping[str, Any], device: str, profile_id: str | None, profiles: dict[str, HardwareProfile]
) -> str | None:
    """The profile a recorded cell ran on: ``profile_id`` as recorded, except for a ``cuda[:N]``
    cell recorded with a CPU profile (records made before cells were priced per device, such as
    the shipped H200 runs, named the host CPU for every cell), whose GPU is looked up in the run's
    ``environment`` (``host.accelerators``, else the ``gpus`` list NVML reported) and matched by
    :func:`match_gpu`. The recorded id is kept where the GPU cannot be identified. ``cuda:N`` is
    taken as NVML index N (the record does not say how ``CUDA_VISIBLE_DEVICES`` was set)."""
    m = re.fullmatch(r"cuda(?::(\d+))?", device)
    recorded = profiles.get(profile_id) if profile_id else None
    if m is None or (recorded is not None and recorded.kind != "cpu"):
        return profile_id
    if recorded is None and profile_id and not profile_id.startswith("local-"):
        return profile_id  # an id this catalogue does not know, not a host CPU's
    idx = int(m.group(1) or 0)
    host = environment.get("host")
    if isinstance(host, Mapping):
        for acc in host.get("accelerators") or []:
            if isinstance(acc, Mapping) and acc.get("index") == idx and acc.get("profile_id"):
                return str(acc["profile_id"])
    for g in environment.get("gpus") or []:
        if isinstance(g, Mapping) and g.get("index") == idx and isinstance(g.get("name"), str):
            found = match_gpu(GpuInfo(index=idx, name=g["name"], pci_id=g.get("pci_id")), profiles)
            if found is not None:
                return found.id
    return profile_id
