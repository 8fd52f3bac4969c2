"""Transformer encoder (BERT-style) and decoder (GPT-2-style) built on
``torch.nn.functional.scaled_dot_product_attention``.

Weights follow the usual transformer initialisation (normal, std ``init_std``; LayerNorm 1/0),
drawn from the caller-seeded global RNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

#: per-layer ``(key, value)``, each ``[B, heads, T_cached, head_dim]``
KVCache = tuple[tuple[torch.Tensor, torch.Tensor], ...]

#: per-layer ``(key, value)`` slot pools, each ``[slots, heads, n_positions, head_dim]``: slot ``s``
#: holds one sequence whose first ``length`` positions are valid (the caller tracks lengths)
SlotCache = tuple[tuple[torch.Tensor, torch.Tensor], ...]


def _init_weights(module: nn.Module, std: float) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, t, h = x.shape
    return x.view(b, t, heads, h // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, n, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, n * d)


# --------------------------------------------------------------------------- encoder


class EncoderLayer(nn.Module):
    """Post-LayerNorm encoder layer (BERT)."""

    def __init__(self, hidden: int, heads: int, ffn: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=eps)
        self.ffn_in = nn.Linear(hidden, ffn)
        self.act = nn.GELU()
        self.ffn_out = nn.Linear(ffn, hidden)
        self.ffn_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        q = _split_heads(self.query(x), self.heads)
        k = _split_heads(self.key(x), self.heads)
        v = _split_heads(self.value(x), self.heads)
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=additive_mask)
        x = self.attn_norm(x + self.attn_out(_merge_heads(ctx)))
        out: torch.Tensor = self.ffn_norm(x + self.ffn_out(self.act(self.ffn_in(x))))
        return out


class BertClassifier(nn.Module):
    """``input_ids [B, T]`` int64 and ``attention_mask [B, T]`` int64 (1 = token, 0 = padding)
    -> logits ``[B, num_labels]`` from the pooled first ([CLS]) position."""

    def __init__(
        self,
        vocab_size: int,
        hidden: int,
        layers: int,
        heads: int,
        ffn: int,
        max_positions: int,
        type_vocab_size: int,
        num_labels: int,
        eps: float = 1e-12,
        init_std: float = 0.02,
    ) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden)
        self.position_embeddings = nn.Embedding(max_positions, hidden)
        self.token_type_embeddings = nn.Embedding(type_vocab_size, hidden)
        self.embed_norm = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList(EncoderLayer(hidden, heads, ffn, eps) for _ in range(layers))
        self.pooler = nn.Linear(hidden, hidden)
        self.pool_act = nn.Tanh()
        self.classifier = nn.Linear(hidden, num_labels)
        _init_weights(self, init_std)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        t = input_ids.shape[1]
        pos = torch.arange(t, device=input_ids.device).unsqueeze(0)
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(pos)
            + self.token_type_embeddings(torch.zeros_like(input_ids))
        )
        x = self.embed_norm(x)
        # [B, 1, 1, T] additive mask: 0 where attended, large negative where padded
        additive = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, additive)
        pooled = self.pool_act(self.pooler(x[:, 0]))
        logits: torch.Tensor = self.classifier(pooled)
        return logits


# --------------------------------------------------------------------------- decoder


class SlotIndex(NamedTuple):
    """Where one step's tokens go in a :data:`SlotCache`: row ``b`` belongs to the sequence in
    ``slots[b]`` at ``positions[b]``; attention reads the first ``t_read`` positions through the
    additive ``mask [B, 1, t, t_read]`` (``None``: every row sees all of them, or, with
    ``causal``, rows are whole prompts from position 0 under a causal mask). ``first`` is the
    first slot when the slots are consecutive, ``single`` the ``(slot, start)`` of a one-row step
    (``slots`` is then not needed and may be ``None``)."""

    slots: torch.Tensor | None
    positions: torch.Tensor
    t_read: int
    mask: torch.Tensor | None
    first: int | None
    single: tuple[int, int] | None
    causal: bool = False


class DecoderBlock(nn.Module):
    """Pre-LayerNorm causal block (GPT-2) that can extend a key/value cache."""

    def __init__(self, hidden: int, heads: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(hidden, eps=eps)
        self.c_attn = nn.Linear(hidden, 3 * hidden)
        self.c_proj = nn.Linear(hidden, hidden)
        self.ln_2 = nn.LayerNorm(hidden, eps=eps)
        self.mlp_fc = nn.Linear(hidden, 4 * hidden)
        self.act = nn.GELU(approximate="tanh")
        self.mlp_proj = nn.Linear(4 * hidden, hidden)

    def forward(
        self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        q, k, v = self.c_attn(self.ln_1(x)).split(x.shape[-1], dim=2)
        q, k, v = (_split_heads(t, self.heads) for t in (q, k, v))
        t_new = q.shape[2]
        if past is None:
            ctx = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
            if t_new == 1:  # one new token attends to everything cached
                ctx = F.scaled_dot_product_attention(q, k, v)
            else:
                t_all = k.shape[2]
                mask = torch.ones(t_new, t_all, dtype=torch.bool, device=x.device).tril(diagonal=t_all - t_new)
                ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self._finish(x, ctx), (k, v)

    def _finish(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        x = x + self.c_proj(_merge_heads(ctx))
        x = x + self.mlp_proj(self.act(self.mlp_fc(self.ln_2(x))))
        return x

    def forward_slots(self, x: torch.Tensor, pool: tuple[torch.Tensor, torch.Tensor], at: SlotIndex) -> torch.Tensor:
        """``x [B, t, hidden]``, the tokens at ``at.positions`` of the sequences in ``at.slots``:
        writes their keys/values into ``pool`` and attends to the slots' caches (see :class:`SlotIndex`)."""
        q, k, v = self.c_attn(self.ln_1(x)).split(x.shape[-1], dim=2)
        q, k, v = (_split_heads(t, self.heads) for t in (q, k, v))
        pool_k, pool_v = pool
        if at.single is not None:  # one sequence: plain slices, no index kernels
            slot, start = at.single
            pool_k[slot, :, start : start + k.shape[2]] = k[0]
            pool_v[slot, :, start : start + v.shape[2]] = v[0]
        else:
            assert at.slots is not None
            rows = at.slots[:, None]
            pool_k[rows, :, at.positions] = k.transpose(1, 2)
            pool_v[rows, :, at.positions] = v.transpose(1, 2)
        if at.first is not None:  # consecutive slots: read a view instead of gathering
            lo, hi = at.first, at.first + x.shape[0]
            keys, values = pool_k[lo:hi, :, : at.t_read], pool_v[lo:hi, :, : at.t_read]
        else:
            assert at.slots is not None
            keys, values = pool_k[at.slots, :, : at.t_read], pool_v[at.slots, :, : at.t_read]
        ctx = F.scaled_dot_product_attention(q, keys, values, attn_mask=at.mask, is_causal=at.causal)
        return self._finish(x, ctx)


