"""Shared machinery of the built-in PyTorch workloads: sized configs, seeded builds, cached info.

A concrete workload declares a frozen config dataclass, a preset per size (``"standard"``,
``"tiny"``), its input/output names, and implements ``_build`` (module from config) and
``make_inputs``. Keyword ``params`` given to the constructor override config fields.

Positional contract: the module's ``forward`` takes its inputs positionally in the order of the
keys of ``make_inputs(...)`` (which is also the order of ``info().input_shapes``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import json
import sys
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from workloads._cache import (
    atomic_write_bytes,
    cache_subdir,
    content_hash,
    file_digest,
    package_version,
    read_json,
)
from workloads._counting import count_module
from workloads.base import DTYPE_BYTES, Workload, WorkloadInfo

#: bump when the counting method changes, to invalidate cached info records
INFO_FORMAT_VERSION = 1


def weight_bytes_for(params: int) -> dict[str, int]:
    """Bytes of ``params`` weights stored in each dtype of :data:`DTYPE_BYTES`."""
    return {dtype: params * nbytes for dtype, nbytes in DTYPE_BYTES.items()}


def info_from_dict(d: dict[str, Any]) -> WorkloadInfo:
    """Inverse of :meth:`WorkloadInfo.to_dict`."""
    d = dict(d)
    d["input_shapes"] = {k: tuple(v) for k, v in d["input_shapes"].items()}
    d["output_names"] = tuple(d["output_names"])
    return WorkloadInfo(**d)


class CachedInfoWorkload(Workload):
    """Caches :meth:`info` in memory and on disk under ``<cache>/info`` keyed by
    :meth:`cache_document`. Subclasses implement :meth:`_compute_info`."""

    _info: WorkloadInfo | None = None

    @abstractmethod
    def cache_document(self) -> dict[str, Any]:
        """JSON-serialisable description that changes whenever the model or its counts could."""

    @abstractmethod
    def _compute_info(self) -> WorkloadInfo:
        """Compute the info record (may build the module)."""

    def cache_key(self) -> str:
        return content_hash(self.cache_document())

    def info(self, cache_dir: Path | str | None = None) -> WorkloadInfo:
        if self._info is not None:
            return self._info
        safe_name = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.name)[:60]
        path = cache_subdir("info", cache_dir) / f"{safe_name}-{self.size}-{self.cache_key()}.json"
        cached = read_json(path)
        if cached is not None:
            try:
                self._info = info_from_dict(cached)
                return self._info
            except TypeError:
                pass  # stale layout: recompute
        blob = json.dumps(self._compute_info().to_dict(), indent=1)  # key order = input order
        atomic_write_bytes(path, blob.encode())
        # return the JSON round-trip so fresh and cached records compare equal
        self._info = info_from_dict(json.loads(blob))
        return self._info


class TorchWorkload(CachedInfoWorkload):
    """Base of the built-in models (see module docstring)."""

    config_cls: ClassVar[type]
    presets: ClassVar[dict[str, Any]]
    output_names: ClassVar[tuple[str, ...]]
    #: dotted name of the module holding the ``nn.Module`` code (hashed into cache keys)
    net_module: ClassVar[str]

    def __init__(self, size: str = "standard", **params: Any) -> None:
        if size not in self.presets:
            raise ValueError(f"workload {self.name!r}: unknown size {size!r}; allowed: {sorted(self.presets)}")
        fields = {f.name for f in dataclasses.fields(self.config_cls)}
        unknown = set(params) - fields
        if unknown:
            raise ValueError(
                f"workload {self.name!r}: unknown parameter(s) {sorted(unknown)}; allowed: {sorted(fields)}"
            )
        self.size = size
        self.config = dataclasses.replace(self.presets[size], **params)
        self._info = None

    # -- to implement -------------------------------------------------------------------
    @abstractmethod
    def _build(self) -> Any:
        """Construct the module from ``self.config`` (RNG already seeded by the caller)."""

    @abstractmethod
    def input_spec(self) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
        """Per-sample input shapes and dtype names, in positional order."""

    # -- shared ---------------------------------------------------------------------------
    @property
    def seed(self) -> int:
        return int(getattr(self.config, "seed", 0))

    def build_torch(self, device: str | None = None) -> Any:
        """Module in eval mode with weights drawn from ``torch.manual_seed(config.seed)``.

        ``device="meta"`` builds a weightless module (used for counting)."""
        # torch is optional: importing the zoo never imports it
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            if device is None:
                module = self._build()
            else:
                with torch.device(device):
                    module = self._build()
        return module.eval()

    def example_args(self, batch_size: int = 1, device: str = "cpu") -> tuple[Any, ...]:
        """``make_inputs(batch_size, 0)`` as a tuple of tensors in positional order."""
        # torch is optional: importing the zoo never imports it
        import torch

        inputs = self.make_inputs(batch_size, 0)
        return tuple(torch.from_numpy(a).to(device) for a in inputs.values())

    def cache_document(self) -> dict[str, Any]:
        src = inspect.getsourcefile(sys.modules[type(self).__module__])
        spec = importlib.util.find_spec(self.net_module)
        net_src = spec.origin if spec is not None else None
        return {
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "name": self.name,
            "size": self.size,
            "config": dataclasses.asdict(self.config),
            "source_sha256": file_digest(str(src)) if src else "",
            "net_sha256": file_digest(str(net_src)) if net_src else "",
            "torch": package_version("torch"),
            "format": INFO_FORMAT_VERSION,
        }

    def describe_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    def _extra_info(self, module: Any, device: str) -> dict[str, Any]:
        """Hook for subclasses: extra WorkloadInfo fields (e.g. decode FLOPs)."""
        return {}

    def _compute_info(self) -> WorkloadInfo:
        # Count on the meta device (no weights allocated); fall back to real CPU tensors
        # if an operator has no meta implementation.
        try:
            device = "meta"
            module = self.build_torch(device=device)
            counts = count_module(module, self.example_args(1, device))
            extra_fields = self._extra_info(module, device)
        except (NotImplementedError, RuntimeError):
            device = "cpu"
            module = self.build_torch()
            counts = count_module(module, self.example_args(1, device))
            extra_fields = self._extra_info(module, device)
        shapes, dtypes = self.input_spec()
        extra = dict(extra_fields.pop("extra", {}))
        extra.update(
            {
                "config": self.describe_config(),
                "activation_bytes_method": ("sum of output-tensor bytes of leaf modules on a batch-1 fp32 forward"),
                "counted_on_device": device,
            }
        )
        return WorkloadInfo(
            name=self.name,
            family=self.family,
            size=self.size,
            task=self.task,
            input_shapes=shapes,
            input_dtypes=dtypes,
            output_names=self.output_names,
            params=counts.params,
            weight_bytes=weight_bytes_for(counts.params),
            flops_per_sample=counts.flops,
            flops_method=counts.flops_method,
            activation_bytes_per_sample=counts.activation_bytes,
            extra=extra,
            **extra_fields,
        )


def rng(seed: int) -> np.random.Generator:
    """The input generator used by all built-in workloads."""
    return np.random.default_rng(seed)


def check_batch(batch_size: int) -> None:
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
