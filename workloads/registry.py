"""Look up workloads by name (no torch import).

* Built-in names: see :func:`list_workloads`; ``size`` is ``"standard"`` or ``"tiny"`` and
  keyword ``params`` override fields of the size's config (unknown ones raise ``ValueError``).
* ``onnx:/path/to/model.onnx``: an :class:`~workloads.user.OnnxFileWorkload`; ``params`` give
  sizes of symbolic non-batch axes (e.g. ``seq_len=128``) and ``int_high``.
* ``module:package.module:factory``: a :class:`~workloads.user.ModuleFactoryWorkload`;
  ``params`` are passed to ``factory(**params)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from workloads.base import Workload
from workloads.user import ModuleFactoryWorkload, OnnxFileWorkload

_BUILTINS: dict[str, str] = {
    "resnet50": "workloads.resnet50:ResNet50Workload",
    "bert": "workloads.bert:BertWorkload",
    "gpt2": "workloads.gpt2:GPT2Workload",
    "tabular_mlp": "workloads.tabular_mlp:TabularMLPWorkload",
    "sensor_cnn_gru": "workloads.sensor_cnn_gru:SensorCNNGRUWorkload",
}

#: name prefixes of user-supplied models
USER_PREFIXES: tuple[str, ...] = ("onnx:", "module:")


def list_workloads() -> list[str]:
    """Names of the built-in workloads, sorted."""
    return sorted(_BUILTINS)


def get_workload(name: str, size: str = "standard", **params: Any) -> Workload:
    """Workload for ``name`` at ``size`` (see module docstring for user-model names)."""
    if name.startswith("onnx:"):
        path = name[len("onnx:") :]
        if not path:
            raise ValueError("workload 'onnx:' needs a file path, e.g. onnx:/path/to/model.onnx")
        return OnnxFileWorkload(path, size="user" if size == "standard" else size, **params)
    if name.startswith("module:"):
        return ModuleFactoryWorkload(name[len("module:") :], size="user" if size == "standard" else size, **params)
    target = _BUILTINS.get(name)
    if target is None:
        known = ", ".join(list_workloads())
        raise ValueError(
            f"unknown workload {name!r}; known: {known}; or a user model as "
            "'onnx:/path/to/model.onnx' or 'module:package.module:factory'"
        )
    mod_name, _, cls_name = target.partition(":")
    cls: Callable[..., Workload] = getattr(importlib.import_module(mod_name), cls_name)  # (size, **params)
    return cls(size, **params)
