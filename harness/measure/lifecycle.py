"""The life of a run record: created with the environment and host profile, saved after every
cell, and marked complete or interrupted. The suite runner, the interleaved A/B runs and the
pytest plugin all go through :class:`RunRecorder`, so every run records the same things.

Contract:

* :meth:`RunRecorder.start` creates the :class:`~harness.core.records.RunRecord` (status
  ``running``) with ``environment`` = the manifest (:func:`harness.measure.environment.manifest`)
  plus ``profile_id`` and ``profile`` (the host's hardware profile, so a generated ``local-*``
  profile can be resolved later), and saves it at once.
* The run directory is created exclusively (:func:`harness.store.results.create_run_dir`); a
  results root that cannot be written raises :class:`RunSaveError` before anything is measured.
* :meth:`RunRecorder.add` appends a cell and rewrites ``run.json`` atomically
  (:func:`harness.store.results.save_run`); a cell without a ``profile_id`` gets the run's.
* A save that fails (read-only or full file system) keeps the record in memory, is retried
  (:data:`SAVE_RETRY_DELAYS_S`), and then writes the whole record to a rescue file in the
  temporary directory and raises :class:`RunSaveError`, whose one-line message names the run
  directory, the cause, how many cells were measured and where they were kept.
* :meth:`RunRecorder.complete` and :meth:`RunRecorder.interrupt` are the only status
  transitions: ``running`` -> ``complete`` | ``interrupted``. Interrupting records the cell that
  was in progress as ``interrupted`` with the reason, and never raises for a failed save (what
  was saved after the last cell stands), so the original error is the one that propagates.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.core.hardware import HardwareProfile
from harness.core.records import CellRecord, CellSpec, RunRecord
from harness.measure.environment import manifest
from harness.measure.host import host_record
from harness.store.results import atomic_write_text, create_run_dir, save_run


def run_environment(profile: HardwareProfile, suite_path: Path | None = None) -> dict[str, Any]:
    """The environment of a run: the manifest of this host (and of ``suite_path``, if given)
    plus the host profile (``profile_id`` and the full ``profile``) and the whole host
    (``host``: CPU profile id and each accelerator's index, name, memory and profile id)."""
    env = manifest(suite_path)
    env["profile_id"] = profile.id
    env["profile"] = profile.model_dump(mode="json")
    env["host"] = host_record(profile)  # CPU profile + each accelerator's profile (or why none matched)
    return env


#: seconds waited before each retry of a failed ``run.json`` save (then the rescue file)
SAVE_RETRY_DELAYS_S: tuple[float, ...] = (0.2, 1.0)


class RunSaveError(Exception):
    """``run.json`` could not be written. ``cells_kept`` cells were measured; ``rescue_path`` is
    where the whole record was written instead (None: nowhere, only in memory). The message is
    one line naming the run directory, the cause and what was kept."""

    def __init__(self, message: str, run_dir: Path, cells_kept: int, rescue_path: Path | None) -> None:
        super().__init__(message)
        self.run_dir, self.cells_kept, self.rescue_path = run_dir, cells_kept, rescue_path


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived during a run; handled like Ctrl-C (the run ends ``interrupted``)."""


def interrupt_reason(exc: BaseException | None) -> str:
    """Why a run stopped before a cell finished, for that cell's ``error``."""
    if isinstance(exc, Terminated):
        return "run terminated (SIGTERM) before this cell finished"
    if exc is None or isinstance(exc, KeyboardInterrupt):
        return "run interrupted before this cell finished"
    if isinstance(exc, RunSaveError):
        return "run stopped before this cell finished: its results could not be saved"
    return f"runner failed: {type(exc).__name__}: {exc}"


class RunRecorder:
    """One run record being written under ``root``; see the module docstring for the contract.

    Used as a context manager it completes the run on a normal exit and interrupts it (then
    lets the exception propagate) on any exception, Ctrl-C included.
    """

    def __init__(self, record: RunRecord, root: Path, profile: HardwareProfile) -> None:
        self.record = record
        self.root = Path(root)
        self.profile = profile
        self._pending: CellSpec | None = None

    @classmethod
    def start(
        cls,
        name: str,
        root: Path,
        profile: HardwareProfile,
        *,
        suite_name: str | None = None,
        suite: dict[str, Any] | None = None,
        suite_path: Path | None = None,
        environment: Mapping[str, Any] | None = None,
        extra_environment: Mapping[str, Any] | None = None,
    ) -> RunRecorder:
        """Create and save a ``running`` record with id ``<utc stamp>-<name>-<hex>``.

        ``environment`` is a :func:`run_environment` already built (several runs of one session
        share it); by default it is built here. ``extra_environment`` adds keys to it.
        """
        env = dict(environment) if environment is not None else run_environment(profile, suite_path)
        env.update(extra_environment or {})
        try:
            run_id, _ = create_run_dir(Path(root), name)
        except OSError as exc:
            raise RunSaveError(
                f"cannot create a run directory in {root}: {exc.strerror or exc}; nothing was measured",
                Path(root),
                0,
                None,
            ) from None
        record = RunRecord(
            run_id=run_id,
            suite_name=name if suite_name is None else suite_name,
            suite=suite or {},
            suite_path=str(suite_path) if suite_path else None,
            environment=env,
        )
        rec = cls(record, root, profile)
        rec.save()
        return rec

    @property
    def run_dir(self) -> Path:
        """Directory of this run (``root/run_id``): ``run.json`` and ``raw/``."""
        return self.root / self.record.run_id

    def save(self) -> None:
        """Rewrite ``run.json`` atomically, retrying after :data:`SAVE_RETRY_DELAYS_S`; when
        every try fails, write the rescue file and raise :class:`RunSaveError`."""
        cause: OSError | None = None
        for delay in (*SAVE_RETRY_DELAYS_S, None):
            try:
                save_run(self.record, self.root)
                return
            except OSError as exc:
                cause = exc
            if delay is not None:
                time.sleep(delay)
        assert cause is not None
        target = Path(tempfile.gettempdir()) / f"harness-rescue-{self.record.run_id}.json"
        rescue: Path | None = target
        try:
            atomic_write_text(target, self.record.model_dump_json(indent=1))
        except OSError:
            rescue = None
        measured = sum(c.status != "interrupted" for c in self.record.cells)
        kept = (
            f"the run record with its {measured} measured cell(s) was written to {rescue}"
            if rescue
            else (f"{measured} measured cell(s) could not be written anywhere")
        )
        raise RunSaveError(
            f"cannot save {self.run_dir / 'run.json'} ({cause.strerror or cause}, tried "
            f"{len(SAVE_RETRY_DELAYS_S) + 1} times); {kept}; raw files already written stay in {self.run_dir}",
            self.run_dir,
            measured,
            rescue,
        ) from None

    def begin(self, spec: CellSpec) -> None:
        """Note the cell now being measured (recorded as ``interrupted`` if the run stops)."""
        self._pending = spec

    def add(self, cell: CellRecord) -> None:
        """Append ``cell`` (stamped with the run's profile id if it has none) and save."""
        if cell.profile_id is None:
            cell.profile_id = self.profile.id
        self.record.cells.append(cell)
        self._pending = None
        self.save()

    def complete(self) -> RunRecord:
        """Mark the run ``complete``, save it and return the record."""
        self.record.status = "complete"
        self._pending = None
        self.save()
        return self.record

    def interrupt(self, exc: BaseException | None = None, pending: Sequence[CellSpec] = ()) -> None:
        """Mark the run ``interrupted`` and save it as far as it can be saved.

        The cell in progress (the one passed to :meth:`begin`, else the first of ``pending``
        without a record) is recorded as ``interrupted`` with :func:`interrupt_reason`.
        """
        done = {c.cell_id for c in self.record.cells}
        spec = self._pending or next((s for s in pending if s.cell_id not in done), None)
        if spec is not None and spec.cell_id not in done:
            self.record.cells.append(
                CellRecord(cell_id=spec.cell_id, spec=spec, status="interrupted", error=interrupt_reason(exc))
            )
        self._pending = None
        self.record.status = "interrupted"
        try:
            self.save()
        except (OSError, RunSaveError):  # e.g. a full disk: the rescue file or the last save stands
            pass

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.complete()
        else:
            self.interrupt(exc)
