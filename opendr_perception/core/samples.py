"""Real sample photos of people, as BGR uint8 arrays (OpenCV's channel order).

They come from packages this suite already depends on, so tests, demos and
recorded test bags need no downloads and are deterministic:

* :func:`astronaut` -- scikit-image ``data.astronaut()`` (Eileen Collins, NASA,
  public domain), 512x512, one person, upper body, face to the camera.
* :func:`grace_hopper` -- matplotlib's ``sample_data/grace_hopper.jpg`` (US Navy
  portrait, public domain), 512 wide x 600 high, one person, head and shoulders.
* :func:`cameraman` -- scikit-image ``data.camera()`` (grey, 512x512), a standing
  man behind a camera on a tripod, in profile.
* :func:`no_people_photos` -- scikit-image photos with nobody in them.

:func:`group` tiles photos side by side; :func:`paste_on_canvas` puts a photo on
a large empty frame without upscaling it (as the high-resolution pose seed did
with COCO images on 720p/1080p/1440p canvases).
"""
from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import cv2
import numpy as np

from .detection_ops import resize_to_height

Position = Union[str, tuple[int, int]]
NAMED_POSITIONS = ("center", "top-left", "top-right", "bottom-left", "bottom-right",
                   "left", "right", "top", "bottom")


def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo, 512x512 BGR."""
    from skimage import data
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


def cameraman() -> np.ndarray:
    """scikit-image's cameraman photo (grey), 512x512, as 3-channel BGR."""
    from skimage import data
    return cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)


def grace_hopper() -> np.ndarray:
    """matplotlib's Grace Hopper portrait, 600 high x 512 wide, BGR."""
    import matplotlib
    path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"matplotlib's sample photo is missing: {path}")
    return image


PHOTOS = {"astronaut": astronaut, "grace_hopper": grace_hopper, "cameraman": cameraman}


def no_people_photos() -> dict[str, np.ndarray]:
    """Real photos WITHOUT people (BGR): scikit-image's ``coffee`` (a cup, 600x400),
    ``chelsea`` (a cat, 451x300) and ``rocket`` (a launch pad, 640x427).

    For false-positive checks and for benchmarks that, like COCO val (46% of its
    images have nobody), mix frames with and without people.
    """
    from skimage import data
    return {name: np.ascontiguousarray(getattr(data, name)()[:, :, ::-1]) for name in ("coffee", "chelsea", "rocket")}


def group(height: int = 480, photos: Optional[Sequence[np.ndarray]] = None) -> np.ndarray:
    """Photos scaled to one height and tiled side by side (default: astronaut, Grace Hopper, cameraman)."""
    if height < 1:
        raise ValueError(f"height must be positive, got {height}")
    photos = [astronaut(), grace_hopper(), cameraman()] if photos is None else list(photos)
    if not photos:
        raise ValueError("group() needs at least one photo")
    return np.ascontiguousarray(np.hstack([resize_to_height(p, height) for p in photos]))


def paste_position(photo_shape: Sequence[int], canvas_size: tuple[int, int],
                   position: Position = "center") -> tuple[int, int]:
    """Top-left corner (x, y) where :func:`paste_on_canvas` puts a photo of ``photo_shape``."""
    h, w = int(photo_shape[0]), int(photo_shape[1])
    cw, ch = canvas_size
    if w > cw or h > ch:
        raise ValueError(f"a {w}x{h} photo does not fit on a {cw}x{ch} canvas (photos are never upscaled "
                         "nor shrunk here)")
    if not isinstance(position, str):
        x, y = int(position[0]), int(position[1])
        if not (0 <= x <= cw - w and 0 <= y <= ch - h):
            raise ValueError(f"a {w}x{h} photo at ({x}, {y}) does not fit on a {cw}x{ch} canvas")
        return x, y
    if position not in NAMED_POSITIONS:
        raise ValueError(f"unknown position '{position}'; use (x, y) or one of {NAMED_POSITIONS}")
    x = (cw - w) // 2
    y = (ch - h) // 2
    if "left" in position:
        x = 0
    if "right" in position:
        x = cw - w
    if "top" in position:
        y = 0
    if "bottom" in position:
        y = ch - h
    return x, y


def paste_on_canvas(photo: np.ndarray, canvas_size: tuple[int, int] = (1920, 1080),
                    position: Position = "center",
                    background: Union[int, tuple[int, int, int]] = 0) -> np.ndarray:
    """``photo`` pasted, unscaled, onto an empty ``canvas_size`` = (width, height) frame.

    ``position`` is the top-left corner (x, y) or a name such as ``"center"`` or
    ``"bottom-right"`` (see :func:`paste_position`); ``background`` is the
    canvas colour (grey level or a BGR triple; default black, an "empty" frame).
    """
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise ValueError(f"photo must be an HxWx3 uint8 BGR image, got {photo.shape} {photo.dtype}")
    x, y = paste_position(photo.shape, canvas_size, position)
    cw, ch = canvas_size
    canvas = np.empty((ch, cw, 3), dtype=np.uint8)
    canvas[:] = np.asarray(background, dtype=np.uint8)
    canvas[y:y + photo.shape[0], x:x + photo.shape[1]] = photo
    return canvas
