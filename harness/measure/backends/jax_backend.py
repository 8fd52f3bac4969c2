"""JAX / XLA backend: the zoo's models compiled by XLA, on CPU, GPU or TPU.

The model is the workload's own PyTorch module translated to a pure JAX function with the same
weights (:func:`workloads.jax_nets.to_jax`), then ``jax.jit``-compiled for the cell's device.
The parity check compares it with the PyTorch eager fp32 reference like any other backend.

Devices: ``cpu``, ``cuda[:N]`` (JAX's ``gpu`` platform) and ``tpu[:N]``. Options: ``dtype``
(``fp32``, ``bf16`` or ``fp16``: weights and float inputs are cast; outputs are returned as
float32), ``threads`` (XLA's CPU intra-op threads; applied only when this process has not
imported JAX yet, else recorded as not applied).

Timing scope (:data:`TIMING_SCOPE`): ``prepare`` (untimed) puts the inputs on the device;
``infer`` runs the compiled function and copies the outputs to host memory
(``jax.device_get``), so they are host-visible when it returns. Compilation happens at
``load`` for the batch shapes the warm-up forms (each new shape compiles once, untimed when
the scenario warms it up). Token streams (``generate``): greedy decoding over a fixed-shape KV
cache with compiled prefill (prompt padded to a power of two) and decode steps; batched
stepping is not implemented (the token-stream scenario then uses its per-request engine and
says why).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import numpy as np

from harness.measure.backends.base import Backend, BackendUnavailable, Capabilities

TIMING_SCOPE = "staged inputs on device (jax.device_put) -> outputs host-visible (jax.device_get)"
_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
_PLATFORMS = {"cpu": "cpu", "cuda": "gpu", "tpu": "tpu"}


def _jax() -> Any:
    # deferred: JAX is an optional extra ([jax]); importing harness never imports it
    import jax

    return jax


class JaxBackend(Backend):
    name: ClassVar[str] = "jax"
    capabilities: ClassVar[Capabilities] = Capabilities(
        devices=("cpu", "cuda", "tpu"),
        dtypes=("fp32", "bf16", "fp16"),
        streaming=True,
        options={
            "dtype": "fp32 | bf16 | fp16 (default fp32)",
            "threads": "XLA CPU intra-op threads (only before JAX is first imported in the process)",
        },
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        dtype = str(self.options.get("dtype", "fp32"))
        if dtype not in _DTYPES:
            raise ValueError(f"backend 'jax': dtype {dtype!r} not supported; allowed: {', '.join(_DTYPES)}")
        self.dtype = dtype
        self._fn: Any = None
        self._params: Any = None
        self._device: Any = None
        self._module: Any = None
        self._decoder: tuple[Any, Any, Any] | None = None
        self._threads_note = ""

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import jax  # noqa: F401
        except ImportError:
            return False, "jax is not installed: pip install 'inference-harness[jax]'"
        return True, ""

    def _apply_threads(self) -> None:
        threads = self.options.get("threads")
        if threads is None:
            return
        if "jax" in sys.modules:
            self._threads_note = f"threads={threads} not applied: JAX was already imported in this process"
            return
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_cpu_multi_thread_eigen={'false' if int(threads) == 1 else 'true'} "
            f"intra_op_parallelism_threads={int(threads)}"
        ).strip()
        self._threads_note = f"XLA_FLAGS={os.environ['XLA_FLAGS']}"

    def load(self, workload: Any, device: str = "cpu") -> None:
        self._apply_threads()
        jax = _jax()
        from workloads.jax_nets import decoder_steps, to_jax

        kind, _, idx = device.partition(":")
        platform = _PLATFORMS.get(kind)
        if platform is None:
            raise BackendUnavailable(f"backend 'jax': device {device!r} not supported; allowed: cpu, cuda[:N], tpu[:N]")
        try:
            devices = jax.devices(platform)
        except RuntimeError as exc:
            raise BackendUnavailable(f"backend 'jax': no {platform} device: {exc}") from None
        n = int(idx or 0)
        if n >= len(devices):
            raise BackendUnavailable(f"backend 'jax': {device} requested, {len(devices)} {platform} device(s) present")
        self.device = device
        self._device = devices[n]
        module = workload.build_torch().eval()
        params, forward = to_jax(module)
        dt = getattr(jax.numpy, _DTYPES[self.dtype])
        self._params = jax.device_put({k: v.astype(dt) for k, v in params.items()}, self._device)
        self._fn = jax.jit(forward)
        if getattr(workload, "generative", False):
            self._module = module
            prefill, decode, new_cache = decoder_steps(module)
            self._decoder = (jax.jit(prefill), jax.jit(decode, donate_argnums=(1,)), new_cache)

    def _cast(self, a: np.ndarray) -> np.ndarray:
        if a.dtype == np.int64:
            return a.astype(np.int32)  # JAX runs 32-bit integers unless x64 is enabled
        if np.issubdtype(a.dtype, np.floating) and self.dtype != "fp32":
            import ml_dtypes  # noqa: F401 - registers bfloat16 with NumPy (a JAX dependency)

            return a.astype(_DTYPES[self.dtype])
        return a

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> Any:
        jax = _jax()
        return [jax.device_put(self._cast(np.asarray(v)), self._device) for v in inputs.values()]

    def infer(self, prepared: Any) -> Any:
        out = self._fn(self._params, *prepared)
        return _jax().device_get(out)

    def to_numpy(self, outputs: Any) -> list[np.ndarray]:
        return [np.asarray(outputs, dtype=np.float32)]

    def generate(self, prompt_ids: np.ndarray, max_new_tokens: int) -> Iterator[int]:
        if self._decoder is None:
            raise NotImplementedError("backend 'jax': the workload is not a decoder")
        jax = _jax()
        prefill, decode, new_cache = self._decoder
        ids = np.asarray(prompt_ids, dtype=np.int32).reshape(-1)
        length = int(ids.size)
        limit = int(self._module.n_positions)
        if length + max_new_tokens > limit:
            raise ValueError(f"prompt {length} + {max_new_tokens} new tokens exceeds the context of {limit}")
        padded = min(1 << max(length - 1, 0).bit_length(), limit)
        buf = np.zeros((1, padded), dtype=np.int32)
        buf[0, :length] = ids
        dt = getattr(jax.numpy, _DTYPES[self.dtype])
        cache = jax.device_put(new_cache(dt), self._device)
        logits, cache = prefill(self._params, cache, jax.device_put(buf, self._device), length)
        token = int(np.argmax(jax.device_get(logits)[0]))
        yield token
        pos = length
        for _ in range(max_new_tokens - 1):
            step = jax.device_put(np.array([[token]], dtype=np.int32), self._device)
            logits, cache = decode(self._params, cache, step, pos)
            token = int(np.argmax(jax.device_get(logits)[0]))
            yield token
            pos += 1

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        jax = sys.modules.get("jax")
        d.update(
            dtype=self.dtype,
            timing_scope=TIMING_SCOPE,
            jax=getattr(jax, "__version__", None),
            platform=getattr(self._device, "platform", None),
            device_kind=getattr(self._device, "device_kind", None),
        )
        if self._threads_note:
            d["threads_note"] = self._threads_note
        return d

    def close(self) -> None:
        self._fn = self._params = self._decoder = self._module = None
