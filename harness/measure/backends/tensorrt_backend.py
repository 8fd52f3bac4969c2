"""TensorRT backend (optional extra ``tensorrt``; needs an NVIDIA GPU and CUDA-enabled torch).

Builds an engine from the workload's ONNX export with a dynamic batch axis (optimisation
profile min=1, opt=max=``max_batch_size``), binds inputs and outputs to CUDA tensors, runs
``execute_async_v3`` on the current CUDA stream and synchronises before ``infer`` returns.
Options: ``fp16`` (bool), ``max_batch_size`` (int, default 64), ``workspace_mb``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from harness.measure.backends.base import Backend, BackendUnavailable, Capabilities


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
        try:
            import torch
        except ImportError:
            return False, "the tensorrt backend binds buffers with CUDA-enabled torch, which is not installed"
        if not torch.cuda.is_available():
            return False, "no CUDA device visible (torch.cuda.is_available() is False)"
        return True, ""

    def load(self, workload: Any, device: str = "cuda") -> None:
        ok, why = self.available()
        if not ok:
            raise BackendUnavailable(why)
        import tensorrt as trt
        import torch

        self._torch = torch
        self.device = device if device.startswith("cuda") else "cuda"
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        path = workload.onnx_path()
        if not parser.parse(path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT could not parse {path}: {errors}")
        config = builder.create_builder_config()
        if self.options.get("fp16"):
            config.set_flag(trt.BuilderFlag.FP16)
        if "workspace_mb" in self.options:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(self.options["workspace_mb"]) << 20)
        max_b = int(self.options.get("max_batch_size", 64))
        prof = builder.create_optimization_profile()
        for i in range(network.num_inputs):
            t = network.get_input(i)
            dims = list(t.shape)
            shape = [d if d > 0 else 1 for d in dims]
            prof.set_shape(t.name, [1, *shape[1:]], [max_b, *shape[1:]], [max_b, *shape[1:]])
        config.add_optimization_profile(prof)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError("TensorRT engine build failed")
        self._engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self._inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._trt = trt

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        torch = self._torch
        staged = {}
        for name in self._inputs:
            arr = np.ascontiguousarray(inputs[name])
            staged[name] = torch.from_numpy(arr).to(self.device)
        ctx = self._context
        for name, t in staged.items():
            ctx.set_input_shape(name, tuple(t.shape))
        outs = {}
        for name in self._outputs:
            shape = tuple(ctx.get_tensor_shape(name))
            dtype = {
                self._trt.float32: torch.float32,
                self._trt.float16: torch.float16,
                self._trt.int64: torch.int64,
                self._trt.int32: torch.int32,
            }[self._engine.get_tensor_dtype(name)]
            outs[name] = torch.empty(shape, dtype=dtype, device=self.device)
        return {"in": staged, "out": outs}

    def infer(self, prepared: dict[str, Any]) -> list[Any]:
        ctx = self._context
        for name, t in prepared["in"].items():
            ctx.set_input_shape(name, tuple(t.shape))
            ctx.set_tensor_address(name, t.data_ptr())
        for name, t in prepared["out"].items():
            ctx.set_tensor_address(name, t.data_ptr())
        stream = self._torch.cuda.current_stream()
        if not ctx.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        stream.synchronize()
        return list(prepared["out"].values())

    def to_numpy(self, outputs: Any) -> list[np.ndarray]:
        return [o.float().cpu().numpy() for o in outputs]

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["tensorrt_version"] = self._trt.__version__
        return d

    def close(self) -> None:
        self._context = None
        self._engine = None
