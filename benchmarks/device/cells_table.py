"""Markdown table of every cell of a run: backend and options, batch, throughput, latency, power,
parity, status (a skipped or failed cell shows why). Usage: ``cells_table.py RUN_DIR [--out FILE]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.store.results import load_run


def _fmt(v: float | None, digits: int = 4) -> str:
    return "–" if v is None else f"{v:.{digits}g}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rec = load_run(args.run_dir)
    lines = [
        f"run {rec.run_id}: {sum(c.status == 'ok' for c in rec.cells)}/{len(rec.cells)} cells ok",
        "",
        "| model | backend | options | scenario | batch | throughput/s | p50 ms | p99 ms | W | parity | status |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for c in rec.cells:
        s = c.spec
        opts = ", ".join(f"{k}={v}" for k, v in sorted(s.backend_options.items())) or "–"
        thr = c.metric("output_tokens_per_s") if s.scenario == "token-stream" else c.metric("throughput")
        parity = "–" if c.parity is None or not c.parity.checked else ("pass" if c.parity.passed else "FAIL")
        status = c.status if c.status == "ok" else f"{c.status}: {(c.error or '')[:80]}"
        lines.append(
            f"| {s.model} | {s.backend}@{s.device} | {opts} | {s.scenario} | {s.batch_size} | {_fmt(thr)} | "
            f"{_fmt(c.metric('latency_p50'))} | {_fmt(c.metric('latency_p99'))} | {_fmt(c.metric('power_w'), 3)} | "
            f"{parity} | {status} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
