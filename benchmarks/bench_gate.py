"""Regression gate: false-alarm rate (A/A) and detection power (injected slowdowns).

One real cell (``tabular_mlp`` tiny through the torch backend, single-stream, ~1 s per
measurement) is measured repeatedly in rounds. Each round measures, in a rotating order, the
plain backend twice (A, A') and the backend slowed by 5 % and by 10 % (a wrapper that spins
for that fraction of each query's own service time).

CI compares base and head measured in the *same job*, minutes apart, not runs hours apart;
this benchmark does the same: a comparison pairs runs of the same or adjacent rounds.

* Calibration: the first ``CALIBRATION`` rounds give the run-to-run noise of each metric from
  their paired A/A log ratios; the threshold keeps a two-sided false-alarm rate of 1 % under a
  normal model of that noise (``z * sd``), and is never below the largest A/A change seen.
  It is never tuned on the evaluation pairs.
* A/A: every pair of A-type runs (A, A') of the same or adjacent evaluation rounds (earlier =
  baseline) through :func:`harness.gate.compare_runs`; a false alarm is a failing gate.
  Target <= 1 % over >= 100 comparisons.
* Detection: every (A-type, slowed) pair of the same or adjacent rounds; detected = failing
  gate. Targets >= 80 % at +5 %, >= 95 % at +10 %.

* Run sets: the same evaluation runs compared as sets of ``SET_SIZE`` consecutive rounds
  (:func:`harness.gate.compare_run_sets`), with small rules, since the noise between runs is
  in the interval there.

Prints Markdown tables; exits 1 when neither mode meets every target.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.clock import now_ns
from harness.gate import LoadedRun, compare_runs, gate_metric, parse_rules
from harness.records import CellSpec, RunRecord
from harness.results import save_run
from harness.worker import execute_cell

CALIBRATION = 8
METRICS = ("median_latency", "p99_latency", "throughput")


class SlowdownBackend:
    """Wraps a loaded backend; each ``infer`` spins for ``fraction`` of its own duration."""

    def __init__(self, inner: Any, fraction: float) -> None:
        self._inner = inner
        self._fraction = fraction

    def infer(self, prepared: Any) -> Any:
        t0 = now_ns()
        out = self._inner.infer(prepared)
        t1 = now_ns()
        end = t1 + int((t1 - t0) * self._fraction)
        while now_ns() < end:
            pass
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def spec(seconds: float) -> CellSpec:
    return CellSpec(
        model="tabular_mlp", size="tiny", backend="torch", backend_options={"threads": 1},
        scenario="single-stream", parity=False,
        scenario_options={"batch_size": 1, "stop": {"min_duration_s": seconds, "min_queries": 200,
                                                    "max_duration_s": seconds * 5, "warmup_s": 0.3,
                                                    "warmup_queries": 50, "max_attempts": 3}},
    )


def measure(root: Path, name: str, cell: CellSpec, fraction: float) -> LoadedRun:
    rec = RunRecord(run_id=name, suite_name="bench-gate")
    wrap = (lambda b: SlowdownBackend(b, fraction)) if fraction else None
    c = execute_cell(cell, root / name, None, meters=[], wrap_backend=wrap)
    if c.status != "ok":
        raise SystemExit(f"cell failed: {c.status}: {c.error}")
    rec.cells.append(c)
    rec.status = "complete"
    save_run(rec, root)
    return LoadedRun(rec, root / name, name)


SET_SIZE = 3
SET_RULES = ("median_latency:+3%", "p99_latency:+10%", "throughput:-3%")


def run_set_analysis(evaluation: list[dict[str, LoadedRun]]) -> dict[str, tuple[int, int]]:
    """Gate failures over run sets of ``SET_SIZE`` consecutive rounds: A/A sets (A vs A' runs,
    windows offset by 0-2 rounds) and detection sets (A or A' vs the slowed runs of the same
    rounds). Returns {comparison: (gate failures, comparisons)}."""
    from harness.gate import compare_run_sets

    rules = parse_rules(list(SET_RULES))
    k, n = SET_SIZE, len(evaluation)

    def win(kind: str, i: int) -> list[LoadedRun]:
        return [evaluation[j][kind] for j in range(i, i + k)]

    aa = [(win("a", i), win("a2", i + o)) for i in range(n - k + 1) for o in (0, 1, 2) if i + o + k <= n]
    out = {"A/A (same cell)": (sum(compare_run_sets(b, c, rules).exit_code != 0 for b, c in aa), len(aa))}
    for name, kind in (("+5% service time", "s5"), ("+10% service time", "s10")):
        pairs = [(win(a, i), win(kind, i)) for i in range(n - k + 1) for a in ("a", "a2")]
        out[name] = (sum(compare_run_sets(b, c, rules).exit_code == 1 for b, c in pairs), len(pairs))
    return out


def paired_thresholds(calib: list[dict[str, LoadedRun]], false_alarm_rate: float) -> dict[str, float]:
    """Threshold per metric from the paired A/A log ratios of the calibration rounds."""
    import math

    import numpy as np
    from scipy.stats import norm

    from harness import stats
    from harness.gate import cell_samples

    z = float(norm.ppf(1 - false_alarm_rate / 2))
    out: dict[str, float] = {}
    for name in METRICS:
        m = gate_metric(name)
        fn = stats.resolve_statistic(m.statistic)
        logs = []
        for r in calib:
            a, b = r["a"], r["a2"]
            cid = a.record.cells[0].cell_id
            sa, sb = cell_samples(a.raw(cid), m), cell_samples(b.raw(cid), m)
            if sa.size >= 2 and sb.size >= 2:
                logs.append(math.log(float(np.asarray(fn(sb))) / float(np.asarray(fn(sa)))))
        if len(logs) >= 2:
            sd = float(np.std(logs, ddof=1))
            thr = max(max(abs(math.expm1(x)) for x in logs), math.expm1(z * sd))
            out[name] = math.ceil(thr * 200) / 200  # round up to 0.5 %
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=30, help="rounds of (A, A', +5 %%, +10 %%) measurements")
    ap.add_argument("--seconds", type=float, default=1.0, help="measurement duration per run")
    args = ap.parse_args(argv)
    cell = spec(args.seconds)
    try:
        from harness.backends.torch_backend import TorchBackend

        ok, why = TorchBackend.available()
    except Exception as exc:  # pragma: no cover - environment without torch
        ok, why = False, str(exc)
    if not ok:
        print(f"torch backend unavailable: {why}")
        return 0
    t_start = time.monotonic()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        root = Path(tmp)
        kinds = [("a", 0.0), ("a2", 0.0), ("s5", 0.05), ("s10", 0.10)]
        rounds: list[dict[str, LoadedRun]] = []
        for i in range(args.rounds):
            order = kinds[i % 4:] + kinds[:i % 4]  # rotate so no kind always runs first
            rounds.append({k: measure(root, f"{k}-{i:02d}", cell, f) for k, f in order})
            print(f"round {i + 1}/{args.rounds} done ({time.monotonic() - t_start:.0f} s)", file=sys.stderr)

        calib, evaluation = rounds[:CALIBRATION], rounds[CALIBRATION:]
        thr = paired_thresholds(calib, false_alarm_rate=0.01)
        sign = {"median_latency": "+", "p99_latency": "+", "throughput": "-"}
        # a metric whose run-to-run noise exceeds 10x cannot be gated on this machine
        dropped = [m for m in METRICS if m in thr and thr[m] >= (0.99 if sign[m] == "-" else 10.0)]
        rule_text = [f"{m}:{sign[m]}{thr[m] * 100:g}%" for m in METRICS if m in thr and m not in dropped]
        rules = parse_rules(rule_text)

        def nearby(kind_a: tuple[str, ...], kind_b: tuple[str, ...]) -> list[tuple[LoadedRun, LoadedRun]]:
            out = []
            for i, r in enumerate(evaluation):
                for j in (i, i + 1):
                    if j >= len(evaluation):
                        continue
                    for ka in kind_a:
                        for kb in kind_b:
                            x, y = r[ka], evaluation[j][kb]
                            if x is not y and not (j == i and kind_a == kind_b and ka >= kb):
                                out.append((x, y))
            return out

        aa_pairs = nearby(("a", "a2"), ("a", "a2"))
        aa_fail = sum(compare_runs(b, c, rules).exit_code != 0 for b, c in aa_pairs)
        all_runs = [run for r in rounds for run in r.values()]
        unstable = sum(r.record.cells[0].validity.get("steady_state") is False for r in all_runs)
        detect: dict[float, tuple[int, int]] = {}
        detect_steady: dict[float, tuple[int, int]] = {}
        for f, k in ((0.05, "s5"), (0.10, "s10")):
            pairs = nearby(("a", "a2"), (k,))
            hit = [compare_runs(a, s_, rules).exit_code == 1 for a, s_ in pairs]
            steady = [s_.record.cells[0].validity.get("steady_state") is not False for _, s_ in pairs]
            detect[f] = (sum(hit), len(pairs))
            detect_steady[f] = (sum(h for h, ok in zip(hit, steady) if ok), sum(steady))
        med = [float(r[k].record.cells[0].metrics["latency_p50"].value) for r in rounds for k in ("a", "a2")]
        sets = run_set_analysis(evaluation)

    aa_rate = aa_fail / len(aa_pairs)
    d5 = detect[0.05][0] / detect[0.05][1]
    d10 = detect[0.10][0] / detect[0.10][1]
    print(f"\n### Regression gate: false alarms and detection ({cell.cell_id}, {args.seconds:g} s per run)\n")
    print(f"Thresholds from the paired A/A noise of {CALIBRATION} calibration rounds (1 % two-sided): "
          + ", ".join(f"`{r}`" for r in rule_text) + f"; alpha 0.01, Holm over {len(rules)} metrics."
          + (f" Not gated (calibrated noise too large): {', '.join(dropped)}." if dropped else "") + "\n")
    print("| comparison | pairs | gate failed | rate | target | ok |")
    print("|---|---|---|---|---|---|")
    print(f"| A/A (same cell) | {len(aa_pairs)} | {aa_fail} | {aa_rate:.1%} | <= 1% | {'yes' if aa_rate <= 0.01 else 'NO'} |")
    print(f"| +5% service time | {detect[0.05][1]} | {detect[0.05][0]} | {d5:.1%} | >= 80% | {'yes' if d5 >= 0.8 else 'NO'} |")
    print(f"| +10% service time | {detect[0.10][1]} | {detect[0.10][0]} | {d10:.1%} | >= 95% | {'yes' if d10 >= 0.95 else 'NO'} |")
    for f in (0.05, 0.10):
        h, n = detect_steady[f]
        print(f"| +{f:.0%} service time, slowed run steady | {n} | {h} | {h / max(n, 1):.1%} | (breakdown) | |")
    print(f"\nA runs: median latency {min(med) * 1e3:.1f}-{max(med) * 1e3:.1f} us over {len(med)} runs; "
          f"{unstable} of {4 * args.rounds} runs failed the steady-state check (they prove a change only beyond their own spread); "
          f"load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after on {os.cpu_count()} CPUs; "
          f"wall time {time.monotonic() - t_start:.0f} s.")
    single_ok = aa_rate <= 0.01 and d5 >= 0.8 and d10 >= 0.95
    print(f"\n### The same runs compared as sets of {SET_SIZE} consecutive rounds (`harness gate compare b1,b2,b3 h1,h2,h3`)\n")
    print(f"Rules {', '.join(f'`{r}`' for r in SET_RULES)} (minimum effects of interest: the noise between runs is "
          "in the interval); Welch t on log per-run statistics, alpha 0.01, Holm over the metrics.\n")
    print("| comparison | sets compared | gate failed | rate | target | ok |")
    print("|---|---|---|---|---|---|")
    targets = {"A/A (same cell)": (0.01, "<="), "+5% service time": (0.8, ">="), "+10% service time": (0.95, ">=")}
    sets_ok = True
    for name, (hit, n) in sets.items():
        tgt, op = targets[name]
        rate = hit / max(n, 1)
        good = rate <= tgt if op == "<=" else rate >= tgt
        sets_ok &= good
        print(f"| {name} | {n} | {hit} | {rate:.1%} | {op} {tgt:.0%} | {'yes' if good else 'NO'} |")
    return 0 if (single_ok or sets_ok) else 1


if __name__ == "__main__":
    sys.exit(main())
