"""Peak memory.

* Host, default (``period_s=None``): the kernel's resident-set high-water mark of the process
  (``VmHWM`` in ``/proc/<pid>/status``, else ``getrusage``), plus the high-water mark of its
  waited-for children and the current RSS of live descendants (provenance
  ``measured:vmhwm``). No thread runs during the window, so the meter costs nothing on the
  measured path. In the runner's fresh worker process this is the peak of the whole cell
  (model load included), which is what sizing a machine needs.
* Host, sampled (``period_s`` set): peak RSS of the process tree over exactly the window,
  sampled every ``period_s`` on a background thread (provenance ``measured:psutil-rss``). Peaks
  shorter than the period can be missed; the period is recorded with the reading. The sampling
  thread takes CPU and the GIL from the workload it watches.
* CUDA: ``torch.cuda.max_memory_allocated`` per device, only when torch is already imported
  by the process and CUDA is available (this module never imports torch). Provenance
  ``measured:torch-cuda-allocator``: memory the caching allocator handed out, not what the
  driver reserved.
"""

from __future__ import annotations

import os
import sys
import threading

import psutil

from harness.measure.meters._util import Clock, Sampler, now_ns
from harness.measure.meters.base import Meter, Reading


def tree_rss_bytes(pid: int | None = None) -> int:
    """Resident set size of ``pid`` plus its live descendants, in bytes."""

    proc = psutil.Process(pid if pid is not None else os.getpid())
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return int(total)


def high_water_bytes(pid: int | None = None) -> int:
    """Peak resident set of ``pid`` (default: this process) since it started, in bytes, plus
    the peak of its waited-for children (this process only) and the RSS of live descendants."""
    # deferred: resource is POSIX-only
    import resource

    pid = os.getpid() if pid is None else pid
    peak = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if peak == 0 and pid == os.getpid():
        ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = ru if sys.platform == "darwin" else ru * 1024
    if pid == os.getpid():
        ru = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        peak += ru if sys.platform == "darwin" else ru * 1024
    for child in psutil.Process(pid).children(recursive=True):
        try:
            peak += child.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return int(peak)


def _torch_cuda() -> object | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return torch.cuda if torch.cuda.is_available() else None
    except Exception:
        return None


class MemoryMeter(Meter):
    """Peak process-tree RSS (and torch CUDA allocator peak, when applicable) over the window."""

    name = "memory"

    def __init__(
        self,
        *,
        pid: int | None = None,
        period_s: float | None = None,
        cuda_devices: list[str] | None = None,
        clock: Clock = now_ns,
    ) -> None:
        self.pid = pid
        self.period_s = period_s
        self.cuda_devices = list(cuda_devices or [])
        self.clock = clock
        self.selection_note = ""
        self._lock = threading.Lock()
        self._peak = 0
        self._n = 0
        self._done = False

    def _sample(self) -> None:
        rss = tree_rss_bytes(self.pid)
        with self._lock:
            self._peak = max(self._peak, rss)
            self._n += 1

    def __enter__(self) -> MemoryMeter:
        self._peak, self._n, self._done = 0, 0, False
        self._cuda = _torch_cuda() if self.cuda_devices else None
        if self._cuda is not None:
            for d in self.cuda_devices:
                self._cuda.reset_peak_memory_stats(d)  # type: ignore[attr-defined]
        self._sampler = Sampler(self._sample, self.period_s, "memory-meter") if self.period_s else None
        self._t0 = self.clock()
        if self._sampler is not None:
            self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sampler is not None:
            self._sampler.stop()
        else:
            self._peak = high_water_bytes(self.pid)
        self._t1 = self.clock()
        self._cuda_peaks = {}
        if self._cuda is not None:
            for d in self.cuda_devices:
                self._cuda_peaks[d] = int(self._cuda.max_memory_allocated(d))  # type: ignore[attr-defined]
        self._done = True

    def collect(self) -> list[Reading]:
        if not self._done:
            raise RuntimeError("MemoryMeter.collect() called before the window closed")
        window_s = (self._t1 - self._t0) / 1e9
        extra: dict[str, object] = {"n_samples": self._n}
        if self.selection_note:
            extra["selection"] = self.selection_note
        if self.period_s:
            host = Reading(
                quantity="memory_peak",
                value=float(self._peak),
                unit="B",
                provenance="measured:psutil-rss",
                scope="process-tree",
                period_s=self.period_s,
                window_s=window_s,
                extra=extra,
            )
        else:
            host = Reading(
                quantity="memory_peak",
                value=float(self._peak),
                unit="B",
                provenance="measured:vmhwm",
                scope="process-tree",
                window_s=window_s,
                extra=extra,
                note="resident-set high-water mark since the process started (model load included)",
            )
        out = [host]
        for d, peak in self._cuda_peaks.items():
            out.append(
                Reading(
                    quantity="device_memory_peak",
                    value=float(peak),
                    unit="B",
                    provenance="measured:torch-cuda-allocator",
                    scope=d,
                    window_s=window_s,
                    note="torch.cuda.max_memory_allocated over the window",
                )
            )
        return out
