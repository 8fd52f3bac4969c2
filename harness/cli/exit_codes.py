"""Exit codes of the ``harness`` commands (listed in docs/architecture.md, "Shutdown and exit
codes") and the one-line ``error:`` messages that go with them.

====  =====================================================================================
0     everything asked for was done and every cell ran (skipped cells, e.g. an unavailable
      backend, do not count as failures)
1     a cell failed (``failed``, ``crashed`` or ``timeout``), or the gate found a regression
2     bad input: a suite, profile, option, run or file that cannot be used, or a results
      directory that cannot be written when the run starts; nothing was measured
3     the results could not be saved during a run; the message names the rescue file that
      holds every measured cell
130   interrupted by Ctrl-C (SIGINT); every cell measured so far is saved
143   terminated by SIGTERM; every cell measured so far is saved
====  =====================================================================================
"""

from __future__ import annotations

from pydantic import ValidationError

from harness.core.records import RunRecord
from harness.measure.lifecycle import RunSaveError, Terminated

OK = 0
CELLS_FAILED = 1
BAD_INPUT = 2
SAVE_FAILED = 3
INTERRUPTED = 130
TERMINATED = 143

#: cell statuses that make ``harness run`` exit with :data:`CELLS_FAILED`
FAILED_STATUSES: tuple[str, ...] = ("failed", "crashed", "timeout")


def run_exit_code(record: RunRecord) -> int:
    """:data:`CELLS_FAILED` when any cell of ``record`` has a status in
    :data:`FAILED_STATUSES`, else :data:`OK`."""
    return CELLS_FAILED if any(c.status in FAILED_STATUSES for c in record.cells) else OK


def interrupt_exit(exc: KeyboardInterrupt) -> tuple[str, int]:
    """The one-line message and exit code for a run stopped by Ctrl-C or SIGTERM."""
    if isinstance(exc, Terminated):
        return "terminated (SIGTERM): cells measured so far are saved", TERMINATED
    return "interrupted: cells measured so far are saved", INTERRUPTED


def save_error_exit(exc: RunSaveError) -> int:
    """:data:`BAD_INPUT` when nothing was measured (the results directory was unusable from the
    start), else :data:`SAVE_FAILED`."""
    return BAD_INPUT if exc.cells_kept == 0 and exc.rescue_path is None else SAVE_FAILED


def one_line(exc: Exception) -> str:
    """``exc`` as one line for an ``error:`` message: a pydantic ``ValidationError`` as
    ``field: problem (input ...)`` of its first error (and how many more), anything else as
    its first line."""
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        e = errors[0]
        loc = ".".join(str(x) for x in e["loc"]) or exc.title
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"{loc}: {e['msg']} (got {e.get('input')!r}){more}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
