"""Hardware profiles: shipped files validate, errors name file/line/field, host matching, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli.profiles import profiles_app
from harness.core.hardware import (
    KINDS,
    ProfileError,
    apply_overrides,
    apply_overrides_file,
    default_profiles_dir,
    get_profile,
    load_profile,
    load_profiles,
)
from harness.core.host_match import GpuInfo, HostInfo, match_host


def test_all_shipped_profiles_validate_and_cover_every_kind() -> None:
    profiles = load_profiles()
    assert len(profiles) >= 24
    assert {p.kind for p in profiles.values()} == set(KINDS)
    for p in profiles.values():
        assert p.sources, p.id
        for price in p.prices:
            assert price.date and price.source


def test_csv_uncertainty_and_absence_carried_over() -> None:
    g3 = get_profile("aws-graviton3")
    assert g3.is_uncertain("peak_tflops.fp32") and g3.tdp_w is None  # '?' and n/a in the CSV
    t4 = get_profile("nvidia-t4")
    assert t4.peak("fp16") == 65 and t4.peak("bf16") is None and not t4.uncertain
    assert t4.latest_price() is not None and t4.latest_price().uncertain


def test_unknown_id_lists_known() -> None:
    with pytest.raises(KeyError, match="nvidia-t4"):
        get_profile("no-such-device")


BAD = """\
id: bad-one
kind: gpu
vendor: X
model: Y
peak_tflops:
  fp16: 10
