"""Memory and disk of a long run: a ``null`` single-stream cell of ``--seconds`` (default 60).

The ``null`` backend completes a query at once, so the harness issues millions of queries a
second: the worst case for per-query rows. The cell runs in a fresh child process (as the
runner's worker does: :func:`harness.measure.worker.execute_cell` with the host's default
meters); the worker's peak resident set is read both by the child itself
(``getrusage(RUSAGE_SELF)`` at the end of the cell) and by the parent once the child has exited
(``getrusage(RUSAGE_CHILDREN)``, which also covers anything the child started); the larger is
judged. Bytes written are summed under the run directory. All figures are measured.

Criteria: peak RSS of the worker < 300 MB and bytes written < 100 MB. Prints a Markdown table;
exits 1 when a criterion fails. ``--seconds 5`` gives a quick check.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

RSS_LIMIT_MB = 300.0
WRITTEN_LIMIT_MB = 100.0
MB = 1e6


def child(seconds: float, run_dir: Path) -> dict[str, Any]:
    """Run the cell in this process; return its figures (the parent prints them)."""
    from harness.core.records import CellSpec
    from harness.measure.host import host_profile
    from harness.measure.worker import execute_cell

    spec = CellSpec(
        model="tabular_mlp",
        size="tiny",
        backend="null",
        scenario="single-stream",
        scenario_options={
            "stop": {"min_duration_s": seconds, "max_duration_s": seconds, "min_queries": 1, "warmup_s": 0.5},
        },
        parity=False,
    )
    cell = execute_cell(spec, run_dir, host_profile())
    if cell.status != "ok":
        raise SystemExit(f"{spec.cell_id}: {cell.status}: {cell.error}")
    raw = cell.extra.get("raw_rows", {})
    return {
        "queries": raw.get("total_rows"),
        "rows_kept": raw.get("exact_rows", 0) + raw.get("reservoir_rows", 0),
        "rows_not_kept": raw.get("rows_not_kept", 0),
        "elapsed_s": cell.extra.get("elapsed_ns", 0) / 1e9,
        "p50_ms": cell.metric("latency_p50"),
        "p99_ms": cell.metric("latency_p99"),
        "p50_method": cell.metrics["latency_p50"].method,
        "self_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--child", metavar="RUN_DIR", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.seconds, Path(a.child))))
        return 0
    run_dir = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    proc = subprocess.run(
        [sys.executable, __file__, "--seconds", str(a.seconds), "--child", str(run_dir)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr, sep="\n")
        return 1
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    tree_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / MB  # Linux: KiB
    self_mb = figures["self_maxrss_kb"] * 1024 / MB
    peak_mb = max(tree_mb, self_mb)
    written_mb = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file()) / MB
    rss_ok = peak_mb < RSS_LIMIT_MB
    disk_ok = written_mb < WRITTEN_LIMIT_MB
    print(f"\n### Long `null` single-stream run ({a.seconds:g} s), all figures measured\n")
    print("| figure | value | criterion | pass |")
    print("|---|---:|---|---|")
    print(f"| queries | {figures['queries']:,} | | |")
    print(f"| raw rows kept (exact + reservoir) | {figures['rows_kept']:,} | | |")
    print(f"| rows not kept (in the histogram only) | {figures['rows_not_kept']:,} | | |")
    print(
        f"| peak RSS of the worker (own / with its children) | {self_mb:.0f} / {tree_mb:.0f} MB | < {RSS_LIMIT_MB:.0f} MB | {'yes' if rss_ok else 'NO'} |"
    )
    print(f"| bytes written | {written_mb:.1f} MB | < {WRITTEN_LIMIT_MB:.0f} MB | {'yes' if disk_ok else 'NO'} |")
    print(f"| latency p50 / p99 | {figures['p50_ms'] * 1e3:.3f} / {figures['p99_ms'] * 1e3:.3f} us | | |")
    print(f"\np50 method: {figures['p50_method']}")
    return 0 if rss_ok and disk_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
