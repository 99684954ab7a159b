"""Synthetic per-frame feature streams for online action detection (OAD), deterministic per seed.

Online action detection labels every frame of an untrimmed video as it arrives: background or
one of the actions. Real systems feed a temporal model with per-frame features of a pretrained
image/flow network (THUMOS'14 at 4 feature vectors/s for OadTR); this generator stands in for
those features in a ``D``-dimensional space:

* the features of every class live along fixed directions of a fixed random orthonormal basis
  (:func:`class_basis`, the same for every stream), so a model can learn them;
* actions differ in their *temporal pattern*: three of them cycle between two of three shared key
  states (prototype directions), so a single frame in one state is ambiguous between two actions
  and only the recent frames tell which; one oscillates, one progresses:

  ==========  ===================================================================================
  ``reach``    cycles between the key states u0 and u1, holding each 2-5 frames, 1-3 frame moves
  ``wave``     cycles between u0 and u2 the same way
  ``bend``     cycles between u1 and u2 the same way
  ``pulse``    oscillates along u3 at 0.6-1.0 rad/frame (frames near zero look like background)
  ``ramp``     moves along u4 from -a to +a over the action (its progress), offset along u5
  ==========  ===================================================================================

* background frames carry a slowly drifting distractor along a random direction of the whole
  space; every frame has isotropic Gaussian noise (sigma 0.25-0.5 per stream) and every stream a
  random amplitude (0.8-1.3) and a small constant offset.

Streams alternate background (6-30 frames) and actions (12-40 frames), starting with background;
labels are per frame: 0 = background, 1.. = the actions of :data:`ACTIONS`.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

BACKGROUND = "background"
ACTIONS = ("reach", "wave", "bend", "pulse", "ramp")
_CYCLES = {"reach": (0, 1), "wave": (0, 2), "bend": (1, 2)}  # key states (basis rows) of the cycling actions
LABELS = (BACKGROUND, *ACTIONS)
FEATURE_DIM = 32
FPS = 4.0
BASIS_SEED = 20240917


@lru_cache(maxsize=4)
def class_basis(dim: int = FEATURE_DIM) -> np.ndarray:
    """The fixed orthonormal directions ``(dim, dim)`` (rows) the actions use (rows 0-4); read-only."""
    rng = np.random.default_rng(BASIS_SEED)
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    basis = q.T.copy()
    basis.flags.writeable = False
    return basis


def action_frames(action: int, length: int, rng: np.random.Generator, basis: np.ndarray) -> np.ndarray:
    """The noise-free features ``(length, dim)`` of one action (1-based index into :data:`LABELS`)."""
    name = LABELS[action]
    t = np.arange(length, dtype=np.float64)
    u = basis
    if name in _CYCLES:
        a, b = (u[i] for i in _CYCLES[name])
        weights = []  # weight of state b per frame: hold, move, hold, move back, ...
        at_b = bool(rng.integers(2))
        while len(weights) < length:
            weights += [float(at_b)] * int(rng.integers(2, 6))
            move = int(rng.integers(1, 4))
            ramp = np.arange(1, move + 1) / (move + 1)
            weights += list(1 - ramp if at_b else ramp)
            at_b = not at_b
        w = np.asarray(weights[:length])[:, None]
        return ((1 - w) * a + w * b) * 1.2
    if name == "pulse":
        return np.outer(np.sin(rng.uniform(0.6, 1.0) * t + rng.uniform(0, 2 * np.pi)), u[3]) * 1.2
    if name == "ramp":
        progress = t / max(length - 1, 1)
        return np.outer(2 * progress - 1, u[4]) * 1.2 + 0.6 * u[5]
    raise ValueError(f"unknown action {action}")


def generate_stream(num_frames: int, rng: np.random.Generator, dim: int = FEATURE_DIM,
                    background_len: tuple[int, int] = (6, 30), action_len: tuple[int, int] = (12, 40),
                    noise: tuple[float, float] = (0.25, 0.5)) -> tuple[np.ndarray, np.ndarray]:
    """One stream: features ``(num_frames, dim)`` float32 and per-frame labels ``(num_frames,)`` int64."""
    basis = class_basis(dim)
    feats = np.zeros((num_frames, dim))
    labels = np.zeros(num_frames, np.int64)
    amplitude = rng.uniform(0.8, 1.3)
    pos, is_action = 0, False
    while pos < num_frames:
        if is_action:
            length = int(rng.integers(action_len[0], action_len[1] + 1))
            action = int(rng.integers(1, len(LABELS)))
            end = min(num_frames, pos + length)
            feats[pos:end] = action_frames(action, length, rng, basis)[: end - pos] * amplitude
            labels[pos:end] = action
        else:
            length = int(rng.integers(background_len[0], background_len[1] + 1))
            end = min(num_frames, pos + length)
            direction = rng.standard_normal(dim)
            direction /= np.linalg.norm(direction)
            drift = np.cumsum(rng.normal(0, 0.15, end - pos)) + rng.normal(0, 0.5)
            feats[pos:end] = np.outer(np.clip(drift, -1.0, 1.0), direction) * amplitude
        pos, is_action = end, not is_action
    feats += rng.normal(0, 0.1, dim)  # per-stream offset
    feats += rng.standard_normal(feats.shape) * rng.uniform(*noise)
    return feats.astype(np.float32), labels


def generate_streams(count: int, num_frames: int, seed: int, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """``count`` streams from one seed: features ``(count, num_frames, dim)``, labels ``(count, num_frames)``."""
    rng = np.random.default_rng(seed)
    pairs = [generate_stream(num_frames, rng, **kwargs) for _ in range(count)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """Average precision of a ranking (area under the interpolation-free precision-recall curve, the
    per-frame THUMOS'14 OAD metric of OadTR/CoOadTR); NaN without positives."""
    scores, positives = np.asarray(scores, np.float64), np.asarray(positives, bool)
    if not positives.any():
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = positives[order]
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    return float(np.sum(precision[hits]) / hits.sum())


def per_class_ap(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Per-action AP over frames (``probabilities (N, classes)``, ``labels (N,)``), background excluded,
    and their mean under ``"mAP"``."""
    out = {name: average_precision(probabilities[:, k], labels == k) for k, name in enumerate(LABELS) if k > 0}
    out["mAP"] = float(np.nanmean([out[name] for name in ACTIONS]))
    return out
