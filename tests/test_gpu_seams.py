"""GPU timing rules, exercised through fakes at the narrowest seam (no GPU needed).

* torch on CUDA: each instance thread runs on its own stream and completes on its own event;
  the device is never synchronised as a whole inside ``infer``.
* TensorRT: one execution context, stream, event and output buffer set per instance; engines
  cached by content hash.
* ONNX Runtime on CUDA/TensorRT providers: device-staged inputs, one IO binding per instance,
  inputs and host outputs bound on every call.
* Parity tolerance follows the variant's precision whatever the option is called.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from harness.measure.backends.instances import InstancePool
from harness.measure.backends.ort_backend import IO_BINDING_TIMING_SCOPE, OrtBackend
from harness.measure.backends.tensorrt_backend import TensorRTBackend, engine_key, load_or_build
from harness.measure.backends.torch_backend import CPU_TIMING_SCOPE, TorchBackend
from harness.measure.parity import variant_dtype

THREADS = 3
CALLS = 4


def _run_threads(fn: Any, n: int = THREADS) -> list[Any]:
    """Run ``fn(i)`` in ``n`` threads at once; return results; re-raise the first error."""
    out: list[Any] = [None] * n
    errors: list[BaseException] = []

    def main(i: int) -> None:
        try:
            out[i] = fn(i)
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    ts = [threading.Thread(target=main, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    return out


# ---------------------------------------------------------------- instance pool


def test_instance_pool_one_state_per_live_thread_reused_after_exit() -> None:
    made = itertools.count()
    pool: InstancePool[int] = InstancePool(lambda: next(made))
    barrier = threading.Barrier(THREADS)

    def hold(_: int) -> int:
        s = pool.get()
        barrier.wait()  # every thread holds its state at the same time
        assert pool.get() == s
        return s

    first = _run_threads(hold)
    assert sorted(first) == list(range(THREADS)) and pool.created == THREADS
    assert pool.free == THREADS  # returned when the threads ended
    barrier = threading.Barrier(THREADS)
    second = _run_threads(hold)
    assert sorted(second) == sorted(first) and pool.created == THREADS  # nothing new created
    pool.clear()
    assert pool.created == 0 and pool.get() == THREADS


# ---------------------------------------------------------------- torch on CUDA


class FakeCudaStream:
    def __init__(self, device: Any = None) -> None:
        self.device = device


class FakeCudaEvent:
    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def record(self, stream: Any) -> None:
        self.log.append(("record", stream))

    def synchronize(self) -> None:
        self.log.append(("synchronize", None))


def fake_torch() -> SimpleNamespace:
    current = threading.local()

    @contextmanager
    def stream(s: Any) -> Iterator[None]:
        prev = getattr(current, "s", None)
        current.s = s
        try:
            yield
        finally:
            current.s = prev

    @contextmanager
    def inference_mode() -> Iterator[None]:
        yield

    def synchronize(*_: Any) -> None:
        raise AssertionError("infer must not synchronise the whole device")

    cuda = SimpleNamespace(
        Stream=FakeCudaStream,
        Event=FakeCudaEvent,
        stream=stream,
        synchronize=synchronize,
        current=lambda: getattr(current, "s", None),
    )
    return SimpleNamespace(cuda=cuda, inference_mode=inference_mode)


def test_torch_cuda_instances_use_their_own_stream_and_event() -> None:
    torch = fake_torch()
    barrier = threading.Barrier(THREADS)
    seen: list[tuple[int, Any]] = []

    def module(*args: Any) -> tuple[int, Any]:
        seen.append((threading.get_ident(), torch.cuda.current()))
        return args[0], torch.cuda.current()

    b: Any = TorchBackend()  # fakes stand in for the torch module
    b._torch, b._module, b._cuda, b.device = torch, module, True, "cuda:0"
    b._lanes = InstancePool(b._new_lane)

    def instance(i: int) -> Any:
        barrier.wait()  # all instances run at once
        outs = [b.infer((i,)) for _ in range(CALLS)]
        assert all(o[1] is outs[0][1] for o in outs)  # same stream for every call of this instance
        barrier.wait()  # still alive: no instance has handed its stream on
        return outs[0][1], b._lanes.get()

    res = _run_threads(instance)
    streams = [s for s, _ in res]
    assert len({id(s) for s in streams}) == THREADS and all(isinstance(s, FakeCudaStream) for s in streams)
    for stream, lane in res:
        assert lane.stream is stream
        # per call: record on this instance's stream, then wait on that event only
        assert lane.event.log == [("record", stream), ("synchronize", None)] * CALLS
    assert len({id(lane.event) for _, lane in res}) == THREADS
    assert all(s is not None for _, s in seen) and len(seen) == THREADS * CALLS


def test_torch_cpu_path_uses_no_stream() -> None:
    torch = fake_torch()
    b: Any = TorchBackend()  # fakes stand in for the torch module
    b._torch, b._module, b._cuda, b.device = torch, lambda x: ("out", torch.cuda.current()), False, "cpu"
    b._lanes = InstancePool(b._new_lane)
    assert b.infer((1,)) == ("out", None) and b._lanes.created == 0


# ---------------------------------------------------------------- TensorRT


class FakeTrtContext:
    def __init__(self, ident: int) -> None:
        self.ident = ident
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self.calls: list[tuple[dict[str, int], int]] = []

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> None:
        self.shapes[name] = shape

    def set_tensor_address(self, name: str, ptr: int) -> None:
        self.addresses[name] = ptr

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return (self.shapes["x"][0], 4)

    def execute_async_v3(self, stream_handle: int) -> bool:
        self.calls.append((dict(self.addresses), stream_handle))
        self.addresses.clear()  # every call must set every address again
        return True


class FakeEngine:
    num_io_tensors = 2

    def __init__(self) -> None:
        self.contexts: list[FakeTrtContext] = []

    def get_tensor_name(self, i: int) -> str:
        return ["x", "y"][i]

    def get_tensor_mode(self, name: str) -> str:
        return "IN" if name == "x" else "OUT"

    def create_execution_context(self) -> FakeTrtContext:
        self.contexts.append(FakeTrtContext(len(self.contexts)))
        return self.contexts[-1]


class FakeBuffer:
    _ptr = itertools.count(0x1000, 0x100)

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self.ptr = next(self._ptr)

    def data_ptr(self) -> int:
        return self.ptr


_handles = itertools.count(1)


def _trt_backend() -> tuple[TensorRTBackend, FakeEngine]:
    engine = FakeEngine()
    b = TensorRTBackend()
    b._new_stream = lambda: (SimpleNamespace(cuda_stream=next(_handles)), FakeCudaEvent())  # type: ignore[method-assign]
    b._new_buffer = lambda name, shape: FakeBuffer(shape)  # type: ignore[method-assign]
    b._bind_engine(engine, "IN", lambda name: "float32")
    return b, engine


def test_tensorrt_instances_never_share_context_stream_or_outputs() -> None:
    b, engine = _trt_backend()
    shared = {"in": {"x": FakeBuffer((2, 8))}}  # staged inputs are shared, read-only
    barrier = threading.Barrier(THREADS)

    def instance(_: int) -> Any:
        barrier.wait()
        outs = [b.infer(shared) for _ in range(CALLS)]
        inst = b._instances.get()
        assert all(o[0] is outs[0][0] for o in outs)  # this instance's buffer, reused
        barrier.wait()  # still alive: no instance has handed its context on
        return inst, outs[0][0]

    res = _run_threads(instance)
    assert len(engine.contexts) == THREADS
    assert len({id(inst.context) for inst, _ in res}) == THREADS
    assert len({out.data_ptr() for _, out in res}) == THREADS
    assert len({inst.stream.cuda_stream for inst, _ in res}) == THREADS
    for inst, out in res:
        ctx = inst.context
        assert len(ctx.calls) == CALLS
        for addresses, handle in ctx.calls:  # inputs and outputs bound on every call
            assert addresses == {"x": shared["in"]["x"].data_ptr(), "y": out.data_ptr()}
            assert handle == inst.stream.cuda_stream  # enqueued on its own stream, not the default
        assert inst.event.log == [("record", inst.stream), ("synchronize", None)] * CALLS
    # later threads (the measured run after warm-up) reuse the contexts: none created on the clock
    _run_threads(lambda _: b.infer(shared))
    assert len(engine.contexts) == THREADS


def test_tensorrt_output_buffer_per_shape_per_instance() -> None:
    b, _ = _trt_backend()
    o2 = b.infer({"in": {"x": FakeBuffer((2, 8))}})[0]
    o5 = b.infer({"in": {"x": FakeBuffer((5, 8))}})[0]
    assert o2.shape == (2, 4) and o5.shape == (5, 4) and o2 is not o5
    assert b.infer({"in": {"x": FakeBuffer((2, 8))}})[0] is o2


def test_engine_cache_by_content_hash(tmp_path: Path) -> None:
    base = engine_key(b"onnx", "10.0", "H100", (9, 0), {"fp16": False})
    assert base == engine_key(b"onnx", "10.0", "H100", (9, 0), {"fp16": False})
    for other in (
        engine_key(b"onnx2", "10.0", "H100", (9, 0), {"fp16": False}),
        engine_key(b"onnx", "10.1", "H100", (9, 0), {"fp16": False}),
        engine_key(b"onnx", "10.0", "L4", (8, 9), {"fp16": False}),
        engine_key(b"onnx", "10.0", "H100", (9, 0), {"fp16": True}),
    ):
        assert other != base
    builds: list[int] = []

    def build() -> bytes:
        builds.append(1)
        return b"engine-bytes"

    assert load_or_build(base, build, tmp_path) == (b"engine-bytes", "built")
    assert load_or_build(base, build, tmp_path) == (b"engine-bytes", "hit")
    assert len(builds) == 1 and (tmp_path / f"{base}.engine").read_bytes() == b"engine-bytes"


# ---------------------------------------------------------------- ONNX Runtime IO binding


class FakeBinding:
    def __init__(self, session: FakeSession) -> None:
        self.session = session
        self.inputs: dict[str, Any] = {}
        self.outputs: dict[str, str] = {}
        self.log: list[str] = []

    def clear_binding_inputs(self) -> None:
        self.inputs.clear()
        self.log.append("clear_in")

    def clear_binding_outputs(self) -> None:
        self.outputs.clear()
        self.log.append("clear_out")

    def bind_ortvalue_input(self, name: str, value: Any) -> None:
        self.inputs[name] = value
        self.log.append(f"in:{name}")

    def bind_output(self, name: str, device_type: str = "cpu") -> None:
        self.outputs[name] = device_type
        self.log.append(f"out:{name}:{device_type}")

    def copy_outputs_to_cpu(self) -> list[np.ndarray]:
        return [np.full(2, self.inputs["x"].value.sum()) for _ in self.outputs]


class FakeSession:
    def __init__(self, providers: list[str]) -> None:
        self.providers = providers
        self.bindings: list[FakeBinding] = []
        self.runs: list[tuple[FakeBinding, dict[str, Any], dict[str, str]]] = []
        self.lock = threading.Lock()

    def get_outputs(self) -> list[Any]:
        return [SimpleNamespace(name="y")]

    def get_providers(self) -> list[str]:
        return self.providers

    def io_binding(self) -> FakeBinding:
        b = FakeBinding(self)
        self.bindings.append(b)
        return b

    def run_with_iobinding(self, binding: FakeBinding) -> None:
        with self.lock:
            self.runs.append((binding, dict(binding.inputs), dict(binding.outputs)))

    def run(self, names: Any, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [feed["x"] * 2]


def _ort(providers: list[str], device: str) -> tuple[OrtBackend, FakeSession]:
    sess = FakeSession(providers)
    b = OrtBackend()
    b._session, b._inputs = sess, [("x", "tensor(float)")]
    b._setup_binding(sess, device, lambda arr, kind, dev: SimpleNamespace(value=arr, device=(kind, dev)))
    return b, sess


def test_ort_gpu_provider_binds_device_inputs_and_host_outputs_per_call() -> None:
    b, sess = _ort(["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda:1")
    staged = b.prepare({"x": np.ones((2, 3), dtype=np.float64)})
    assert staged["x"].device == ("cuda", 1) and staged["x"].value.dtype == np.float32  # on device, untimed
    barrier = threading.Barrier(THREADS)

    def instance(_: int) -> Any:
        barrier.wait()
        outs = [b.infer(staged) for _ in range(CALLS)]
        assert all(isinstance(o[0], np.ndarray) for o in outs)  # host-visible
        barrier.wait()  # still alive: no instance has handed its binding on
        return b._bindings.get() if b._bindings else None

    used = _run_threads(instance)
    assert len({id(u) for u in used}) == THREADS == len(sess.bindings)  # one IO binding per instance
    assert len(sess.runs) == THREADS * CALLS
    for _binding, inputs, outputs in sess.runs:
        assert inputs == {"x": staged["x"]} and outputs == {"y": "cpu"}
    for binding in sess.bindings:  # bound afresh on every call
        assert binding.log == ["clear_in", "clear_out", "in:x", "out:y:cpu"] * CALLS
    b._ort, b._model_path = SimpleNamespace(__version__="fake"), "model.onnx"
    d = b.describe()
    assert d["io_binding"] is True and d["timing_scope"] == IO_BINDING_TIMING_SCOPE


@pytest.mark.parametrize(
    ("providers", "device"),
    [(["CPUExecutionProvider"], "cpu"), (["OpenVINOExecutionProvider", "CPUExecutionProvider"], "cpu")],
)
def test_ort_cpu_providers_keep_session_run(providers: list[str], device: str) -> None:
    b, sess = _ort(providers, device)
    staged = b.prepare({"x": np.ones(3)})
    assert isinstance(staged["x"], np.ndarray)
    assert np.array_equal(b.infer(staged)[0], np.full(3, 2.0, dtype=np.float32))
    assert not sess.bindings and not sess.runs


# ---------------------------------------------------------------- parity precision


def test_parity_precision_follows_the_variant() -> None:
    assert variant_dtype(TensorRTBackend(fp16=True)) == "fp16"
    assert variant_dtype(TensorRTBackend(), "bf16") == "fp32"  # declared precision wins
    assert variant_dtype(TorchBackend(dtype="bf16")) == "bf16"
    assert variant_dtype(SimpleNamespace(), "fp16") == "fp16"  # no declaration: the option


def test_parity_check_uses_the_variant_tolerance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    from harness.measure.parity import check
    from workloads.registry import get_workload

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))

    class Perturbed(TorchBackend):
        """Outputs 0.3 % off: inside fp16 tolerance, outside fp32's."""

        precision = "fp32"

        def compute_dtype(self) -> str:
            return self.precision

        def to_numpy(self, outputs: Any) -> list[np.ndarray]:
            return [o * 1.003 + 1e-3 for o in super().to_numpy(outputs)]

    w = get_workload("tabular_mlp", "tiny")
    b = Perturbed()
    b.load(w, "cpu")
    try:
        assert check(b, w).passed is False
        b.precision = "fp16"
        assert check(b, w).passed is True
        assert b.describe()["timing_scope"] == CPU_TIMING_SCOPE
    finally:
        b.close()
