"""The remote backends measure a zoo model through a real ``harness serve`` (FastAPI + uvicorn on
127.0.0.1, torch backend, continuous batching for the decoder), end to end through a suite:
token counts and token times agree with the server's own log, KServe v2 outputs match the
in-process model (parity), the secret never reaches the run record, failures are counted by
status code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")
pytest.importorskip("torch")

from harness.core.spec import load_suite
from harness.measure.backends.remote.kserve_v2 import KServeV2Backend
from harness.measure.backends.remote.openai import OpenAIBackend
from harness.measure.runner import run_cells
from harness.serve import ServerThread
from harness.serve.model import ServedModel
from workloads.registry import get_workload

SECRET = "sk-test-5f1e9c0d7a-never-stored"
N_REQ = 6
OUT_LEN = 5


@pytest.fixture(scope="module")
def server():
    srv = ServerThread(ServedModel("gpt2", "torch", "tiny", max_num_seqs=4), api_key=SECRET).start()
    yield srv
    srv.stop()


def _requests(url: str) -> list[dict]:
    import httpx

    return httpx.get(f"{url}/harness/requests", headers={"Authorization": f"Bearer {SECRET}"}).json()


def _suite(tmp_path: Path, url: str) -> Path:
    (tmp_path / "token").write_text(f"Bearer {SECRET}\n")
    p = tmp_path / "remote.yaml"
    p.write_text(
        f"""
name: remote
defaults:
  size: tiny
  stop: {{min_duration_s: 0.0, min_queries: {N_REQ}, max_queries: {N_REQ}, max_duration_s: 20,
          warmup_s: 0.0, warmup_queries: 1}}
matrix:
  - models: [gpt2]
    backends: [{{name: openai, options: {{url: "{url}", auth_env: H6_TEST_TOKEN, auth_scheme: Bearer}}}}]
    scenarios:
      - name: token-stream
        options: {{mode: closed, concurrency: 1, engine: naive, prompt_len: [4, 8], output_len: {OUT_LEN}}}
  - models: [gpt2]
    backends: [{{name: kserve-v2, options: {{url: "{url}", binary: true, client: httpx, auth_env: H6_TEST_TOKEN,
                                             auth_scheme: Bearer}}}},
               {{name: kserve-v2, options: {{url: "{url}", auth_file: "{tmp_path}/token"}}}}]
    scenarios: [single-stream]
