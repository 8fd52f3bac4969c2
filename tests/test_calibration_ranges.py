"""Ranges from leave-one-out residuals: never zero width, wider for small calibration sets."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core.hardware import load_profiles
from harness.planning.ranges import MIN_HALF_WIDTH, PRIOR, ratio_range
from harness.planning.stack_model import leave_one_out, shipped_points

ratios = st.lists(st.floats(min_value=1e-3, max_value=1e3, allow_nan=False), min_size=0, max_size=40)


@settings(max_examples=200, deadline=None)
@given(rs=ratios, value=st.floats(min_value=1e-6, max_value=1e9))
def test_range_never_zero_width_and_contains_the_projection(rs: list[float], value: float) -> None:
    rr = ratio_range(rs)
    lo, hi = rr.apply_rate(value)
    assert lo < value < hi
    assert math.log(hi / value) >= MIN_HALF_WIDTH * (1 - 1e-12)
    assert math.log(value / lo) >= MIN_HALF_WIDTH * (1 - 1e-12)
    llo, lhi = rr.apply_latency(value)
    assert llo < value < lhi


def test_identical_residuals_still_give_a_range_and_small_sets_the_prior() -> None:
    assert ratio_range([1.0] * 50).high > 1.0
    assert (ratio_range([1.0, 1.2]).low, ratio_range([1.0, 1.2]).high) == PRIOR


def test_small_sets_are_widened() -> None:
    spread = [0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.4]
    small, large = ratio_range(spread), ratio_range(spread * 20)
    assert small.high > large.high and small.low < large.low


def test_range_covers_most_measured_h200_cells_left_out() -> None:
    rows = leave_one_out(shipped_points(), load_profiles())
    rr = ratio_range([r.ratio for r in rows])
    inside = [rr.low <= r.ratio <= rr.high for r in rows]
    assert sum(inside) >= 0.8 * len(rows)
