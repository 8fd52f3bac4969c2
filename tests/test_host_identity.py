"""Whole-host identity: GPUs detected through NVML (a fake at the pynvml seam), matched to profiles,
recorded with the run, and each cell priced with the device it ran on."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pynvml
import pytest

from harness.core import economics as ec
from harness.core.hardware import HardwareProfile, Price, load_profiles
from harness.core.host_match import (
    CostBasis,
    GpuInfo,
    HostInfo,
    cost_basis,
    match_gpu,
    match_host,
    recorded_profile_id,
)
from harness.core.metrics import Metric, Reading
from harness.measure.cell_economics import attach_energy_and_cost
from harness.measure.host import cell_cost_basis, detect_gpus, host_profile, host_record
from harness.measure.worker import execute_cell
from tests.tests_support import fast_cell

H200_PCI = 0x2335_10DE  # NVML's pciDeviceId: device id << 16 | vendor id (NVIDIA 0x10de)


def fake_nvml(monkeypatch: pytest.MonkeyPatch, gpus: list[tuple[str, int, int]]) -> None:
    """Replace the pynvml calls :func:`detect_gpus` makes: ``gpus`` is (name, memory bytes, pciDeviceId)."""
    calls = SimpleNamespace(init=0, shutdown=0)

    def init() -> None:
        calls.init += 1

    def shutdown() -> None:
        calls.shutdown += 1

    monkeypatch.setattr(pynvml, "nvmlInit", init)
    monkeypatch.setattr(pynvml, "nvmlShutdown", shutdown)
    monkeypatch.setattr(pynvml, "nvmlSystemGetDriverVersion", lambda: "580.159.04")
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: len(gpus))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda i: i)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetName", lambda h: gpus[h][0])
    monkeypatch.setattr(pynvml, "nvmlDeviceGetMemoryInfo", lambda h: SimpleNamespace(total=gpus[h][1]))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetPciInfo", lambda h: SimpleNamespace(pciDeviceId=gpus[h][2]))


TWO_H200 = [("NVIDIA H200", 150_754_820_096, H200_PCI), ("NVIDIA H200", 150_754_820_096, H200_PCI)]


def test_fake_nvml_two_h200_are_detected_and_recorded_with_their_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml(monkeypatch, TWO_H200)
    gpus, how = detect_gpus()
    assert how == "nvml" and [g.index for g in gpus] == [0, 1]
    assert gpus[0].pci_id == "10de:2335" and gpus[0].memory_bytes == 150_754_820_096
    cpu = host_profile()
    rec = host_record(cpu)
    assert rec["cpu_profile_id"] == cpu.id and rec["detection"] == "nvml"
    accs = rec["accelerators"]
    assert [(a["device"], a["profile_id"], a["name"]) for a in accs] == [
        ("cuda:0", "nvidia-h200-sxm", "NVIDIA H200"),
        ("cuda:1", "nvidia-h200-sxm", "NVIDIA H200"),
    ]
    assert accs[1]["memory_bytes"] == 150_754_820_096


def test_gpu_cell_is_priced_with_the_h200_not_the_cpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The bug of the issue: a GPU cell's $/1M used the host CPU's price."""
    fake_nvml(monkeypatch, TWO_H200)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    cpu = host_profile()
    cell = execute_cell(fast_cell(device="cuda:1"), tmp_path, cpu, meters=[])
    assert cell.status == "ok", cell.error
    assert cell.profile_id == "nvidia-h200-sxm"  # the record names the accelerator it was priced with
    h200 = load_profiles()["nvidia-h200-sxm"]
    price = ec.choose_price(h200)
    assert price is not None
    thr = cell.metric("throughput")
    usd = cell.metrics["usd_per_1m_inferences"]
    assert thr is not None and usd.value is not None
    # the H200's price includes its host (an instance price / 8 GPUs): nothing is added to it
    assert price.price.includes_host
    assert usd.value == pytest.approx(price.usd_per_hour / (thr * 3600) * 1e6)
    assert "nvidia-h200-sxm" in usd.method and "host CPU included" in usd.method
    cpu_price = ec.choose_price(cpu)
    assert cpu_price is not None and usd.value != pytest.approx(cpu_price.usd_per_hour / (thr * 3600) * 1e6)


def test_cpu_cell_on_the_gpu_host_is_priced_with_the_cpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_nvml(monkeypatch, TWO_H200)
    cpu = host_profile()
    cell = execute_cell(fast_cell(device="cpu"), tmp_path, cpu, meters=[])
    assert cell.status == "ok", cell.error
    assert cell.profile_id == cpu.id
    price = ec.choose_price(cpu)
    thr = cell.metric("throughput")
    usd = cell.metrics["usd_per_1m_inferences"].value
    assert price is not None and thr is not None and usd is not None
    assert usd == pytest.approx(price.usd_per_hour / (thr * 3600) * 1e6)


