"""Inference benchmarking and hardware-selection harness.

Python API (the CLI and the app call the same functions)::

    import harness
    record = harness.run_suite("workloads/suites/quick.yaml")
    df = harness.load_results("results")

Importing ``harness`` does not import torch or any backend library.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_suite", "run_suite", "run_cells", "load_run", "load_results", "list_runs"]

_LAZY = {
    "load_suite": ("harness.core.spec", "load_suite"),
    "run_suite": ("harness.measure.runner", "run_suite"),
    "run_cells": ("harness.measure.runner", "run_cells"),
    "load_run": ("harness.store.results", "load_run"),
    "load_results": ("harness.store.results", "load_results"),
    "list_runs": ("harness.store.results", "list_runs"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
