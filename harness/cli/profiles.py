"""``harness profiles``: list, show and validate hardware profiles.

Mounted by the main CLI with ``app.add_typer(profiles_app, name="profiles")``.
"""

from __future__ import annotations

import re
from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.table import Table

from harness.core.hardware import (
    HardwareProfile,
    ProfileError,
    default_profiles_dir,
    load_profile,
    load_profiles,
)

profiles_app = typer.Typer(help="Hardware profiles: specs, power and dated prices.", no_args_is_help=True)


def _fmt(profile: HardwareProfile, field: str, value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:g}{unit}"
    return text + "?" if profile.is_uncertain(field) or field in profile.estimated else text


def _short_date(text: str) -> str:
    m = re.search(r"\d{4}(?:-\d{4}\b|(?:-\d{2}){0,2})", text)
    return m.group(0) if m else text[:12]


def _peak16(p: HardwareProfile) -> str:
    parts = []
    for dt in ("fp16", "bf16"):
        v = p.peak(dt)
        if v is not None:
            parts.append(f"{dt} {_fmt(p, f'peak_tflops.{dt}', v)}")
    return ", ".join(parts) or "-"


@profiles_app.command("list")
def list_profiles(
    directory: Path | None = typer.Option(None, "--dir", help="profile directory (default: shipped)"),
    kind: str | None = typer.Option(None, help="only this kind: cpu, gpu, tpu, fpga, asic"),
) -> None:
    """Table of profiles; '?' marks values the source gives as uncertain or a rule estimated."""
    try:
        profiles = load_profiles(directory)
    except ProfileError as exc:
        Console(stderr=True).print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    table = Table(title=f"hardware profiles ({directory or default_profiles_dir()})")
    table.add_column("id", no_wrap=True)
    for col in ("kind", "vendor", "fp16/bf16 TFLOPS", "mem GB", "bw GB/s", "TDP W"):
        table.add_column(col)
    table.add_column("$/h (date)", no_wrap=True)
    for p in sorted(profiles.values(), key=lambda p: (p.kind, p.id)):
        if kind and p.kind != kind:
            continue
        price = p.latest_price()
        usd = (
            "-"
            if price is None
            else f"{price.usd_per_device_hour:g}{'?' if price.uncertain else ''} ({_short_date(price.date)})"
        )
        table.add_row(
            p.id,
            p.kind,
            p.vendor,
            _peak16(p),
            _fmt(p, "memory_gb", p.memory_gb),
            _fmt(p, "memory_bw_gbps", p.memory_bw_gbps),
            _fmt(p, "tdp_w", p.tdp_w),
            usd,
        )
    Console().print(table)


@profiles_app.command("show")
def show(
    profile_id: str = typer.Argument(..., help="profile id"),
    directory: Path | None = typer.Option(None, "--dir", help="profile directory (default: shipped)"),
) -> None:
    """Every field of one profile, as YAML."""
    profiles = load_profiles(directory)
    if profile_id not in profiles:
        Console(stderr=True).print(
            f"[red]unknown hardware profile {profile_id!r}; known: {', '.join(sorted(profiles))}[/red]"
        )
        raise typer.Exit(1)
    data = profiles[profile_id].model_dump(exclude_none=True, exclude_defaults=False)
    Console().print(yaml.safe_dump(data, sort_keys=False, width=100), markup=False, highlight=False)


@profiles_app.command("validate")
def validate(path: Path | None = typer.Argument(None, help="a profile file or directory (default: shipped)")) -> None:
    """Validate profiles; exit code 1 with the error (file:line, field, problem) on failure."""
    target = path or default_profiles_dir()
    try:
        ids = [load_profile(target).id] if target.is_file() else list(load_profiles(target))
    except ProfileError as exc:
        Console(stderr=True).print(str(exc), markup=False, highlight=False)
        raise typer.Exit(1) from None
    Console().print(f"ok: {len(ids)} profile(s) valid in {target}")