def test_unmatched_gpu_keeps_its_name_and_has_no_price(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_nvml(monkeypatch, [("NVIDIA Hypothetical X9", 10**11, 0xFFFF_10DE)])
    cpu = host_profile()
    (acc,) = host_record(cpu)["accelerators"]
    assert acc["profile_id"] is None and acc["name"] == "NVIDIA Hypothetical X9" and "no shipped" in acc["note"]
    basis = cell_cost_basis("cuda:0", cpu)
    assert basis.profile.model == "NVIDIA Hypothetical X9" and not basis.profile.prices
    cell = execute_cell(fast_cell(device="cuda:0"), tmp_path, cpu, meters=[])
    assert cell.status == "ok", cell.error
    assert cell.profile_id is not None and cell.profile_id.startswith("unmatched-gpu-")
    usd = cell.metrics["usd_per_1m_inferences"]
    assert usd.value is None and "no price" in usd.method


def test_without_nvml_a_cuda_cell_is_not_priced_as_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)

    monkeypatch.setattr(pynvml, "nvmlInit", broken)
    basis = cell_cost_basis("cuda", host_profile())
    assert basis.profile.kind == "gpu" and not basis.profile.prices and "not identified" in basis.profile.model


def host(gpus: list[GpuInfo]) -> HostInfo:
    return HostInfo(
        cpu_model="Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz",
        machine="x86_64",
        system="Linux",
        logical_cores=224,
        physical_cores=112,
        memory_bytes=2 * 10**12,
        gpus=gpus,
    )


@pytest.mark.parametrize(
    ("name", "pci", "expected"),
    [
        ("NVIDIA H200", "10de:2335", "nvidia-h200-sxm"),
        ("NVIDIA H200", None, "nvidia-h200-sxm"),
        ("NVIDIA H100 80GB HBM3", None, "nvidia-h100-sxm"),
        ("NVIDIA H100 PCIe", None, "nvidia-h100-pcie"),
        ("NVIDIA A100-SXM4-80GB", None, "nvidia-a100-80gb-sxm"),
        ("NVIDIA A100-SXM4-40GB", None, "nvidia-a100-40gb-sxm"),
        ("Tesla T4", None, "nvidia-t4"),
        ("NVIDIA L4", None, "nvidia-l4"),
        ("NVIDIA L40S", None, "nvidia-l40s"),
        ("NVIDIA A10G", None, "nvidia-a10g"),
        ("NVIDIA B200", None, "nvidia-b200"),
        ("some renamed board", "10de:2330", "nvidia-h100-sxm"),
        ("NVIDIA H200 NVL", None, None),  # a different board, not the SXM part
    ],
)
def test_nvml_names_and_pci_ids_match_profiles(name: str, pci: str | None, expected: str | None) -> None:
    p = match_gpu(GpuInfo(index=0, name=name, pci_id=pci), load_profiles())
    assert (p.id if p else None) == expected


def test_every_gpu_profile_is_reachable_by_its_aliases() -> None:
    profiles = load_profiles()
    for p in profiles.values():
        if p.kind != "gpu":
            continue
        assert p.aliases, f"{p.id} has no aliases"
        for alias in p.aliases:
            got = match_gpu(GpuInfo(index=0, name=alias), profiles)
            assert got is not None and got.id == p.id, (p.id, alias)
        for pci in p.pci_ids:
            got = match_gpu(GpuInfo(index=0, name="?", pci_id=pci), profiles)
            assert got is not None and got.id == p.id, (p.id, pci)


def test_host_share_rule_for_a_device_only_price() -> None:
    """A device-only accelerator price carries 1/N of the host CPU's price; stated in the method."""
    profiles = dict(load_profiles())
    cpu = profiles["intel-xeon-8480p"]
    card = HardwareProfile(
        id="card",
        kind="gpu",
        vendor="v",
        model="Card X",
        aliases=["Card X"],
        prices=[Price(provider="cloud", usd_per_device_hour=1.0, date="2025-01", source="s", includes_host=False)],
    )
    profiles["card"] = card
    h = host([GpuInfo(index=i, name="Card X") for i in range(4)])
    basis = cost_basis(h, profiles, cpu, "cuda:2")
    assert basis.profile.id == "card" and basis.host_share == pytest.approx(0.25)
    cpu_price = ec.choose_price(cpu)
    got = ec.basis_price(basis)
    assert cpu_price is not None and got is not None
    assert got.usd_per_hour == pytest.approx(1.0 + cpu_price.usd_per_hour / 4)
    assert "host CPU share" in got.description and "/ 4 accelerator" in got.description
    # a CPU cell of the same host is the CPU alone
    cpu_basis = cost_basis(h, profiles, cpu, "cpu")
    cpu_only = ec.basis_price(cpu_basis)
    assert cpu_only is not None and cpu_only.usd_per_hour == cpu_price.usd_per_hour


