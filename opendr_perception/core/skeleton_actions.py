"""Procedural stick-figure actions in the COCO-18 layout, and the pose normalisation of the demo model.

Nothing here comes from a dataset. A small parametric body is animated by joint-angle
trajectories, seen by a simple camera, and rendered into what the pose node publishes
(``opendr_interfaces/HumanPose2D``, layout ``coco18``): per frame 18 keypoints in OpenPose order
(:data:`opendr_perception.core.keypoints.COCO18`), x and y in pixels of a 640x480 image (x right,
y down) and a confidence in [0, 1]; a keypoint that was not found has confidence 0 and x = y = 0.
It serves to train and test the demonstration skeleton-action model
(``models/cards/costgcn_procedural_coco18.md``); it is not a substitute for NTU RGB+D or
Kinetics-Skeleton.

The body
--------
Lengths are in units of the torso (neck to the hip centre = 1); every sequence draws its own
proportions uniformly from :data:`PROPORTION_RANGES` (``proportions="unseen"`` draws from bands
just outside them instead, for a held-out test on body shapes never trained on). The body frame is
X = the person's left, Y = up, Z = forward. Arm and leg segments have absolute directions given by
an abduction angle ``a`` (sideways, 0 = hanging down, 90 = horizontal, 180 = straight up) and a
flexion angle ``f`` (forwards), see :func:`_direction`; the trunk leans (pitch) and rolls; the
head nods and turns; the lower ankle stands on the ground (plus a lift while jumping).

The actions (:data:`ACTIONS`)
-----------------------------
``standing`` (idle: sway, weight shifts, small gestures; arms hanging, on the hips or clasped),
``walking`` (in place facing the camera within +-40 deg, or across the image seen from the side),
``waving`` (one hand, either side, at shoulder height or above the head), ``raising_arms`` (both
arms up and down sideways or forwards, or held up), ``squatting`` (repeated knee bends), ``jumping``
(in place, crouch and flight), ``clapping`` (hands meeting in front of the chest) and ``kicking``
(one leg, either side, a front kick or a side kick). Each action is periodic with a random period
of 0.3-3 s (see the functions ``_standing`` ... ``_kicking``), speed factor, phase and amplitudes,
so that a 48-frame window (3.2 s) holds most of a cycle or more; one-handed/one-legged actions use
either side, which makes the camera mirror a label-preserving augmentation.

The camera
----------
Orthographic projection after a yaw of the body (facing the camera within +-45 deg, side views for
walking across) and a camera tilt of -10..20 deg; torso length 35-110 px (a person of about
110-350 px); feet on a random ground line (sometimes below the image border); in-plane rotation
+-10 deg; a horizontal mirror with probability 0.5 (x -> width - x with left/right names swapped,
as a pose estimator labels a mirrored image).

The noise
---------
Per sequence: a pose-estimator quality ``q`` (mean confidence), a jitter level and constant per-joint
offsets; per keypoint and frame: Gaussian jitter, a confidence around ``q``, random drops
(probability up to ``drop_max``), occasional bursts where one limb end is lost for 5-20 frames,
the far eye and ear lost in side views, and every keypoint outside the image lost. Lost keypoints
have confidence 0 and x = y = 0.

The normalisation (shared by training and the live node)
--------------------------------------------------------
:func:`normalize_keypoints` maps the raw keypoints of each frame on their own (no state):

1. a keypoint counts as seen when its confidence is >= ``min_confidence`` (0.3);
2. centre: the neck if seen, else the midpoint of the seen shoulders, else of the seen hips, else
   the mean of the seen keypoints;
3. scale: the torso length (neck or shoulder midpoint to the hip centre of the seen hips); without
   hips, the shoulder width / 0.82 (the mean shoulder width in torso units); without either, the
   height of the seen keypoints / 3.3; at least 1 pixel;
4. output channels: ``(x - cx) / scale``, ``(y - cy) / scale`` (y stays downwards) clipped to
   +-6, and 1.0 for a seen keypoint; unseen keypoints are (0, 0, 0). The raw confidence value is
   deliberately not passed on (only seen / unseen), so the model does not depend on one
   estimator's confidence calibration.

A frame with no seen keypoint becomes all zeros. :func:`to_clip_tensor` and
:func:`to_step_tensor` arrange normalised keypoints as the ``(N, 3, T, 18, 1)`` clips and the
``(N, 3, 18, 1)`` steps that :mod:`opendr_perception.models.skeleton_gcn` models take, and
:func:`build_model_from_manifest` builds the model that a manifest entry (extra keys
``architecture``, ``num_classes``, ``layout`` and the constructor options) describes.

Live use (per tracked person, one continual state each)::

    spec = registry.default_registry().spec("costgcn_procedural_coco18")
    model = build_model_from_manifest(spec.extra)
    model.load_state_dict(registry.load_state_dict("costgcn_procedural_coco18"))
    model.eval()
    ...  # for each HumanPose2D (layout coco18) of a track, at about spec.extra["fps"] poses/s:
    logits = model.forward_step(to_step_tensor(normalize_keypoints(keypoints_18x3)))
    # None during the first spec.extra["delay"] steps of a track, then (1, num_classes) logits
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from .keypoints import COCO18

__all__ = [
    "ACTIONS", "FPS", "FRAME_SIZE", "NUM_KEYPOINTS", "PROPORTION_RANGES", "GeneratorConfig", "PRESETS",
    "BodyProportions", "sample_proportions", "generate_sequence", "generate_dataset",
    "normalize_keypoints", "to_clip_tensor", "to_step_tensor", "MIRROR_PERMUTATION", "MODEL_OPTION_KEYS",
    "build_model_from_manifest",
]

ACTIONS: Tuple[str, ...] = ("standing", "walking", "waving", "raising_arms", "squatting", "jumping",
                            "clapping", "kicking")
FPS = 15.0  # nominal frame rate of the generated sequences (a CPU pose node's rate)
FRAME_SIZE = (640, 480)  # width, height in pixels
NUM_KEYPOINTS = len(COCO18.names)

# COCO-18 (OpenPose) indices
NOSE, NECK, R_SHO, R_ELB, R_WRI, L_SHO, L_ELB, L_WRI = range(8)
R_HIP, R_KNE, R_ANK, L_HIP, L_KNE, L_ANK, R_EYE, L_EYE, R_EAR, L_EAR = range(8, 18)
assert COCO18.names[L_EAR] == "left_ear" and COCO18.names[R_HIP] == "right_hip"

#: keypoint order after a horizontal mirror (left and right names swapped)
MIRROR_PERMUTATION = np.array([NOSE, NECK, L_SHO, L_ELB, L_WRI, R_SHO, R_ELB, R_WRI, L_HIP, L_KNE, L_ANK,
                               R_HIP, R_KNE, R_ANK, L_EYE, R_EYE, L_EAR, R_EAR])

#: body lengths in torso units (neck to hip centre = 1), uniform ranges of the training data
PROPORTION_RANGES: Dict[str, Tuple[float, float]] = {
    "shoulder_half_width": (0.36, 0.46),
    "hip_half_width": (0.17, 0.24),
    "upper_arm": (0.55, 0.68),
    "forearm": (0.50, 0.62),
    "thigh": (0.82, 0.98),
    "shin": (0.80, 0.95),
    "neck_to_nose": (0.30, 0.40),
    "eye_half_width": (0.05, 0.08),
    "ear_half_width": (0.12, 0.16),
}
SHOULDER_WIDTH_PER_TORSO = 0.82  # mean of 2 x shoulder_half_width: the scale fallback
HEIGHT_PER_TORSO = 3.3  # about head top to ankles: the last scale fallback


@dataclass(frozen=True)
class BodyProportions:
    shoulder_half_width: float
    hip_half_width: float
    upper_arm: float
    forearm: float
    thigh: float
    shin: float
    neck_to_nose: float
    eye_half_width: float
    ear_half_width: float


def sample_proportions(rng: np.random.Generator, proportions: str = "train") -> BodyProportions:
    """Random body proportions: ``"train"`` uniform in :data:`PROPORTION_RANGES`; ``"unseen"`` uniform in
    the bands of half the range's width just below or just above it (never inside it)."""
    values = {}
    for name, (lo, hi) in PROPORTION_RANGES.items():
        if proportions == "train":
            values[name] = rng.uniform(lo, hi)
        elif proportions == "unseen":
            w = 0.5 * (hi - lo)
            values[name] = rng.uniform(lo - w, lo) if rng.random() < 0.5 else rng.uniform(hi, hi + w)
        else:
            raise ValueError(f"proportions must be 'train' or 'unseen', got {proportions!r}")
    return BodyProportions(**values)


