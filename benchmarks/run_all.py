"""Run every benchmark (``benchmarks/bench_*.py``) in its own process, one after another.

Each benchmark compares against a peer or a raw loop *in the same run* and prints its figures
as Markdown; this script prints a closing table and exits non-zero if any criterion failed.
``python benchmarks/run_all.py overhead gate`` runs only the named ones.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(a in s.stem for a in argv)]
    results = []
    for s in scripts:
        print(f"\n## {s.stem}\n", flush=True)
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, str(s)], cwd=HERE.parent)
        results.append((s.stem, rc, time.monotonic() - t0))
    print("\n## Summary\n")
    print("| benchmark | result | seconds |")
    print("|---|---|---:|")
    for name, rc, secs in results:
        print(f"| {name} | {'pass' if rc == 0 else f'FAIL (exit {rc})'} | {secs:.0f} |")
    return 0 if all(rc == 0 for _, rc, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
