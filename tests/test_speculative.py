"""Speculative decoding: the output equals the target's own greedy output token for token,
whatever the draft proposes; the counters add up."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness.measure.speculative import SpecStats, greedy_generate, speculative_generate  # noqa: E402
from workloads.gpt2_draft import all_logits, truncated_draft  # noqa: E402
from workloads.registry import get_workload  # noqa: E402


@pytest.fixture(scope="module")
def target():
    return get_workload("gpt2", "tiny").build_torch().eval()


def _prompts(n: int, length: int = 16, vocab: int = 512) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, vocab, size=length, dtype=np.int64) for _ in range(n)]


@pytest.mark.parametrize("k", [1, 2, 4, 7])
def test_output_equals_target_greedy_with_a_truncated_draft(target, k):
    draft = truncated_draft(target, 1)
    for prompt in _prompts(3):
        want = greedy_generate(target, prompt, 20)
        st = SpecStats()
        got = list(speculative_generate(target, draft, prompt, 20, k, st))
        assert got == want
        assert st.emitted == 20
        assert 0 <= st.accepted <= st.proposed
        # every target step emits the accepted tokens plus one
        assert st.emitted == st.accepted + st.target_steps


def test_output_equals_target_greedy_with_an_unrelated_draft(target):
    """A draft with other weights is mostly rejected; the output is still the target's."""
    from workloads.nets.transformer import GPT2LM

    torch.manual_seed(123)
    other = GPT2LM(512, 32, 1, 2, 128).eval()
    prompt = _prompts(1)[0]
    st = SpecStats()
    got = list(speculative_generate(target, other, prompt, 24, 4, st))
    assert got == greedy_generate(target, prompt, 24)
    assert st.acceptance_rate is not None and st.acceptance_rate < 1.0


def test_a_draft_equal_to_the_target_is_always_accepted(target):
    prompt = _prompts(1)[0]
    st = SpecStats()
    got = list(speculative_generate(target, target, prompt, 21, 4, st))
    assert got == greedy_generate(target, prompt, 21)
    assert st.acceptance_rate == 1.0
    # the prefill's token, then rounds of 4 accepted + 1 from the target: 1 + 4 * 5 = 21 tokens
    assert st.target_steps == 1 + 4
    assert st.tokens_per_target_step == pytest.approx(21 / 5)


def test_all_logits_last_position_matches_decode(target):
    ids = torch.from_numpy(_prompts(1)[0].reshape(1, -1))
    _, cache = target.prefill(ids[:, :10])
    with torch.inference_mode():
        every, _ = all_logits(target, ids[:, 10:], cache)
        ref = target(ids)
    assert every.shape == (1, 6, 512)
    torch.testing.assert_close(every[:, -1], ref, rtol=1e-4, atol=1e-5)


def test_truncated_draft_shares_the_target_parameters(target):
    draft = truncated_draft(target, 1)
    assert len(draft.blocks) == 1 and draft.blocks[0] is target.blocks[0]
    assert draft.wte.weight.data_ptr() == target.wte.weight.data_ptr()
    with pytest.raises(ValueError, match="draft layers"):
        truncated_draft(target, 2)


def test_k_below_one_is_an_error(target):
    with pytest.raises(ValueError, match="k >= 1"):
        list(speculative_generate(target, target, _prompts(1)[0], 4, 0))


def _toy(layers: int, seed: int):
    """A GPT2LM with 8 tokens and peaked (std 1) random weights: distinct, far-from-uniform
    next-token distributions."""
    from workloads.nets.transformer import GPT2LM

    torch.manual_seed(seed)
    m = GPT2LM(8, 8, layers, 2, 16).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 1.0)
    return m


@pytest.mark.slow
def test_sampled_speculative_tokens_follow_the_target_distribution():
    """Second and third tokens of sampled speculative decoding against their exact marginals
    under the target alone (chi-square, seeded, so the verdict is fixed)."""
    from scipy.stats import chisquare

    from harness.measure.speculative import speculative_sample

    target, draft = _toy(2, 0), _toy(1, 1)
    prompt = np.array([1, 2, 3], dtype=np.int64)

    def p_next(seq):
        with torch.inference_mode():
            return torch.softmax(target(torch.tensor([seq])).double()[0], -1).numpy()

    p1 = p_next([1, 2, 3])
    m2, m3 = np.zeros(8), np.zeros(8)
    for a in range(8):
        p2 = p_next([1, 2, 3, a])
        m2 += p1[a] * p2
        for b in range(8):
            m3 += p1[a] * p2[b] * p_next([1, 2, 3, a, b])
    gen = torch.Generator().manual_seed(1234)
    st = SpecStats()
    n = 200
    c2, c3 = np.zeros(8), np.zeros(8)
    for _ in range(n):
        toks = list(speculative_sample(target, draft, prompt, 3, 4, 1.0, gen, st))
        assert len(toks) == 3
        c2[toks[1]] += 1
        c3[toks[2]] += 1
    assert 0 < st.accepted < st.proposed  # both branches of the rule ran
    for counts, exact in ((c2, m2), (c3, m3)):
        keep = exact * n >= 5  # chi-square needs expected counts of at least 5
        exp = exact[keep] * n
        obs = counts[keep]
        exp *= obs.sum() / exp.sum()
        assert chisquare(obs, exp).pvalue > 1e-3, (counts, exact * n)
