"""Server-side dynamic batching as a pure policy (Triton / TorchServe style).

The policy owns no threads, no clock and no queue. A *driver* owns those and asks the
policy what to do; the same policy object therefore drives both the real ``online``
scenario (threads, ``perf_counter_ns``) and a discrete-event serving simulation (a virtual
clock). :func:`simulate` below is a minimal reference driver.

API
---
``DynamicBatcher(max_batch_size, max_queue_delay_ns, preferred_batch_sizes=())``
    Immutable policy parameters.

``policy.decide(queue_len, oldest_arrival_ns, now_ns) -> Dispatch | Wait``
    Pure function of its arguments. Call it when a model instance is idle and the queue
    has changed, a previous ``Wait`` deadline has passed, or an instance has just become free.

    * ``Dispatch(size=k)`` -- take the ``k`` oldest queries (FIFO) now and run them as one
      batch on the idle instance (``1 <= k <= min(queue_len, max_batch_size)``).
    * ``Wait(until_ns=t)`` -- do nothing until ``t`` or the next arrival, whichever is
      first, then ask again. ``until_ns=None`` means "until the next arrival" (empty queue).

Rules (the Triton dynamic batcher's, without priorities):

1. Empty queue -> ``Wait(None)``.
2. ``queue_len >= max_batch_size`` -> dispatch ``max_batch_size``.
3. The oldest query has waited ``>= max_queue_delay_ns`` -> dispatch everything queued
   (``min(queue_len, max_batch_size)``), rounded down to the largest preferred size that
   fits when ``preferred_batch_sizes`` is given.
4. ``queue_len`` equals a preferred batch size -> dispatch it now.
5. Otherwise ``Wait(oldest_arrival_ns + max_queue_delay_ns)``.

With ``max_queue_delay_ns == 0`` queries are never held: whatever is queued when an
instance frees up is dispatched at once (up to ``max_batch_size``).

Multiple instances: the driver keeps one idle/busy flag per instance and consults the
policy for an idle one; instances never share a batch. "Arrival" is when the query reached
the server (its ``issued_ns``), not its scheduled time.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Run the ``size`` oldest queued queries as one batch now."""

    size: int


@dataclass(frozen=True, slots=True)
class Wait:
    """Hold until ``until_ns`` (or the next arrival, whichever is first); None = next arrival."""

    until_ns: int | None


Decision = Dispatch | Wait
_WAIT_FOR_ARRIVAL = Wait(None)


@dataclass(frozen=True)
class DynamicBatcher:
    """Immutable dynamic-batching policy; see the module docstring for the rules."""

    max_batch_size: int = 1
    max_queue_delay_ns: int = 0
    preferred_batch_sizes: tuple[int, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if self.max_queue_delay_ns < 0:
            raise ValueError(f"max_queue_delay_ns must be >= 0, got {self.max_queue_delay_ns}")
        bad = [s for s in self.preferred_batch_sizes if not 1 <= s <= self.max_batch_size]
        if bad:
            raise ValueError(f"preferred_batch_sizes {bad} outside 1..max_batch_size ({self.max_batch_size})")
        object.__setattr__(self, "preferred_batch_sizes", tuple(sorted(set(self.preferred_batch_sizes))))
        # precomputed Dispatch objects: decide() allocates nothing on the hot path
        object.__setattr__(self, "_dispatch", tuple(Dispatch(k) for k in range(self.max_batch_size + 1)))

    def formable_sizes(self) -> tuple[int, ...]:
        """Every batch size :meth:`decide` can dispatch, ascending (what a warm-up must cover).

        Without preferred sizes that is ``1..max_batch_size``. With them: the sizes below the
        smallest preferred one (a deadline with few queued), the preferred sizes, and
        ``max_batch_size`` (a full queue); a deadline otherwise rounds down to a preferred size.
        """
        pref = self.preferred_batch_sizes
        if not pref:
            return tuple(range(1, self.max_batch_size + 1))
        return tuple(sorted({*range(1, pref[0]), *pref, self.max_batch_size}))

    def decide(self, queue_len: int, oldest_arrival_ns: int, now_ns: int) -> Decision:
        """What an idle instance should do now (pure; see the module docstring)."""
        if queue_len <= 0:
            return _WAIT_FOR_ARRIVAL
        mb = self.max_batch_size
        if queue_len >= mb:
            return self._dispatch[mb]  # type: ignore[attr-defined,no-any-return]
        deadline = oldest_arrival_ns + self.max_queue_delay_ns
        pref = self.preferred_batch_sizes
        if now_ns >= deadline:
            k = queue_len
            if pref:
                fitting = [s for s in pref if s <= k]
                if fitting:
                    k = fitting[-1]
            return self._dispatch[k]  # type: ignore[attr-defined,no-any-return]
        if pref and queue_len in pref:
            return self._dispatch[queue_len]  # type: ignore[attr-defined,no-any-return]
        return Wait(deadline)


@dataclass(frozen=True)
class SimResult:
    """Per-query outcome of :func:`simulate` (ns on the simulation's clock)."""

    dispatch_ns: np.ndarray
    completed_ns: np.ndarray
    batch_size: np.ndarray
    instance: np.ndarray


def simulate(
    arrivals_ns: Sequence[int] | np.ndarray,
    service_ns: Callable[[int], int],
    policy: DynamicBatcher,
    instances: int = 1,
) -> SimResult:
    """Discrete-event reference driver: queries arrive at ``arrivals_ns`` (sorted), a batch
    of ``k`` takes ``service_ns(k)`` on one of ``instances`` identical instances, and
    ``policy`` decides when to dispatch. Deterministic; no wall clock involved."""
    arr = np.asarray(arrivals_ns, dtype=np.int64)
    n = int(arr.size)
    if n and np.any(np.diff(arr) < 0):
        raise ValueError("arrivals_ns must be sorted")
    if instances < 1:
        raise ValueError(f"instances must be >= 1, got {instances}")
    dispatch = np.full(n, -1, dtype=np.int64)
    completed = np.full(n, -1, dtype=np.int64)
    bsize = np.zeros(n, dtype=np.int64)
    inst_of = np.full(n, -1, dtype=np.int64)
    free_at = [(0, i) for i in range(instances)]  # heap of (time free, instance)
    queue: deque[int] = deque()
    nxt = 0  # next arrival index
    now = 0
    while nxt < n or queue:
        # admit every arrival up to now
        while nxt < n and arr[nxt] <= now:
            queue.append(nxt)
            nxt += 1
        t_free, inst = free_at[0]
        if t_free > now:
            # no idle instance: advance to the next event (instance free or arrival)
            now = t_free if nxt >= n else min(t_free, int(arr[nxt]))
            continue
        if not queue:
            now = int(arr[nxt])
            continue
        d = policy.decide(len(queue), int(arr[queue[0]]), now)
        if isinstance(d, Dispatch):
            heapq.heappop(free_at)
            ids = [queue.popleft() for _ in range(d.size)]
            end = now + int(service_ns(d.size))
            for q in ids:
                dispatch[q], completed[q], bsize[q], inst_of[q] = now, end, d.size, inst
            heapq.heappush(free_at, (end, inst))
            continue
        nxt_arrival = int(arr[nxt]) if nxt < n else None
        cands = [t for t in (d.until_ns, nxt_arrival) if t is not None]
        if not cands:  # pragma: no cover - policy says wait with nothing to wait for
            raise RuntimeError(f"policy {policy!r} waits forever with {len(queue)} queued")
        now = max(now + 1, min(cands))  # Wait deadlines are always in the future
    return SimResult(dispatch, completed, bsize, inst_of)
