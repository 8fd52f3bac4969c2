"""Read YAML strictly and locate a validation error in it: ``file:line: field`` messages.

Shared by suite files (:mod:`harness.core.spec`) and hardware profiles (:mod:`harness.core.hardware`).
:func:`read_yaml` refuses what PyYAML would accept silently: a key given twice in one mapping
(the last would win, so a different matrix would run than the one written) and a file that is
not UTF-8 text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class YamlInputError(ValueError):
    """A YAML file that cannot be read as intended; ``line`` is 1-based or None, ``field`` the
    key path (may be empty) and ``message`` the problem."""

    def __init__(self, file: str, line: int | None, field: str, message: str) -> None:
        self.file, self.line, self.field, self.message = file, line, field, message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


def _duplicate_key(
    node: yaml.Node, path: tuple[Any, ...] = (), seen_nodes: set[int] | None = None
) -> tuple[tuple[Any, ...], int, int] | None:
    """The first key given twice in one mapping below ``node``: (key path, line, first line).
    A node reached twice (a YAML alias) is checked once."""
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if id(node) in seen_nodes:
        return None
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for k, v in node.value:
            key = getattr(k, "value", None)
            if isinstance(k, yaml.ScalarNode) and key != "<<":
                if key in seen:
                    return (*path, key), k.start_mark.line + 1, seen[key]
                seen[key] = k.start_mark.line + 1
            hit = _duplicate_key(v, (*path, key), seen_nodes)
            if hit:
                return hit
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            hit = _duplicate_key(v, (*path, i), seen_nodes)
            if hit:
                return hit
    return None


def parse_yaml(text: str, file: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for :func:`line_of`) and the data of YAML ``text`` from ``file``.

    Raises :class:`YamlInputError` for a syntax error (with its line) and for a key that appears
    twice in one mapping (naming the key, its line and the line of the first occurrence)."""
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlInputError(file, mark.line + 1 if mark else None, "", f"YAML syntax error: {problem}") from None
    except RecursionError:
        raise YamlInputError(file, None, "", "invalid YAML: nested too deeply") from None
    dup = _duplicate_key(node) if node is not None else None
    if dup is not None:
        path, line, first = dup
        raise YamlInputError(file, line, fmt_loc(path), f"duplicate key (first given on line {first}); remove one")
    return node, data


def read_yaml(path: str | Path, what: str = "YAML file") -> tuple[yaml.Node | None, Any]:
    """:func:`parse_yaml` of the file at ``path``; an unreadable or non-UTF-8 file raises
    :class:`YamlInputError` naming ``what`` it should have been."""
    fname = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise YamlInputError(fname, None, "", f"cannot read {what}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlInputError(fname, line, "", f"not UTF-8 text (byte {exc.start}); expected a {what}") from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise YamlInputError(fname, line, "", f"binary data (a NUL byte); expected a {what}")
    return parse_yaml(text, fname)


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