class GPT2LM(nn.Module):
    """Causal language model with tied input/output embeddings.

    * ``forward(input_ids [B, T]) -> logits [B, vocab]`` of the last position (no cache kept).
    * ``prefill(input_ids) -> (logits [B, vocab], cache)``
    * ``decode(next_ids [B, 1], cache) -> (logits [B, vocab], cache)`` appends to the cache.

    Batched stepping over per-sequence caches (continuous batching): ``new_slot_cache(slots)``
    allocates one cache slot per sequence; ``prefill_slots`` runs equal-length prompt chunks of
    one or more sequences and ``decode_slots`` one new token for each of several sequences of different lengths (the
    shorter ones' unused positions are masked out).
    """

    def __init__(
        self,
        vocab_size: int,
        hidden: int,
        layers: int,
        heads: int,
        n_positions: int,
        eps: float = 1e-5,
        init_std: float = 0.02,
    ) -> None:
        super().__init__()
        self.n_positions = n_positions
        self.wte = nn.Embedding(vocab_size, hidden)
        self.wpe = nn.Embedding(n_positions, hidden)
        self.blocks = nn.ModuleList(DecoderBlock(hidden, heads, eps) for _ in range(layers))
        self.ln_f = nn.LayerNorm(hidden, eps=eps)
        _init_weights(self, init_std)

    def _run(self, ids: torch.Tensor, cache: KVCache | None) -> tuple[torch.Tensor, KVCache]:
        past_len = 0 if cache is None else cache[0][0].shape[2]
        t = ids.shape[1]
        if past_len + t > self.n_positions:
            raise ValueError(f"sequence length {past_len + t} exceeds the context of {self.n_positions}")
        pos = torch.arange(past_len, past_len + t, device=ids.device).unsqueeze(0)
        x = self.wte(ids) + self.wpe(pos)
        new_cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, None if cache is None else cache[i])
            new_cache.append(kv)
        last = self.ln_f(x[:, -1])
        logits = F.linear(last, self.wte.weight)
        return logits, tuple(new_cache)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self._run(input_ids, None)[0]

    def prefill(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, KVCache]:
        return self._run(input_ids, None)

    def decode(self, next_ids: torch.Tensor, cache: KVCache) -> tuple[torch.Tensor, KVCache]:
        if next_ids.dim() != 2 or next_ids.shape[1] != 1:
            raise ValueError(f"decode expects next_ids of shape [B, 1], got {tuple(next_ids.shape)}")
        return self._run(next_ids, cache)

    # ------------------------------------------------------------ slot caches (batched stepping)

    def new_slot_cache(self, slots: int) -> SlotCache:
        """Zeroed key/value pools for ``slots`` sequences of up to ``n_positions`` tokens, in the
        module's dtype and device (``2 * layers * slots * n_positions * hidden`` elements)."""
        w = self.wte.weight
        out = []
        for block in self.blocks:
            assert isinstance(block, DecoderBlock)
            shape = (slots, block.heads, self.n_positions, w.shape[1] // block.heads)
            out.append((w.new_zeros(shape), w.new_zeros(shape)))
        return tuple(out)

    def _run_slots(
        self, ids: torch.Tensor, cache: SlotCache, slots: Sequence[int], starts: Sequence[int]
    ) -> torch.Tensor:
        b, t = ids.shape
        if len(slots) != b or len(starts) != b:
            raise ValueError(f"{b} rows of ids need {b} slots and starts, got {len(slots)} and {len(starts)}")
        t_read = max(starts) + t
        if t_read > self.n_positions:
            raise ValueError(f"sequence length {t_read} exceeds the context of {self.n_positions}")
        dev = ids.device
        if b == 1:
            positions = torch.arange(starts[0], starts[0] + t, device=dev)[None, :]  # [1, t]
        else:
            start_t = torch.tensor(starts, dtype=torch.int64, device=dev)
            positions = start_t[:, None] + torch.arange(t, device=dev)[None, :]  # [B, t]
        mask: torch.Tensor | None = None
        causal = t > 1 and max(starts) == 0  # whole prompts: the plain causal mask
        if not causal and (t > 1 or min(starts) != max(starts)):
            # token i of row b sees cached positions 0 .. starts[b] + i; additive, built once per step
            seen = torch.arange(t_read, device=dev)[None, None, :] <= positions[:, :, None]
            mask = torch.zeros(seen.shape, dtype=self.wte.weight.dtype, device=dev)
            mask = mask.masked_fill(~seen, float("-inf"))[:, None]  # [B, 1, t, T]
        x = self.wte(ids) + self.wpe(positions)
        consecutive = list(slots) == list(range(slots[0], slots[0] + b))
        at = SlotIndex(
            None if b == 1 else torch.tensor(slots, dtype=torch.int64, device=dev),
            positions,
            t_read,
            mask,
            slots[0] if consecutive else None,
            (slots[0], starts[0]) if b == 1 else None,
            causal,
        )
        for block, pool in zip(self.blocks, cache):
            assert isinstance(block, DecoderBlock)
            x = block.forward_slots(x, pool, at)
        return F.linear(self.ln_f(x[:, -1]), self.wte.weight)

    def prefill_slots(
        self, ids: torch.Tensor, cache: SlotCache, slots: Sequence[int], starts: Sequence[int]
    ) -> torch.Tensor:
        """Prompt chunks ``ids [B, t]`` (equal lengths), row ``b`` at positions ``starts[b] ..
        starts[b] + t - 1`` of the sequence in ``slots[b]`` (its earlier positions already cached)
        -> logits ``[B, vocab]`` of each row's last token."""
        if ids.dim() != 2:
            raise ValueError(f"prefill_slots expects ids of shape [B, t], got {tuple(ids.shape)}")
        return self._run_slots(ids, cache, slots, starts)

    def decode_slots(
        self, next_ids: torch.Tensor, cache: SlotCache, slots: Sequence[int], lengths: Sequence[int]
    ) -> torch.Tensor:
        """One token per sequence: ``next_ids [B, 1]`` for the sequences in ``slots`` holding
        ``lengths`` cached tokens each -> logits ``[B, vocab]``; each cache grows by one."""
        if next_ids.dim() != 2 or next_ids.shape[1] != 1:
            raise ValueError(f"decode_slots expects next_ids of shape [B, 1], got {tuple(next_ids.shape)}")
        return self._run_slots(next_ids, cache, slots, lengths)
