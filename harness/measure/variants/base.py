"""Variant plugin contract.

A :class:`Variant` names one optimisation and says where it applies: the backends and device
kinds it supports (:meth:`Variant.unsupported` gives the reason otherwise, and the cell is
*skipped* with it, never failed). It acts at three seams, each optional:

* :meth:`Variant.backend_options` -- options merged into the cell's backend options
  (``dtype``, ``compile``);
* :meth:`Variant.transform` -- a :class:`VariantWorkload` whose ``build_torch`` and/or
  ``onnx_path`` give the transformed model (quantised, pruned), cached by content;
* :meth:`Variant.wrap_backend` -- a proxy around the loaded backend (speculative decoding).

``changes_weights``: the variant alters the computation beyond rounding (int8, pruning), so a
pass/fail parity check at a dtype tolerance does not apply; its accuracy cost is measured and
judged against the suite's ``min_agreement`` instead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar


class Variant:
    """One optimisation. Register concrete classes under the ``harness.variants`` entry point."""

    name: ClassVar[str]
    #: precision the variant computes in (parity tolerance): fp32 | bf16 | fp16 | int8 | fp8
    dtype: ClassVar[str] = "fp32"
    #: backends the variant is written for
    backends: ClassVar[tuple[str, ...]] = ()
    #: device kinds (``cpu``, ``cuda``) it runs on
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")
    #: scenarios it applies to (``None``: all)
    scenarios: ClassVar[tuple[str, ...] | None] = None
    changes_weights: ClassVar[bool] = False
    #: per-backend reasons for the backends it does not support (shown when skipped)
    why_not: ClassVar[dict[str, str]] = {}

    def unsupported(self, backend: str, device: str, scenario: str) -> str | None:
        """Why this variant cannot run on ``backend`` / ``device`` / ``scenario``, or ``None``."""
        kind = device.split(":", 1)[0]
        if backend not in self.backends:
            why = self.why_not.get(backend, "")
            allowed = ", ".join(self.backends) or "(none)"
            return f"variant {self.name!r} is not supported on backend {backend!r}{': ' + why if why else ''} (supported: {allowed})"
        if kind not in self.devices:
            return f"variant {self.name!r} needs a {' or '.join(self.devices)} device; this cell runs on {device!r}"
        if self.scenarios is not None and scenario not in self.scenarios:
            return f"variant {self.name!r} applies to the {', '.join(self.scenarios)} scenario(s) only"
        return None

    def workload_unsupported(self, workload: Any) -> str | None:
        """Why this variant does not apply to ``workload`` (e.g. not generative), or ``None``."""
        return None

    def backend_options(self, backend: str) -> dict[str, Any]:
        """Options this variant adds to the backend's (the cell's own options win on conflict)."""
        return {}

    def transform(self, workload: Any, backend: str) -> Any:
        """The workload the backend loads (default: unchanged)."""
        return workload

    def wrap_backend(self, backend: Any, workload: Any) -> Any:
        """The backend the scenario drives (default: unchanged)."""
        return backend

    def stats(self, backend: Any) -> dict[str, Any]:
        """Counters the variant kept while the cell ran (stored in the cell's ``extra``)."""
        return {}


class VariantWorkload:
    """A workload with a transformed model; everything else (inputs, info, name) is the base's.

    ``torch_transform(module) -> module`` rewrites the PyTorch module; ``onnx_transform(src,
    dst)`` writes a rewritten ONNX file ``dst`` from the base export ``src``. Without an
    ``onnx_transform`` the ONNX file is an export of the transformed module, cached under a
    content key that includes the variant name."""

    def __init__(
        self,
        base: Any,
        variant: str,
        torch_transform: Callable[[Any], Any] | None = None,
        onnx_transform: Callable[[Path, Path], None] | None = None,
    ) -> None:
        self._base = base
        self.variant = variant
        self._torch_transform = torch_transform
        self._onnx_transform = onnx_transform

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    @property
    def base(self) -> Any:
        return self._base

    def build_torch(self) -> Any:
        module = self._base.build_torch()
        return module if self._torch_transform is None else self._torch_transform(module)

    def cache_document(self) -> dict[str, Any]:
        doc = self._base.cache_document() if hasattr(self._base, "cache_document") else {"key": self._base.key}
        return {**doc, "variant": self.variant}

    def onnx_path(self, cache_dir: Path | None = None) -> Path:
        # the export machinery of the zoo; the variant's content key keeps its file apart
        from workloads.onnx_export import export_cached

        if self._onnx_transform is None:
            return export_cached(self, cache_dir)
        src = Path(self._base.onnx_path(cache_dir))
        dst = src.with_name(f"{src.stem}.{self.variant}.onnx")
        if not dst.is_file():
            tmp = dst.with_name(f".{dst.stem}.{id(self)}.tmp.onnx")
            try:
                self._onnx_transform(src, tmp)
                tmp.replace(dst)
            finally:
                tmp.unlink(missing_ok=True)
        return dst
