"""int8 quantisation through the libraries made for it.

* ``int8-dynamic`` -- weights int8, activations quantised at run time per batch.
  torch: ``torch.ao.quantization.quantize_dynamic`` of every ``nn.Linear``; onnxruntime:
  ``onnxruntime.quantization.quantize_dynamic`` of ``MatMul``/``Gemm`` (the same layers: ONNX
  Runtime's CPU provider has no int8-weight ``ConvInteger``, and torch quantises no
  convolution dynamically).
* ``int8-static`` -- weights and activations int8 with ranges calibrated beforehand.
  onnxruntime: ``quantize_static`` (QDQ format, per-tensor, MinMax) with a
  :class:`~onnxruntime.quantization.CalibrationDataReader` drawing :data:`CALIBRATION_BATCHES`
  batches from the workload's own input generator (seeds apart from the accuracy inputs).
  torch static int8 needs a graph-capture flow (PT2E) with a backend quantiser: not
  implemented, so torch cells are skipped with that reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from harness.measure.variants.base import Variant, VariantWorkload

CALIBRATION_BATCHES = 8
CALIBRATION_BATCH_SIZE = 4
#: calibration inputs use seeds from here on (the accuracy check uses its own)
CALIBRATION_SEED = 7_000_000
DYNAMIC_OPS = ["MatMul", "Gemm"]


def torch_dynamic_int8(module: Any) -> Any:
    """``module`` with every ``nn.Linear`` replaced by a dynamically quantised int8 one (CPU)."""
    # deferred: torch is an optional extra, loaded only by torch cells
    import torch

    return torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
        module.eval(), {torch.nn.Linear}, dtype=torch.qint8
    )


def ort_dynamic_int8(src: Path, dst: Path) -> None:
    """Write ``dst``: ``src`` with MatMul/Gemm weights int8, activations quantised per batch."""
    # deferred: onnxruntime is an optional extra, loaded only by onnxruntime cells
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=DYNAMIC_OPS)


def calibration_batches(workload: Any) -> list[dict[str, Any]]:
    """:data:`CALIBRATION_BATCHES` input batches from ``workload.make_inputs`` (deterministic)."""
    return [workload.make_inputs(CALIBRATION_BATCH_SIZE, seed=CALIBRATION_SEED + i) for i in range(CALIBRATION_BATCHES)]


def ort_static_int8(workload: Any) -> Any:
    """A ``(src, dst)`` writer: ``src`` statically quantised (QDQ) with ranges from the
    workload's calibration batches."""

    def write(src: Path, dst: Path) -> None:
        # deferred: onnxruntime is an optional extra, loaded only by onnxruntime cells
        import numpy as np
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

        class Reader(CalibrationDataReader):  # type: ignore[misc]  # untyped library base
            def __init__(self) -> None:
                self._it = iter(calibration_batches(workload))

            def get_next(self) -> dict[str, Any] | None:
                batch = next(self._it, None)
                if batch is None:
                    return None
                return {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in batch.items()}

        quantize_static(
            str(src),
            str(dst),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=False,
        )

    return write


class Int8Dynamic(Variant):
    """int8 weights, activations quantised per batch at run time."""

    name: ClassVar[str] = "int8-dynamic"
    dtype: ClassVar[str] = "int8"
    backends: ClassVar[tuple[str, ...]] = ("torch", "onnxruntime")
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    changes_weights: ClassVar[bool] = True

    def transform(self, workload: Any, backend: str) -> Any:
        if backend == "torch":
            return VariantWorkload(workload, self.name, torch_transform=torch_dynamic_int8)
        return VariantWorkload(workload, self.name, onnx_transform=ort_dynamic_int8)


class Int8Static(Variant):
    """int8 weights and activations, activation ranges calibrated on the workload's inputs."""

    name: ClassVar[str] = "int8-static"
    dtype: ClassVar[str] = "int8"
    backends: ClassVar[tuple[str, ...]] = ("onnxruntime",)
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    changes_weights: ClassVar[bool] = True
    why_not: ClassVar[dict[str, str]] = {
        "torch": "static int8 in torch needs PT2E graph capture with a backend quantiser (not implemented here)"
    }

    def transform(self, workload: Any, backend: str) -> Any:
        return VariantWorkload(workload, self.name, onnx_transform=ort_static_int8(workload))