def test_power_is_the_accelerator_counter_plus_the_host_cpu_share() -> None:
    profiles = load_profiles()
    cpu = profiles["intel-xeon-8480p"]
    h200 = profiles["nvidia-h200-sxm"]
    basis = CostBasis(device="cuda:0", profile=h200, host_cpu=cpu, host_share=0.5, share_rule="host CPU / 2")

    def energy(scope: str, j: float, prov: str) -> Reading:
        return Reading(quantity="energy", value=j, unit="J", provenance=prov, scope=scope, window_s=2.0)

    readings = [energy("gpu:0", 1000.0, "measured:nvml-energy"), energy("package-0", 200.0, "measured:rapl")]
    out = attach_energy_and_cost({"throughput": Metric(value=100.0, unit="samples/s")}, readings, cpu, basis)
    assert out["energy_j"].value == pytest.approx(1100.0)  # 1000 + 0.5 x 200
    assert out["power_w"].value == pytest.approx(550.0)
    assert out["power_w"].provenance == "measured:nvml-energy+rapl"
    assert "host CPU share 0.5" in out["power_w"].method
    # a CPU cell counts the whole CPU
    cpu_out = attach_energy_and_cost(
        {"throughput": Metric(value=100.0, unit="samples/s")},
        readings[1:],
        cpu,
        cost_basis(host([]), profiles, cpu, "cpu"),
    )
    assert cpu_out["energy_j"].value == pytest.approx(200.0)


def test_match_host_no_longer_raises_for_an_unknown_gpu() -> None:
    h = host([GpuInfo(index=0, name="Mystery GPU", memory_bytes=8 * 10**9)])
    p = match_host(h, load_profiles(), "cuda:0")
    assert p.id.startswith("unmatched-gpu-") and p.memory_gb == 8.0 and not p.prices
    with pytest.raises(LookupError, match="not found"):
        match_host(h, load_profiles(), "cuda:3")


def test_an_nvml_error_mid_query_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml(monkeypatch, TWO_H200)

    def lost(h: int) -> str:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)

    monkeypatch.setattr(pynvml, "nvmlDeviceGetName", lost)
    gpus, how = detect_gpus()
    assert gpus == [] and how.startswith("NVML query failed")


MEASURED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "measured"


def test_cells_recorded_before_per_device_pricing_map_to_their_gpu() -> None:
    profiles = load_profiles()
    env = {"gpus": [{"index": 0, "name": "NVIDIA H200", "memory_bytes": 150_754_820_096}]}
    assert recorded_profile_id(env, "cuda", "local-xeon", profiles) == "nvidia-h200-sxm"
    assert recorded_profile_id(env, "cuda:0", "intel-xeon-8480p", profiles) == "nvidia-h200-sxm"
    assert recorded_profile_id(env, "cpu", "local-xeon", profiles) == "local-xeon"
    assert recorded_profile_id(env, "cuda:1", "local-xeon", profiles) == "local-xeon"  # no such GPU recorded
    assert recorded_profile_id(env, "cuda", "nvidia-h100-sxm", profiles) == "nvidia-h100-sxm"  # already a GPU
    new = {"host": {"accelerators": [{"index": 0, "profile_id": "nvidia-l4"}]}, "gpus": env["gpus"]}
    assert recorded_profile_id(new, "cuda:0", "local-xeon", profiles) == "nvidia-l4"


@pytest.mark.skipif(not MEASURED.is_dir(), reason="the reference records are not beside this checkout")
def test_shipped_h200_records_map_their_gpu_cells_to_the_h200() -> None:
    from harness.store.results import load_run

    profiles = load_profiles()
    for f in sorted(MEASURED.glob("*.run.json")):
        run = load_run(f)
        for c in run.cells:
            got = recorded_profile_id(run.environment, c.spec.device, c.profile_id, profiles)
            assert got == ("nvidia-h200-sxm" if c.spec.device.startswith("cuda") else c.profile_id), (f.name, c.cell_id)


@pytest.mark.skipif(not MEASURED.is_dir(), reason="the reference records are not beside this checkout")
def test_recommender_counts_the_shipped_h200_measurements_as_the_h200(tmp_path: Path) -> None:
    """The issue's symptom: the host CPU's profile was ranked from the H200's measurements."""
    from harness.planning.recommend import SLO, Load, ModelSpec, RecommendRequest, recommend

    run_dir = tmp_path / "h200-torch-eager"
    run_dir.mkdir()
    (run_dir / "run.json").write_text((MEASURED / "h200-torch-eager-2026-11-30.run.json").read_text())
    req = RecommendRequest(model=ModelSpec(name="bert"), scenario="online", slo=SLO(p99_ms=50), load=Load(qps=2000))
    rec = recommend(req, results_root=tmp_path)
    ranked = {r.profile_id: r for r in rec.rows}
    assert "local-xeon" not in ranked and "local-xeon" not in {e.profile_id for e in rec.excluded}
    assert ranked["nvidia-h200-sxm"].provenance in ("measured", "mixed")
