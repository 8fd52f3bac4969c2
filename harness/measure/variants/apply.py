"""Applying a cell's variant: the one seam the worker calls.

:func:`setup` returns a :class:`VariantSetup` for any cell; with no variant it is a pass-through
(same spec, workload and backend; no accuracy measured), so cells without a variant run exactly
as before. With one it gives the spec to load (variant backend options merged under the cell's
own), the workload to load (transformed), the reason to skip when the variant does not apply,
and after loading measures the accuracy cost (:mod:`harness.measure.accuracy`) into metrics,
validity flags and the cell's parity record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.core import plugins
from harness.core.metrics import Metric
from harness.core.records import CellSpec, Parity
from harness.measure import accuracy
from harness.measure.parity import compare

WEIGHTS_NOTE = (
    "the variant changes the computation beyond rounding (int8 / pruning): outputs are not expected to match "
    "at a dtype tolerance; its accuracy cost is in the metrics"
)


@dataclass
class VariantSetup:
    """What a cell loads and runs, and what its variant measured (see :func:`setup`)."""

    spec: CellSpec
    workload: Any
    variant: Any = None
    skip_reason: str | None = None
    base_workload: Any = None
    metrics: dict[str, Metric] = field(default_factory=dict)
    validity: dict[str, bool] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.variant is not None

    def wrap(self, backend: Any) -> Any:
        """The backend the scenario drives."""
        return backend if self.variant is None else self.variant.wrap_backend(backend, self.base_workload)

    def measure(self, backend: Any) -> Parity:
        """Accuracy of the loaded variant against the fp32 eager reference: fills
        :attr:`metrics`, :attr:`validity` (``accuracy_met`` when the cell has a
        ``min_agreement``) and :attr:`extra`, and returns the cell's parity record (pass/fail
        at the variant's dtype tolerance, or unchecked with the reason for weight-changing
        variants)."""
        v = self.variant
        use_generate = getattr(backend, "capabilities", None) is not None and bool(backend.capabilities.streaming)
        acc = accuracy.measure(backend, self.base_workload, use_generate=use_generate)
        self.metrics.update(acc.metrics())
        info: dict[str, Any] = {
            "variant": v.name,
            "reference": "torch-eager-fp32",
            "samples": acc.samples,
            "agreement": acc.agreement,
            "notes": acc.notes,
        }
        if self.spec.min_agreement is not None:
            info["min_agreement"] = self.spec.min_agreement
            if acc.agreement is None:
                info["verdict"] = "no agreement measure for this workload's outputs (no logits): not judged"
            else:
                met = acc.agreement >= self.spec.min_agreement
                self.validity["accuracy_met"] = met
                info["verdict"] = (
                    f"agreement {acc.agreement:.4f} {'>=' if met else '<'} min_agreement {self.spec.min_agreement}"
                )
        self.extra["accuracy"] = info
        # speculative decoding's counters start after the accuracy check
        reset = getattr(getattr(backend, "stats", None), "reset", None)
        if callable(reset):
            reset()
        err = acc.errors
        if v.changes_weights:
            return Parity(
                checked=False,
                max_abs_err=err.get("max_abs_err"),
                max_rel_err=err.get("max_rel_err"),
                note=WEIGHTS_NOTE,
            )
        return compare(acc.outputs, acc.reference, v.dtype)

    def finish(self, backend: Any) -> dict[str, Any]:
        """Extra fields for the cell record after the scenario ran (variant counters)."""
        if self.variant is None:
            return {}
        stats = self.variant.stats(backend)
        spec_stats = stats.get("speculative")
        if spec_stats:
            how = "measured:speculative-counters"
            if spec_stats.get("acceptance_rate") is not None:
                self.metrics["acceptance_rate"] = Metric(
                    value=spec_stats["acceptance_rate"], unit="fraction", provenance=how
                )
            if spec_stats.get("tokens_per_target_step") is not None:
                self.metrics["tokens_per_target_step"] = Metric(
                    value=spec_stats["tokens_per_target_step"], unit="tokens", provenance=how
                )
        return {**self.extra, **stats}


def setup(spec: CellSpec, workload: Any) -> VariantSetup:
    """The variant of ``spec`` applied to ``workload`` (a pass-through when it has none)."""
    if spec.variant is None:
        return VariantSetup(spec=spec, workload=workload)
    v = plugins.load("variant", spec.variant)()
    why = v.unsupported(spec.backend, spec.device, spec.scenario) or v.workload_unsupported(workload)
    if why is not None:
        return VariantSetup(spec=spec, workload=workload, variant=v, skip_reason=why, base_workload=workload)
    options = {**v.backend_options(spec.backend), **spec.backend_options}
    run_spec = spec.model_copy(update={"backend_options": options})
    return VariantSetup(spec=run_spec, workload=v.transform(workload, spec.backend), variant=v, base_workload=workload)
