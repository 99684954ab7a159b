"""Fixes for known bugs of the ``continual-inference`` library (import name ``continual``).

``apply()`` installs the fixes; it is idempotent and is called when
:mod:`opendr_perception.models.continual_transformer` is imported.

Fixed here
----------
``continual.transformer.RetroactiveUnity._forward_step`` (continual-inference 1.2.4):
the residual branch of the retroactive (first) block of a two-block continual transformer keeps
the last ``delay + 1`` tokens in a ring buffer, but wraps its write index with ``% self.delay``.
From step ``2n - 2`` on (``n`` = sequence length) it writes into the wrong slot, so the residual
tokens no longer match the attention outputs and ``co.TransformerEncoder(num_layers=2)`` drifts
away from ``torch.nn.TransformerEncoder`` (errors of 0.1-2.8). The fix wraps with
``% (self.delay + 1)``. The replacement is only installed when the installed library still shows
the wrong behaviour (checked numerically by :func:`retroactive_unity_is_buggy`), so a fixed
upstream release is left alone.

Known and not patched (the project's own modules avoid them): ``TransformerEncoderLayerFactory``
maps ``activation="gelu"`` to ReLU (pass ``torch.nn.functional.gelu`` instead of the string), and
``num_layers >= 3`` is not implemented by the library.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator, Optional, Tuple

import torch
from torch import Tensor

__all__ = ["apply", "is_applied", "retroactive_unity_is_buggy", "unpatched"]

_lock = threading.RLock()
_original = None  # the library's RetroactiveUnity._forward_step once we replaced it
_suspended = False  # inside `unpatched()`


def _retroactive_unity_forward_step(self, input: Tensor, prev_state: Optional[Tuple[Tensor, Tensor]]):
    """``RetroactiveUnity._forward_step`` with the ring-buffer index wrapped by ``delay + 1``.

    The buffer holds the last ``delay + 1`` step inputs. ``index`` counts up from ``-delay``
    during warm-up; from 0 on it is the slot of the newest input, so the oldest is the next slot
    and rolling by ``-(index + 1)`` puts the window in chronological order.
    """
    if prev_state is None:
        buffer, index = self.init_state(input)
    else:
        buffer, index = prev_state
    slots = self.delay + 1
    buffer[index % slots] = input
    new_index = index + 1
    if new_index > 0:
        new_index = new_index % slots
    output = None
    if index >= 0:
        output = buffer.clone().roll(shifts=int(-index - 1), dims=0)
        dim = self.time_dim + output.dim() if self.time_dim < 0 else self.time_dim
        output = output.permute(list(range(1, dim + 1)) + [0] + list(range(dim + 1, output.dim())))
    return output, (buffer, new_index)


def retroactive_unity_is_buggy(forward_step=None) -> bool:
    """Whether ``RetroactiveUnity`` (or the given ``_forward_step``) returns a wrong token window.

    Steps a delay-2 unity through 12 scalar tokens ``0, 1, 2, ...``; after warm-up the output at
    step ``t`` must be the window ``[t - 2, t - 1, t]``.
    """
    from continual.transformer import RetroactiveUnity

    step = forward_step or RetroactiveUnity._forward_step
    unity = RetroactiveUnity(2)
    state = None
    for t in range(12):
        out, state = step(unity, torch.full((1, 1), float(t)), state)
        if t >= 2 and (out is None or out.flatten().tolist() != [t - 2.0, t - 1.0, float(t)]):
            return True
    return False


def apply() -> bool:
    """Install the fixes where the installed library needs them; returns whether one is active."""
    global _original
    from continual.transformer import RetroactiveUnity

    with _lock:
        if _original is None and retroactive_unity_is_buggy():
            _original = RetroactiveUnity._forward_step
            RetroactiveUnity._forward_step = _retroactive_unity_forward_step
        return is_applied()


def is_applied() -> bool:
    """Whether the ``RetroactiveUnity`` fix is installed (and not suspended by :func:`unpatched`)."""
    return _original is not None and not _suspended


@contextlib.contextmanager
def unpatched() -> Iterator[None]:
    """Temporarily restore the library's original code (for regression tests; not thread-safe)."""
    global _suspended
    from continual.transformer import RetroactiveUnity

    with _lock:
        if _original is None or _suspended:
            restore = False
        else:
            RetroactiveUnity._forward_step = _original
            _suspended = restore = True
    try:
        yield
    finally:
        if restore:
            with _lock:
                RetroactiveUnity._forward_step = _retroactive_unity_forward_step
                _suspended = False