@dataclass(frozen=True)
class GeneratorConfig:
    """What a generated sequence varies over (all ranges uniform)."""

    frames: int = 48
    fps: float = FPS
    width: int = FRAME_SIZE[0]
    height: int = FRAME_SIZE[1]
    proportions: str = "train"  # "train" or "unseen" (see sample_proportions)
    speed: Tuple[float, float] = (0.8, 1.25)  # multiplies each action's own random tempo
    torso_px: Tuple[float, float] = (35.0, 110.0)  # torso length in pixels (person size)
    yaw_deg: float = 45.0  # facing the camera within +-yaw (walking across: side views)
    tilt_deg: Tuple[float, float] = (-10.0, 20.0)  # camera above (+) or below the chest
    roll_deg: float = 10.0  # in-plane rotation
    mirror_prob: float = 0.5
    jitter: Tuple[float, float] = (0.01, 0.035)  # per-frame keypoint jitter, torso units (std)
    bias: Tuple[float, float] = (0.0, 0.03)  # constant per-joint offsets, torso units (std)
    quality: Tuple[float, float] = (0.55, 0.95)  # mean keypoint confidence of the sequence
    confidence_std: float = 0.12
    drop_max: float = 0.08  # per-keypoint per-frame drop probability drawn from [0, drop_max]
    burst_prob: float = 0.3  # chance of one limb end lost for 5-20 frames
    noise_scale: float = 1.0  # multiplies jitter and bias


#: the configurations of the shipped model's training and evaluations
PRESETS: Dict[str, GeneratorConfig] = {
    "train": GeneratorConfig(),
    "unseen_proportions": GeneratorConfig(proportions="unseen"),
    "noisy": GeneratorConfig(noise_scale=2.5, drop_max=0.2, quality=(0.4, 0.8), burst_prob=0.6),
}


# --------------------------------------------------------------------------------------------
# Kinematics helpers (angles in degrees, arrays over time)
# --------------------------------------------------------------------------------------------


