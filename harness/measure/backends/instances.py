"""Per-instance state for backends that model instances call from several threads at once.

Scenarios run one thread per model instance (``online``, ``sensor-stream``) against one loaded
backend. Accelerator state that a call mutates (an execution context, a CUDA stream and its
event, output buffers, an IO binding) must then belong to one instance: sharing it lets one
instance overwrite another's outputs or wait for another's work.

:class:`InstancePool` gives each calling thread its own state, created by ``factory`` the first
time that thread needs one, and held for the thread's lifetime. When the thread ends, its state
goes back to the pool and the next new thread takes it, so the threads of a measured run reuse
what warm-up created (nothing is created on the clock once as many threads have run). Two live
threads never hold the same state.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Lease(Generic[T]):
    """A thread's hold on one state; collected with the thread's locals when the thread ends."""

    __slots__ = ("__weakref__", "state")

    def __init__(self, state: T) -> None:
        self.state = state


class InstancePool(Generic[T]):
    """One state per live calling thread (see the module docstring)."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._free: list[T] = []
        self._all: list[T] = []
        self._local = threading.local()

    def get(self) -> T:
        """This thread's state (leased on first call: a free one, else a new one)."""
        lease: _Lease[T] | None = getattr(self._local, "lease", None)
        if lease is None:
            lease = self._lease()
        return lease.state

    def _lease(self) -> _Lease[T]:
        with self._lock:
            state = self._free.pop() if self._free else None
        if state is None:
            state = self._factory()
            with self._lock:
                self._all.append(state)
        lease = _Lease(state)
        weakref.finalize(lease, self._give_back, state)
        self._local.lease = lease
        return lease

    def _give_back(self, state: T) -> None:
        with self._lock:
            if any(s is state for s in self._all):  # not after clear()
                self._free.append(state)

    @property
    def created(self) -> int:
        """States created so far (one per thread that ran at the same time as others)."""
        with self._lock:
            return len(self._all)

    @property
    def free(self) -> int:
        """States waiting for a thread."""
        with self._lock:
            return len(self._free)

    def states(self) -> list[T]:
        """Every state created (for release at close)."""
        with self._lock:
            return list(self._all)

    def clear(self) -> None:
        """Forget every state (the caller releases them); threads that call :meth:`get` again
        get new ones."""
        with self._lock:
            self._all.clear()
            self._free.clear()
        self._local = threading.local()
