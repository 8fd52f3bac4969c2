"""Iteration-level scheduling (continuous batching): which sequences run in the next step.

Rules, applied by :meth:`Scheduler.plan` once per step:

1. Every running sequence whose prompt is fully prefilled decodes one token.
2. The rest of the step's token budget (``max_batched_tokens``; a decode costs 1 token, a
   prefill chunk its length) goes to running sequences still prefilling, in admission order:
   each gets one chunk of ``min(prompt tokens left, budget left)``. A long prompt is thus
   prefilled over several steps while the others keep decoding.
3. Waiting requests are admitted in arrival order (FIFO, no overtaking) while fewer than
   ``max_num_seqs`` sequences run, budget is left for at least one prompt token, and the KV
   budget holds the request's reservation; each admitted one gets its first chunk at once.

KV budget: a request reserves ``prompt_len + max_new_tokens - 1`` cached tokens (the most its
cache can hold: the last token is never fed back) at admission and frees them when it finishes.
When ``kv_cache_tokens`` is set and the next request does not fit, it waits (queueing, no
preemption). A request that could never fit is rejected by :meth:`Scheduler.add`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class EngineLimits:
    """Limits of one engine: sequences at once, tokens per step, cached tokens in all."""

    max_num_seqs: int = 8
    max_batched_tokens: int = 512
    kv_cache_tokens: int | None = None  # None: no limit beyond max_num_seqs

    def __post_init__(self) -> None:
        if self.max_num_seqs < 1:
            raise ValueError(f"engine: max_num_seqs must be >= 1, got {self.max_num_seqs}")
        if self.max_batched_tokens < self.max_num_seqs:
            raise ValueError(
                f"engine: max_batched_tokens ({self.max_batched_tokens}) must be >= max_num_seqs "
                f"({self.max_num_seqs}) so that every running sequence can decode in each step"
            )
        if self.kv_cache_tokens is not None and self.kv_cache_tokens < 1:
            raise ValueError(f"engine: kv_cache_tokens must be >= 1 or unset, got {self.kv_cache_tokens}")


def kv_reservation(prompt_len: int, max_new_tokens: int) -> int:
    """Cached tokens a request can reach: prompt plus every generated token but the last."""
    return prompt_len + max_new_tokens - 1


@dataclass
class SeqState:
    """One request's progress: prompt tokens prefilled and tokens generated so far."""

    req_id: int
    prompt_len: int
    max_new_tokens: int
    prefilled: int = 0
    generated: int = 0

    @property
    def kv_tokens(self) -> int:
        return kv_reservation(self.prompt_len, self.max_new_tokens)

    @property
    def decoding(self) -> bool:
        return self.prefilled == self.prompt_len


@dataclass(frozen=True)
class StepPlan:
    """One step: ``decodes`` (request ids, one token each), prefill ``chunks`` as
    ``(req_id, start, length)``, and the ids ``admitted`` in this step (their first chunk is
    among ``chunks``)."""

    decodes: tuple[int, ...]
    chunks: tuple[tuple[int, int, int], ...]
    admitted: tuple[int, ...]

    @property
    def tokens(self) -> int:
        return len(self.decodes) + sum(n for _, _, n in self.chunks)

    @property
    def empty(self) -> bool:
        return not self.decodes and not self.chunks


class Scheduler:
    """Waiting queue, running set and KV accounting; see the module docstring for the rules."""

    def __init__(self, limits: EngineLimits) -> None:
        self.limits = limits
        self.waiting: deque[SeqState] = deque()
        self.running: dict[int, SeqState] = {}  # admission order
        self.kv_used = 0

    def add(self, req_id: int, prompt_len: int, max_new_tokens: int) -> None:
        """Queue a request. Raises ``ValueError`` for empty lengths or a request larger than
        the whole KV budget (it could never be admitted)."""
        if prompt_len < 1 or max_new_tokens < 1:
            raise ValueError(
                f"engine: request {req_id} needs prompt_len >= 1 and max_new_tokens >= 1, "
                f"got {prompt_len} and {max_new_tokens}"
            )
        need = kv_reservation(prompt_len, max_new_tokens)
        cap = self.limits.kv_cache_tokens
        if cap is not None and need > cap:
            raise ValueError(
                f"engine: request {req_id} needs {need} cached tokens (prompt {prompt_len} + "
                f"{max_new_tokens} new - 1), more than kv_cache_tokens={cap}"
            )
        self.waiting.append(SeqState(req_id, prompt_len, max_new_tokens))

    @property
    def idle(self) -> bool:
        return not self.waiting and not self.running

    def plan(self) -> StepPlan:
        """The next step (admits waiting requests; progress is applied by :meth:`complete`)."""
        lim = self.limits
        budget = lim.max_batched_tokens
        decodes = [s.req_id for s in self.running.values() if s.decoding]
        budget -= len(decodes)
        chunks: list[tuple[int, int, int]] = []
        for s in self.running.values():
            if budget == 0:
                break
            if not s.decoding:
                n = min(s.prompt_len - s.prefilled, budget)
                chunks.append((s.req_id, s.prefilled, n))
                budget -= n
        admitted: list[int] = []
        cap = lim.kv_cache_tokens
        while self.waiting and budget > 0 and len(self.running) < lim.max_num_seqs:
            s = self.waiting[0]
            if cap is not None and self.kv_used + s.kv_tokens > cap:
                break  # FIFO: nothing behind it overtakes
            self.waiting.popleft()
            self.running[s.req_id] = s
            self.kv_used += s.kv_tokens
            admitted.append(s.req_id)
            n = min(s.prompt_len, budget)
            chunks.append((s.req_id, 0, n))
            budget -= n
        return StepPlan(tuple(decodes), tuple(chunks), tuple(admitted))

    def complete(self, plan: StepPlan) -> list[int]:
        """Apply a step's progress; return the ids that finished (their KV is freed)."""
        run = self.running
        for rid in plan.decodes:
            run[rid].generated += 1
        for rid, start, n in plan.chunks:
            s = run[rid]
            if start != s.prefilled:
                raise RuntimeError(f"engine: chunk of request {rid} starts at {start}, {s.prefilled} prefilled")
            s.prefilled += n
            if s.decoding:
                s.generated = 1  # the last chunk yields the first token
        touched = dict.fromkeys([*plan.decodes, *(rid for rid, _, _ in plan.chunks)])
        finished = [rid for rid in touched if run[rid].generated >= run[rid].max_new_tokens]
        for rid in finished:
            self.kv_used -= run.pop(rid).kv_tokens
        return finished

    def drop_waiting(self) -> list[int]:
        """Remove every request not yet admitted; return their ids."""
        ids = [s.req_id for s in self.waiting]
        self.waiting.clear()
        return ids