def _direction(a, f, side: float) -> np.ndarray:
    """Unit segment direction ``(T, 3)``: abduction ``a`` sideways (towards ``side``: +1 = the person's
    left, -1 = right; negative ``a`` = towards the midline), then flexion ``f`` forwards."""
    a, f = np.radians(a), np.radians(f)
    a, f = np.broadcast_arrays(a, f)
    return np.stack([side * np.sin(a), -np.cos(a) * np.cos(f), np.cos(a) * np.sin(f)], -1)


def _rot_pitch(v: np.ndarray, deg) -> np.ndarray:
    """Rotate ``(T, ..., 3)`` about X so that +Y tips towards +Z (leaning / nodding forwards)."""
    t = np.radians(deg)
    c, s = np.cos(t), np.sin(t)
    while c.ndim < v.ndim - 1:
        c, s = c[..., None], s[..., None]
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([x, y * c - z * s, y * s + z * c], -1)


def _rot_roll(v: np.ndarray, deg) -> np.ndarray:
    """Rotate about Z (sideways lean, +Y towards -X for positive angles)."""
    t = np.radians(deg)
    c, s = np.cos(t), np.sin(t)
    while c.ndim < v.ndim - 1:
        c, s = c[..., None], s[..., None]
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([x * c - y * s, x * s + y * c, z], -1)


def _rot_yaw(v: np.ndarray, deg) -> np.ndarray:
    """Rotate about Y (turning): +Z (forwards) towards +X for positive angles."""
    t = np.radians(deg)
    c, s = np.cos(t), np.sin(t)
    while c.ndim < v.ndim - 1:
        c, s = c[..., None], s[..., None]
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([x * c + z * s, y, -x * s + z * c], -1)


def _drift(rng: np.random.Generator, t: np.ndarray, amplitude: float, period: Tuple[float, float] = (2.0, 6.0)):
    """Slow random wobble: two sinusoids of random period and phase, peak about ``amplitude``."""
    out = np.zeros_like(t)
    for _ in range(2):
        out += 0.5 * amplitude * np.sin(2 * np.pi * t / rng.uniform(*period) + rng.uniform(0, 2 * np.pi))
    return out


def _trapezoid(u: np.ndarray, rise: float, hold: float) -> np.ndarray:
    """Cycle position ``u`` in [0, 1) -> level: smooth rise over ``rise``, ``hold`` at 1, smooth fall over
    ``rise``, 0 for the rest of the cycle."""
    up = np.clip(u / rise, 0, 1)
    down = np.clip((u - rise - hold) / rise, 0, 1)
    smooth = lambda x: 0.5 - 0.5 * np.cos(np.pi * x)  # noqa: E731
    return smooth(up) * (1 - smooth(down))


class _Motion(dict):
    """Joint-angle trajectories: ``{side}_{sh_a, sh_f, el_a, el_f, hip_a, hip_f, knee}`` (side r/l),
    ``trunk_pitch``, ``trunk_roll``, ``head_pitch``, ``head_yaw`` (degrees), ``lift`` and ``shift``
    (torso units: jump height and displacement along the image x axis), ``yaw`` (degrees)."""


def _rest(rng: np.random.Generator, t: np.ndarray, idle: float = 1.0) -> _Motion:
    """Relaxed standing with a slow idle wobble (``idle`` scales it)."""
    T = len(t)
    m = _Motion()
    for s in "rl":
        sh_a, sh_f = rng.uniform(5, 12), rng.uniform(-5, 8)
        m[f"{s}_sh_a"] = sh_a + _drift(rng, t, 3 * idle)
        m[f"{s}_sh_f"] = sh_f + _drift(rng, t, 4 * idle)
        m[f"{s}_el_a"] = m[f"{s}_sh_a"] + rng.uniform(-3, 3)
        m[f"{s}_el_f"] = m[f"{s}_sh_f"] + rng.uniform(5, 20) + _drift(rng, t, 4 * idle)
        m[f"{s}_hip_a"] = rng.uniform(2, 7) + _drift(rng, t, 1.5 * idle)
        m[f"{s}_hip_f"] = rng.uniform(-3, 3) + _drift(rng, t, 1.5 * idle)
        m[f"{s}_knee"] = rng.uniform(0, 8) + np.abs(_drift(rng, t, 3 * idle))
    m["trunk_pitch"] = rng.uniform(-3, 5) + _drift(rng, t, 2 * idle)
    m["trunk_roll"] = _drift(rng, t, 2.5 * idle)
    m["head_pitch"] = rng.uniform(-10, 10) + _drift(rng, t, 4 * idle)
    m["head_yaw"] = rng.uniform(-15, 15) + _drift(rng, t, 8 * idle)
    m["lift"] = np.zeros(T)
    m["shift"] = np.zeros(T)
    m["yaw"] = np.full(T, rng.uniform(-1, 1)) + _drift(rng, t, 4 * idle)
    return m


def _cycle(rng: np.random.Generator, t: np.ndarray, period: Tuple[float, float], *,
           with_period: bool = False):
    """Cycle position in [0, 1) at times ``t`` for a random period (seconds) and phase."""
    p = rng.uniform(*period)
    u = (t / p + rng.random()) % 1.0
    return (u, p) if with_period else u


