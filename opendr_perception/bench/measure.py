"""Measurements shared by the continual-inference benchmarks: memory and alternating timing."""
from __future__ import annotations

import collections
import time
from typing import Callable, Mapping, Sequence


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


def model_bytes(model) -> int:
    """Bytes of a torch model's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def time_alternating(functions: Mapping[str, Callable[[], object]],
                     calls_per_round: Sequence[Mapping[str, int]]) -> tuple[dict, dict]:
    """Call each function its number of times per round, the functions taking turns within each round, so
    a change of machine load hits all of them alike; returns (seconds, calls) per function name."""
    seconds = {name: 0.0 for name in functions}
    calls = {name: 0 for name in functions}
    for counts in calls_per_round:
        for name, function in functions.items():
            start = time.perf_counter()
            for _ in range(counts[name]):
                function()
            seconds[name] += time.perf_counter() - start
            calls[name] += counts[name]
    return seconds, calls
