"""CPU package and DRAM energy through Linux powercap RAPL (``/sys/class/powercap/intel-rapl*``).

Reads ``energy_uj`` of every package zone (``intel-rapl:N``, name ``package-N``) and its
``dram`` subzone, at the window's start and end and every ``poll_s`` in between so that a
counter wrap is seen. A counter runs from 0 to ``max_energy_range_uj`` and then wraps; a
reading lower than the previous one is a wrap: ``delta = value + max_range - previous``.
Core/uncore subzones are not read (they are part of the package). AMD exposes the same tree
on Linux >= 5.8. Provenance ``measured:rapl``.

``energy_uj`` is often root-only or absent in VMs: :meth:`RaplMeter.available` then answers
``False`` with the reason.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from harness.measure.meters._util import Clock, Sampler, now_ns
from harness.measure.meters.base import Meter, Reading

DEFAULT_ROOT = Path("/sys/class/powercap")


@dataclass(frozen=True)
class RaplZone:
    path: Path
    scope: str  # "package-0", "dram-0"
    max_range_uj: int

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


def discover_zones(root: str | Path = DEFAULT_ROOT) -> list[RaplZone]:
    """Package and DRAM zones below ``root``; raises ``OSError`` when unreadable."""
    root = Path(root)
    zones: list[RaplZone] = []
    for pkg in sorted(root.glob("intel-rapl:*")):
        if not re.fullmatch(r"intel-rapl:\d+", pkg.name):
            continue
        pkg_idx = pkg.name.split(":")[1]
        name = (pkg / "name").read_text().strip()
        if name.startswith("package"):
            zones.append(_zone(pkg, name if "-" in name else f"package-{pkg_idx}"))
        for sub in sorted(pkg.glob(f"intel-rapl:{pkg_idx}:*")):
            if (sub / "name").read_text().strip() == "dram":
                zones.append(_zone(sub, f"dram-{pkg_idx}"))
    return zones


def _zone(path: Path, scope: str) -> RaplZone:
    max_range = int((path / "max_energy_range_uj").read_text().strip())
    zone = RaplZone(path=path, scope=scope, max_range_uj=max_range)
    zone.read_uj()  # PermissionError surfaces here
    return zone


def counter_delta_uj(previous: int, current: int, max_range_uj: int) -> int:
    """Energy between two readings of a counter that wraps at ``max_range_uj`` (at most one wrap)."""
    if current >= previous:
        return current - previous
    return current + max_range_uj - previous


class RaplMeter(Meter):
    """Package and DRAM energy (J) and mean power (W) per zone over the window."""

    name = "rapl"

    def __init__(self, root: str | Path = DEFAULT_ROOT, *, poll_s: float = 5.0, clock: Clock = now_ns) -> None:
        self.root = Path(root)
        self.poll_s = poll_s
        self.clock = clock
        self.selection_note = ""
        self._lock = threading.Lock()
        self._zones: list[RaplZone] = []
        self._last: dict[str, int] = {}
        self._acc: dict[str, int] = {}
        self._wraps: dict[str, int] = {}
        self._t0 = self._t1 = 0
        self._done = False

    @classmethod
    def available(cls, root: str | Path = DEFAULT_ROOT) -> tuple[bool, str]:
        root = Path(root)
        if not root.is_dir():
            return False, f"{root} does not exist (no powercap driver; typical in VMs and containers)"
        try:
            zones = discover_zones(root)
        except PermissionError as exc:
            return False, f"RAPL counters not readable (permission): {exc.filename or exc}"
        except OSError as exc:
            return False, f"RAPL counters not readable: {exc}"
        if not zones:
            return False, f"no intel-rapl package zones under {root}"
        return True, ""

    def _poll(self) -> None:
        with self._lock:
            for z in self._zones:
                v = z.read_uj()
                if z.scope in self._last:
                    prev = self._last[z.scope]
                    if v < prev:
                        self._wraps[z.scope] += 1
                    self._acc[z.scope] += counter_delta_uj(prev, v, z.max_range_uj)
                self._last[z.scope] = v

    def __enter__(self) -> RaplMeter:
        self._zones = discover_zones(self.root)
        if not self._zones:
            raise RuntimeError(f"no RAPL zones under {self.root}")
        self._last, self._acc = {}, {z.scope: 0 for z in self._zones}
        self._wraps = {z.scope: 0 for z in self._zones}
        self._done = False
        self._sampler = Sampler(self._poll, self.poll_s, "rapl-meter")
        self._t0 = self.clock()
        self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sampler.stop()
        self._t1 = self.clock()
        self._done = True

    def collect(self) -> list[Reading]:
        if not self._done:
            raise RuntimeError("RaplMeter.collect() called before the window closed")
        window_s = (self._t1 - self._t0) / 1e9
        out = []
        for z in self._zones:
            energy_j = self._acc[z.scope] / 1e6
            extra: dict[str, object] = {"zone": str(z.path), "wraps": self._wraps[z.scope]}
            if self.selection_note:
                extra["selection"] = self.selection_note
            for quantity, value, unit in (
                ("energy", energy_j, "J"),
                ("power", energy_j / window_s if window_s > 0 else 0.0, "W"),
            ):
                out.append(
                    Reading(
                        quantity=quantity,
                        value=value,
                        unit=unit,
                        provenance="measured:rapl",
                        scope=z.scope,
                        period_s=self.poll_s,
                        window_s=window_s,
                        valid=window_s > 0,
                        note="" if window_s > 0 else "empty window",
                        extra=extra,
                    )
                )
        return out
