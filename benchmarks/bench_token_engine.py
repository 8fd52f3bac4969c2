"""Continuous batching against one request and against per-thread batch-1 decode.

gpt2 tiny on the torch backend (CPU), token-stream closed loop, the same prompts and lengths
(seeded) at concurrency 1 and 8, each through the continuous engine and the naive per-thread
mode, all in this run. Cells run in this process through ``execute_cell`` (the runner's path),
alternating engine and concurrency over ``ROUNDS`` rounds; the figures are medians over rounds.

Criteria (ratios of measured figures of this run), engine continuous:

* output tokens/s at concurrency 8 >= 3 x at concurrency 1;
* TPOT p50 at concurrency 8 <= 2.5 x at concurrency 1.

Naive figures are printed for comparison only. Prints a Markdown table; exits 1 when a
criterion fails.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.core.records import CellSpec
from harness.measure.worker import execute_cell

ROUNDS = 3
THREADS = 1  # intra-op threads: a tiny model gains nothing from more, and the host is shared
PROMPT_LEN = 16
OUTPUT_LEN = 48
STOP = {"min_duration_s": 1.5, "min_queries": 16, "max_duration_s": 30, "warmup_queries": 8, "warmup_s": 0.2}


def measure(engine: str, concurrency: int, run_dir: Path) -> dict[str, Any]:
    spec = CellSpec(
        model="gpt2",
        size="tiny",
        backend="torch",
        backend_options={"threads": THREADS},
        scenario="token-stream",
        scenario_options={
            "mode": "closed",
            "concurrency": concurrency,
            "engine": engine,
            "prompt_len": PROMPT_LEN,
            "output_len": OUTPUT_LEN,
            "stop": STOP,
        },
        parity=False,
    )
    cell = execute_cell(spec, run_dir, meters=[])
    if cell.status != "ok":
        raise RuntimeError(f"{engine} x{concurrency}: {cell.status}: {cell.error}")
    if cell.extra.get("engine") != engine:
        raise RuntimeError(f"{engine} x{concurrency} ran {cell.extra.get('engine')}: {cell.extra}")
    m = cell.metrics
    return {
        "tok_s": m["output_tokens_per_s"].value,
        "tpot_ms": m["tpot_p50"].value,
        "ttft_ms": m["ttft_p50"].value,
        "requests": cell.extra["requests"],
    }


def main() -> int:
    cases = [(e, c) for e in ("continuous", "naive") for c in (1, 8)]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {k: [] for k in cases}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(ROUNDS):
            order = cases if r % 2 == 0 else cases[::-1]
            for e, c in order:
                runs[(e, c)].append(measure(e, c, Path(tmp)))

    def med(k: tuple[str, int], f: str) -> float:
        return float(statistics.median(x[f] for x in runs[k]))

    print(f"gpt2 tiny, torch CPU ({THREADS} thread), prompt {PROMPT_LEN}, output {OUTPUT_LEN}, closed loop;")
    print(f"medians over {ROUNDS} rounds (measured)\n")
    print("| engine | concurrency | output tokens/s | TPOT p50 ms | TTFT p50 ms | requests |")
    print("|---|---:|---:|---:|---:|---:|")
    for e, c in cases:
        print(
            f"| {e} | {c} | {med((e, c), 'tok_s'):.0f} | {med((e, c), 'tpot_ms'):.3f} | "
            f"{med((e, c), 'ttft_ms'):.3f} | {med((e, c), 'requests'):.0f} |"
        )
    ok = True
    print("\n| ratio (x8 / x1) | tokens/s | TPOT | criterion | result |")
    print("|---|---:|---:|---|---|")
    for e in ("continuous", "naive"):
        tput = med((e, 8), "tok_s") / med((e, 1), "tok_s")
        tpot = med((e, 8), "tpot_ms") / med((e, 1), "tpot_ms")
        if e == "continuous":
            passed = tput >= 3.0 and tpot <= 2.5
            ok &= passed
            crit, res = "tokens/s >= 3x, TPOT <= 2.5x", "pass" if passed else "FAIL"
        else:
            crit, res = "(comparison only)", "-"
        print(f"| {e} | {tput:.2f} | {tpot:.2f} | {crit} | {res} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
