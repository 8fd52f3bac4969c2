"""Results store: atomic writes, run directories, and loaders to pandas.

Layout: ``<root>/<run_id>/run.json`` plus ``raw/<cell_id>.parquet`` (see
:mod:`harness.core.records`). Every file is written to a temporary name in the same directory and
moved into place with ``os.replace``, so a reader never sees a half-written file and an
interrupted run keeps every cell it finished.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from harness.core.records import RunRecord

DEFAULT_ROOT = Path(os.environ.get("HARNESS_RESULTS", "results"))


class ResultsError(ValueError):
    """A run directory or file that cannot be read; the message names the path."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_table(path: Path, columns: dict[str, np.ndarray]) -> None:
    """Write columns as Parquet, atomically."""
    table = pa.table({k: np.asarray(v) for k, v in columns.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        # raw timestamps are nearly all distinct: dictionary encoding gains nothing on disk and
        # costs memory of the order of the table while writing
        pq.write_table(table, tmp, use_dictionary=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def new_run_id(name: str = "run") -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{name}-{secrets.token_hex(2)}"


def save_run(record: RunRecord, root: Path = DEFAULT_ROOT) -> Path:
    path = Path(root) / record.run_id / "run.json"
    atomic_write_text(path, record.model_dump_json(indent=1))
    return path


def load_run(path_or_id: str | Path, root: Path = DEFAULT_ROOT) -> RunRecord:
    """Load a run by directory, ``run.json`` path, or run id under ``root``."""
    p = Path(path_or_id)
    if not p.exists():
        p = Path(root) / str(path_or_id)
    if p.is_dir():
        p = p / "run.json"
    if not p.exists():
        raise ResultsError(f"no run record at {p}")
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{p}: not a readable run record: {exc}") from exc
    return parse_run(data, str(p))


def parse_run(data: object, source: str = "<data>") -> RunRecord:
    """Validate plain data as a :class:`RunRecord` (never unpickles or evaluates anything)."""
    if not isinstance(data, dict) or "run_id" not in data:
        raise ResultsError(f"{source}: not a run record (no 'run_id')")
    try:
        return RunRecord.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        loc = ".".join(str(x) for x in e["loc"])
        raise ResultsError(f"{source}: field {loc}: {e['msg']}") from None


def list_runs(root: Path = DEFAULT_ROOT) -> tuple[list[RunRecord], list[str]]:
    """All readable runs under ``root`` (newest first) and a message per unreadable one."""
    runs, errors = [], []
    root = Path(root)
    if not root.exists():
        return [], []
    for d in sorted(root.iterdir()):
        if not (d / "run.json").exists():
            continue
        try:
            runs.append(load_run(d))
        except ResultsError as exc:
            errors.append(str(exc))
    runs.sort(key=lambda r: r.created_utc, reverse=True)
    return runs, errors


def cells_frame(runs: list[RunRecord]) -> pd.DataFrame:
    """One row per cell: ids, spec fields, status, validity, and one column per metric
    (``<metric>`` value plus ``<metric>__prov`` provenance)."""
    rows = []
    for r in runs:
        for c in r.cells:
            row: dict[str, Any] = {
                "run_id": r.run_id,
                "created_utc": r.created_utc,
                "suite": r.suite_name,
                "cell_id": c.cell_id,
                "model": c.spec.model,
                "size": c.spec.size,
                "backend": c.spec.backend,
                "device": c.spec.device,
                "scenario": c.spec.scenario,
                "batch_size": c.spec.batch_size,
                "status": c.status,
                "valid": c.valid,
                "error": c.error,
                "profile_id": c.profile_id,
                "hardware": r.environment.get("cpu_model"),
                "commit": (r.environment.get("project_git") or {}).get("commit"),
                "parity_passed": c.parity.passed if c.parity else None,
            }
            for name, m in c.metrics.items():
                row[name] = m.value
                row[f"{name}__prov"] = m.provenance
            rows.append(row)
    return pd.DataFrame(rows)


def load_results(root: Path = DEFAULT_ROOT) -> pd.DataFrame:
    """DataFrame of every cell of every readable run under ``root``."""
    runs, _ = list_runs(root)
    return cells_frame(runs)


def load_raw(run: RunRecord, cell_id: str, root: Path = DEFAULT_ROOT, tokens: bool = False) -> pd.DataFrame:
    """Raw per-query (or per-token) rows of one cell."""
    c = run.cell(cell_id)
    rel = c.tokens_file if tokens else c.raw_file
    if rel is None:
        raise ResultsError(f"cell {cell_id} has no {'token' if tokens else 'raw'} file")
    return pd.read_parquet(Path(root) / run.run_id / rel)
