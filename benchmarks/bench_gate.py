"""Regression gate: false-alarm rate (A/A) and detection power (injected slowdowns).

One real cell (``tabular_mlp`` tiny through the torch backend, one thread, single-stream) is
measured the way ``harness gate ab`` measures base and head: variants in their own worker
processes taking turns in blocks (:mod:`harness.measure.interleave`), compared block by block
(:mod:`harness.analysis.gate.paired`) through :func:`harness.analysis.gate.compare_runs`.

Each trial is one interleaved session of five variants, each in its own fresh worker
processes (``workers`` per variant, 3 by default): three of the plain backend (A1, A2, A3)
and the backend slowed by 5 % and by 10 % (:class:`harness.measure.inject.SlowdownBackend`, which
spins for that fraction of each query's own service time). A trial
gives three A/A comparisons (A1-A2, A1-A3, A2-A3, earlier = baseline), three at +5 % and
three at +10 % (each A vs the slowed run). Every comparison pairs blocks of the same rounds;
with five variants per round the paired blocks are up to four blocks apart, a harder case
than the two variants of ``gate ab``.

* Calibration: the first ``--calibration`` trials give the A/A noise of each metric (the
  estimated change of every A/A comparison); the threshold is the larger of the biggest A/A
  change seen and ``z * sd`` for a two-sided 1 % false-alarm rate, rounded up to 0.5 %. It
  is never tuned on the evaluation trials.
* Evaluation: the remaining trials. False alarm = a failing gate on an A/A comparison
  (target <= 1 % over >= 100 comparisons); detected = a failing gate on a slowed comparison
  (targets >= 80 % at +5 %, >= 95 % at +10 %).

Prints Markdown; exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

import numpy as np
from scipy.stats import norm

from harness.analysis.gate import GATE_METRICS, compare_runs, parse_rules
from harness.core.records import CellSpec, RunRecord
from harness.measure.interleave import InterleaveOptions, Variant, measure_interleaved
from harness.store.refs import LoadedRun
from harness.store.results import load_run, save_run

METRICS = ("latency_p50", "latency_p99", "throughput")
SIGN = {m: "+" if GATE_METRICS[m].direction == "lower" else "-" for m in METRICS}
KINDS = (("a1", 0.0), ("a2", 0.0), ("a3", 0.0), ("s5", 0.05), ("s10", 0.10))


def spec() -> CellSpec:
    return CellSpec(
        model="tabular_mlp",
        size="tiny",
        backend="torch",
        backend_options={"threads": 1},
        scenario="single-stream",
        parity=False,
        scenario_options={"batch_size": 1, "stop": {"warmup_s": 0.5, "warmup_queries": 50, "min_queries": 200}},
    )


def trial(root: Path, index: int, cell: CellSpec, opts: InterleaveOptions) -> dict[str, LoadedRun]:
    """One interleaved session of every kind; returns {kind: run}."""
    names = [f"t{index:03d}-{k}" for k, _ in KINDS]
    dirs = [root / n for n in names]
    variants = [Variant(k, cell, slowdown=f) for k, f in KINDS]
    recs = measure_interleaved(variants, dirs, opts.model_copy(update={"seed": index}), session=f"trial-{index}")
    out: dict[str, LoadedRun] = {}
    for (k, _), name, c in zip(KINDS, names, recs):
        if c.status != "ok":
            raise SystemExit(f"trial {index} variant {k}: {c.status}: {c.error}")
        rec = RunRecord(run_id=name, suite_name="bench-gate", status="complete", cells=[c])
        save_run(rec, root)
        out[k] = LoadedRun(rec, root / name, name)
    return out


AA_PAIRS = list(combinations(("a1", "a2", "a3"), 2))
SLOW_PAIRS = {f: [(a, k) for a in ("a1", "a2", "a3")] for f, k in ((0.05, "s5"), (0.10, "s10"))}


def calibrate(trials: list[dict[str, LoadedRun]], false_alarm_rate: float) -> dict[str, float]:
    """Threshold per metric from the A/A changes of the calibration trials."""
    z = float(norm.ppf(1 - false_alarm_rate / 2))
    loose = parse_rules([f"{m}:{SIGN[m]}50%" for m in METRICS])
    logs: dict[str, list[float]] = {m: [] for m in METRICS}
    for t in trials:
        for a, b in AA_PAIRS:
            for v in compare_runs(t[a], t[b], loose).verdicts:
                if math.isfinite(v.ratio) and v.ratio > 0:
                    logs[v.metric].append(math.log(v.ratio))
    out = {}
    for m, xs in logs.items():
        if len(xs) >= 2:
            thr = max(max(abs(math.expm1(x)) for x in xs), math.expm1(z * float(np.std(xs, ddof=1))))
            out[m] = math.ceil(thr * 200) / 200
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=44, help="interleaved sessions (calibration included)")
    ap.add_argument("--calibration", type=int, default=8, help="trials used to set the thresholds")
    ap.add_argument("--rounds", type=int, default=InterleaveOptions().rounds, help="rounds per session")
    ap.add_argument("--block-ms", type=float, default=InterleaveOptions().block_ms, help="block length")
    ap.add_argument("--cpus", type=str, default="", help="pin the workers to these CPUs, e.g. '1'")
    ap.add_argument("--keep", type=Path, default=None, help="keep the measured runs in this directory")
    ap.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=None,
        help="analyse the runs kept by an earlier --keep instead of measuring",
    )
    args = ap.parse_args(argv)
    if args.source is not None:
        return analyse(
            load_trials(args.source),
            args,
            spec(),
            InterleaveOptions(rounds=args.rounds, block_ms=args.block_ms),
            time.monotonic(),
            os.getloadavg(),
        )
    try:
        from harness.measure.backends.torch_backend import TorchBackend

        ok, why = TorchBackend.available()
    except Exception as exc:  # pragma: no cover - environment without torch
        ok, why = False, str(exc)
    if not ok:
        print(f"torch backend unavailable: {why}")
        return 0
    cell = spec()
    cpus = tuple(int(c) for c in args.cpus.split(",") if c) or None
    opts = InterleaveOptions(rounds=args.rounds, block_ms=args.block_ms, cpus=cpus)
    t_start = time.monotonic()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        trials = []
        for i in range(args.trials):
            trials.append(trial(root, i, cell, opts))
            print(f"trial {i + 1}/{args.trials} done ({time.monotonic() - t_start:.0f} s)", file=sys.stderr)
        return analyse(trials, args, cell, opts, t_start, load_before)


def load_trials(root: Path) -> list[dict[str, LoadedRun]]:
    """Trials kept by ``--keep``, in order."""
    out = []
    i = 0
    while (root / f"t{i:03d}-a1").is_dir():
        out.append(
            {k: LoadedRun(load_run(root / f"t{i:03d}-{k}"), root / f"t{i:03d}-{k}", f"t{i:03d}-{k}") for k, _ in KINDS}
        )
        i += 1
    if not out:
        raise SystemExit(f"no kept trials under {root}")
    return out


def analyse(
    trials: list[dict[str, LoadedRun]],
    args: argparse.Namespace,
    cell: CellSpec,
    opts: InterleaveOptions,
    t_start: float,
    load_before: tuple[float, float, float],
) -> int:
    """Calibrate on the first trials, evaluate the rest; prints Markdown, returns the exit code."""
    args.trials = len(trials)
    calib, evaluation = trials[: args.calibration], trials[args.calibration :]
    thr = calibrate(calib, 0.01)
    rule_text = [f"{m}:{SIGN[m]}{thr[m] * 100:g}%" for m in METRICS if m in thr]
    rules = parse_rules(rule_text)
    aa = [compare_runs(t[a], t[b], rules) for t in evaluation for a, b in AA_PAIRS]
    aa_fail = sum(r.exit_code != 0 for r in aa)
    aa_by_metric = {
        m: sum(any(v.metric == m and v.verdict in ("regression", "failed") for v in r.verdicts) for r in aa)
        for m in thr
    }
    detect: dict[float, tuple[int, int]] = {}
    changes: dict[float, list[float]] = {}
    for f, pairs in SLOW_PAIRS.items():
        reps = [compare_runs(t[a], t[k], rules) for t in evaluation for a, k in pairs]
        detect[f] = (sum(r.exit_code == 1 for r in reps), len(reps))
        for r in reps:
            if r.exit_code != 1:
                print(
                    f"missed at +{f:.0%}: "
                    + "; ".join(
                        f"{v.metric} {v.change:+.1%} [{v.ci_low - 1:+.1%}, {v.ci_high - 1:+.1%}] p={v.p_adjusted:.2g} {v.verdict}"
                        for v in r.verdicts
                    ),
                    file=sys.stderr,
                )
        changes[f] = [v.change for r in reps for v in r.verdicts if v.metric == "latency_p50"]
    aa_changes = [v.change for r in aa for v in r.verdicts if v.metric == "latency_p50"]
    med = [
        float(v) * 1e3
        for t in trials
        for k in ("a1", "a2", "a3")
        if (v := t[k].record.cells[0].metrics["latency_p50"].value) is not None
    ]

    n_aa = len(aa)
    aa_rate = aa_fail / n_aa
    d5 = detect[0.05][0] / detect[0.05][1]
    d10 = detect[0.10][0] / detect[0.10][1]
    print(f"\n### Regression gate, interleaved A/B: false alarms and detection ({cell.cell_id})\n")
    print(
        f"{args.trials} sessions ({args.calibration} for calibration) of 5 variants x {opts.workers} worker processes "
        f"x {args.rounds} rounds "
        f"x {args.block_ms:g} ms blocks. Thresholds from the A/A noise of the calibration sessions (1 % two-sided): "
        + ", ".join(f"`{r}`" for r in rule_text)
        + f"; alpha 0.01, Holm over {len(rules)} metrics.\n"
    )
    print("| comparison | comparisons | gate failed | rate | target | ok |")
    print("|---|---|---|---|---|---|")
    print(f"| A/A (same cell) | {n_aa} | {aa_fail} | {aa_rate:.1%} | <= 1% | {'yes' if aa_rate <= 0.01 else 'NO'} |")
    print(
        f"| +5% service time | {detect[0.05][1]} | {detect[0.05][0]} | {d5:.1%} | >= 80% | {'yes' if d5 >= 0.8 else 'NO'} |"
    )
    print(
        f"| +10% service time | {detect[0.10][1]} | {detect[0.10][0]} | {d10:.1%} | >= 95% | {'yes' if d10 >= 0.95 else 'NO'} |"
    )

    def q(xs: list[float]) -> str:
        return (
            f"{np.percentile(xs, 5) * 100:+.1f}% .. {np.median(xs) * 100:+.1f}% .. {np.percentile(xs, 95) * 100:+.1f}%"
        )

    print(
        f"\nEstimated median-latency change (5th pct .. median .. 95th pct): A/A {q(aa_changes)}; "
        f"+5 % {q(changes[0.05])}; +10 % {q(changes[0.10])}. A/A false alarms by metric: "
        + ", ".join(f"{m} {n}" for m, n in aa_by_metric.items())
        + "."
    )
    print(
        f"A processes' median latency {min(med):.1f}-{max(med):.1f} us over {len(med)} processes; load average "
        f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after on {os.cpu_count()} CPUs; "
        f"wall time {time.monotonic() - t_start:.0f} s."
    )
    return 0 if (aa_rate <= 0.01 and d5 >= 0.8 and d10 >= 0.95 and n_aa >= 100) else 1


if __name__ == "__main__":
    sys.exit(main())