def _arms_pose(rng, m: _Motion, style: str) -> None:
    """Static arm styles of idle poses: 'hanging' (as rest), 'hips' (hands on the hips), 'clasped'."""
    for s in "rl":
        if style == "hips":
            m[f"{s}_sh_a"] = m[f"{s}_sh_a"] * 0 + rng.uniform(30, 45)
            m[f"{s}_sh_f"] = m[f"{s}_sh_f"] * 0 + rng.uniform(-10, 5)
            m[f"{s}_el_a"] = m[f"{s}_el_a"] * 0 - rng.uniform(25, 50)
            m[f"{s}_el_f"] = m[f"{s}_el_f"] * 0 + rng.uniform(-15, 5)
        elif style == "clasped":
            m[f"{s}_sh_a"] = m[f"{s}_sh_a"] * 0 + rng.uniform(3, 12)
            m[f"{s}_sh_f"] = m[f"{s}_sh_f"] * 0 + rng.uniform(15, 35)
            m[f"{s}_el_a"] = m[f"{s}_el_a"] * 0 - rng.uniform(45, 75)
            m[f"{s}_el_f"] = m[f"{s}_el_f"] * 0 + rng.uniform(45, 80)


def _standing(rng, t) -> _Motion:
    m = _rest(rng, t, idle=rng.uniform(1.0, 2.0))
    _arms_pose(rng, m, rng.choice(["hanging", "hips", "clasped"], p=[0.5, 0.25, 0.25]))
    # weight shift from one leg to the other
    shift = _drift(rng, t, rng.uniform(0, 6), period=(3.0, 8.0))
    m["r_hip_a"] = m["r_hip_a"] + shift
    m["l_hip_a"] = m["l_hip_a"] - shift
    m["trunk_roll"] = m["trunk_roll"] + 0.5 * shift
    if rng.random() < 0.4:  # small talking gestures of one forearm
        s = rng.choice(["r", "l"])
        m[f"{s}_el_f"] = m[f"{s}_el_f"] + np.abs(_drift(rng, t, rng.uniform(10, 30), period=(1.0, 3.0)))
    return m


def _walking(rng, t) -> _Motion:
    m = _rest(rng, t, idle=0.5)
    u, period = _cycle(rng, t, (0.9, 1.25), with_period=True)
    phase = 2 * np.pi * u
    hip_amp, knee_amp, arm_amp = rng.uniform(15, 28), rng.uniform(35, 60), rng.uniform(8, 30)
    for s, sign in (("l", 1.0), ("r", -1.0)):
        p = phase if sign > 0 else phase + np.pi
        m[f"{s}_hip_f"] = hip_amp * np.sin(p)
        m[f"{s}_knee"] = 5 + knee_amp * np.maximum(0, np.cos(p)) ** 1.5
        arm = -arm_amp * np.sin(p)  # the arm swings against the leg of its side
        m[f"{s}_sh_f"] = m[f"{s}_sh_f"] * 0.3 + arm
        m[f"{s}_el_f"] = m[f"{s}_sh_f"] + rng.uniform(10, 25) + 0.4 * np.maximum(arm, 0)
    m["trunk_pitch"] = m["trunk_pitch"] + rng.uniform(0, 6)
    m["trunk_roll"] = m["trunk_roll"] + rng.uniform(0, 3) * np.sin(phase)
    if rng.random() < 0.55:  # across the image, seen from the side
        yaw = rng.choice([-1.0, 1.0]) * rng.uniform(60, 100)
        m["yaw"] = m["yaw"] + yaw
        leg = 1.75  # about thigh + shin
        speed = 4 * leg * np.sin(np.radians(hip_amp)) / period  # two steps per cycle, torso units per second
        m["shift"] = np.sign(np.sin(np.radians(yaw))) * speed * (t - t.mean())
    else:  # in place, facing the camera within +-40 deg
        m["yaw"] = m["yaw"] + rng.uniform(-40, 40)
    return m


def _waving(rng, t) -> _Motion:
    m = _rest(rng, t)
    s = rng.choice(["r", "l"])
    wave = np.sin(2 * np.pi * _cycle(rng, t, (0.35, 0.7)))
    if rng.random() < 0.6:  # hand at head height, forearm up
        m[f"{s}_sh_a"] = rng.uniform(70, 110) + _drift(rng, t, 5)
        m[f"{s}_sh_f"] = rng.uniform(0, 30) + _drift(rng, t, 5)
        m[f"{s}_el_a"] = rng.uniform(150, 175) + rng.uniform(15, 35) * wave
        m[f"{s}_el_f"] = m[f"{s}_sh_f"] + rng.uniform(-10, 10)
    else:  # whole arm above the head
        m[f"{s}_sh_a"] = rng.uniform(140, 170) + rng.uniform(3, 10) * wave
        m[f"{s}_sh_f"] = rng.uniform(0, 25) + _drift(rng, t, 5)
        m[f"{s}_el_a"] = m[f"{s}_sh_a"] + rng.uniform(0, 20) + rng.uniform(10, 25) * wave
        m[f"{s}_el_f"] = m[f"{s}_sh_f"]
    m["head_yaw"] = m["head_yaw"] * 0.5
    return m


