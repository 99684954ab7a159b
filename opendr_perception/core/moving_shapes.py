"""Procedural videos of moving shapes: a toy activity-recognition task that needs time.

Every video shows one shape (circle, square, diamond or cross; random colour, size and position) on
a random background (colour gradient, a few static clutter blobs, per-frame sensor noise). The class
is what the shape *does*, so no single frame tells the classes apart:

============  ==================================================================================
``static``      stays where it is (sub-pixel jitter only)
``move_left``   moves left at a constant speed (with a small vertical drift), wrapping around the
                image edge
``move_right``  the same, to the right
``move_up``     the same, upwards (small horizontal drift)
``move_down``   the same, downwards
``grow``        its size ramps up from small to large, then starts small again (a sawtooth)
``shrink``      its size ramps down from large to small, then starts large again
``blink``       is shown for 2-5 frames, hidden for 2-5 frames, and so on
============  ==================================================================================

A video is a *stream*: :class:`ShapeScene` fixes the random choices (drawn by :func:`sample_scene`
from a numpy generator) and :func:`render_frame` draws any frame index ``t >= 0`` of it, so a clip
is a window of a stream (:func:`render_clip`) and a test or a bag can take as many frames as it
likes (:func:`stream`). Geometry is in fractions of the image side, so one scene renders at any size
with the same motion in image terms. Frames are ``(H, W, 3) uint8`` **RGB**. Everything is
deterministic for a given seed (the noise of frame ``t`` comes from ``(scene.seed, t)``).

The nominal frame rate is :data:`FPS` (10 frames/s): at it, a moving shape crosses the image in
2-4 s, a grow/shrink ramp lasts 0.8-1.6 s and a blink cycle 0.4-1 s. (Slower motions, 1.25-3 % of
the side per frame and 16-32 frame ramps, were tried first: a 48 px model then told the axis of a
motion but hardly its direction, the per-frame change being a fraction of a pixel.)

:func:`to_clip_tensor` / :func:`to_frame_tensor` turn frames into normalised model inputs
(``(x / 255 - MEAN) / STD``, the Kinetics statistics X3D uses).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence, Tuple

import numpy as np

CLASSES: Tuple[str, ...] = ("static", "move_left", "move_right", "move_up", "move_down", "grow", "shrink", "blink")
SHAPES: Tuple[str, ...] = ("circle", "square", "diamond", "cross")
FPS = 10.0
MEAN = 0.45  # per channel, of x / 255 (X3D's Kinetics normalisation)
STD = 0.225

# geometry, in fractions of the image side (per frame for speeds)
RADIUS = (0.09, 0.16)  # shape "radius" of the non-scaling classes
SPEED = (0.025, 0.05)  # moving classes
DRIFT = 0.25  # perpendicular drift, as a fraction of the speed
SCALE_RANGE = (0.05, 0.2)  # radius range of grow / shrink
SCALE_PERIOD = (8, 16)  # frames of one grow / shrink ramp
BLINK_FRAMES = (2, 5)  # frames on, frames off
JITTER = 0.004  # position jitter (std) of every frame
MOVING = {"move_left": (-1.0, 0.0), "move_right": (1.0, 0.0), "move_up": (0.0, -1.0), "move_down": (0.0, 1.0)}


@dataclass(frozen=True)
class ShapeScene:
    """The random choices of one video stream (see :func:`sample_scene`)."""

    label: str
    seed: int
    shape: str
    color: Tuple[float, float, float]
    background: Tuple[Tuple[float, float, float], Tuple[float, float, float]]  # gradient end colours
    gradient_angle: float
    clutter: Tuple[Tuple[float, ...], ...]  # (cx, cy, rx, ry, r, g, b, alpha) per blob
    noise: float  # std of the per-frame noise, in 0-255 units
    center: Tuple[float, float]
    radius: float
    velocity: Tuple[float, float]  # fraction of the side per frame
    period: int  # frames of a grow / shrink ramp
    blink: Tuple[int, int]  # frames on, frames off
    phase: int  # frame offset of the periodic classes


def _color(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, 3)


def sample_scene(label: str, rng: np.random.Generator, clutter: bool = True, noise: bool = True) -> ShapeScene:
    """Draw the random choices of one stream of class ``label`` from ``rng``.

    ``clutter=False`` / ``noise=False`` give a plain gradient background and noise-free frames (for
    tests that measure the shape from the pixels).
    """
    if label not in CLASSES:
        raise ValueError(f"unknown class {label!r}; choose one of {CLASSES}")
    seed = int(rng.integers(0, 2**31 - 1))
    bg0 = _color(rng)
    bg1 = np.clip(bg0 + rng.uniform(-50, 50, 3), 0, 255)
    color = _color(rng)
    while np.linalg.norm(color - bg0) < 110 or np.linalg.norm(color - bg1) < 110:  # visible on the background
        color = _color(rng)
    blobs = []
    for _ in range(int(rng.integers(0, 5)) if clutter else 0):
        c = np.clip(bg0 + rng.uniform(-70, 70, 3), 0, 255)
        blobs.append((*rng.uniform(0, 1, 2), *rng.uniform(0.05, 0.25, 2), *c, rng.uniform(0.3, 0.7)))
    radius = float(rng.uniform(*RADIUS))
    margin = SCALE_RANGE[1] if label in ("grow", "shrink") else radius
    margin = margin * 1.5 + 0.02  # the cross and square reach further than the radius
    center = rng.uniform(margin, 1 - margin, 2)
    velocity = (0.0, 0.0)
    if label in MOVING:
        speed = rng.uniform(*SPEED)
        along = np.array(MOVING[label])
        across = np.array([along[1], along[0]]) * rng.uniform(-DRIFT, DRIFT)
        velocity = tuple(float(v) for v in speed * (along + across))
    return ShapeScene(
        label=label, seed=seed, shape=SHAPES[int(rng.integers(len(SHAPES)))], color=tuple(float(c) for c in color),
        background=(tuple(float(c) for c in bg0), tuple(float(c) for c in bg1)),
        gradient_angle=float(rng.uniform(0, 2 * np.pi)), clutter=tuple(tuple(float(v) for v in b) for b in blobs),
        noise=float(rng.uniform(0, 8)) if noise else 0.0, center=(float(center[0]), float(center[1])),
        radius=radius, velocity=velocity, period=int(rng.integers(SCALE_PERIOD[0], SCALE_PERIOD[1] + 1)),
        blink=(int(rng.integers(BLINK_FRAMES[0], BLINK_FRAMES[1] + 1)),
               int(rng.integers(BLINK_FRAMES[0], BLINK_FRAMES[1] + 1))),
        phase=int(rng.integers(0, 1000)))


def shape_state(scene: ShapeScene, t: int) -> Tuple[float, float, float, bool]:
    """Where the shape is at frame ``t``: centre x, y (fractions, before wrapping), radius, visible."""
    jitter = np.random.default_rng([scene.seed, int(t), 1]).normal(0, JITTER, 2)
    x = scene.center[0] + scene.velocity[0] * t + jitter[0]
    y = scene.center[1] + scene.velocity[1] * t + jitter[1]
    radius, visible = scene.radius, True
    ramp = ((t + scene.phase) % scene.period) / max(scene.period - 1, 1)
    lo, hi = SCALE_RANGE
    if scene.label == "grow":
        radius = lo + (hi - lo) * ramp
    elif scene.label == "shrink":
        radius = hi - (hi - lo) * ramp
    elif scene.label == "blink":
        on, off = scene.blink
        visible = (t + scene.phase) % (on + off) < on
    return float(x), float(y), float(radius), visible


def _background(scene: ShapeScene, size: int) -> np.ndarray:
    g = (np.arange(size) + 0.5) / size
    X, Y = np.meshgrid(g, g)
    a = np.cos(scene.gradient_angle) * (X - 0.5) + np.sin(scene.gradient_angle) * (Y - 0.5)
    w = np.clip(a + 0.5, 0, 1)[..., None]
    bg0, bg1 = (np.asarray(c, np.float32) for c in scene.background)
    img = (1 - w) * bg0 + w * bg1
    for cx, cy, rx, ry, r, gg, b, alpha in scene.clutter:
        inside = ((X - cx) / rx) ** 2 + ((Y - cy) / ry) ** 2 <= 1.0
        img[inside] = (1 - alpha) * img[inside] + alpha * np.array([r, gg, b], np.float32)
    return img.astype(np.float32)


def _coverage(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Anti-aliased coverage (0-1) of a shape of radius ``r`` px at pixel offsets ``dx, dy`` (px)."""
    ax, ay = np.abs(dx), np.abs(dy)
    if shape == "circle":
        d = np.hypot(dx, dy) - r
    elif shape == "square":
        d = np.maximum(ax, ay) - 0.85 * r
    elif shape == "diamond":
        d = (ax + ay - 1.25 * r) / np.sqrt(2)
    else:  # cross: two bars
        arm = 0.38 * r
        d = np.minimum(np.maximum(ax - r, ay - arm), np.maximum(ax - arm, ay - r))
    return np.clip(0.5 - d, 0.0, 1.0)


