"""Choosing the compute device from the ``device`` parameter (``auto``, ``cpu``, ``cuda``, ``cuda:N``)."""
from __future__ import annotations

import re

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(requested: str) -> tuple[str, str]:
    """The device to use and, when it differs from the request, why (for the log).

    ``auto`` takes the first CUDA device when torch sees one, else the CPU; an
    unavailable CUDA device falls back to the CPU with a reason.
    """
    requested = (requested or "auto").strip().lower()
    if not _DEVICE.match(requested):
        raise ValueError(f"device '{requested}' is not one of auto, cpu, cuda, cuda:N")
    if requested == "cpu":
        return "cpu", ""
    try:
        import torch
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:
        available = 0
    if requested == "auto":
        return ("cuda:0", "") if available else ("cpu", "")
    index = int(requested.split(":")[1]) if ":" in requested else 0
    if index < available:
        return f"cuda:{index}", ""
    return "cpu", f"{requested} requested but torch sees {available} CUDA device(s): running on the CPU"
