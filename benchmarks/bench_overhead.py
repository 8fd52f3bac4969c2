"""Harness overhead, measured against a hand-written raw loop in the same run.

1. Throughput ratio harness / raw loop, same model, threads and batch, for torch and
   onnxruntime. Rounds alternate (raw, harness, raw, harness, ...) so drift on a shared machine
   hits both; the ratio of medians must be >= 0.97.
2. The ``null`` backend's per-query latency in single-stream (the harness's own cost per
   query: two clock reads, a method call, two list appends): target p50 < 2 us.

Prints a Markdown table; exits 1 when a criterion fails.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.records import CellSpec
from harness.runner import host_profile
from harness.worker import execute_cell
from workloads.registry import get_workload

ROUNDS = 5
SECONDS = 2.0
THREADS = 2
CASES = [("resnet50", "tiny", 8), ("bert", "tiny", 8), ("tabular_mlp", "standard", 64)]


def raw_torch(model: str, size: str, bs: int, seconds: float) -> float:
    import torch

    torch.set_num_threads(THREADS)
    w = get_workload(model, size)
    m = w.build_torch().eval()
    x = [torch.from_numpy(a) for a in w.make_inputs(bs, seed=0).values()]
    with torch.inference_mode():
        for _ in range(5):
            m(*x)
        n = 0
        t0 = time.perf_counter_ns()
        end = t0 + int(seconds * 1e9)
        while True:
            m(*x)
            n += 1
            t = time.perf_counter_ns()
            if t >= end:
                break
    return n * bs / ((t - t0) / 1e9)


def raw_ort(model: str, size: str, bs: int, seconds: float) -> float:
    import onnxruntime as ort

    w = get_workload(model, size)
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    sess = ort.InferenceSession(str(w.onnx_path()), sess_options=so, providers=["CPUExecutionProvider"])
    feed = w.make_inputs(bs, seed=0)
    for _ in range(5):
        sess.run(None, feed)
    n = 0
    t0 = time.perf_counter_ns()
    end = t0 + int(seconds * 1e9)
    while True:
        sess.run(None, feed)
        n += 1
        t = time.perf_counter_ns()
        if t >= end:
            break
    return n * bs / ((t - t0) / 1e9)


def harness_run(backend: str, model: str, size: str, bs: int, seconds: float, run_dir: Path, profile: Any,
                scenario: str = "offline") -> Any:
    opts = {"threads": THREADS} if backend == "torch" else ({"intra_op_threads": THREADS} if backend == "onnxruntime" else {})
    spec = CellSpec(model=model, size=size, backend=backend, backend_options=opts, scenario=scenario,
                    scenario_options={"batch_size": bs, "stop": {"min_duration_s": seconds, "min_queries": 64,
                                                                 "max_duration_s": seconds * 3, "warmup_s": 0.2}},
                    parity=False)
    cell = execute_cell(spec, run_dir, profile)
    if cell.status != "ok":
        raise RuntimeError(f"{spec.cell_id}: {cell.status}: {cell.error}")
    return cell


def main() -> int:
    profile = host_profile()
    run_dir = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    rows = []
    ok = True
    for backend, raw in (("torch", raw_torch), ("onnxruntime", raw_ort)):
        for model, size, bs in CASES:
            r_raw, r_h = [], []
            for _ in range(ROUNDS):
                r_raw.append(raw(model, size, bs, SECONDS))
                r_h.append(harness_run(backend, model, size, bs, SECONDS, run_dir, profile).metrics["throughput"].value)
            ratio = statistics.median(r_h) / statistics.median(r_raw)
            passed = ratio >= 0.97
            ok &= passed
            rows.append((backend, f"{model}-{size}", bs, statistics.median(r_raw), statistics.median(r_h), ratio, passed))
    print("\n### Harness throughput vs a raw loop (same process, same threads and batch)\n")
    print(f"median of {ROUNDS} alternating rounds of {SECONDS:g} s; criterion: ratio >= 0.97\n")
    print("| backend | model | batch | raw samples/s | harness samples/s | harness/raw | pass |")
    print("|---|---|---:|---:|---:|---:|---|")
    for b, m, bs, raw_v, h_v, ratio, passed in rows:
        print(f"| {b} | {m} | {bs} | {raw_v:,.0f} | {h_v:,.0f} | {ratio:.3f} | {'yes' if passed else 'NO'} |")

    cell = harness_run("null", "tabular_mlp", "tiny", 1, 3.0, run_dir, profile, scenario="single-stream")
    m = cell.metrics
    p50_us = m["latency_p50"].value * 1e3
    p99_us = m["latency_p99"].value * 1e3
    qps = m["queries_per_s"].value
    passed = p50_us < 2.0
    ok &= passed
    print("\n### Per-query overhead of the harness (null backend, single-stream)\n")
    print("| p50 µs | p99 µs | queries/s | criterion p50 < 2 µs |")
    print("|---:|---:|---:|---|")
    print(f"| {p50_us:.3f} | {p99_us:.3f} | {qps:,.0f} | {'pass' if passed else 'FAIL'} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
