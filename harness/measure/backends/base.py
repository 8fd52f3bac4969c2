"""Backend contract: *how* a batch is computed.

A backend turns a :class:`workloads.base.Workload` into something executable and runs
batches on it. Load patterns decide *when* work is issued; backends never import patterns.

Timing contract
---------------
* ``load`` is timed separately (load time), never mixed with inference latency.
* ``prepare`` stages a batch in the backend's native form (tensors on the device, ORT
  inputs, ...). It is **not** on the clock: the runner calls it before a query's slot.
* ``infer`` runs one batch and returns only once results are host-visible (for accelerators:
  after device synchronisation). This is the call the harness times.
* ``to_numpy`` converts outputs for parity checks (not timed).
* ``generate`` (optional, ``capabilities.streaming``) yields one token id at a time as each
  token becomes host-visible; the first yield follows the prefill.
* Batched stepping (optional, ``capabilities.batched_stepping``) lets one engine thread serve
  many sequences at once (continuous batching, :mod:`harness.measure.serving`):
  ``begin_stepping(max_num_seqs)`` allocates per-sequence KV caches; ``prefill(chunks)`` runs
  prompt chunks (:class:`PrefillChunk`, a long prompt may arrive over several calls, in order);
  ``decode_step(active)`` runs one decode step for every ``(seq_id, last_token)`` given, each
  sequence at its own length; ``release(seq_id)`` frees a finished sequence's cache;
  ``end_stepping()`` frees them all. Token ids are returned only once host-visible. Greedy
  tokens equal those of ``generate`` for the same prompt. ``stepping_unsupported()`` says why a
  loaded backend cannot step (``None`` when it can): the workload may lack slot caches.

Constructors only store options; nothing heavy happens before ``load``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do. ``devices`` uses torch-style names (``cpu``, ``cuda``)."""

    devices: tuple[str, ...] = ("cpu",)
    dtypes: tuple[str, ...] = ("fp32",)
    streaming: bool = False
    batched_stepping: bool = False
    needs_model: bool = True
    options: Mapping[str, str] = field(default_factory=dict)  # option name -> description


@dataclass(frozen=True)
class PrefillChunk:
    """Prompt tokens ``token_ids`` (int64) of sequence ``seq_id`` at positions ``start ..
    start + len - 1``; ``start`` equals the prompt tokens already prefilled for it (0 for the
    first chunk, which also claims the sequence's cache). ``last``: the chunk ends the prompt,
    so the step returns the sequence's first generated token."""

    seq_id: int
    token_ids: np.ndarray
    start: int
    last: bool


class BackendUnavailable(RuntimeError):
    """Raised by ``load`` when the backend cannot run here (missing package, no device)."""


class Backend(ABC):
    """Abstract backend. Register concrete classes under the ``harness.backends`` entry point."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, **options: Any) -> None:
        unknown = set(options) - set(self.capabilities.options)
        if unknown:
            allowed = ", ".join(sorted(self.capabilities.options)) or "(none)"
            raise ValueError(f"backend {self.name!r}: unknown option(s) {sorted(unknown)}; allowed: {allowed}")
        self.options: dict[str, Any] = dict(options)
        self.device: str = "cpu"

    @classmethod
    @abstractmethod
    def available(cls) -> tuple[bool, str]:
        """Whether this backend can run on this host, and why not if it cannot."""

    @abstractmethod
    def load(self, workload: Any, device: str = "cpu") -> None:
        """Build or load the model for ``workload`` on ``device``."""

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> Any:
        """Stage a batch (untimed). Default: pass the NumPy arrays through."""
        return inputs

    @abstractmethod
    def infer(self, prepared: Any) -> Any:
        """Run one staged batch; return when outputs are host-visible."""

    def to_numpy(self, outputs: Any) -> list[np.ndarray]:
        """Outputs as a list of NumPy arrays, in the workload's output order."""
        if isinstance(outputs, np.ndarray):
            return [outputs]
        return [np.asarray(o) for o in outputs]

    def generate(self, prompt_ids: np.ndarray, max_new_tokens: int) -> Iterator[int]:
        """Yield generated token ids one at a time (prefill, then decode with a KV cache)."""
        raise NotImplementedError(f"backend {self.name!r} does not support token streaming")

    # ---------------------------------------------------------------- batched stepping (optional)

    def stepping_unsupported(self) -> str | None:
        """Why this (loaded) backend cannot do batched stepping, or ``None`` when it can."""
        if not self.capabilities.batched_stepping:
            return f"backend {self.name!r} does not implement batched stepping (prefill/decode_step)"
        return None

    def begin_stepping(self, max_num_seqs: int) -> None:
        """Allocate KV caches for up to ``max_num_seqs`` sequences at once (untimed set-up)."""
        raise NotImplementedError(self.stepping_unsupported() or "begin_stepping not implemented")

    def prefill(self, chunks: Sequence[PrefillChunk]) -> list[int | None]:
        """Run prompt chunks (at most one per sequence); per chunk the first generated token
        id when ``chunk.last``, else ``None``."""
        raise NotImplementedError(self.stepping_unsupported() or "prefill not implemented")

    def decode_step(self, active: Sequence[tuple[int, int]]) -> list[int]:
        """One decode step for each ``(seq_id, last_token)``: the next token id of each, in order."""
        raise NotImplementedError(self.stepping_unsupported() or "decode_step not implemented")

    def release(self, seq_id: int) -> None:
        """Free the cache of a finished (or dropped) sequence; its id may be used again."""
        raise NotImplementedError(self.stepping_unsupported() or "release not implemented")

    def end_stepping(self) -> None:  # noqa: B027 - optional hook: backends without caches hold nothing
        """Free every sequence cache. Safe to call twice."""

    def describe(self) -> dict[str, Any]:
        """Versions and effective settings, stored with each cell."""
        return {"backend": self.name, "device": self.device, "options": dict(self.options)}

    def close(self) -> None:  # noqa: B027 - optional hook: most backends hold nothing to release
        """Release resources. Safe to call twice."""