tdp_w: -5
"""


def test_malformed_profile_error_names_file_line_field(tmp_path: Path) -> None:
    f = tmp_path / "gpu" / "bad-one.yaml"
    f.parent.mkdir()
    f.write_text(BAD)
    with pytest.raises(ProfileError) as e:
        load_profile(f)
    msg = str(e.value)
    assert f"{f}:7" in msg and "tdp_w" in msg and "greater than 0" in msg


def test_bad_kind_and_unknown_field(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text(BAD.replace("kind: gpu", "kind: npu").replace("tdp_w: -5", "tdp: 5"))
    with pytest.raises(ProfileError) as e:
        load_profile(f)
    msg = str(e.value)
    assert f"{f}:2" in msg and "'kind'" in msg and "'cpu'" in msg and "npu" in msg
    assert f"{f}:7" in msg and "'tdp'" in msg and "allowed fields" in msg


def test_uncertain_must_name_a_set_field(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text(BAD.replace("tdp_w: -5", "uncertain: [memory_gb]"))
    with pytest.raises(ProfileError, match="memory_gb"):
        load_profile(f)


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text("id: a\nkind: [gpu\n")
    with pytest.raises(ProfileError, match=r"x.yaml:\d+: YAML syntax error"):
        load_profile(f)


def test_duplicate_ids_rejected(tmp_path: Path) -> None:
    good = BAD.replace("tdp_w: -5", "tdp_w: 5")
    (tmp_path / "a.yaml").write_text(good)
    (tmp_path / "b.yaml").write_text(good)
    with pytest.raises(ProfileError, match="duplicate id"):
        load_profiles(tmp_path)


def host(cpu: str, gpus: list[GpuInfo] | None = None) -> HostInfo:
    return HostInfo(
        cpu_model=cpu,
        machine="x86_64",
        system="Linux",
        logical_cores=8,
        physical_cores=4,
        memory_bytes=16 * 10**9,
        gpus=gpus or [],
    )


def test_match_host_by_model_string() -> None:
    profiles = load_profiles()
    assert match_host(host("Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz"), profiles).id == "intel-xeon-8480p"
    assert match_host(host("AMD EPYC 9654 96-Core Processor"), profiles).id == "amd-epyc-9654"
    h = host("x", [GpuInfo(index=0, name="NVIDIA H100 80GB HBM3"), GpuInfo(index=1, name="NVIDIA H100 PCIe")])
    assert match_host(h, profiles, "cuda:0").id == "nvidia-h100-sxm"
    assert match_host(h, profiles, "cuda:1").id == "nvidia-h100-pcie"
    with pytest.raises(LookupError, match="not found"):
        match_host(h, profiles, "cuda:7")


def test_unmatched_host_gets_local_profile_with_estimates_labelled() -> None:
    p = match_host(host("Some Unknown CPU 3000"), load_profiles())
    assert p.id.startswith("local-") and p.kind == "cpu"
    assert p.tdp_w == 28.0 and p.idle_w == pytest.approx(8.4)  # 7 W x 4 physical cores, 30 %
    assert set(p.estimated) == {"tdp_w", "idle_w"} and "7 W" in p.notes
    # price: 8 hardware threads x the median USD per thread-hour of the shipped CPU profiles
    (price,) = p.prices
    assert price.uncertain and price.provider == "estimate" and price.source.startswith("estimate:")
    per_thread = sorted(
        q.prices[-1].usd_per_device_hour / q.threads
        for q in load_profiles().values()
        if q.kind == "cpu" and q.prices and q.threads
    )
    assert per_thread[0] * 8 <= price.usd_per_device_hour <= per_thread[-1] * 8


def test_overrides_replace_estimates(tmp_path: Path) -> None:
    p = match_host(host("Some Unknown CPU 3000"), load_profiles())
    q = apply_overrides(p, tdp_w=65, usd_per_hour=0.12, price_date="2025-01")
    assert q.tdp_w == 65 and "tdp_w" not in q.estimated and "idle_w" in q.estimated
    price = q.latest_price()
    assert price is not None and price.pricing_model == "user" and price.usd_per_device_hour == 0.12
    f = tmp_path / "o.yaml"
    f.write_text(f"profile: {p.id}\nidle_w: 5\n")
    assert apply_overrides_file(p, f).idle_w == 5
    f.write_text("profile: other\nidle_w: 5\n")
    with pytest.raises(ProfileError, match="field 'profile'"):
        apply_overrides_file(p, f)
    with pytest.raises(ProfileError, match="idle_w"):
        apply_overrides(p, idle_w=1000)


def test_cli_list_show_validate(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(profiles_app, ["list"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "nvidia-h100-sxm" in res.output and "google-tpu-v4" in res.output
    res = runner.invoke(profiles_app, ["show", "google-tpu-v4"])
    assert res.exit_code == 0 and "idle_w: 90" in res.output
    assert runner.invoke(profiles_app, ["show", "nope"]).exit_code == 2  # bad input
    res = runner.invoke(profiles_app, ["validate"])
    assert res.exit_code == 0 and str(default_profiles_dir()) in res.output.replace("\n", "")
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    res = runner.invoke(profiles_app, ["validate", str(bad)])
    assert res.exit_code == 1 and "tdp_w" in res.output


def test_host_detection_reads_the_cpu_model_and_matches_a_profile(tmp_path: Path) -> None:
    from harness.measure.host import cpu_model, detect_host

    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654 96-Core Processor\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 108.00\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n")
    assert cpu_model(x86) == "AMD EPYC 9654 96-Core Processor"
    assert cpu_model(arm) == "Raspberry Pi 5 Model B Rev 1.0"
    assert cpu_model(tmp_path / "missing") != ""  # falls back to the platform module
    host = detect_host(x86)
    assert host.cpu_model == "AMD EPYC 9654 96-Core Processor" and host.logical_cores >= 1
    assert host.gpu_detection  # "nvml", or why NVML could not be used
    assert match_host(host, load_profiles()).id == "amd-epyc-9654"


def test_host_profile_rejects_unknown_overrides() -> None:
    from harness.measure.host import host_profile

    assert host_profile({"tdp_w": 123.0}).tdp_w == 123.0
    with pytest.raises(ValueError, match="allowed: tdp_w, idle_w, usd_per_hour"):
        host_profile({"tdp": 1.0})
