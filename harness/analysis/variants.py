"""Speed–accuracy front of a variants run.

Cells of a run that carry a variant (:attr:`harness.core.records.CellSpec.variant`) are grouped
by workload and scenario (model, size, scenario, batch size, device); within a group each
``backend+variant`` is one point:

* speed: ``throughput`` (samples/s), or ``output_tokens_per_s`` for token streams; latency
  ``latency_p50`` (ms), or ``tpot_p50`` for token streams, shown beside it;
* accuracy: the cell's *agreement* with the fp32 eager reference (``extra.accuracy.agreement``:
  the lowest of top-1 and greedy-token agreement), falling back to ``top1_agreement``.

A point is **on the front** when no other measured point of its group is at least as fast and
at least as accurate and strictly better in one of the two. Cells that did not run (skipped,
failed) are listed with their reason and are never on the front.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.core.records import CellRecord, RunRecord

SPEED_METRICS = ("throughput", "output_tokens_per_s")
LATENCY_METRICS = ("latency_p50", "tpot_p50")


@dataclass
class FrontPoint:
    """One variant cell of a group. ``speed`` in the unit of ``speed_metric``; ``latency_ms``
    from ``latency_metric``; ``agreement`` a fraction (None when not measured)."""

    group: str
    cell_id: str
    backend: str
    variant: str
    status: str
    speed: float | None = None
    speed_metric: str | None = None
    latency_ms: float | None = None
    latency_metric: str | None = None
    agreement: float | None = None
    kl_divergence: float | None = None
    max_abs_err: float | None = None
    accuracy_met: bool | None = None
    on_front: bool = False
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _first(c: CellRecord, names: tuple[str, ...]) -> tuple[float | None, str | None]:
    for n in names:
        v = c.metric(n)
        if v is not None:
            return v, n
    return None, None


def group_key(c: CellRecord) -> str:
    """The workload and scenario a variant cell belongs to (its front's name)."""
    s = c.spec
    dev = "" if s.device == "cpu" else f"@{s.device}"
    return f"{s.model}-{s.size}{dev} {s.scenario} bs{s.batch_size}"


def _point(c: CellRecord) -> FrontPoint:
    s = c.spec
    p = FrontPoint(group=group_key(c), cell_id=c.cell_id, backend=s.backend, variant=str(s.variant), status=c.status)
    if c.status != "ok":
        p.note = (c.error or c.status).splitlines()[0][:200]
        return p
    p.speed, p.speed_metric = _first(c, SPEED_METRICS)
    tokens = p.speed_metric == "output_tokens_per_s"  # a token stream: its per-token latency
    p.latency_ms, p.latency_metric = _first(c, LATENCY_METRICS[::-1] if tokens else LATENCY_METRICS)
    acc = c.extra.get("accuracy") or {}
    agreement = acc.get("agreement")
    p.agreement = float(agreement) if agreement is not None else c.metric("top1_agreement")
    p.kl_divergence = c.metric("kl_divergence")
    p.max_abs_err = c.metric("max_abs_err")
    p.accuracy_met = c.validity.get("accuracy_met")
    for name in ("acceptance_rate", "tokens_per_target_step"):
        v = c.metric(name)
        if v is not None:
            p.extra[name] = v
    if c.valid is False:
        failed = [k for k, ok in c.validity.items() if not ok]
        p.note = "invalid: " + ", ".join(failed)
    return p


def dominates(a: FrontPoint, b: FrontPoint) -> bool:
    """``a`` is at least as fast and as accurate as ``b`` and strictly better in one."""
    if a.speed is None or b.speed is None or a.agreement is None or b.agreement is None:
        return False
    return a.speed >= b.speed and a.agreement >= b.agreement and (a.speed > b.speed or a.agreement > b.agreement)


def front(record: RunRecord) -> list[FrontPoint]:
    """Every variant cell of ``record`` as a point, grouped (groups in first-seen order, points
    by speed, fastest first), with :attr:`FrontPoint.on_front` set. Empty when no cell has a
    variant."""
    groups: dict[str, list[FrontPoint]] = {}
    for c in record.cells:
        if c.spec.variant is not None:
            p = _point(c)
            groups.setdefault(p.group, []).append(p)
    out: list[FrontPoint] = []
    for points in groups.values():
        measured = [p for p in points if p.speed is not None and p.agreement is not None]
        for p in measured:
            p.on_front = not any(dominates(q, p) for q in measured if q is not p)
        points.sort(key=lambda p: (p.speed is None, -(p.speed or 0.0)))
        out.extend(points)
    return out
