"""Streamlit pieces shared by the pages: the results root, the cached store, the message for
unreadable runs, the provenance legend, the empty state with its demo-run button, the page
icon (drawn here: nothing is fetched from the internet) and the selection kept in the URL
(``st.query_params``: a page seeds its widgets from the URL when they have no state and writes
the selection back after every change, so a URL reopens the same view)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from harness.app import data
from harness.core.records import CellRecord, CellSpec, RunRecord
from harness.core.spec import SpecError
from harness.measure.runner import run_suite
from harness.store.results import list_runs

PROVENANCE_HELP = (
    "**Provenance** of every number: **measured** = happened on the benchmarked machine in that run; "
    "**estimated** = a model applied to measurements (e.g. CPU watts from TDP x utilisation, list price); "
    "**projected** = a model for hardware that was not present; **reference** = a published result "
    "(MLPerf Inference)."
)


def results_root() -> Path:
    """The results directory chosen when the app started (``--results`` after ``--``, or
    ``$HARNESS_RESULTS``, or ``results``)."""
    if "results_root" not in st.session_state:
        st.session_state["results_root"] = str(data.resolve_results_root(sys.argv[1:]))
    return Path(st.session_state["results_root"])


@st.cache_data(show_spinner=False, max_entries=8)
def _cached_runs(root: str, signature: tuple[tuple[str, int, int], ...]) -> tuple[list[RunRecord], list[str]]:
    return list_runs(Path(root))


def load_store() -> tuple[list[RunRecord], list[str]]:
    """Every readable run (newest first) and a message per unreadable one; re-read whenever a
    ``run.json`` in the store changes."""
    root = results_root()
    return _cached_runs(str(root), data.store_signature(root))


def show_store_errors(errors: list[str]) -> None:
    if not errors:
        return
    with st.expander(f"⚠️ {len(errors)} run(s) in the results store could not be read and are left out", expanded=False):
        for e in errors:
            st.warning(e)


def provenance_legend() -> None:
    st.caption(PROVENANCE_HELP)


def empty_state(root: Path, key: str = "demo") -> None:
    """What to do when the store holds no runs: the commands, and a button that runs the
    demo suite here with a progress bar."""
    st.info(
        f"No benchmark results in `{root}` yet. Produce some with\n\n"
        f"```\nmake run                                   # quick suite\n"
        f"harness run workloads/suites/quick.yaml --results {root}\n```\n\n"
        "or run the ~20-second demo suite (a tiny MLP on the null and PyTorch backends) from here."
    )
    if st.button("▶ Run the demo suite", key=f"{key}-run", type="primary"):
        run_demo(root)


def run_demo(root: Path) -> None:
    bar = st.progress(0.0, text="starting the demo suite ...")

    def progress(i: int, n: int, spec: CellSpec, cell: CellRecord | None) -> None:
        state = "" if cell is None else f" - {cell.status}"
        bar.progress(min(i / max(n, 1), 1.0), text=f"{i}/{n} cells · {spec.cell_id}{state}")

    try:
        record = run_suite(data.DEMO_SUITE, root=root, progress=progress)
    except (SpecError, OSError, ValueError) as exc:
        st.error(f"The demo suite could not run: {exc}")
        return
    ok = sum(c.status == "ok" for c in record.cells)
    bar.progress(1.0, text=f"done: {ok}/{len(record.cells)} cells ok")
    st.success(f"Saved run {record.run_id} in {root}.")
    st.cache_data.clear()
    st.rerun()


def require_runs() -> tuple[list[RunRecord], list[str]] | None:
    """Load the store; with no readable runs show the empty state and return None."""
    runs, errors = load_store()
    show_store_errors(errors)
    if not runs:
        empty_state(results_root(), key=f"demo-{st.session_state.get('page', 'page')}")
        return None
    return runs, errors


def page_icon() -> Image.Image:
    """A 32 x 32 RGBA bar-chart icon for the browser tab, drawn in memory and served by the app
    itself (a named or emoji icon would be fetched from a font or image server)."""
    img = np.zeros((32, 32, 4), dtype=np.uint8)
    for x0, h in ((4, 12), (13, 20), (22, 28)):
        img[32 - h : 30, x0 : x0 + 7] = (255, 75, 75, 255)
    img[30:32, 2:30] = (60, 60, 60, 255)
    return Image.fromarray(img, "RGBA")


def url_values(param: str, allowed: Sequence[str] | None = None) -> list[str]:
    """The comma-separated values of URL parameter ``param`` (those in ``allowed`` when given)."""
    raw = st.query_params.get(param, "")
    vals = [v for v in str(raw).split(",") if v]
    return vals if allowed is None else [v for v in vals if v in set(allowed)]


def seed(widget_key: str, value: object) -> None:
    """Give widget ``widget_key`` ``value`` (from the URL, or a default) when it has no state yet:
    on a page's first run in a session, and again after Streamlit dropped the state of a
    widget on a page left behind. A value the user chose is never overwritten."""
    if widget_key not in st.session_state and value not in (None, "", [], ()):
        st.session_state[widget_key] = value


def set_url(**params: object) -> None:
    """Write the selection into the URL: lists comma-separated; empty values removed."""
    for k, v in params.items():
        if v in (None, "", [], ()):
            if k in st.query_params:
                del st.query_params[k]
            continue
        text = ",".join(str(x) for x in v) if isinstance(v, (list, tuple)) else str(v)
        if st.query_params.get(k) != text:
            st.query_params[k] = text
