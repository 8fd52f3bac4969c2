"""Output parity: compare a backend's outputs with the PyTorch eager fp32 reference.

The reference outputs are computed once per workload and input seed and cached on disk
(``.npz`` keyed by a hash of the workload, the seed and the torch version), so each backend's
worker compares against the same numbers.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.records import Parity
from harness.store.results import atomic_write_bytes

PARITY_BATCH = 2
PARITY_SEED = 20_240_601
#: (rtol, atol as a fraction of max |reference|) per dtype
TOLERANCES: dict[str, tuple[float, float]] = {"fp32": (1e-3, 1e-4), "bf16": (5e-2, 5e-2), "fp16": (1e-2, 1e-2)}


def cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE_DIR", Path.home() / ".cache" / "inference-harness")) / "reference"


def _key(workload: Any) -> str:
    # deferred: torch is an optional extra; the reference runs only when parity is checked
    import torch

    info = workload.info()
    blob = json.dumps(
        {"k": workload.key, "info": info.to_dict(), "seed": PARITY_SEED, "torch": torch.__version__},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def reference_outputs(workload: Any, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """PyTorch eager fp32 outputs for ``inputs`` (cached on disk)."""
    # deferred: torch is an optional extra; the reference runs only when parity is checked
    import torch

    path = cache_dir() / f"{workload.name}-{workload.size}-{_key(workload)}.npz"
    if path.exists():
        with np.load(path) as z:
            return [z[f"o{i}"] for i in range(len(z.files))]
    module = workload.build_torch().eval()
    with torch.inference_mode():
        out = module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in inputs.values()))
    if not isinstance(out, (tuple, list)):
        out = [out]
    arrays = [o.detach().float().numpy() for o in out]

    buf = io.BytesIO()
    np.savez(buf, **{f"o{i}": a for i, a in enumerate(arrays)})
    atomic_write_bytes(path, buf.getvalue())
    return arrays


def compare(outputs: list[np.ndarray], reference: list[np.ndarray], dtype: str = "fp32") -> Parity:
    """Max absolute / relative error and pass/fail at the dtype's tolerance.

    A cell passes when every element satisfies
    ``|out - ref| <= atol_frac * max(1, max|ref|) + rtol * |ref|``. An output that is NaN or
    infinite where the reference is finite fails, with ``max_abs_err``/``max_rel_err`` NaN
    (never the largest finite error, which would hide it) and a note counting such values.
    """
    rtol, atol_frac = TOLERANCES.get(dtype, TOLERANCES["fp32"])
    if len(outputs) != len(reference):
        return Parity(checked=True, passed=False, note=f"{len(outputs)} outputs, reference has {len(reference)}")
    max_abs = 0.0
    max_rel = 0.0
    passed = True
    non_finite = 0
    for o, r in zip(outputs, reference):
        o = np.asarray(o, dtype=np.float64)
        r = np.asarray(r, dtype=np.float64)
        if o.shape != r.shape:
            return Parity(checked=True, passed=False, note=f"shape {o.shape} != reference {r.shape}")
        non_finite += int(np.count_nonzero(~np.isfinite(o) & np.isfinite(r)))
        diff = np.abs(o - r)
        scale = max(1.0, float(np.max(np.abs(r)))) if r.size else 1.0
        atol = atol_frac * scale
        max_abs = max(max_abs, float(diff.max()) if diff.size else 0.0)
        rel = diff / np.maximum(np.abs(r), 1e-12)
        max_rel = max(max_rel, float(rel.max()) if rel.size else 0.0)
        passed &= bool(np.all(diff <= atol + rtol * np.abs(r)))
    if non_finite:
        return Parity(
            checked=True,
            passed=False,
            max_abs_err=float("nan"),
            max_rel_err=float("nan"),
            atol=atol_frac,
            rtol=rtol,
            note=f"{non_finite} output value(s) are NaN or infinite where the reference is finite",
        )
    return Parity(
        checked=True,
        passed=passed,
        max_abs_err=max_abs,
        max_rel_err=max_rel,
        atol=atol_frac,
        rtol=rtol,
        note="atol is a fraction of max(1, max|reference|)",
    )


def variant_dtype(backend: Any, dtype: str = "fp32") -> str:
    """The precision the variant computes in, whatever its option is called (TensorRT's ``fp16``
    flag, torch's ``dtype``): the backend's ``compute_dtype()`` when it declares one, else ``dtype``."""
    declared = getattr(backend, "compute_dtype", None)
    return str(declared()) if callable(declared) else dtype


def check(backend: Any, workload: Any, dtype: str = "fp32") -> Parity:
    """Run the backend on the parity inputs and compare with the reference at the tolerance of
    :func:`variant_dtype` (``dtype`` applies to backends that declare no precision)."""
    dtype = variant_dtype(backend, dtype)
    if not backend.capabilities.needs_model:
        return Parity(checked=False, note=f"backend {backend.name!r} produces no outputs")
    if getattr(workload, "task", "") == "custom" and workload.name.startswith("onnx:"):
        return Parity(checked=False, note="no PyTorch reference for an ONNX-file model")
    inputs = workload.make_inputs(PARITY_BATCH, seed=PARITY_SEED)
    outputs = backend.to_numpy(backend.infer(backend.prepare(inputs)))
    try:
        ref = reference_outputs(workload, inputs)
    except ImportError:
        return Parity(checked=False, note="torch is not installed: no reference")
    return compare(outputs, ref, dtype)
