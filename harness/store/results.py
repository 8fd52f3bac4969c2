"""Results store: atomic writes, run directories, and loaders to pandas.

Layout: ``<root>/<run_id>/run.json`` plus ``raw/<cell_id>.parquet`` (see
:mod:`harness.core.records`). Every file is written to a temporary name in the same directory and
moved into place with ``os.replace``, so a reader never sees a half-written file and an
interrupted run keeps every cell it finished. Files get the mode the process umask gives a new
file (``0o666 & ~umask``), as ``open`` would. A run directory is created exclusively
(:func:`create_run_dir`): two runs never share one. Loading refuses a record whose
``schema_version`` is newer than this code reads, and one nested too deeply to parse, with a
:class:`ResultsError` naming the file; :func:`list_runs` reports such a run and goes on.
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

from harness.core.records import SCHEMA_VERSION, RunRecord

DEFAULT_ROOT = Path(os.environ.get("HARNESS_RESULTS", "results"))


class ResultsError(ValueError):
    """A run directory or file that cannot be read; the message names the path."""


def _umask() -> int:
    """The process umask (read from /proc where it can be, else set and restored at once)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """Permission bits of a new file under the current umask (``0o666 & ~umask``)."""
    return 0o666 & ~_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``;
    the file gets :func:`new_file_mode`. Raises ``OSError`` (nothing half-written is left)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, new_file_mode())
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
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def new_run_id(name: str = "run") -> str:
    """``<UTC stamp>-<name>-<8 hex digits>`` (32 random bits; :func:`create_run_dir` still
    refuses a directory that exists)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{name}-{secrets.token_hex(4)}"


def create_run_dir(root: Path, name: str = "run", attempts: int = 20) -> tuple[str, Path]:
    """Create a new, empty run directory under ``root`` exclusively and return its run id and
    path; an id already taken (by another run at the same second) is drawn again.

    Raises ``OSError`` when ``root`` cannot be created or written (e.g. a read-only file system)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for _ in range(attempts):
        run_id = new_run_id(name)
        d = root / run_id
        try:
            d.mkdir()
        except FileExistsError:
            continue
        return run_id, d
    raise FileExistsError(f"{root}: no free run id for {name!r} after {attempts} draws")


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
        data = json.loads(p.read_bytes().decode("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{p}: not a readable run record: {exc}") from None
    except UnicodeDecodeError:
        raise ResultsError(f"{p}: not a readable run record: not UTF-8 text") from None
    except RecursionError:
        raise ResultsError(f"{p}: not a readable run record: JSON nested too deeply") from None
    return parse_run(data, str(p))


def parse_run(data: object, source: str = "<data>") -> RunRecord:
    """Validate plain data as a :class:`RunRecord` (never unpickles or evaluates anything)."""
    if not isinstance(data, dict) or "run_id" not in data:
        raise ResultsError(f"{source}: not a run record (no 'run_id')")
    version = data.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise ResultsError(
            f"{source}: field schema_version: {version} is newer than this harness reads ({SCHEMA_VERSION}); "
            "upgrade the harness to read it"
        )
    try:
        return RunRecord.model_validate(data)
    except RecursionError:
        raise ResultsError(f"{source}: not a run record: nested too deeply") from None
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
