"""NVIDIA GPU energy, power and memory through NVML (``nvidia-ml-py``).

Energy is the difference of ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since driver load,
Volta and newer) across the window: provenance ``measured:nvml-energy``. Where the counter is
not supported, ``nvmlDeviceGetPowerUsage`` (mW) is sampled on a background thread and
integrated by the trapezoid rule: provenance ``measured:nvml-power-samples``, with the sampling
period recorded. Note that on Ampere and newer the power reading is itself a ~1 s average and
covers only part of the runtime (arXiv 2312.02741), which is why the counter is preferred.

The counter updates every ~20-100 ms: a window shorter than ``min_window_s`` (default 0.1 s)
gives readings with ``valid=False`` and a note, never a zero.

All NVML access goes through :class:`NvmlApi`, one narrow seam; tests pass a fake.
"""

from __future__ import annotations

import os
import threading
from typing import Protocol

from harness.measure.meters._util import Clock, Sampler, now_ns, trapezoid_j
from harness.measure.meters.base import Meter, Reading


class NvmlApi(Protocol):
    """The few NVML calls the meter needs, by device index (NVML's numbering)."""

    def init(self) -> None: ...

    def shutdown(self) -> None: ...

    def device_count(self) -> int: ...

    def energy_mj(self, index: int) -> int | None:
        """Total energy since driver load in mJ, or ``None`` when the device lacks the counter."""
        ...

    def power_mw(self, index: int) -> int: ...

    def memory_used_bytes(self, index: int) -> int: ...


class PynvmlApi:
    """:class:`NvmlApi` over ``pynvml``; imported lazily."""

    def __init__(self) -> None:
        self._handles: dict[int, object] = {}

    def init(self) -> None:
        # deferred: the NVML bindings load only where a GPU is detected or metered
        import pynvml

        pynvml.nvmlInit()

    def shutdown(self) -> None:
        # deferred: the NVML bindings load only where a GPU is detected or metered
        import pynvml

        self._handles.clear()
        pynvml.nvmlShutdown()

    def _h(self, index: int) -> object:
        # deferred: the NVML bindings load only where a GPU is detected or metered
        import pynvml

        if index not in self._handles:
            self._handles[index] = pynvml.nvmlDeviceGetHandleByIndex(index)
        return self._handles[index]

    def device_count(self) -> int:
        # deferred: the NVML bindings load only where a GPU is detected or metered
        import pynvml

        return int(pynvml.nvmlDeviceGetCount())

    def energy_mj(self, index: int) -> int | None:
        # deferred: the NVML bindings load only where a GPU is detected or metered
        import pynvml

        try:
            return int(pynvml.nvmlDeviceGetTotalEnergyConsumption(self._h(index)))
        except pynvml.NVMLError_NotSupported:
            return None

    def power_mw(self, index: int) -> int:
        # deferred: the NVML bindings load only where a GPU is detected or metered
        import pynvml

        return int(pynvml.nvmlDeviceGetPowerUsage(self._h(index)))

    def memory_used_bytes(self, index: int) -> int:
        # deferred: the NVML bindings load only where a GPU is detected or metered
        import pynvml

        return int(pynvml.nvmlDeviceGetMemoryInfo(self._h(index)).used)


def cuda_to_nvml_index(device: str, visible: str | None = None) -> int:
    """NVML index of a torch-style ``cuda:N`` device, honouring ``CUDA_VISIBLE_DEVICES``.

    Only integer ``CUDA_VISIBLE_DEVICES`` lists are mapped; UUID lists raise ``ValueError``.
    """
    if device == "cuda":
        n = 0
    elif device.startswith("cuda:") and device[5:].isdigit():
        n = int(device[5:])
    else:
        raise ValueError(f"not a CUDA device: {device!r}; expected cuda or cuda:N")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    if not visible:
        return n
    ids = [v.strip() for v in visible.split(",") if v.strip()]
    if not all(v.isdigit() for v in ids):
        raise ValueError(f"CUDA_VISIBLE_DEVICES={visible!r} is not a list of integers; pass NVML indices")
    if n >= len(ids):
        raise ValueError(f"{device} is not visible (CUDA_VISIBLE_DEVICES={visible!r})")
    return int(ids[n])


