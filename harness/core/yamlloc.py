"""Locate a validation error in the YAML it came from: ``file:line: field`` messages.

Shared by suite files (:mod:`harness.core.spec`) and hardware profiles (:mod:`harness.core.hardware`).
"""

from __future__ import annotations

from typing import Any

import yaml


def line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest YAML node along ``loc`` (a pydantic error location): the
    line of a mapping key that is found, or of the innermost existing parent."""
    if root is None:
        return None
    cur: Any = root
    line = root.start_mark.line + 1
    for key in loc:
        if isinstance(cur, yaml.MappingNode):
            hit = next(((k, v) for k, v in cur.value if getattr(k, "value", None) == key), None)
            if hit is None:
                break
            line, cur = hit[0].start_mark.line + 1, hit[1]
        elif isinstance(cur, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(cur.value):
            cur = cur.value[key]
            line = cur.start_mark.line + 1
        else:
            break
    return line


def fmt_loc(loc: tuple[Any, ...]) -> str:
    """``("matrix", 0, "backends")`` -> ``matrix[0].backends``."""
    s = ""
    for part in loc:
        s += f"[{part}]" if isinstance(part, int) else (f".{part}" if s else str(part))
    return s
