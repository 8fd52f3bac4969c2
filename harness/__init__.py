"""Inference benchmarking and hardware-selection harness.

Python API (the CLI and the app call the same functions)::

    import harness
    record = harness.run_suite("workloads/suites/quick.yaml")    # measure a suite
    df = harness.load_results("results")                          # every cell as a table
    report = harness.compare("baseline-run", record.run_id)       # the regression gate
    rec = harness.recommend(model="resnet50", scenario="online",  # rank hardware
                            slo={"p99_ms": 10}, load={"qps": 1000})
    proj = harness.project("bert", "nvidia-h100-sxm", batch_size=8)  # roofline projection

``load_suite``, ``run_cells``, ``load_run`` and ``list_runs`` are the lower-level pieces.
Importing ``harness`` imports no stage module and no backend library: each name is imported
on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

__all__ = [
    "compare",
    "list_runs",
    "load_results",
    "load_run",
    "load_suite",
    "project",
    "recommend",
    "run_cells",
    "run_suite",
]

#: public name -> (module, attribute), imported on first access
_LAZY = {
    "load_suite": ("harness.core.spec", "load_suite"),
    "run_suite": ("harness.measure.runner", "run_suite"),
    "run_cells": ("harness.measure.runner", "run_cells"),
    "load_run": ("harness.store.results", "load_run"),
    "load_results": ("harness.store.results", "load_results"),
    "list_runs": ("harness.store.results", "list_runs"),
    "compare": ("harness.api", "compare"),
    "recommend": ("harness.api", "recommend"),
    "project": ("harness.api", "project"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
