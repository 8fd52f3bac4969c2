"""Simulator vs the real online scenario on this machine (tiny model, torch backend).

1. Measure the offline batch-latency curve (batch 1, 2, 4, 8) of ``resnet50:tiny`` with
   the torch backend through :func:`harness.measure.runner.run_cells`.
2. Feed the curve to :mod:`harness.planning.simulate`: the median batch latency per size and
   the measured spread around it (every batch's service time from the cells' raw rows), so
   each simulated batch draws its service time from what the host did.
3. Run the real ``online`` scenario at three loads (about 20 %, 50 % and 85 % of the
   simulated capacity) with the same batcher settings, and compare p50 / p99.

Target: |error| <= 15 % at p50 and <= 25 % at p99 at every load. Prints a Markdown table;
``--median-only`` feeds the medians alone (the simulator's behaviour for projected curves).
Usage: ``python benchmarks/bench_simulator_validation.py [--model resnet50] [--duration 4]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from harness.core.records import CellSpec, latency_ns
from harness.measure.load.batching import DynamicBatcher
from harness.measure.runner import run_cells
from harness.planning.simulate import ServiceCurve, simulate_online
from harness.store.results import load_raw


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--delay-ms", type=float, default=0.5)
    ap.add_argument("--median-only", action="store_true", help="feed only the median service time per batch size")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="simval-"))
    opts = {"threads": 1}
    sweep = [1, 2, 4, 8]
    cells = [
        CellSpec(
            model=args.model,
            size=args.size,
            backend="torch",
            backend_options=opts,
            scenario="offline",
            parity=False,
            scenario_options={"batch_size": b, "stop": {"min_duration_s": 1.5, "min_queries": 200}},
        )
        for b in sweep
    ]
    rec = run_cells(cells, name="simval-offline", root=root)
    pts = {c.spec.scenario_options["batch_size"]: c.metric("latency_p50") for c in rec.cells if c.status == "ok"}
    if len(pts) < 2:
        raise SystemExit(f"offline sweep failed: {[(c.status, c.error) for c in rec.cells]}")
    bs = sorted(pts)
    if args.median_only:
        curve = ServiceCurve.from_points(bs, [pts[b] * 1e6 for b in bs], args.max_batch, "measured")
    else:
        samples = {}
        for c in rec.cells:
            if c.status == "ok":
                raw = load_raw(rec, c.cell_id, root)
                samples[c.spec.scenario_options["batch_size"]] = latency_ns(raw["completed_ns"], raw["scheduled_ns"])
        curve = ServiceCurve.from_samples(samples, args.max_batch, "measured")
    policy = DynamicBatcher(args.max_batch, int(args.delay_ms * 1e6))
    cap = curve.capacity_qps(args.max_batch)
    print(
        f"measured curve (ms): {', '.join(f'b{b}={pts[b]:.3f}' for b in bs)}; capacity {cap:.0f} QPS; "
        f"load average {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)\n"
    )
    loads = {"light": 0.2, "medium": 0.5, "near saturation": 0.85}
    online = [
        CellSpec(
            model=args.model,
            size=args.size,
            backend="torch",
            backend_options=opts,
            scenario="online",
            parity=False,
            seed=1,
            scenario_options={
                "target_qps": round(cap * f, 1),
                "max_batch_size": args.max_batch,
                "max_queue_delay_ms": args.delay_ms,
                "stop": {"min_duration_s": args.duration, "min_queries": 500, "max_duration_s": args.duration * 4 + 10},
            },
        )
        for f in loads.values()
    ]
    rec2 = run_cells(online, name="simval-online", root=root)
    print(
        "| load | QPS | real p50 ms | sim p50 ms | p50 err | real p99 ms | sim p99 ms | p99 err | real batch | sim batch | real service p50 ms | generator kept up |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    ok = True
    for (label, _), c in zip(loads.items(), rec2.cells):
        if c.status != "ok":
            print(f"| {label} | - | failed: {c.error} |")
            ok = False
            continue
        q = c.spec.scenario_options["target_qps"]
        s = simulate_online(curve, q, policy, n_queries=50_000, seed=1)
        r50, r99 = c.metric("latency_p50"), c.metric("latency_p99")
        e50, e99 = (s.p50_ms - r50) / r50, (s.p99_ms - r99) / r99
        rb = c.metric("batch_size_mean")
        print(
            f"| {label} | {q:.0f} | {r50:.3f} | {s.p50_ms:.3f} | {e50:+.0%} | {r99:.3f} | {s.p99_ms:.3f} | "
            f"{e99:+.0%} | {rb if rb is None else f'{rb:.2f}'} | {s.mean_batch:.2f} | "
            f"{c.metric('service_time_p50')} | {c.validity.get('generator_kept_up')} |"
        )
        ok &= abs(e50) <= 0.15 and abs(e99) <= 0.25
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    print(f"criteria at every load: |p50 error| <= 15 %, |p99 error| <= 25 %: {'pass' if ok else 'FAIL'}")
    print(f"results kept in {root}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