def _raising_arms(rng, t) -> _Motion:
    m = _rest(rng, t)
    style = rng.choice(["sideways", "forwards", "held"], p=[0.45, 0.35, 0.2])
    level = _trapezoid(_cycle(rng, t, (1.4, 2.6)), rise=rng.uniform(0.2, 0.3), hold=rng.uniform(0.1, 0.3))
    if style == "held":
        level = 1.0 + 0 * level
    peak = rng.uniform(140, 178)
    for s in "rl":
        bend = rng.uniform(0, 15)
        if style == "forwards":
            m[f"{s}_sh_f"] = m[f"{s}_sh_f"] + level * (peak - m[f"{s}_sh_f"])
            m[f"{s}_sh_a"] = m[f"{s}_sh_a"] * (1 - 0.5 * level)
            m[f"{s}_el_f"] = m[f"{s}_sh_f"] + bend * (1 - level) + rng.uniform(0, 10)
            m[f"{s}_el_a"] = m[f"{s}_sh_a"]
        else:
            m[f"{s}_sh_a"] = m[f"{s}_sh_a"] + level * (peak - m[f"{s}_sh_a"]) + _drift(rng, t, 4)
            m[f"{s}_sh_f"] = m[f"{s}_sh_f"] + level * rng.uniform(0, 20)
            m[f"{s}_el_a"] = m[f"{s}_sh_a"] + bend
            m[f"{s}_el_f"] = m[f"{s}_sh_f"] + bend * (1 - level)
    m["head_pitch"] = m["head_pitch"] - 10 * level
    return m


def _squatting(rng, t) -> _Motion:
    m = _rest(rng, t, idle=0.5)
    level = _trapezoid(_cycle(rng, t, (1.8, 3.0)), rise=rng.uniform(0.3, 0.38), hold=rng.uniform(0.05, 0.15))
    depth = rng.uniform(0.6, 1.0)
    hip, knee, lean, spread = rng.uniform(80, 105), rng.uniform(100, 130), rng.uniform(20, 45), rng.uniform(5, 20)
    for s in "rl":
        m[f"{s}_hip_f"] = m[f"{s}_hip_f"] + level * depth * hip
        m[f"{s}_knee"] = m[f"{s}_knee"] + level * depth * knee
        m[f"{s}_hip_a"] = m[f"{s}_hip_a"] + level * spread
    m["trunk_pitch"] = m["trunk_pitch"] + level * depth * lean
    style = rng.choice(["forwards", "hanging", "hips", "clasped"], p=[0.5, 0.2, 0.15, 0.15])
    if style == "forwards":
        raise_to = rng.uniform(60, 95)
        for s in "rl":
            m[f"{s}_sh_f"] = m[f"{s}_sh_f"] + level * raise_to
            m[f"{s}_el_f"] = m[f"{s}_sh_f"] + rng.uniform(0, 10)
    else:
        _arms_pose(rng, m, style)
    return m


def _jumping(rng, t) -> _Motion:
    m = _rest(rng, t, idle=0.5)
    u = _cycle(rng, t, (0.55, 0.9))
    c = rng.uniform(0.35, 0.5)  # share of the cycle on the ground
    crouch = np.where(u < c, np.sin(np.pi * np.clip(u / c, 0, 1)), 0.0)
    s_fl = np.clip((u - c) / (1 - c), 0, 1)
    flight = np.where(u >= c, 4 * s_fl * (1 - s_fl), 0.0)
    knee_amp = rng.uniform(35, 70)
    for s in "rl":
        m[f"{s}_knee"] = 3 + knee_amp * crouch + rng.uniform(3, 12) * flight
        m[f"{s}_hip_f"] = 0.6 * knee_amp * crouch + rng.uniform(0, 8) * flight
    m["trunk_pitch"] = m["trunk_pitch"] + 0.3 * knee_amp * crouch
    m["lift"] = rng.uniform(0.15, 0.4) * flight
    if rng.random() < 0.6:  # arm swing: back while crouching, up in the air
        up = rng.uniform(50, 120)
        for s in "rl":
            m[f"{s}_sh_f"] = m[f"{s}_sh_f"] - 30 * crouch + up * flight
            m[f"{s}_el_f"] = m[f"{s}_sh_f"] + rng.uniform(5, 20)
    else:
        for s in "rl":
            m[f"{s}_sh_a"] = m[f"{s}_sh_a"] + rng.uniform(5, 20) * flight
            m[f"{s}_el_a"] = m[f"{s}_sh_a"]
    return m


def _clapping(rng, t, body: BodyProportions) -> _Motion:
    m = _rest(rng, t)
    u = _cycle(rng, t, (0.3, 0.6))
    closed = (0.5 + 0.5 * np.cos(2 * np.pi * u)) ** 0.6  # 1 = hands together
    sh_f, sh_a = rng.uniform(30, 70), rng.uniform(5, 20)
    for s in "rl":
        m[f"{s}_sh_f"] = sh_f + rng.uniform(-5, 5) + _drift(rng, t, 4)
        m[f"{s}_sh_a"] = sh_a + rng.uniform(-3, 3) + _drift(rng, t, 3)
        elbow_x = body.shoulder_half_width + body.upper_arm * np.sin(np.radians(m[f"{s}_sh_a"]))
        a_closed = -np.degrees(np.arcsin(np.clip(elbow_x / body.forearm, -1, 1))) * rng.uniform(0.9, 1.0)
        a_open = rng.uniform(-5, 20)
        m[f"{s}_el_a"] = a_open + closed * (a_closed - a_open)
        m[f"{s}_el_f"] = rng.uniform(70, 100) + _drift(rng, t, 5)
    return m


