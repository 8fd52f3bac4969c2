"""Entry-point registry for backends, scenarios and meters.

Built-ins are registered through the same entry points third parties use
(``harness.backends``, ``harness.scenarios``, ``harness.meters``). An unknown name answers with the list of
registered ones.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

GROUPS = {
    "backend": "harness.backends",
    "scenario": "harness.scenarios",
    "meter": "harness.meters",
    "variant": "harness.variants",
}


class UnknownPlugin(LookupError):
    """A plugin name that is neither registered nor importable; the message lists the known ones."""


@cache
def _entry_points(kind: str) -> dict[str, EntryPoint]:
    group = GROUPS[kind]
    return {ep.name: ep for ep in entry_points(group=group)}


def names(kind: str) -> list[str]:
    """Registered plugin names of ``kind`` (``backend``, ``scenario``, ``meter``)."""
    return sorted(_entry_points(kind))


def load(kind: str, name: str) -> Any:
    """The plugin class registered as ``name``, or named by import path ``pkg.mod:Class``;
    raises :class:`UnknownPlugin` listing the registered names."""
    if ":" in name:
        mod, _, attr = name.partition(":")
        try:
            return getattr(importlib.import_module(mod), attr)
        except Exception as exc:  # ImportError, AttributeError, or the module's own error (SyntaxError...)
            raise UnknownPlugin(f"cannot import {kind} {name!r}: {type(exc).__name__}: {exc}") from exc
    eps = _entry_points(kind)
    if name not in eps:
        known = ", ".join(sorted(eps)) or "(none registered: is the package installed?)"
        raise UnknownPlugin(f"unknown {kind} {name!r}; registered {kind}s: {known}")
    return eps[name].load()


def backend_status() -> list[tuple[str, bool, str]]:
    """(name, available, reason) for every registered backend, without loading models."""
    out = []
    for n in names("backend"):
        try:
            cls = load("backend", n)
            ok, why = cls.available()
        except Exception as exc:  # a broken plugin is reported, not hidden
            ok, why = False, f"failed to import: {exc}"
        out.append((n, ok, why))
    return out
