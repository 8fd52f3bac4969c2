"""Open-loop serving with no issuer: model-instance threads read arrivals from the schedule.

:func:`run_schedule` serves queries arriving at absolute times ``arrivals_ns`` (sorted, ns on
``clock``) with ``instances`` model-instance threads batched by a
:class:`~harness.measure.load.batching.DynamicBatcher` policy.

Design
------
No thread issues queries and nothing hands a query from one thread to another. The
pre-generated schedule *is* the server queue: at time ``t`` the queue holds the queries with
arrival ``<= t`` that no instance has claimed yet. Queries are claimed in FIFO order, so every
batch is a contiguous index range. The dynamic batcher runs in the instance threads themselves,
under one lock, leader/follower style:

* one idle instance, the *leader*, works out from the schedule the first time the policy would
  dispatch (:func:`first_dispatch`: the arrival that completes a full or preferred batch, or
  the oldest query's ``max_queue_delay``) and blocks until then (GIL released, no spin, timer
  slack 1 ns: :func:`harness.core.clock.sleep_until_ns`). It never wakes for an arrival that
  cannot change the decision;
* other idle instances block on a condition until the leader claims a batch and hands the
  lead to one of them;
* an instance that finishes a batch takes the lead at once when nobody holds it, so under
  load it claims the next batch without blocking or waking another thread.

While a model runs, the harness has nothing runnable in the process: no issuer spins, no
batcher thread polls. Before the schedule starts, every live object is frozen out of the garbage
collector (``gc.freeze``, :func:`freeze_heap`): a collection while queries are timed scans only
what was allocated since, so the harness's own heap never causes a pause that holds the GIL. ``dispatch`` and ``completed`` are taken in the instance thread right
around ``infer``.

``seen_ns`` (reported as ``issued_ns``, the time the query reached the server): a query that an
idle leader was blocked waiting for is seen when the leader woke (its lag behind the arrival is
the harness's issue delay); every other query was already in the queue at its arrival
(``seen = arrival``), including queries that arrived while every instance was busy or while
the leader waited out a batching delay that they could not shorten. The batching delay counts
from the arrival, as Triton's counts from when a request reached the server.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.core.clock import now_ns, precise_timer_slack, sleep_until_ns
from harness.measure.load.batching import Dispatch, DynamicBatcher

#: the first arrival is this long after the instances are ready
LEAD_NS = 2_000_000
#: longest single block of a waiting leader, so an error or deadline is noticed (ns)
MAX_BLOCK_NS = 50_000_000


@dataclass(frozen=True)
class ServedSchedule:
    """Per-query outcome of :func:`run_schedule` (absolute ns on the clock; 0 / -1 = never)."""

    start_ns: int  # schedule origin: arrivals are start + offsets
    arrivals_ns: np.ndarray
    seen_ns: np.ndarray  # when the server noticed the query (see the module docstring)
    dispatch_ns: np.ndarray  # service start, 0 when never dispatched
    completed_ns: np.ndarray  # service end, 0 when never dispatched
    batch_size: np.ndarray  # queries in the batch it was served in, 0 when never dispatched
    instance: np.ndarray  # instance that served it, -1 when never dispatched
    warmed_sizes: tuple[int, ...]  # batch sizes each instance ran before the schedule started
    precise_timers: bool  # every instance thread got a 1 ns timer slack


def first_dispatch(
    policy: DynamicBatcher, arrivals_ns: Sequence[int], head: int, seen: int, now: int
) -> tuple[int, int] | None:
    """When ``policy`` next dispatches if nothing but arrivals happens, and why.

    The queue at ``now`` is ``arrivals_ns[head:seen]`` (all ``<= now``); later arrivals come at
    ``arrivals_ns[seen:]``. Returns ``(time_ns, index)``: ``index`` is the first arrival at
    ``time_ns`` whose arrival makes the policy dispatch, or -1 when the dispatch is due to the
    oldest query's delay (or is due now: ``time_ns == now``). Returns None when the queue is
    empty and no arrival is left. Pure; at most ``max_batch_size`` policy calls.
    """
    n = len(arrivals_ns)
    decide = policy.decide
    wait_until: int | None = None
    if seen > head:
        d = decide(seen - head, arrivals_ns[head], now)
        if isinstance(d, Dispatch):
            return now, -1
        wait_until = d.until_ns
    j = seen
    while j < n:
        t = arrivals_ns[j]
        if wait_until is not None and t > wait_until:
            break
        k = j + 1
        while k < n and arrivals_ns[k] == t:
            k += 1
        d = decide(k - head, arrivals_ns[head], t)
        if isinstance(d, Dispatch):
            return t, j
        wait_until = d.until_ns
        j = k
    if wait_until is None:
        return None
    return wait_until, -1


def _expand(first: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices covered by the ranges ``[first[i], end[i])`` and, for each, its range ``i``."""
    sizes = end - first
    owner = np.repeat(np.arange(first.size), sizes)
    offset = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return first[owner] + offset, owner


