"""Hardware profiles: specs, power envelope and dated prices of a device, loaded from YAML.

A profile lives in ``hardware_profiles/<kind>/<id>.yaml``. Units are in the field names:
peak compute is dense TFLOPS (TOPS for ``int8``) per device, ``memory_gb`` is GB (10^9 B),
``memory_bw_gbps`` GB/s, ``tdp_w``/``idle_w`` watts, prices USD per device-hour.

Uncertainty is explicit and kept apart from the values: ``uncertain`` lists the field paths
whose value the source itself marks as unsure (``peak_tflops.fp32``, ``tdp_w``, ...) and
``estimated`` lists the fields derived by a rule rather than taken from a source (a ``local``
profile's TDP, for instance). Each :class:`Price` carries its own ``uncertain`` flag. A value
that a source does not give is absent (``None``), never zero.

Public API: :class:`HardwareProfile`, :func:`load_profile`, :func:`load_profiles`,
:func:`get_profile`, :func:`apply_overrides`, :func:`load_overrides`. Matching a detected host
to a profile is in :mod:`harness.core.host_match`. Detecting the host (``/proc/cpuinfo``, psutil,
NVML) is measurement, in :mod:`harness.measure.host`; everything here is pure.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.core.yamlloc import YamlInputError, fmt_loc, line_of, read_yaml

Kind = Literal["cpu", "gpu", "tpu", "fpga", "asic"]
KINDS: tuple[str, ...] = ("cpu", "gpu", "tpu", "fpga", "asic")
PricingModel = Literal["on-demand", "capacity-block", "committed-use", "spot", "user", "estimated"]
DTYPES: tuple[str, ...] = ("fp32", "tf32", "fp16", "bf16", "int8", "fp8", "fp4")


class ProfileError(ValueError):
    """A profile file is malformed; the message names the file, line, field and problem."""


class PeakCompute(BaseModel):
    """Dense peak per device: TFLOPS for floating point dtypes, TOPS for ``int8``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fp32: float | None = Field(default=None, ge=0, description="dense FP32 TFLOPS")
    tf32: float | None = Field(default=None, ge=0, description="dense TF32 tensor TFLOPS")
    fp16: float | None = Field(default=None, ge=0, description="dense FP16 TFLOPS")
    bf16: float | None = Field(default=None, ge=0, description="dense BF16 TFLOPS")
    int8: float | None = Field(default=None, ge=0, description="dense INT8 TOPS")
    fp8: float | None = Field(default=None, ge=0, description="dense FP8 TFLOPS")
    fp4: float | None = Field(default=None, ge=0, description="dense FP4 TFLOPS")


class Price(BaseModel):
    """A dated price for one device-hour, with where it came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    instance: str = ""
    usd_per_device_hour: float = Field(gt=0)
    pricing_model: PricingModel = "on-demand"
    date: str = Field(min_length=1, description="when the price was listed (free text, e.g. 2024-12)")
    source: str = Field(min_length=1, description="URL or 'user override' / 'estimate: <rule>'")
    uncertain: bool = False
    note: str = ""
    includes_host: bool = Field(
        default=True,
        description="an instance price per device (host CPU, memory and network included); false for a "
        "device-only price such as a GPU attached to a separately billed VM",
    )


class HardwareProfile(BaseModel):
    """Specs of one device (per chip / per socket), frozen once loaded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    kind: Kind
    vendor: str
    model: str
    aliases: list[str] = Field(default_factory=list, description="strings the host reports for this device")
    pci_ids: list[str] = Field(
        default_factory=list,
        description="PCI vendor:device ids of this device, lowercase hex as lspci prints them (10de:2335)",
    )
    peak_tflops: PeakCompute = Field(default_factory=PeakCompute)
    memory_gb: float | None = Field(default=None, gt=0)
    memory_bw_gbps: float | None = Field(default=None, gt=0)
    onchip_mb: float | None = Field(default=None, gt=0, description="last-level on-chip cache/SRAM (L2, LLC), MB")
    interconnect: str = Field(default="", description="device-to-device link (NVLink 4, PCIe 4 x16, ICI ...)")
    interconnect_gbps: float | None = Field(default=None, gt=0, description="per-device link bandwidth, GB/s one way")
    interconnect_latency_us: float | None = Field(default=None, gt=0, description="per-collective latency, us")
    tdp_w: float | None = Field(default=None, gt=0)
    idle_w: float | None = Field(default=None, ge=0)
    cores: int | None = Field(default=None, gt=0, description="physical cores (CPUs)")
    threads: int | None = Field(default=None, gt=0, description="logical cores / hardware threads (CPUs)")
    prices: list[Price] = Field(default_factory=list)
    supported_backends: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    notes: str = ""
    uncertain: list[str] = Field(default_factory=list, description="field paths the source marks as unsure")
    estimated: list[str] = Field(default_factory=list, description="field paths derived by a rule")

    @model_validator(mode="after")
    def _check(self) -> HardwareProfile:
        for pci in self.pci_ids:
            if not re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{4}", pci):
                raise ValueError(f"pci_ids entry {pci!r} is not a lowercase 'vendor:device' hex pair like '10de:2335'")
        for listname in ("uncertain", "estimated"):
            for path in getattr(self, listname):
                if _get_path(self, path) is None:
                    raise ValueError(f"{listname} lists {path!r}, which is not a set field of this profile")
        if self.tdp_w is not None and self.idle_w is not None and self.idle_w > self.tdp_w:
            raise ValueError(f"idle_w ({self.idle_w}) exceeds tdp_w ({self.tdp_w})")
        return self

    def peak(self, dtype: str) -> float | None:
        """Dense peak for ``dtype`` (TFLOPS, or TOPS for int8); ``None`` where not given."""
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; allowed: {', '.join(DTYPES)}")
        value: float | None = getattr(self.peak_tflops, dtype)
        return value

    def is_uncertain(self, path: str) -> bool:
        return path in self.uncertain

    def latest_price(self) -> Price | None:
        """The first non-spot price in ``prices`` (list order is preference); ``None`` if none."""
        usable = [p for p in self.prices if p.pricing_model != "spot"]
        return usable[0] if usable else None