class NvmlMeter(Meter):
    """Energy, mean power and peak used memory of the given GPUs over the window.

    ``indices`` are NVML device indices (see :func:`cuda_to_nvml_index`). ``period_s`` is the
    sampling period for power (fallback path) and memory. ``clock`` returns ns (perf counter).
    """

    name = "nvml"

    def __init__(
        self,
        indices: list[int],
        *,
        api: NvmlApi | None = None,
        period_s: float = 0.05,
        min_window_s: float = 0.1,
        clock: Clock = now_ns,
    ) -> None:
        if not indices:
            raise ValueError("NvmlMeter needs at least one GPU index")
        self.indices = list(indices)
        self.api: NvmlApi = api if api is not None else PynvmlApi()
        self.period_s = period_s
        self.min_window_s = min_window_s
        self.clock = clock
        self.selection_note = ""
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._e0: dict[int, int | None] = {}
        self._e1: dict[int, int | None] = {}
        self._power: dict[int, list[tuple[float, float]]] = {i: [] for i in self.indices}
        self._mem_peak: dict[int, int] = {i: 0 for i in self.indices}
        self._t0 = self._t1 = 0
        self._done = False

    @classmethod
    def available(cls, api: NvmlApi | None = None) -> tuple[bool, str]:
        api = api if api is not None else PynvmlApi()
        try:
            api.init()
        except Exception as exc:
            return False, f"NVML unavailable: {exc}"
        try:
            n = api.device_count()
        finally:
            api.shutdown()
        return (n > 0, "" if n > 0 else "NVML reports no devices")

    def _sample(self) -> None:
        t = self.clock() / 1e9
        with self._lock:
            for i in self.indices:
                if self._e0.get(i) is None:
                    self._power[i].append((t, self.api.power_mw(i) / 1e3))
                self._mem_peak[i] = max(self._mem_peak[i], self.api.memory_used_bytes(i))

    def __enter__(self) -> NvmlMeter:
        self._reset()
        self.api.init()
        n = self.api.device_count()
        bad = [i for i in self.indices if not 0 <= i < n]
        if bad:
            self.api.shutdown()
            raise ValueError(f"GPU indices {bad} out of range; NVML sees {n} device(s)")
        self._e0 = {i: self.api.energy_mj(i) for i in self.indices}
        self._sampler = Sampler(self._sample, self.period_s, "nvml-meter")
        self._t0 = self.clock()
        self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._sampler.stop()
            self._t1 = self.clock()
            self._e1 = {i: self.api.energy_mj(i) if self._e0[i] is not None else None for i in self.indices}
        finally:
            self.api.shutdown()
        self._done = True

    def collect(self) -> list[Reading]:
        if not self._done:
            raise RuntimeError("NvmlMeter.collect() called before the window closed")
        window_s = (self._t1 - self._t0) / 1e9
        short = window_s < self.min_window_s
        note_short = (
            f"window {window_s:.3f} s is shorter than the counter update period "
            f"(~{self.min_window_s:g} s): not measurable"
            if short
            else ""
        )
        out: list[Reading] = []
        for i in self.indices:
            scope = f"gpu:{i}"
            extra: dict[str, object] = {"nvml_index": i}
            if self.selection_note:
                extra["selection"] = self.selection_note
            e0, e1 = self._e0[i], self._e1[i]
            if e0 is not None and e1 is not None:
                energy_j = (e1 - e0) / 1e3
                prov, period, note = "measured:nvml-energy", None, note_short
                valid = not short and energy_j >= 0
                if energy_j < 0:
                    note = "energy counter went backwards (driver reloaded?)"
            else:
                samples = self._power[i]
                valid = not short and len(samples) >= 2
                note = note_short or ("" if len(samples) >= 2 else "fewer than two power samples")
                if len(samples) >= 2 and samples[-1][0] > samples[0][0]:
                    mean_w = trapezoid_j(samples) / (samples[-1][0] - samples[0][0])
                else:
                    mean_w = samples[0][1] if samples else 0.0
                energy_j = mean_w * window_s
                prov, period = "measured:nvml-power-samples", self.period_s
                note = (note + "; " if note else "") + (
                    "integrated nvmlDeviceGetPowerUsage samples (no energy counter); "
                    "the driver's power value is itself an average"
                )
                extra = {**extra, "n_samples": len(samples)}
            power_w = energy_j / window_s if window_s > 0 else 0.0
            for quantity, value, unit in (("energy", energy_j, "J"), ("power", power_w, "W")):
                out.append(
                    Reading(
                        quantity=quantity,
                        value=value,
                        unit=unit,
                        provenance=prov,
                        scope=scope,
                        period_s=period,
                        window_s=window_s,
                        valid=valid,
                        note=note,
                        extra=extra,
                    )
                )
            out.append(
                Reading(
                    quantity="device_memory_peak",
                    value=float(self._mem_peak[i]),
                    unit="B",
                    provenance="measured:nvml-memory",
                    scope=scope,
                    period_s=self.period_s,
                    window_s=window_s,
                    note="peak of sampled nvmlDeviceGetMemoryInfo.used (whole device, all processes)",
                    extra=extra,
                )
            )
        return out
