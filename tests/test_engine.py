"""Continuous-batching engine: scheduling rules (pure, and through the engine thread with a
fake stepping model), greedy equality with batch-1 generation on gpt2 tiny, the batched-stepping
contract of every backend, and the token-stream scenario through the runner."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests_support import fast_cell

from harness.core import plugins
from harness.measure.backends.base import PrefillChunk
from harness.measure.backends.null import NullBackend
from harness.measure.serving.engine import Engine
from harness.measure.serving.scheduler import EngineLimits, Scheduler, StepPlan
from workloads.registry import get_workload

# ---------------------------------------------------------------- scheduler rules


def test_admission_is_fifo_and_bounded_by_max_num_seqs() -> None:
    s = Scheduler(EngineLimits(max_num_seqs=2, max_batched_tokens=64))
    for rid in range(3):
        s.add(rid, prompt_len=4, max_new_tokens=3)
    p = s.plan()
    assert p.admitted == (0, 1) and p.chunks == ((0, 0, 4), (1, 0, 4)) and p.decodes == ()
    assert s.complete(p) == []  # each got its first token from the prefill
    p = s.plan()
    assert p == StepPlan(decodes=(0, 1), chunks=(), admitted=())  # request 2 waits: two running
    assert s.complete(p) == []
    p = s.plan()
    assert p.decodes == (0, 1) and p.admitted == ()
    assert s.complete(p) == [0, 1]  # 1 prefill token + 2 decode tokens = 3
    p = s.plan()
    assert p == StepPlan(decodes=(), chunks=((2, 0, 4),), admitted=(2,))
    s.complete(p)
    s.complete(s.plan())
    assert s.complete(s.plan()) == [2] and s.idle


def test_long_prompts_are_chunked_and_share_the_step_budget_with_decodes() -> None:
    s = Scheduler(EngineLimits(max_num_seqs=4, max_batched_tokens=8))
    s.add(0, prompt_len=20, max_new_tokens=2)
    s.add(1, prompt_len=6, max_new_tokens=3)
    plans = []
    while not s.idle:
        p = s.plan()
        assert p.tokens <= 8
        plans.append(p)
        s.complete(p)
    assert [(p.decodes, p.chunks) for p in plans] == [
        ((), ((0, 0, 8),)),  # the whole budget goes to request 0's first chunk
        ((), ((0, 8, 8),)),
        ((), ((0, 16, 4), (1, 0, 4))),  # the rest of the budget admits request 1
        ((0,), ((1, 4, 2),)),  # request 0 decodes (1 token); request 1 finishes its prompt
        ((1,), ()),  # request 0 finished with 2 tokens
        ((1,), ()),
    ]


def test_kv_budget_queues_requests_in_order() -> None:
    # each of the first two requests reserves 8 + 5 - 1 = 12 tokens; only one fits in 20
    s = Scheduler(EngineLimits(max_num_seqs=4, max_batched_tokens=64, kv_cache_tokens=20))
    s.add(0, prompt_len=8, max_new_tokens=5)
    s.add(1, prompt_len=8, max_new_tokens=5)
    s.add(2, prompt_len=2, max_new_tokens=2)  # fits (3 tokens) but may not overtake request 1
    p = s.plan()
    assert p.admitted == (0,) and s.kv_used == 12
    s.complete(p)  # prefill: first token
    for _ in range(3):
        p = s.plan()
        assert p == StepPlan(decodes=(0,), chunks=(), admitted=())
        assert s.complete(p) == []
    p = s.plan()
    assert p.admitted == () and s.complete(p) == [0] and s.kv_used == 0
    p = s.plan()
    assert p.admitted == (1, 2) and s.kv_used == 12 + 3


def test_requests_that_never_fit_and_bad_limits_are_rejected() -> None:
    s = Scheduler(EngineLimits(max_num_seqs=2, max_batched_tokens=8, kv_cache_tokens=10))
    with pytest.raises(ValueError, match="kv_cache_tokens=10"):
        s.add(0, prompt_len=8, max_new_tokens=4)  # needs 11
    with pytest.raises(ValueError, match="max_new_tokens >= 1"):
        s.add(1, prompt_len=3, max_new_tokens=0)
    with pytest.raises(ValueError, match="max_batched_tokens"):
        EngineLimits(max_num_seqs=8, max_batched_tokens=4)


# ---------------------------------------------------------------- engine thread, fake model


class FakeStepper(NullBackend):
    """Checks the stepping contract and returns ``1000 * seq_id + n`` for a sequence's n-th token."""

    def __init__(self) -> None:
        super().__init__()
        self.decode_batches: list[list[int]] = []
        self.prefill_calls: list[list[tuple[int, int, int]]] = []
        self.prompts: dict[int, list[int]] = {}
        self.count: dict[int, int] = {}
        self.released: list[int] = []

    def begin_stepping(self, max_num_seqs: int) -> None:
        self.max_num_seqs = max_num_seqs

    def prefill(self, chunks: Sequence[PrefillChunk]) -> list[int | None]:
        self.prefill_calls.append([(c.seq_id, c.start, int(c.token_ids.size)) for c in chunks])
        out: list[int | None] = []
        for c in chunks:
            got = self.prompts.setdefault(c.seq_id, [])
            assert c.start == len(got), "chunks arrive in order"
            got.extend(int(t) for t in c.token_ids)
            if c.last:
                self.count[c.seq_id] = 1
            out.append(1000 * c.seq_id if c.last else None)
        return out

    def decode_step(self, active: Sequence[tuple[int, int]]) -> list[int]:
        self.decode_batches.append([s for s, _ in active])
        out = []
        for s, last in active:
            assert last == 1000 * s + self.count[s] - 1, "the previous token is fed back"
            out.append(1000 * s + self.count[s])
            self.count[s] += 1
        return out

    def release(self, seq_id: int) -> None:
        self.released.append(seq_id)


