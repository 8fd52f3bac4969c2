"""Accuracy comparisons of a variant against its reference (pure functions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.measure.accuracy import Accuracy, kl_divergence, output_errors, token_agreement, top1_agreement


def test_top1_agreement_counts_equal_argmax_rows():
    ref = np.array([[0.0, 1.0], [2.0, 1.0], [0.0, 3.0], [5.0, 0.0]])
    out = np.array([[0.0, 2.0], [0.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert top1_agreement(out, ref) == 0.75
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        top1_agreement(out[:, :1].ravel(), ref[:, :1].ravel())


def test_kl_is_zero_for_equal_logits_and_matches_the_closed_form():
    ref = np.array([[0.0, 0.0]])  # p = (1/2, 1/2)
    out = np.array([[math.log(3.0), 0.0]])  # q = (3/4, 1/4)
    want = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert kl_divergence(out, ref) == pytest.approx(want)
    assert kl_divergence(ref, ref) == pytest.approx(0.0, abs=1e-12)
    # shift invariance of softmax: adding a constant changes nothing
    assert kl_divergence(out + 7.0, ref) == pytest.approx(want)


def test_output_errors_and_non_finite_outputs():
    ref = [np.array([1.0, -2.0, 4.0])]
    out = [np.array([1.5, -2.0, 3.0])]
    e = output_errors(out, ref)
    assert e["max_abs_err"] == pytest.approx(1.0)
    assert e["mean_abs_err"] == pytest.approx(0.5)
    assert e["max_rel_err"] == pytest.approx(0.5)
    bad = output_errors([np.array([np.nan, -2.0, 4.0])], ref)
    assert all(math.isnan(v) for v in bad.values())
    with pytest.raises(ValueError, match="shape"):
        output_errors([np.zeros(2)], ref)


def test_token_agreement_by_position_and_missing_tokens():
    assert token_agreement([[1, 2, 3], [4, 5]], [[1, 9, 3], [4, 5]]) == pytest.approx(4 / 5)
    assert token_agreement([[1]], [[1, 2]]) == 0.5
    with pytest.raises(ValueError):
        token_agreement([], [])


def test_agreement_is_the_lowest_measured_and_metrics_are_measured():
    acc = Accuracy(errors={"max_abs_err": 0.1, "mean_abs_err": 0.01, "max_rel_err": 0.2})
    assert acc.agreement is None
    acc.top1_agreement, acc.token_agreement = 0.97, 0.9
    assert acc.agreement == 0.9
    m = acc.metrics()
    assert {"top1_agreement", "token_agreement", "max_abs_err"} <= set(m)
    assert all(v.kind == "measured" for v in m.values())
