"""Operators per forward: the count that sets an eager stack's dispatch cost.

An eager framework dispatches every operator from the host (Python, dispatcher, kernel launch),
so a small batch costs about ``operators x per-operator cost`` however fast the device is.
:func:`harness.measure.operator_census.count_operators` runs one batch-1 forward of a zoo
workload on the CPU under a ``TorchDispatchMode`` and counts the ATen operators that do work;
metadata-only operators (views, transposes, reshapes, allocation) launch no kernel and are left
out. Counts of the built-in zoo ship in
``reference_data/zoo_operator_counts.json`` (written by
:func:`harness.measure.operator_census.write_operator_snapshot`), so planning never imports torch.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

SNAPSHOT_FILE = "zoo_operator_counts.json"


@lru_cache(maxsize=1)
def _snapshot() -> dict[str, Any]:
    try:
        text = resources.files("harness.planning").joinpath("reference_data", SNAPSHOT_FILE).read_text()
    except (FileNotFoundError, OSError):
        return {}
    return dict(json.loads(text).get("entries", {}))


def operator_count(name: str, size: str = "standard") -> tuple[int, int] | None:
    """Shipped ``(operators, flop_operators)`` of a zoo workload (None when not in the snapshot)."""
    e = _snapshot().get(f"{name}:{size}")
    return None if e is None else (int(e["operators"]), int(e["flop_operators"]))
