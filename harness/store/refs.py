"""Run references: find a stored run by directory, ``run.json`` path, run id or baseline name,
and read its raw per-query tables.

Named baselines live under ``<results root>/baselines/<name>/`` (:func:`baselines_root`), each
a copy of a run directory. Every error is a :class:`harness.store.results.ResultsError` whose
message names the path (and the cell) that could not be read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.core.records import RunRecord
from harness.store.results import DEFAULT_ROOT, ResultsError, load_run

#: columns every raw per-query table must have (``*_ns`` from ``time.perf_counter_ns``)
RAW_REQUIRED_COLUMNS = frozenset({"scheduled_ns", "completed_ns"})


@dataclass
class LoadedRun:
    """A run record with the directory its raw files live in; ``label`` is how it was named
    (the reference given, e.g. a baseline name), shown in reports."""

    record: RunRecord
    path: Path
    label: str = ""

    def raw(self, cell_id: str) -> pd.DataFrame:
        """The raw per-query table of ``cell_id`` (one row per query, ``*_ns`` columns).

        Raises ``KeyError`` for a cell not in the run and :class:`ResultsError` for a cell
        without a raw file, a missing or unreadable file, or missing required columns."""
        c = self.record.cell(cell_id)
        if not c.raw_file:
            raise ResultsError(f"{self.path}: cell {cell_id} has no raw per-query file (status {c.status})")
        p = self.path / c.raw_file
        if not p.exists():
            raise ResultsError(f"{p}: raw per-query file of cell {cell_id} is missing")
        try:
            df = pd.read_parquet(p)
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            raise ResultsError(f"{p}: cannot read raw per-query file: {exc}") from None
        missing = RAW_REQUIRED_COLUMNS - set(df.columns)
        if missing:
            raise ResultsError(f"{p}: missing column(s) {sorted(missing)}; have {list(df.columns)}")
        return df


def baselines_root(results_root: Path) -> Path:
    """Directory of the named baselines under ``results_root``."""
    return Path(results_root) / "baselines"


def load_run_ref(ref: str | Path, results_root: Path | None = None) -> LoadedRun:
    """Load a run by directory, ``run.json`` path, run id under ``results_root``, or baseline
    name under ``results_root/baselines/`` (tried in that order; ``results_root`` defaults to
    :data:`harness.store.results.DEFAULT_ROOT`). Raises :class:`ResultsError` naming every
    place looked at when none holds a ``run.json``."""
    root = Path(results_root) if results_root is not None else DEFAULT_ROOT
    candidates = [Path(ref), root / str(ref), baselines_root(root) / str(ref)]
    for p in candidates:
        d = p.parent if p.name == "run.json" else p
        if (d / "run.json").exists():
            return LoadedRun(load_run(d), d, str(ref))
    raise ResultsError(f"no run {str(ref)!r}: looked for run.json in {', '.join(str(c) for c in candidates)}")
