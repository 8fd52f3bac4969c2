"""The app's downloadable report: one self-contained HTML file (inline CSS, no scripts, nothing
fetched from elsewhere) holding the tables of the current view, each under a heading, with a
line saying where the numbers come from. Text is HTML-escaped. Nothing here imports Streamlit.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime, timezone

import pandas as pd

_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:13px}"
    "th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".note{color:#555;font-size:13px}"
)


def _cell(v: object) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "<td></td>"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return f'<td class="num">{html.escape(f"{v:.6g}")}</td>'
    return f"<td>{html.escape(str(v))}</td>"


def table_html(df: pd.DataFrame) -> str:
    """``df`` as an HTML table (header escaped, numbers right-aligned with 6 significant digits)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_report(title: str, sections: Sequence[tuple[str, pd.DataFrame | str]], source: str) -> str:
    """A complete HTML document: ``title``, the time it was made (UTC), ``source`` (where the
    data comes from) and each section as a heading plus a table or a paragraph of text."""
    made = datetime.now(timezone.utc).isoformat(timespec="seconds")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">made {made} from {html.escape(source)}. Provenance of every number: measured = '
        "happened on the benchmarked machine in that run; estimated = a model applied to measurements; "
        "projected = a model for hardware that was not present; reference = a published result.</p>",
    ]
    for heading, content in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if isinstance(content, pd.DataFrame):
            parts.append(table_html(content) if not content.empty else '<p class="note">(none)</p>')
        else:
            parts.append(f'<p class="note">{html.escape(content)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts)