def _kicking(rng, t) -> _Motion:
    m = _rest(rng, t, idle=0.7)
    s = rng.choice(["r", "l"])
    other = "l" if s == "r" else "r"
    u = _cycle(rng, t, (1.2, 2.2))
    duty = rng.uniform(0.35, 0.55)
    k = np.clip(u / duty, 0, 1)
    active = u < duty
    swing = np.where(active, np.sin(np.pi * k) ** 1.5, 0.0)
    chamber = np.where(active & (k < 0.5), np.sin(2 * np.pi * k), 0.0)
    recoil = np.where(active & (k >= 0.5), 0.4 * np.sin(2 * np.pi * (k - 0.5)), 0.0)
    if rng.random() < 0.65:  # front kick: chamber the knee, extend at the top, recoil
        amp, knee_amp = rng.uniform(45, 90), rng.uniform(50, 90)
        m[f"{s}_hip_f"] = m[f"{s}_hip_f"] + amp * swing
        m[f"{s}_knee"] = m[f"{s}_knee"] + knee_amp * (chamber + recoil)
    else:  # side kick: the leg swings out sideways
        m[f"{s}_hip_a"] = m[f"{s}_hip_a"] + rng.uniform(35, 70) * swing
        m[f"{s}_hip_f"] = m[f"{s}_hip_f"] + rng.uniform(0, 25) * swing
        m[f"{s}_knee"] = m[f"{s}_knee"] + rng.uniform(20, 50) * chamber
        m["trunk_roll"] = m["trunk_roll"] + (1 if s == "l" else -1) * rng.uniform(5, 15) * swing
    m[f"{other}_knee"] = m[f"{other}_knee"] + rng.uniform(0, 10) * swing
    m["trunk_pitch"] = m["trunk_pitch"] - rng.uniform(5, 15) * swing
    balance = rng.uniform(10, 35)
    for side in "rl":
        m[f"{side}_sh_a"] = m[f"{side}_sh_a"] + balance * swing
        m[f"{side}_el_a"] = m[f"{side}_sh_a"] + rng.uniform(-3, 3)
    return m


_ACTION_FUNCS = {"standing": _standing, "walking": _walking, "waving": _waving,
                 "raising_arms": _raising_arms, "squatting": _squatting, "jumping": _jumping,
                 "clapping": _clapping, "kicking": _kicking}
assert tuple(_ACTION_FUNCS) == ACTIONS


# --------------------------------------------------------------------------------------------
# Forward kinematics, camera, noise
# --------------------------------------------------------------------------------------------


def _pose3d(m: _Motion, body: BodyProportions, neck_drop: float) -> np.ndarray:
    """Joint positions ``(T, 18, 3)`` in torso units, body frame (before yaw), feet on Y = 0."""
    T = len(m["trunk_pitch"])
    out = np.zeros((T, NUM_KEYPOINTS, 3))

    def trunk(v):  # trunk rotation: roll, then lean forwards
        return _rot_pitch(_rot_roll(np.broadcast_to(v, (T, 3)), m["trunk_roll"]), m["trunk_pitch"])

    neck = trunk(np.array([0.0, 1.0, 0.0]))
    out[:, NECK] = neck
    for side, s, (sho, elb, wri, hip, kne, ank) in (
            (+1.0, "l", (L_SHO, L_ELB, L_WRI, L_HIP, L_KNE, L_ANK)),
            (-1.0, "r", (R_SHO, R_ELB, R_WRI, R_HIP, R_KNE, R_ANK))):
        out[:, sho] = neck + trunk(np.array([side * body.shoulder_half_width, -neck_drop, 0.0]))
        d_upper = _rot_pitch(_rot_roll(_direction(m[f"{s}_sh_a"], m[f"{s}_sh_f"], side), m["trunk_roll"]),
                             m["trunk_pitch"])
        d_fore = _rot_pitch(_rot_roll(_direction(m[f"{s}_el_a"], m[f"{s}_el_f"], side), m["trunk_roll"]),
                            m["trunk_pitch"])
        out[:, elb] = out[:, sho] + body.upper_arm * d_upper
        out[:, wri] = out[:, elb] + body.forearm * d_fore
        out[:, hip] = np.array([side * body.hip_half_width, 0.0, 0.0])
        d_thigh = _direction(m[f"{s}_hip_a"], m[f"{s}_hip_f"], side)
        d_shin = _direction(m[f"{s}_hip_a"], m[f"{s}_hip_f"] - m[f"{s}_knee"], side)
        out[:, kne] = out[:, hip] + body.thigh * d_thigh
        out[:, ank] = out[:, kne] + body.shin * d_shin
    # head: turn, then nod, then the trunk's rotation
    h = body.neck_to_nose
    local = np.array([[0.0, h, 0.10],  # nose
                      [-body.eye_half_width, h + 0.06, 0.06], [body.eye_half_width, h + 0.06, 0.06],  # eyes r, l
                      [-body.ear_half_width, h + 0.01, -0.06], [body.ear_half_width, h + 0.01, -0.06]])  # ears
    head = _rot_pitch(_rot_yaw(np.broadcast_to(local, (T, 5, 3)), m["head_yaw"]), m["head_pitch"])
    head = _rot_pitch(_rot_roll(head, m["trunk_roll"]), m["trunk_pitch"])
    out[:, [NOSE, R_EYE, L_EYE, R_EAR, L_EAR]] = neck[:, None] + head
    # stand the lower ankle on the ground, then the jump's lift
    ground = np.minimum(out[:, L_ANK, 1], out[:, R_ANK, 1])
    out[..., 1] += (m["lift"] - ground)[:, None]
    return out


