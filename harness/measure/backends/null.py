"""The ``null`` backend: completes every query at once.

It measures the harness itself (per-query overhead of the load patterns) and is the smoke
test for every scenario. It needs no model and returns no outputs. Token streams (``generate``
and batched stepping) yield token ids ``0, 1, 2, ...`` per sequence.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

from harness.measure.backends.base import Backend, Capabilities, PrefillChunk


class NullBackend(Backend):
    name: ClassVar[str] = "null"
    capabilities: ClassVar[Capabilities] = Capabilities(
        devices=("cpu",),
        dtypes=("fp32", "fp16", "bf16", "int8"),
        streaming=True,
        batched_stepping=True,
        needs_model=False,
        options={},
    )

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return True, ""

    def load(self, workload: Any, device: str = "cpu") -> None:
        self.device = device

    def infer(self, prepared: Any) -> None:
        return None

    def to_numpy(self, outputs: Any) -> list[np.ndarray]:
        return []

    def generate(self, prompt_ids: np.ndarray, max_new_tokens: int) -> Iterator[int]:
        yield from range(max_new_tokens)

    def begin_stepping(self, max_num_seqs: int) -> None:
        self._generated: dict[int, int] = {}  # seq_id -> tokens returned so far

    def prefill(self, chunks: Sequence[PrefillChunk]) -> list[int | None]:
        out: list[int | None] = []
        for c in chunks:
            if c.last:
                self._generated[c.seq_id] = 1
            out.append(0 if c.last else None)
        return out

    def decode_step(self, active: Sequence[tuple[int, int]]) -> list[int]:
        g = self._generated
        out = []
        for seq_id, _ in active:
            out.append(g[seq_id])
            g[seq_id] += 1
        return out

    def release(self, seq_id: int) -> None:
        self._generated.pop(seq_id, None)

    def end_stepping(self) -> None:
        self._generated = {}

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["timing_scope"] = "no model work: the call itself (the harness's own per-query overhead)"
        return d
