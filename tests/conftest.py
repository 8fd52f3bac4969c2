from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# keep model/export caches inside the test session's temp area unless the caller set one
os.environ.setdefault("HARNESS_CACHE_DIR", str(ROOT / ".cache" / "test"))


@pytest.fixture
def write_suite(tmp_path: Path):
    """Write a suite YAML text to a file and return its path."""

    def _write(text: str, name: str = "suite.yaml") -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p

    return _write
