"""Server overhead: the in-process path against the same model behind ``harness serve``, and the
open-loop rate the remote client sustains against the ``null`` model.

All figures are measured in this run, on this host, with the server in a separate process on
127.0.0.1 (client and server share the host's cores). Cells run through ``execute_cell`` (the
runner's path) in this process.

1. Token streams: gpt2 tiny, torch, open loop (Poisson, ``TOKEN_QPS``), the same seeded prompts
   and lengths, in-process (continuous engine) vs ``openai`` streaming against ``harness serve``
   (the server's continuous engine, the client one thread per request in flight). Overhead =
   served - in-process, for TTFT, TPOT, ITL and e2e (p50, p99).
2. One-shot queries: gpt2 tiny single-stream, in-process torch vs ``kserve-v2`` (JSON and the
   binary extension). Overhead = served - in-process latency (p50, p99).
3. Client capacity: ``kserve-v2`` (binary) against ``harness serve tabular_mlp --backend null``,
   online (Poisson) at rising rates, each rate first run in-process on the ``null`` backend as
   a control (can this host issue that rate at all at this moment?); the highest rate whose
   remote run is valid on issuance (``generator_kept_up``, achieved rate met, no request failed)
   is reported as the sustained rate. Target: >= 2,000 requests/s. Then the pooled sync client
   against httpx's AsyncClient in a closed loop, with CPU time per request of client and server.

Criterion (exit 1 when it fails): every cell measured (status ok) with no failed request. The
2,000 requests/s target is reported, met or not, with the figure reached.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from harness.core.records import CellSpec
from harness.measure.backends.remote.lean import LeanClient
from harness.measure.backends.remote.transport import ErrorCounts
from harness.measure.worker import execute_cell
from harness.serve import free_port

TOKEN_QPS = 6.0
RATES = (50, 100, 200, 400, 800, 1600, 2400)
INSTANCES = 64  # client threads with a request in flight (the connection pool is larger)
STOP_TOK = {"min_duration_s": 6.0, "min_queries": 24, "max_duration_s": 40, "warmup_queries": 4, "warmup_s": 0.2}
STOP_ONE = {"min_duration_s": 3.0, "min_queries": 200, "max_duration_s": 20, "warmup_queries": 20, "warmup_s": 0.3}
STOP_RATE = {"min_duration_s": 3.0, "min_queries": 100, "max_duration_s": 15, "warmup_queries": 50, "warmup_s": 0.5}


def start_server(model: str, backend: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "harness.cli", "serve", model, "--backend", backend, "--port", str(port)]
    if backend == "torch":
        cmd += ["--options", '{"threads": 1}', "--max-num-seqs", "8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"harness serve exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("harness serve did not become ready in 120 s")


def cell(run_dir: Path, **kw: Any) -> Any:
    rec = execute_cell(CellSpec(size="tiny", **kw), run_dir, meters=[])  # latency only: no power meters
    if rec.status != "ok":
        raise RuntimeError(f"{rec.cell_id}: {rec.status}: {rec.error}")
    return rec


def ms(rec: Any, name: str) -> float:
    m = rec.metrics.get(name)
    return float("nan") if m is None or m.value is None else float(m.value)


def errors(rec: Any) -> dict[str, int]:
    return dict(rec.backend_info.get("errors_by_status") or {})


def token_part(run_dir: Path, url: str) -> list[str]:
    opts = {
        "mode": "open",
        "target_qps": TOKEN_QPS,
        "max_concurrency": 8,
        "prompt_len": 16,
        "output_len": 32,
        "stop": STOP_TOK,
    }
    local = cell(
        run_dir,
        model="gpt2",
        backend="torch",
        backend_options={"threads": 1},
        scenario="token-stream",
        scenario_options={**opts, "engine": "continuous"},
    )
    served = cell(
        run_dir,
        model="gpt2",
        backend="openai",
        backend_options={"url": url},
        parity=False,
        scenario="token-stream",
        scenario_options={**opts, "engine": "naive"},
    )
    if errors(served):
        raise RuntimeError(f"openai cell had failed requests: {errors(served)}")
    out = [
        f"### Token streams: gpt2 tiny, open loop {TOKEN_QPS:g} req/s, 16 prompt + 32 output tokens (measured)",
        "",
        "| metric (ms) | in-process | harness serve + openai | overhead |",
        "|---|---:|---:|---:|",
    ]
    for name in ("ttft_p50", "ttft_p99", "tpot_p50", "tpot_p99", "itl_p50", "itl_p99", "latency_p50", "latency_p99"):
        a, b = ms(local, name), ms(served, name)
        out.append(f"| {name} | {a:.2f} | {b:.2f} | {b - a:+.2f} |")
    out.append(
        f"| output tokens/s | {ms(local, 'output_tokens_per_s'):.0f} | {ms(served, 'output_tokens_per_s'):.0f} | |"
    )
    st = served.backend_info.get("stream", {})
    out.append(
        f"\nusage tokens {st.get('usage_completion_tokens')} = stream chunks {st.get('text_chunks')} "
        f"(requests where they differ: {st.get('requests_chunks_ne_usage')})"
    )
    return out


def oneshot_part(run_dir: Path, url: str) -> list[str]:
    local = cell(
        run_dir,
        model="gpt2",
        backend="torch",
        backend_options={"threads": 1},
        scenario="single-stream",
        scenario_options={"stop": STOP_ONE},
    )
    rows = [("in-process torch", local)]
    for binary in (False, True):
        rec = cell(
            run_dir,
            model="gpt2",
            backend="kserve-v2",
            backend_options={"url": url, "binary": binary},
            scenario="single-stream",
            scenario_options={"stop": STOP_ONE},
        )
        if errors(rec):
            raise RuntimeError(f"kserve-v2 cell had failed requests: {errors(rec)}")
        rows.append((f"kserve-v2 {'binary' if binary else 'JSON'}", rec))
    base50, base99 = ms(local, "latency_p50"), ms(local, "latency_p99")
    out = [
        "### One-shot queries: gpt2 tiny single-stream (measured)",
        "",
        "| path | latency p50 (ms) | p99 (ms) | overhead p50 | overhead p99 |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, rec in rows:
        p50, p99 = ms(rec, "latency_p50"), ms(rec, "latency_p99")
        out.append(f"| {label} | {p50:.3f} | {p99:.3f} | {p50 - base50:+.3f} | {p99 - base99:+.3f} |")
    return out


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def online(run_dir: Path, rate: float, backend: str, options: dict[str, Any]) -> Any:
    return cell(
        run_dir,
        model="tabular_mlp",
        backend=backend,
        backend_options=options,
        parity=False,
        scenario="online",
        scenario_options={"target_qps": rate, "instances": INSTANCES, "stop": STOP_RATE},
    )


def verdict(rec: Any) -> tuple[bool, str]:
    """Whether an online cell sustained its rate (issuance kept up, achieved rate met, no failed
    request), and its table cells."""
    kept = bool(rec.validity.get("generator_kept_up"))
    met = bool(rec.validity.get("achieved_rate_met", True))
    err = errors(rec)
    row = (
        f"{ms(rec, 'achieved_qps'):.0f} | {ms(rec, 'issue_delay_p99'):.2f} | "
        f"{rec.extra.get('late_fraction', float('nan')):.3f} | {kept} / {met} | "
        f"{ms(rec, 'latency_p50'):.2f} / {ms(rec, 'latency_p99'):.2f} | {err or 'none'}"
    )
    return kept and met and not err, row


def rate_part(run_dir: Path, url: str) -> tuple[list[str], float, float]:
    """Rising rates, each first in-process on the null backend (control: can this host issue
    the rate on time at all right now?), then remote. Returns the table, the highest rate whose
    remote run was valid (issuance kept up, rate met, no failure) and the highest whose achieved
    rate was met (requests served at the offered rate, issuance late or not); rising stops once
    the remote run misses the rate or fails."""
    out = [
        f"### Client capacity: kserve-v2 (binary, lean client) against the null model, {INSTANCES} client threads (measured)",
        "",
        "| offered req/s | path | achieved req/s | issue delay p99 (ms) | late fraction | kept up / rate met "
        "| latency p50 / p99 (ms) | errors |",
        "|---:|---|---:|---:|---:|---|---|---|",
    ]
    best_valid = best_rate = 0.0
    for rate in RATES:
        _, row = verdict(online(run_dir, rate, "null", {}))
        out.append(f"| {rate} | in-process null (control) | {row} |")
        try:
            rec = online(run_dir, rate, "kserve-v2", {"url": url, "binary": True})
        except RuntimeError as exc:  # a failed request fails a one-shot cell: report it, stop rising
            out.append(f"| {rate} | kserve-v2 -> harness serve null | cell failed: {exc} |")
            break
        ok, row = verdict(rec)
        out.append(f"| {rate} | kserve-v2 -> harness serve null | {row} |")
        if ok:
            best_valid = float(rate)
        if not rec.validity.get("achieved_rate_met", True) or errors(rec):
            break
        best_rate = float(rate)
    return out, best_valid, best_rate


def client_kinds(url: str, server_pid: int, seconds: float = 3.0, inflight: int = 32) -> list[str]:
    """Closed-loop requests/s of the pooled httpx client (threads), the lean per-thread client and
    httpx's AsyncClient (tasks on one event loop), ``inflight`` requests at once, same server,
    one after the other."""
    body = b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}'
    path = "/v2/models/tabular_mlp/infer"
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    count = [0]
    c0, s0 = time.process_time(), cpu_s(server_pid)
    with httpx.Client(base_url=url, limits=limits) as c:
        end = time.monotonic() + seconds

        def worker() -> None:
            while time.monotonic() < end:
                c.post(path, content=body)
                count[0] += 1

        ths = [threading.Thread(target=worker) for _ in range(inflight)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
    sync_rate = count[0] / seconds
    sync_cpu = ((time.process_time() - c0) / count[0] * 1e6, (cpu_s(server_pid) - s0) / count[0] * 1e6)
    lean = LeanClient(url, {}, True, 60.0, ErrorCounts())
    count = [0]
    c0, s0 = time.process_time(), cpu_s(server_pid)
    end = time.monotonic() + seconds

    def lean_worker() -> None:
        while time.monotonic() < end:
            lean.post(path, body, {"Content-Type": "application/json"})
            count[0] += 1

    ths = [threading.Thread(target=lean_worker) for _ in range(inflight)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    lean.close()
    lean_rate = count[0] / seconds
    lean_cpu = ((time.process_time() - c0) / count[0] * 1e6, (cpu_s(server_pid) - s0) / count[0] * 1e6)

    async def run_async() -> float:
        n = 0
        async with httpx.AsyncClient(base_url=url, limits=limits) as ac:
            end = time.monotonic() + seconds

            async def task() -> None:
                nonlocal n
                while time.monotonic() < end:
                    await ac.post(path, content=body)
                    n += 1

            await asyncio.gather(*[task() for _ in range(inflight)])
        return n / seconds

    c0, s0 = time.process_time(), cpu_s(server_pid)
    async_rate = asyncio.run(run_async())
    n_async = max(async_rate * seconds, 1)
    async_cpu = ((time.process_time() - c0) / n_async * 1e6, (cpu_s(server_pid) - s0) / n_async * 1e6)
    return [
        f"### Client kinds: closed loop, {inflight} requests in flight, {seconds:g} s each (measured)",
        "",
        "CPU per request = process CPU time (user + system) in the window / requests.",
        "",
        "| client | requests/s | client CPU µs/req | server CPU µs/req |",
        "|---|---:|---:|---:|",
        f"| http.client, one connection per thread, {inflight} threads (kserve-v2's default) | {lean_rate:.0f} | "
        f"{lean_cpu[0]:.0f} | {lean_cpu[1]:.0f} |",
        f"| httpx.Client, pooled, {inflight} threads (openai streams; kserve-v2 client: httpx) | {sync_rate:.0f} | "
        f"{sync_cpu[0]:.0f} | {sync_cpu[1]:.0f} |",
        f"| httpx.AsyncClient, {inflight} tasks on one event loop | {async_rate:.0f} | "
        f"{async_cpu[0]:.0f} | {async_cpu[1]:.0f} |",
    ]


def main(argv: list[str]) -> int:
    """``--rate-only``: only the client capacity parts (no gpt2 server)."""
    load = os.getloadavg()[0]
    print(f"host: {os.cpu_count()} cores, load average {load:.1f} at start (figures depend on it)\n")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        lines: list[str] = []
        if "--rate-only" not in argv:
            proc, url = start_server("gpt2", "torch")
            try:
                lines = token_part(run_dir, url) + [""] + oneshot_part(run_dir, url)
            finally:
                proc.terminate()
                proc.wait(30)
        proc, url = start_server("tabular_mlp", "null")
        try:
            rl, best, best_rate = rate_part(run_dir, url)
            rl += [""] + client_kinds(url, proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
    print("\n".join([*lines, "", *rl, ""]))
    met = "met" if best >= 2000 else "NOT met"
    print(
        f"sustained open-loop rate, valid run: {best:.0f} requests/s (target 2,000: {met}); highest rate served "
        f"with issuance late or not: {best_rate:.0f} requests/s; load average {os.getloadavg()[0]:.1f} at the end"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
