"""The run summary (one row per cell) and one cell's metrics, as :class:`harness.cli.render.Frame`.

Summary columns: throughput (samples/s, or output tokens/s for token streams), p50/p99
latency (ms), the scenario's headline figure, power (W) with its source, energy (J) and cost
(USD per 1M) per inference (per token for token streams), and validity with the flags that
failed; a legend under the table says what each failed flag means and what to do.
"""

from __future__ import annotations

import re

from harness.analysis.validity import invalid_reasons, legend
from harness.cli.render import Column, Frame, fmt_num
from harness.core.metrics import Metric
from harness.core.records import CellRecord, RunRecord

POWER_NOTE = "power source: measured = read from a counter; estimated = a model (e.g. TDP x utilisation)"


def _val(m: dict[str, Metric], name: str) -> float | None:
    return m[name].value if name in m else None


def headline(m: dict[str, Metric]) -> str:
    """The scenario's headline figure, named, with its unit."""

    def v(name: str) -> str:
        return fmt_num(_val(m, name))

    es = ""
    if "latency_early_stop" in m:
        q = re.search(r"p\d+(?:\.\d+)?", m["latency_early_stop"].method or "")
        es = f"{q.group(0) if q else 'pXX'} (early stop) {v('latency_early_stop')} ms"
    if "peak_qps" in m:
        return f"peak {v('peak_qps')} qps" + (f"; {es}" if es else "")
    if "ttft_p50" in m:
        return f"TTFT {v('ttft_p50')} / TPOT {v('tpot_p50')} ms"
    if "deadline_miss_rate" in m:
        return f"deadline miss {v('deadline_miss_rate')}"
    if "achieved_qps" in m:
        return f"{v('achieved_qps')} of {v('offered_qps')} qps" + (f"; {es}" if es else "")
    return es or "-"


def _per_unit(m: dict[str, Metric]) -> tuple[float | None, float | None, str]:
    """(energy J, USD per 1M, unit): per inference, or per generated token for token streams."""
    if (
        _val(m, "energy_per_inference_j") is None
        and _val(m, "usd_per_1m_inferences") is None
        and (_val(m, "energy_per_token_j") is not None or _val(m, "usd_per_1m_tokens") is not None)
    ):
        return _val(m, "energy_per_token_j"), _val(m, "usd_per_1m_tokens"), "token"
    return _val(m, "energy_per_inference_j"), _val(m, "usd_per_1m_inferences"), "inference"


def _valid_text(v: object) -> str:
    return "-" if v is None else ("yes" if v is True else str(v))


SUMMARY_COLUMNS = [
    Column("cell_id", "cell", str),
    Column("status", "status", str),
    Column("throughput", "thr/s"),
    Column("latency_p50_ms", "p50 ms"),
    Column("latency_p99_ms", "p99 ms"),
    Column("headline", "headline", str),
    Column("power_w", "W"),
    Column("energy_j", "J/unit"),
    Column("usd_per_1m", "$/1M"),
    Column("per", "per", str),
    Column("power_source", "power source", lambda v: v or "-"),
    Column("valid", "valid", _valid_text),
]


def summary_row(c: CellRecord) -> dict[str, object]:
    """One cell's summary row (raw values; ``valid`` is True, None or ``no: flag, ...``)."""
    m = c.metrics
    energy, usd, per = _per_unit(m)
    reasons = invalid_reasons(c)
    status = c.status if c.status == "ok" or not c.error else f"{c.status}: {c.error[:120]}"
    return {
        "cell_id": c.cell_id,
        "status": status,
        "throughput": _val(m, "throughput") or _val(m, "output_tokens_per_s"),
        "latency_p50_ms": _val(m, "latency_p50"),
        "latency_p99_ms": _val(m, "latency_p99"),
        "headline": headline(m),
        "power_w": _val(m, "power_w"),
        "energy_j": energy,
        "usd_per_1m": usd,
        "per": per,
        "power_source": m["power_w"].provenance if "power_w" in m else None,
        "valid": None if c.valid is None else (True if c.valid else "no: " + ", ".join(reasons)),
    }


def summary_frame(record: RunRecord, title: str | None = None) -> Frame:
    """The run's summary: one row per cell, the power-source note and a legend of the failed
    validity flags (what each means, what to do)."""
    f = Frame(title or f"run {record.run_id}", list(SUMMARY_COLUMNS))
    flags: list[str] = []
    for c in record.cells:
        style = None if c.status == "ok" else "red"
        if c.status == "ok" and c.valid is False:
            style = "yellow"
        f.add(summary_row(c), style)
        flags += invalid_reasons(c)
    f.notes.append(POWER_NOTE)
    if flags:
        f.notes.append("invalid cells ('valid: no: FLAG'): their figures are recorded but should not be trusted:")
        f.notes += ["  " + line for line in legend(flags)]
    return f


def cell_frame(c: CellRecord) -> Frame:
    """Every metric of one cell: value, unit, provenance and CI; the validity flags and parity
    as notes (with the legend of failed flags)."""
    f = Frame(
        f"cell {c.cell_id} ({c.status})",
        [
            Column("metric", "metric", str),
            Column("value", "value", lambda v: fmt_num(v, 5)),
            Column("unit", "unit", lambda v: v or ""),
            Column("provenance", "provenance", lambda v: v or "-"),
            Column("ci_low", "CI low"),
            Column("ci_high", "CI high"),
        ],
    )
    for name, m in sorted(c.metrics.items()):
        f.add(
            {
                "metric": name,
                "value": m.value,
                "unit": m.unit,
                "provenance": m.provenance,
                "ci_low": m.ci_low,
                "ci_high": m.ci_high,
            }
        )
    if c.error:
        f.notes.append(f"error: {c.error}")
    f.notes.append("validity: " + (", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in c.validity.items()) or "-"))
    if c.parity is not None:
        f.notes.append(f"parity: {c.parity.model_dump()}")
    f.notes += legend(invalid_reasons(c))
    return f
