"""Speculative decoding: a draft model proposes ``k`` tokens, the target checks them
in one forward and keeps the longest prefix it agrees with, plus its own next token.

Acceptance rule (greedy; Leviathan et al. 2023 with temperature 0): draft token ``d_i`` is
accepted while it equals the target's argmax at that position; at the first disagreement the
target's token replaces it and the rest are dropped; when all ``k`` are accepted the target's
next token comes free. Every emitted token is therefore the target's own greedy choice given
the tokens before it, so the output equals plain greedy decoding of the target token for token
(what tests check); the draft only changes how many target forwards it takes.

:func:`speculative_sample` applies the stochastic rule (sampling at a temperature): its tokens
are distributed exactly as sampling the target alone.

Counters (:class:`SpecStats`): ``proposed`` and ``accepted`` draft tokens, ``target_steps``
(target forwards: prefill + one verify per round), ``emitted`` tokens. Acceptance rate =
accepted / proposed; tokens per target step = emitted / target_steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from workloads.gpt2_draft import all_logits, truncate_cache


@dataclass
class SpecStats:
    """Counts over every sequence generated so far (one thread at a time per generator)."""

    proposed: int = 0
    accepted: int = 0
    target_steps: int = 0
    draft_steps: int = 0
    emitted: int = 0

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.proposed if self.proposed else None

    @property
    def tokens_per_target_step(self) -> float | None:
        return self.emitted / self.target_steps if self.target_steps else None

    def reset(self) -> None:
        self.proposed = self.accepted = self.target_steps = self.draft_steps = self.emitted = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "proposed": self.proposed,
            "accepted": self.accepted,
            "target_steps": self.target_steps,
            "draft_steps": self.draft_steps,
            "emitted": self.emitted,
            "acceptance_rate": self.acceptance_rate,
            "tokens_per_target_step": self.tokens_per_target_step,
        }


def greedy_generate(module: Any, prompt_ids: np.ndarray, max_new_tokens: int) -> list[int]:
    """Plain greedy decoding with the module's KV cache (the reference speculative must equal)."""
    # deferred: torch is an optional extra, loaded only by torch cells
    import torch

    ids = torch.from_numpy(np.ascontiguousarray(prompt_ids, dtype=np.int64).reshape(1, -1))
    out: list[int] = []
    with torch.inference_mode():
        logits, cache = module.prefill(ids)
        tok = int(logits[0].argmax().item())
        out.append(tok)
        while len(out) < max_new_tokens:
            logits, cache = module.decode(torch.tensor([[tok]], dtype=torch.int64), cache)
            tok = int(logits[0].argmax().item())
            out.append(tok)
    return out


def speculative_generate(
    target: Any,
    draft: Any,
    prompt_ids: np.ndarray,
    max_new_tokens: int,
    k: int,
    stats: SpecStats | None = None,
    device: str = "cpu",
) -> Iterator[int]:
    """Yield ``max_new_tokens`` greedy tokens of ``target`` (batch 1), each once host-visible,
    proposing ``k`` tokens per round with ``draft``. Both modules follow the
    :class:`workloads.nets.transformer.GPT2LM` interface and share the vocabulary."""
    # deferred: torch is an optional extra, loaded only by torch cells
    import torch

    if k < 1:
        raise ValueError(f"speculative decoding needs k >= 1, got {k}")
    st = stats if stats is not None else SpecStats()
    if max_new_tokens < 1:
        return
    ids = torch.from_numpy(np.ascontiguousarray(prompt_ids, dtype=np.int64).reshape(1, -1)).to(device)
    limit = int(target.n_positions)
    with torch.inference_mode():
        logits, t_cache = target.prefill(ids)
        st.target_steps += 1
        last = int(logits[0].argmax().item())
        st.emitted += 1
        yield last
        emitted = 1
        cached = ids.shape[1]  # tokens in the target cache: everything but `last`
        _, d_cache = draft.prefill(ids)
        st.draft_steps += 1
        while emitted < max_new_tokens:
            room = limit - cached - 1  # positions left after `last`
            kk = min(k, max_new_tokens - emitted - 1, max(room, 0))  # the last token comes from the target
            proposal: list[int] = []
            tok = last
            for _ in range(kk):  # the draft extends its cache by `last`, d1 .. d(kk-1)
                d_logits, d_cache = draft.decode(torch.tensor([[tok]], dtype=torch.int64, device=device), d_cache)
                st.draft_steps += 1
                tok = int(d_logits[0].argmax().item())
                proposal.append(tok)
            block = torch.tensor([[last, *proposal]], dtype=torch.int64, device=device)
            v_logits, t_cache = all_logits(target, block, t_cache)
            st.target_steps += 1
            greedy = v_logits[0].argmax(-1).tolist()  # greedy[i]: the target's token after block[i]
            n = 0
            while n < kk and proposal[n] == greedy[n]:
                n += 1
            st.proposed += kk
            st.accepted += n
            new = [*proposal[:n], int(greedy[n])]
            new = new[: max_new_tokens - emitted]
            for t in new:
                st.emitted += 1
                emitted += 1
                yield t
            cached, t_cache, d_cache = _resync(draft, block, cached, n, t_cache, d_cache, st)
            last = new[-1]


