"""Choose the meters for a cell and sum their energy honestly.

:func:`select_meters` picks, per device, the best available power source:

* ``cuda[:N]`` -> NVML (energy counter, else power samples); when NVML is unavailable the
  device has no power meter and the reason is recorded (no rule estimates a GPU's use);
* ``cpu`` -> RAPL when readable, else the TDP model of the host profile;

plus one :class:`MemoryMeter`. Each choice and the reason every other candidate was skipped
are kept in :class:`MeterChoice` records and in the chosen meter's readings
(``extra['selection']``).

:func:`energy_summary` adds energy readings up. A total is ``measured`` only if every part is
measured; one estimated part makes the whole total ``estimated`` (the parts keep their own labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.core.metrics import Reading, combine_provenance
from harness.measure.meters.base import Meter
from harness.measure.meters.memory import MemoryMeter
from harness.measure.meters.nvml import NvmlApi, NvmlMeter, cuda_to_nvml_index
from harness.measure.meters.rapl import DEFAULT_ROOT, RaplMeter
from harness.measure.meters.tdp_model import TdpModelMeter


@dataclass(frozen=True)
class MeterChoice:
    device: str
    chosen: str | None
    reason: str
    skipped: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        skipped = "; ".join(f"{k} skipped: {v}" for k, v in self.skipped.items())
        return f"{self.device}: {self.chosen or 'no power meter'} ({self.reason})" + (f"; {skipped}" if skipped else "")


@dataclass
class MeterSelection:
    meters: list[Meter]
    choices: list[MeterChoice]


def select_meters(
    profile: Any,
    devices: list[str],
    *,
    rapl_root: str = str(DEFAULT_ROOT),
    nvml_api: NvmlApi | None = None,
    memory: bool = True,
) -> MeterSelection:
    """Meters for ``devices`` (``cpu``, ``cuda``, ``cuda:N``) with ``profile`` the host CPU profile."""
    meters: list[Meter] = []
    choices: list[MeterChoice] = []
    cuda = [d for d in devices if d == "cuda" or d.startswith("cuda:")]
    unknown = [d for d in devices if d != "cpu" and d not in cuda]
    if unknown:
        raise ValueError(f"unknown device(s) {unknown}; allowed: cpu, cuda, cuda:N")
    if cuda:
        ok, why = NvmlMeter.available(nvml_api)
        if ok:
            indices = sorted({cuda_to_nvml_index(d) for d in cuda})
            m = NvmlMeter(indices, api=nvml_api)
            c = MeterChoice(", ".join(cuda), "nvml", "NVML available")
            m.selection_note = c.describe()
            meters.append(m)
        else:
            c = MeterChoice(", ".join(cuda), None, "no power source for GPUs", {"nvml": why})
        choices.append(c)
    if "cpu" in devices:
        ok, why = RaplMeter.available(rapl_root)
        if ok:
            c = MeterChoice("cpu", "rapl", "RAPL counters readable")
            cpu_meter: Meter = RaplMeter(rapl_root)
        else:
            c = MeterChoice("cpu", "tdp-model", f"estimate from profile {getattr(profile, 'id', '?')!r}", {"rapl": why})
            cpu_meter = TdpModelMeter.from_profile(profile)
        cpu_meter.selection_note = c.describe()  # type: ignore[attr-defined]
        meters.append(cpu_meter)
        choices.append(c)
    if memory:
        meters.append(MemoryMeter(cuda_devices=cuda))
    return MeterSelection(meters, choices)


def default_meters(profile: Any, devices: list[str]) -> list[Meter]:
    """The meters :func:`select_meters` chooses (choices travel in ``extra['selection']``)."""
    return select_meters(profile, devices).meters


def energy_summary(readings: list[Reading]) -> dict[str, Any]:
    """Total energy (J) and mean power (W) over the window from the ``energy`` readings.

    Returns ``energy_j``, ``power_w``, ``window_s``, ``provenance`` (weakest of the parts),
    ``valid`` (all parts valid), ``notes`` and ``components`` (scope, energy_j, power_w,
    provenance, valid). With no energy reading, values are ``None`` and ``valid`` is false.
    """
    parts = [r for r in readings if r.quantity == "energy"]
    if not parts:
        return {
            "energy_j": None,
            "power_w": None,
            "window_s": None,
            "provenance": None,
            "valid": False,
            "notes": ["no energy reading"],
            "components": [],
        }
    window_s = max((r.window_s or 0.0) for r in parts)
    energy_j = sum(r.value for r in parts)
    valid = all(r.valid for r in parts)
    notes = [f"{r.scope}: {r.note}" for r in parts if r.note]
    return {
        "energy_j": energy_j,
        "power_w": energy_j / window_s if window_s > 0 else None,
        "window_s": window_s,
        "provenance": combine_provenance([r.provenance for r in parts]),
        "valid": valid,
        "notes": notes,
        "components": [
            {
                "scope": r.scope,
                "energy_j": r.value,
                "power_w": r.value / r.window_s if r.window_s else None,
                "provenance": r.provenance,
                "valid": r.valid,
            }
            for r in parts
        ],
    }
