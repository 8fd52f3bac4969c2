"""Run reports: a self-contained HTML file (PNG plots embedded as base64) and Markdown.

Plots (matplotlib, Agg backend, drawn only when the run has the data):

* latency CDF per cell (latency = completed - scheduled, from the raw per-query files),
  baseline dashed in the same colour;
* throughput vs batch size for offline sweeps;
* latency (p50, p99) vs offered QPS for online cells;
* energy per inference and cost per 1M inferences per cell, each bar labelled with its
  provenance (``measured`` / ``estimated`` / ...).

Every value shown comes from the run records; nothing is recomputed beyond CDFs of the raw
latencies.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from harness.analysis.gate import GateError, compare_runs, match_cells, to_markdown
from harness.analysis.validity import invalid_reasons, legend
from harness.core.records import CellRecord, query_latency_ms
from harness.store.refs import LoadedRun
from harness.store.results import ResultsError

MAX_CDF_CELLS = 8


@dataclass
class ReportFiles:
    html: Path
    markdown: Path
    images: list[Path] = field(default_factory=list)


@dataclass
class _Figure:
    name: str
    title: str
    png: bytes
    caption: str = ""


def _plt() -> Any:
    # matplotlib is slow to import and its backend is chosen here, when a report is drawn,
    # never as a side effect of importing this module
    import matplotlib

    matplotlib.use("Agg", force=True)
    # deferred: matplotlib loads only when a report is drawn
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def _latencies_ms(run: LoadedRun, cell_id: str) -> np.ndarray | None:
    try:
        raw = run.raw(cell_id)
    except (ResultsError, KeyError):
        return None
    return query_latency_ms(raw)


def _ok_cells(run: LoadedRun) -> list[CellRecord]:
    return [c for c in run.record.cells if c.status == "ok"]


def _cdf_figures(run: LoadedRun, baseline: LoadedRun | None) -> list[_Figure]:
    plt = _plt()
    cells = [c for c in _ok_cells(run) if c.raw_file]
    # the baseline cell of each cell as the gate pairs them: by id, or legacy id for older baselines
    pairs = match_cells(baseline.record.cells, run.record.cells).pairs if baseline is not None else []
    partner = {p.current.cell_id: p.baseline for p in pairs}
    figs = []
    for start in range(0, len(cells), MAX_CDF_CELLS):
        chunk = cells[start : start + MAX_CDF_CELLS]
        fig, ax = plt.subplots(figsize=(8, 4.5))
        drew = False
        for i, c in enumerate(chunk):
            lat = _latencies_ms(run, c.cell_id)
            if lat is None or lat.size == 0:
                continue
            color = f"C{i % 10}"
            s = np.sort(lat)
            ax.step(s, np.arange(1, s.size + 1) / s.size, where="post", color=color, label=c.cell_id)
            drew = True
            b = partner.get(c.cell_id)
            if baseline is not None and b is not None and b.status == "ok":
                bl = _latencies_ms(baseline, b.cell_id)
                if bl is not None and bl.size:
                    sb = np.sort(bl)
                    ax.step(sb, np.arange(1, sb.size + 1) / sb.size, where="post", color=color, ls="--", alpha=0.7)
        if not drew:
            plt.close(fig)
            continue
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms, completed - scheduled; log scale)")
        ax.set_ylabel("fraction of queries")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        cap = "measured per-query latencies" + ("; dashed = baseline" if baseline is not None else "")
        figs.append(_Figure(f"latency_cdf_{start // MAX_CDF_CELLS + 1}", "Latency CDF", _png(fig), cap))
    return figs


class _Bar(NamedTuple):
    """A cell's value of one metric (None when it lacks it) and its provenance."""

    value: float | None
    provenance: str

    @property
    def measured(self) -> bool:
        return self.provenance.startswith("measured")


class _BatchPoint(NamedTuple):
    batch_size: int
    throughput: float  # samples/s


class _QpsPoint(NamedTuple):
    offered_qps: float
    p50_ms: float | None
    p99_ms: float | None


def _metric(c: CellRecord, name: str) -> _Bar:
    m = c.metrics.get(name)
    if m is None or m.value is None:
        return _Bar(None, "")
    return _Bar(float(m.value), m.provenance)


def _group_key(c: CellRecord) -> str:
    s = c.spec
    return f"{s.model}-{s.size} {s.backend}" + (f"@{s.device}" if s.device != "cpu" else "")


