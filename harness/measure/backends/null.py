"""The ``null`` backend: completes every query at once.

It measures the harness itself (per-query overhead of the load patterns) and is the smoke
test for every scenario. It needs no model and returns no outputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from harness.measure.backends.base import Backend, Capabilities


class NullBackend(Backend):
    name: ClassVar[str] = "null"
    capabilities: ClassVar[Capabilities] = Capabilities(
        devices=("cpu",),
        dtypes=("fp32", "fp16", "bf16", "int8"),
        streaming=True,
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
