"""Token-stream scenario: decoder generation with a KV cache, open or closed loop.

Requests carry a prompt (``prompt_len`` tokens) and ask for ``output_len`` new tokens via
``backend.generate(prompt_ids, max_new_tokens)``, which yields each token id as it becomes
host-visible. Lengths are fixed or drawn uniformly from ``[lo, hi]`` (seeded); all prompts
are generated before the clock starts.

Load
----
* ``mode: open`` -- requests arrive on a seeded schedule at ``target_qps``
  (:mod:`harness.measure.load.arrivals`); up to ``max_concurrency`` requests are served at
  once, the rest wait in a FIFO queue. Time waiting counts: TTFT starts at the scheduled time.
* ``mode: closed`` -- ``concurrency`` clients, each sending its next request when the
  previous one finished (scheduled = issued).

Engine (``engine``)
-------------------
* ``continuous`` (default) -- one engine thread steps every active request at once
  (iteration-level scheduling, :mod:`harness.measure.serving`): per step one decode token for
  each running sequence plus prefill chunks, at most ``max_batched_tokens`` tokens and
  ``max_num_seqs`` sequences (default: ``max_concurrency`` open, ``concurrency`` closed);
  with ``kv_cache_tokens`` set, requests wait while their KV reservation does not fit. Needs a
  backend with batched stepping; otherwise the cell runs ``naive`` and records why in
  ``extra.engine_fallback``.
* ``naive`` -- one thread per request in service, each running batch-1 ``generate``.

Drivers: :mod:`harness.measure.scenarios.token_load`.

Definitions (MLPerf LLM / vLLM ``benchmark_serving``)
----------------------------------------------------
* TTFT = first token time - scheduled time.
* e2e latency = last token time - scheduled time (``latency_*``).
* TPOT = (e2e - TTFT) / (output tokens - 1), per request with >= 2 tokens.
* ITL = every gap between consecutive tokens of a request, pooled over all requests.
* output tokens/s = generated tokens / measurement window (first schedule -> last token).
* goodput = requests/s whose TTFT <= ``ttft_slo_ms`` and TPOT <= ``tpot_slo_ms`` (each SLO
  only when given), over the same window.

Raw rows: per request ``scheduled_ns``, ``issued_ns`` (handed to the server queue),
``dispatch_ns`` (service start; in closed mode all three are the same time),
``first_token_ns``, ``completed_ns`` (last token), ``n_tokens``, ``prompt_len``; per token
(``ScenarioResult.tokens``) ``query_id``, ``index``, ``t_ns``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from harness.core.clock import now_ns
from harness.core.metrics import Metric
from harness.core.stop import StopRule
from harness.measure.load import arrivals
from harness.measure.scenarios.base import CellContext, Scenario, ScenarioOptions, ScenarioResult
from harness.measure.scenarios.open_loop import LATE_FRACTION, LATE_NS
from harness.measure.scenarios.summary import latency_metrics
from harness.measure.scenarios.token_load import (
    TokenRecorder,
    choose_engine,
    run_closed,
    run_closed_engine,
    run_open,
    run_open_engine,
)
from harness.measure.serving.scheduler import EngineLimits, kv_reservation

Length = int | tuple[int, int]


class TokenStreamOptions(ScenarioOptions):
    """Options of the ``token-stream`` scenario."""

    mode: Literal["open", "closed"] = Field("closed", description="open: arrival rate; closed: fixed concurrency")
    target_qps: float = Field(1.0, gt=0, description="open loop: mean request arrival rate (requests/s)")
    arrival: Literal["poisson", "constant", "gamma"] = Field("poisson", description="open loop: arrival process")
    burstiness: float = Field(1.0, gt=0, description="gamma arrivals: CV^2 of the gaps")
    max_concurrency: int = Field(4, ge=1, description="open loop: requests served at once (worker threads)")
    concurrency: int = Field(1, ge=1, description="closed loop: clients, each with one request in flight")
    prompt_len: Length = Field(16, description="prompt tokens: an int or [lo, hi] drawn uniformly")
    output_len: Length = Field(16, description="new tokens per request: an int or [lo, hi] drawn uniformly")
    vocab_size: int | None = Field(None, ge=2, description="prompt token range (default: the workload's vocab)")
    ttft_slo_ms: float | None = Field(None, gt=0, description="TTFT SLO for goodput (ms)")
    tpot_slo_ms: float | None = Field(None, gt=0, description="TPOT SLO for goodput (ms)")
    engine: Literal["continuous", "naive"] = Field(
        "continuous",
        description="continuous: one engine thread steps all active requests (falls back to naive, "
        "with the reason recorded, when the backend has no batched stepping); naive: batch-1 per thread",
    )
    max_num_seqs: int | None = Field(
        None, ge=1, description="continuous: sequences at once (default: max_concurrency open, concurrency closed)"
    )
    max_batched_tokens: int = Field(
        512, ge=1, description="continuous: tokens per engine step (prefill chunks + one per decoding sequence)"
    )
    kv_cache_tokens: int | None = Field(
        None, ge=1, description="continuous: cached tokens over running sequences; requests wait when full"
    )

    @field_validator("prompt_len", "output_len", mode="before")
    @classmethod
    def _length(cls, v: Any) -> Any:
        if isinstance(v, list):
            v = tuple(v)
        if isinstance(v, tuple):
            if len(v) != 2 or not all(isinstance(x, int) for x in v) or not 1 <= v[0] <= v[1]:
                raise ValueError(f"a length range must be [lo, hi] with 1 <= lo <= hi, got {list(v)}")
        elif isinstance(v, int) and v < 1:
            raise ValueError(f"a length must be >= 1, got {v}")
        return v

    @model_validator(mode="after")
    def _check(self) -> TokenStreamOptions:
        if self.batch_size != 1:
            raise ValueError("token-stream: batch_size must be 1 (one request = one sequence)")
        seqs = self.engine_seqs
        if self.max_batched_tokens < seqs:
            raise ValueError(
                f"token-stream: max_batched_tokens ({self.max_batched_tokens}) must be >= max_num_seqs "
                f"({seqs}) so that every running sequence decodes in each step"
            )
        worst = kv_reservation(_bounds(self.prompt_len)[1], _bounds(self.output_len)[1])
        if self.kv_cache_tokens is not None and self.kv_cache_tokens < worst:
            raise ValueError(
                f"token-stream: kv_cache_tokens ({self.kv_cache_tokens}) is below what one request can "
                f"need ({worst} = largest prompt_len + largest output_len - 1)"
            )
        return self

    @property
    def engine_seqs(self) -> int:
        """Effective ``max_num_seqs`` of the continuous engine."""
        if self.max_num_seqs is not None:
            return self.max_num_seqs
        return self.max_concurrency if self.mode == "open" else self.concurrency

    def engine_limits(self) -> EngineLimits:
        return EngineLimits(self.engine_seqs, self.max_batched_tokens, self.kv_cache_tokens)


def _bounds(x: Length) -> tuple[int, int]:
    return (x, x) if isinstance(x, int) else (int(x[0]), int(x[1]))


def draw_requests(o: TokenStreamOptions, n: int, vocab: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Seeded prompts (int64 token ids) and output lengths for ``n`` requests."""
    rng = np.random.default_rng(seed)
    plo, phi = _bounds(o.prompt_len)
    olo, ohi = _bounds(o.output_len)
    plens = rng.integers(plo, phi + 1, size=n)
    olens = rng.integers(olo, ohi + 1, size=n).astype(np.int64)
    prompts = [rng.integers(0, vocab, size=int(k), dtype=np.int64) for k in plens]
    return prompts, olens


