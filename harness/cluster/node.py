"""What a cluster node does with one cell (runs inside a Ray task; no Ray import here).

The cell runs exactly as on a single host: in a fresh worker process with its timeout and
crash isolation (:func:`harness.measure.runner.run_cell_isolated`), on this node's own host
profile (detected here, or the one the run was named to) and with this node's environment
manifest. The raw files are written to a private temporary directory and returned as bytes,
so the driver writes them into the run directory itself (atomically): nodes need no shared
file system.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.core.hardware import HardwareProfile
from harness.core.records import CellSpec
from harness.measure.host import host_profile
from harness.measure.lifecycle import run_environment
from harness.measure.runner import run_cell_isolated


def node_profile(profile_json: str | None, overrides: Mapping[str, float] | None) -> HardwareProfile:
    """The profile the node prices and meters cells with: the run's named profile
    (``profile_json``) if any, else this node's detected host profile with ``overrides``."""
    if profile_json:
        return HardwareProfile.model_validate_json(profile_json)
    return host_profile(overrides)


@contextmanager
def plain_main() -> Iterator[None]:
    """While active, a ``spawn``-ed process does not re-import this process's ``__main__`` script.

    A Ray worker's ``__main__`` is Ray's worker script, which imports all of Ray: without this,
    every cell worker would load Ray (seconds of start-up, and memory in the measured process
    that a local run does not have). The cell worker needs nothing from ``__main__``."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


#: this process's run environment per profile (a Ray worker runs many cells; the host stays put)
_ENVIRONMENTS: dict[str, dict[str, Any]] = {}


def node_environment(profile: HardwareProfile) -> dict[str, Any]:
    """This node's run environment (:func:`harness.measure.lifecycle.run_environment`), built
    once per process and profile."""
    key = profile.model_dump_json()
    if key not in _ENVIRONMENTS:
        _ENVIRONMENTS[key] = run_environment(profile)
    return _ENVIRONMENTS[key]


def run_on_node(spec_json: str, profile_json: str | None, overrides: Mapping[str, float] | None) -> dict[str, Any]:
    """Run one cell here. Returns ``{"cell": CellRecord JSON, "files": {relative path: bytes},
    "environment": this node's run environment}``; never raises for the cell's own failure."""
    spec = CellSpec.model_validate_json(spec_json)
    profile = node_profile(profile_json, overrides)
    environment = node_environment(profile)
    with tempfile.TemporaryDirectory(prefix="harness-cell-") as tmp:
        with plain_main():
            cell = run_cell_isolated(spec, Path(tmp), profile)
        files = {rel: (Path(tmp) / rel).read_bytes() for rel in (cell.raw_file, cell.tokens_file) if rel}
    if cell.profile_id is None:
        cell.profile_id = profile.id
    return {"cell": cell.model_dump_json(), "files": files, "environment": environment}
