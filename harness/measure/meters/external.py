"""External power meter hook (provenance ``measured:external``).

Two sources of watts:

* ``command``: a command that prints the current power in watts (first number on stdout) is
  run every ``period_s`` during the window; samples are integrated by the trapezoid rule.
* ``csv_path``: a CSV written by a wall-plug or PDU logger with header ``timestamp_s,watts``;
  the samples are linearly interpolated and integrated over exactly the window. Timestamps
  must be on the same clock as ``clock`` (default: Unix time, ``time.time``). A CSV that does
  not cover the window gives an invalid reading with a note.
"""

from __future__ import annotations

import csv
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from harness.measure.meters._util import Sampler, integrate_window_j, trapezoid_j
from harness.measure.meters.base import Meter, Reading

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def read_power_csv(path: str | Path) -> list[tuple[float, float]]:
    """(timestamp_s, watts) rows of a CSV with that header; errors name file, line and column."""
    path = Path(path)
    rows: list[tuple[float, float]] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"timestamp_s", "watts"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected header timestamp_s,watts")
        for lineno, row in enumerate(reader, start=2):
            try:
                rows.append((float(row["timestamp_s"]), float(row["watts"])))
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{lineno}: timestamp_s and watts must be numbers, got {row}") from None
    return sorted(rows)


class ExternalMeter(Meter):
    """Power from an external instrument over the window, per ``scope`` (default ``wall``)."""

    name = "external"

    def __init__(
        self,
        *,
        command: str | list[str] | None = None,
        csv_path: str | Path | None = None,
        period_s: float = 1.0,
        scope: str = "wall",
        clock: Callable[[], float] = time.time,
        timeout_s: float = 5.0,
    ) -> None:
        if (command is None) == (csv_path is None):
            raise ValueError("ExternalMeter needs exactly one of command= or csv_path=")
        self.command = shlex.split(command) if isinstance(command, str) else command
        self.csv_path = Path(csv_path) if csv_path is not None else None
        self.period_s = period_s
        self.scope = scope
        self.clock = clock
        self.timeout_s = timeout_s
        self.selection_note = ""
        self._samples: list[tuple[float, float]] = []
        self._lock = threading.Lock()
        self._done = False

    def read_command_w(self) -> float:
        """Run the command once; the first number it prints is watts."""
        assert self.command is not None
        res = subprocess.run(self.command, capture_output=True, text=True, timeout=self.timeout_s, check=True)
        m = _NUMBER.search(res.stdout)
        if m is None:
            raise ValueError(f"power command {self.command!r} printed no number: {res.stdout[:200]!r}")
        return float(m.group())

    def _sample(self) -> None:
        w = self.read_command_w()
        with self._lock:
            self._samples.append((self.clock(), w))

    def __enter__(self) -> ExternalMeter:
        self._samples, self._done = [], False
        self._t0 = self.clock()
        if self.command is not None:
            self._sampler = Sampler(self._sample, self.period_s, "external-meter")
            self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.command is not None:
            self._sampler.stop()
        self._t1 = self.clock()
        self._done = True

    def collect(self) -> list[Reading]:
        if not self._done:
            raise RuntimeError("ExternalMeter.collect() called before the window closed")
        window_s = self._t1 - self._t0
        valid, note = window_s > 0, ""
        extra: dict[str, object] = {}
        if self.selection_note:
            extra["selection"] = self.selection_note
        if self.csv_path is not None:
            samples = read_power_csv(self.csv_path)
            extra["source"] = str(self.csv_path)
            try:
                energy_j = integrate_window_j(samples, self._t0, self._t1)
            except ValueError:
                covered = f"{samples[0][0]}..{samples[-1][0]}" if samples else "empty"
                energy_j, valid = 0.0, False
                note = f"CSV {self.csv_path} ({covered}) does not cover the window {self._t0}..{self._t1}"
            period = None
        else:
            samples = self._samples
            extra["source"] = " ".join(self.command or [])
            span = samples[-1][0] - samples[0][0] if len(samples) >= 2 else 0.0
            if span > 0:
                energy_j = trapezoid_j(samples) / span * window_s
            else:
                energy_j, valid, note = 0.0, False, "fewer than two samples over the window"
            period = self.period_s
        extra["n_samples"] = len(samples)
        power_w = energy_j / window_s if window_s > 0 else 0.0
        return [
            Reading(
                quantity=quantity,
                value=value,
                unit=unit,
                provenance="measured:external",
                scope=self.scope,
                period_s=period,
                window_s=window_s,
                valid=valid,
                note=note,
                extra=extra,
            )
            for quantity, value, unit in (("energy", energy_j, "J"), ("power", power_w, "W"))
        ]
