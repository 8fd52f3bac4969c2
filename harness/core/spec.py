"""Suite files: a matrix of models x backends x scenarios x options, validated with pydantic.

Example::

    name: quick
    defaults: {size: tiny, timeout_s: 120, stop: {min_duration_s: 1.0, min_queries: 50}}
    matrix:
      - models: [resnet50, bert]
        backends: [torch, {name: onnxruntime, options: {intra_op_threads: 2}}]
        scenarios:
          - {name: offline, sweep: {batch_size: [1, 8]}}
          - single-stream

Every error names the file, the line, the field path and the allowed values; unknown model,
backend and scenario names list what exists.
"""

from __future__ import annotations

import importlib.util
import math
from itertools import product
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from harness.core import plugins
from harness.core.records import CellSpec, cell_id
from harness.core.stop import StopRule
from harness.core.yamlloc import YamlInputError, fmt_loc, line_of, read_yaml
from workloads.registry import get_workload, list_workloads

#: default cap on the cells one suite expands to; a suite may raise it with ``defaults.max_cells``
MAX_CELLS = 1000


class SpecError(ValueError):
    """A suite file problem, located as ``file:line: field: message``."""

    def __init__(self, file: str, line: int | None, field: str, message: str) -> None:
        self.file, self.line, self.field, self.message = file, line, field, message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelRef(_Strict):
    name: str = Field(description="zoo name, 'onnx:PATH' or 'module:pkg.mod:factory'")
    size: str | None = Field(None, description="tiny | standard (zoo models)")
    params: dict[str, Any] = Field(default_factory=dict, description="workload parameters")


class BackendRef(_Strict):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    device: str | None = None


