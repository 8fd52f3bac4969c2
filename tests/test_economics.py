"""Economics: formulas, unit consistency and provenance rules (Hypothesis properties)."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from harness.core import economics as ec
from harness.core.hardware import HardwareProfile, Price, apply_overrides

pos = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)
price = st.floats(min_value=0.01, max_value=200.0)


def profile(usd: float | None = 2.0) -> HardwareProfile:
    prices = [Price(provider="cloud", instance="i", usd_per_device_hour=usd, date="2025-01", source="s")] if usd else []
    return HardwareProfile(id="dev", kind="gpu", vendor="v", model="m", tdp_w=300, prices=prices)


def test_worked_example() -> None:
    # $3.60/h at 1000 inferences/s: 3.6e6 inferences per hour -> $1 per 1M
    m = ec.usd_per_1m_inferences(3.6, 1000.0, "estimated:list-price")
    assert m.value == pytest.approx(1.0) and m.unit == "USD" and m.provenance == "estimated:list-price"
    assert ec.joules_per_inference(200.0, 100.0).value == pytest.approx(2.0)
    assert ec.inferences_per_kwh(200.0, 100.0).value == pytest.approx(1.8e6)
    assert ec.devices_needed(300, 100) == 3 and ec.devices_needed(301, 100) == 4 and ec.devices_needed(0, 5) == 0
    assert ec.monthly_cost_usd(3, 2.0, "estimated:list-price").value == pytest.approx(4380.0)
    assert ec.energy_cost_usd(3.6e6, 0.10, pue=1.5).value == pytest.approx(0.15)
    assert ec.co2_grams(3.6e6, 400.0).value == pytest.approx(400.0)
    assert ec.power_kw(8, 700.0).value == pytest.approx(5.6)


@given(price, pos, st.floats(min_value=1.01, max_value=100.0))
def test_cost_scales_inversely_with_throughput(usd: float, tp: float, k: float) -> None:
    a = ec.usd_per_1m_inferences(usd, tp, "estimated:list-price").value
    b = ec.usd_per_1m_inferences(usd, tp * k, "estimated:list-price").value
    assert a is not None and b is not None
    assert b < a and a / b == pytest.approx(k, rel=1e-9)


@given(price, pos, st.floats(min_value=0, max_value=1e7), st.floats(min_value=0, max_value=1e7))
@example(1.0, 2.0, 5e-324, 0.0)  # a target so small that target / throughput underflows to 0
def test_monthly_cost_monotone_in_target(usd: float, tp: float, t1: float, t2: float) -> None:
    lo, hi = sorted((t1, t2))
    n_lo, n_hi = ec.devices_needed(lo, tp), ec.devices_needed(hi, tp)
    assert n_lo <= n_hi
    assert n_hi * tp >= hi * (1 - 1e-9)  # enough devices for the target
    assert (
        ec.monthly_cost_usd(n_lo, usd, "estimated:list-price").value
        <= ec.monthly_cost_usd(n_hi, usd, "estimated:list-price").value
    )


@given(pos, pos)
def test_units_consistent(power_w: float, tp: float) -> None:
    j = ec.joules_per_inference(power_w, tp).value
    assert j is not None and j * tp == pytest.approx(power_w)  # J/inference * inferences/s == W
    per_kwh = ec.inferences_per_kwh(power_w, tp).value
    assert per_kwh is not None and per_kwh * j == pytest.approx(ec.J_PER_KWH)  # inferences/kWh * J/inference == J/kWh


@given(pos, pos, st.floats(min_value=0.01, max_value=1.0), st.floats(min_value=1.0, max_value=3.0))
def test_energy_cost_consistent_with_kwh(power_w: float, tp: float, usd_kwh: float, pue: float) -> None:
    per_1m = ec.energy_cost_usd(power_w / tp * 1e6, usd_kwh, pue).value
    kwh_per_1m = 1e6 / ec.inferences_per_kwh(power_w, tp).value
    assert per_1m == pytest.approx(kwh_per_1m * usd_kwh * pue)


def test_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError, match="throughput_per_s"):
        ec.usd_per_1m_inferences(1.0, 0.0, "estimated:list-price")
    with pytest.raises(ValueError, match="pue"):
        ec.energy_cost_usd(1.0, 0.1, pue=0.9)


def test_cell_economics_provenance() -> None:
    out = ec.cell_economics(
        1000.0,
        250.0,
        "measured:nvml-energy",
        profile(3.6),
        energy_usd_per_kwh=0.1,
        grid_g_per_kwh=300.0,
        tokens_per_s=5000.0,
    )
    assert out["energy_per_inference_j"].value == pytest.approx(0.25)
    assert out["energy_per_inference_j"].provenance == "measured:nvml-energy"
    assert out["usd_per_1m_inferences"].value == pytest.approx(1.0)
    assert out["usd_per_1m_inferences"].provenance == "estimated:list-price"
    assert "2025-01" in out["usd_per_1m_inferences"].method
    assert out["usd_per_1m_tokens"].value == pytest.approx(0.2)
    assert out["energy_usd_per_1m_inferences"].provenance == "estimated:nvml-energy+tariff"
    assert out["co2_g_per_1m_inferences"].value == pytest.approx(0.25e6 / 3.6e6 * 300)

    est = ec.cell_economics(1000.0, 250.0, "estimated:tdp-model", profile(None))
    assert est["energy_per_inference_j"].provenance == "estimated:tdp-model"
    assert est["usd_per_1m_inferences"].value is None and "no price" in est["usd_per_1m_inferences"].method

    none = ec.cell_economics(1000.0, None, None, profile())
    assert none["energy_per_inference_j"].value is None and none["usd_per_1m_inferences"].value is not None


def test_user_price_labelled() -> None:
    p = apply_overrides(profile(None), usd_per_hour=1.0)
    assert ec.price_of(p)[1] == "estimated:user-price"
    assert math.isclose(ec.cell_economics(10.0, None, None, p)["usd_per_1m_inferences"].value, 1e6 / 36000)


def test_device_memory_sources_are_kept_apart() -> None:
    """The allocator's peak (this process) and NVML's device-wide 'used' are different
    quantities: each gets its own metric, the headline is the allocator's, nothing is added."""
    from harness.core.metrics import Reading
    from harness.measure.cell_economics import attach_energy_and_cost

    def reading(value: float, prov: str) -> Reading:
        return Reading(quantity="device_memory_peak", value=value, unit="B", provenance=prov, scope="cuda:0")

    out = attach_energy_and_cost(
        {}, [reading(2e9, "measured:torch-cuda-allocator"), reading(9e9, "measured:nvml-memory")], None
    )
    assert out["device_memory_allocator_peak_bytes"].value == 2e9
    assert out["device_memory_used_bytes"].value == 9e9
    assert out["device_memory_bytes"].value == 2e9
    only_nvml = attach_energy_and_cost({}, [reading(9e9, "measured:nvml-memory")], None)
    assert only_nvml["device_memory_bytes"].value == 9e9 and "whole device" not in only_nvml["device_memory_bytes"].unit
