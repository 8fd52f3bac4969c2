"""Workload cost model: FLOPs, bytes moved and memory footprint per batch size and dtype.

Every figure is derived from counted :class:`~workloads.base.WorkloadInfo` fields, never typed
in. Definitions (``b`` = batch size, ``s(d)`` = bytes per element of dtype ``d``):

* ``flops(b) = b * flops_per_sample`` (a multiply-add counts 2 FLOPs, as in the counter);
* ``bytes_moved(b, d) = weight_bytes[d] + b * ACT_TRAFFIC * activation_bytes_per_sample * s(d) / 4``:
  weights are read once per batch; every activation the counter saw (bytes of leaf-module
  outputs on an fp32 batch-1 forward) is written once and read once (``ACT_TRAFFIC = 2``),
  scaled from fp32 to ``d``;
* ``memory_bytes(b, d) = weight_bytes[d] + b * activation_bytes_per_sample * s(d) / 4
  + b * context_tokens * kv_bytes_per_token(d)`` (decoders only for the last term).

Decoders (``flops_per_token_decode`` set) are split into *prefill* (one forward over the
prompt: ``flops_per_sample``) and *decode* (one token for each of ``b`` sequences):
``decode_flops(b) = b * flops_per_token_decode`` and
``decode_bytes(b, d, ctx) = weight_bytes[d] + b * ctx * kv_bytes_per_token(d)`` (the KV cache of
every sequence is read once per generated token).

MLPerf benchmarks (:func:`mlperf_cost`):

* ``resnet50``: our zoo's ``resnet50`` at ``standard`` size (ResNet-50 v1.5, 224x224).
* ``bert-99``: BERT-large at sequence length 384, built through the zoo as
  ``get_workload("bert", "standard", hidden=1024, layers=24, heads=16, ffn=4096, seq_len=384)``
  (BERT-large config: Devlin et al. 2019, arXiv 1810.04805, Table/Section 3; MLPerf uses
  SQuAD v1.1 at max sequence length 384).
* ``llama2-70b``: analytic, no module built: ``params = 70e9``; FLOPs per generated token
  ``2 * params`` (the standard dense-decoder estimate, Kaplan et al. 2020, arXiv 2001.08361,
  Section 2.1); KV cache per token ``2 (K and V) * 80 layers * 8 KV heads * 128 head dim``
  elements (grouped-query attention; Llama 2 paper, Touvron et al. 2023, arXiv 2307.09288,
  Table 1 and Section 2.2; Hugging Face ``meta-llama/Llama-2-70b-hf`` config.json:
  ``num_hidden_layers=80``, ``hidden_size=8192``, ``num_attention_heads=64``,
  ``num_key_value_heads=8``). MLPerf's Llama-2 results count output tokens; the prefill
  share is left to the calibration (see docs/projection-and-recommendation.md).

Counts of the built-in zoo at its default configurations ship as package data
(``harness/planning/reference_data/zoo_counts.json``, written by :func:`write_zoo_snapshot`) so that
the analysis layer answers without importing torch; any other configuration is counted
through :mod:`workloads` (which imports torch lazily).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from workloads.base import WorkloadInfo
from workloads.registry import get_workload, list_workloads

BYTES_PER_ELEMENT: dict[str, int] = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "int8": 1, "fp8": 1}
#: every counted activation is written once and read once
ACT_TRAFFIC = 2.0
#: MLPerf benchmark names this module knows (llama2 variants share one cost model)
MLPERF_BENCHMARKS: tuple[str, ...] = ("resnet50", "bert-99", "llama2-70b")

BERT_LARGE_384: dict[str, int] = {"hidden": 1024, "layers": 24, "heads": 16, "ffn": 4096, "seq_len": 384}

#: Llama 2 70B architecture (GQA: 8 KV heads)
LLAMA2_70B: dict[str, int] = {
    "params": 70_000_000_000,
    "layers": 80,
    "hidden": 8192,
    "heads": 64,
    "kv_heads": 8,
    "head_dim": 128,
}
LLAMA2_70B_SOURCES: tuple[str, ...] = (
    "https://arxiv.org/abs/2307.09288 (Llama 2, Table 1: 70B uses GQA)",
    "https://huggingface.co/meta-llama/Llama-2-70b-hf/blob/main/config.json",
    "https://arxiv.org/abs/2001.08361 (Sec. 2.1: forward FLOPs per token ~ 2 N)",
)

SNAPSHOT_FILE = "zoo_counts.json"


def dtype_bytes(dtype: str) -> int:
    if dtype not in BYTES_PER_ELEMENT:
        raise ValueError(f"unknown dtype {dtype!r}; allowed: {', '.join(BYTES_PER_ELEMENT)}")
    return BYTES_PER_ELEMENT[dtype]


@dataclass(frozen=True)
class WorkloadCost:
    """Counts of one workload configuration; methods give per-batch figures (FLOPs, bytes).

    ``kv_bytes_per_token_fp32`` is per generated token per sequence at 4 bytes/element;
    ``context_tokens`` the reference context for decode (prompt length); ``output_tokens``
    a typical generation length (used for requests/s <-> tokens/s).
    """

    name: str
    size: str
    task: str
    params: int
    flops_per_sample: float
    activation_bytes_per_sample_fp32: float
    flops_per_token_decode: float | None = None
    kv_bytes_per_token_fp32: float | None = None
    context_tokens: int | None = None
    output_tokens: int | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_decoder(self) -> bool:
        return self.flops_per_token_decode is not None

    def weight_bytes(self, dtype: str) -> float:
        return float(self.params * dtype_bytes(dtype))

    def activation_bytes(self, dtype: str) -> float:
        return self.activation_bytes_per_sample_fp32 * dtype_bytes(dtype) / 4.0

    def kv_bytes_per_token(self, dtype: str) -> float:
        if self.kv_bytes_per_token_fp32 is None:
            return 0.0
        return self.kv_bytes_per_token_fp32 * dtype_bytes(dtype) / 4.0

    # -- single forward (vision, encoder, tabular; decoder prefill) -------------------------
    def flops(self, batch: int) -> float:
        _check_batch(batch)
        return batch * self.flops_per_sample

    def bytes_moved(self, batch: int, dtype: str) -> float:
        _check_batch(batch)
        return self.weight_bytes(dtype) + batch * ACT_TRAFFIC * self.activation_bytes(dtype)

    def memory_bytes(self, batch: int, dtype: str, context_tokens: int | None = None) -> float:
        """Footprint: weights + activations of ``batch`` samples + their KV cache (decoders)."""
        _check_batch(batch)
        ctx = self._ctx(context_tokens)
        return (
            self.weight_bytes(dtype)
            + batch * self.activation_bytes(dtype)
            + batch * ctx * self.kv_bytes_per_token(dtype)
        )

    # -- decode ------------------------------------------------------------------------
    def decode_flops(self, batch: int) -> float:
        _check_batch(batch)
        if self.flops_per_token_decode is None:
            raise ValueError(f"workload {self.name!r} is not a decoder (no flops_per_token_decode)")
        return batch * self.flops_per_token_decode

    def decode_bytes(self, batch: int, dtype: str, context_tokens: int | None = None) -> float:
        _check_batch(batch)
        ctx = self._ctx(context_tokens)
        return self.weight_bytes(dtype) + batch * ctx * self.kv_bytes_per_token(dtype)

    def _ctx(self, context_tokens: int | None) -> int:
        if not self.is_decoder:
            return 0
        if context_tokens is not None:
            return int(context_tokens)
        return int((self.context_tokens or 0) + (self.output_tokens or 0))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "task": self.task,
            "params": self.params,
            "flops_per_sample": self.flops_per_sample,
            "activation_bytes_per_sample_fp32": self.activation_bytes_per_sample_fp32,
            "flops_per_token_decode": self.flops_per_token_decode,
            "kv_bytes_per_token_fp32": self.kv_bytes_per_token_fp32,
            "context_tokens": self.context_tokens,
            "output_tokens": self.output_tokens,
            "source": self.source,
        }


def _check_batch(batch: int) -> None:
    if not isinstance(batch, (int,)) or isinstance(batch, bool) or batch < 1:
        try:
            ok = int(batch) == batch and batch >= 1
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"batch must be an integer >= 1, got {batch!r}")


def cost_from_info(
    info: WorkloadInfo | Mapping[str, Any], *, output_tokens: int | None = None, source: str = ""
) -> WorkloadCost:
    """Cost model from a :class:`~workloads.base.WorkloadInfo` or its ``to_dict()`` form."""
    d = info.to_dict() if isinstance(info, WorkloadInfo) else dict(info)
    extra = d.get("extra") or {}
    ctx = extra.get("decode_context_tokens")
    if ctx is None and d.get("flops_per_token_decode") is not None:
        shapes = d.get("input_shapes") or {}
        first = next(iter(shapes.values()), [0])
        ctx = int(first[0]) if first else 0
    return WorkloadCost(
        name=str(d["name"]),
        size=str(d.get("size", "")),
        task=str(d.get("task", "custom")),
        params=int(d["params"]),
        flops_per_sample=float(d["flops_per_sample"]),
        activation_bytes_per_sample_fp32=float(d.get("activation_bytes_per_sample") or 0),
        flops_per_token_decode=(
            None if d.get("flops_per_token_decode") is None else float(d["flops_per_token_decode"])
        ),
        kv_bytes_per_token_fp32=(
            None if d.get("kv_cache_bytes_per_token") is None else float(d["kv_cache_bytes_per_token"])
        ),
        context_tokens=ctx,
        output_tokens=output_tokens if output_tokens is not None else (int(ctx) if ctx else None),
        source=source or f"WorkloadInfo ({d.get('flops_method', 'counted')})",
        extra={"config": extra.get("config", {})},
    )


# --------------------------------------------------------------------------- zoo snapshot


def _snapshot_key(name: str, size: str, params: dict[str, Any] | None = None) -> str:
    p = ",".join(f"{k}={v}" for k, v in sorted((params or {}).items()))
    return f"{name}:{size}" + (f"[{p}]" if p else "")


def _snapshot_entries() -> list[tuple[str, str, dict[str, Any]]]:
    out: list[tuple[str, str, dict[str, Any]]] = [(n, s, {}) for n in list_workloads() for s in ("standard", "tiny")]
    out.append(("bert", "standard", dict(BERT_LARGE_384)))
    return out


def write_zoo_snapshot(path: str | Path | None = None) -> Path:
    """Count every built-in workload (standard, tiny, and BERT-large-384) and write the
    package-data snapshot. Imports torch (through :mod:`workloads`)."""
    target = Path(path) if path is not None else Path(__file__).parent / "reference_data" / SNAPSHOT_FILE
    data: dict[str, Any] = {}
    for name, size, params in _snapshot_entries():
        info = get_workload(name, size, **params).info()
        data[_snapshot_key(name, size, params)] = info.to_dict()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        json.dumps(
            {"generated_by": "harness.planning.workload_cost.write_zoo_snapshot", "entries": data},
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )
    return target


@lru_cache(maxsize=1)
def _snapshot() -> dict[str, Any]:
    try:
        text = resources.files("harness.planning").joinpath("reference_data", SNAPSHOT_FILE).read_text()
    except (FileNotFoundError, OSError):
        return {}
    return dict(json.loads(text).get("entries", {}))


def workload_cost(
    name: str, size: str = "standard", params: dict[str, Any] | None = None, *, output_tokens: int | None = None
) -> WorkloadCost:
    """Cost model of a zoo workload (or ``onnx:``/``module:`` user model).

    Default configurations come from the shipped snapshot (no torch import); anything else is
    counted through ``workloads.registry.get_workload(name, size, **params).info()``.
    """
    key = _snapshot_key(name, size, params)
    snap = _snapshot().get(key)
    if snap is not None:
        return cost_from_info(
            snap,
            output_tokens=output_tokens,
            source=f"zoo counts {key} ({snap.get('flops_method', '')}; shipped snapshot)",
        )
    info = get_workload(name, size, **(params or {})).info()
    return cost_from_info(info, output_tokens=output_tokens, source=f"zoo counts {key} (counted now)")


def mlperf_cost(benchmark: str) -> WorkloadCost:
    """Cost model of an MLPerf Inference benchmark (see module docstring for the derivation).

    ``benchmark`` is ``resnet50``, ``bert-99`` (or ``bert-99.9``) or ``llama2-70b``
    (``llama2-70b-99``/``-99.9`` accepted).
    """
    b = benchmark.lower()
    if b == "resnet50":
        c = workload_cost("resnet50", "standard")
        return _renamed(c, "resnet50", "MLPerf resnet50 = zoo resnet50:standard; " + c.source)
    if b.startswith("bert-99"):
        c = workload_cost("bert", "standard", dict(BERT_LARGE_384))
        return _renamed(c, "bert-99", "MLPerf bert-99 = zoo bert with BERT-large config, seq 384; " + c.source)
    if b.startswith("llama2-70b"):
        L = LLAMA2_70B
        kv_elems = 2 * L["layers"] * L["kv_heads"] * L["head_dim"]
        return WorkloadCost(
            name="llama2-70b",
            size="mlperf",
            task="decoder",
            params=int(L["params"]),
            flops_per_sample=2.0 * L["params"] * 1024,  # prefill of a 1024-token prompt
            activation_bytes_per_sample_fp32=0.0,
            flops_per_token_decode=2.0 * L["params"],
            kv_bytes_per_token_fp32=4.0 * kv_elems,
            context_tokens=1024,
            output_tokens=291,
            source=(
                "analytic: FLOPs/token = 2 * 70e9; KV/token = 2*80*8*128 elements; "
                "prefill FLOPs = 2 * 70e9 * 1024 (MLPerf max input length, an upper bound), ~291 output tokens/query (dataset note); "
                + "; ".join(LLAMA2_70B_SOURCES)
            ),
        )
    raise ValueError(f"unknown MLPerf benchmark {benchmark!r}; allowed: {', '.join(MLPERF_BENCHMARKS)}")


def _renamed(c: WorkloadCost, name: str, source: str) -> WorkloadCost:
    return replace(c, name=name, size="mlperf", source=source)


def largest_fitting_batch(
    cost: WorkloadCost, dtype: str, memory_bytes: float, cap: int = 4096, context_tokens: int | None = None
) -> int:
    """Largest batch whose footprint fits ``memory_bytes`` (0 when not even batch 1 fits)."""
    if not memory_bytes or memory_bytes <= 0 or not math.isfinite(memory_bytes):
        return 0
    if cost.memory_bytes(1, dtype, context_tokens) > memory_bytes:
        return 0
    per = cost.memory_bytes(2, dtype, context_tokens) - cost.memory_bytes(1, dtype, context_tokens)
    if per <= 0:
        return cap
    b = int((memory_bytes - cost.weight_bytes(dtype)) // per)
    return max(1, min(cap, b))