def generate_sequence(action: Union[int, str], rng: np.random.Generator,
                      config: GeneratorConfig = GeneratorConfig()) -> np.ndarray:
    """One sequence of ``action`` as the pose node would publish it: ``(frames, 18, 3)`` float32 of
    x, y (pixels) and confidence (0 = not found, then x = y = 0)."""
    name = ACTIONS[action] if isinstance(action, (int, np.integer)) else str(action)
    if name not in _ACTION_FUNCS:
        raise ValueError(f"unknown action {action!r}; choose one of {ACTIONS}")
    T, W, H = int(config.frames), float(config.width), float(config.height)
    body = sample_proportions(rng, config.proportions)
    t = np.arange(T) / float(config.fps) * rng.uniform(*config.speed)
    func = _ACTION_FUNCS[name]
    m = func(rng, t, body) if name == "clapping" else func(rng, t)
    if name != "walking" or np.all(m["shift"] == 0):
        m["yaw"] = m["yaw"] + rng.uniform(-config.yaw_deg, config.yaw_deg)
    xyz = _pose3d(m, body, neck_drop=rng.uniform(-0.02, 0.04))

    # camera: yaw of the body, tilt, orthographic projection, size and place, in-plane rotation
    world = _rot_yaw(xyz, m["yaw"])
    world[..., 0] += m["shift"][:, None]
    tilt = np.radians(rng.uniform(*config.tilt_deg))
    x_cam = world[..., 0]
    y_cam = world[..., 1] * np.cos(tilt) + world[..., 2] * np.sin(tilt)
    depth = world[..., 2]
    s = rng.uniform(*config.torso_px)
    height_px = s * (body.thigh + body.shin + 1.0 + body.neck_to_nose + 0.15)
    lo, hi = max(0.97 * height_px, 0.55 * H), H + 0.2 * height_px
    v_ground = rng.uniform(lo, hi) if lo < hi else hi
    span = 1.2 * s
    shift_px = s * (m["shift"].max() - m["shift"].min()) if T else 0.0
    u_lo, u_hi = span + shift_px / 2, W - span - shift_px / 2
    u_centre = rng.uniform(u_lo, u_hi) if u_lo < u_hi else W / 2
    u = u_centre + s * x_cam
    v = v_ground - s * y_cam
    roll = np.radians(rng.uniform(-config.roll_deg, config.roll_deg))
    pu, pv = u_centre, v_ground - s * (body.thigh + body.shin)
    du, dv = u - pu, v - pv
    u, v = pu + du * np.cos(roll) - dv * np.sin(roll), pv + du * np.sin(roll) + dv * np.cos(roll)

    # pose-estimator noise
    ns = config.noise_scale
    bias = rng.normal(0.0, rng.uniform(*config.bias) * ns, (1, NUM_KEYPOINTS, 2))
    jitter = rng.normal(0.0, rng.uniform(*config.jitter) * ns, (T, NUM_KEYPOINTS, 2))
    u = u + s * (bias[..., 0] + jitter[..., 0])
    v = v + s * (bias[..., 1] + jitter[..., 1])
    quality = rng.uniform(*config.quality)
    conf = np.clip(quality + rng.normal(0.0, config.confidence_std, (T, NUM_KEYPOINTS)), 0.05, 1.0)
    seen = rng.random((T, NUM_KEYPOINTS)) >= rng.uniform(0.0, config.drop_max)
    if rng.random() < config.burst_prob:  # one limb end lost for a while
        joint = rng.choice([R_WRI, L_WRI, R_ANK, L_ANK, R_ELB, L_ELB])
        length = int(rng.integers(5, 21))
        start = int(rng.integers(0, max(1, T - length + 1)))
        seen[start:start + length, joint] = False
    yaw_mean = float(np.mean(m["yaw"]))
    if abs(yaw_mean) > 55:  # side view: the far eye and ear are hidden
        far = (L_EYE, L_EAR) if yaw_mean > 0 else (R_EYE, R_EAR)
        seen[:, list(far)] = False
        # the far arm is partly hidden by the body: lower confidence
        arm = [L_ELB, L_WRI] if yaw_mean > 0 else [R_ELB, R_WRI]
        behind = depth[:, arm] < -0.05
        conf[:, arm] = np.where(behind, conf[:, arm] * 0.6, conf[:, arm])
    inside = (u >= 0) & (u < W) & (v >= 0) & (v < H)
    seen &= inside
    kp = np.stack([u, v, conf], -1)
    kp[~seen] = 0.0
    if rng.random() < config.mirror_prob:
        kp[..., 0] = np.where(seen, W - kp[..., 0], 0.0)
        kp = kp[:, MIRROR_PERMUTATION]
    return kp.astype(np.float32)


