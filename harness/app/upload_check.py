"""What the upload page checks before handing a file to :func:`harness.store.ingest.ingest_upload`:
a ``run.json`` (alone or inside a zip) must be a run record written by ``harness run``, not a
stub the record schema would complete with defaults (a creation time of the upload, an empty
environment, no cells). Nothing here imports Streamlit.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

#: top-level fields every run record written by ``harness run`` has
REQUIRED_FIELDS: tuple[str, ...] = ("run_id", "created_utc", "status", "environment", "cells")


def _check_record(obj: Any, source: str) -> str | None:
    if not isinstance(obj, dict):
        return f"{source}: not a run record (a JSON object is expected, got {type(obj).__name__})"
    missing = [f for f in REQUIRED_FIELDS if f not in obj]
    if missing:
        return (
            f"{source}: field {missing[0]}: missing ({len(missing)} of the fields every run record has are "
            f"missing: {', '.join(missing)}); expected a run.json written by `harness run` with "
            f"{', '.join(REQUIRED_FIELDS)}"
        )
    return None


def _check_json(data: bytes, source: str) -> str | None:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None  # ingest names the decoding problem with its position
    except RecursionError:
        return f"{source}: JSON nested too deeply to be a run record"
    return _check_record(obj, source)


def precheck_upload(name: str, data: bytes) -> str | None:
    """A message saying why ``name`` is not a complete run record, or None to go on to ingest
    (which checks the schema, paths and Parquet files)."""
    if name.lower().endswith(".zip"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                members = [m for m in zf.namelist() if m.rsplit("/", 1)[-1] == "run.json"]
                for m in members:
                    if zf.getinfo(m).file_size > 256 * 1024 * 1024:
                        return None  # ingest refuses it by size
                    msg = _check_json(zf.read(m), f"{name}:{m}")
                    if msg:
                        return msg
        except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, NotImplementedError):
            return f"{name}: not a readable zip archive"
        return None
    return _check_json(data, name)
