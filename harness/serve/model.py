"""The model behind ``harness serve``: a zoo (or user) workload loaded on a backend, plus the
server's own per-request token log.

* ``infer`` (KServe v2): one batch as sent, run under a lock (one model instance; requests
  queue for it in arrival order). With ``max_batch_size`` > 1, requests go through a
  :class:`~harness.serve.batcher.Batcher` first (dynamic batching, ``max_queue_delay_ms``).
* token streams (OpenAI completions, decoders only): with a backend that can step batches
  (``torch``), every request goes to one continuous-batching
  :class:`~harness.measure.serving.engine.Engine`; otherwise each request runs ``generate``
  in its own thread under the model lock (batch 1, one at a time), and ``engine`` says so.

Token log: for each stream, ``received_ns`` (the handler read the request), ``token_ns`` (each
token host-visible, the engine's stamp) and ``finished_ns``, all ``time.perf_counter_ns`` (the
host-wide monotonic clock, so a client on the same host can compare its own stamps). The last
``log_limit`` requests are kept (``requests()``) and, with ``log_path``, appended to a JSONL file.
"""

from __future__ import annotations

import collections
import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.core import plugins
from harness.core.clock import now_ns
from harness.measure.serving.engine import Engine
from harness.measure.serving.scheduler import EngineLimits
from harness.serve.batcher import Batcher
from workloads.registry import get_workload

TokenSink = Callable[[int, int], object]  # (token id, t_ns)
DoneSink = Callable[[BaseException | None], object]


@dataclass
class StreamLog:
    """One streamed request as the server saw it (times: perf_counter_ns)."""

    id: int
    received_ns: int
    prompt_tokens: int
    max_tokens: int
    token_ns: list[int] = field(default_factory=list)
    finished_ns: int = 0


@dataclass
class _Live:
    log: StreamLog
    on_token: TokenSink
    on_done: DoneSink


class ServedModel:
    """A loaded model and the machinery that serves it (see the module docstring)."""

    def __init__(
        self,
        model: str,
        backend: str = "torch",
        size: str = "tiny",
        device: str = "cpu",
        backend_options: dict[str, Any] | None = None,
        max_num_seqs: int = 16,
        max_batched_tokens: int = 512,
        log_path: Path | None = None,
        log_limit: int = 100_000,
        max_batch_size: int = 1,
        max_queue_delay_ms: float = 0.0,
    ) -> None:
        self.name = model
        self.workload = get_workload(model, size)
        cls = plugins.load("backend", backend)
        ok, why = cls.available()
        if not ok:
            raise RuntimeError(f"backend {backend!r} unavailable: {why}")
        self.backend = cls(**(backend_options or {}))
        self.backend.load(self.workload, device)
        self.backend_name = backend
        self.lock = threading.Lock()
        self.decoder = bool(getattr(self.workload, "generative", False))
        cfg = getattr(self.workload, "config", None)
        self.vocab = int(getattr(cfg, "vocab_size", 0) or 0)
        self.context = int(getattr(cfg, "n_positions", 0) or 0)
        self.engine: Engine | None = None
        self.engine_note = ""
        self._live: dict[int, _Live] = {}
        self._ids = itertools.count()
        self._log: collections.deque[StreamLog] = collections.deque(maxlen=log_limit)
        self._log_lock = threading.Lock()
        self.log_path = log_path
        if self.decoder:
            why_not = self.backend.stepping_unsupported()
            if why_not is None:
                limits = EngineLimits(max_num_seqs, max_batched_tokens, None)
                self.engine = Engine(self.backend, limits, now_ns, self._on_token, on_finish=self._on_finish)
                self.engine.start()
                self.engine_note = (
                    f"continuous batching (max_num_seqs={max_num_seqs}, max_batched_tokens={max_batched_tokens})"
                )
            else:
                self.engine_note = f"per-request generate under one lock (no continuous batching: {why_not})"
        self._names: list[str] | None = None
        self.batcher: Batcher | None = None
        if max_batch_size > 1:
            self.batcher = Batcher(self.infer, max_batch_size, int(round(max_queue_delay_ms * 1e6)))

    # ------------------------------------------------------------------ KServe v2

    def output_names(self, n: int) -> list[str]:
        if self._names is None:
            try:
                self._names = list(self.workload.info().output_names)
            except Exception:  # info() may need a library this server lacks: fall back to positions
                self._names = []
        return [self._names[i] if i < len(self._names) else f"output_{i}" for i in range(n)]

    def input_names(self) -> list[str]:
        return list(self.workload.make_inputs(1, 0))

    def infer(self, inputs: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
        """Run one batch (blocking; one at a time)."""
        with self.lock:
            out = self.backend.to_numpy(self.backend.infer(self.backend.prepare(inputs)))
        return list(zip(self.output_names(len(out)), out))

    # ------------------------------------------------------------------ token streams

    def check_prompt(self, ids: np.ndarray, max_tokens: int) -> str | None:
        """Why this request cannot run ('' -> None when it can)."""
        if not self.decoder:
            return f"model {self.name!r} is not a decoder: completions need a generative model"
        if ids.size < 1 or max_tokens < 1:
            return "prompt must be non-empty and max_tokens >= 1"
        if self.context and ids.size + max_tokens > self.context:
            return f"prompt ({ids.size}) + max_tokens ({max_tokens}) exceeds the model context ({self.context})"
        return None

    def stream(self, ids: np.ndarray, max_tokens: int, received_ns: int, on_token: TokenSink, on_done: DoneSink) -> int:
        """Start generating; ``on_token(token, t_ns)`` per token and ``on_done(error)`` once,
        from a server thread. Returns the request id (its log's ``id``)."""
        rid = next(self._ids)
        live = _Live(StreamLog(rid, received_ns, int(ids.size), int(max_tokens)), on_token, on_done)
        self._live[rid] = live
        if self.engine is not None:
            self.engine.submit(rid, ids, max_tokens)
        else:
            threading.Thread(target=self._generate, args=(rid, ids, max_tokens), daemon=True).start()
        return rid

    def _generate(self, rid: int, ids: np.ndarray, max_tokens: int) -> None:
        err: BaseException | None = None
        try:
            with self.lock:
                for tok in self.backend.generate(ids, max_tokens):
                    self._on_token(rid, int(tok), now_ns())
        except Exception as exc:  # reported to the client as a stream error
            err = exc
        self._on_finish(rid, now_ns(), err)

    def _on_token(self, rid: int, tok: int, t: int) -> None:
        live = self._live[rid]
        live.log.token_ns.append(t)
        live.on_token(tok, t)

    def _on_finish(self, rid: int, t: int, err: BaseException | None = None) -> None:
        live = self._live.pop(rid)
        live.log.finished_ns = t
        with self._log_lock:
            self._log.append(live.log)
            if self.log_path is not None:
                with self.log_path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(asdict(live.log)) + "\n")
        live.on_done(err)

    def requests(self) -> list[dict[str, Any]]:
        """The token log (oldest first)."""
        with self._log_lock:
            return [asdict(x) for x in self._log]

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "backend": self.backend.describe(),
            "decoder": self.decoder,
            "token_engine": self.engine_note or None,
            "dynamic_batching": dict(self.batcher.stats) if self.batcher is not None else False,
        }

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
            self.batcher = None
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        self.backend.close()
