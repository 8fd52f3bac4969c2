"""On-disk cache locations and content hashing for workload artefacts (no torch import).

Layout: ``<root>/info/*.json`` holds :class:`~workloads.base.WorkloadInfo` records and
``<root>/onnx/*.onnx`` holds exports. ``<root>`` is ``$HARNESS_CACHE_DIR`` when set, else
``~/.cache/inference-harness``. Keys are SHA-256 digests of a canonical JSON document, so any
change in a workload's configuration, its model source code or the torch version gives a new key.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

ENV_CACHE_DIR = "HARNESS_CACHE_DIR"


def cache_root() -> Path:
    """Root cache directory (not created here)."""
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "inference-harness"


def cache_subdir(kind: str, override: Path | str | None = None) -> Path:
    """``override`` if given, else ``cache_root() / kind``; created on demand."""
    path = Path(override).expanduser() if override is not None else cache_root() / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


@cache
def package_version(dist: str) -> str:
    """Installed version of ``dist`` read from package metadata (does not import it)."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


@cache
def file_digest(path: str) -> str:
    """SHA-256 of a file's bytes (used to key caches on model source code)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def content_hash(doc: dict[str, Any]) -> str:
    """Short stable hash of a JSON-serialisable document (keys sorted)."""
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory + ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    """Parsed JSON at ``path``, or None when missing or unreadable (a corrupt entry is a miss)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
