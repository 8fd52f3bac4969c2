"""HTTP routes of ``harness serve`` (FastAPI).

KServe v2 / Triton: ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2/models/{name}``
(metadata), ``POST /v2/models/{name}[/versions/{v}]/infer`` (JSON or the binary tensor
extension; outputs in binary when the request asks for it). With dynamic batching on, requests
go to the batcher's thread; otherwise a decoder's batches run in a worker thread (its token
streams keep flowing meanwhile) and other models' batches on the event loop, one at a time (the
model runs one batch at a time in any case).

OpenAI-compatible (decoders): ``POST /v1/completions`` and ``POST /v1/chat/completions``, with
``stream: true`` as server-sent events, one event per generated token, and with
``stream_options.include_usage`` a last event carrying ``usage``. A prompt is a token-id list,
or text: whitespace-separated integers are taken as token ids, any other text maps its UTF-8
bytes to ids (``byte % vocab``). Generated text is each token id as ``" <id>"``.

``GET /harness/requests``: the server's token log (see :mod:`harness.serve.model`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from harness.core.clock import now_ns
from harness.measure.backends.remote import v2codec
from harness.serve.model import ServedModel


def prompt_ids(prompt: Any, vocab: int) -> np.ndarray:
    """Token ids of an OpenAI ``prompt`` (see the module docstring); 400 when malformed."""
    if isinstance(prompt, list) and len(prompt) == 1 and not isinstance(prompt[0], int):
        prompt = prompt[0]  # a batch of one
    if isinstance(prompt, list) and all(isinstance(x, int) for x in prompt):
        ids = np.asarray(prompt, dtype=np.int64)
    elif isinstance(prompt, str):
        parts = prompt.split()
        if parts and all(p.isdigit() for p in parts):
            ids = np.asarray([int(p) for p in parts], dtype=np.int64)
        else:
            ids = np.frombuffer(prompt.encode("utf-8"), dtype=np.uint8).astype(np.int64)
    else:
        raise HTTPException(400, "prompt: expected a string or a list of token ids (one prompt per request)")
    return ids % vocab if vocab else ids


def _chat_text(messages: Any) -> str:
    if not isinstance(messages, list) or not messages:
        raise HTTPException(400, "messages: expected a non-empty list of {role, content}")
    return " ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def build_app(model: ServedModel, api_key: str | None = None) -> FastAPI:
    """The FastAPI app serving ``model`` (closed with the app's lifespan). With ``api_key``,
    every request but the health checks needs ``Authorization: Bearer <api_key>`` (else 401)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        model.close()

    app = FastAPI(title=f"harness serve: {model.name}", lifespan=lifespan)

    expected = f"Bearer {api_key}" if api_key is not None else None

    def authorize(request: Request) -> None:
        """401 unless the request carries the API key (when one is set)."""
        if expected is not None and not hmac.compare_digest(request.headers.get("authorization", ""), expected):
            raise HTTPException(401, "missing or wrong Authorization header")

    @app.get("/v2/health/live")
    def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.get("/v2/models/{name}")
    def metadata(name: str, request: Request) -> dict[str, Any]:
        authorize(request)
        _check_name(name)
        return {"name": model.name, "platform": model.backend_name, "inputs": model.input_names(), **model.describe()}

    def _check_name(name: str) -> None:
        if name != model.name:
            raise HTTPException(404, f"unknown model {name!r}; this server serves {model.name!r}")

    async def _infer(name: str, request: Request) -> Response:
        authorize(request)
        _check_name(name)
        body = await request.body()
        hl = request.headers.get(v2codec.HEADER_LEN)
        try:
            head, tensors = v2codec.decode(body, int(hl) if hl is not None else None, "inputs")
        except (ValueError, json.JSONDecodeError) as exc:
            raise HTTPException(400, str(exc)) from None
        # a decoder's streams must keep flowing while a batch runs: off the event loop; any other
        # model runs one batch at a time anyway, so inline (a thread hop per request saved)
        if model.batcher is not None:
            outs = await asyncio.wrap_future(model.batcher.submit(dict(tensors)))
        elif model.decoder:
            outs = await run_in_threadpool(model.infer, dict(tensors))
        else:
            outs = model.infer(dict(tensors))
        binary = bool((head.get("parameters") or {}).get("binary_data_output")) or any(
            (o.get("parameters") or {}).get("binary_data") for o in head.get("outputs") or []
        )
        payload, headers = v2codec.encode(outs, "outputs", binary, {"model_name": model.name, "id": head.get("id", "")})
        return Response(payload, headers=headers, media_type=headers["Content-Type"])

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> Response:
        return await _infer(name, request)

    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer_version(name: str, version: str, request: Request) -> Response:
        return await _infer(name, request)

    async def _complete(request: Request, chat: bool) -> Response:
        received = now_ns()
        authorize(request)
        try:
            req = await request.json()
        except json.JSONDecodeError:
            raise HTTPException(400, "body: not JSON") from None
        ids = prompt_ids(_chat_text(req.get("messages")) if chat else req.get("prompt"), model.vocab)
        max_tokens = int(req.get("max_tokens") or 16)
        why = model.check_prompt(ids, max_tokens)
        if why:
            raise HTTPException(400, why)
        loop = asyncio.get_running_loop()
        q: asyncio.Queue[tuple[int, int] | BaseException | None] = asyncio.Queue()
        model.stream(
            ids,
            max_tokens,
            received,
            lambda tok, t: loop.call_soon_threadsafe(q.put_nowait, (tok, t)),
            lambda e: loop.call_soon_threadsafe(q.put_nowait, e),
        )
        created = int(time.time())
        kind = "chat.completion.chunk" if chat else "text_completion"
        usage_wanted = bool((req.get("stream_options") or {}).get("include_usage"))

        def choice(text: str, finish: str | None) -> dict[str, Any]:
            c: dict[str, Any] = {"index": 0, "finish_reason": finish}
            if chat:
                c["delta"] = {"content": text}
            else:
                c["text"] = text
            return c

        async def tokens() -> AsyncIterator[int]:
            while True:
                item = await q.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item[0]

        usage = {"prompt_tokens": int(ids.size)}
        if req.get("stream"):

            async def events() -> AsyncIterator[bytes]:
                n = 0
                async for tok in tokens():
                    n += 1
                    yield _sse(
                        {"object": kind, "created": created, "model": model.name, "choices": [choice(f" {tok}", None)]}
                    )
                yield _sse({"object": kind, "model": model.name, "choices": [choice("", "length")]})
                if usage_wanted:
                    u = {**usage, "completion_tokens": n, "total_tokens": usage["prompt_tokens"] + n}
                    yield _sse({"object": kind, "model": model.name, "choices": [], "usage": u})
                yield b"data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        text = "".join([f" {t}" async for t in tokens()])
        n = len(text.split())
        c = choice(text, "length")
        if chat:
            c["message"] = {"role": "assistant", "content": c.pop("delta")["content"]}
        u = {**usage, "completion_tokens": n, "total_tokens": usage["prompt_tokens"] + n}
        return JSONResponse({"object": kind.removesuffix(".chunk"), "model": model.name, "choices": [c], "usage": u})

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await _complete(request, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await _complete(request, chat=True)

    @app.get("/harness/requests")
    def requests(request: Request) -> list[dict[str, Any]]:
        authorize(request)
        return model.requests()

    return app
