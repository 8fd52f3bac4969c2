"""Peak memory over the window.

* Host: peak RSS of the process tree (the process plus its live descendants), sampled every
  ``period_s`` on a background thread (provenance ``measured:psutil-rss``). Peaks shorter than
  the period can be missed; the period is recorded with the reading.
* CUDA: ``torch.cuda.max_memory_allocated`` per device, only when torch is already imported
  by the process and CUDA is available (this module never imports torch). Provenance
  ``measured:torch-cuda-allocator``: memory the caching allocator handed out, not what the
  driver reserved.
"""

from __future__ import annotations

import os
import sys
import threading

from harness.meters._util import Clock, Sampler, now_ns
from harness.meters.base import Meter, Reading


def tree_rss_bytes(pid: int | None = None) -> int:
    """Resident set size of ``pid`` plus its live descendants, in bytes."""
    import psutil

    proc = psutil.Process(pid if pid is not None else os.getpid())
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return int(total)


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

    def __init__(self, *, pid: int | None = None, period_s: float = 0.05,
                 cuda_devices: list[str] | None = None, clock: Clock = now_ns) -> None:
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
        self._sampler = Sampler(self._sample, self.period_s, "memory-meter")
        self._t0 = self.clock()
        self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sampler.stop()
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
        out = [
            Reading(quantity="memory_peak", value=float(self._peak), unit="B", provenance="measured:psutil-rss",
                    scope="process-tree", period_s=self.period_s, window_s=window_s, extra=extra)
        ]
        for d, peak in self._cuda_peaks.items():
            out.append(Reading(quantity="device_memory_peak", value=float(peak), unit="B",
                               provenance="measured:torch-cuda-allocator", scope=d, window_s=window_s,
                               note="torch.cuda.max_memory_allocated over the window"))
        return out
