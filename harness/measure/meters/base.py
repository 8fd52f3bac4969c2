"""Meter contract: watch the machine over exactly the measurement window.

A meter is a context manager: ``__enter__`` marks the window start, ``__exit__`` its end,
and ``collect()`` returns :class:`Reading` objects. Power and performance always come from
the same window (MLPerf Power rule). A meter that breaks raises; it is never dropped silently.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from harness.core.metrics import Provenance, Reading, provenance_kind

__all__ = ["Meter", "Provenance", "Reading", "provenance_kind"]


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
