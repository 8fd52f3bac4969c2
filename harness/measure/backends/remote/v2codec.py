"""KServe v2 tensor encoding, shared by the ``kserve-v2`` client and ``harness serve``.

A message (request or response) is a JSON object whose ``key`` (``inputs`` or ``outputs``) lists
tensors ``{"name", "shape", "datatype", "data"}``. With the binary tensor extension a tensor
carries ``parameters.binary_data_size`` instead of ``data``; the raw little-endian bytes follow
the JSON header in tensor order, and the header's length travels in the
``Inference-Header-Content-Length`` HTTP header.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np

#: NumPy dtype -> v2 datatype
V2_TYPES: dict[str, str] = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
}
NP_TYPES: dict[str, str] = {v: k for k, v in V2_TYPES.items()}
HEADER_LEN = "Inference-Header-Content-Length"


def v2_datatype(a: np.ndarray) -> str:
    """The v2 datatype of ``a``; ``ValueError`` naming the allowed ones otherwise."""
    t = V2_TYPES.get(a.dtype.name)
    if t is None:
        raise ValueError(f"kserve-v2: dtype {a.dtype.name} has no v2 datatype; allowed: {', '.join(V2_TYPES)}")
    return t


def encode(
    tensors: Iterable[tuple[str, np.ndarray]], key: str, binary: bool, head: dict[str, Any] | None = None
) -> tuple[bytes, dict[str, str]]:
    """Body and HTTP headers of a message listing ``tensors`` under ``key`` (other fields of
    the JSON header from ``head``)."""
    specs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, arr in tensors:
        a = np.ascontiguousarray(arr)
        spec: dict[str, Any] = {"name": name, "shape": list(a.shape), "datatype": v2_datatype(a)}
        if binary:
            raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
            spec["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            spec["data"] = a.reshape(-1).tolist()
        specs.append(spec)
    js = json.dumps({**(head or {}), key: specs}, separators=(",", ":")).encode()
    if not binary:
        return js, {"Content-Type": "application/json"}
    return js + b"".join(blobs), {"Content-Type": "application/octet-stream", HEADER_LEN: str(len(js))}


def decode(body: bytes, header_len: int | None, key: str) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    """The JSON header and the ``(name, array)`` tensors listed under ``key`` of a message.
    Raises ``ValueError`` naming the tensor and field that is malformed."""
    head = json.loads(body[:header_len] if header_len is not None else body)
    if not isinstance(head, dict) or not isinstance(head.get(key), list):
        raise ValueError(f"kserve-v2: message has no '{key}' list")
    out: list[tuple[str, np.ndarray]] = []
    offset = header_len or 0
    for t in head[key]:
        name = str(t.get("name", ""))
        dt = NP_TYPES.get(t.get("datatype", ""))
        if dt is None:
            raise ValueError(
                f"kserve-v2: {key} tensor {name!r}: datatype {t.get('datatype')!r}; allowed: {', '.join(NP_TYPES)}"
            )
        shape = [int(x) for x in t.get("shape", [])]
        size = (t.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if header_len is None:
                raise ValueError(f"kserve-v2: {key} tensor {name!r}: binary_data_size without {HEADER_LEN}")
            # a writable copy in native byte order (frameworks refuse read-only buffers)
            arr = np.frombuffer(body[offset : offset + int(size)], dtype=np.dtype(dt).newbyteorder("<")).astype(dt)
            offset += int(size)
        else:
            arr = np.asarray(t.get("data", []), dtype=dt)
        if arr.size != int(np.prod(shape)):
            raise ValueError(f"kserve-v2: {key} tensor {name!r}: {arr.size} values for shape {shape}")
        out.append((name, arr.reshape(shape)))
    return head, out
