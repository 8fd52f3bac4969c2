"""Pieces of the remote backends and the server that need no running server: the KServe v2
codec, prompt files and prompt parsing, stream chunks and usage sums, connection settings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.measure.backends.base import BackendUnavailable
from harness.measure.backends.remote import v2codec
from harness.measure.backends.remote.openai import StreamStats, chunk_text, read_prompts
from harness.measure.backends.remote.transport import ErrorCounts, RemoteConfig


@pytest.mark.parametrize("binary", [False, True])
def test_v2_codec_round_trip_every_datatype(binary):
    rng = np.random.default_rng(0)
    tensors = [
        (f"t_{dt}", (rng.standard_normal((2, 3)) * 50).astype(dt))
        for dt in ("float32", "float16", "float64", "int64", "int32", "int16", "int8", "uint8")
    ]
    tensors.append(("mask", np.array([[True, False, True]])))
    body, headers = v2codec.encode(tensors, "inputs", binary, {"id": "7"})
    hl = int(headers[v2codec.HEADER_LEN]) if binary else None
    assert (v2codec.HEADER_LEN in headers) == binary
    head, back = v2codec.decode(body, hl, "inputs")
    assert head["id"] == "7"
    assert [n for n, _ in back] == [n for n, _ in tensors]
    for (_, a), (_, b) in zip(tensors, back):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
        assert b.flags.writeable


def test_v2_codec_rejects_malformed_messages():
    with pytest.raises(ValueError, match="no 'outputs' list"):
        v2codec.decode(b'{"inputs": []}', None, "outputs")
    bad = json.dumps({"inputs": [{"name": "x", "shape": [2], "datatype": "FP8", "data": [1, 2]}]}).encode()
    with pytest.raises(ValueError, match="'x'.*FP8.*allowed"):
        v2codec.decode(bad, None, "inputs")
    short = json.dumps({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2]}]}).encode()
    with pytest.raises(ValueError, match="2 values for shape"):
        v2codec.decode(short, None, "inputs")
    with pytest.raises(ValueError, match="no v2 datatype"):
        v2codec.encode([("c", np.array([1 + 2j]))], "inputs", False)


def test_prompts_file(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('"plain"\n\n{"prompt": "text"}\n{"messages": [{"role": "user", "content": "hi"}]}\n')
    assert read_prompts(str(p), "chat") == ["plain", "text", [{"role": "user", "content": "hi"}]]
    with pytest.raises(ValueError, match=r"p.jsonl:4: expected a JSON string or an object with 'prompt'"):
        read_prompts(str(p), "completions")  # messages only for chat
    p.write_text('"ok"\n{not json\n')
    with pytest.raises(ValueError, match=r"p.jsonl:2: not JSON"):
        read_prompts(str(p), "completions")


def test_chunks_and_usage_sums():
    assert chunk_text({"choices": [{"text": " 5"}]}) == " 5"
    assert chunk_text({"choices": [{"delta": {"content": "hi"}}]}) == "hi"
    assert chunk_text({"choices": [{"delta": {"role": "assistant"}}]}) == ""
    assert chunk_text({"choices": [], "usage": {"completion_tokens": 3}}) == ""
    s = StreamStats()
    s.add(3, {"completion_tokens": 3, "prompt_tokens": 4})
    s.add(2, {"completion_tokens": 4, "prompt_tokens": 1})  # a server packing tokens into chunks
    s.add(1, None)
    v = s.snapshot()
    assert v["requests"] == 3 and v["text_chunks"] == 6
    assert v["usage_completion_tokens"] == 7 and v["usage_prompt_tokens"] == 5
    assert v["requests_chunks_ne_usage"] == 1 and v["requests_without_usage"] == 1


def test_prompt_parsing_of_the_server():
    pytest.importorskip("fastapi")
    from fastapi import HTTPException

    from harness.serve.app import prompt_ids

    assert prompt_ids([3, 700, 5], 512).tolist() == [3, 188, 5]
    assert prompt_ids("12 7 9", 512).tolist() == [12, 7, 9]
    assert prompt_ids(["hi"], 512).tolist() == [104, 105]
    with pytest.raises(HTTPException):
        prompt_ids({"x": 1}, 512)


def test_connection_settings_never_hold_the_secret(monkeypatch, tmp_path):
    monkeypatch.setenv("REMOTE_UNIT_KEY", "s3cr3t-value")
    cfg = RemoteConfig.from_options(
        "openai", {"url": "https://h:1/", "auth_env": "REMOTE_UNIT_KEY", "auth_scheme": "Bearer"}
    )
    assert cfg.url == "https://h:1"
    assert cfg.auth_header() == {"Authorization": "Bearer s3cr3t-value"}
    assert "s3cr3t" not in json.dumps(cfg.describe()) and "s3cr3t" not in repr(cfg)
    assert cfg.describe()["auth"] == "env:REMOTE_UNIT_KEY" and cfg.describe()["retries"] == 0
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert RemoteConfig.from_options("x", {"url": "http://h", "verify_tls": str(ca)}).verify == str(ca)
    assert RemoteConfig.from_options("x", {"url": "http://h", "verify_tls": "false"}).verify is False
    with pytest.raises(ValueError, match="verify_tls"):
        RemoteConfig.from_options("x", {"url": "http://h", "verify_tls": "/no/such/ca.pem"})
    monkeypatch.setenv("REMOTE_UNIT_KEY", "")
    with pytest.raises(BackendUnavailable, match="REMOTE_UNIT_KEY") as ei:
        cfg.auth_header()
    assert "s3cr3t" not in str(ei.value)


def test_error_counts_by_key():
    e = ErrorCounts()
    for k in ("503", "timeout", "503"):
        e.add(k)
    assert e.snapshot() == {"503": 2, "timeout": 1}