def placement(instances: int) -> dict[str, Any]:
    """Where the load generator and the model run, for the record (``warning`` when they share cores).

    The generator has no thread of its own: the schedule is read by the model-instance threads.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    out: dict[str, Any] = {
        "generator": "pre-generated schedule read by the model-instance threads (no issuer thread or process)",
        "batcher": "in the model-instance threads, under one lock",
        "instance_threads": instances,
        "cpus_available": cpus,
    }
    if cpus <= 2:
        out["warning"] = (
            f"only {cpus} CPU core(s) available: the harness's waiting and bookkeeping run on the same "
            "cores as the model (the instance threads block between arrivals; nothing spins)"
        )
    return out


def freeze_heap() -> bool:
    """Collect, then freeze every live object (``gc.freeze``) unless something froze them
    already; True when this call froze them (the caller unfreezes)."""
    if gc.get_freeze_count():
        return False
    gc.collect()
    gc.freeze()
    return True


def run_schedule(
    infer: Callable[[Any], Any],
    pools: Mapping[int, Sequence[Any]],
    offsets_ns: np.ndarray,
    policy: DynamicBatcher,
    instances: int = 1,
    *,
    deadline_ns: int | None = None,
    warm: bool = False,
    clock: Callable[[], int] = now_ns,
) -> ServedSchedule:
    """Serve queries arriving at ``start + offsets_ns`` (see the module docstring).

    ``pools[k]`` are staged batches of ``k`` queries, cycled per instance. With ``warm`` every
    instance first runs each staged batch of every size in ``policy.formable_sizes()``; the
    schedule starts ``LEAD_NS`` after all are done. ``deadline_ns`` (relative to the start)
    bounds the run: queries not dispatched by then are dropped. An exception from ``infer``
    stops the run and is re-raised here.
    """
    offsets = np.asarray(offsets_ns, dtype=np.int64)
    n = int(offsets.size)
    if instances < 1:
        raise ValueError(f"instances must be >= 1, got {instances}")
    if n and np.any(np.diff(offsets) < 0):
        raise ValueError("offsets_ns must be sorted")
    missing = [k for k in range(1, policy.max_batch_size + 1) if not pools.get(k)]
    if missing:
        raise ValueError(f"no staged batches for dispatch sizes {missing}")
    warm_sizes = policy.formable_sizes() if warm else ()
    cond = threading.Condition(threading.Lock())
    ready = threading.Barrier(instances + 1)
    go = threading.Event()
    # shared state, guarded by cond
    head = 0  # first query not claimed yet
    seen = 0  # queries with arrival <= the leader's last look
    leader = False  # an idle instance holds the lead
    stop = False  # the run is over (all claimed, deadline passed, or an error)
    followers = 0  # idle instances waiting for the lead
    arr: list[int] = []
    limit: int | None = None
    batches: list[tuple[int, int, int, int, int]] = []  # (first, end, dispatch, completed, instance)
    marks: list[tuple[int, int, int]] = []  # (first, end, seen): queries a blocked leader woke for
    errors: list[BaseException] = []
    slack_set = [False] * instances
    decide = policy.decide

    def claim() -> tuple[int, int] | None:
        """Lock held, lead taken: claim a batch, or block until the policy would dispatch.

        Returns the claimed ``(first, end)`` range (lead released, one follower woken), or None
        when the run is over."""
        nonlocal head, seen, leader, stop
        while True:
            if stop:
                return None
            now = clock()
            if limit is not None and now >= limit:
                stop = True  # drop what is still queued; running batches finish
                cond.notify_all()
                return None
            h, s = head, seen
            while s < n and arr[s] <= now:
                s += 1
            seen = s
            if s > h:
                d = decide(s - h, arr[h], now)
                if d.__class__ is Dispatch:
                    head = h + d.size
                    leader = False
                    if followers:
                        cond.notify()  # one follower takes the lead
                    return h, head
            nxt = first_dispatch(policy, arr, h, s, now)
            if nxt is None:  # nothing queued, nothing left to arrive
                stop = True
                cond.notify_all()
                return None
            target, idx = nxt
            block_to = min(target, now + MAX_BLOCK_NS)
            if limit is not None:
                block_to = min(block_to, limit)
            cond.release()
            try:
                woke = sleep_until_ns(block_to, clock)
            finally:
                cond.acquire()
            if idx >= 0 and block_to == target:
                end = idx + 1
                while end < n and arr[end] <= woke:
                    end += 1
                marks.append((idx, end, woke))

    def instance(inst: int) -> None:
        nonlocal leader, stop, followers
        slack_set[inst] = precise_timer_slack()
        counters = dict.fromkeys(pools, 0)
        try:
            for k in warm_sizes:
                for b in pools[k]:
                    infer(b)
        except BaseException as exc:
            errors.append(exc)
        ready.wait()
        go.wait()
        if errors:
            return
        acquire, release, wait = cond.acquire, cond.release, cond.wait
        append = batches.append
        try:
            while True:
                acquire()
                try:
                    while leader and not stop:
                        followers += 1
                        wait()
                        followers -= 1
                    leader = True
                    claimed = claim()
                    if claimed is None:
                        leader = False
                        return
                finally:
                    release()
                first, end = claimed
                k = end - first
                c = counters[k]
                counters[k] = c + 1
                pool = pools[k]
                b = pool[c % len(pool)]
                ts = clock()
                infer(b)
                te = clock()
                append((first, end, ts, te, inst))
        except BaseException as exc:  # re-raised in the calling thread
            errors.append(exc)
            with cond:
                stop = True
                leader = False
                cond.notify_all()

    threads = [
        threading.Thread(target=instance, args=(i,), name=f"online-instance-{i}", daemon=True) for i in range(instances)
    ]
    for t in threads:
        t.start()
    ready.wait()
    # Objects that exist before the schedule starts (the harness's, the model's) are moved out of
    # the garbage collector's reach, so no collection rescans them while queries are timed; what
    # is allocated while serving is collected as usual (as in a server that froze after start-up).
    frozen = freeze_heap()
    try:
        start = clock() + LEAD_NS
        arr.extend((offsets + start).tolist())
        limit = None if deadline_ns is None else start + deadline_ns
        go.set()
        for t in threads:
            t.join()
    finally:
        if frozen:
            gc.unfreeze()
    if errors:
        raise errors[0]
    arrivals = offsets + start
    seen_ns = arrivals.copy()
    if marks:  # ranges never overlap: a leader plans past everything it has seen
        m = np.asarray(marks, dtype=np.int64)
        pos, owner = _expand(m[:, 0], m[:, 1])
        seen_ns[pos] = np.maximum(arrivals[pos], m[owner, 2])
    dispatch = np.zeros(n, dtype=np.int64)
    completed = np.zeros(n, dtype=np.int64)
    bsize = np.zeros(n, dtype=np.int64)
    inst_of = np.full(n, -1, dtype=np.int64)
    if batches:
        b = np.asarray(batches, dtype=np.int64)
        pos, owner = _expand(b[:, 0], b[:, 1])
        dispatch[pos] = b[owner, 2]
        completed[pos] = b[owner, 3]
        bsize[pos] = (b[:, 1] - b[:, 0])[owner]
        inst_of[pos] = b[owner, 4]
    return ServedSchedule(start, arrivals, seen_ns, dispatch, completed, bsize, inst_of, warm_sizes, all(slack_set))
