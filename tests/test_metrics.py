"""Provenance kinds and how derived values combine them."""

from __future__ import annotations

from harness.core.metrics import combine_provenance, provenance_kind


def test_configured_setting_is_its_own_kind_and_yields_to_measurements() -> None:
    assert provenance_kind("configured:target") == "configured"
    assert combine_provenance(["configured:target", "measured"]) == "measured:target"
    assert combine_provenance(["configured:target", "estimated:tdp-model"]).startswith("estimated")