def _throughput_vs_batch(run: LoadedRun, baseline: LoadedRun | None) -> list[_Figure]:
    plt = _plt()

    def series(r: LoadedRun) -> dict[str, list[_BatchPoint]]:
        out: dict[str, list[_BatchPoint]] = {}
        for c in _ok_cells(r):
            if c.spec.scenario != "offline":
                continue
            v = _metric(c, "throughput").value
            if v is None:
                continue
            out.setdefault(_group_key(c), []).append(_BatchPoint(c.spec.batch_size, v))
        return out

    cur = series(run)
    if not cur:
        return []
    base = series(baseline) if baseline is not None else {}
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (k, pts) in enumerate(sorted(cur.items())):
        pts.sort()
        ax.plot([p.batch_size for p in pts], [p.throughput for p in pts], "o-", color=f"C{i % 10}", label=k)
        if k in base:
            bp = sorted(base[k])
            ax.plot([p.batch_size for p in bp], [p.throughput for p in bp], "o--", color=f"C{i % 10}", alpha=0.6)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("throughput (samples/s)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    cap = "offline scenario, measured" + ("; dashed = baseline" if baseline is not None else "")
    return [_Figure("throughput_vs_batch", "Throughput vs batch size", _png(fig), cap)]


def _latency_vs_qps(run: LoadedRun, baseline: LoadedRun | None) -> list[_Figure]:
    plt = _plt()

    def series(r: LoadedRun) -> dict[str, list[_QpsPoint]]:
        out: dict[str, list[_QpsPoint]] = {}
        for c in _ok_cells(r):
            q = _metric(c, "offered_qps").value
            if q is None:
                continue
            point = _QpsPoint(q, _metric(c, "latency_p50").value, _metric(c, "latency_p99").value)
            out.setdefault(_group_key(c), []).append(point)
        return out

    cur = series(run)
    if not cur:
        return []
    base = series(baseline) if baseline is not None else {}
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (k, pts) in enumerate(sorted(cur.items())):
        pts.sort(key=lambda p: p.offered_qps)
        col = f"C{i % 10}"
        ax.plot([p.offered_qps for p in pts], [p.p99_ms for p in pts], "o-", color=col, label=f"{k} p99")
        ax.plot([p.offered_qps for p in pts], [p.p50_ms for p in pts], "s:", color=col, alpha=0.7, label=f"{k} p50")
        if k in base:
            bp = sorted(base[k], key=lambda p: p.offered_qps)
            ax.plot([p.offered_qps for p in bp], [p.p99_ms for p in bp], "o--", color=col, alpha=0.5)
    ax.set_yscale("log")
    ax.set_xlabel("offered load (queries/s)")
    ax.set_ylabel("latency (ms)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    cap = "online scenario, measured" + ("; dashed = baseline p99" if baseline is not None else "")
    return [_Figure("latency_vs_qps", "Latency vs offered load", _png(fig), cap)]


def _energy_cost(run: LoadedRun) -> list[_Figure]:
    plt = _plt()
    names = {"energy_per_inference_j": "energy per inference (J)", "usd_per_1m_inferences": "USD per 1M inferences"}
    rows = [c for c in _ok_cells(run) if any(_metric(c, n).value is not None for n in names)]
    if not rows:
        return []
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(rows) + 1.5), sharey=True)
    y = np.arange(len(rows))
    for ax, (name, label) in zip(axes, names.items()):
        cells = [_metric(c, name) for c in rows]
        vals = [x.value if x.value is not None else 0.0 for x in cells]
        bars = ax.barh(y, vals, color=["C0" if x.measured else "C1" for x in cells])
        for b, x in zip(bars, cells):
            if x.value is not None:
                b.set_hatch("" if x.measured else "//")
                ax.text(
                    b.get_width(),
                    b.get_y() + b.get_height() / 2,
                    f" {x.value:.3g} ({x.provenance.split(':')[0]})",
                    va="center",
                    fontsize=7,
                )
        ax.set_xlabel(label)
        ax.grid(True, axis="x", alpha=0.3)
    axes[0].set_yticks(y, [r.cell_id for r in rows], fontsize=7)
    cap = "solid = measured, hatched = estimated/projected (provenance in each label)"
    return [_Figure("energy_cost", "Energy and cost per cell", _png(fig), cap)]


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _cell_rows(run: LoadedRun) -> tuple[list[str], list[list[str]]]:
    head = [
        "cell",
        "status",
        "valid",
        "throughput (samples/s)",
        "p50 ms [CI]",
        "p99 ms [CI]",
        "energy J/inf",
        "$/1M inf",
    ]
    rows = []
    for c in run.record.cells:

        def lat(name: str) -> str:
            m = c.metrics.get(name)
            if m is None or m.value is None:
                return "-"
            ci = f" [{_fmt(m.ci_low)}, {_fmt(m.ci_high)}]" if m.ci_low is not None else ""
            return f"{m.value:.4g}{ci}"

        def prov(name: str) -> str:
            bar = _metric(c, name)
            return "-" if bar.value is None else f"{bar.value:.4g} ({bar.provenance.split(':')[0]})"

        valid = "-" if c.valid is None else ("yes" if c.valid else "no: " + ", ".join(invalid_reasons(c)))
        rows.append(
            [
                c.cell_id,
                c.status + (f": {c.error[:80]}" if c.error else ""),
                valid,
                _fmt(_metric(c, "throughput").value),
                lat("latency_p50"),
                lat("latency_p99"),
                prov("energy_per_inference_j"),
                prov("usd_per_1m_inferences"),
            ]
        )
    return head, rows


