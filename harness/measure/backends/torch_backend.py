"""PyTorch backend: eager under ``inference_mode``, optional ``torch.compile``.

Options: ``threads`` (intra-op threads), ``interop_threads``, ``compile`` (bool),
``compile_mode`` (``default``/``reduce-overhead``/``max-autotune``), ``dtype``
(``fp32``/``bf16``/``fp16``; floating inputs are cast, integer inputs kept).

On ``cuda`` devices each model instance (each calling thread, via
:class:`~harness.measure.backends.instances.InstancePool`) runs on its own CUDA stream and
``infer`` waits on an event recorded on that stream, never on the whole device, so one instance
is not charged for another's work (timing scope :data:`CUDA_TIMING_SCOPE`). ``prepare``
(untimed) synchronises the device once the inputs are staged. CPU timing is unchanged
(:data:`CPU_TIMING_SCOPE`).

Generation: ``generate`` (batch 1, the module's growing KV cache) and batched stepping over the
module's slot caches (``new_slot_cache``/``prefill_slots``/``decode_slots``, see
:class:`workloads.nets.transformer.GPT2LM`), greedy in both; tokens are read with ``tolist``
or ``item``, so they are host-visible when returned. Both run the eager module.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from harness.measure.backends.base import Backend, BackendUnavailable, Capabilities, PrefillChunk
from harness.measure.backends.instances import InstancePool

_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}

CPU_TIMING_SCOPE = "staged host tensors -> outputs returned by the module (synchronous CPU execution)"
CUDA_TIMING_SCOPE = (
    "staged inputs on device -> outputs complete on device (event on this instance's CUDA stream "
    "synchronised; no device-to-host copy)"
)


class _Lane:
    """One model instance's CUDA stream and the event ``infer`` completes on."""

    __slots__ = ("event", "stream")

    def __init__(self, stream: Any, event: Any) -> None:
        self.stream = stream
        self.event = event


