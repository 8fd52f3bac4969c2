"""A cell's per-query data for benchmark-history formats (pytest-benchmark, and through it
``pytest-benchmark compare``, Bencher and github-action-benchmark).

pytest-benchmark times *rounds* of ``iterations`` calls each and keeps the time per call. A
query of batch size b is one round of b samples here, so :func:`cell_rounds` gives each
query's latency in **seconds** (:func:`harness.core.records.query_latency_ms`, completed -
scheduled) and b; pytest-benchmark's ``Metadata`` divides by b, so its statistics are
seconds per sample and its ``ops`` is samples/s (of one query stream: for closed-loop
scenarios with one query in flight this is the cell's throughput; the measured throughput
is in ``extra_info``). :func:`benchmark_metadata` builds that ``Metadata`` and
:func:`write_benchmark_json` writes the file through pytest-benchmark's own hooks (its current
format version, ``machine_info``, and ``commit_info`` of the git checkout pytest runs in, i.e.
the project under test). Only measured metrics go into ``extra_info``: estimated and projected
ones have no place in a benchmark history.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from harness.core.records import CellRecord, query_latency_ms
from harness.store.results import atomic_write_text

#: how a round's time is defined, stated in every exported benchmark's ``extra_info``
ROUND_DEFINITION = (
    "one round per query (completed - scheduled) of batch_size samples; stats are seconds per sample, ops samples/s"
)


def cell_rounds(cell: CellRecord, run_dir: Path) -> tuple[npt.NDArray[np.float64], int]:
    """(per-query latencies in seconds, samples per query) of ``cell`` from its raw file under
    ``run_dir``. Raises ValueError when the cell has no raw file or no completed query."""
    if cell.raw_file is None:
        raise ValueError(f"cell {cell.cell_id} has no raw file to export")
    raw = pd.read_parquet(run_dir / cell.raw_file)
    lat_s = np.asarray(query_latency_ms(raw), dtype=np.float64) / 1e3
    lat_s = lat_s[np.isfinite(lat_s)]
    if lat_s.size == 0:
        raise ValueError(f"cell {cell.cell_id} has no completed query to export")
    return lat_s, max(int(cell.spec.batch_size), 1)


def benchmark_extra_info(cell: CellRecord, run_dir: Path) -> dict[str, object]:
    """``extra_info`` of ``cell``'s benchmark: cell id, run id, the round definition, validity
    (with the flags that failed) and every measured metric's value (in the metric's unit)."""
    return {
        "cell_id": cell.cell_id,
        "harness_run": run_dir.name,
        "round": ROUND_DEFINITION,
        "valid": cell.valid,
        "invalid_flags": [k for k, ok in cell.validity.items() if not ok],
        **{
            k: m.value
            for k, m in sorted(cell.metrics.items())
            if m.value is not None and m.provenance.split(":", 1)[0] == "measured"
        },
    }


class _BenchmarkSource:
    """What ``pytest_benchmark.stats.Metadata`` reads from its fixture: names, group, params,
    ``extra_info``; no cProfile data and no error (a failed cell is not exported)."""

    def __init__(self, name: str, fullname: str, group: str, extra_info: dict[str, object]) -> None:
        self.name, self.fullname, self.group, self.extra_info = name, fullname, group, extra_info
        self.param = self.params = None
        self.cprofile_stats = None
        self.has_error = False


def benchmark_metadata(cell: CellRecord, run_dir: Path, name: str, fullname: str) -> Any:
    """``cell`` as a ``pytest_benchmark.stats.Metadata`` (group: the scenario; ``name`` and
    ``fullname``: the test's name and node id): one round per query of ``batch_size``
    iterations, so its stats are seconds per sample and ``ops`` samples/s."""
    # deferred: pytest-benchmark (and pytest) load only when a benchmark is exported
    from pytest_benchmark.stats import Metadata

    rounds_s, per_round = cell_rounds(cell, run_dir)
    options = {
        "timer": "time.perf_counter_ns",
        "disable_gc": False,
        "min_rounds": int(rounds_s.size),
        "max_time": None,
        "min_time": None,
        "warmup": True,
    }
    make: Any = Metadata  # untyped third-party class
    meta = make(
        _BenchmarkSource(name, fullname, cell.spec.scenario, benchmark_extra_info(cell, run_dir)), per_round, options
    )
    # what Metadata.update(t) does per round (t / iterations), in one step
    per_sample = rounds_s / per_round
    meta.stats.data.extend(per_sample.tolist())
    # pytest-benchmark caches these on first use; computed here with numpy by the same
    # definitions (its statistics-module versions take seconds per million rounds)
    meta.stats.__dict__.update(
        sorted_data=np.sort(per_sample).tolist(),
        mean=float(per_sample.mean()),
        stddev=float(per_sample.std(ddof=1)) if per_sample.size > 1 else 0.0,
        median=float(np.median(per_sample)),
    )
    return meta


def write_benchmark_json(path: Path, config: Any, benchmarks: Sequence[Any], run_id: str) -> Path:
    """Write ``benchmarks`` (from :func:`benchmark_metadata`) to ``path`` atomically as
    pytest-benchmark JSON generated by the hooks of pytest ``config`` (machine info, commit info
    of the project under test, current format version), plus a ``harness`` entry naming the
    run; returns ``path``."""
    # deferred: pytest-benchmark (and pytest) load only when a benchmark is exported
    from pytest_benchmark.utils import safe_dumps

    hook = config.hook
    machine_info = hook.pytest_benchmark_generate_machine_info(config=config)
    hook.pytest_benchmark_update_machine_info(config=config, machine_info=machine_info)
    commit_info = hook.pytest_benchmark_generate_commit_info(config=config)
    hook.pytest_benchmark_update_commit_info(config=config, commit_info=commit_info)
    doc = hook.pytest_benchmark_generate_json(
        config=config,
        benchmarks=list(benchmarks),
        include_data=True,
        machine_info=machine_info,
        commit_info=commit_info,
    )
    hook.pytest_benchmark_update_json(config=config, benchmarks=list(benchmarks), output_json=doc)
    doc["harness"] = {"run_id": run_id, "round": ROUND_DEFINITION}
    dumps: Any = safe_dumps  # untyped third-party function
    atomic_write_text(path, str(dumps(doc, indent=1)))
    return path
