"""Shared HTTP pieces of the remote backends: connection settings, the pooled client, the
secret, and error counts per status.

Client
------
One ``httpx.Client`` per backend instance, shared by every instance thread of a scenario
(``httpx.Client`` is thread-safe; its connection pool holds up to ``max_connections``
keep-alive connections, so each thread in flight reuses one). No retries: a retry hides
latency, so a failed request is counted and reported, never silently repeated.

Secret
------
The ``Authorization`` value comes from an environment variable (``auth_env``) or a file
(``auth_file``), read at ``load``. It lives only in the client's headers: :meth:`RemoteConfig.describe`
names where it came from, never the value, and nothing else of this package stores it.

Errors
------
:class:`ErrorCounts` counts failed requests by key: the HTTP status code as a string
(``"503"``) or the transport failure class (``"timeout"``, ``"connect_error"``,
``"protocol_error"``). Backends put the counts in ``describe()`` (the cell record's
``backend_info.errors_by_status``).
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.measure.backends.base import BackendUnavailable

#: options every remote backend accepts (name -> description)
COMMON_OPTIONS: dict[str, str] = {
    "url": "base URL of the server, e.g. http://127.0.0.1:8000 (required)",
    "auth_env": "environment variable holding the Authorization header value (e.g. 'Bearer sk-...')",
    "auth_file": "file holding the Authorization header value (first line)",
    "auth_scheme": "prefix added to a bare token from auth_env/auth_file, e.g. 'Bearer' (default: none)",
    "verify_tls": "verify the server's TLS certificate: true (default), false, or a CA bundle path",
    "timeout_s": "per-request timeout in seconds (connect, read, write; default 60)",
    "max_connections": "connection pool size (default 256): the most requests in flight at once",
}


class RemoteError(RuntimeError):
    """A request failed (status or transport); ``key`` is its :class:`ErrorCounts` key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _bool_or_path(v: Any) -> bool | str:
    if isinstance(v, bool):
        return v
    s = str(v).strip()
    if s.lower() in ("true", "1", "yes"):
        return True
    if s.lower() in ("false", "0", "no"):
        return False
    if not Path(s).is_file():
        raise ValueError(f"verify_tls: expected true, false or a CA bundle file, got {s!r} (no such file)")
    return s


@dataclass(frozen=True)
class RemoteConfig:
    """Connection settings parsed from backend options (see :data:`COMMON_OPTIONS`)."""

    url: str
    auth_source: str | None  # "env:NAME" or "file:PATH"; never the secret itself
    verify: bool | str
    timeout_s: float
    max_connections: int
    auth_scheme: str | None

    @classmethod
    def from_options(cls, backend: str, options: dict[str, Any]) -> RemoteConfig:
        url = str(options.get("url") or "").rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"backend {backend!r}: option 'url' must be an http:// or https:// URL, got {url!r}")
        if options.get("auth_env") and options.get("auth_file"):
            raise ValueError(f"backend {backend!r}: give auth_env or auth_file, not both")
        source = None
        if options.get("auth_env"):
            source = f"env:{options['auth_env']}"
        elif options.get("auth_file"):
            source = f"file:{options['auth_file']}"
        timeout = float(options.get("timeout_s", 60.0))
        conns = int(options.get("max_connections", 256))
        if timeout <= 0 or conns < 1:
            raise ValueError(f"backend {backend!r}: timeout_s must be > 0 and max_connections >= 1")
        scheme = options.get("auth_scheme")
        return cls(url, source, _bool_or_path(options.get("verify_tls", True)), timeout, conns, scheme)

    def auth_header(self) -> dict[str, str]:
        """``{"Authorization": value}`` read from the source now ({} without one). Raises
        :class:`BackendUnavailable` naming the variable or file (never its content) when empty."""
        if self.auth_source is None:
            return {}
        kind, _, where = self.auth_source.partition(":")
        if kind == "env":
            value = os.environ.get(where, "").strip()
            if not value:
                raise BackendUnavailable(f"auth_env: environment variable {where} is not set or empty")
        else:
            try:
                value = Path(where).read_text(encoding="utf-8").splitlines()[0].strip()
            except (OSError, IndexError):
                raise BackendUnavailable(f"auth_file: cannot read a value from {where}") from None
            if not value:
                raise BackendUnavailable(f"auth_file: {where} is empty")
        if self.auth_scheme:
            value = f"{self.auth_scheme} {value}"
        return {"Authorization": value}

    def client(self) -> Any:
        """A pooled ``httpx.Client`` for this server (auth header set, no retries)."""
        import httpx  # optional dependency ([remote]); kept out of `import harness`

        limits = httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=self.max_connections)
        return httpx.Client(
            base_url=self.url,
            headers=self.auth_header(),
            timeout=httpx.Timeout(self.timeout_s),
            transport=httpx.HTTPTransport(retries=0, verify=self.verify, limits=limits),
        )

    def describe(self) -> dict[str, Any]:
        """Settings for the cell record: the URL and where the secret came from, not the secret."""
        return {
            "url": self.url,
            "auth": self.auth_source or "none",
            "verify_tls": self.verify,
            "timeout_s": self.timeout_s,
            "max_connections": self.max_connections,
            "retries": 0,
        }


def httpx_available() -> tuple[bool, str]:
    """Whether the HTTP client library is installed."""
    try:
        import httpx  # noqa: F401 - optional dependency probe
    except ImportError:
        return False, "httpx is not installed (pip install 'inference-harness[remote]')"
    return True, ""


class ErrorCounts:
    """Thread-safe counts of failed requests by status code or transport failure."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))


def transport_key(exc: BaseException) -> str:
    """The :class:`ErrorCounts` key of an httpx transport exception."""
    import httpx  # optional dependency ([remote]); only reached once a client exists

    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect_error"
    return "protocol_error"


def check_status(resp: Any, errors: ErrorCounts, what: str) -> None:
    """Count and raise :class:`RemoteError` unless ``resp`` is a 2xx response (its body, read
    here, is quoted up to 200 characters)."""
    if 200 <= resp.status_code < 300:
        return
    key = str(resp.status_code)
    errors.add(key)
    try:
        body = resp.read().decode("utf-8", "replace")[:200]
    except Exception:
        body = ""
    raise RemoteError(key, f"{what}: HTTP {resp.status_code} (errors so far: {errors.snapshot()}) {body}")
