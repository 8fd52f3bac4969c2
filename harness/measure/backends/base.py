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

Constructors only store options; nothing heavy happens before ``load``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do. ``devices`` uses torch-style names (``cpu``, ``cuda``)."""

    devices: tuple[str, ...] = ("cpu",)
    dtypes: tuple[str, ...] = ("fp32",)
    streaming: bool = False
    needs_model: bool = True
    options: Mapping[str, str] = field(default_factory=dict)  # option name -> description


class BackendUnavailable(RuntimeError):
    """Raised by ``load`` when the backend cannot run here (missing package, no device)."""


class Backend(ABC):
    """Abstract backend. Register concrete classes under the ``harness.measure.backends`` entry point."""

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

    def describe(self) -> dict[str, Any]:
        """Versions and effective settings, stored with each cell."""
        return {"backend": self.name, "device": self.device, "options": dict(self.options)}

    def close(self) -> None:  # noqa: B027 - optional hook: most backends hold nothing to release
        """Release resources. Safe to call twice."""
