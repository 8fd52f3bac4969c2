"""Workload contract: a model plus everything needed to benchmark it.

A :class:`Workload` knows how to build its PyTorch module (seeded random weights, no
downloads), how to generate deterministic inputs, and what it costs (parameters, weight
bytes, FLOPs per sample). Backends receive a workload and turn it into something they can
execute (a ``torch.nn.Module``, an ONNX file, ...).

Contracts
---------
* ``make_inputs(batch_size, seed)`` is deterministic: the same arguments give bit-identical
  arrays. Inputs are NumPy arrays keyed by input name, first axis = batch.
* ``build_torch()`` imports torch lazily; importing this module never imports torch.
* ``info()`` is cheap after the first call (values are cached) and contains only plain data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from workloads.onnx_export import export_cached

Task = Literal["vision", "encoder", "decoder", "tabular", "timeseries", "custom"]

DTYPE_BYTES: dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1, "fp8": 1}


@dataclass(frozen=True)
class WorkloadInfo:
    """Plain-data description of a workload, stored in run records.

    Units: ``flops_per_sample`` counts floating-point operations (a multiply-add = 2 FLOPs)
    for one sample of the forward pass; ``weight_bytes`` maps dtype name -> bytes of weights.
    For decoders, ``flops_per_token_decode`` is the FLOPs of one decode step for one sequence
    at the reference context length and ``kv_cache_bytes_per_token`` the KV-cache growth per
    generated token per sequence in fp32.
    """

    name: str
    family: str
    size: str
    task: Task
    input_shapes: dict[str, tuple[int, ...]]  # per sample, without batch axis
    input_dtypes: dict[str, str]
    output_names: tuple[str, ...]
    params: int
    weight_bytes: dict[str, int]
    flops_per_sample: int
    flops_method: str = "torch.utils.flop_counter"
    activation_bytes_per_sample: int = 0
    flops_per_token_decode: int | None = None
    kv_cache_bytes_per_token: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["input_shapes"] = {k: list(v) for k, v in self.input_shapes.items()}
        d["output_names"] = list(self.output_names)
        return d


class Workload(ABC):
    """A benchmarkable model. Subclasses hold parameters only in ``__init__`` (no I/O)."""

    #: registry name, e.g. ``"resnet50"``
    name: str
    #: model family, e.g. ``"cnn"``
    family: str
    #: ``"tiny"`` or ``"standard"`` (or a user label)
    size: str
    task: Task = "custom"
    #: whether the module supports token generation with a KV cache (see ``generate_api``)
    generative: bool = False

    @abstractmethod
    def build_torch(self) -> Any:
        """Return a ``torch.nn.Module`` in eval mode with seeded random weights."""

    @abstractmethod
    def make_inputs(self, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Deterministic inputs for ``batch_size`` samples, keyed by input name."""

    @abstractmethod
    def info(self) -> WorkloadInfo:
        """Counts and shapes; FLOPs are counted, not guessed."""

    def onnx_path(self, cache_dir: Path | None = None) -> Path:
        """Path of an ONNX export of this workload, created on first use and cached by
        content hash. Subclasses that ship an ONNX file return it directly."""
        return export_cached(self, cache_dir)

    @property
    def key(self) -> str:
        return f"{self.name}:{self.size}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key})"
