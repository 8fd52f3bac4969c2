"""Meters: RAPL on a fake sysfs tree, NVML through a fake API, TDP model, external, memory."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.measure.meters.base import Reading
from harness.measure.meters.external import ExternalMeter
from harness.measure.meters.memory import MemoryMeter
from harness.measure.meters.nvml import NvmlMeter, PynvmlApi, cuda_to_nvml_index
from harness.measure.meters.rapl import RaplMeter, counter_delta_uj, discover_zones
from harness.measure.meters.select import energy_summary, select_meters
from harness.measure.meters.tdp_model import TdpModelMeter


class FakeClock:
    """perf_counter_ns stand-in the test moves by hand."""

    def __init__(self) -> None:
        self.t = 0

    def __call__(self) -> int:
        return self.t


def by(readings: list[Reading], quantity: str, scope: str | None = None) -> Reading:
    hits = [r for r in readings if r.quantity == quantity and (scope is None or r.scope == scope)]
    assert len(hits) == 1, hits
    return hits[0]


# --------------------------------------------------------------------------- RAPL


def make_rapl(root: Path, pkg_uj: int, dram_uj: int, max_uj: int = 1_000_000) -> None:
    pkg = root / "intel-rapl:0"
    dram = pkg / "intel-rapl:0:1"
    core = pkg / "intel-rapl:0:0"
    for d, name, val in ((pkg, "package-0", pkg_uj), (dram, "dram", dram_uj), (core, "core", 5)):
        d.mkdir(parents=True, exist_ok=True)
        (d / "name").write_text(name + "\n")
        (d / "energy_uj").write_text(f"{val}\n")
        (d / "max_energy_range_uj").write_text(f"{max_uj}\n")


def set_uj(root: Path, pkg_uj: int, dram_uj: int) -> None:
    (root / "intel-rapl:0" / "energy_uj").write_text(f"{pkg_uj}\n")
    (root / "intel-rapl:0" / "intel-rapl:0:1" / "energy_uj").write_text(f"{dram_uj}\n")


def test_rapl_zones_skip_core_subzone(tmp_path: Path) -> None:
    make_rapl(tmp_path, 0, 0)
    assert [z.scope for z in discover_zones(tmp_path)] == ["package-0", "dram-0"]


def test_rapl_energy_with_wraparound(tmp_path: Path) -> None:
    make_rapl(tmp_path, pkg_uj=900_000, dram_uj=100_000, max_uj=1_000_000)
    clock = FakeClock()
    meter = RaplMeter(tmp_path, poll_s=3600, clock=clock)
    with meter:
        set_uj(tmp_path, pkg_uj=200_000, dram_uj=400_000)  # package wrapped
        clock.t = 2_000_000_000
    rs = meter.collect()
    pkg, dram = by(rs, "energy", "package-0"), by(rs, "energy", "dram-0")
    assert pkg.value == pytest.approx(0.3)  # 100_000 to the wrap + 200_000 after
    assert pkg.extra["wraps"] == 1
    assert dram.value == pytest.approx(0.3)
    assert by(rs, "power", "package-0").value == pytest.approx(0.15)
    assert all(r.provenance == "measured:rapl" and r.valid for r in rs)
    assert energy_summary(rs)["energy_j"] == pytest.approx(0.6)


def test_counter_delta() -> None:
    assert counter_delta_uj(10, 30, 100) == 20
    assert counter_delta_uj(90, 5, 100) == 15


def test_rapl_unreadable_is_unavailable_with_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, why = RaplMeter.available(tmp_path / "absent")
    assert not ok and "does not exist" in why
    make_rapl(tmp_path, 1, 1)
    assert RaplMeter.available(tmp_path) == (True, "")

    def denied(self: object) -> int:  # what a non-root user sees on most kernels since 2020
        raise PermissionError(13, "Permission denied", str(tmp_path / "intel-rapl:0" / "energy_uj"))

    monkeypatch.setattr("harness.measure.meters.rapl.RaplZone.read_uj", denied)
    ok, why = RaplMeter.available(tmp_path)
    assert not ok and "permission" in why and "energy_uj" in why


# --------------------------------------------------------------------------- NVML


class FakeNvml:
    """NvmlApi double: energy counter values are served in order, power is constant."""

    def __init__(self, energy_mj: list[int] | None, power_mw: int = 100_000, mem: list[int] | None = None) -> None:
        self.energy = list(energy_mj) if energy_mj is not None else None
        self.power = power_mw
        self.mem = list(mem or [1000])
        self.inits = self.shutdowns = 0

    def init(self) -> None:
        self.inits += 1

    def shutdown(self) -> None:
        self.shutdowns += 1

    def device_count(self) -> int:
        return 2

    def energy_mj(self, index: int) -> int | None:
        if self.energy is None:
            return None
        return self.energy.pop(0)

    def power_mw(self, index: int) -> int:
        return self.power

    def memory_used_bytes(self, index: int) -> int:
        return self.mem.pop(0) if len(self.mem) > 1 else self.mem[0]


def test_nvml_energy_counter_difference() -> None:
    api, clock = FakeNvml([10_000, 16_000], mem=[1000, 5000, 2000]), FakeClock()
    meter = NvmlMeter([1], api=api, period_s=3600, clock=clock)
    with meter:
        clock.t = 3_000_000_000
    rs = meter.collect()
    e = by(rs, "energy", "gpu:1")
    assert (e.value, e.unit, e.provenance, e.valid) == (6.0, "J", "measured:nvml-energy", True)
    assert by(rs, "power", "gpu:1").value == pytest.approx(2.0)
    assert by(rs, "device_memory_peak", "gpu:1").value == 5000
    assert api.inits == api.shutdowns == 1


def test_nvml_short_window_is_invalid_not_zero() -> None:
    api, clock = FakeNvml([10_000, 10_000]), FakeClock()
    meter = NvmlMeter([0], api=api, period_s=3600, clock=clock)
    with meter:
        clock.t = 50_000_000  # 50 ms
    e = by(meter.collect(), "energy")
    assert not e.valid and "shorter than the counter update period" in e.note
    assert energy_summary(meter.collect())["valid"] is False


def test_nvml_power_sample_path_integrates_samples() -> None:
    api = FakeNvml(None, power_mw=150_000)
    meter = NvmlMeter([0], api=api, period_s=0.01, min_window_s=0.0)
    with meter:
        time.sleep(0.12)
    rs = meter.collect()
    e, p = by(rs, "energy"), by(rs, "power")
    assert e.provenance == "measured:nvml-power-samples" and e.period_s == 0.01
    assert e.extra["n_samples"] >= 2
    assert p.value == pytest.approx(150.0)  # constant power integrates to itself
    assert e.value == pytest.approx(150.0 * e.window_s)


def test_nvml_rejects_out_of_range_index() -> None:
    with pytest.raises(ValueError, match="out of range"):
        with NvmlMeter([5], api=FakeNvml([0, 0])):
            pass


def test_cuda_visible_devices_mapping() -> None:
    assert cuda_to_nvml_index("cuda:1", "3,5") == 5
    assert cuda_to_nvml_index("cuda", "") == 0
    with pytest.raises(ValueError):
        cuda_to_nvml_index("cuda:2", "3,5")


def test_real_nvml_when_present() -> None:
    ok, why = NvmlMeter.available()
    if not ok:
        pytest.skip(f"no NVML on this host: {why}")
    meter = NvmlMeter([0], api=PynvmlApi(), min_window_s=0.1)
    with meter:
        time.sleep(0.5)
    e = by(meter.collect(), "energy", "gpu:0")
    assert e.valid and e.value > 0 and e.provenance.startswith("measured:nvml")


def test_real_rapl_when_present() -> None:
    ok, why = RaplMeter.available()
    if not ok:
        pytest.skip(f"no readable RAPL on this host: {why}")
    meter = RaplMeter()
    with meter:
        sum(i * i for i in range(200_000))
    rs = meter.collect()
    assert all(r.provenance == "measured:rapl" for r in rs)
    assert by(rs, "energy", "package-0").value > 0


# --------------------------------------------------------------------------- TDP model


def _window(meter: TdpModelMeter, busy: bool) -> float:
    with meter:
        end = time.perf_counter() + 0.25
        if busy:
            while time.perf_counter() < end:
                pass
        else:
            time.sleep(0.25)
    return by(meter.collect(), "power").value


def test_tdp_model_between_idle_and_tdp_and_grows_with_load() -> None:
    meter = TdpModelMeter(tdp_w=100.0, idle_w=20.0, logical_cores=1, profile_id="test")
    idle_w = _window(meter, busy=False)
    busy_w = _window(meter, busy=True)
    assert 20.0 <= idle_w <= 100.0 and 20.0 <= busy_w <= 100.0
    assert busy_w > idle_w
    rs = meter.collect()
    assert by(rs, "power").provenance == "estimated:tdp-model"
    assert by(rs, "power").extra["profile_id"] == "test" and "idle_w +" in by(rs, "power").extra["formula"]
    assert by(rs, "energy").value == pytest.approx(busy_w * by(rs, "energy").window_s)


def test_tdp_model_rejects_idle_above_tdp() -> None:
    with pytest.raises(ValueError):
        TdpModelMeter(tdp_w=10, idle_w=20, logical_cores=1)


# --------------------------------------------------------------------------- external


def test_external_csv_integrates_over_window(tmp_path: Path) -> None:
    csv = tmp_path / "power.csv"
    csv.write_text("timestamp_s,watts\n" + "".join(f"{t},{10 * t}\n" for t in range(0, 11)))
    times = iter([2.0, 6.0])
    meter = ExternalMeter(csv_path=csv, clock=lambda: next(times))
    with meter:
        pass
    rs = meter.collect()
    e = by(rs, "energy")
    assert e.value == pytest.approx(160.0)  # integral of 10 t dt from 2 to 6
    assert by(rs, "power").value == pytest.approx(40.0)
    assert e.provenance == "measured:external" and e.valid


def test_external_csv_not_covering_window_is_invalid(tmp_path: Path) -> None:
    csv = tmp_path / "power.csv"
    csv.write_text("timestamp_s,watts\n0,5\n1,5\n")
    times = iter([0.5, 3.0])
    meter = ExternalMeter(csv_path=csv, clock=lambda: next(times))
    with meter:
        pass
    e = by(meter.collect(), "energy")
    assert not e.valid and "does not cover" in e.note


def test_external_csv_bad_row_names_line(tmp_path: Path) -> None:
    csv = tmp_path / "power.csv"
    csv.write_text("timestamp_s,watts\n0,5\n1,abc\n")
    times = iter([0.0, 1.0])
    meter = ExternalMeter(csv_path=csv, clock=lambda: next(times))
    with meter:
        pass
    with pytest.raises(ValueError, match=r"power.csv:3"):
        meter.collect()


def test_external_command_samples(tmp_path: Path) -> None:
    meter = ExternalMeter(command="echo 42.5 W", period_s=0.05)
    with meter:
        time.sleep(0.12)
    p = by(meter.collect(), "power")
    assert p.value == pytest.approx(42.5) and p.period_s == 0.05


def test_broken_external_command_fails_loudly() -> None:
    meter = ExternalMeter(command="echo no-number", period_s=0.05)
    with pytest.raises(ValueError, match="printed no number"):
        with meter:
            pass


# --------------------------------------------------------------------------- memory + selection


def test_memory_peak_sees_allocation() -> None:
    meter = MemoryMeter(period_s=0.01)
    with meter:
        block = bytearray(64 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])
        time.sleep(0.05)
    r = by(meter.collect(), "memory_peak")
    del block
    assert r.provenance == "measured:psutil-rss" and r.unit == "B" and r.period_s == 0.01
    assert r.value >= 64 * 1024 * 1024


def test_default_memory_meter_reads_the_high_water_mark_without_a_thread() -> None:
    import threading

    before = threading.active_count()
    meter = MemoryMeter()
    with meter:
        assert threading.active_count() == before  # nothing runs beside the workload
        block = bytearray(96 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])
        del block  # freed before the window closes: only a high-water mark can see it
    r = by(meter.collect(), "memory_peak")
    assert r.provenance == "measured:vmhwm" and r.period_s is None and "high-water" in r.note
    assert r.value >= 96 * 1024 * 1024


def test_select_falls_back_to_tdp_model_and_records_why(tmp_path: Path) -> None:
    from harness.core.hardware import HardwareProfile

    prof = HardwareProfile(id="x", kind="cpu", vendor="v", model="m", tdp_w=50, idle_w=10, threads=2)
    sel = select_meters(prof, ["cpu"], rapl_root=str(tmp_path / "none"))
    assert [type(m).__name__ for m in sel.meters] == ["TdpModelMeter", "MemoryMeter"]
    assert sel.choices[0].chosen == "tdp-model" and "rapl" in sel.choices[0].skipped
    make_rapl(tmp_path, 0, 0)
    sel = select_meters(prof, ["cpu"], rapl_root=str(tmp_path))
    assert isinstance(sel.meters[0], RaplMeter)


def test_select_uses_nvml_for_cuda() -> None:
    from harness.core.hardware import HardwareProfile

    prof = HardwareProfile(id="x", kind="cpu", vendor="v", model="m", tdp_w=50)
    sel = select_meters(prof, ["cuda:1"], nvml_api=FakeNvml([0, 0]))
    assert isinstance(sel.meters[0], NvmlMeter) and sel.meters[0].indices == [1]
    with pytest.raises(ValueError, match="allowed"):
        select_meters(prof, ["tpu:0"])


def test_energy_summary_never_mixes_estimated_into_measured() -> None:
    rs = [
        Reading(
            quantity="energy", value=10.0, unit="J", provenance="measured:nvml-energy", scope="gpu:0", window_s=2.0
        ),
        Reading(quantity="energy", value=4.0, unit="J", provenance="estimated:tdp-model", scope="cpu", window_s=2.0),
        Reading(quantity="power", value=5.0, unit="W", provenance="measured:nvml-energy", scope="gpu:0", window_s=2.0),
    ]
    s = energy_summary(rs)
    assert s["energy_j"] == 14.0 and s["power_w"] == 7.0
    assert s["provenance"] == "estimated:nvml-energy+tdp-model"
    assert energy_summary(rs[:1])["provenance"] == "measured:nvml-energy"
    assert energy_summary([])["energy_j"] is None
