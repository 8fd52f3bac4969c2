"""Worker processes: why one ended, killing one with everything it started, and tying a
worker's life to its parent's.

* :func:`die_with_parent` (called first thing in a worker) asks Linux to SIGKILL the worker
  when its parent dies, whatever kills the parent (SIGKILL included); elsewhere it is a no-op.
* :func:`exit_reason` says why a worker ended; a SIGKILL is what the out-of-memory killer
  sends, so it is reported as "possibly out of memory" unless the kernel's OOM kill counter of
  this cgroup (:func:`oom_kill_count`) shows an OOM kill, then as "out of memory".
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

import psutil

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def kill_all(procs: list[psutil.Process]) -> None:
    """SIGKILL every process of ``procs`` that still exists and wait up to 5 s for them."""
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=5)


def kill_tree(pid: int) -> None:
    """SIGKILL process ``pid`` and all its descendants (nothing if it is gone)."""
    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    try:
        children = parent.children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    kill_all(children + [parent])


def die_with_parent(parent_pid: int | None) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux ``PR_SET_PDEATHSIG``),
    and exit at once if the parent ``parent_pid`` is already gone. No-op off Linux."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no libc symbol: the parent's own clean-up still applies
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # the parent died before the request took effect


def _cgroup_memory_files() -> list[Path]:
    """Files holding this process's cgroup OOM kill counter (v2 ``memory.events``, v1
    ``memory.oom_control``), most specific first."""
    out: list[Path] = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, rel = parts
        rel = rel.lstrip("/")
        if hid == "0" and controllers == "":
            out.append(Path("/sys/fs/cgroup") / rel / "memory.events")
        elif "memory" in controllers.split(","):
            out.append(Path("/sys/fs/cgroup/memory") / rel / "memory.oom_control")
            out.append(Path("/sys/fs/cgroup/memory/memory.oom_control"))
    return out


def oom_kill_count() -> int | None:
    """How many processes the OOM killer has killed in this process's memory cgroup (a
    counter), or None where no counter can be read."""
    for f in _cgroup_memory_files():
        try:
            text = f.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
    return None


def exit_reason(code: int | None, oom_killed: bool | None = None) -> str:
    """Why a worker ended without reporting, from its exit code (negative: killed by a signal).

    ``oom_killed``: whether the cgroup's OOM kill counter rose while the worker ran (None:
    unknown); it decides between "out of memory" and "possibly out of memory" for a SIGKILL."""
    if code is None:
        return "worker did not exit"
    if code < 0:
        sig = -code
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = ""
        if sig == signal.SIGKILL:
            hint = " (out of memory: the OOM killer acted)" if oom_killed else " (possibly out of memory)"
        return f"worker killed by {name}{hint}"
    return f"worker exited with code {code} before reporting a result"
