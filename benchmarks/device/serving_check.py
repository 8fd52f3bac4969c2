"""Judge a device serving run (benchmarks/device/serving.suite.yaml) against its targets.

* BERT-base online p99 within 25 % of the simulator's prediction from the measured service curve
  (the offline batch sweep of the same run: median batch latency per size and the spread of its
  raw rows, same batcher settings);
* GPT-2-small TPOT at 8 concurrent requests <= 2x TPOT at 1.

Prints a Markdown table (also written to ``--out``) and exits 1 when a target is missed.
Usage: ``python benchmarks/device/serving_check.py RUN_DIR [--out FILE]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.core.records import latency_ns
from harness.measure.load.batching import DynamicBatcher
from harness.planning.simulate import ServiceCurve, simulate_online
from harness.store.results import ResultsError, load_raw, load_run


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rec = load_run(args.run_dir)
    root = Path(args.run_dir).resolve().parent
    ok_cells = [c for c in rec.cells if c.status == "ok"]
    lines = [f"run {rec.run_id} ({len(ok_cells)}/{len(rec.cells)} cells ok)", ""]
    ok = True
    curve_pts: dict[int, float] = {
        c.spec.batch_size: float(c.metric("latency_p50") or 0.0)
        for c in ok_cells
        if c.spec.model == "bert" and c.spec.scenario == "offline" and c.metric("latency_p50")
    }
    samples = {}
    for c in ok_cells:
        if c.spec.model == "bert" and c.spec.scenario == "offline" and c.spec.batch_size in curve_pts:
            try:
                raw = load_raw(rec, c.cell_id, root)
            except (ResultsError, OSError):
                continue
            samples[c.spec.batch_size] = latency_ns(raw["completed_ns"], raw["scheduled_ns"])
    lines += [
        "| cell | QPS | real p50 ms | real p99 ms | sim p50 ms | sim p99 ms | p99 error | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in ok_cells:
        if c.spec.scenario != "online":
            continue
        o = c.spec.scenario_options
        bs = sorted(b for b in curve_pts if b <= int(o["max_batch_size"])) or sorted(curve_pts)
        if len(bs) < 2:
            lines.append(f"| {c.cell_id} | - | no offline curve to simulate from |")
            ok = False
            continue
        if all(b in samples for b in bs):
            curve = ServiceCurve.from_samples({b: samples[b] for b in bs}, int(o["max_batch_size"]), "measured")
        else:  # raw rows missing: medians only
            curve = ServiceCurve.from_points(bs, [curve_pts[b] * 1e6 for b in bs], int(o["max_batch_size"]), "measured")
        policy = DynamicBatcher(int(o["max_batch_size"]), int(float(o.get("max_queue_delay_ms", 0)) * 1e6))
        sim = simulate_online(curve, float(o["target_qps"]), policy, n_queries=100_000, seed=1)
        r50, r99 = c.metric("latency_p50"), c.metric("latency_p99")
        err = (r99 - sim.p99_ms) / sim.p99_ms if r99 is not None else float("nan")
        hit = abs(err) <= 0.25
        ok &= hit
        lines.append(
            f"| {c.cell_id} | {o['target_qps']} | {r50:.2f} | {r99:.2f} | {sim.p50_ms:.2f} | {sim.p99_ms:.2f} | "
            f"{err:+.0%} | within 25 %: {'yes' if hit else 'NO'} |"
        )
    tpot = {
        int(c.spec.scenario_options.get("concurrency", 1)): c.metric("tpot_p50")
        for c in ok_cells
        if c.spec.scenario == "token-stream"
    }
    lines += ["", "| concurrency | TPOT p50 ms | tokens/s |", "|---|---|---|"]
    for k in sorted(tpot):
        tps = next(
            (
                c.metric("output_tokens_per_s")
                for c in ok_cells
                if c.spec.scenario == "token-stream" and int(c.spec.scenario_options.get("concurrency", 1)) == k
            ),
            None,
        )
        lines.append(f"| {k} | {tpot[k]} | {tps} |")
    t1, t8 = tpot.get(1), tpot.get(8)
    if t1 and t8:
        ratio = t8 / t1
        hit = ratio <= 2.0
        ok &= hit
        lines.append(f"\nTPOT at 8 / TPOT at 1 = {ratio:.2f} (target <= 2: {'yes' if hit else 'NO'})")
    else:
        ok = False
        lines.append("\ntoken-stream cells missing: TPOT ratio not computed")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
