"""Counting multiply-accumulates (MACs) of PyTorch computations.

Convention used throughout the project: one MAC is one multiplication followed by an addition
inside a matrix product or convolution (``aten.mm``, ``addmm``, ``bmm``, ``baddbmm``,
``convolution``, scaled-dot-product attention). Element-wise work (bias addition, batch/layer
norm, activations, softmax, pooling) is not counted. The counts come from
:class:`torch.utils.flop_counter.FlopCounterMode` (which reports 2 FLOPs per MAC), so they
measure what the code actually executes rather than a formula. Inputs and models may live on
the ``meta`` device, which counts a full-size network without doing the arithmetic.

The seed's figures (``ptflops``) count convolution/linear MACs plus bias, batch-norm and ReLU
element operations, and do not count functional matrix products such as the graph aggregation of
ST-GCN; :func:`count_macs` reports MACs per operator so both views can be compared.

Scaled-dot-product attention is counted through PyTorch's math backend (the fused CPU kernels
are invisible to the counter), and ``torch.nn.TransformerEncoder``'s fused inference fast path
is invisible too: count it with gradients enabled, which selects the regular path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["MacCount", "count_macs", "macs_per_prediction"]


@dataclass
class MacCount:
    """MACs of one computation: ``total`` and ``by_op`` (aten operator name -> MACs)."""

    total: int
    by_op: Dict[str, int] = field(default_factory=dict)
    result: Any = None

    @property
    def giga(self) -> float:
        return self.total / 1e9

    def __repr__(self) -> str:
        ops = ", ".join(f"{k}={v / 1e6:.3f}M" for k, v in sorted(self.by_op.items()))
        return f"MacCount(total={self.total / 1e6:.3f}M; {ops})"


def count_macs(fn: Callable, *args, **kwargs) -> MacCount:
    """Run ``fn(*args, **kwargs)`` under a FLOP counter; return its MACs and its result."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        result = fn(*args, **kwargs)
    counts = counter.get_flop_counts().get("Global", {})
    by_op = {str(op).replace("aten.", ""): int(n) // 2 for op, n in counts.items()}
    return MacCount(total=int(counter.get_total_flops()) // 2, by_op=by_op, result=result)


def macs_per_prediction(model, step_input: torch.Tensor) -> MacCount:
    """MACs a continual model spends per prediction in steady state.

    ``model`` has ``clean_state()``, ``forward_step()``, ``delay`` and ``stride`` (the project's
    continual models and ``continual`` library modules). The model is stepped through its warm-up
    with ``step_input`` (its state is reset before and after); the count covers the ``stride``
    steps from one prediction (exclusive) to the next (inclusive).
    """
    model.clean_state()
    try:
        with torch.no_grad():
            outputs = [model.forward_step(step_input) for _ in range(int(model.delay) + 1)]
        if outputs[-1] is None or any(o is not None for o in outputs[:-1]):
            raise RuntimeError("the model did not produce its first output after `delay` steps")

        def period():
            out = None
            for _ in range(int(getattr(model, "stride", 1))):
                out = model.forward_step(step_input)
            return out

        with torch.no_grad():
            count = count_macs(period)
        if count.result is None:
            raise RuntimeError("the model produced no output `stride` steps after the previous one")
        return count
    finally:
        model.clean_state()
