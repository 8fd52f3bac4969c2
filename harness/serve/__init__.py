"""``harness serve``: a zoo or user model behind a real HTTP server (FastAPI + uvicorn), over
the KServe v2 protocol and OpenAI-compatible completions, to measure with the remote backends
and to test them against. Routes: :mod:`harness.serve.app`; the model and its token log:
:mod:`harness.serve.model`. Needs the ``[serve]`` extra."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: idle keep-alive connections are held this long (uvicorn's default, 5 s, closes pooled client
#: connections between the cells of a suite, and a request racing that close fails)
KEEP_ALIVE_S = 300


def serve(
    model: str,
    backend: str = "torch",
    host: str = "127.0.0.1",
    port: int = 8000,
    size: str = "tiny",
    device: str = "cpu",
    backend_options: dict[str, Any] | None = None,
    max_num_seqs: int = 16,
    log_path: Path | None = None,
    log_level: str = "warning",
    api_key: str | None = None,
    max_batch_size: int = 1,
    max_queue_delay_ms: float = 0.0,
) -> None:
    """Load ``model`` on ``backend`` and serve it on ``host:port`` until interrupted (with
    ``api_key``: requests need ``Authorization: Bearer <api_key>``)."""
    import uvicorn  # optional dependency ([serve]); kept out of `import harness`

    from harness.serve.app import build_app
    from harness.serve.model import ServedModel

    served = ServedModel(
        model,
        backend,
        size,
        device,
        backend_options,
        max_num_seqs=max_num_seqs,
        log_path=log_path,
        max_batch_size=max_batch_size,
        max_queue_delay_ms=max_queue_delay_ms,
    )
    uvicorn.run(
        build_app(served, api_key),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_S,
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS's choice)."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ServerThread:
    """``harness serve`` in a thread of this process (tests, benchmarks): ``start()`` returns
    once the server accepts connections; ``stop()`` shuts it down and closes the model."""

    def __init__(
        self, served: Any, host: str = "127.0.0.1", port: int | None = None, api_key: str | None = None
    ) -> None:
        import uvicorn  # optional dependency ([serve]); kept out of `import harness`

        from harness.serve.app import build_app

        self.host, self.port = host, port or free_port(host)
        config = uvicorn.Config(
            build_app(served, api_key),
            host=host,
            port=self.port,
            log_level="warning",
            access_log=False,
            timeout_keep_alive=KEEP_ALIVE_S,
        )
        self.server = uvicorn.Server(config)
        self._thread: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> ServerThread:
        import threading
        import time

        self._thread = threading.Thread(target=self.server.run, name="harness-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"harness serve did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