def build_figures(run: LoadedRun, baseline: LoadedRun | None = None) -> list[_Figure]:
    return (
        _cdf_figures(run, baseline)
        + _throughput_vs_batch(run, baseline)
        + _latency_vs_qps(run, baseline)
        + _energy_cost(run)
    )


def _gate_section(run: LoadedRun, baseline: LoadedRun | None) -> tuple[str, str]:
    """(markdown, html) of the gate against the baseline, or empty strings."""
    if baseline is None:
        return "", ""
    try:
        rep = compare_runs(baseline, run, None, allow_unmatched=True)
    except GateError as exc:
        msg = f"Gate not computed: {exc}"
        return f"\n{msg}\n", f"<p>{html.escape(msg)}</p>"
    md = to_markdown(rep, verbose=True)  # a report shows every comparison, regressions first
    return md, "<pre class='gate'>" + html.escape(md) + "</pre>"


def write_report(run: LoadedRun, out_dir: Path, baseline: LoadedRun | None = None) -> ReportFiles:
    """Write ``report.html`` (self-contained) and ``report.md`` (+ PNGs) into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = build_figures(run, baseline)
    rec = run.record
    env = rec.environment
    title = f"Run {rec.run_id}"
    sub = (
        f"suite {rec.suite_name or '-'} · {rec.created_utc} · status {rec.status} · "
        f"{env.get('cpu_model', '?')} · python {env.get('python', '?')}"
    )
    if baseline is not None:
        sub += f" · baseline {baseline.record.run_id}"
    head, rows = _cell_rows(run)
    gate_md, gate_html = _gate_section(run, baseline)

    images = []
    md = [f"# {title}", "", sub, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(x.replace("|", "\\|") for x in r) + " |" for r in rows]
    md.append("")
    flags = legend(f for c in rec.cells for f in invalid_reasons(c))
    if flags:
        md += ["Invalid cells (figures recorded, not to be trusted):", "", *(f"- {x}" for x in flags), ""]
    if gate_md:
        md += [gate_md, ""]
    for f in figs:
        p = out_dir / f"{f.name}.png"
        p.write_bytes(f.png)
        images.append(p)
        md += [f"## {f.title}", "", f"![{f.title}]({p.name})", "", f"_{f.caption}_", ""]
    md.append(
        "Latency = completed - scheduled. Provenance: measured = read on this machine; "
        "estimated = a model applied to measurements."
    )
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(md) + "\n")

    esc = html.escape
    table = (
        "<table><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in head)
        + "</tr>"
        + "".join("<tr>" + "".join(f"<td>{esc(x)}</td>" for x in r) + "</tr>" for r in rows)
        + "</table>"
    )
    if flags:
        table += (
            "<p class='sub'>Invalid cells (figures recorded, not to be trusted):</p><ul class='sub'>"
            + "".join(f"<li>{esc(x)}</li>" for x in flags)
            + "</ul>"
        )
    plots = "".join(
        f"<figure><h2>{esc(f.title)}</h2><img alt='{esc(f.title)}' "
        f"src='data:image/png;base64,{base64.b64encode(f.png).decode()}'/>"
        f"<figcaption>{esc(f.caption)}</figcaption></figure>"
        for f in figs
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}
img{{max-width:100%}}pre.gate{{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}}
.sub{{color:#555}}</style></head><body>
<h1>{esc(title)}</h1><p class="sub">{esc(sub)}</p>
{table}
{gate_html}
{plots}
<p class="sub">Latency = completed - scheduled. Provenance: measured = read on this machine;
estimated = a model applied to measurements.</p>
</body></html>
"""
    html_path = out_dir / "report.html"
    html_path.write_text(page)
    return ReportFiles(html_path, md_path, images)
