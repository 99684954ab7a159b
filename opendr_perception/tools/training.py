"""What every demo-weights trainer of the project shares: a deterministic single-process run and
reproducible ``.safetensors`` files.

The trainers (``opendr-train-skeleton-actions``, ``-video-activity``, ``-continual-transformer``,
``-occlusion-removal``) also run inside tests, so :func:`run_deterministic` restores the caller's torch
settings and random state afterwards.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable


def add_output_arguments(parser, entry_name: str) -> None:
    """The options every trainer has: where the weights, metrics and registry entry go, and torch threads."""
    parser.add_argument("--output", default=f"{entry_name}.safetensors", help="weights file (default: %(default)s)")
    parser.add_argument("--metrics", default=None, help="metrics JSON (default: the weights path with .json)")
    parser.add_argument("--manifest", default=None, help="also write a registry manifest (YAML) for the weights")
    parser.add_argument("--manifest-path", default=f"weights/{entry_name}.safetensors",
                        help="the entry's 'project:' path, relative to models/ (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")


def run_deterministic(run: Callable[..., int], args, threads: int = 1) -> int:
    """``run(args)`` with ``threads`` torch threads, deterministic algorithms and a forked torch RNG;
    the caller's thread count, determinism flag and random state are restored afterwards."""
    import torch

    saved_threads, saved_deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(max(1, int(threads)))
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng():
            return run(args)
    finally:
        torch.set_num_threads(saved_threads)
        torch.use_deterministic_algorithms(saved_deterministic)


def save_weights(state_dict: dict, path: Path, meta: dict) -> str:
    """Write a state dict as ``.safetensors`` with ``meta`` as one JSON string under the metadata key
    ``opendr`` (one key: safetensors stores metadata in a hash map whose order varies between runs, so
    several keys would make the bytes, and the sha256, differ from run to run); returns the sha256."""
    from safetensors.torch import save_file

    tensors = {name: t.detach().cpu().contiguous().clone() for name, t in state_dict.items()}
    save_file(tensors, str(path), metadata={"opendr": json.dumps(meta, sort_keys=True)})
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
