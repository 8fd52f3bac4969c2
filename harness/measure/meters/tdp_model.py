"""Power estimated from a TDP model where no counter exists (provenance ``estimated:tdp-model``).

    utilisation = CPU time of the process tree over the window / (window_s x logical cores)
    P_w         = idle_w + (tdp_w - idle_w) x utilisation
    energy_j    = P_w x window_s

CPU time is user + system of the process, of its live descendants, and of the children it has
already waited for (psutil), differenced between the window's start and end. A child that
started and exited inside the window without being waited for is not counted. TDP, idle power
and the core count come from a hardware profile (or overrides); the formula, the inputs and
the profile id are recorded in each reading's ``extra``.
"""

from __future__ import annotations

import os

import psutil

from harness.measure.meters._util import Clock, now_ns
from harness.measure.meters.base import Meter, Reading

FORMULA = "P = idle_w + (tdp_w - idle_w) * utilisation; utilisation = tree_cpu_s / (window_s * cores)"


def tree_cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of ``pid``, its waited-for children and its live descendants."""

    proc = psutil.Process(pid if pid is not None else os.getpid())
    t = proc.cpu_times()
    total = t.user + t.system + getattr(t, "children_user", 0.0) + getattr(t, "children_system", 0.0)
    for child in proc.children(recursive=True):
        try:
            ct = child.cpu_times()
            total += ct.user + ct.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


class TdpModelMeter(Meter):
    """Estimated power of a device from its TDP, idle power and the process tree's CPU use."""

    name = "tdp-model"

    def __init__(
        self,
        tdp_w: float,
        idle_w: float,
        logical_cores: int,
        *,
        profile_id: str = "",
        pid: int | None = None,
        scope: str = "cpu",
        clock: Clock = now_ns,
        idle_rule: str = "",
    ) -> None:
        if tdp_w <= 0 or idle_w < 0 or idle_w > tdp_w:
            raise ValueError(f"need 0 <= idle_w <= tdp_w and tdp_w > 0, got idle_w={idle_w}, tdp_w={tdp_w}")
        if logical_cores < 1:
            raise ValueError(f"logical_cores must be >= 1, got {logical_cores}")
        self.tdp_w, self.idle_w, self.logical_cores = float(tdp_w), float(idle_w), int(logical_cores)
        self.profile_id = profile_id
        self.pid = pid
        self.scope = scope
        self.clock = clock
        self.idle_rule = idle_rule  # how idle_w was derived when the profile gives none ("" if given)
        self.selection_note = ""
        self._done = False

    @classmethod
    def from_profile(
        cls,
        profile: object,
        *,
        pid: int | None = None,
        scope: str = "cpu",
        tdp_w: float | None = None,
        idle_w: float | None = None,
        logical_cores: int | None = None,
    ) -> TdpModelMeter:
        """Build from a :class:`~harness.core.hardware.HardwareProfile`; keyword values override it.

        Idle power defaults to 30 % of TDP when the profile gives none (recorded in ``extra``);
        cores default to the profile's ``threads``, else ``cores``, else the host's logical cores.
        """

        tdp = tdp_w if tdp_w is not None else getattr(profile, "tdp_w", None)
        if tdp is None:
            raise ValueError(f"profile {getattr(profile, 'id', '?')!r} has no tdp_w; pass tdp_w=")
        idle = idle_w if idle_w is not None else getattr(profile, "idle_w", None)
        idle_rule = ""
        if idle is None:
            idle, idle_rule = 0.3 * tdp, "idle_w = 0.3 * tdp_w (profile gives no idle power)"
        cores = logical_cores or getattr(profile, "threads", None) or getattr(profile, "cores", None)
        cores = cores or psutil.cpu_count(logical=True) or 1
        return cls(tdp, idle, cores, profile_id=getattr(profile, "id", ""), pid=pid, scope=scope, idle_rule=idle_rule)

    def __enter__(self) -> TdpModelMeter:
        self._done = False
        self._cpu0 = tree_cpu_seconds(self.pid)
        self._t0 = self.clock()
        return self

    def __exit__(self, *exc: object) -> None:
        self._t1 = self.clock()
        self._cpu1 = tree_cpu_seconds(self.pid)
        self._done = True

    def utilisation(self) -> float:
        window_s = (self._t1 - self._t0) / 1e9
        if window_s <= 0:
            return 0.0
        return min(1.0, max(0.0, (self._cpu1 - self._cpu0) / (window_s * self.logical_cores)))

    def collect(self) -> list[Reading]:
        if not self._done:
            raise RuntimeError("TdpModelMeter.collect() called before the window closed")
        window_s = (self._t1 - self._t0) / 1e9
        u = self.utilisation()
        power_w = self.idle_w + (self.tdp_w - self.idle_w) * u
        extra: dict[str, object] = {
            "formula": FORMULA,
            "profile_id": self.profile_id,
            "tdp_w": self.tdp_w,
            "idle_w": self.idle_w,
            "logical_cores": self.logical_cores,
            "tree_cpu_s": self._cpu1 - self._cpu0,
            "utilisation": u,
        }
        if self.idle_rule:
            extra["idle_rule"] = self.idle_rule
        if self.selection_note:
            extra["selection"] = self.selection_note

        def reading(quantity: str, value: float, unit: str, provenance: str = "estimated:tdp-model") -> Reading:
            return Reading(
                quantity=quantity,
                value=value,
                unit=unit,
                provenance=provenance,
                scope=self.scope,
                window_s=window_s,
                valid=window_s > 0,
                note="" if window_s > 0 else "empty window",
                extra=extra,
            )

        return [
            reading("power", power_w, "W"),
            reading("energy", power_w * window_s, "J"),
            reading("utilisation", u, "fraction", provenance="measured:psutil-cpu-times"),
        ]
