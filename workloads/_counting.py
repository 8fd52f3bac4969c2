"""Counting parameters, FLOPs and activation bytes of a torch module (torch imported lazily).

Definitions (units in names):

* ``flops``: what :class:`torch.utils.flop_counter.FlopCounterMode` counts on one forward:
  matrix products, convolutions and attention kernels, a multiply-add counted as 2 FLOPs.
  Element-wise work (activations, norms, residual adds, softmax) is *not* counted.
* Recurrent layers (``nn.GRU``/``nn.LSTM``/``nn.RNN``): when the counter attributes no FLOPs to
  such a module (fused kernels are invisible to it), the analytic matrix-product FLOPs are
  added, see :func:`rnn_matmul_flops`; the method string says which path was taken.
* ``activation_bytes``: sum over leaf modules of the bytes of their output tensors for the given
  inputs. It is a rough measure of activation traffic, not of peak memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FLOPS_METHOD_BASE = (
    "torch.utils.flop_counter.FlopCounterMode on a batch-1 forward (matmul/conv/attention only, multiply-add = 2 FLOPs)"
)


@dataclass(frozen=True)
class ModuleCounts:
    """Result of :func:`count_module`."""

    params: int
    flops: int
    flops_method: str
    activation_bytes: int
    rnn_flops_counted: int
    rnn_flops_analytic_added: int


def rnn_matmul_flops(module: Any, seq_len: int, batch: int = 1) -> int:
    """Matrix-product FLOPs of an ``nn.GRU``/``nn.LSTM``/``nn.RNN`` over ``seq_len`` steps.

    Per step, layer and direction: ``2 * G * H * (I + H)`` where ``G`` is the number of gates
    (GRU 3, LSTM 4, RNN 1), ``H`` the hidden size and ``I`` the layer's input size (the input
    size for layer 0, ``H * directions`` after). Bias adds and gate non-linearities excluded,
    matching what the FLOP counter counts for other layers.
    """
    # torch is optional: importing the zoo never imports it
    import torch.nn as nn

    gates = {nn.GRU: 3, nn.LSTM: 4, nn.RNN: 1}[type(module)]
    hidden = module.hidden_size
    dirs = 2 if module.bidirectional else 1
    total = 0
    for layer in range(module.num_layers):
        in_size = module.input_size if layer == 0 else hidden * dirs
        total += 2 * gates * hidden * (in_size + hidden) * seq_len * dirs
    return total * batch


def _tensor_bytes(obj: Any) -> int:
    # torch is optional: importing the zoo never imports it
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, (tuple, list)):
        return sum(_tensor_bytes(o) for o in obj)
    if isinstance(obj, dict):
        return sum(_tensor_bytes(o) for o in obj.values())
    return 0


def count_module(
    module: Any,
    args: tuple[Any, ...],
    call: Callable[..., Any] | None = None,
) -> ModuleCounts:
    """Count parameters (shared ones once), FLOPs and activation bytes of one call.

    ``call`` defaults to ``module(*args)``; pass another callable (e.g. a decode step) to count
    that instead. Works with tensors on the ``meta`` device.
    """
    # torch is optional: importing the zoo never imports it
    import torch
    import torch.nn as nn
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in module.parameters())
    rnn_types = (nn.GRU, nn.LSTM, nn.RNN)

    act_bytes = 0
    # qualified name -> (module, sequence length, batch) of its last call
    rnn_calls: dict[str, tuple[Any, int, int]] = {}

    def leaf_hook(mod: Any, inputs: Any, output: Any) -> None:
        nonlocal act_bytes
        act_bytes += _tensor_bytes(output)

    def rnn_hook(name: str) -> Callable[..., None]:
        def hook(mod: Any, inputs: Any, output: Any) -> None:
            x = inputs[0]
            if x.dim() == 2:  # unbatched (seq, features)
                seq, batch = x.shape[0], 1
            elif getattr(mod, "batch_first", False):
                batch, seq = x.shape[0], x.shape[1]
            else:
                seq, batch = x.shape[0], x.shape[1]
            rnn_calls[name] = (mod, int(seq), int(batch))

        return hook

    handles = []
    for name, sub in module.named_modules():
        if isinstance(sub, rnn_types):
            handles.append(sub.register_forward_hook(rnn_hook(name)))
            handles.append(sub.register_forward_hook(leaf_hook))
        elif len(list(sub.children())) == 0:
            handles.append(sub.register_forward_hook(leaf_hook))

    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            if call is None:
                module(*args)
            else:
                call(*args)
    finally:
        for h in handles:
            h.remove()

    flops = int(counter.get_total_flops())
    per_module = counter.get_flop_counts()
    counted = 0
    added = 0
    for name, (mod, seq, batch) in rnn_calls.items():
        # FlopCounterMode keys modules by their qualified name relative to the root,
        # prefixed with the root's class name.
        key_candidates = [k for k in per_module if k.endswith("." + name) or k == name]
        mod_flops = sum(sum(per_module[k].values()) for k in key_candidates)
        if mod_flops > 0:
            counted += mod_flops
        else:
            added += rnn_matmul_flops(mod, seq, batch)
    flops += added
    method = FLOPS_METHOD_BASE
    if rnn_calls:
        if added:
            method += (
                "; recurrent layers invisible to the counter: added analytic matmul FLOPs "
                "2*gates*H*(I+H) per step/layer/direction"
            )
        else:
            method += (
                "; recurrent layers were decomposed into matmuls and counted by the counter "
                "(checked against 2*gates*H*(I+H) per step/layer/direction)"
            )
    return ModuleCounts(
        params=int(params),
        flops=flops,
        flops_method=method,
        activation_bytes=int(act_bytes),
        rnn_flops_counted=int(counted),
        rnn_flops_analytic_added=int(added),
    )
