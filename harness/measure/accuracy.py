"""Accuracy cost of a variant: its outputs against the PyTorch eager fp32 reference of the base
workload on the same inputs.

Inputs: :data:`ACCURACY_SAMPLES` samples from ``workload.make_inputs`` (seeds from
:data:`ACCURACY_SEED`, apart from the calibration and parity inputs), in batches of
:data:`ACCURACY_BATCH`. Metrics (provenance ``measured:vs-torch-eager-fp32``):

* ``max_abs_err``, ``mean_abs_err``, ``max_rel_err`` -- over every output element;
* for logits (an output named ``*logit*`` of shape ``[B, C]``, C > 1): ``top1_agreement`` (share
  of samples whose argmax equals the reference's) and ``kl_divergence`` (mean over samples of
  KL(softmax(reference) || softmax(output)), nats);
* for generative workloads: ``token_agreement`` -- :data:`GEN_PROMPTS` prompts, :data:`GEN_TOKENS`
  greedy tokens each, share of positions where the variant's token equals the reference's.
  With ``use_generate`` the variant generates through ``backend.generate`` (its KV cache, or
  speculative decoding) and the reference through the module's own cache; otherwise both by
  repeated forwards over a window of the last ``prompt_len`` tokens (backends without a cache).

The *agreement* judged against a suite's ``min_agreement`` is the lowest of ``top1_agreement``
and ``token_agreement`` that were measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.core.metrics import Metric

ACCURACY_SAMPLES = 32
ACCURACY_BATCH = 8
ACCURACY_SEED = 9_100_000
GEN_PROMPTS = 4
GEN_TOKENS = 8
PROVENANCE = "measured:vs-torch-eager-fp32"


@dataclass
class Accuracy:
    """Accuracy figures of one variant (plain numbers; :meth:`metrics` labels them)."""

    errors: dict[str, float] = field(default_factory=dict)
    top1_agreement: float | None = None
    kl_divergence: float | None = None
    token_agreement: float | None = None
    samples: int = 0
    notes: list[str] = field(default_factory=list)
    #: the compared arrays (variant, reference), kept for a parity verdict; not stored
    outputs: list[np.ndarray] = field(default_factory=list, repr=False)
    reference: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def agreement(self) -> float | None:
        vals = [v for v in (self.top1_agreement, self.token_agreement) if v is not None]
        return min(vals) if vals else None

    def metrics(self) -> dict[str, Metric]:
        units = {"max_abs_err": "abs", "mean_abs_err": "abs", "max_rel_err": "fraction"}
        out = {k: Metric(value=v, unit=units[k], provenance=PROVENANCE) for k, v in self.errors.items()}
        method = f"{self.samples} samples vs the fp32 eager reference"
        if self.top1_agreement is not None:
            out["top1_agreement"] = Metric(
                value=self.top1_agreement, unit="fraction", provenance=PROVENANCE, method=method
            )
        if self.kl_divergence is not None:
            out["kl_divergence"] = Metric(value=self.kl_divergence, unit="nats", provenance=PROVENANCE, method=method)
        if self.token_agreement is not None:
            out["token_agreement"] = Metric(
                value=self.token_agreement,
                unit="fraction",
                provenance=PROVENANCE,
                method=f"{GEN_PROMPTS} prompts x {GEN_TOKENS} greedy tokens, by position",
            )
        return out


# ---------------------------------------------------------------- pure comparisons
def output_errors(outputs: list[np.ndarray], reference: list[np.ndarray]) -> dict[str, float]:
    """``max_abs_err``, ``mean_abs_err``, ``max_rel_err`` over every element of every output
    (NaN when an output is NaN/inf where the reference is finite). Raises ``ValueError`` on a
    shape mismatch."""
    if len(outputs) != len(reference):
        raise ValueError(f"{len(outputs)} outputs, reference has {len(reference)}")
    diffs, rels = [], []
    for o, r in zip(outputs, reference):
        o64, r64 = np.asarray(o, dtype=np.float64), np.asarray(r, dtype=np.float64)
        if o64.shape != r64.shape:
            raise ValueError(f"output shape {o64.shape} != reference {r64.shape}")
        d = np.abs(o64 - r64).ravel()
        diffs.append(d)
        rels.append(d / np.maximum(np.abs(r64).ravel(), 1e-12))
    d_all = np.concatenate(diffs) if diffs else np.zeros(0)
    r_all = np.concatenate(rels) if rels else np.zeros(0)
    if d_all.size == 0:
        return {"max_abs_err": 0.0, "mean_abs_err": 0.0, "max_rel_err": 0.0}
    if not np.all(np.isfinite(d_all)):
        nan = float("nan")
        return {"max_abs_err": nan, "mean_abs_err": nan, "max_rel_err": nan}
    return {"max_abs_err": float(d_all.max()), "mean_abs_err": float(d_all.mean()), "max_rel_err": float(r_all.max())}


def top1_agreement(logits: np.ndarray, ref_logits: np.ndarray) -> float:
    """Share of rows of ``[N, C]`` logits whose argmax equals the reference's."""
    a, b = np.asarray(logits), np.asarray(ref_logits)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"top-1 agreement needs two [N, C] arrays, got {a.shape} and {b.shape}")
    return float(np.mean(a.argmax(-1) == b.argmax(-1)))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(-1, keepdims=True)
    out: np.ndarray = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return out