def _vocab(o: TokenStreamOptions, workload: Any) -> int:
    if o.vocab_size is not None:
        return o.vocab_size
    cfg = getattr(workload, "config", None)
    v = getattr(cfg, "vocab_size", None) or getattr(workload, "vocab_size", None)
    return int(v) if v else 2


def _check_context(o: TokenStreamOptions, workload: Any) -> None:
    cfg = getattr(workload, "config", None)
    n_pos = getattr(cfg, "n_positions", None)
    if n_pos is None:
        return
    worst = _bounds(o.prompt_len)[1] + _bounds(o.output_len)[1]
    if worst > n_pos:
        raise ValueError(
            f"token-stream: prompt_len + output_len can reach {worst} tokens, more than the "
            f"model's context (n_positions={n_pos}); lower prompt_len/output_len"
        )


def token_metrics(
    scheduled_ns: np.ndarray,
    token_times: list[list[int]],
    window_ns: tuple[int, int],
    ttft_slo_ms: float | None = None,
    tpot_slo_ms: float | None = None,
) -> tuple[dict[str, Metric], dict[str, np.ndarray]]:
    """Metrics per the module docstring, plus per-request ``ttft_ns``/``tpot_ns``/``e2e_ns``
    arrays (NaN where undefined). Requests with no token are not counted as completed."""

    n = len(token_times)
    sched = np.asarray(scheduled_ns, dtype=np.int64)
    n_tok = np.array([len(t) for t in token_times], dtype=np.int64)
    done = n_tok > 0
    first = np.array([t[0] if t else 0 for t in token_times], dtype=np.int64)
    last = np.array([t[-1] if t else 0 for t in token_times], dtype=np.int64)
    ttft = np.where(done, first - sched, np.nan)
    e2e = np.where(done, last - sched, np.nan)
    multi = n_tok >= 2
    tpot = np.full(n, np.nan)
    tpot[multi] = (e2e[multi] - ttft[multi]) / (n_tok[multi] - 1)
    itl = (
        np.concatenate([np.diff(np.asarray(t, dtype=np.int64)) for t in token_times if len(t) >= 2])
        if multi.any()
        else np.zeros(0, dtype=np.int64)
    )
    window_s = max(window_ns[1] - window_ns[0], 1) / 1e9
    m: dict[str, Metric] = {}
    if done.any():
        m.update(latency_metrics(e2e[done].astype(np.int64), 0.99, prefix="latency"))
        m.update(latency_metrics(ttft[done].astype(np.int64), 0.99, prefix="ttft"))
    if multi.any():
        m.update(latency_metrics(np.round(tpot[multi]).astype(np.int64), 0.99, prefix="tpot"))
    if itl.size:
        m.update(latency_metrics(itl, 0.99, prefix="itl"))
    total_tokens = int(n_tok.sum())
    m["output_tokens_per_s"] = Metric(
        value=total_tokens / window_s,
        unit="tokens/s",
        method="generated tokens / window (first schedule -> last token)",
    )
    m["requests_per_s"] = Metric(value=int(done.sum()) / window_s, unit="requests/s")
    ok = done.copy()
    if ttft_slo_ms is not None:
        ok &= ttft <= ttft_slo_ms * 1e6
    if tpot_slo_ms is not None:
        # a one-token request has no TPOT and does not violate a TPOT SLO
        ok &= ~multi | (tpot <= tpot_slo_ms * 1e6)
    if ttft_slo_ms is not None or tpot_slo_ms is not None:
        m["goodput"] = Metric(
            value=int(ok.sum()) / window_s,
            unit="requests/s",
            method=f"requests meeting TTFT <= {ttft_slo_ms} ms and TPOT <= {tpot_slo_ms} ms / window",
        )
    return m, {
        "ttft_ns": ttft,
        "tpot_ns": tpot,
        "e2e_ns": e2e,
        "n_tokens": n_tok,
        "first_token_ns": first,
        "completed_ns": last,
    }