class TorchBackend(Backend):
    name: ClassVar[str] = "torch"
    capabilities: ClassVar[Capabilities] = Capabilities(
        devices=("cpu", "cuda"),
        dtypes=("fp32", "bf16", "fp16"),
        streaming=True,
        batched_stepping=True,
        options={
            "threads": "intra-op threads (torch.set_num_threads); default: library default",
            "interop_threads": "inter-op threads (set once per process)",
            "compile": "wrap the module in torch.compile (bool)",
            "compile_mode": "torch.compile mode: default | reduce-overhead | max-autotune",
            "dtype": "fp32 | bf16 | fp16",
        },
    )

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import torch  # noqa: F401
        except ImportError:
            return False, "torch is not installed: pip install 'inference-harness[torch]'"
        return True, ""

    def load(self, workload: Any, device: str = "cpu") -> None:
        # deferred: torch is an optional extra, loaded only by this backend
        try:
            import torch
        except ImportError as exc:
            raise BackendUnavailable(self.available()[1]) from exc
        self._torch = torch
        dtype_name = self.options.get("dtype", "fp32")
        if dtype_name not in _DTYPES:
            raise ValueError(f"torch backend: dtype {dtype_name!r} not one of {sorted(_DTYPES)}")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable("device 'cuda' requested but torch.cuda.is_available() is False")
        if "threads" in self.options:
            torch.set_num_threads(int(self.options["threads"]))
        if "interop_threads" in self.options:
            try:
                torch.set_num_interop_threads(int(self.options["interop_threads"]))
            except RuntimeError as exc:  # settable once per process; describe() shows the effective value
                self._interop_error = str(exc)
        self.device = device
        self._dtype = getattr(torch, _DTYPES[dtype_name])
        module = workload.build_torch().eval().to(device=device, dtype=self._dtype)
        self._eager = module
        if self.options.get("compile", False):
            module = torch.compile(module, mode=self.options.get("compile_mode", "default"))
        self._module = module
        self._cuda = device.startswith("cuda")
        self._lanes: InstancePool[_Lane] = InstancePool(self._new_lane)

    def _new_lane(self) -> _Lane:
        """A non-default stream on this device and its event (the seam tests use with fakes)."""
        cuda = self._torch.cuda
        return _Lane(cuda.Stream(device=self.device), cuda.Event())

    def prepare(self, inputs: Mapping[str, np.ndarray]) -> tuple[Any, ...]:
        torch = self._torch
        out = []
        for arr in inputs.values():
            t = torch.from_numpy(np.ascontiguousarray(arr)).to(self.device)
            if t.is_floating_point():
                t = t.to(self._dtype)
            out.append(t)
        if self._cuda:  # staged: every instance stream may read the inputs before a clock starts
            torch.cuda.synchronize(torch.device(self.device))
        return tuple(out)

    def infer(self, prepared: tuple[Any, ...]) -> Any:
        torch = self._torch
        if not self._cuda:
            with torch.inference_mode():
                return self._module(*prepared)
        lane = self._lanes.get()
        with torch.cuda.stream(lane.stream), torch.inference_mode():
            out = self._module(*prepared)
            lane.event.record(lane.stream)
        lane.event.synchronize()
        return out

    def compute_dtype(self) -> str:
        """Precision of this variant (parity tolerance): the ``dtype`` option."""
        return str(self.options.get("dtype", "fp32"))

    def to_numpy(self, outputs: Any) -> list[np.ndarray]:
        if isinstance(outputs, Mapping):
            outputs = list(outputs.values())
        if not isinstance(outputs, (tuple, list)):
            outputs = [outputs]
        return [o.detach().float().cpu().numpy() for o in outputs]

    def generate(self, prompt_ids: np.ndarray, max_new_tokens: int) -> Iterator[int]:
        """Greedy generation with the module's KV cache: ``prefill`` then ``decode`` per token.
        Each yield happens after ``.item()``, i.e. once the token is host-visible."""
        torch = self._torch
        m = self._eager
        if not (hasattr(m, "prefill") and hasattr(m, "decode")):
            raise NotImplementedError("this workload has no prefill/decode (not a generative model)")
        ids = torch.from_numpy(np.ascontiguousarray(prompt_ids).reshape(1, -1)).to(self.device)
        with torch.inference_mode():
            logits, cache = m.prefill(ids)
            tok = int(logits[0].argmax().item())
            yield tok
            for _ in range(max_new_tokens - 1):
                nxt = torch.tensor([[tok]], dtype=ids.dtype, device=self.device)
                logits, cache = m.decode(nxt, cache)
                tok = int(logits[0].argmax().item())
                yield tok

    def stepping_unsupported(self) -> str | None:
        m = getattr(self, "_eager", None)
        if m is None:
            return "torch backend: load() a workload before batched stepping"
        if not all(hasattr(m, a) for a in ("new_slot_cache", "prefill_slots", "decode_slots")):
            return "this workload's module has no slot caches (new_slot_cache/prefill_slots/decode_slots)"
        return None

    def begin_stepping(self, max_num_seqs: int) -> None:
        why = self.stepping_unsupported()
        if why:
            raise NotImplementedError(why)
        self._slots = self._eager.new_slot_cache(max_num_seqs)
        self._free = list(range(max_num_seqs - 1, -1, -1))
        self._slot_of: dict[int, int] = {}
        self._len: dict[int, int] = {}  # seq_id -> tokens cached

    def prefill(self, chunks: Sequence[PrefillChunk]) -> list[int | None]:
        """Chunks of equal length run as one batch (one forward per distinct length)."""
        torch, m = self._torch, self._eager
        groups: dict[int, list[int]] = {}
        for k, c in enumerate(chunks):
            if c.start == 0:
                if c.seq_id in self._slot_of:
                    raise ValueError(f"prefill: sequence {c.seq_id} already holds a cache; release it first")
                if not self._free:
                    raise RuntimeError(f"prefill: all {len(self._slot_of)} sequence caches are in use")
                self._slot_of[c.seq_id] = self._free.pop()
            elif self._len.get(c.seq_id) != c.start:
                raise ValueError(
                    f"prefill: chunk of sequence {c.seq_id} starts at {c.start}, "
                    f"but {self._len.get(c.seq_id)} tokens are cached"
                )
            self._len[c.seq_id] = c.start + int(c.token_ids.size)
            groups.setdefault(int(c.token_ids.size), []).append(k)
        firsts: dict[int, Any] = {}
        with torch.inference_mode():
            for ks in groups.values():
                rows = np.stack([np.asarray(chunks[k].token_ids, dtype=np.int64).reshape(-1) for k in ks])
                logits = m.prefill_slots(
                    torch.from_numpy(rows).to(self.device),
                    self._slots,
                    [self._slot_of[chunks[k].seq_id] for k in ks],
                    [chunks[k].start for k in ks],
                )
                want = [j for j, k in enumerate(ks) if chunks[k].last]
                if want:
                    for j, tok in zip(want, logits[want].argmax(-1).tolist()):
                        firsts[ks[j]] = int(tok)
        return [firsts[k] if c.last else None for k, c in enumerate(chunks)]

    def decode_step(self, active: Sequence[tuple[int, int]]) -> list[int]:
        if not active:
            return []
        torch = self._torch
        seqs = [s for s, _ in active]
        lens = [self._len[s] for s in seqs]
        with torch.inference_mode():
            logits = self._eager.decode_slots(
                torch.tensor([[t] for _, t in active], dtype=torch.int64, device=self.device),
                self._slots,
                [self._slot_of[s] for s in seqs],
                lens,
            )
            toks: list[int] = logits.argmax(-1).tolist()
        for s, n in zip(seqs, lens):
            self._len[s] = n + 1
        return toks

    def release(self, seq_id: int) -> None:
        slot = self._slot_of.pop(seq_id, None)
        self._len.pop(seq_id, None)
        if slot is not None:
            self._free.append(slot)

    def end_stepping(self) -> None:
        self._slots = None
        self._slot_of, self._len, self._free = {}, {}, []

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        torch = self._torch
        d.update(
            torch_version=torch.__version__,
            threads=torch.get_num_threads(),
            interop_threads=torch.get_num_interop_threads(),
            dtype=self.options.get("dtype", "fp32"),
            compiled=bool(self.options.get("compile", False)),
        )
        if getattr(self, "_interop_error", None):
            d["interop_threads_requested"] = self.options["interop_threads"]
            d["interop_threads_note"] = f"not applied: {self._interop_error}"
        d["timing_scope"] = CUDA_TIMING_SCOPE if self._cuda else CPU_TIMING_SCOPE
        if self._cuda:
            d["cuda_device"] = torch.cuda.get_device_name(torch.device(self.device))
            d["instances"] = self._lanes.created
        return d

    def close(self) -> None:
        self._module = None
        self._eager = None
        self._slots = None
        lanes = getattr(self, "_lanes", None)
        if lanes is not None:
            lanes.clear()
