"""Harness overhead, measured against a hand-written raw loop in the same run.

1. Throughput ratio harness / raw loop, same model, threads and batch, for torch and
   onnxruntime. Rounds are paired in ABBA order (raw, harness, harness, raw, ...) so drift on a shared machine
   hits both; the median of the paired ratios must be >= 0.97.
   Both loops cycle over the same staged inputs (the harness's pool of ``POOL`` batches with
   seeds 0..POOL-1): timings can depend on the data (e.g. attention masks).
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

from harness.core.records import CellSpec
from harness.measure.host import host_profile
from harness.measure.scenarios.closed import POOL
from harness.measure.worker import execute_cell
from workloads.registry import get_workload

ROUNDS = 12
SECONDS = 1.0
THREADS = 2
CASES = [("resnet50", "tiny", 8), ("bert", "tiny", 8), ("tabular_mlp", "standard", 64)]


def raw_torch(model: str, size: str, bs: int, seconds: float) -> float:
    import torch

    torch.set_num_threads(THREADS)
    w = get_workload(model, size)
    m = w.build_torch().eval()
    pool = [[torch.from_numpy(a) for a in w.make_inputs(bs, seed=i).values()] for i in range(POOL)]
    with torch.inference_mode():
        for x in pool:
            m(*x)
        n = 0
        t0 = time.perf_counter_ns()
        end = t0 + int(seconds * 1e9)
        while True:
            m(*pool[n % POOL])
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
    pool = [w.make_inputs(bs, seed=i) for i in range(POOL)]
    for feed in pool:
        sess.run(None, feed)
    n = 0
    t0 = time.perf_counter_ns()
    end = t0 + int(seconds * 1e9)
    while True:
        sess.run(None, pool[n % POOL])
        n += 1
        t = time.perf_counter_ns()
        if t >= end:
            break
    return n * bs / ((t - t0) / 1e9)


def harness_run(
    backend: str, model: str, size: str, bs: int, seconds: float, run_dir: Path, profile: Any, scenario: str = "offline"
) -> Any:
    opts = (
        {"threads": THREADS}
        if backend == "torch"
        else ({"intra_op_threads": THREADS} if backend == "onnxruntime" else {})
    )
    spec = CellSpec(
        model=model,
        size=size,
        backend=backend,
        backend_options=opts,
        scenario=scenario,
        scenario_options={
            "batch_size": bs,
            "stop": {"min_duration_s": seconds, "min_queries": 64, "max_duration_s": seconds * 3, "warmup_s": 0.2},
        },
        parity=False,
    )
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
            for i in range(ROUNDS):  # ABBA order: drift and order effects cancel in the paired ratio

                def h() -> float:
                    return harness_run(backend, model, size, bs, SECONDS, run_dir, profile).metrics["throughput"].value

                if i % 2 == 0:
                    r_raw.append(raw(model, size, bs, SECONDS))
                    r_h.append(h())
                else:
                    r_h.append(h())
                    r_raw.append(raw(model, size, bs, SECONDS))
            ratio = statistics.median(h_ / r_ for h_, r_ in zip(r_h, r_raw))
            passed = ratio >= 0.97
            ok &= passed
            rows.append(
                (backend, f"{model}-{size}", bs, statistics.median(r_raw), statistics.median(r_h), ratio, passed)
            )
    print("\n### Harness throughput vs a raw loop (same process, same threads and batch)\n")
    print(
        f"{ROUNDS} paired rounds of {SECONDS:g} s each (ABBA order); harness/raw = median of the paired "
        "ratios; criterion: >= 0.97\n"
    )
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
