"""ONNX Runtime backend.

Options: ``graph_optimization_level`` (``disable``/``basic``/``extended``/``all``),
``intra_op_threads``, ``inter_op_threads``, ``execution_mode`` (``sequential``/``parallel``),
``providers`` (list of execution-provider names, in priority order). When ``providers`` is not
given, the accelerated providers present in this ONNX Runtime build are taken for a ``cuda``
device (TensorRT, CUDA), OpenVINO when present, then the CPU provider.

CPU providers: ``session.run`` on host arrays returns host arrays (timing scope
:data:`HOST_TIMING_SCOPE`). CUDA or TensorRT providers on a ``cuda`` device use IO binding:
``prepare`` (untimed) stages every input as a device ``OrtValue``; ``infer`` binds the staged
inputs and host (``cpu``) outputs on this model instance's own ``IOBinding`` (one per calling
thread, :class:`~harness.measure.backends.instances.InstancePool`) and runs it, so no
host-to-device copy is timed and outputs are host-visible when it returns (timing scope
:data:`IO_BINDING_TIMING_SCOPE`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from harness.measure.backends.base import Backend, BackendUnavailable, Capabilities
from harness.measure.backends.instances import InstancePool

HOST_TIMING_SCOPE = "host inputs -> host outputs (session.run)"
IO_BINDING_TIMING_SCOPE = (
    "staged inputs on device (OrtValue) -> outputs host-visible (bound to cpu, copied by ONNX Runtime "
    "within run_with_iobinding; one IO binding per instance)"
)
#: providers whose inputs live on the GPU, so IO binding keeps staging off the clock
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")

_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def choose_providers(available: list[str], device: str, requested: list[str] | None) -> list[str]:
    """Execution providers to use, in order. Requested ones that this build lacks are an error."""
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise BackendUnavailable(f"execution providers {missing} not in this build; available: {available}")
        return list(requested)
    order = []
    if device.startswith("cuda"):
        order += ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    order += ["OpenVINOExecutionProvider", "CPUExecutionProvider"]
    chosen = [p for p in order if p in available]
    if device.startswith("cuda") and not any(p in chosen for p in order[:2]):
        raise BackendUnavailable(f"device {device!r} requested but no GPU provider in {available}")
    return chosen


class OrtBackend(Backend):
    name: ClassVar[str] = "onnxruntime"
    capabilities: ClassVar[Capabilities] = Capabilities(
        devices=("cpu", "cuda"),
        dtypes=("fp32",),
        options={
            "graph_optimization_level": "disable | basic | extended | all (default all)",
            "intra_op_threads": "threads inside an operator (0 = library default)",
            "inter_op_threads": "threads across operators (parallel mode only)",
            "execution_mode": "sequential | parallel",
            "providers": "execution providers in priority order",
        },
    )

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return False, "onnxruntime is not installed: pip install 'inference-harness[onnxruntime]'"
        return True, ""

    def load(self, workload: Any, device: str = "cpu") -> None:
        # deferred: onnxruntime is an optional extra, loaded only by this backend
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailable(self.available()[1]) from exc
        self._ort = ort
        self.device = device
        path = workload.onnx_path()
        so = ort.SessionOptions()
        level = self.options.get("graph_optimization_level", "all")
        if level not in _LEVELS:
            raise ValueError(f"onnxruntime: graph_optimization_level {level!r} not one of {sorted(_LEVELS)}")
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[level])
        so.intra_op_num_threads = int(self.options.get("intra_op_threads", 0))
        so.inter_op_num_threads = int(self.options.get("inter_op_threads", 0))
        mode = self.options.get("execution_mode", "sequential")
        so.execution_mode = ort.ExecutionMode.ORT_PARALLEL if mode == "parallel" else ort.ExecutionMode.ORT_SEQUENTIAL
        providers = choose_providers(ort.get_available_providers(), device, self.options.get("providers"))
        self._session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
        self._inputs = [(i.name, i.type) for i in self._session.get_inputs()]
        self._model_path = str(path)
        self._setup_binding(self._session, device, ort.OrtValue.ortvalue_from_numpy)

    def _setup_binding(self, session: Any, device: str, to_device: Any) -> None:
        """Use IO binding when ``session`` runs on a GPU provider for a ``cuda`` device (the seam
        tests use with fakes). ``to_device(array, "cuda", device_id)`` stages an input."""
        self._outputs = [o.name for o in session.get_outputs()]
        self._bindings: InstancePool[Any] | None = None
        active = session.get_providers()
        if device.startswith("cuda") and active and active[0] in GPU_PROVIDERS and hasattr(session, "io_binding"):
            self._device_id = int(device.split(":", 1)[1]) if ":" in device else 0
            self._to_device = to_device
            self._bindings = InstancePool(session.io_binding)

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        names = [n for n, _ in self._inputs]
        missing = [n for n in names if n not in inputs]
        if missing:
            raise ValueError(f"ONNX model expects inputs {names}; missing {missing}")
        out = {}
        for name, typ in self._inputs:
            arr = inputs[name]
            if typ == "tensor(float)" and arr.dtype != np.float32:
                arr = arr.astype(np.float32)
            elif typ == "tensor(int64)" and arr.dtype != np.int64:
                arr = arr.astype(np.int64)
            out[name] = np.ascontiguousarray(arr)
        if self._bindings is None:
            return out
        return {name: self._to_device(arr, "cuda", self._device_id) for name, arr in out.items()}

    def infer(self, prepared: dict[str, Any]) -> list[np.ndarray]:
        if self._bindings is None:
            host: list[np.ndarray] = self._session.run(None, prepared)
            return host
        b = self._bindings.get()
        b.clear_binding_inputs()
        b.clear_binding_outputs()
        for name, value in prepared.items():
            b.bind_ortvalue_input(name, value)
        for name in self._outputs:
            b.bind_output(name, "cpu")
        self._session.run_with_iobinding(b)
        outputs: list[np.ndarray] = b.copy_outputs_to_cpu()
        return outputs

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(
            onnxruntime_version=self._ort.__version__,
            providers=self._session.get_providers(),
            model_path=self._model_path,
            io_binding=self._bindings is not None,
            timing_scope=HOST_TIMING_SCOPE if self._bindings is None else IO_BINDING_TIMING_SCOPE,
        )
        return d

    def close(self) -> None:
        pool = getattr(self, "_bindings", None)
        if pool is not None:
            pool.clear()
        self._bindings = None
        self._session = None
