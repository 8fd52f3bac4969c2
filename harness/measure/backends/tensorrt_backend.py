"""TensorRT backend (TensorRT 10; optional extra ``tensorrt``; needs an NVIDIA GPU and CUDA-enabled torch).

Builds an engine from the workload's ONNX export with a dynamic batch axis (optimisation
profile min=1, opt=max=``max_batch_size``). Engines are cached on disk by content hash
(:func:`engine_key`: the ONNX bytes, TensorRT version, GPU name and compute capability and the
build options), so later cells and runs deserialize instead of rebuilding; ``describe()`` says
whether the engine was built or came from the cache.

Per model instance (each calling thread, via :class:`~harness.measure.backends.instances.InstancePool`):
one execution context, one CUDA stream with its own event, and one output buffer per output
name and shape. Staged inputs (``prepare``, untimed, synchronised before it returns) are device
tensors that instances only read. ``infer`` sets shapes and addresses on the instance's context,
enqueues ``execute_async_v3`` on the instance's stream, records the instance's event and waits
on that event only, so one instance is never charged for another's work (timing scope
:data:`TIMING_SCOPE`). The returned outputs are the instance's buffers: valid until the same
instance's next ``infer``.

Options: ``fp16`` (bool: FP16 kernels allowed, parity at fp16 tolerance), ``max_batch_size``
(int, default 64), ``workspace_mb``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness.measure.backends.base import Backend, BackendUnavailable, Capabilities
from harness.measure.backends.instances import InstancePool
from harness.store.results import atomic_write_bytes

TIMING_SCOPE = (
    "staged inputs on device -> outputs complete on device in this instance's buffers "
    "(event on this instance's CUDA stream synchronised; no device-to-host copy)"
)


def engine_cache_dir() -> Path:
    """Where built engines are kept (``$HARNESS_CACHE_DIR/tensorrt-engines``)."""
    root = Path(os.environ.get("HARNESS_CACHE_DIR", Path.home() / ".cache" / "inference-harness"))
    return root / "tensorrt-engines"


def engine_key(onnx: bytes, trt_version: str, gpu: str, capability: tuple[int, ...], build: Mapping[str, Any]) -> str:
    """Content hash naming a cached engine: any change to the model, TensorRT, the GPU or the
    build options gives a new key."""
    h = hashlib.sha256(onnx)
    h.update(
        json.dumps(
            {"trt": trt_version, "gpu": gpu, "sm": list(capability), "build": dict(build)}, sort_keys=True
        ).encode()
    )
    return h.hexdigest()[:32]


def load_or_build(key: str, build: Callable[[], bytes], cache: Path) -> tuple[bytes, str]:
    """The serialized engine named ``key`` from ``cache`` (``"hit"``), else ``build()`` it and
    store it atomically (``"built"``)."""

    path = cache / f"{key}.engine"
    if path.exists():
        return path.read_bytes(), "hit"
    blob = build()
    atomic_write_bytes(path, blob)
    return blob, "built"


@dataclass
class _Instance:
    """What one model instance owns: execution context, stream, event, output buffers."""

    context: Any
    stream: Any
    event: Any
    outputs: dict[tuple[str, tuple[int, ...]], Any] = field(default_factory=dict)


class TensorRTBackend(Backend):
    name: ClassVar[str] = "tensorrt"
    capabilities: ClassVar[Capabilities] = Capabilities(
        devices=("cuda",),
        dtypes=("fp32", "fp16"),
        options={
            "fp16": "allow FP16 kernels (bool)",
            "max_batch_size": "largest batch of the optimisation profile (default 64)",
            "workspace_mb": "builder workspace limit in MiB",
        },
    )

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            return False, "tensorrt is not installed: pip install 'inference-harness[tensorrt]' (NVIDIA GPU hosts)"
        # deferred: torch (CUDA buffers) is an optional extra, loaded only with this backend
        try:
            import torch
        except ImportError:
            return False, "the tensorrt backend binds buffers with CUDA-enabled torch, which is not installed"
        if not torch.cuda.is_available():
            return False, "no CUDA device visible (torch.cuda.is_available() is False)"
        return True, ""

    def compute_dtype(self) -> str:
        """Precision of this variant (parity tolerance): ``fp16`` when FP16 kernels are allowed."""
        return "fp16" if self.options.get("fp16") else "fp32"

    def _build_options(self) -> dict[str, Any]:
        return {
            "fp16": bool(self.options.get("fp16", False)),
            "max_batch_size": int(self.options.get("max_batch_size", 64)),
            "workspace_mb": self.options.get("workspace_mb"),
        }

    def load(self, workload: Any, device: str = "cuda") -> None:
        ok, why = self.available()
        if not ok:
            raise BackendUnavailable(why)
        import tensorrt as trt  # heavy optional dependency: kept out of `import harness`
        import torch  # heavy optional dependency: kept out of `import harness`

        self._torch = torch
        self._trt = trt
        self.device = device if device.startswith("cuda") else "cuda"
        dev = torch.device(self.device)
        logger = trt.Logger(trt.Logger.WARNING)
        path = workload.onnx_path()
        onnx = path.read_bytes()
        key = engine_key(
            onnx,
            trt.__version__,
            torch.cuda.get_device_name(dev),
            tuple(torch.cuda.get_device_capability(dev)),
            self._build_options(),
        )
        blob, self._cache_state = load_or_build(
            key, lambda: self._build(trt, logger, onnx, str(path)), engine_cache_dir()
        )
        self._engine_key = key
        engine = trt.Runtime(logger).deserialize_cuda_engine(blob)
        if engine is None:
            raise RuntimeError(f"TensorRT could not deserialize the engine {engine_cache_dir() / key}.engine")
        dtypes = {
            trt.float32: torch.float32,
            trt.float16: torch.float16,
            trt.int64: torch.int64,
            trt.int32: torch.int32,
        }
        self._bind_engine(engine, trt.TensorIOMode.INPUT, lambda name: dtypes[engine.get_tensor_dtype(name)])

    def _build(self, trt: Any, logger: Any, onnx: bytes, source: str) -> bytes:
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT could not parse {source}: {errors}")
        config = builder.create_builder_config()
        if self.options.get("fp16"):
            config.set_flag(trt.BuilderFlag.FP16)
        if "workspace_mb" in self.options:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(self.options["workspace_mb"]) << 20)
        max_b = int(self.options.get("max_batch_size", 64))
        prof = builder.create_optimization_profile()
        for i in range(network.num_inputs):
            t = network.get_input(i)
            shape = [d if d > 0 else 1 for d in t.shape]
            prof.set_shape(t.name, [1, *shape[1:]], [max_b, *shape[1:]], [max_b, *shape[1:]])
        config.add_optimization_profile(prof)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError("TensorRT engine build failed")
        return bytes(serialized)

    def _bind_engine(self, engine: Any, input_mode: Any, out_dtype: Callable[[str], Any]) -> None:
        """Tensor names of ``engine`` and the per-instance pool (the seam tests use with fakes)."""
        self._engine = engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._inputs = [n for n in names if engine.get_tensor_mode(n) == input_mode]
        self._outputs = [n for n in names if engine.get_tensor_mode(n) != input_mode]
        self._out_dtype = {n: out_dtype(n) for n in self._outputs}
        self._instances: InstancePool[_Instance] = InstancePool(self._new_instance)

    def _new_instance(self) -> _Instance:
        stream, event = self._new_stream()
        return _Instance(self._engine.create_execution_context(), stream, event)

    def _new_stream(self) -> tuple[Any, Any]:
        """A non-default CUDA stream and an event to complete on (one pair per instance)."""
        torch = self._torch
        return torch.cuda.Stream(device=self.device), torch.cuda.Event()

    def _new_buffer(self, name: str, shape: tuple[int, ...]) -> Any:
        return self._torch.empty(shape, dtype=self._out_dtype[name], device=self.device)

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        torch = self._torch
        staged = {name: torch.from_numpy(np.ascontiguousarray(inputs[name])).to(self.device) for name in self._inputs}
        torch.cuda.synchronize(torch.device(self.device))  # staging complete before any clock starts
        return {"in": staged}

    def infer(self, prepared: dict[str, Any]) -> list[Any]:
        inst = self._instances.get()
        ctx = inst.context
        for name, t in prepared["in"].items():
            ctx.set_input_shape(name, tuple(t.shape))
            ctx.set_tensor_address(name, t.data_ptr())
        outs = []
        for name in self._outputs:
            shape = tuple(ctx.get_tensor_shape(name))
            buf = inst.outputs.get((name, shape))
            if buf is None:  # once per instance and shape
                buf = inst.outputs[(name, shape)] = self._new_buffer(name, shape)
            ctx.set_tensor_address(name, buf.data_ptr())
            outs.append(buf)
        if not ctx.execute_async_v3(inst.stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        inst.event.record(inst.stream)
        inst.event.synchronize()
        return outs

    def to_numpy(self, outputs: Any) -> list[np.ndarray]:
        return [o.float().cpu().numpy() for o in outputs]

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["tensorrt_version"] = self._trt.__version__
        d["dtype"] = self.compute_dtype()
        d["timing_scope"] = TIMING_SCOPE
        d["engine_cache"] = {"state": getattr(self, "_cache_state", None), "key": getattr(self, "_engine_key", None)}
        d["instances"] = self._instances.created
        return d

    def close(self) -> None:
        pool = getattr(self, "_instances", None)
        if pool is not None:
            pool.clear()  # contexts, streams and buffers go with their instances
        self._instances = InstancePool(self._new_instance)
        self._engine = None