""",
        encoding="utf-8",
    )
    return p


def test_suite_through_harness_serve(server, tmp_path, monkeypatch):
    monkeypatch.setenv("H6_TEST_TOKEN", SECRET)
    before = len(_requests(server.url))
    _, cells = load_suite(_suite(tmp_path, server.url))
    run = run_cells(cells, name="remote", root=tmp_path / "results", isolate=False)
    by_backend = {c.spec.backend + str(c.spec.backend_options.get("binary", "")): c for c in run.cells}
    for c in run.cells:
        assert c.status == "ok", c.error

    # --- openai streaming: counts and times against the server's log
    oc = by_backend["openai"]
    info = oc.backend_info
    assert info["errors_by_status"] == {}
    assert info["stream"]["requests_chunks_ne_usage"] == 0
    assert info["stream"]["requests_without_usage"] == 0
    run_dir = next((tmp_path / "results").iterdir())
    q = pd.read_parquet(run_dir / oc.raw_file)
    toks = pd.read_parquet(run_dir / oc.tokens_file)
    assert len(q) == N_REQ
    logged = _requests(server.url)[before:]
    assert len(logged) == N_REQ + 1  # one warm-up request, then the measured ones in order
    logged = logged[1:]
    for i, srv in enumerate(logged):
        row = q.iloc[i]
        t_client = toks[toks.query_id == i].sort_values("index").t_ns.to_numpy()
        t_server = np.asarray(srv["token_ns"], dtype=np.int64)
        assert row.n_tokens == len(t_client) == len(t_server) == OUT_LEN == srv["max_tokens"]
        assert srv["prompt_tokens"] == row.prompt_len
        # one host-wide monotonic clock: sent <= received by the server <= first token made
        # <= first token read by the client; every token is read after the server made it
        assert row.scheduled_ns <= srv["received_ns"] <= t_server[0] <= t_client[0]
        assert np.all(t_server <= t_client)
        # TTFT/e2e as the client measured them bound the server's own intervals from above
        assert t_client[0] - row.scheduled_ns >= t_server[0] - srv["received_ns"]
        assert t_client[-1] - row.scheduled_ns >= t_server[-1] - srv["received_ns"]
    assert info["stream"]["usage_completion_tokens"] == N_REQ * OUT_LEN + OUT_LEN  # measured + warm-up

    # --- kserve-v2: both encodings measured, outputs equal to the in-process model
    for key in ("kserve-v2True", "kserve-v2"):
        kc = by_backend[key]
        assert kc.parity is not None and kc.parity.checked and kc.parity.passed, kc.parity
        assert kc.backend_info["errors_by_status"] == {}
        assert kc.metrics["latency_p50"].value > 0

    # --- the secret is nowhere in the stored run, though the header was sent
    text = "".join(p.read_text(errors="replace") for p in run_dir.rglob("*.json"))
    assert SECRET not in text
    assert "env:H6_TEST_TOKEN" in text  # where it came from is recorded


AUTH = {"auth_env": "H6_TEST_TOKEN", "auth_scheme": "Bearer"}


def test_errors_counted_by_status(server, monkeypatch):
    monkeypatch.setenv("H6_TEST_TOKEN", SECRET)
    w = get_workload("gpt2", "tiny")
    be = OpenAIBackend(url=server.url, **AUTH)
    be.load(w)
    try:
        # prompt + max_tokens beyond the model's context: HTTP 400, the stream ends at once
        assert list(be.generate(np.arange(8), 500)) == []
        assert list(be.generate(np.arange(8), 3)) == [0, 1, 2]
        assert be.describe()["errors_by_status"] == {"400": 1}
    finally:
        be.close()
    anon = OpenAIBackend(url=server.url)  # no Authorization header: the server refuses
    anon.load(w)
    assert list(anon.generate(np.arange(8), 3)) == []
    assert anon.describe()["errors_by_status"] == {"401": 1}
    anon.close()
    kb = KServeV2Backend(url=server.url, model="no-such-model", **AUTH)
    kb.load(w)
    try:
        with pytest.raises(RuntimeError, match="HTTP 404"):
            kb.infer(kb.prepare(w.make_inputs(1)))
        assert kb.describe()["errors_by_status"] == {"404": 1}
    finally:
        kb.close()
    dead = OpenAIBackend(url="http://127.0.0.1:9", timeout_s=2)  # nothing listens on port 9
    dead.load(w)
    assert list(dead.generate(np.arange(4), 2)) == []
    assert dead.describe()["errors_by_status"] == {"connect_error": 1}
    dead.close()
    for client in ("lean", "httpx"):
        kdead = KServeV2Backend(url="http://127.0.0.1:9", timeout_s=2, client=client)
        kdead.load(w)
        with pytest.raises(RuntimeError, match="connect_error"):
            kdead.infer(kdead.prepare(w.make_inputs(1)))
        assert kdead.describe()["errors_by_status"] == {"connect_error": 1}
        kdead.close()


def test_secret_source_must_hold_a_value(monkeypatch, tmp_path):
    from harness.measure.backends.base import BackendUnavailable

    monkeypatch.delenv("H6_TEST_TOKEN", raising=False)
    with pytest.raises(BackendUnavailable, match="H6_TEST_TOKEN is not set"):
        OpenAIBackend(url="http://127.0.0.1:9", **AUTH).load(get_workload("gpt2", "tiny"))
    (tmp_path / "empty").write_text("")
    with pytest.raises(BackendUnavailable, match="cannot read"):
        KServeV2Backend(url="http://127.0.0.1:9", auth_file=str(tmp_path / "empty")).load(get_workload("gpt2", "tiny"))
    with pytest.raises(ValueError, match="not both"):
        OpenAIBackend(url="http://x", auth_env="A", auth_file="B").load(get_workload("gpt2", "tiny"))
    with pytest.raises(ValueError, match="http:// or https://"):
        OpenAIBackend(url="127.0.0.1:8000").load(get_workload("gpt2", "tiny"))


def test_chat_endpoint_and_prompts_file(server, tmp_path, monkeypatch):
    monkeypatch.setenv("H6_TEST_TOKEN", SECRET)
    pf = tmp_path / "prompts.jsonl"
    pf.write_text(
        json.dumps({"messages": [{"role": "user", "content": "hello there"}]}) + "\n" + json.dumps("12 7 9") + "\n"
    )
    be = OpenAIBackend(url=server.url, endpoint="chat", prompts_file=str(pf), **AUTH)
    be.load(get_workload("gpt2", "tiny"))
    try:
        before = len(_requests(server.url))
        assert len(list(be.generate(np.arange(4), 3))) == 3
        assert len(list(be.generate(np.arange(4), 2))) == 2
        logged = _requests(server.url)[before:]
        # "hello there" -> 11 UTF-8 bytes; "12 7 9" -> three token ids
        assert [r["prompt_tokens"] for r in logged] == [11, 3]
        assert be.describe()["stream"]["usage_completion_tokens"] == 5
    finally:
        be.close()


def test_serve_command_defaults_to_this_host_and_checks_options():
    from typer.testing import CliRunner

    from harness.cli.main import _mount_optional, app

    _mount_optional()
    r = CliRunner().invoke(app, ["serve", "--help"])
    assert r.exit_code == 0 and "127.0.0.1" in r.output
    r = CliRunner().invoke(app, ["serve", "gpt2", "--options", "[1, 2]"])
    assert r.exit_code == 2 and "JSON object" in r.output
    r = CliRunner().invoke(app, ["serve", "gpt2", "--api-key-env", "H6_UNSET_VARIABLE_FOR_TEST"])
    assert r.exit_code == 2 and "H6_UNSET_VARIABLE_FOR_TEST" in r.output