def _closed_cap(o: TokenStreamOptions, warm: dict[str, Any], warm_parallel: int) -> int:
    """Requests to pre-generate for a closed loop: what the warm-up rate (``warm_parallel``
    requests at once) needs to cover ``min_duration_s`` at ``concurrency``, four times over (at
    least ``4 * min_queries``, at most 200 000)."""
    need = o.stop.min_queries * 4
    if warm.get("queries"):
        per_req_s = max(warm["duration_s"] / warm["queries"], 1e-6)
        scale = max(o.concurrency / warm_parallel, 1.0)
        need = max(need, math.ceil(o.stop.min_duration_s / per_req_s * scale * 4))
    return int(min(need, 200_000)) if warm.get("queries") else max(need, 1024)


def _warm_up(
    o: TokenStreamOptions, be: Any, vocab: int, seed: int, clock: Callable[[], int], limits: EngineLimits | None
) -> tuple[dict[str, Any], int]:
    """Both minimums, as for the other scenarios: ``warmup_queries`` requests and ``warmup_s``
    seconds, whichever comes later (capped like their warm-up loops). Through the engine
    (``limits`` given) ``max_num_seqs`` requests at once, else one by one.
    Returns the warm-up record and how many requests ran at once."""
    stop = o.stop
    if stop.warmup_queries <= 0 and stop.warmup_s <= 0:
        return {}, 1
    parallel = 1 if limits is None else limits.max_num_seqs
    wp, wl = draw_requests(o, max(stop.warmup_queries, parallel), vocab, seed)
    t = clock()
    min_ns, cap_ns = int(stop.warmup_s * 1e9), int((max(stop.warmup_s * 4, 1.0) + 30.0) * 1e9)
    done = 0
    while True:
        if limits is None:
            for _ in be.generate(wp[done % len(wp)], int(wl[done % len(wl)])):
                pass
            done += 1
        else:  # a round of up to len(wp) requests that stops once the rule above holds
            el = clock() - t
            rule = StopRule.model_validate(
                {
                    "min_queries": max(stop.warmup_queries - done, 1),
                    "min_duration_s": max(min_ns - el, 0) / 1e9,
                    "max_duration_s": max(cap_ns - el, 1) / 1e9,
                }
            )
            done += len(run_closed_engine(be, wp, wl, parallel, rule, limits, clock)[0].scheduled)
        el = clock() - t
        if (done >= stop.warmup_queries and el >= min_ns) or el >= cap_ns:
            break
    return {"queries": done, "duration_s": (clock() - t) / 1e9}, parallel


