"""Variants that need a CUDA device: ``fp8``, ``sparse-2-4`` (2:4 semi-structured sparsity; the name avoids the colon, which names an import path) and
``cuda-graphs``. Declared here so suites can list them; on a CPU cell they are skipped with the
reason. Their CUDA implementations belong to the accelerator backends; until one is present a
CUDA cell is skipped as not implemented, never measured as something else."""

from __future__ import annotations

from typing import ClassVar

from harness.measure.variants.base import Variant


class _CudaOnly(Variant):
    devices: ClassVar[tuple[str, ...]] = ("cuda",)
    backends: ClassVar[tuple[str, ...]] = ("torch", "onnxruntime", "tensorrt")
    needs: ClassVar[str] = ""

    def unsupported(self, backend: str, device: str, scenario: str) -> str | None:
        why = super().unsupported(backend, device, scenario)
        if why is not None:
            return f"{why} ({self.needs})"
        return f"variant {self.name!r} on {backend!r}: not implemented in this backend yet ({self.needs})"


class Fp8(_CudaOnly):
    """8-bit floating point (e4m3) matmuls."""

    name: ClassVar[str] = "fp8"
    dtype: ClassVar[str] = "fp8"
    changes_weights: ClassVar[bool] = True
    needs: ClassVar[str] = "fp8 tensor cores: Hopper (sm_90) or newer"


class Sparse24(_CudaOnly):
    """2:4 semi-structured sparsity (two of every four weights zero)."""

    name: ClassVar[str] = "sparse-2-4"
    changes_weights: ClassVar[bool] = True
    needs: ClassVar[str] = "sparse tensor cores: Ampere (sm_80) or newer"


class CudaGraphs(_CudaOnly):
    """The forward captured once as a CUDA graph and replayed."""

    name: ClassVar[str] = "cuda-graphs"
    needs: ClassVar[str] = "CUDA graph capture"
