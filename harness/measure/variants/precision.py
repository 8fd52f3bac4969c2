"""Precision variants through the backends' own dtype options: ``fp32`` (the reference
configuration, measured like any variant), ``bf16`` and ``fp16`` (the torch and jax backends'
``dtype`` option)."""

from __future__ import annotations

from typing import Any, ClassVar

from harness.measure.variants.base import Variant

_ORT_NO_HALF = "ONNX Runtime's CPU provider has no bf16/fp16 kernels for most operators"


class Fp32(Variant):
    """fp32, no transformation: the configuration every other variant is compared with."""

    name: ClassVar[str] = "fp32"
    backends: ClassVar[tuple[str, ...]] = ("torch", "onnxruntime", "tensorrt", "jax")


class Bf16(Variant):
    """bfloat16 weights and activations (torch and jax ``dtype: bf16``)."""

    name: ClassVar[str] = "bf16"
    dtype: ClassVar[str] = "bf16"
    backends: ClassVar[tuple[str, ...]] = ("torch", "jax")
    why_not: ClassVar[dict[str, str]] = {"onnxruntime": _ORT_NO_HALF}

    def backend_options(self, backend: str) -> dict[str, Any]:
        return {"dtype": "bf16"}


class Fp16(Variant):
    """float16 weights and activations (torch and jax ``dtype: fp16``)."""

    name: ClassVar[str] = "fp16"
    dtype: ClassVar[str] = "fp16"
    backends: ClassVar[tuple[str, ...]] = ("torch", "jax")
    why_not: ClassVar[dict[str, str]] = {"onnxruntime": _ORT_NO_HALF}

    def backend_options(self, backend: str) -> dict[str, Any]:
        return {"dtype": "fp16"}