def _get_path(profile: HardwareProfile, path: str) -> Any:
    obj: Any = profile
    for part in path.split("."):
        m = re.fullmatch(r"(\w+)\[(\d+)\]", part)
        if m:
            seq = getattr(obj, m.group(1), None)
            idx = int(m.group(2))
            obj = seq[idx] if seq is not None and idx < len(seq) else None
        else:
            obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


# --------------------------------------------------------------------------- loading


def default_profiles_dir() -> Path:
    """``$HARNESS_PROFILES_DIR`` if set, else ``hardware_profiles/`` next to the package."""
    env = os.environ.get("HARNESS_PROFILES_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "hardware_profiles"


def _format_validation(path: Path, root: Any, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        field = fmt_loc(loc)
        n = line_of(root, loc)
        line = f":{n}" if n is not None else ""
        problem = e["msg"]
        if e["type"] == "literal_error":
            problem += f" (got {e.get('input')!r})"
        elif e["type"] == "extra_forbidden":
            allowed = _allowed_fields(loc[:-1])
            problem = f"unknown field; allowed fields: {', '.join(allowed)}"
        lines.append(f"{path}{line}: field '{field or '(profile)'}': {problem}")
    return "invalid hardware profile:\n  " + "\n  ".join(lines)


def _allowed_fields(parent: tuple[Any, ...]) -> list[str]:
    model: Any = HardwareProfile
    for p in parent:
        if isinstance(p, int):
            continue
        f = model.model_fields.get(p)
        ann = getattr(f, "annotation", None)
        if ann is PeakCompute or p == "peak_tflops":
            model = PeakCompute
        elif p == "prices":
            model = Price
        else:
            return []
    return list(model.model_fields)


def load_profile(path: str | Path) -> HardwareProfile:
    """Load and validate one YAML profile; raise :class:`ProfileError` naming file:line and field."""

    path = Path(path)
    try:
        root, data = read_yaml(path, "hardware profile")
    except YamlInputError as exc:
        raise ProfileError(str(exc)) from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}:1: a hardware profile must be a mapping, got {type(data).__name__}")
    try:
        profile = HardwareProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(_format_validation(path, root, exc)) from None
    expected_kind_dir = path.parent.name
    if expected_kind_dir in KINDS and expected_kind_dir != profile.kind:
        raise ProfileError(f"{path}: field 'kind': {profile.kind!r} does not match its directory {expected_kind_dir!r}")
    return profile


def profile_files(directory: str | Path) -> list[Path]:
    """All ``*.yaml``/``*.yml`` files below ``directory``, sorted."""
    d = Path(directory)
    return sorted([*d.rglob("*.yaml"), *d.rglob("*.yml")])


def load_profiles(directory: str | Path | None = None) -> dict[str, HardwareProfile]:
    """All profiles below ``directory`` (default :func:`default_profiles_dir`), keyed by id.

    Raises :class:`ProfileError` on the first malformed file or on a duplicate id.
    """
    d = Path(directory) if directory is not None else default_profiles_dir()
    if not d.is_dir():
        raise ProfileError(f"{d}: hardware profile directory does not exist")
    out: dict[str, HardwareProfile] = {}
    where: dict[str, Path] = {}
    for f in profile_files(d):
        p = load_profile(f)
        if p.id in out:
            raise ProfileError(f"{f}: field 'id': duplicate id {p.id!r} (also in {where[p.id]})")
        out[p.id] = p
        where[p.id] = f
    return out


def get_profile(profile_id: str, directory: str | Path | None = None) -> HardwareProfile:
    """The profile with ``profile_id``; an unknown id raises ``KeyError`` listing the known ids."""
    profiles = load_profiles(directory)
    if profile_id not in profiles:
        raise KeyError(f"unknown hardware profile {profile_id!r}; known: {', '.join(sorted(profiles))}")
    return profiles[profile_id]


# --------------------------------------------------------------------------- host matching


# --------------------------------------------------------------------------- overrides


class Overrides(BaseModel):
    """User overrides for a profile (YAML keys of the same names)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: str | None = Field(default=None, description="profile id these overrides apply to (optional)")
    tdp_w: float | None = Field(default=None, gt=0)
    idle_w: float | None = Field(default=None, ge=0)
    usd_per_hour: float | None = Field(default=None, gt=0)
    price_date: str | None = None
    price_source: str | None = None


def apply_overrides(
    profile: HardwareProfile,
    *,
    tdp_w: float | None = None,
    idle_w: float | None = None,
    usd_per_hour: float | None = None,
    price_date: str | None = None,
    price_source: str | None = None,
) -> HardwareProfile:
    """A copy of ``profile`` with user-supplied power and price (validated again).

    An overridden field leaves ``uncertain``/``estimated``; a user price becomes the first price
    with ``pricing_model='user'`` and today's date unless ``price_date`` is given.
    """
    data = profile.model_dump()
    changed: list[str] = []
    if tdp_w is not None:
        data["tdp_w"] = tdp_w
        changed.append("tdp_w")
    if idle_w is not None:
        data["idle_w"] = idle_w
        changed.append("idle_w")
    if usd_per_hour is not None:
        price = {
            "provider": "user",
            "instance": "override",
            "usd_per_device_hour": usd_per_hour,
            "pricing_model": "user",
            "date": price_date or date.today().isoformat(),
            "source": price_source or "user override",
        }
        data["prices"] = [price, *data["prices"]]
        changed.append("prices")
    if not changed:
        return profile
    for listname in ("uncertain", "estimated"):
        data[listname] = [f for f in data[listname] if f.split(".")[0].split("[")[0] not in changed]
    data["notes"] = (data["notes"] + f" | overridden by user: {', '.join(changed)}").strip(" |")
    try:
        return HardwareProfile.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        loc = ".".join(str(x) for x in e["loc"])
        raise ProfileError(
            f"invalid overrides for profile {profile.id!r}: {loc}: {e['msg']} (got {e.get('input')!r})"
        ) from None


def load_overrides(path: str | Path) -> Overrides:
    """Read an overrides YAML file (keys: profile, tdp_w, idle_w, usd_per_hour, price_date, price_source)."""

    path = Path(path)
    try:
        root, data = read_yaml(path, "overrides file")
    except YamlInputError as exc:
        raise ProfileError(str(exc)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(f"{path}:1: an overrides file must be a mapping, got {type(data).__name__}")
    try:
        return Overrides.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(
            _format_validation(path, root, exc).replace("invalid hardware profile", "invalid overrides")
        ) from None


def apply_overrides_file(profile: HardwareProfile, path: str | Path) -> HardwareProfile:
    """Apply the overrides in ``path`` (its ``profile`` key, if set, must equal ``profile.id``)."""
    o = load_overrides(path)
    if o.profile is not None and o.profile != profile.id:
        raise ProfileError(f"{path}: field 'profile': overrides are for {o.profile!r}, not {profile.id!r}")
    return apply_overrides(
        profile,
        tdp_w=o.tdp_w,
        idle_w=o.idle_w,
        usd_per_hour=o.usd_per_hour,
        price_date=o.price_date,
        price_source=o.price_source,
    )
