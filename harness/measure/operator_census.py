"""Operator census of zoo workloads: the counts behind the eager stacks' dispatch term.

Writes ``harness/planning/reference_data/zoo_operator_counts.json``, read by
:mod:`harness.planning.operator_counts` (planning never imports torch). Counted: ATen operators
of one batch-1 CPU forward, metadata-only ones (:data:`METADATA_OPS`) left out;
``flop_operators`` are those in :data:`FLOP_OPS`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workloads.registry import get_workload

SNAPSHOT_FILE = "zoo_operator_counts.json"
#: ATen operators that only change metadata or allocate (no kernel launched)
METADATA_OPS: frozenset[str] = frozenset(
    {
        "aten.view",
        "aten._unsafe_view",
        "aten.t",
        "aten.transpose",
        "aten.permute",
        "aten.expand",
        "aten.reshape",
        "aten.unsqueeze",
        "aten.squeeze",
        "aten.slice",
        "aten.select",
        "aten.split",
        "aten.split_with_sizes",
        "aten.unbind",
        "aten.empty",
        "aten.empty_like",
        "aten.detach",
        "aten.alias",
        "aten.as_strided",
        "aten.lift_fresh",
        "aten._to_copy_noop",
    }
)
#: ATen operators that carry the counted FLOPs (matmul, convolution, attention)
FLOP_OPS: frozenset[str] = frozenset(
    {
        "aten.convolution",
        "aten.mm",
        "aten.addmm",
        "aten.bmm",
        "aten.baddbmm",
        "aten.linear",
        "aten.matmul",
        "aten._scaled_dot_product_flash_attention_for_cpu",
        "aten._scaled_dot_product_flash_attention",
        "aten._scaled_dot_product_efficient_attention",
        "aten._scaled_dot_product_attention_math",
    }
)
DEFAULT_ENTRIES: tuple[tuple[str, str], ...] = (
    ("resnet50", "standard"),
    ("bert", "standard"),
    ("gpt2", "standard"),
    ("tabular_mlp", "standard"),
    ("sensor_cnn_gru", "standard"),
)


def count_operators(name: str, size: str = "standard", params: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"operators": n, "flop_operators": k, "all_aten_calls": m, "method": ...}`` for one
    batch-1 forward (``flop_operators``: those in :data:`FLOP_OPS`).
    Imports torch (through :mod:`workloads`)."""
    import torch  # heavy optional dependency: only when counting a model
    from torch.utils._python_dispatch import TorchDispatchMode  # torch again: only when counting

    class _Count(TorchDispatchMode):  # type: ignore[no-untyped-call]
        def __init__(self) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self.work = 0
            self.flop = 0
            self.calls = 0

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            self.calls += 1
            name = str(func.overloadpacket)
            if name not in METADATA_OPS:
                self.work += 1
            if name in FLOP_OPS:
                self.flop += 1
            return func(*args, **(kwargs or {}))

    w = get_workload(name, size, **(params or {}))
    module = w.build_torch()
    inputs = [torch.from_numpy(v) for v in w.make_inputs(1).values()]
    counter = _Count()
    with torch.no_grad(), counter:
        module(*inputs)
    return {
        "operators": counter.work,
        "flop_operators": counter.flop,
        "all_aten_calls": counter.calls,
        "method": "ATen calls of one batch-1 CPU forward under TorchDispatchMode, metadata-only ops left out",
    }


def write_operator_snapshot(path: str | Path | None = None) -> Path:
    """Count :data:`DEFAULT_ENTRIES` and write the shipped snapshot (imports torch)."""
    target = (
        Path(path) if path is not None else Path(__file__).parents[1] / "planning" / "reference_data" / SNAPSHOT_FILE
    )
    data = {f"{n}:{s}": count_operators(n, s) for n, s in DEFAULT_ENTRIES}
    target.write_text(
        json.dumps(
            {"generated_by": "harness.measure.operator_census.write_operator_snapshot", "entries": data}, indent=1
        )
        + "\n"
    )
    return target
