"""Interleaved A/B runs: every cell of a suite measured as baseline vs current into two run
records, written through :class:`harness.measure.lifecycle.RunRecorder` like any other run."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.core.hardware import HardwareProfile
from harness.core.records import CLOSED_LOOP_SCENARIOS, CellRecord, CellSpec, RunRecord
from harness.measure.host import host_profile
from harness.measure.interleave.coordinator import measure_interleaved
from harness.measure.interleave.options import InterleaveOptions, Variant
from harness.measure.lifecycle import RunRecorder, run_environment

CellProgress = Callable[[int, int, CellSpec, list[CellRecord] | None], None]


def _not_interleavable(spec: CellSpec) -> CellRecord:
    return CellRecord(
        cell_id=spec.cell_id,
        spec=spec,
        status="skipped",
        error=f"scenario {spec.scenario!r} cannot be interleaved; allowed: {', '.join(sorted(CLOSED_LOOP_SCENARIOS))}",
    )


def run_ab(
    cells: Sequence[CellSpec],
    root: Path,
    *,
    baseline_path: Sequence[str] = (),
    current_path: Sequence[str] = (),
    inject_slowdown: float = 0.0,
    options: InterleaveOptions | None = None,
    suite_name: str = "",
    suite_path: Path | None = None,
    profile: HardwareProfile | None = None,
    on_cell: CellProgress | None = None,
) -> tuple[RunRecord, RunRecord]:
    """Measure every cell as baseline vs current, interleaved, into two runs under ``root``
    (ids ``...-ab-baseline-...`` and ``...-ab-current-...``), saved atomically after every
    cell. Both record the environment manifest and the host ``profile`` (default:
    :func:`harness.measure.host.host_profile`) like a suite run, plus ``interleave_session``,
    ``ab_role``, ``pythonpath`` (absolute) and, on the current side, ``injected_slowdown``.
    Cells of other scenarios are recorded as ``skipped`` with the reason. Ctrl-C, or any error
    that escapes a cell (e.g. a full disk), records the cell in progress as ``interrupted``,
    saves both runs as ``interrupted`` (as far as they can be saved) and re-raises."""
    opts = options or InterleaveOptions()
    if profile is None:
        profile = host_profile()
    baseline_path = tuple(str(Path(x).resolve()) for x in baseline_path)  # recorded: absolute
    current_path = tuple(str(Path(x).resolve()) for x in current_path)
    session = secrets.token_hex(6)
    env = run_environment(profile, suite_path)
    env["interleave_session"] = session
    recorders = []
    for label, paths in (("baseline", baseline_path), ("current", current_path)):
        extra: dict[str, object] = {"ab_role": label, "pythonpath": list(paths)}
        if label == "current" and inject_slowdown:
            extra["injected_slowdown"] = inject_slowdown
        recorders.append(
            RunRecorder.start(
                f"ab-{label}",
                Path(root),
                profile,
                suite_name=suite_name,
                suite_path=suite_path,
                environment=env,
                extra_environment=extra,
            )
        )
    base, cur = recorders
    try:
        for k, spec in enumerate(cells):
            for r in recorders:
                r.begin(spec)
            if on_cell is not None:
                on_cell(k, len(cells), spec, None)
            if not spec.closed_loop:
                recs = [_not_interleavable(spec) for _ in recorders]
            else:
                variants = [
                    Variant("baseline", spec, baseline_path),
                    Variant("current", spec, current_path, inject_slowdown),
                ]
                dirs = [r.run_dir for r in recorders]
                recs = measure_interleaved(
                    variants, dirs, opts.model_copy(update={"seed": opts.seed + k}), session=session
                )
            for r, c in zip(recorders, recs):
                r.add(c)
            if on_cell is not None:
                on_cell(k + 1, len(cells), spec, recs)
    except BaseException as exc:
        for r in recorders:
            r.interrupt(exc)
        raise
    return base.complete(), cur.complete()
