"""A lean HTTP/1.1 client for one-shot requests: one keep-alive ``http.client`` connection per
calling thread.

Why: on the project's 2-core host, under the same load and against the same server, a pooled
``httpx.Client`` spent about 4 x the client CPU per request of this (about 2 ms against
0.5 ms, 32 threads, closed loop; ``benchmarks/bench_server_overhead.py``), and that CPU is what
limits the open-loop rate a client can issue. Streams (``openai``) stay on ``httpx``.

Contract: :meth:`LeanClient.post` sends one request on this thread's connection (opened on first
use, reopened after any failure) and returns ``(status, headers, body)`` with header names in
lower case. No retries. Transport failures raise :class:`~harness.measure.backends.remote.transport.RemoteError`
keyed ``timeout``, ``connect_error`` or ``protocol_error`` after counting them in ``errors``.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from urllib.parse import urlsplit

from harness.measure.backends.remote.transport import ErrorCounts, RemoteError


def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    if verify is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)


def failure_key(exc: BaseException) -> str:
    """The error-count key of a transport failure."""
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timeout"
    if isinstance(exc, (ConnectionRefusedError, socket.gaierror)):
        return "connect_error"
    return "protocol_error"


class LeanClient:
    """Thread-local keep-alive connections to one server (see the module docstring)."""

    def __init__(
        self, url: str, headers: dict[str, str], verify: bool | str, timeout_s: float, errors: ErrorCounts
    ) -> None:
        u = urlsplit(url)
        self.https = u.scheme == "https"
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or (443 if self.https else 80)
        self.prefix = u.path.rstrip("/")
        self.headers = dict(headers)
        self.timeout_s = timeout_s
        self.errors = errors
        self._ctx = _ssl_context(verify) if self.https else None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[http.client.HTTPConnection] = []

    def _conn(self) -> http.client.HTTPConnection:
        c: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if c is None:
            if self.https:
                c = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout_s, context=self._ctx)
            else:
                c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            self._local.conn = c
            with self._lock:
                self._all.append(c)
        return c

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """POST ``body`` to ``path`` on this thread's connection (see the module docstring)."""
        conn = self._conn()
        try:
            conn.request("POST", self.prefix + path, body, {**self.headers, **headers})
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            self._local.conn = None
            key = failure_key(exc)
            self.errors.add(key)
            raise RemoteError(
                key, f"POST {path}: {key} ({type(exc).__name__}: {exc}; errors so far: {self.errors.snapshot()})"
            ) from None
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for c in conns:
            c.close()
        self._local = threading.local()


def check(status: int, body: bytes, errors: ErrorCounts, what: str) -> None:
    """Count and raise :class:`RemoteError` unless ``status`` is 2xx (the body quoted up to 200
    characters)."""
    if 200 <= status < 300:
        return
    key = str(status)
    errors.add(key)
    text = body[:200].decode("utf-8", "replace")
    raise RemoteError(key, f"{what}: HTTP {status} (errors so far: {errors.snapshot()}) {text}")
