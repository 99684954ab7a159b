"""Sample image sequences built from real photographs that registry packages ship.

No binary data lives in the repository: scikit-image's astronaut and cameraman,
matplotlib's Grace Hopper portrait and scikit-image's people-free photos are
composed into camera-like frames when a bag is made (``opendr-bag make --sample``).
"""
from __future__ import annotations

from typing import Callable, Iterator

import cv2
import numpy as np

from opendr_perception.core import samples

GREY = (114, 114, 114)


def fit_to_frame(photo: np.ndarray, size: tuple[int, int], shift: tuple[int, int] = (0, 0)) -> np.ndarray:
    """``photo`` scaled to fit a (width, height) frame, centred, moved by ``shift`` pixels, grey around."""
    width, height = size
    scale = min(width / photo.shape[1], height / photo.shape[0])
    resized = cv2.resize(photo, (max(1, int(photo.shape[1] * scale)), max(1, int(photo.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    frame = np.full((height, width, 3), GREY, np.uint8)
    x = (width - resized.shape[1]) // 2 + shift[0]
    y = (height - resized.shape[0]) // 2 + shift[1]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + resized.shape[1], width), min(y + resized.shape[0], height)
    frame[y0:y1, x0:x1] = resized[y0 - y:y1 - y, x0 - x:x1 - x]
    return frame


def people(frames_per_scene: int = 4, size: tuple[int, int] = (640, 480)) -> Iterator[np.ndarray]:
    """640x480 frames (or ``size``): one person (astronaut, Grace Hopper, cameraman), two people side by
    side, and an empty scene; each scene drifts a few pixels per frame like a hand-held camera."""
    two = samples.group(480, [samples.astronaut(), samples.grace_hopper()])
    empty = next(iter(samples.no_people_photos().values()))
    scenes = [samples.astronaut(), samples.grace_hopper(), samples.cameraman(), two, empty]
    sx, sy = size[0] / 640, size[1] / 480
    for photo in scenes:
        for i in range(frames_per_scene):
            yield fit_to_frame(photo, size, shift=(round(3 * i * sx), round(2 * i * sy)))


def high_resolution(size: tuple[int, int] = (1920, 1080)) -> Iterator[np.ndarray]:
    """Large frames with a small person pasted, unscaled, at several places on an empty canvas."""
    for photo in (samples.astronaut(), samples.grace_hopper()):
        for position in ("center", "top-left", "bottom-right"):
            yield samples.paste_on_canvas(photo, size, position=position)


SEQUENCES: dict[str, Callable[[], Iterator[np.ndarray]]] = {
    "people": people,
    "high_resolution": high_resolution,
}


def describe() -> dict[str, str]:
    return {name: " ".join((fn.__doc__ or "").split()) for name, fn in SEQUENCES.items()}


def frames(name: str) -> Iterator[np.ndarray]:
    if name not in SEQUENCES:
        raise KeyError(f"unknown sample sequence '{name}'; known: {', '.join(SEQUENCES)}")
    return SEQUENCES[name]()
