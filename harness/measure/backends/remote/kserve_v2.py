"""The ``kserve-v2`` backend: the KServe v2 / Triton inference protocol over HTTP.

``prepare`` (untimed) encodes a batch as a v2 request: JSON (``"data"`` lists) or, with
``binary: true``, the binary tensor extension (a JSON header of
``Inference-Header-Content-Length`` bytes followed by the raw little-endian tensors, outputs
asked for as binary too). ``infer`` (timed) POSTs it to ``/v2/models/{model}[/versions/{v}]/infer``
(client: :mod:`~harness.measure.backends.remote.lean` by default, or the pooled ``httpx`` one)
and decodes the outputs into NumPy arrays in the order the server returns them, so parity
checks can compare them with the in-process outputs. A failed request is counted in
``describe()["errors_by_status"]`` and raises (the cell fails with the counts in its error).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from harness.measure.backends.base import Backend, Capabilities
from harness.measure.backends.remote import v2codec
from harness.measure.backends.remote.lean import LeanClient
from harness.measure.backends.remote.lean import check as lean_check
from harness.measure.backends.remote.transport import (
    COMMON_OPTIONS,
    ErrorCounts,
    RemoteConfig,
    RemoteError,
    check_status,
    httpx_available,
    transport_key,
)


def encode_request(inputs: Mapping[str, np.ndarray], binary: bool) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a v2 infer request for ``inputs`` (outputs asked for as binary
    when ``binary``)."""
    head = {"parameters": {"binary_data_output": True}} if binary else None
    return v2codec.encode(inputs.items(), "inputs", binary, head)


def decode_response(body: bytes, header_len: int | None) -> list[np.ndarray]:
    """Output tensors of a v2 infer response, in the server's order."""
    return [a for _, a in v2codec.decode(body, header_len, "outputs")[1]]


class KServeV2Backend(Backend):
    """Client of a KServe v2 / Triton HTTP endpoint (see the module docstring)."""

    name: ClassVar[str] = "kserve-v2"
    #: measured against a running server (needs option url); see tests/test_remote_serve.py
    remote: ClassVar[bool] = True
    capabilities: ClassVar[Capabilities] = Capabilities(
        devices=("cpu", "cuda", "remote"),
        dtypes=("fp32", "fp16", "bf16", "int8", "fp8"),
        # outputs are the model's: parity compares them with the in-process zoo model (set
        # `parity: false` in the suite for a server that runs another model)
        needs_model=True,
        options={
            **COMMON_OPTIONS,
            "model": "model name on the server (default: the workload's name)",
            "version": "model version (default: none, the server's choice)",
            "binary": "use the binary tensor extension (default false: JSON data lists)",
            "client": "lean (default: http.client, one keep-alive connection per thread) or httpx (pooled)",
        },
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.config: RemoteConfig | None = None  # parsed at load: a class can be listed without a server
        self.binary = bool(self.options.get("binary", False))
        self.client_kind = str(self.options.get("client", "lean"))
        if self.client_kind not in ("lean", "httpx"):
            raise ValueError(f"backend 'kserve-v2': option 'client' must be lean or httpx, got {self.client_kind!r}")
        self.errors = ErrorCounts()
        self._client: Any = None
        self.path = ""

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return httpx_available()

    def load(self, workload: Any, device: str = "cpu") -> None:
        self.device = device
        self.config = RemoteConfig.from_options(self.name, self.options)
        model = str(self.options.get("model") or getattr(workload, "name", "model"))
        version = self.options.get("version")
        self.path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
        if self.client_kind == "lean":
            cfg = self.config
            self._client = LeanClient(cfg.url, cfg.auth_header(), cfg.verify, cfg.timeout_s, self.errors)
        else:
            self._client = self.config.client()

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> Any:
        return encode_request(inputs, self.binary)

    def infer(self, prepared: Any) -> list[np.ndarray]:
        import httpx  # optional dependency ([remote]); available() checked it at load

        body, headers = prepared
        if self.client_kind == "lean":
            status, rh, data = self._client.post(self.path, body, headers)
            lean_check(status, data, self.errors, f"POST {self.path}")
            hl = rh.get(v2codec.HEADER_LEN.lower())
            return decode_response(data, int(hl) if hl is not None else None)
        try:
            resp = self._client.post(self.path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            key = transport_key(exc)
            self.errors.add(key)
            raise RemoteError(
                key, f"POST {self.path}: {key} ({type(exc).__name__}: {exc}; errors so far: {self.errors.snapshot()})"
            ) from None
        check_status(resp, self.errors, f"POST {self.path}")
        hl = resp.headers.get(v2codec.HEADER_LEN)
        return decode_response(resp.content, int(hl) if hl is not None else None)

    def to_numpy(self, outputs: Any) -> list[np.ndarray]:
        return list(outputs)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(
            remote=self.config.describe() if self.config else None,
            endpoint=self.path,
            protocol="kserve-v2 http " + ("binary" if self.binary else "json"),
            client=self.client_kind,
            errors_by_status=self.errors.snapshot(),
            timing_scope="client side: request sent -> response decoded over HTTP (network and server included)",
        )
        return d

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