def test_engine_runs_the_schedule_and_streams_every_token() -> None:
    be = FakeStepper()
    limits = EngineLimits(max_num_seqs=3, max_batched_tokens=6)
    tokens: dict[int, list[int]] = {}
    times: list[int] = []
    ticks = iter(range(10**6))

    def on_token(rid: int, tok: int, t: int) -> None:
        tokens.setdefault(rid, []).append(tok)
        times.append(t)

    eng = Engine(be, limits, clock=lambda: next(ticks), on_token=on_token)
    rng = np.random.default_rng(0)
    prompts = {rid: rng.integers(0, 100, size=int(n)) for rid, n in enumerate([3, 11, 1, 7, 5])}
    new = {0: 4, 1: 2, 2: 5, 3: 1, 4: 3}
    for rid, p in prompts.items():
        eng.submit(rid, p, new[rid])  # before start: the first step sees them all
    eng.start()
    assert eng.wait_idle(timeout_s=10)
    eng.close()
    assert tokens == {rid: [1000 * rid + k for k in range(new[rid])] for rid in prompts}
    assert {rid: be.prompts[rid] for rid in prompts} == {rid: p.tolist() for rid, p in prompts.items()}
    assert sorted(be.released) == list(prompts)
    assert max(len(b) for b in be.decode_batches) == 3  # continuous: several sequences per step
    assert all(len(b) <= 3 for b in be.decode_batches)
    assert all(sum(n for _, _, n in call) <= 6 for call in be.prefill_calls)
    assert eng.stats["decode_tokens"] == sum(new.values()) - len(prompts)
    assert eng.stats["prefill_tokens"] == sum(p.size for p in prompts.values())
    assert times == sorted(times)


def test_engine_error_reaches_the_caller() -> None:
    class Broken(FakeStepper):
        def decode_step(self, active: Sequence[tuple[int, int]]) -> list[int]:
            raise RuntimeError("device lost")

    eng = Engine(Broken(), EngineLimits(max_num_seqs=2, max_batched_tokens=8))
    eng.submit(0, np.arange(3), 4)
    eng.start()
    with pytest.raises(RuntimeError, match="device lost"):
        eng.wait_idle(timeout_s=10)
    with pytest.raises(RuntimeError, match="device lost"):
        eng.close()


def test_stop_drops_requests_not_yet_admitted() -> None:
    be = FakeStepper()
    eng = Engine(be, EngineLimits(max_num_seqs=1, max_batched_tokens=8))
    eng.on_admit = lambda rid, t: eng.stop(drop_waiting=True)  # a deadline passing after the first admission
    for rid in range(4):
        eng.submit(rid, np.arange(2), 3)
    eng.start()
    assert eng.wait_idle(timeout_s=10)
    eng.close()
    assert eng.stats["dropped"] == 3 and be.released == [0]  # the admitted one finishes


# ---------------------------------------------------------------- gpt2 tiny: same tokens as batch 1


def test_slot_decode_logits_match_the_growing_cache() -> None:
    import torch

    m = get_workload("gpt2", "tiny").build_torch().eval()
    rng = np.random.default_rng(1)
    prompts = [torch.from_numpy(rng.integers(0, 512, size=(1, n))) for n in (2, 9, 23)]
    with torch.inference_mode():
        ref = []
        for p in prompts:
            _, c = m.prefill(p)
            ref.append(m.decode(torch.tensor([[7]]), c)[0][0])
        pool = m.new_slot_cache(5)
        slots = [4, 1, 2]
        for s, p in zip(slots, prompts):
            m.prefill_slots(p[:, :1], pool, [s], [0])  # chunked: one token, then the rest
            if p.shape[1] > 1:
                m.prefill_slots(p[:, 1:], pool, [s], [1])
        got = m.decode_slots(torch.full((3, 1), 7), pool, slots, [p.shape[1] for p in prompts])
    torch.testing.assert_close(got, torch.stack(ref), atol=1e-5, rtol=1e-4)


