"""What an interleaved A/B measurement is given: its options, its variants, and the closed-loop
plan (batch size, stop rule, headline percentile) of a cell."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.core import plugins
from harness.core.records import CLOSED_LOOP_SCENARIOS, CellSpec
from harness.core.stop import StopRule

POOL = 8  # distinct staged batches, reused cyclically (as the closed-loop scenarios do)
ENERGY_NOTE = (
    "energy not metered: in an interleaved A/B measurement the blocks of several processes share one wall-clock window"
)


class InterleaveError(ValueError):
    """A cell or option that cannot be measured interleaved; the message says why."""


class InterleaveOptions(BaseModel):
    """How the variants take turns."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rounds: int = Field(default=100, ge=10, le=10_000, description="rounds; each variant measures one block per round")
    block_ms: float = Field(default=25.0, gt=0, le=60_000, description="minimum measured duration of one block")
    workers: int = Field(default=3, ge=1, le=64, description="worker processes per variant (each loads the model)")
    block_min_queries: int = Field(default=5, ge=1, description="minimum measured queries of one block")
    block_warmup_queries: int = Field(default=2, ge=0, description="unrecorded queries at the start of each block")
    seed: int = Field(default=0, description="seed of the order of turns within each round")
    start_timeout_s: float = Field(default=300.0, gt=0, description="limit for a worker to load and warm up")
    block_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="limit for one block; a block itself stops measuring at half of it (slow queries)",
    )
    cpus: tuple[int, ...] | None = Field(
        default=None,
        description="pin every variant's worker to these CPUs (one set for all, so no variant gets "
        "a core of its own); default: the CPUs this process may use",
    )

    @model_validator(mode="after")
    def _block_fits_its_timeout(self) -> InterleaveOptions:
        if self.block_ms / 1e3 > self.block_timeout_s / 4:
            raise ValueError(
                f"block_ms ({self.block_ms:g} ms) must be at most a quarter of block_timeout_s "
                f"({self.block_timeout_s:g} s): a block stops measuring at half its timeout"
            )
        return self

    def block_stop(self) -> StopRule:
        """The stop rule of one block: ``block_ms`` and ``block_min_queries``, capped at half of
        ``block_timeout_s``; no warm-up of its own (``block_warmup_queries`` run before it)."""
        return StopRule.model_validate(
            {
                "min_duration_s": self.block_ms / 1e3,
                "min_queries": self.block_min_queries,
                "max_duration_s": self.block_timeout_s / 2,
                "warmup_s": 0,
                "warmup_queries": 0,
            }
        )


@dataclass(frozen=True)
class Variant:
    """One side of the comparison: a cell spec, extra import paths (e.g. a checkout of the base
    commit holding the user's model code) and an optional injected slowdown (a fraction)."""

    label: str
    spec: CellSpec
    pythonpath: tuple[str, ...] = ()
    slowdown: float = 0.0


@dataclass(frozen=True)
class ClosedLoopPlan:
    """How a closed-loop cell is measured: samples per query, its stop rule (whose warm-up the
    workers use) and the headline percentile of its latency summary (0.99 unless the scenario
    sets ``target_percentile``)."""

    batch_size: int
    stop: StopRule
    headline_q: float


def closed_loop_plan(spec: CellSpec) -> ClosedLoopPlan:
    """The :class:`ClosedLoopPlan` of ``spec``; :class:`InterleaveError` for an open-loop scenario.
    The scenario's options are validated as the scenario itself would."""
    if not spec.closed_loop:
        raise InterleaveError(
            f"{spec.cell_id}: scenario {spec.scenario!r} cannot be interleaved; allowed: "
            f"{', '.join(sorted(CLOSED_LOOP_SCENARIOS))} (closed-loop scenarios)"
        )
    scls = plugins.load("scenario", spec.scenario)
    opts = scls.parse_options(spec.scenario_options)
    return ClosedLoopPlan(spec.batch_size, spec.stop, float(getattr(opts, "target_percentile", 0.99)))