def _resync(draft: Any, block: Any, cached: int, n: int, t_cache: Any, d_cache: Any, st: Any) -> tuple[int, Any, Any]:
    """After a verification step that accepted ``n`` proposals: both caches hold everything but
    the new last token (the old ``cached`` tokens, the step's first token and ``d1 .. dn``).
    The target's cache is cut back; the draft's is cut back, or, when every proposal was
    accepted, extended by the one token it has not seen (counted as a draft step).
    Returns ``(cached, t_cache, d_cache)``."""
    start, cached = cached, cached + 1 + n
    t_cache = truncate_cache(t_cache, cached)
    d_len = int(d_cache[0][0].shape[2])
    if d_len > cached:
        d_cache = truncate_cache(d_cache, cached)
    elif d_len < cached:
        _, d_cache = all_logits(draft, block[:, d_len - start : cached - start], d_cache)
        st.draft_steps += 1
    return cached, t_cache, d_cache


def _probs(logits: Any, temperature: float) -> Any:
    # deferred: torch is an optional extra, loaded only by torch cells
    import torch

    return torch.softmax(logits.double() / temperature, dim=-1)


def speculative_sample(
    target: Any,
    draft: Any,
    prompt_ids: np.ndarray,
    max_new_tokens: int,
    k: int,
    temperature: float,
    generator: Any,
    stats: SpecStats | None = None,
) -> Iterator[int]:
    """Sampled speculative decoding (batch 1, CPU): tokens distributed exactly as sampling the
    target at ``temperature`` (Leviathan et al. 2023, Chen et al. 2023).

    Draft token ``d`` drawn from the draft's ``q`` is accepted with probability
    ``min(1, p(d) / q(d))`` (``p``: the target's distribution at that position); at the first
    rejection a token is drawn from ``max(0, p - q)`` renormalised and the round ends; when all
    ``k`` are accepted one more is drawn from the target's next ``p``. ``generator`` is a seeded
    ``torch.Generator`` (every draw goes through it, so a seed fixes the output)."""
    # deferred: torch is an optional extra, loaded only by torch cells
    import torch

    if k < 1:
        raise ValueError(f"speculative decoding needs k >= 1, got {k}")
    if temperature <= 0:
        raise ValueError(f"sampling needs temperature > 0, got {temperature} (use speculative_generate for greedy)")
    st = stats if stats is not None else SpecStats()
    if max_new_tokens < 1:
        return

    def draw(p: Any) -> int:
        return int(torch.multinomial(p, 1, generator=generator).item())

    ids = torch.from_numpy(np.ascontiguousarray(prompt_ids, dtype=np.int64).reshape(1, -1))
    limit = int(target.n_positions)
    with torch.inference_mode():
        logits, t_cache = target.prefill(ids)
        st.target_steps += 1
        last = draw(_probs(logits[0], temperature))
        st.emitted += 1
        yield last
        emitted, cached = 1, ids.shape[1]
        _, d_cache = draft.prefill(ids)
        st.draft_steps += 1
        while emitted < max_new_tokens:
            kk = min(k, max_new_tokens - emitted - 1, max(limit - cached - 1, 0))
            proposal: list[int] = []
            qs: list[Any] = []
            tok = last
            for _ in range(kk):
                d_logits, d_cache = draft.decode(torch.tensor([[tok]], dtype=torch.int64), d_cache)
                st.draft_steps += 1
                q = _probs(d_logits[0], temperature)
                tok = draw(q)
                proposal.append(tok)
                qs.append(q)
            block = torch.tensor([[last, *proposal]], dtype=torch.int64)
            v_logits, t_cache = all_logits(target, block, t_cache)
            st.target_steps += 1
            ps = _probs(v_logits[0], temperature)  # ps[i]: the target's distribution after block[i]
            new: list[int] = []
            n = 0
            for i, d in enumerate(proposal):
                u = float(torch.rand((), generator=generator, dtype=torch.float64).item())
                if u < min(1.0, float(ps[i][d] / qs[i][d])):
                    new.append(d)
                    n += 1
                    continue
                residual = torch.clamp(ps[i] - qs[i], min=0.0)
                new.append(draw(residual / residual.sum()))
                break
            else:
                new.append(draw(ps[kk]))
            st.proposed += kk
            st.accepted += n
            new = new[: max_new_tokens - emitted]
            for t in new:
                st.emitted += 1
                emitted += 1
                yield t
            cached, t_cache, d_cache = _resync(draft, block, cached, n, t_cache, d_cache, st)
            last = new[-1]
