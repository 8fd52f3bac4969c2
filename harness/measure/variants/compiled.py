"""``compiled``: the torch module wrapped in ``torch.compile`` (the backend's ``compile`` option).

Compilation happens on the first calls (the accuracy check and the warm-up), never in the
measurement window."""

from __future__ import annotations

from typing import Any, ClassVar

from harness.measure.variants.base import Variant


class Compiled(Variant):
    """torch.compile (inductor) of the eager module."""

    name: ClassVar[str] = "compiled"
    backends: ClassVar[tuple[str, ...]] = ("torch",)
    why_not: ClassVar[dict[str, str]] = {
        "onnxruntime": "ONNX Runtime optimises its graph itself (graph_optimization_level, default all)"
    }

    def backend_options(self, backend: str) -> dict[str, Any]:
        return {"compile": True}