def render_frame(scene: ShapeScene, t: int, size: int = 64, background: np.ndarray = None) -> np.ndarray:
    """Frame ``t`` of the stream as ``(size, size, 3) uint8`` RGB (``background``: a cached
    :func:`_background` of the same size)."""
    img = (_background(scene, size) if background is None else background).copy()
    x, y, radius, visible = shape_state(scene, t)
    if visible:
        p = (np.arange(size) + 0.5)
        # offsets on the torus (a moving shape leaving one edge comes back at the other)
        dx = (p - x * size + size / 2) % size - size / 2
        dy = (p - y * size + size / 2) % size - size / 2
        cover = _coverage(scene.shape, dx[None, :], dy[:, None], radius * size)[..., None]
        img = (1 - cover) * img + cover * np.asarray(scene.color, np.float32)
    if scene.noise > 0:
        img = img + np.random.default_rng([scene.seed, int(t), 2]).normal(0, scene.noise, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render_clip(scene: ShapeScene, start: int, frames: int, size: int = 64) -> np.ndarray:
    """Frames ``start .. start + frames - 1`` of the stream: ``(frames, size, size, 3) uint8``."""
    background = _background(scene, size)
    return np.stack([render_frame(scene, start + i, size, background) for i in range(frames)])


def stream(label: str, seed: int = 0, size: int = 64, clutter: bool = True, noise: bool = True) -> Iterator[np.ndarray]:
    """An endless stream of RGB frames of class ``label`` (deterministic per ``seed``), for tests and bags::

        frames = itertools.islice(stream("move_left", seed=3, size=128), 100)
    """
    scene = sample_scene(label, np.random.default_rng(seed), clutter, noise)
    background = _background(scene, size)
    t = 0
    while True:
        yield render_frame(scene, t, size, background)
        t += 1


def generate_dataset(per_class: int, seed, frames: int, size: int = 64, max_start: int = 200,
                     classes: Sequence[str] = CLASSES) -> Tuple[np.ndarray, np.ndarray]:
    """``per_class`` clips of every class: ``(N, frames, size, size, 3) uint8`` and labels ``(N,)``.

    ``seed``: an int or a sequence of ints (e.g. ``(seed, batch_index)`` for fresh training batches).
    Clip ``i`` of class ``k`` comes from ``default_rng([*seed, k, i])``: a fresh scene, started at a
    random frame below ``max_start`` (so clips catch grow/shrink ramps and blinks at any phase and
    moving shapes anywhere, wrapped or not).
    """
    clips, labels = [], []
    for k, label in enumerate(classes):
        for i in range(per_class):
            rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), k, i])
            scene = sample_scene(label, rng)
            clips.append(render_clip(scene, int(rng.integers(0, max_start)), frames, size))
            labels.append(CLASSES.index(label))
    return np.stack(clips), np.asarray(labels, np.int64)


def to_clip_tensor(clips: np.ndarray, mean: float = MEAN, std: float = STD):
    """``(N, T, H, W, 3) uint8`` RGB -> normalised float tensor ``(N, 3, T, H, W)``."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(clips)).permute(0, 4, 1, 2, 3).float()
    return (x / 255.0 - mean) / std


def to_frame_tensor(frame: np.ndarray, mean: float = MEAN, std: float = STD):
    """One ``(H, W, 3) uint8`` RGB frame -> normalised ``(1, 3, H, W)`` (a CoX3D step input)."""
    return to_clip_tensor(frame[None, None], mean, std)[:, :, 0]
