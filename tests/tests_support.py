"""Small builders shared by tests."""

from __future__ import annotations

from typing import Any

from harness.core.records import CellSpec

FAST_STOP = {"min_duration_s": 0.05, "min_queries": 64, "max_duration_s": 5, "warmup_s": 0.01, "warmup_queries": 2}


def fast_cell(
    model: str = "tabular_mlp",
    backend: str = "null",
    scenario: str = "offline",
    batch_size: int = 1,
    timeout_s: float = 60,
    device: str = "cpu",
    **opts: Any,
) -> CellSpec:
    return CellSpec(
        model=model,
        size="tiny",
        backend=backend,
        scenario=scenario,
        device=device,
        scenario_options={"batch_size": batch_size, "stop": dict(FAST_STOP), **opts},
        timeout_s=timeout_s,
    )