class ScenarioRef(_Strict):
    name: str
    options: dict[str, Any] = Field(default_factory=dict, description="scenario options")
    sweep: dict[str, list[Any]] = Field(
        default_factory=dict, description="option -> values; expands to one cell per value"
    )

    @field_validator("sweep")
    @classmethod
    def _non_empty_sweep(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [k for k, vals in v.items() if not vals]
        if empty:
            raise ValueError(f"sweep of {', '.join(empty)} lists no values (it would expand to no cells)")
        return v


class Defaults(_Strict):
    size: str = "tiny"
    device: str = "cpu"
    timeout_s: float = Field(300.0, gt=0, description="per-cell wall-clock limit")
    seed: int = 0
    parity: bool = True
    stop: dict[str, Any] = Field(default_factory=dict, description="StopRule fields for every cell")
    max_cells: int = Field(
        MAX_CELLS, gt=0, description="refuse a suite expanding to more cells than this (a sweep typed wrong)"
    )
    min_agreement: float | None = Field(
        None,
        gt=0,
        le=1,
        description="variants whose agreement with the fp32 eager reference falls under this are marked invalid",
    )


class MatrixEntry(_Strict):
    models: list[ModelRef | str]
    backends: list[BackendRef | str]
    scenarios: list[ScenarioRef | str]
    variants: list[str] | None = Field(
        None, description="optimisation variants (harness.variants plugins); each expands to its own cells"
    )
    timeout_s: float | None = Field(None, gt=0)

    @field_validator("backends", mode="before")
    @classmethod
    def _yaml_null(cls, v: Any) -> Any:
        # YAML reads a bare ``null`` as None: it names the null backend here
        return ["null" if b is None else b for b in v] if isinstance(v, list) else v

    @field_validator("models", "backends", "scenarios", "variants")
    @classmethod
    def _non_empty(cls, v: list[Any] | None) -> list[Any] | None:
        if v is not None and not v:
            raise ValueError("must list at least one entry")
        return v


class Suite(_Strict):
    name: str
    description: str = ""
    defaults: Defaults = Field(default_factory=Defaults)  # type: ignore[arg-type]
    matrix: list[MatrixEntry]


def _data_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's union-branch markers (``ModelRef``, ``str``) from an error location."""
    return tuple(p for p in loc if not (isinstance(p, str) and (p[:1].isupper() or p in ("str",))))


# ---------------------------------------------------------------- loading
def load_suite(path: str | Path) -> tuple[Suite, list[CellSpec]]:
    """Parse, validate and expand a suite file. Raises :class:`SpecError`."""
    path = Path(path)
    fname = str(path)
    try:
        node, data = read_yaml(path, "suite file")
    except YamlInputError as exc:
        raise SpecError(exc.file, exc.line, exc.field, exc.message) from None
    if not isinstance(data, dict):
        raise SpecError(fname, 1, "", "a suite file must be a mapping with 'name' and 'matrix'")
    bad = _non_finite(data)
    if bad is not None:
        loc, value = bad
        raise SpecError(fname, line_of(node, loc), fmt_loc(loc), f"must be a finite number (got {value})")
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _data_loc(err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            parent = _data_loc(err["loc"])[:-1]
            msg = f"unknown field; allowed: {', '.join(_allowed_fields(data, parent))}"
        raise SpecError(fname, line_of(node, loc), fmt_loc(loc), msg) from None
    cells = expand(suite, fname, node)
    return suite, cells


def _non_finite(
    data: Any, path: tuple[Any, ...] = (), seen: set[int] | None = None
) -> tuple[tuple[Any, ...], float] | None:
    """The location and value of the first NaN or infinite number in ``data`` (YAML ``.nan``,
    ``.inf``): no option, limit or rate of a suite means anything as one. A container reached
    twice (a YAML alias, even a cyclic one) is looked at once."""
    if isinstance(data, float) and not math.isfinite(data):
        return path, data
    seen = set() if seen is None else seen
    if id(data) in seen:
        return None
    seen.add(id(data))
    if isinstance(data, dict):
        items: Any = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return None
    for k, v in items:
        hit = _non_finite(v, (*path, k), seen)
        if hit is not None:
            return hit
    return None


def _allowed_fields(data: dict[str, Any], parent: tuple[Any, ...]) -> list[str]:
    """Field names allowed at ``parent`` (a location in the suite data)."""
    if parent == ():
        model: type[BaseModel] = Suite
    elif parent == ("defaults",):
        model = Defaults
    elif len(parent) == 2 and parent[0] == "matrix":
        model = MatrixEntry
    elif len(parent) == 4 and parent[0] == "matrix":
        refs: dict[str, type[BaseModel]] = {"models": ModelRef, "backends": BackendRef, "scenarios": ScenarioRef}
        model = refs[parent[2]]
    else:
        return []
    return sorted(model.model_fields)


def _norm(item: Any, cls: type[BaseModel]) -> Any:
    return cls(name=item) if isinstance(item, str) else item


def _check_model(m: ModelRef, size: str) -> None:
    """Raise ``ValueError`` unless ``m`` names a zoo model at a known size with known parameters,
    an existing ``onnx:`` file or an importable ``module:`` (checked before any cell runs;
    building a workload object constructs no network and imports no framework)."""
    if not m.name.startswith(("onnx:", "module:")):
        known = list_workloads()
        if m.name not in known:
            raise ValueError(
                f"unknown model {m.name!r}; known models: {', '.join(known)} (or 'onnx:PATH', 'module:pkg.mod:factory')"
            )
    get_workload(m.name, size, **m.params)  # size, params and onnx: paths
    if m.name.startswith("module:"):
        mod_name = m.name[len("module:") :].rpartition(":")[0]
        try:
            found = importlib.util.find_spec(mod_name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ValueError(f"module workload: no importable module {mod_name!r} (is it on PYTHONPATH?)")


def expand(suite: Suite, fname: str = "<suite>", node: yaml.Node | None = None) -> list[CellSpec]:
    """Expand the matrix into cells, validating names and options against the registries.

    A cell that more than one matrix entry produces appears once: cells are told apart by
    :func:`harness.core.records.cell_id`, which covers every option that changes the
    measurement, the stop rule included."""
    d = suite.defaults
    try:
        StopRule.model_validate(d.stop)
    except ValidationError as exc:
        e = exc.errors()[0]
        loc = ("defaults", "stop", *e["loc"])
        raise SpecError(fname, line_of(node, loc), fmt_loc(loc), _pyd_msg(e, StopRule)) from None
    cells: list[CellSpec] = []
    seen: set[str] = set()
    for mi, entry in enumerate(suite.matrix):
        models = [_norm(m, ModelRef) for m in entry.models]
        backends = [_norm(b, BackendRef) for b in entry.backends]
        scenarios = [_norm(s, ScenarioRef) for s in entry.scenarios]
        for i, m in enumerate(models):
            try:
                _check_model(m, m.size or d.size)
            except (ValueError, TypeError) as exc:
                loc = ("matrix", mi, "models", i)
                raise SpecError(fname, line_of(node, loc), fmt_loc(loc), str(exc)) from None
        for i, b in enumerate(backends):
            loc = ("matrix", mi, "backends", i)
            try:
                cls = plugins.load("backend", b.name)
                cls(**b.options)  # validates option names (constructors store only)
            except (plugins.UnknownPlugin, ValueError) as exc:
                raise SpecError(fname, line_of(node, loc), fmt_loc(loc), str(exc).strip("'\"")) from None
        for si, s in enumerate(scenarios):
            loc = ("matrix", mi, "scenarios", si)
            try:
                scls = plugins.load("scenario", s.name)
            except plugins.UnknownPlugin as exc:
                raise SpecError(fname, line_of(node, loc), fmt_loc(loc), str(exc).strip("'\"")) from None
            for opts in _sweep(s):
                merged = {**opts, "stop": {**d.stop, **opts.get("stop", {})}}
                try:
                    scls.parse_options(merged)
                except ValidationError as exc:
                    e = exc.errors()[0]
                    eloc = loc + ("options",) + tuple(e["loc"])
                    raise SpecError(fname, line_of(node, eloc), fmt_loc(eloc), _pyd_msg(e, scls.Options)) from None
        known_variants = plugins.names("variant") if entry.variants else []
        for vi, v in enumerate(entry.variants or []):
            if v not in known_variants:
                loc = ("matrix", mi, "variants", vi)
                msg = f"unknown variant {v!r}; registered variants: {', '.join(known_variants) or '(none)'}"
                raise SpecError(fname, line_of(node, loc), fmt_loc(loc), msg)
        variants: list[str | None] = list(entry.variants) if entry.variants else [None]
        for m, b, s, variant in product(models, backends, scenarios, variants):
            for opts in _sweep(s):
                merged = {**opts, "stop": {**d.stop, **opts.get("stop", {})}}
                cell = CellSpec(
                    model=m.name,
                    size=m.size or d.size,
                    model_params=m.params,
                    backend=b.name,
                    backend_options=b.options,
                    device=b.device or d.device,
                    scenario=s.name,
                    scenario_options=merged,
                    timeout_s=entry.timeout_s or d.timeout_s,
                    seed=d.seed,
                    parity=d.parity,
                    variant=variant,
                    min_agreement=d.min_agreement if variant is not None else None,
                )
                cid = cell_id(cell)
                if cid not in seen:
                    seen.add(cid)
                    cells.append(cell)
                if len(cells) > d.max_cells:
                    loc = ("matrix", mi)
                    raise SpecError(
                        fname,
                        line_of(node, loc),
                        fmt_loc(loc),
                        f"the suite expands to more than {d.max_cells} cells; check the sweeps, split the suite "
                        "or raise defaults.max_cells",
                    )
    if not cells:
        raise SpecError(fname, line_of(node, ("matrix",)), "matrix", "expands to no cells")
    return cells


def _pyd_msg(err: ErrorDetails, model: type[BaseModel]) -> str:
    """The message of a pydantic error; for an unknown field, the allowed ones."""
    if err["type"] == "extra_forbidden":
        return f"unknown option; allowed: {', '.join(sorted(model.model_fields))}"
    return str(err["msg"])


def _sweep(s: ScenarioRef) -> list[dict[str, Any]]:
    if not s.sweep:
        return [dict(s.options)]
    keys = list(s.sweep)
    return [{**s.options, **dict(zip(keys, vals))} for vals in product(*(s.sweep[k] for k in keys))]