def generate_dataset(num_per_class: int, seed: int, config: GeneratorConfig = GeneratorConfig(),
                     stream: int = 0, actions: Optional[Sequence[int]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """A class-balanced set: keypoints ``(N, frames, 18, 3)`` float32 (pixels + confidence) and labels ``(N,)``.

    Sequence ``i`` of class ``c`` comes from ``numpy.random.default_rng([seed, stream, c, i])``: the
    same ``(seed, stream)`` gives the same data in any order or process; different seeds (or streams)
    give independent data. Items are ordered class by class.
    """
    classes = range(len(ACTIONS)) if actions is None else [int(a) for a in actions]
    data, labels = [], []
    for c in classes:
        for i in range(int(num_per_class)):
            rng = np.random.default_rng([int(seed), int(stream), c, i])
            data.append(generate_sequence(c, rng, config))
            labels.append(c)
    if not data:
        return np.zeros((0, config.frames, NUM_KEYPOINTS, 3), np.float32), np.zeros(0, np.int64)
    return np.stack(data), np.asarray(labels, np.int64)


# --------------------------------------------------------------------------------------------
# Normalisation (training and the live node)
# --------------------------------------------------------------------------------------------

MIN_CONFIDENCE = 0.3
COORD_LIMIT = 6.0


def normalize_keypoints(keypoints: np.ndarray, min_confidence: float = MIN_CONFIDENCE) -> np.ndarray:
    """Per-frame, stateless normalisation of COCO-18 keypoints ``(..., 18, 3)`` (x, y pixels, confidence).

    Returns float32 ``(..., 18, 3)``: x and y relative to the neck in torso lengths (y downwards),
    and 1 for seen keypoints (confidence >= ``min_confidence``); unseen keypoints are (0, 0, 0). See
    the module documentation for the fallbacks when the neck, the hips or the shoulders are unseen.
    A single live pose ``(18, 3)`` and a clip ``(T, 18, 3)`` or batch ``(N, T, 18, 3)`` all work.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape[-2:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f"expected COCO-18 keypoints (..., {NUM_KEYPOINTS}, 3), got shape {kp.shape}")
    xy = kp[..., :2]
    seen = kp[..., 2] >= min_confidence
    w = seen.astype(np.float64)[..., None]

    def mean_of(idx):
        ws = w[..., idx, :]
        n = ws.sum(-2)
        return (xy[..., idx, :] * ws).sum(-2) / np.maximum(n, 1), n[..., 0] > 0

    shoulders, sho_ok = mean_of([R_SHO, L_SHO])
    both_sho = seen[..., R_SHO] & seen[..., L_SHO]
    hips, hip_ok = mean_of([R_HIP, L_HIP])
    anything, any_ok = mean_of(list(range(NUM_KEYPOINTS)))
    neck_ok = seen[..., NECK]
    neck = np.where(neck_ok[..., None], xy[..., NECK, :], shoulders)
    neck_ok2 = neck_ok | both_sho
    centre = np.where(neck_ok2[..., None], neck, np.where(hip_ok[..., None], hips, anything))

    torso = np.linalg.norm(neck - hips, axis=-1)
    shoulder_w = np.linalg.norm(xy[..., L_SHO, :] - xy[..., R_SHO, :], axis=-1) / SHOULDER_WIDTH_PER_TORSO
    y_top = np.where(seen, xy[..., 1], np.inf).min(-1)
    y_bottom = np.where(seen, xy[..., 1], -np.inf).max(-1)
    extent = np.where(any_ok, y_bottom - np.where(any_ok, y_top, 0.0), 0.0) / HEIGHT_PER_TORSO
    scale = np.where(neck_ok2 & hip_ok, torso, np.where(both_sho, shoulder_w, extent))
    scale = np.maximum(scale, 1.0)

    out = np.zeros(kp.shape, np.float64)
    out[..., :2] = np.clip((xy - centre[..., None, :]) / scale[..., None, None], -COORD_LIMIT, COORD_LIMIT)
    out[..., 2] = 1.0
    out *= w
    return out.astype(np.float32)


def to_clip_tensor(normalized: np.ndarray):
    """Normalised clips ``(N, T, 18, 3)`` (or one clip ``(T, 18, 3)``) -> torch ``(N, 3, T, 18, 1)``."""
    import torch

    x = np.asarray(normalized, np.float32)
    if x.ndim == 3:
        x = x[None]
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)[..., None]))


def to_step_tensor(normalized: np.ndarray):
    """Normalised poses ``(N, 18, 3)`` (or one pose ``(18, 3)``) -> torch ``(N, 3, 18, 1)`` for ``forward_step``."""
    import torch

    x = np.asarray(normalized, np.float32)
    if x.ndim == 2:
        x = x[None]
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1)[..., None]))


#: manifest keys that are constructor options of the skeleton models
MODEL_OPTION_KEYS = ("in_channels", "num_persons", "base_channels", "temporal_kernel_size", "clip_len")


def build_model_from_manifest(extra: dict):
    """The model a manifest entry describes: ``build_skeleton_model(extra["architecture"],
    extra["num_classes"], extra["layout"], **options)`` with the options of :data:`MODEL_OPTION_KEYS`
    present in ``extra`` (``ModelSpec.extra`` of the registry; ``clip_len`` only for continual models).
    Weights are not loaded."""
    from opendr_perception.models.skeleton_gcn import build_skeleton_model

    missing = [k for k in ("architecture", "num_classes", "layout") if k not in extra]
    if missing:
        raise ValueError(f"the manifest entry lacks {missing} to build a skeleton model")
    options = {k: extra[k] for k in MODEL_OPTION_KEYS if k in extra}
    if not str(extra["architecture"]).lower().startswith("co"):
        options.pop("clip_len", None)  # regular models take clips of any length
    return build_skeleton_model(str(extra["architecture"]), int(extra["num_classes"]), str(extra["layout"]),
                                **options)
