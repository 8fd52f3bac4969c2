"""Worker processes: why one ended, and killing one with everything it started."""

from __future__ import annotations

import signal

import psutil


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
    kill_all(parent.children(recursive=True) + [parent])


def exit_reason(code: int | None) -> str:
    """Why a worker ended without reporting, from its exit code (negative: killed by a signal)."""
    if code is None:
        return "worker did not exit"
    if code < 0:
        sig = -code
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = " (likely killed for lack of memory)" if sig == signal.SIGKILL else ""
        return f"worker killed by {name}{hint}"
    return f"worker exited with code {code} before reporting a result"
