"""The ``openai`` backend: an OpenAI-compatible server (vLLM, TGI, SGLang, llama.cpp,
``harness serve``) over ``/v1/completions`` or ``/v1/chat/completions``.

``generate`` (the ``token-stream`` scenario) sends one streaming request (server-sent events,
``stream_options.include_usage``) and yields once per streamed chunk that carries text, as the
chunk arrives: the scenario stamps each yield, so TTFT, ITL, TPOT and tokens/s come from the
stream as the client saw it. The request is sent when the scenario calls ``generate`` (its
dispatch); latency still counts from the scheduled time.

Token counts: the server's ``usage`` (``completion_tokens``, ``prompt_tokens``) is summed in
``describe()["stream"]`` beside the number of text chunks; a server that packs several tokens
into one chunk shows up as ``requests_chunks_ne_usage`` > 0 (the per-token timings then are per
chunk). A request that fails (status, timeout, broken stream) is counted in
``errors_by_status`` and ends its stream early: the scenario records it as incomplete.

``infer`` (the ``online``/``offline`` scenarios) sends one non-streaming completion of
``max_tokens`` tokens per query (batch rows become a list of prompts) and raises on failure.

Prompts: the workload's generator (token ids, sent as a token-id list to ``/v1/completions``
and as space-separated ids in a chat message), or ``prompts_file``: JSONL, one prompt per line,
either a JSON string or an object with ``prompt`` (text) or ``messages`` (chat), used in turn.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness.measure.backends.base import Backend, Capabilities
from harness.measure.backends.remote.transport import (
    COMMON_OPTIONS,
    ErrorCounts,
    RemoteConfig,
    RemoteError,
    check_status,
    httpx_available,
    transport_key,
)

_OPTIONS = {
    **COMMON_OPTIONS,
    "model": "model name sent in each request (default: the workload's name)",
    "endpoint": "completions (default) or chat",
    "prompts_file": "JSONL file of prompts (a JSON string, or an object with 'prompt' or 'messages') used in turn",
    "max_tokens": "infer (non-streaming) queries: tokens to generate per prompt (default 16)",
    "ignore_eos": "send ignore_eos=true so every request generates exactly max_tokens (vLLM; default false)",
    "extra_body": "mapping merged into every request body (server-specific sampling settings)",
}


def read_prompts(path: str, endpoint: str) -> list[Any]:
    """Prompts of a JSONL file: text (str) or, for chat, a ``messages`` list. Raises
    ``ValueError`` naming ``path:line`` for a line that is neither."""
    out: list[Any] = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"prompts_file {path}:{i}: not JSON ({exc.msg})") from None
        if isinstance(obj, dict) and "messages" in obj and endpoint == "chat":
            out.append(list(obj["messages"]))
        elif isinstance(obj, dict) and isinstance(obj.get("prompt"), str):
            out.append(obj["prompt"])
        elif isinstance(obj, str):
            out.append(obj)
        else:
            raise ValueError(
                f"prompts_file {path}:{i}: expected a JSON string or an object with 'prompt' (text)"
                + (" or 'messages'" if endpoint == "chat" else "")
            )
    if not out:
        raise ValueError(f"prompts_file {path}: no prompts")
    return out


class StreamStats:
    """Thread-safe sums over streamed requests (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.v = {
            "requests": 0,
            "text_chunks": 0,
            "usage_completion_tokens": 0,
            "usage_prompt_tokens": 0,
            "requests_without_usage": 0,
            "requests_chunks_ne_usage": 0,
        }

    def add(self, chunks: int, usage: Mapping[str, Any] | None) -> None:
        with self._lock:
            v = self.v
            v["requests"] += 1
            v["text_chunks"] += chunks
            if usage is None:
                v["requests_without_usage"] += 1
                return
            ct = int(usage.get("completion_tokens") or 0)
            v["usage_completion_tokens"] += ct
            v["usage_prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
            v["requests_chunks_ne_usage"] += int(ct != chunks)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.v)


def chunk_text(obj: Mapping[str, Any]) -> str:
    """The text a completions or chat-completions stream chunk carries ('' when none)."""
    choices = obj.get("choices") or []
    if not choices:
        return ""
    c = choices[0]
    if "text" in c:
        return str(c.get("text") or "")
    delta = c.get("delta") or {}
    return str(delta.get("content") or "")


class OpenAIBackend(Backend):
    """Client of an OpenAI-compatible server (see the module docstring)."""

    name: ClassVar[str] = "openai"
    #: measured against a running server (needs option url); see tests/test_remote_serve.py
    remote: ClassVar[bool] = True
    capabilities: ClassVar[Capabilities] = Capabilities(
        devices=("cpu", "cuda", "remote"),
        dtypes=("fp32", "fp16", "bf16", "int8", "fp8"),
        streaming=True,
        needs_model=False,
        options=_OPTIONS,
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.config: RemoteConfig | None = None  # parsed at load: a class can be listed without a server
        self.endpoint = str(self.options.get("endpoint", "completions"))
        if self.endpoint not in ("completions", "chat"):
            raise ValueError(f"backend 'openai': option 'endpoint' must be completions or chat, got {self.endpoint!r}")
        extra = self.options.get("extra_body", {})
        if not isinstance(extra, Mapping):
            raise ValueError("backend 'openai': option 'extra_body' must be a mapping")
        self.extra_body = dict(extra)
        if self.options.get("ignore_eos"):
            self.extra_body["ignore_eos"] = True
        self.max_tokens = int(self.options.get("max_tokens", 16))
        self.errors = ErrorCounts()
        self.stream_stats = StreamStats()
        self._client: Any = None
        self._prompts: list[Any] | None = None
        self._next = itertools.count()
        self.model = ""

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return httpx_available()

    @property
    def path(self) -> str:
        return "/v1/chat/completions" if self.endpoint == "chat" else "/v1/completions"

    def load(self, workload: Any, device: str = "cpu") -> None:
        self.device = device
        self.config = RemoteConfig.from_options(self.name, self.options)
        self.model = str(self.options.get("model") or getattr(workload, "name", "model"))
        if self.options.get("prompts_file"):
            self._prompts = read_prompts(str(self.options["prompts_file"]), self.endpoint)
        self._client = self.config.client()

    # ------------------------------------------------------------------ request bodies (untimed)

    def _prompt_field(self, prompt_ids: np.ndarray) -> dict[str, Any]:
        if self._prompts is not None:
            p = self._prompts[next(self._next) % len(self._prompts)]
        else:
            ids = [int(x) for x in np.asarray(prompt_ids).reshape(-1)]
            p = ids if self.endpoint == "completions" else " ".join(map(str, ids))
        if self.endpoint == "chat":
            return {"messages": p if isinstance(p, list) else [{"role": "user", "content": p}]}
        return {"prompt": p}

    def body(self, prompt_ids: np.ndarray, max_tokens: int, stream: bool) -> dict[str, Any]:
        """The JSON request for one prompt."""
        b: dict[str, Any] = {"model": self.model, "max_tokens": int(max_tokens), **self._prompt_field(prompt_ids)}
        if stream:
            b["stream"] = True
            b["stream_options"] = {"include_usage": True}
        b.update(self.extra_body)
        return b

    # ------------------------------------------------------------------ streaming

    def generate(self, prompt_ids: np.ndarray, max_new_tokens: int) -> Iterator[int]:
        import httpx  # optional dependency ([remote]); available() checked it at load

        body = self.body(prompt_ids, max_new_tokens, stream=True)
        chunks = 0
        usage: Mapping[str, Any] | None = None
        try:
            with self._client.stream("POST", self.path, json=body) as resp:
                check_status(resp, self.errors, f"POST {self.path}")
                for line in resp.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    obj = json.loads(data)
                    if obj.get("usage"):
                        usage = obj["usage"]
                    if chunk_text(obj):
                        chunks += 1
                        yield chunks - 1
        except RemoteError:
            return  # counted in check_status; the request stays incomplete
        except httpx.HTTPError as exc:
            self.errors.add(transport_key(exc))
            return
        except json.JSONDecodeError:
            self.errors.add("bad_stream")
            return
        self.stream_stats.add(chunks, usage)

    # ------------------------------------------------------------------ one-shot queries

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> Any:
        ids = np.asarray(next(iter(inputs.values())))
        rows = ids if ids.ndim == 2 else ids.reshape(1, -1)
        return [self.body(r, self.max_tokens, stream=False) for r in rows]

    def infer(self, prepared: Any) -> Any:
        import httpx  # optional dependency ([remote]); available() checked it at load

        out = []
        for body in prepared:
            try:
                resp = self._client.post(self.path, json=body)
            except httpx.HTTPError as exc:
                key = transport_key(exc)
                self.errors.add(key)
                raise RemoteError(
                    key,
                    f"POST {self.path}: {key} ({type(exc).__name__}: {exc}; errors so far: {self.errors.snapshot()})",
                ) from None
            check_status(resp, self.errors, f"POST {self.path}")
            out.append(resp.json())
        return out

    def to_numpy(self, outputs: Any) -> list[np.ndarray]:
        return []  # text completions: no tensors to compare

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["options"] = {k: v for k, v in self.options.items() if k not in ("extra_body",)}
        d.update(
            remote=self.config.describe() if self.config else None,
            endpoint=self.path,
            model=self.model,
            errors_by_status=self.errors.snapshot(),
            stream=self.stream_stats.snapshot(),
            timing_scope="client side: request sent -> chunk received over HTTP (network and server included)",
        )
        return d

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
