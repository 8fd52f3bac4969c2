"""Which baseline cell a current cell is compared with.

Cells pair by id (:func:`harness.core.records.cell_id`). A cell left without a partner pairs
by its legacy id (:func:`harness.core.records.legacy_cell_id`, the id before the stop rule
was part of it), so baselines written before that change still compare: one baseline cell
with one current cell; where several current cells share a baseline cell's legacy id (a
sweep over stop rules against an older baseline), only the one with the same spec.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from harness.core.records import CellRecord, legacy_cell_id


class CellPair(NamedTuple):
    """A baseline cell and the current cell compared with it."""

    baseline: CellRecord
    current: CellRecord
    by_legacy_id: bool


@dataclass
class CellMatch:
    """Outcome of :func:`match_cells`: the pairs (in current order) and the ids left over."""

    pairs: list[CellPair]
    only_baseline: list[str]
    only_current: list[str]


def same_spec(a: CellRecord, b: CellRecord) -> bool:
    """Whether two cells were specified alike (their wall-clock limit aside)."""
    return a.spec.model_dump(exclude={"timeout_s"}) == b.spec.model_dump(exclude={"timeout_s"})


def match_cells(baseline: Sequence[CellRecord], current: Sequence[CellRecord]) -> CellMatch:
    """Pair cells by id; cells left over on both sides pair by legacy id (one baseline cell
    with one current cell; where several current cells share a baseline cell's legacy id, as
    a sweep over stop rules against an older baseline, the one with the same spec)."""
    b_ids = {c.cell_id for c in baseline}
    c_ids = {c.cell_id for c in current}
    left_b: dict[str, list[CellRecord]] = {}
    for b in baseline:
        if b.cell_id not in c_ids:
            left_b.setdefault(legacy_cell_id(b.spec), []).append(b)
    by_id = {b.cell_id: b for b in baseline}
    pairs: list[CellPair] = []
    taken: set[str] = set()
    for c in current:
        if c.cell_id in b_ids:
            pairs.append(CellPair(by_id[c.cell_id], c, False))
            continue
        key = legacy_cell_id(c.spec)
        claims = [x for x in current if x.cell_id not in b_ids and legacy_cell_id(x.spec) == key]
        free = [b for b in left_b.get(key, []) if b.cell_id not in taken]
        if len(free) != 1:
            continue
        if len(claims) > 1 and not (same_spec(free[0], c) and sum(same_spec(free[0], x) for x in claims) == 1):
            continue
        taken.add(free[0].cell_id)
        pairs.append(CellPair(free[0], c, True))
    paired_c = {p.current.cell_id for p in pairs}
    paired_b = {p.baseline.cell_id for p in pairs}
    return CellMatch(
        pairs,
        [b.cell_id for b in baseline if b.cell_id not in paired_b],
        [c.cell_id for c in current if c.cell_id not in paired_c],
    )
