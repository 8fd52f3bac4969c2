"""``harness show`` of a variants run: the speed–accuracy front as a table
(:func:`harness.analysis.variants.front`)."""

from __future__ import annotations

from harness.analysis.variants import front
from harness.cli.render import Column, Frame, fmt_num
from harness.core.records import RunRecord


def _pct(v: object) -> str:
    return "-" if not isinstance(v, float) else f"{100 * v:.1f} %"


def front_frame(record: RunRecord) -> Frame | None:
    """One row per variant cell (grouped by workload and scenario; ``*`` marks the front), or
    ``None`` when the run has no variant cells."""
    points = front(record)
    if not points:
        return None
    frame = Frame(
        title=f"speed–accuracy front · run {record.run_id}",
        columns=[
            Column("group", "workload · scenario", str),
            Column("variant", "backend+variant", str),
            Column("front", "front", lambda v: "*" if v else ""),
            Column("speed", "speed"),
            Column("speed_unit", "unit", lambda v: v or ""),
            Column("latency_ms", "p50 ms"),
            Column("agreement", "agreement", _pct),
            Column("kl_divergence", "KL nats", lambda v: fmt_num(v, 2)),
            Column("max_abs_err", "max |err|", lambda v: fmt_num(v, 2)),
            Column("note", "note", str),
        ],
        key_columns=2,
    )
    for p in points:
        unit = {"throughput": "samples/s", "output_tokens_per_s": "tokens/s"}.get(p.speed_metric or "", "")
        note = p.note if p.status == "ok" else f"{p.status}: {p.note}"
        if "acceptance_rate" in p.extra:
            note = (
                f"acceptance {100 * p.extra['acceptance_rate']:.0f} %, "
                f"{p.extra.get('tokens_per_target_step', float('nan')):.2f} tokens/target step"
                + (f"; {note}" if note else "")
            )
        frame.add(
            {
                "group": p.group,
                "variant": f"{p.backend}+{p.variant}",
                "front": p.on_front,
                "speed": p.speed,
                "speed_unit": unit,
                "latency_ms": p.latency_ms,
                "agreement": p.agreement,
                "kl_divergence": p.kl_divergence,
                "max_abs_err": p.max_abs_err,
                "note": note,
            },
            style=None if p.status == "ok" else "dim",
        )
    frame.notes.append(
        "agreement: lowest of top-1 and greedy-token agreement with the fp32 eager reference (measured); "
        "* = no other variant of the group is both faster and more accurate; p50 ms: latency, or TPOT for token streams"
    )
    return frame
