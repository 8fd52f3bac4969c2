"""When a measurement may stop: the stop rule every scenario honours."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StopRule(BaseModel):
    """Both minimums must hold before a measurement may stop; either maximum stops it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_duration_s: float = Field(2.0, ge=0, description="minimum measurement duration")
    min_queries: int = Field(100, ge=1, description="minimum completed queries")
    max_duration_s: float = Field(60.0, gt=0, description="hard cap on measurement duration")
    max_queries: int | None = Field(None, ge=1, description="hard cap on issued queries")
    warmup_s: float = Field(0.5, ge=0, description="warm-up duration, excluded from results")
    warmup_queries: int = Field(5, ge=0, description="minimum warm-up queries")
    max_attempts: int = Field(
        1,
        ge=1,
        description="closed-loop scenarios: repeat a measurement that fails the steady-state "
        "check up to this many times and keep the first stable one (perf_analyzer's trials); "
        "discarded attempts are recorded, never mixed into the results",
    )

    def done(self, n: int, elapsed_ns: int) -> bool:
        """True when the measurement may stop after ``n`` completed queries."""
        if self.max_queries is not None and n >= self.max_queries:
            return True
        if elapsed_ns >= self.max_duration_s * 1e9:
            return True
        return n >= self.min_queries and elapsed_ns >= self.min_duration_s * 1e9
