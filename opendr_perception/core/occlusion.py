"""Occluded-face data for active occlusion removal (OpenDR D3.3, appendix 8.12).

Two parts, both pure numpy/OpenCV and deterministic for a given ``numpy.random.Generator``:

* the **2D occlusion generator** (2DOG): :func:`occlude` pastes an RGBA occluder
  that enters the face box from one side and covers a requested fraction of it;
  the ground truth (``coverage_actual``) is the exact covered fraction, the mean
  of the composited alpha over the face box;
* the **3D emulator** (3DS): :func:`emulate_step` re-composites the occluder
  shifted by a per-sample "movement impact" (its pixel shift, relative to the
  face, per predefined camera step) and :func:`remaining_ratio` gives the
  regression target ``r`` (how much more to move, as a fraction of the step);
  :func:`relative_shift` ties the impact to depths with the pinhole model.

Direction convention (stated explicitly because the paper leaves the sign implicit)
----------------------------------------------------------------------------------
The class label is the seed's 2DOG label: the **side of the face box the occluder
comes from**, in image coordinates (``"up"`` = top rows, ``"bottom"`` = bottom rows,
``"left"`` = column 0 side, ``"right"`` = last column side, i.e. the viewer's
left/right, not the person's).  In image space, acting on label ``d`` slides the
occluder further towards side ``d`` (out of the face) - that is what the 3D
emulator does.  For a physical camera and an occluder nearer than the face, the
occluder's image moves *opposite* to the camera's motion relative to the face, so
the camera must move to the **opposite** side: ``CAMERA_MOVE[d]`` (occluder on top
-> camera moves down, occluder on the left -> camera moves right).
``OccludedSample.move`` carries that camera direction.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

DIRECTIONS = ("up", "bottom", "right", "left", "none")  # the seed's 5 classes, in its order
OCCLUDER_SIDES = ("up", "bottom", "right", "left")
CAMERA_MOVE = {"up": "bottom", "bottom": "up", "left": "right", "right": "left", "none": "none"}
# unit image-space vector (du, dv) pointing from the face centre towards each side
SIDE_VECTOR = {"up": (0, -1), "bottom": (0, 1), "left": (-1, 0), "right": (1, 0), "none": (0, 0)}
COVERAGE_RANGE = (0.2, 0.6)


@dataclass
class OccludedSample:
    image: np.ndarray            # HxWx3 uint8, face image with the occluder composited
    mask: np.ndarray             # HxW float32 alpha of the occluder in [0, 1] (0 everywhere for "none")
    direction: str               # class label: occluder side (see module doc), or "none"
    coverage_actual: float       # mean of ``mask`` over the face box: the exact covered fraction
    box: tuple[int, int, int, int]  # face box (x0, y0, x1, y1), x1/y1 exclusive
    occluder: Optional[np.ndarray] = None  # HxWx3 float32 occluder colour layer (for the 3D emulator)
    coverage_requested: float = 0.0

    @property
    def label(self) -> int:
        return DIRECTIONS.index(self.direction)

    @property
    def move(self) -> str:
        """Camera motion that clears a near occluder (opposite to the occluder side)."""
        return CAMERA_MOVE[self.direction]


# ----------------------------------------------------------------------------- occluders
def _superellipse_alpha(h: int, w: int, p: float, supersample: int = 4) -> np.ndarray:
    """Anti-aliased alpha of |x|^p + |y|^p <= 1 inscribed in an h x w rectangle."""
    s = supersample
    ys = (np.arange(h * s) + 0.5) / (h * s) * 2 - 1
    xs = (np.arange(w * s) + 0.5) / (w * s) * 2 - 1
    inside = (np.abs(xs)[None, :] ** p + np.abs(ys)[:, None] ** p) <= 1.0
    return inside.reshape(h, s, w, s).mean(axis=(1, 3)).astype(np.float32)


def random_occluder(rng: np.random.Generator, photos: Optional[Sequence[np.ndarray]] = None,
                    size: int = 128) -> np.ndarray:
    """An RGBA (BGR + alpha, uint8) occluder: a random crop of a real photo without people
    (``samples.no_people_photos()`` by default) cut with a superellipse alpha mask
    (exponent 2.5-6: fill 79-97%, like the seed's objects re-cropped to >70% coverage)."""
    if photos is None:
        from opendr_perception.core import samples
        photos = list(samples.no_people_photos().values())
    photo = photos[int(rng.integers(len(photos)))]
    ph, pw = photo.shape[:2]
    ch = int(rng.integers(max(8, ph // 4), ph // 2 + 1))
    cw = int(rng.integers(max(8, pw // 4), pw // 2 + 1))
    y = int(rng.integers(0, ph - ch + 1))
    x = int(rng.integers(0, pw - cw + 1))
    crop = cv2.resize(photo[y:y + ch, x:x + cw], (size, size), interpolation=cv2.INTER_AREA)
    alpha = _superellipse_alpha(size, size, float(rng.uniform(2.5, 6.0)))
    return np.dstack([crop, np.round(alpha * 255).astype(np.uint8)])


def _as_rgba(occluder: np.ndarray) -> np.ndarray:
    if occluder.ndim != 3 or occluder.shape[2] not in (3, 4):
        raise ValueError("occluder must be HxWx3 (opaque) or HxWx4 (with alpha)")
    if occluder.shape[2] == 3:
        occluder = np.dstack([occluder, np.full(occluder.shape[:2], 255, np.uint8)])
    return occluder


def _band(rgba: np.ndarray, length: int, depth: int, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """Occluder resized to ``length`` (along the side) x ``depth`` and rotated for the side.
    Built in the "up" orientation (rows = depth), rotated for left/right like the seed."""
    obj = rgba
    if direction in ("left", "right"):
        obj = np.ascontiguousarray(np.rot90(obj, 1))  # the seed rotates the object for left/right
    res = cv2.resize(obj, (length, depth), interpolation=cv2.INTER_AREA if depth < obj.shape[0] else cv2.INTER_LINEAR)
    colour = res[..., :3].astype(np.float32)
    alpha = res[..., 3].astype(np.float32) / 255.0
    if direction == "bottom":
        colour, alpha = colour[::-1], alpha[::-1]
    elif direction == "left":
        colour, alpha = colour.transpose(1, 0, 2), alpha.T
    elif direction == "right":
        colour, alpha = colour.transpose(1, 0, 2)[:, ::-1], alpha.T[:, ::-1]
    return np.ascontiguousarray(colour), np.ascontiguousarray(alpha)


def _layers(shape: tuple[int, int], box: tuple[int, int, int, int], rgba: np.ndarray,
            direction: str, depth: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape
    x0, y0, x1, y1 = box
    wf, hf = x1 - x0, y1 - y0
    length = wf if direction in ("up", "bottom") else hf
    colour, alpha = _band(rgba, length, depth, direction)
    layer = np.zeros((h, w, 3), np.float32)
    mask = np.zeros((h, w), np.float32)
    if direction == "up":
        ys, xs = slice(y0, y0 + depth), slice(x0, x1)
    elif direction == "bottom":
        ys, xs = slice(y1 - depth, y1), slice(x0, x1)
    elif direction == "left":
        ys, xs = slice(y0, y1), slice(x0, x0 + depth)
    else:
        ys, xs = slice(y0, y1), slice(x1 - depth, x1)
    layer[ys, xs] = colour
    mask[ys, xs] = alpha
    return layer, mask


def box_coverage(mask: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Exact covered fraction of the face box: mean alpha over the box."""
    x0, y0, x1, y1 = box
    return float(mask[y0:y1, x0:x1].mean())


def composite(face_image: np.ndarray, layer: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = face_image.astype(np.float32) * (1 - mask[..., None]) + layer * mask[..., None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _clip_box(box, shape) -> tuple[int, int, int, int]:
    h, w = shape
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(w, x1), min(h, y1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        raise ValueError(f"face box {box} too small or outside the image")
    return x0, y0, x1, y1


def occlude(face_image: np.ndarray, rng: np.random.Generator, direction: str = "up",
            coverage: float = 0.4, occluder: Optional[np.ndarray] = None,
            box: Optional[Sequence[float]] = None) -> OccludedSample:
    """2D occlusion generator.

    face_image: HxWx3 uint8 (an aligned face crop, or a photo with ``box`` = the face box
    (x0, y0, x1, y1); default: the whole image).  ``direction``: the occluder side
    (``"up"``, ``"bottom"``, ``"left"``, ``"right"``) or ``"none"`` (unchanged image).
    ``coverage`` in [0.2, 0.6] (the seed's O_p): the occluder spans the full box side and
    its depth is chosen so the alpha-weighted covered fraction is as close as an integer
    depth allows; ``coverage_actual`` is that exact fraction.  ``occluder``: HxWx3 or
    HxWx4 (alpha) uint8; default :func:`random_occluder` drawn from ``rng``.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if not 0.0 <= coverage <= 1.0:
        raise ValueError("coverage must be in [0, 1]")
    h, w = face_image.shape[:2]
    box_t = _clip_box((0, 0, w, h) if box is None else box, (h, w))
    if direction == "none":
        return OccludedSample(face_image.copy(), np.zeros((h, w), np.float32), "none", 0.0, box_t,
                              np.zeros((h, w, 3), np.float32), 0.0)
    rgba = _as_rgba(random_occluder(rng) if occluder is None else occluder)
    x0, y0, x1, y1 = box_t
    full = (y1 - y0) if direction in ("up", "bottom") else (x1 - x0)

    def cov(depth):
        return box_coverage(_layers((h, w), box_t, rgba, direction, depth)[1], box_t)

    # coverage grows with depth: bisection on the integer depth, then keep the closer neighbour
    lo, hi = 1, full
    while lo < hi:
        mid = (lo + hi) // 2
        if cov(mid) < coverage:
            lo = mid + 1
        else:
            hi = mid
    best = min({max(1, lo - 1), lo}, key=lambda d: abs(cov(d) - coverage))
    layer, mask = _layers((h, w), box_t, rgba, direction, best)
    return OccludedSample(composite(face_image, layer, mask), mask, direction,
                          box_coverage(mask, box_t), box_t, layer, float(coverage))


def random_occlusion(face_image: np.ndarray, rng: np.random.Generator, box=None,
                     p_none: float = 0.2, coverage_range=COVERAGE_RANGE, occluder=None) -> OccludedSample:
    """Stage-1 training sample: "none" with probability ``p_none``, else a random side and
    coverage uniform in ``coverage_range``."""
    if rng.random() < p_none:
        return occlude(face_image, rng, "none", 0.0, box=box)
    side = OCCLUDER_SIDES[int(rng.integers(4))]
    return occlude(face_image, rng, side, float(rng.uniform(*coverage_range)), occluder=occluder, box=box)


# ----------------------------------------------------------------------------- 3D emulator
def pixel_shift(step_m: float, depth_m: float, fx: float) -> float:
    """Image shift (pixels) of a static point at depth Z when the camera translates by m
    parallel to the image plane: p = K[R|t]P  =>  du = f_x * m / Z (opposite to the motion)."""
    return fx * step_m / depth_m


def relative_shift(step_m: float, z_occluder: float, z_face: float, fx: float) -> float:
    """Parallax of the occluder relative to the face for one camera step:
    f_x * m * (1/Z_o - 1/Z_f); positive for a nearer occluder (it slides opposite to the camera)."""
    return pixel_shift(step_m, z_occluder, fx) - pixel_shift(step_m, z_face, fx)


def penetration(mask: np.ndarray, box: tuple[int, int, int, int], direction: str, threshold: float = 0.0) -> int:
    """How many pixels the occluder reaches into the face box from its side (0 if it does not)."""
    if direction == "none":
        return 0
    x0, y0, x1, y1 = box
    sub = mask[y0:y1, x0:x1] > threshold
    if not sub.any():
        return 0
    rows, cols = np.nonzero(sub.any(axis=1))[0], np.nonzero(sub.any(axis=0))[0]
    if direction == "up":
        return int(rows.max() + 1)
    if direction == "bottom":
        return int(sub.shape[0] - rows.min())
    if direction == "left":
        return int(cols.max() + 1)
    return int(sub.shape[1] - cols.min())


def remaining_ratio(penetration_px: float, impact_px: float) -> float:
    """Regression target after the first predefined step: the occluder needed ``D`` pixels of
    relative shift and one step gave ``s`` (the movement impact), so ``(D - s) / s`` more
    steps remain (0 once clear).  With the pinhole parallax, s = f_x m (1/Z_o - 1/Z_f), so
    the remaining world move is ``r * m`` whatever f_x and the depths are."""
    if impact_px <= 0:
        raise ValueError("impact must be positive (occluder nearer than the face)")
    return max(0.0, penetration_px / impact_px - 1.0)


def shift_layer(layer: np.ndarray, mask: np.ndarray, direction: str, shift_px: float):
    """Translate the occluder layer by ``shift_px`` towards its side (sub-pixel, premultiplied)."""
    du, dv = SIDE_VECTOR[direction]
    return translate_layer(layer, mask, du * shift_px, dv * shift_px)


def translate_layer(layer: np.ndarray, mask: np.ndarray, du: float, dv: float):
    """Translate the occluder layer (colour + alpha) by (du, dv) pixels (sub-pixel, premultiplied)."""
    h, w = mask.shape
    M = np.float32([[1, 0, du], [0, 1, dv]])
    pre = layer * mask[..., None]
    pre = cv2.warpAffine(pre, M, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    new_mask = cv2.warpAffine(mask, M, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    new_layer = np.where(new_mask[..., None] > 1e-6, pre / np.maximum(new_mask[..., None], 1e-6), 0).astype(np.float32)
    return new_layer, np.clip(new_mask, 0, 1).astype(np.float32)


@dataclass
class StepSample:
    view1: np.ndarray      # occluded image before the step (I)
    view2: np.ndarray      # after the predefined step (I')
    mask2: np.ndarray
    direction: str         # direction acted on (occluder side, see module doc)
    impact_px: float       # occluder shift relative to the face per step
    penetration_px: int
    ratio: float           # target r in [0, 1] for the sigmoid regressor


def emulate_step(clean_image: np.ndarray, sample: OccludedSample, impact_px: float,
                 direction: Optional[str] = None) -> StepSample:
    """3D emulator: one predefined step in ``direction`` (default: the sample's side)
    moves the occluder by ``impact_px`` relative to the face; re-composite on the clean
    face.  If the direction is wrong the occluder does not clear: target ratio is then the
    saturated value 1 (the regressor's range)."""
    direction = sample.direction if direction is None else direction
    if direction == "none" or sample.direction == "none":
        return StepSample(sample.image, sample.image.copy(), sample.mask.copy(), direction, impact_px, 0, 0.0)
    layer, mask = shift_layer(sample.occluder, sample.mask, direction, impact_px)
    view2 = composite(clean_image, layer, mask)
    d = penetration(sample.mask, sample.box, sample.direction)
    ratio = remaining_ratio(d, impact_px) if direction == sample.direction else 1.0
    return StepSample(sample.image, view2, mask, direction, float(impact_px), d, min(1.0, ratio))


def random_step(clean_image: np.ndarray, sample: OccludedSample, rng: np.random.Generator,
                direction: Optional[str] = None, impact_fraction=(0.5, 1.25)) -> StepSample:
    """Per-sample random movement impact (emulating the occluder depth): ``s = u * D`` with
    ``u ~ U(impact_fraction)``, so ``r = max(0, 1/u - 1)`` lies in [0, 1] for the default range."""
    d = max(1, penetration(sample.mask, sample.box, sample.direction))
    return emulate_step(clean_image, sample, float(rng.uniform(*impact_fraction)) * d, direction)


def emulate_depths(clean_image: np.ndarray, sample: OccludedSample, step_m: float, z_occluder: float,
                   z_face: float, fx: float, direction: Optional[str] = None) -> StepSample:
    """3D emulator from metric quantities: the impact is the pinhole parallax
    :func:`relative_shift` of a step ``step_m`` with the occluder at ``z_occluder`` and
    the face at ``z_face`` (metres, ``z_occluder < z_face``) and focal length ``fx`` (px)."""
    if not 0 < z_occluder < z_face:
        raise ValueError("the occluder must be between the camera and the face")
    return emulate_step(clean_image, sample, relative_shift(step_m, z_occluder, z_face, fx), direction)


def shifted_view(clean_image: np.ndarray, sample: OccludedSample, offset_uv: Sequence[float]) -> np.ndarray:
    """The face with the sample's occluder moved by ``offset_uv`` = (du, dv) pixels relative to it:
    the view after several emulated steps (possibly in different directions), e.g. the sum of
    ``SIDE_VECTOR[d] * impact`` over the steps taken."""
    if sample.direction == "none" or sample.occluder is None:
        return sample.image.copy()
    layer, mask = translate_layer(sample.occluder, sample.mask, float(offset_uv[0]), float(offset_uv[1]))
    return composite(clean_image, layer, mask)


# ----------------------------------------------------------------------------- face crops
CROP_SIZE = 128
CROP_SCALE = 2.0


def face_crop(image: np.ndarray, box: Sequence[float], size: int = CROP_SIZE,
              scale: float = CROP_SCALE) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A ``size`` x ``size`` crop centred on a face box (x0, y0, x1, y1), its side ``scale`` times the
    box's longer side (border pixels replicated), and the face box in crop pixels.

    The common frame of the occlusion models: occluders are generated inside that box, the
    direction net sees the recogniser's embedding of that box, and the ratio regressor sees the two
    views' crops, each centred on its own face box (so the face is still and only the occluder
    moves between them, as in the 3D emulator)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0) * scale
    if not side > 0:
        raise ValueError(f"empty face box {tuple(box)}")
    k = size / side
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    M = np.float32([[k, 0, size / 2 - cx * k], [0, k, size / 2 - cy * k]])
    crop = cv2.warpAffine(image, M, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    hw, hh = (x1 - x0) * k / 2, (y1 - y0) * k / 2
    inner = (int(round(size / 2 - hw)), int(round(size / 2 - hh)), int(round(size / 2 + hw)), int(round(size / 2 + hh)))
    return crop, _clip_box(inner, (size, size))
