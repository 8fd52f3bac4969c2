"""Model zoo: built-in workloads (PyTorch, seeded random weights), user-model workloads,
ONNX export with an on-disk cache. Start with :mod:`workloads.registry`:
``get_workload(name, size, **params)`` and ``list_workloads()``. Importing this package does
not import torch."""
