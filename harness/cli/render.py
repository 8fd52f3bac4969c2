"""Tables for the terminal and for files: one set of rows, four formats (:data:`FORMATS`).

The commands that print tables (``run``, ``show``, ``recommend``, ``gate compare``,
``profiles list``) build a :class:`Frame` (columns + rows of raw values) and print it with
:func:`emit`:

* ``table``: a rich table when every column fits the console at its full width; otherwise
  (a narrow terminal, or a pipe, which rich treats as 80 columns unless ``COLUMNS`` says
  otherwise) a long format with one block per row and one ``header: value`` line per field,
  so every value is printed whole; a folded column never turns a number into blanks.
* ``csv``: a header of column keys and the raw values (numbers unformatted, None empty).
* ``json``: a list of objects keyed by column key, raw values (non-finite numbers as null).
* ``markdown``: a pipe table of the displayed strings.

Notes (legends, footnotes) follow ``table`` and ``markdown`` output; ``csv`` and ``json``
hold data only, so that they parse.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

FORMATS = ("table", "csv", "json", "markdown")
FORMAT_HELP = "output format: " + " | ".join(FORMATS)


def fmt_num(v: object, digits: int = 3) -> str:
    """A number for display: ``-`` for None/NaN, thousands separators from 1000 up, else
    ``digits`` significant digits; other values as ``str``."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-" if v != v else ("inf" if v > 0 else "-inf")
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}g}"
    return str(v)


@dataclass(frozen=True)
class Column:
    """One column: ``key`` names it in CSV/JSON, ``header`` in tables (with the unit);
    ``show`` turns a raw value into the displayed string."""

    key: str
    header: str
    show: Callable[[Any], str] = fmt_num
    #: False: in CSV and JSON only (e.g. the raw list behind marks shown in other columns)
    in_table: bool = True


@dataclass
class Frame:
    """Rows of raw values (dicts keyed by column key) with their columns, a title, optional
    per-row rich styles for the table and notes printed after it."""

    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    styles: list[str | None] = field(default_factory=list)
    #: per row, displayed text that replaces ``Column.show`` for some keys
    texts: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: how many leading columns head a row's block in the long format
    key_columns: int = 1

    def add(self, row: dict[str, Any], style: str | None = None, texts: dict[str, str] | None = None) -> None:
        """Append ``row`` (raw values by column key) with a table style and displayed-text overrides."""
        self.rows.append(row)
        self.styles.append(style)
        self.texts.append(texts or {})

    @property
    def shown_columns(self) -> list[Column]:
        """The columns of table, long and Markdown output."""
        return [c for c in self.columns if c.in_table]

    def shown(self) -> list[list[str]]:
        """Every row as its displayed strings, in :attr:`shown_columns` order."""
        cols = self.shown_columns
        return [
            [t[c.key] if c.key in t else c.show(r.get(c.key)) for c in cols]
            for r, t in zip(self.rows, self.texts or [{}] * len(self.rows))
        ]


def check_format(fmt: str) -> str | None:
    """None when ``fmt`` is one of :data:`FORMATS`, else the error message naming the allowed ones."""
    return None if fmt in FORMATS else f"unknown --format {fmt!r}; allowed: {', '.join(FORMATS)}"


def _plain(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return str(v)


def to_json(frame: Frame) -> str:
    """The rows as a JSON list of objects (raw values; non-finite numbers as null)."""
    return json.dumps([{c.key: _plain(r.get(c.key)) for c in frame.columns} for r in frame.rows], indent=1)


def to_csv(frame: Frame) -> str:
    """The rows as CSV: a header of column keys, raw values, None as an empty field."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([c.key for c in frame.columns])
    for r in frame.rows:
        out = []
        for c in frame.columns:
            v = _plain(r.get(c.key))
            out.append("" if v is None else (";".join(map(str, v)) if isinstance(v, list) else v))
        w.writerow(out)
    return buf.getvalue()


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub pipe table ('|' escaped, newlines as <br>)."""

    def esc(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", "<br>")

    lines = ["| " + " | ".join(esc(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(esc(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def to_markdown(frame: Frame) -> str:
    """A heading, the pipe table and the notes as a list."""
    out = [f"### {frame.title}", "", markdown_table([c.header for c in frame.shown_columns], frame.shown())]
    if frame.notes:
        out += ["", *(f"- {n}" for n in frame.notes)]
    return "\n".join(out) + "\n"


def table_width(frame: Frame) -> int:
    """Characters a rich table of ``frame`` needs with no column folded (box and padding included)."""
    shown = frame.shown()
    widths = [
        max([len(c.header), *(max(len(x) for x in row[i].splitlines() or [""]) for row in shown)])
        for i, c in enumerate(frame.shown_columns)
    ]
    return sum(widths) + 3 * len(widths) + 1


def print_table(frame: Frame, console: Console) -> None:
    """A rich table when it fits ``console.width`` unfolded, else the long format; then the notes."""
    if frame.rows and table_width(frame) <= console.width:
        t = Table(title=frame.title)
        for c in frame.shown_columns:
            t.add_column(c.header, no_wrap=True)
        for row, style in zip(frame.shown(), frame.styles or [None] * len(frame.rows)):
            t.add_row(*row, style=style)
        console.print(t)
    else:
        print_long(frame, console)
    for n in frame.notes:
        console.print(n, style="dim", markup=False, highlight=False, soft_wrap=True)


def print_long(frame: Frame, console: Console) -> None:
    """One block per row: the first :attr:`Frame.key_columns` columns as its heading, then ``header: value`` fields
    packed into lines of at most ``console.width`` (a field longer than that gets its own
    line, unbroken). Fields shown as ``-`` (no value) are left out."""
    console.print(frame.title, style="bold", markup=False, highlight=False, soft_wrap=True)
    if not frame.rows:
        console.print("(no rows)", markup=False, highlight=False)
    for row, style in zip(frame.shown(), frame.styles or [None] * len(frame.rows)):
        k = frame.key_columns
        console.print(" ".join(row[:k]), style=style or "bold", markup=False, highlight=False, soft_wrap=True)
        line = ""
        for c, text in zip(frame.shown_columns[k:], row[k:]):
            if text == "-":
                continue
            item = f"{c.header}: {' / '.join(text.splitlines())}"
            if line and len(line) + 3 + len(item) > console.width:
                console.print(line, markup=False, highlight=False, soft_wrap=True)
                line = ""
            line = f"{line} · {item}" if line else f"  {item}"
        if line:
            console.print(line, markup=False, highlight=False, soft_wrap=True)


def render_text(frame: Frame, fmt: str) -> str:
    """``frame`` as ``csv``, ``json`` or ``markdown`` text; ValueError for other formats."""
    if fmt == "csv":
        return to_csv(frame)
    if fmt == "json":
        return to_json(frame) + "\n"
    if fmt == "markdown":
        return to_markdown(frame)
    raise ValueError(f"unknown format {fmt!r}; allowed as text: csv, json, markdown")


def emit(frame: Frame, fmt: str, console: Console) -> None:
    """Print ``frame`` in ``fmt`` (one of :data:`FORMATS`) to ``console``; text formats are
    written unstyled and unwrapped so they parse."""
    if fmt == "table":
        print_table(frame, console)
    else:
        console.file.write(render_text(frame, fmt))
        console.file.flush()
