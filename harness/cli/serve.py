"""``harness serve MODEL``: serve a zoo or user model over KServe v2 and OpenAI-compatible HTTP.

Mount on the main CLI with ``app.command("serve")(serve_command)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from harness.serve import serve


def serve_command(
    model: str = typer.Argument(..., help="zoo model name (harness list models) or onnx:/module: user model"),
    backend: str = typer.Option("torch", "--backend", help="backend running the model: torch | onnxruntime | ..."),
    port: int = typer.Option(8000, "--port", help="TCP port"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind (default: this host only)"),
    size: str = typer.Option("tiny", "--size", help="model size: tiny | standard"),
    device: str = typer.Option("cpu", "--device", help="device: cpu | cuda | cuda:N"),
    options: str = typer.Option("{}", "--options", help='backend options as JSON, e.g. \'{"dtype": "fp16"}\''),
    max_num_seqs: int = typer.Option(16, "--max-num-seqs", help="decoders: sequences the engine steps at once"),
    log: Path | None = typer.Option(None, "--log", help="append each streamed request's token times (JSONL)"),
    max_batch_size: int = typer.Option(
        1, "--max-batch-size", min=1, help="KServe v2 requests: dynamic batching up to this many samples (1 = off)"
    ),
    max_queue_delay_ms: float = typer.Option(
        1.0, "--max-queue-delay-ms", min=0.0, help="dynamic batching: longest wait for more requests (ms)"
    ),
    api_key_env: str | None = typer.Option(
        None, "--api-key-env", help="require 'Authorization: Bearer <value of this environment variable>'"
    ),
) -> None:
    """Serve MODEL on HOST:PORT (KServe v2 /v2/..., OpenAI /v1/completions for decoders)."""
    try:
        opts = json.loads(options)
        if not isinstance(opts, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        raise typer.BadParameter(f"--options must be a JSON object: {exc}") from None
    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env, "")
        if not api_key:
            raise typer.BadParameter(f"--api-key-env: environment variable {api_key_env} is not set or empty")
    serve(
        model,
        backend,
        host,
        port,
        size,
        device,
        opts,
        max_num_seqs=max_num_seqs,
        log_path=log,
        api_key=api_key,
        max_batch_size=max_batch_size,
        max_queue_delay_ms=max_queue_delay_ms,
    )
