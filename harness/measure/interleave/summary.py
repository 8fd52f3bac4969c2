"""Summaries of an interleaved measurement: one side's blocks become its raw rows, metrics,
validity and cell record; and whether two records are partners of one session."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.metrics import Metric
from harness.core.records import CellRecord
from harness.measure.interleave.options import ENERGY_NOTE, ClosedLoopPlan, InterleaveOptions, Variant
from harness.measure.interleave.worker import Ready
from harness.measure.scenarios.summary import latency_metrics
from harness.store.results import write_table


@dataclass(frozen=True)
class Block:
    """One measured block: round, turn within the round, index of the variant's worker that
    measured it, and its queries' issued and completed times (int64 ns)."""

    round: int
    position: int
    worker: int
    issued_ns: np.ndarray
    completed_ns: np.ndarray

    @property
    def duration_ns(self) -> int:
        """From the first query's issue to the last query's completion."""
        return int(self.completed_ns[-1] - self.issued_ns[0])


@dataclass
class SideResult:
    """What one variant's workers reported: their :class:`Ready` messages (one per worker, in
    worker order), the first worker's ``backend.describe()``, and the measured blocks."""

    variant: Variant
    ready: list[Ready]
    backend_info: dict[str, Any] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)


@dataclass(frozen=True)
class Session:
    """What the records of one interleaved measurement share: its id, the variants' labels,
    the options, the id of the cell (the first variant's) and when and how long it ran."""

    session: str
    labels: list[str]
    options: InterleaveOptions
    cell_id: str
    started_utc: str
    wall_s: float


def _column(blocks: list[Block], value: str) -> np.ndarray:
    return np.concatenate([np.full(b.issued_ns.size, getattr(b, value), dtype=np.int64) for b in blocks])


def summarise(side: SideResult, run_dir: Path, plan: ClosedLoopPlan, s: Session) -> CellRecord:
    """Write ``side``'s raw rows under ``run_dir`` (``raw/<cell_id>.parquet``, with ``block``,
    ``block_position`` and ``worker`` columns) and return its ``ok`` record: latency
    percentiles (completed - issued), throughput over the summed block durations, the median
    load time over the workers (contended: loaded concurrently) and the session in ``extra``."""
    opts, blocks = s.options, side.blocks
    starts = np.concatenate([b.issued_ns for b in blocks])
    ends = np.concatenate([b.completed_ns for b in blocks])
    n = int(starts.size)
    queries = {
        "query_id": np.arange(n, dtype=np.int64),
        "batch_size": np.full(n, plan.batch_size, dtype=np.int64),
        "scheduled_ns": starts,
        "issued_ns": starts,
        "completed_ns": ends,
        "block": _column(blocks, "round"),
        "block_position": _column(blocks, "position"),
        "worker": _column(blocks, "worker"),
    }
    raw_rel = f"raw/{s.cell_id}.parquet"
    write_table(run_dir / raw_rel, queries)
    durations = [b.duration_ns for b in blocks]
    measured_ns = sum(durations)
    metrics = latency_metrics(ends - starts, plan.headline_q)
    if measured_ns > 0:
        metrics["throughput"] = Metric(
            value=n * plan.batch_size / (measured_ns / 1e9),
            unit="samples/s",
            method="measured samples / summed block durations",
        )
        metrics["queries_per_s"] = Metric(value=n / (measured_ns / 1e9), unit="queries/s")
    loads = [r.load_time_ns for r in side.ready]
    load_ns = int(np.median(loads)) if loads else None
    if load_ns is not None:
        metrics["load_time_ms"] = Metric(
            value=load_ns / 1e6,
            unit="ms",
            method=f"median over {len(loads)} workers of this side, loaded concurrently with every other "
            "worker of the session (contended; not a cold-start figure)",
        )
    validity = {
        "min_queries_met": n >= plan.stop.min_queries,
        "all_blocks_measured": len(blocks) == opts.rounds,
        # a block that reached its cap (half of block_timeout_s) before block_min_queries
        "block_min_queries_met": all(b.issued_ns.size >= opts.block_min_queries for b in blocks),
    }
    extra: dict[str, Any] = {
        "interleave": {
            "session": s.session,
            "variant": side.variant.label,
            "variants": s.labels,
            **opts.model_dump(
                include={"rounds", "block_ms", "block_min_queries", "block_warmup_queries", "seed", "workers"}
            ),
        },
        "block_durations_ns": durations,
        "stop_rule": "warm-up as in the spec; the measurement is rounds x blocks, not the spec's "
        "min/max duration and queries",
        "worker_warmup": [r.warmup for r in side.ready],
        "energy": ENERGY_NOTE,
    }
    if side.variant.slowdown:
        extra["injected_slowdown"] = side.variant.slowdown
    if side.variant.pythonpath:
        extra["pythonpath"] = list(side.variant.pythonpath)
    first = side.ready[0] if side.ready else Ready(0)
    return CellRecord(
        cell_id=s.cell_id,
        spec=side.variant.spec,
        started_utc=s.started_utc,
        wall_s=s.wall_s,
        status="ok",
        load_time_ns=load_ns,
        warmup=first.warmup,
        metrics=metrics,
        validity=validity,
        valid=all(validity.values()),
        backend_info=side.backend_info,
        workload_info=first.workload_info,
        raw_file=raw_rel,
        extra=extra,
    )


def interleaved_partners(a: CellRecord, b: CellRecord) -> bool:
    """Whether two cell records were measured in the same interleaved session, as different
    variants (then the gate pairs their blocks)."""
    ia, ib = a.extra.get("interleave"), b.extra.get("interleave")
    return (
        isinstance(ia, dict)
        and isinstance(ib, dict)
        and ia.get("session") is not None
        and ia.get("session") == ib.get("session")
        and ia.get("variant") != ib.get("variant")
    )