class TokenStreamScenario(Scenario):
    """Decoder token streams under an arrival rate or a fixed concurrency; headline TTFT p99."""

    name: ClassVar[str] = "token-stream"
    Options: ClassVar[type[ScenarioOptions]] = TokenStreamOptions
    headline: ClassVar[str] = "ttft_p99"

    def __init__(self, options: ScenarioOptions, clock: Callable[[], int] = now_ns) -> None:
        super().__init__(options)
        self.clock = clock

    def run(self, ctx: CellContext) -> ScenarioResult:
        o = self.options
        assert isinstance(o, TokenStreamOptions)
        _check_context(o, ctx.workload)
        be, clock, stop = ctx.backend, self.clock, o.stop
        vocab = _vocab(o, ctx.workload)
        engine, fallback = choose_engine(o.engine, be)
        limits = o.engine_limits() if engine == "continuous" else None
        warm, warm_parallel = _warm_up(o, be, vocab, ctx.seed + 1_000_003, clock, limits)
        engine_stats: dict[str, int] = {}
        rec: TokenRecorder
        if o.mode == "open":
            n = max(int(round(o.target_qps * stop.min_duration_s)), stop.min_queries)
            if stop.max_queries is not None:
                n = min(n, stop.max_queries)
            offs = arrivals.schedule(o.arrival, o.target_qps, count=n, seed=ctx.seed, burstiness=o.burstiness)
            prompts, olens = draw_requests(o, n, vocab, ctx.seed)
            deadline_ns = int(stop.max_duration_s * 1e9)
            with ctx.window():
                if limits is None:
                    rec, start = run_open(be, prompts, olens, offs, o.max_concurrency, deadline_ns, clock)
                else:
                    rec, start, engine_stats = run_open_engine(be, prompts, olens, offs, limits, deadline_ns, clock)
            span_end = start + int(round(n / o.target_qps * 1e9))
        else:
            cap = stop.max_queries or _closed_cap(o, warm, warm_parallel)
            prompts, olens = draw_requests(o, cap, vocab, ctx.seed)
            with ctx.window():
                if limits is None:
                    rec = run_closed(be, prompts, olens, o.concurrency, stop, clock)
                else:
                    rec, engine_stats = run_closed_engine(be, prompts, olens, o.concurrency, stop, limits, clock)
            start = rec.start_ns
            span_end = start
            n = len(rec.scheduled)
        sched = np.asarray(rec.scheduled, dtype=np.int64)
        issued = np.asarray(rec.issued, dtype=np.int64)
        ends = [t[-1] for t in rec.times if t]
        window = (start, max([span_end, *ends]))
        metrics, per = token_metrics(sched, rec.times, window, o.ttft_slo_ms, o.tpot_slo_ms)
        done = per["n_tokens"] > 0
        if o.mode == "open":
            metrics["offered_qps"] = Metric(
                value=o.target_qps, unit="queries/s", provenance="configured:target", method="target request rate"
            )
        delay = issued - sched
        queries = {
            "query_id": np.arange(n, dtype=np.int64),
            "batch_size": np.ones(n, dtype=np.int64),
            "scheduled_ns": sched,
            "issued_ns": issued,
            "dispatch_ns": np.asarray(rec.dispatch, dtype=np.int64),
            "first_token_ns": per["first_token_ns"],
            "completed_ns": per["completed_ns"],
            "n_tokens": per["n_tokens"],
            "output_len": olens[:n].astype(np.int64),
            "prompt_len": np.array([p.size for p in prompts[:n]], dtype=np.int64),
        }
        qid = (
            np.concatenate([np.full(len(t), i, dtype=np.int64) for i, t in enumerate(rec.times)])
            if n
            else np.zeros(0, dtype=np.int64)
        )
        tokens = {
            "query_id": qid,
            "index": np.concatenate([np.arange(len(t), dtype=np.int64) for t in rec.times]) if n else qid,
            "t_ns": np.concatenate([np.asarray(t, dtype=np.int64) for t in rec.times]) if n else qid,
        }
        elapsed = window[1] - window[0]
        validity = {
            "min_duration_met": elapsed >= stop.min_duration_s * 1e9,
            "min_queries_met": int(done.sum()) >= stop.min_queries,
            "all_completed": bool(np.all(per["n_tokens"] == queries["output_len"])),
        }
        if o.mode == "open":
            sent = issued > 0
            late = float(np.mean(delay[sent] > LATE_NS)) if sent.any() else 1.0
            validity["generator_kept_up"] = late <= LATE_FRACTION
        extra: dict[str, Any] = {
            "mode": o.mode,
            "requests": n,
            "tokens": int(per["n_tokens"].sum()),
            "window_ns": elapsed,
            "definitions": "TTFT=first-scheduled; TPOT=(e2e-TTFT)/(n-1); ITL pooled gaps",
            "engine": engine,
        }
        if fallback:
            extra["engine_requested"] = o.engine
            extra["engine_fallback"] = fallback
        if limits is not None:
            extra["engine_limits"] = {
                "max_num_seqs": limits.max_num_seqs,
                "max_batched_tokens": limits.max_batched_tokens,
                "kv_cache_tokens": limits.kv_cache_tokens,
            }
            extra["engine_stats"] = engine_stats
        return ScenarioResult(queries, metrics, validity, warm, tokens=tokens, extra=extra, window_ns=window)
