"""``harness profiles``: list, show and validate hardware profiles.

Mounted by the main CLI with ``app.add_typer(profiles_app, name="profiles")``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import typer
import yaml
from rich.console import Console

from harness.cli.render import FORMAT_HELP, Column, Frame, check_format, emit
from harness.core.hardware import (
    HardwareProfile,
    ProfileError,
    default_profiles_dir,
    load_profile,
    load_profiles,
)

profiles_app = typer.Typer(help="Hardware profiles: specs, power and dated prices.", no_args_is_help=True)


def _short_date(text: str) -> str:
    m = re.search(r"\d{4}(?:-\d{4}\b|(?:-\d{2}){0,2})", text)
    return m.group(0) if m else text[:12]


def profiles_frame(profiles: Iterable[HardwareProfile], title: str) -> Frame:
    """One row per profile: kind, vendor, fp16/bf16 peak (TFLOPS), memory (GB), bandwidth
    (GB/s), TDP (W), latest price (USD per device-hour) with its date; ``uncertain`` lists the
    fields marked '?' in the table."""
    f = Frame(
        title,
        [
            Column("id", "id", str),
            Column("kind", "kind", str),
            Column("vendor", "vendor", str),
            Column("peak_fp16_tflops", "fp16 TFLOPS"),
            Column("peak_bf16_tflops", "bf16 TFLOPS"),
            Column("memory_gb", "mem GB"),
            Column("memory_bw_gbps", "bw GB/s"),
            Column("tdp_w", "TDP W"),
            Column("usd_per_hour", "$/h"),
            Column("price_date", "price date", lambda v: v or "-"),
            Column("uncertain", "uncertain", lambda v: ", ".join(v) or "-", in_table=False),
        ],
    )
    for p in profiles:
        price = p.latest_price()
        marks = sorted({*p.uncertain, *p.estimated})
        if price is not None and price.uncertain:
            marks.append("price")
        numbers = {
            "peak_fp16_tflops": ("peak_tflops.fp16", p.peak("fp16")),
            "peak_bf16_tflops": ("peak_tflops.bf16", p.peak("bf16")),
            "memory_gb": ("memory_gb", p.memory_gb),
            "memory_bw_gbps": ("memory_bw_gbps", p.memory_bw_gbps),
            "tdp_w": ("tdp_w", p.tdp_w),
            "usd_per_hour": ("price", None if price is None else price.usd_per_device_hour),
        }
        texts = {k: f"{v:g}" + ("?" if path in marks else "") for k, (path, v) in numbers.items() if v is not None}
        f.add(
            {
                "id": p.id,
                "kind": p.kind,
                "vendor": p.vendor,
                "peak_fp16_tflops": p.peak("fp16"),
                "peak_bf16_tflops": p.peak("bf16"),
                "memory_gb": p.memory_gb,
                "memory_bw_gbps": p.memory_bw_gbps,
                "tdp_w": p.tdp_w,
                "usd_per_hour": None if price is None else price.usd_per_device_hour,
                "price_date": None if price is None else _short_date(price.date),
                "uncertain": marks,
            },
            texts=texts,
        )
    f.notes.append(
        "uncertain: values the source gives as uncertain or a rule estimated (`harness profiles show ID` gives the sources)"
    )
    return f


@profiles_app.command("list")
def list_profiles(
    directory: Path | None = typer.Option(None, "--dir", help="profile directory (default: shipped)"),
    kind: str | None = typer.Option(None, help="only this kind: cpu, gpu, tpu, fpga, asic"),
    fmt: str = typer.Option("table", "--format", "-f", help=FORMAT_HELP),
) -> None:
    """Table of profiles; the last column names values the source gives as uncertain or a rule estimated."""
    if (bad := check_format(fmt)) is not None:
        Console(stderr=True).print(f"[red]error:[/] {bad}")
        raise typer.Exit(2)
    try:
        profiles = load_profiles(directory)
    except ProfileError as exc:
        Console(stderr=True).print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    chosen = [p for p in sorted(profiles.values(), key=lambda p: (p.kind, p.id)) if not kind or p.kind == kind]
    emit(profiles_frame(chosen, f"hardware profiles ({directory or default_profiles_dir()})"), fmt, Console())


@profiles_app.command("show")
def show(
    profile_id: str = typer.Argument(..., help="profile id"),
    directory: Path | None = typer.Option(None, "--dir", help="profile directory (default: shipped)"),
) -> None:
    """Every field of one profile, as YAML."""
    profiles = load_profiles(directory)
    if profile_id not in profiles:
        Console(stderr=True, soft_wrap=True).print(
            f"[red]error:[/] unknown hardware profile {profile_id!r}; known: {', '.join(sorted(profiles))}",
            markup=True,
            highlight=False,
        )
        raise typer.Exit(2)  # bad input (docs/architecture.md, exit codes)
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
