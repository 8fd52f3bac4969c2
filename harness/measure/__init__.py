"""Measure: everything that runs on the machine under test.

The runner (a fresh worker process per cell), the worker (loads a workload and a backend,
stages samples, runs a scenario, reads meters), A/B interleaving, the environment manifest
and host detection, output parity, load generation (``load/``: arrivals, batching, peak
search), scenarios (load patterns), backends and meters. It may import ``harness.core`` and
``harness.store`` (to save what it measured) and ``workloads``; never analysis, planning
or a surface. Heavy libraries (torch, onnxruntime, tensorrt) are imported only inside the
backend or workload that needs them.
"""
