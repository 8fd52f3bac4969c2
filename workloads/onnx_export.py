"""ONNX export of workloads, cached on disk by content hash.

``export_cached(workload)`` returns the path of an ONNX file of the workload's ``forward``
(for ``gpt2``: last-position logits of a prompt, no cache), with a dynamic batch axis named
``batch`` on every input and output. Files live in ``cache_dir`` (default:
``$HARNESS_CACHE_DIR/onnx`` or ``~/.cache/inference-harness/onnx``) under a name containing a
hash of (workload cache document, torch version, opset, exporter); they are written to a
temporary file and moved into place with ``os.replace``, so readers never see a partial file.
A JSON sidecar (same stem, ``.json``) records how the file was made.

Exporter choice (torch 2.13): the TorchScript exporter (``dynamo=False``) exports every built-in
model in well under a second and maps ``nn.GRU`` to the ONNX ``GRU`` operator; the
``torch.export``-based exporter (``dynamo=True``, needs onnxscript) also works but takes seconds
per model and unrolls recurrent layers. ``exporter="auto"`` tries TorchScript first and falls
back to dynamo when TorchScript is missing or fails.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Literal

from workloads._cache import atomic_write_bytes, cache_subdir, content_hash, package_version

Exporter = Literal["auto", "torchscript", "dynamo"]

#: opset per exporter: 17 is the lowest with LayerNormalization; the dynamo exporter's own
#: minimum is 18.
OPSET: dict[str, int] = {"torchscript": 17, "dynamo": 18}
EXPORTERS: tuple[str, ...] = ("torchscript", "dynamo")


def _cache_document(workload: Any) -> dict[str, Any]:
    if hasattr(workload, "cache_document"):
        doc = workload.cache_document()
    else:  # third-party Workload without the caching mixin
        doc = {"class": type(workload).__qualname__, "key": workload.key}
    return dict(doc)


def export_key(workload: Any, exporter: str) -> str:
    """Content hash naming the export of ``workload`` with ``exporter``."""
    doc = {
        "workload": _cache_document(workload),
        "torch": package_version("torch"),
        "onnx": package_version("onnx"),
        "opset": OPSET[exporter],
        "exporter": exporter,
    }
    return content_hash(doc)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60]


def export_cached(
    workload: Any,
    cache_dir: Path | str | None = None,
    exporter: Exporter = "auto",
    batch_size: int = 2,
) -> Path:
    """Path of a cached ONNX export of ``workload``; exports on a miss.

    ``batch_size`` is the example batch used for tracing (2, so the batch axis cannot be
    specialised to 1). Raises ``ValueError`` for an unknown ``exporter`` and ``RuntimeError``
    listing each exporter's error when none succeeds.
    """
    if exporter not in ("auto", *EXPORTERS):
        raise ValueError(f"unknown exporter {exporter!r}; allowed: auto, {', '.join(EXPORTERS)}")
    directory = cache_subdir("onnx", cache_dir)
    candidates = list(EXPORTERS) if exporter == "auto" else [exporter]
    # A hit with any candidate exporter counts (in preference order).
    for exp in candidates:
        path = directory / f"{_safe(workload.name)}-{workload.size}-{export_key(workload, exp)}.onnx"
        if path.is_file():
            return path
    errors: list[str] = []
    for exp in candidates:
        path = directory / f"{_safe(workload.name)}-{workload.size}-{export_key(workload, exp)}.onnx"
        try:
            _export(workload, path, exp, batch_size)
            return path
        except Exception as exc:
            errors.append(f"{exp}: {type(exc).__name__}: {exc}")
    raise RuntimeError(f"ONNX export of {workload.key} failed: " + " | ".join(errors))


def _export(workload: Any, path: Path, exporter: str, batch_size: int) -> None:
    # torch is optional: importing the zoo never imports it
    import torch

    module = workload.build_torch()
    inputs = workload.make_inputs(batch_size, 0)
    input_names = list(inputs)
    output_names = list(workload.info().output_names)
    args = tuple(torch.from_numpy(a) for a in inputs.values())
    opset = OPSET[exporter]
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".onnx.tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            if exporter == "torchscript":
                axes = {n: {0: "batch"} for n in input_names + output_names}
                torch.onnx.export(
                    module,
                    args,
                    str(tmp),
                    input_names=input_names,
                    output_names=output_names,
                    opset_version=opset,
                    dynamo=False,
                    dynamic_axes=axes,
                    do_constant_folding=True,
                )
            else:
                batch = torch.export.Dim("batch", min=1, max=1 << 16)
                shapes = tuple({0: batch} for _ in input_names)
                torch.onnx.export(
                    module,
                    args,
                    str(tmp),
                    input_names=input_names,
                    output_names=output_names,
                    opset_version=opset,
                    dynamo=True,
                    dynamic_shapes=shapes,
                    external_data=False,
                    verbose=False,
                )
        _check_single_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    sidecar = {
        "workload": workload.key,
        "exporter": exporter,
        "opset": opset,
        "torch": package_version("torch"),
        "input_names": input_names,
        "output_names": output_names,
        "dynamic_axes": {"batch": 0},
        "cache_document": _cache_document(workload),
    }
    atomic_write_bytes(path.with_suffix(".json"), json.dumps(sidecar, indent=1, default=str).encode())


def _check_single_file(path: Path) -> None:
    """Reject exports that spilled weights into external-data files (not cacheable as one file)."""
    # onnx is optional (torch / onnxruntime extras)
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise RuntimeError(f"export wrote external data for {init.name!r}")
