"""Meter contract: watch the machine over exactly the measurement window.

A meter is a context manager: ``__enter__`` marks the window start, ``__exit__`` its end,
and ``collect()`` returns :class:`Reading` objects. Power and performance always come from
the same window (MLPerf Power rule). A meter that breaks raises; it is never dropped silently.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

Provenance = str  # "measured:<how>" | "estimated:<how>" | "projected:<how>" | "reference:<src>"


def provenance_kind(provenance: str) -> Literal["measured", "estimated", "projected", "reference"]:
    """The kind part of a provenance label (``measured:rapl`` -> ``measured``)."""
    kind = provenance.split(":", 1)[0]
    if kind not in ("measured", "estimated", "projected", "reference"):
        raise ValueError(f"unknown provenance {provenance!r}")
    return kind  # type: ignore[return-value]


class Reading(BaseModel):
    """One value a meter observed (or estimated) over the window.

    ``quantity`` names what is read (``energy``, ``power``, ``memory_peak``, ...);
    ``value`` is in ``unit`` (``J``, ``W``, ``B``); ``provenance`` says how it was obtained;
    ``scope`` what it covers (``package-0``, ``gpu:0``, ``process-tree``); ``period_s`` the
    sampling period where sampling was used; ``valid`` false with ``note`` when the reading
    cannot be trusted (e.g. a window shorter than the counter's update period).
    """

    model_config = ConfigDict(frozen=True)

    quantity: str
    value: float
    unit: str
    provenance: Provenance
    scope: str = "host"
    period_s: float | None = None
    window_s: float | None = None
    valid: bool = True
    note: str = ""
    extra: dict[str, Any] = Field(default_factory=dict)


class Meter(ABC):
    """Context manager over the measurement window."""

    name: ClassVar[str]

    @classmethod
    def available(cls) -> tuple[bool, str]:
        return True, ""

    @abstractmethod
    def __enter__(self) -> Meter: ...

    @abstractmethod
    def __exit__(self, *exc: object) -> None: ...

    @abstractmethod
    def collect(self) -> list[Reading]:
        """Readings for the last completed window."""
