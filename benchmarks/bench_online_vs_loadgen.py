"""Our load generator against MLPerf LoadGen, same machine, same run, null backend.

* Server / online: Poisson arrivals at 1000, 5000 and 20 000 QPS, ``--duration`` seconds each
  (10 by default). Ours: the ``online`` scenario (no issuer: the instance thread reads the
  schedule and blocks until each arrival). LoadGen: its Server scenario driving the same
  dynamic batcher and worker thread through the ``loadgen`` driver's queue SUT, so the only
  difference is the generator and its bookkeeping.
* Single-stream: our ``single-stream`` scenario against LoadGen's SingleStream.

Pass criteria (exit status 1 when one fails):
  our p50 and p99 <= LoadGen's at each rate; our achieved QPS within 1 % of the target;
  our single-stream p50 <= LoadGen's SingleStream p50.

Percentiles of our runs are computed from the raw rows with LoadGen's method
(``sorted[floor(n * p)]``), so both columns use the same definition. Prints a Markdown
table for the README.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from harness.core import stats
from harness.measure.backends.null import NullBackend
from harness.measure.scenarios.base import CellContext


class BenchCtx(CellContext):
    def __init__(self, seed: int = 0) -> None:
        self.backend = NullBackend()
        self.backend.load(None)
        self.workload = None
        self.seed = seed

    def batch(self, batch_size: int, index: int = 0) -> Any:
        return {"x": np.zeros((batch_size, 1), dtype=np.float32)}

    @contextmanager
    def window(self) -> Iterator[None]:
        yield


def ours_online(rate: float, duration_s: float) -> dict[str, float]:
    from harness.measure.scenarios.online import OnlineOptions, OnlineScenario

    o = OnlineOptions(
        target_qps=rate,
        stop={"min_duration_s": duration_s, "min_queries": 100, "max_duration_s": duration_s * 3 + 10, "warmup_s": 0.5},
    )
    r = OnlineScenario(o).run(BenchCtx())
    lat = r.queries["completed_ns"] - r.queries["scheduled_ns"]
    return {
        "p50_us": stats.percentile(lat, 0.5) / 1e3,
        "p99_us": stats.percentile(lat, 0.99) / 1e3,
        "achieved_qps": float(r.metrics["achieved_qps"].value or 0.0),
        "late_fraction": float(r.extra["late_fraction"]),
        "n": float(lat.size),
    }


def loadgen_run(
    scenario: str, duration_s: float, rate: float = 0.0, expected_latency_ms: float = 1.0
) -> dict[str, float]:
    from harness.measure.scenarios.loadgen import LoadGenOptions, LoadGenScenario

    with tempfile.TemporaryDirectory(prefix="lg-bench-") as d:
        o = LoadGenOptions(
            lg_scenario=scenario,
            target_qps=rate or 1.0,
            expected_latency_ms=expected_latency_ms,
            log_dir=d,
            stop={"min_duration_s": duration_s, "min_queries": 100, "max_duration_s": duration_s * 3 + 10},
        )
        r = LoadGenScenario(o).run(BenchCtx())
    m = r.metrics
    out = {
        "p50_us": m["latency_p50"].value * 1e3,
        "p99_us": m["latency_p99"].value * 1e3,
        "n": float(r.queries["completed_ns"].size),
        "valid": float(r.validity.get("loadgen_valid", False)),
    }
    if "achieved_qps" in m:
        out["achieved_qps"] = float(m["achieved_qps"].value)
    return out


def ours_single_stream(duration_s: float) -> dict[str, float]:
    from harness.measure.scenarios.closed import SingleStreamOptions, SingleStreamScenario

    o = SingleStreamOptions(
        stop={"min_duration_s": duration_s, "min_queries": 100, "max_duration_s": duration_s * 3 + 10, "warmup_s": 0.5}
    )
    r = SingleStreamScenario(o).run(BenchCtx())
    lat = r.queries["completed_ns"] - r.queries["scheduled_ns"]
    return {
        "p50_us": stats.percentile(lat, 0.5) / 1e3,
        "p99_us": stats.percentile(lat, 0.99) / 1e3,
        "n": float(lat.size),
    }


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.median([r[k] for r in runs])) for k in runs[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per run (>= 10 for the README figures)")
    ap.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="alternating repetitions per pair; medians are compared (the host may be shared)",
    )
    ap.add_argument("--rates", type=float, nargs="+", default=[1000.0, 5000.0, 20000.0])
    args = ap.parse_args(argv)
    try:
        import mlperf_loadgen  # noqa: F401
    except ImportError:
        print("SKIP: mlcommons-loadgen (extra 'mlperf') is not installed")
        return 0
    load_start = os.getloadavg()[0]
    ours_runs: dict[str, list[dict[str, float]]] = {}
    lg_runs: dict[str, list[dict[str, float]]] = {}
    for rep in range(args.repeats):
        for rate in args.rates:
            key = f"Server, Poisson {rate:g} QPS"
            pair = [lambda: ours_online(rate, args.duration), lambda: loadgen_run("Server", args.duration, rate=rate)]
            if rep % 2:
                g, o = pair[1](), pair[0]()
            else:
                o, g = pair[0](), pair[1]()
            ours_runs.setdefault(key, []).append(o)
            lg_runs.setdefault(key, []).append(g)
            print(
                f"  rep {rep + 1} {key}: ours p50/p99 {o['p50_us']:.1f}/{o['p99_us']:.1f} us, "
                f"LoadGen {g['p50_us']:.1f}/{g['p99_us']:.1f} us",
                flush=True,
            )
        ss = ours_single_stream(args.duration)
        lg_ss = loadgen_run("SingleStream", args.duration, expected_latency_ms=max(ss["p50_us"], 1.0) / 1e3)
        ours_runs.setdefault("SingleStream", []).append(ss)
        lg_runs.setdefault("SingleStream", []).append(lg_ss)
        print(
            f"  rep {rep + 1} SingleStream: ours p50 {ss['p50_us']:.2f} us, LoadGen p50 {lg_ss['p50_us']:.2f} us",
            flush=True,
        )
    failures: list[str] = []
    rows = [(k, _median(ours_runs[k]), _median(lg_runs[k])) for k in ours_runs]
    for (name, o, g), rate in zip(rows, args.rates):
        for p in ("p50", "p99"):
            if o[f"{p}_us"] > g[f"{p}_us"]:
                failures.append(f"{name}: our median {p} {o[f'{p}_us']:.1f} us > LoadGen's {g[f'{p}_us']:.1f} us")
        worst = max(abs(r["achieved_qps"] / rate - 1) for r in ours_runs[name])
        if worst > 0.01:
            failures.append(f"{name}: our achieved QPS missed the target by {worst * 100:.2f} % (> 1 %)")
    name, o, g = rows[-1]
    if o["p50_us"] > g["p50_us"]:
        failures.append(f"single-stream: our p50 {o['p50_us']:.2f} us > LoadGen's {g['p50_us']:.2f} us")

    print(
        f"\nNull backend, {args.duration:g} s per run, median of {args.repeats} alternating runs; "
        "latency from scheduled time; percentiles sorted[floor(n*p)] for both; "
        f"load average {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end "
        f"({os.cpu_count()} CPUs)\n"
    )
    print(
        "| scenario | ours p50 (µs) | LoadGen p50 (µs) | ours p99 (µs) | LoadGen p99 (µs) "
        "| ours achieved QPS | LoadGen achieved QPS |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, o, g in rows:
        oq = f"{o['achieved_qps']:.1f}" if "achieved_qps" in o else "–"
        gq = f"{g['achieved_qps']:.1f}" if "achieved_qps" in g else "–"
        print(
            f"| {name} | {o['p50_us']:.1f} | {g['p50_us']:.1f} | {o['p99_us']:.1f} | {g['p99_us']:.1f} | {oq} | {gq} |"
        )
    late = [f"{name}: {o['late_fraction'] * 100:.2f} %" for name, o, _ in rows if "late_fraction" in o]
    print(f"\nour queries issued > 1 ms late (median): {'; '.join(late)}")
    if failures:
        print("\nFAIL:\n  " + "\n  ".join(failures))
        return 1
    print(
        "\nPASS: our p50 and p99 <= LoadGen's at every rate, achieved QPS within 1 % of target, "
        "single-stream p50 <= LoadGen's"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