def kl_divergence(logits: np.ndarray, ref_logits: np.ndarray) -> float:
    """Mean over rows of KL(softmax(ref) || softmax(logits)) in nats (0 when equal)."""
    a, b = np.asarray(logits, dtype=np.float64), np.asarray(ref_logits, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"KL divergence needs two [N, C] arrays, got {a.shape} and {b.shape}")
    lp, lq = _log_softmax(b), _log_softmax(a)
    # never below 0 (rounding of equal distributions can give -1e-17)
    return max(0.0, float(np.mean(np.sum(np.exp(lp) * (lp - lq), axis=-1))))


def token_agreement(tokens: list[list[int]], ref_tokens: list[list[int]]) -> float:
    """Share of positions, over every sequence, where ``tokens`` equals ``ref_tokens`` (a
    missing token counts as a disagreement)."""
    total = sum(len(r) for r in ref_tokens)
    if total == 0:
        raise ValueError("no reference tokens to compare with")
    same = sum(int(a == b) for t, r in zip(tokens, ref_tokens) for a, b in zip(t, r))
    return same / total


# ---------------------------------------------------------------- measuring
def _is_logits(name: str, arr: np.ndarray, task: str) -> bool:
    return arr.ndim == 2 and arr.shape[1] > 1 and ("logit" in name or task in ("vision", "encoder", "decoder"))


def _window_greedy(step: Any, prompt: np.ndarray, n: int) -> list[int]:
    """Greedy tokens by full forwards over the last ``len(prompt)`` tokens; ``step(ids [1, T])``
    returns next-token logits ``[1, vocab]``."""
    seq = list(int(t) for t in prompt)
    window = len(seq)
    out: list[int] = []
    for _ in range(n):
        ids = np.asarray([seq[-window:]], dtype=np.int64)
        tok = int(np.asarray(step(ids)).reshape(-1).argmax())
        out.append(tok)
        seq.append(tok)
    return out


def measure(backend: Any, workload: Any, *, use_generate: bool = False) -> Accuracy:
    """The accuracy of ``backend`` (the variant, loaded) against ``workload``'s fp32 eager
    module (the *base* workload, not the variant's) on the same inputs."""
    # deferred: torch is an optional extra; the reference runs only when a variant is measured
    import torch

    from harness.measure.speculative import greedy_generate

    acc = Accuracy()
    ref_module = workload.build_torch().eval().float()

    def ref_forward(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.inference_mode():
            out = ref_module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in inputs.values()))
        outs = out if isinstance(out, (tuple, list)) else [out]
        return [o.detach().float().numpy() for o in outs]

    def var_forward(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(o, dtype=np.float32) for o in backend.to_numpy(backend.infer(backend.prepare(inputs)))]

    outs: list[list[np.ndarray]] = []
    refs: list[list[np.ndarray]] = []
    for i in range(ACCURACY_SAMPLES // ACCURACY_BATCH):
        inputs = workload.make_inputs(ACCURACY_BATCH, seed=ACCURACY_SEED + i)
        outs.append(var_forward(inputs))
        refs.append(ref_forward(inputs))
    out_cat = [np.concatenate([b[j] for b in outs]) for j in range(len(outs[0]))]
    ref_cat = [np.concatenate([b[j] for b in refs]) for j in range(len(refs[0]))]
    acc.samples = ACCURACY_SAMPLES
    acc.outputs, acc.reference = out_cat, ref_cat
    acc.errors = output_errors(out_cat, ref_cat)
    names = list(getattr(workload.info(), "output_names", ())) or [f"o{j}" for j in range(len(ref_cat))]
    task = str(getattr(workload, "task", ""))
    for name, o, r in zip(names, out_cat, ref_cat):
        if _is_logits(name, r, task):
            acc.top1_agreement = top1_agreement(o, r)
            acc.kl_divergence = kl_divergence(o, r) if np.all(np.isfinite(o)) else float("nan")
            break
    if getattr(workload, "generative", False):
        prompts = [workload.make_inputs(1, seed=ACCURACY_SEED + 1000 + p)["input_ids"][0] for p in range(GEN_PROMPTS)]
        if use_generate:
            got = [list(backend.generate(p, GEN_TOKENS)) for p in prompts]
            want = [greedy_generate(ref_module, p, GEN_TOKENS) for p in prompts]
            acc.notes.append("token agreement through backend.generate (KV cache)")
        else:
            got = [_window_greedy(lambda ids: var_forward({"input_ids": ids})[0], p, GEN_TOKENS) for p in prompts]
            want = [_window_greedy(lambda ids: ref_forward({"input_ids": ids})[0], p, GEN_TOKENS) for p in prompts]
            acc.notes.append("token agreement by repeated forwards over a sliding prompt-length window")
        acc.token_agreement = token_agreement(got, want)
    return acc