def test_engine_greedy_tokens_equal_batch1_generate_on_gpt2_tiny() -> None:
    from harness.measure.backends.torch_backend import TorchBackend

    w = get_workload("gpt2", "tiny")
    be = TorchBackend()
    be.load(w)
    rng = np.random.default_rng(7)
    lens = [3, 17, 1, 30, 9, 12]
    prompts = [rng.integers(0, 512, size=n) for n in lens]
    new = [6, 3, 8, 5, 1, 7]
    ref = [list(be.generate(p, k)) for p, k in zip(prompts, new)]
    got: dict[int, list[int]] = {}
    # 3 sequences at once over 6 requests, 8 tokens per step: long prompts are chunked, decodes
    # run padded over different lengths, slots are reused after release
    eng = Engine(
        be,
        EngineLimits(max_num_seqs=3, max_batched_tokens=8),
        on_token=lambda rid, tok, t: got.setdefault(rid, []).append(tok),
    )
    for rid, (p, k) in enumerate(zip(prompts, new)):
        eng.submit(rid, p, k)
    eng.start()
    assert eng.wait_idle(timeout_s=60)
    eng.close()
    assert [got[i] for i in range(len(prompts))] == ref
    assert eng.stats["max_decode_batch"] == 3
    assert len({tuple(r) for r in ref}) > 1  # the outputs differ between prompts
    be.close()


# ---------------------------------------------------------------- backends' stepping contract


@pytest.mark.parametrize("name", plugins.names("backend"))
def test_stepping_capability_is_honest(name: str) -> None:
    cls = plugins.load("backend", name)
    ok, why = cls.available()
    if not cls.capabilities.batched_stepping:
        reason = cls().stepping_unsupported()
        assert isinstance(reason, str) and reason
        return
    if not ok:
        pytest.skip(f"backend {name!r} unavailable here: {why}")
    w = get_workload("gpt2", "tiny")
    b = cls()
    b.load(w, "cpu")
    assert b.stepping_unsupported() is None
    prompt = w.make_inputs(1, seed=3)["input_ids"][0][:8]
    ref = list(b.generate(prompt, 4))
    b.begin_stepping(2)
    first = b.prefill([PrefillChunk(5, prompt[:3], 0, False), PrefillChunk(9, prompt[:2], 0, False)])
    assert first == [None, None]
    first = b.prefill([PrefillChunk(5, prompt[3:], 3, True)])
    toks = [first[0]]
    for _ in range(3):
        assert toks[-1] is not None
        toks.append(b.decode_step([(5, toks[-1])])[0])
    assert toks == ref
    b.release(5)
    b.release(9)
    b.end_stepping()
    b.end_stepping()
    b.close()


def test_torch_without_slot_caches_says_why() -> None:
    from harness.measure.backends.torch_backend import TorchBackend

    b = TorchBackend()
    b.load(get_workload("tabular_mlp", "tiny"))
    assert "slot caches" in (b.stepping_unsupported() or "")
    with pytest.raises(NotImplementedError, match="slot caches"):
        b.begin_stepping(2)


# ---------------------------------------------------------------- scenario through the runner


def test_token_stream_cell_runs_the_continuous_engine(tmp_path: Path) -> None:
    from harness.measure.runner import run_cells
    from harness.store.results import load_raw

    opts: dict[str, Any] = {
        "mode": "closed",
        "concurrency": 4,
        "prompt_len": [4, 20],
        "output_len": [2, 6],
        "max_batched_tokens": 12,
    }
    cell = fast_cell(model="gpt2", backend="torch", scenario="token-stream", **opts)
    cell = cell.model_copy(update={"backend_options": {"threads": 1}})  # steady on a shared host (docs/scenarios.md)
    rec = run_cells([cell], name="engine", root=tmp_path, isolate=False)
    (c,) = rec.cells
    assert c.status == "ok", c.error
    assert c.extra["engine"] == "continuous" and "engine_fallback" not in c.extra
    assert c.extra["engine_limits"] == {"max_num_seqs": 4, "max_batched_tokens": 12, "kv_cache_tokens": None}
    stats = c.extra["engine_stats"]
    assert 1 < stats["max_decode_batch"] <= 4
    q = load_raw(rec, c.cell_id, root=tmp_path)
    assert (q["n_tokens"] == q["output_len"]).all() and len(q) >= 64
    assert (q["dispatch_ns"] >= q["issued_ns"]).all() and (q["first_token_ns"] > q["dispatch_ns"]).all()
    assert stats["decode_tokens"] + len(q) == q["n_tokens"].sum()  # first tokens come from prefills
    tpot, tput = c.metrics["tpot_p50"].value, c.metrics["output_tokens_per_s"].value
    assert tpot is not None and tpot > 0 and tput is not None and tput > 0
