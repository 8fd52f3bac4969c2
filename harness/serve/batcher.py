"""Dynamic batching of one-shot requests for ``harness serve``.

One thread takes requests in arrival order. After the first of a batch it waits up to
``max_delay_ns`` for more, until ``max_batch_size`` samples (rows of the first axis) are
gathered; a request that would overflow the batch starts the next one. Requests whose inputs
agree in names, dtypes and per-sample shapes are concatenated along the first axis and run as
one batch; the outputs are split back by each request's row count. When an output's first axis
is not the batch's row count (the model does not return per-sample rows), the requests of that
batch are run one by one instead, so results never mix. ``stats``: batches run, requests, the
largest batch in samples.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

from harness.core.clock import now_ns

Tensors = dict[str, np.ndarray]
Outputs = list[tuple[str, np.ndarray]]
_Item = tuple[Tensors, "Future[Outputs]"]


def _rows(t: Tensors) -> int:
    return int(next(iter(t.values())).shape[0]) if t else 1


def _key(t: Tensors) -> tuple[tuple[str, str, tuple[int, ...]], ...]:
    return tuple((k, v.dtype.str, tuple(v.shape[1:])) for k, v in sorted(t.items()))


class Batcher:
    """See the module docstring. ``run(inputs) -> [(name, array)]`` runs one batch."""

    def __init__(self, run: Callable[[Tensors], Outputs], max_batch_size: int, max_delay_ns: int) -> None:
        if max_batch_size < 1 or max_delay_ns < 0:
            raise ValueError("batcher: max_batch_size must be >= 1 and the queue delay >= 0")
        self.run, self.max_batch_size, self.max_delay_ns = run, max_batch_size, max_delay_ns
        self._q: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self.stats = {"batches": 0, "requests": 0, "max_batch": 0}
        self._thread = threading.Thread(target=self._loop, name="serve-batcher", daemon=True)
        self._thread.start()

    def submit(self, inputs: Tensors) -> Future[Outputs]:
        """Queue one request (any thread); its future gets the outputs or the error."""
        fut: Future[Outputs] = Future()
        self._q.put((inputs, fut))
        return fut

    def close(self) -> None:
        """Finish the queued requests and stop the thread. Safe to call twice."""
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join()

    def _loop(self) -> None:
        carry: _Item | None = None
        while True:
            first = carry if carry is not None else self._q.get()
            carry = None
            if first is None:
                return
            batch, n = [first], _rows(first[0])
            deadline = now_ns() + self.max_delay_ns
            stop = False
            while n < self.max_batch_size:
                wait_ns = deadline - now_ns()
                try:
                    item = self._q.get(timeout=wait_ns / 1e9) if wait_ns > 0 else self._q.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                if n + _rows(item[0]) > self.max_batch_size:
                    carry = item
                    break
                batch.append(item)
                n += _rows(item[0])
            self._run(batch)
            if stop:
                while (item := self._q.get_nowait() if not self._q.empty() else None) is not None:
                    self._run([item])
                return

    def _run(self, batch: list[_Item]) -> None:
        groups: dict[object, list[_Item]] = {}
        for item in batch:
            groups.setdefault(_key(item[0]), []).append(item)
        for items in groups.values():
            self.stats["batches"] += 1
            self.stats["requests"] += len(items)
            self.stats["max_batch"] = max(self.stats["max_batch"], sum(_rows(t) for t, _ in items))
            if len(items) == 1 or not self._run_joined(items):
                for t, fut in items:
                    self._settle(fut, self.run, t)

    def _run_joined(self, items: list[_Item]) -> bool:
        """Run ``items`` as one batch; False (nothing settled) when the outputs cannot be split."""
        counts = [_rows(t) for t, _ in items]
        joined = {k: np.concatenate([t[k] for t, _ in items]) for k in items[0][0]}
        try:
            outs = self.run(joined)
        except Exception as exc:  # every request of the batch gets the error
            for _, fut in items:
                fut.set_exception(exc)
            return True
        total = sum(counts)
        if any(a.ndim == 0 or a.shape[0] != total for _, a in outs):
            return False
        bounds = np.cumsum([0, *counts])
        for i, (_, fut) in enumerate(items):
            fut.set_result([(name, a[bounds[i] : bounds[i + 1]]) for name, a in outs])
        return True

    @staticmethod
    def _settle(fut: Future[Outputs], run: Callable[[Tensors], Outputs], inputs: Tensors) -> None:
        try:
            fut.set_result(run(inputs))
        except Exception as exc:  # reported to that request's client
            fut.set_exception(exc)
