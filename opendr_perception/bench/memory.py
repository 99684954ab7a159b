"""Memory measurements shared by the continual-inference benchmarks."""
from __future__ import annotations

import collections


def tensor_bytes(obj) -> int:
    """Bytes of all tensors inside nested dicts / lists / tuples / deques."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple, collections.deque)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def peak_allocated(fn) -> int:
    """Peak bytes allocated (allocations minus frees) while ``fn()`` runs, from the torch profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    running = peak = 0
    for _, nbytes in events:
        running += nbytes
        peak = max(peak, running)
    return peak


def mb(nbytes: float) -> float:
    return nbytes / 2 ** 20
