"""Single-shot detector post-processing shared by the MediaPipe-style models.

Everything here is plain numpy, vectorised over anchors, and follows MediaPipe's
calculators so that the ``.tflite`` files behave as in MediaPipe:

* :func:`ssd_anchors` -- ``SsdAnchorsCalculator`` (non-multiscale branch).
* :func:`decode_boxes` and :func:`sigmoid_scores` -- ``TensorsToDetectionsCalculator``.
* :func:`weighted_nms` -- ``NonMaxSuppressionCalculator`` with ``algorithm: WEIGHTED``
  (overlapping candidates are blended, weighted by score, instead of dropped);
  :func:`greedy_nms` -- classic hard NMS.
* :func:`letterbox` / :class:`Letterbox` -- ``ImageToTensorCalculator`` with
  ``keep_aspect_ratio: true`` (fit, centre, pad) and the inverse mapping done by
  ``DetectionLetterboxRemovalCalculator``.

Coordinate convention: continuous pixel coordinates with the origin at the
top-left corner of the top-left pixel (as :mod:`opendr_perception.core.types`).
Boxes are ``(x_min, y_min, x_max, y_max)`` rows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import cv2
import numpy as np

# ------------------------------------------------------------------------------------
# Anchors
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SsdAnchorOptions:
    """The fields of MediaPipe's ``SsdAnchorsCalculatorOptions`` that these models use."""

    input_size_width: int
    input_size_height: int
    strides: Sequence[int]
    num_layers: Optional[int] = None  # default: len(strides)
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    anchor_offset_x: float = 0.5
    anchor_offset_y: float = 0.5
    aspect_ratios: Sequence[float] = (1.0,)
    reduce_boxes_in_lowest_layer: bool = False
    interpolated_scale_aspect_ratio: float = 1.0
    fixed_anchor_size: bool = True


# The option sets of MediaPipe's graphs (face_detection_short_range.pbtxt,
# face_detection_full_range.pbtxt, pose_detection_cpu.pbtxt).
BLAZEFACE_SHORT_RANGE_ANCHORS = SsdAnchorOptions(128, 128, strides=(8, 16, 16, 16))
BLAZEFACE_FULL_RANGE_ANCHORS = SsdAnchorOptions(192, 192, strides=(4,), interpolated_scale_aspect_ratio=0.0)
BLAZEPOSE_DETECTOR_ANCHORS = SsdAnchorOptions(224, 224, strides=(8, 16, 32, 32, 32))


def _layer_scale(min_scale: float, max_scale: float, index: int, count: int) -> float:
    if count == 1:
        return (min_scale + max_scale) * 0.5
    return min_scale + (max_scale - min_scale) * index / (count - 1.0)


def ssd_anchors(options: SsdAnchorOptions) -> np.ndarray:
    """Anchors as an ``(N, 4)`` float32 array of ``x_center, y_center, w, h`` (normalised).

    Consecutive layers with the same stride share one feature map; per cell they
    contribute ``len(aspect_ratios)`` anchors each, plus one interpolated-scale
    anchor each when ``interpolated_scale_aspect_ratio > 0``. Anchor centres are
    ``(i + offset) / feature_map_size``. With ``fixed_anchor_size`` (all MediaPipe
    face/pose detectors) every anchor has w = h = 1, so the regressions are
    plain offsets in units of the input size.

    BlazeFace short range: 16x16x2 + 8x8x6 = 896; full range: 48x48x1 = 2304;
    BlazePose detector: 28x28x2 + 14x14x2 + 7x7x6 = 1568 + 392 + 294 = 2254.
    """
    strides = list(options.strides)
    num_layers = len(strides) if options.num_layers is None else int(options.num_layers)
    if num_layers != len(strides) or num_layers == 0:
        raise ValueError(f"need one stride per layer: num_layers={num_layers}, strides={strides}")
    chunks = []
    layer = 0
    while layer < num_layers:
        heights, widths = [], []
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            scale = _layer_scale(options.min_scale, options.max_scale, last, len(strides))
            if last == 0 and options.reduce_boxes_in_lowest_layer:
                ratios, scales = [1.0, 2.0, 0.5], [0.1, scale, scale]
            else:
                ratios = list(options.aspect_ratios)
                scales = [scale] * len(ratios)
                if options.interpolated_scale_aspect_ratio > 0.0:
                    nxt = 1.0 if last == len(strides) - 1 else _layer_scale(
                        options.min_scale, options.max_scale, last + 1, len(strides))
                    scales.append(math.sqrt(scale * nxt))
                    ratios.append(options.interpolated_scale_aspect_ratio)
            for r, s in zip(ratios, scales):
                heights.append(s / math.sqrt(r))
                widths.append(s * math.sqrt(r))
            last += 1
        stride = strides[layer]
        fh = math.ceil(options.input_size_height / stride)
        fw = math.ceil(options.input_size_width / stride)
        per_cell = len(heights)
        ys, xs = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        cx = np.repeat(((xs.ravel() + options.anchor_offset_x) / fw), per_cell)
        cy = np.repeat(((ys.ravel() + options.anchor_offset_y) / fh), per_cell)
        if options.fixed_anchor_size:
            w = np.ones_like(cx)
            h = np.ones_like(cy)
        else:
            w = np.tile(np.asarray(widths), fh * fw)
            h = np.tile(np.asarray(heights), fh * fw)
        chunks.append(np.stack([cx, cy, w, h], axis=1))
        layer = last
    return np.concatenate(chunks, axis=0).astype(np.float32)


# ------------------------------------------------------------------------------------
# Decoding
# ------------------------------------------------------------------------------------


def sigmoid_scores(raw: np.ndarray, clip: Optional[float] = 100.0) -> np.ndarray:
    """Logits → probabilities, clipping the logits to ``[-clip, clip]`` first (as MediaPipe)."""
    raw = np.asarray(raw, dtype=np.float64)  # float64: exp(100) does not overflow
    if clip is not None:
        raw = np.clip(raw, -clip, clip)
    with np.errstate(over="ignore"):  # unclipped logits < -709 give exactly 0, as intended
        return (1.0 / (1.0 + np.exp(-raw))).astype(np.float32)


def decode_boxes(raw: np.ndarray, anchors: np.ndarray, num_keypoints: int,
                 scale: Union[float, Sequence[float]], reverse_output_order: bool = True,
                 box_coord_offset: int = 0, keypoint_coord_offset: int = 4,
                 values_per_keypoint: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Regressions relative to anchors → normalised boxes and keypoints.

    Args:
        raw: ``(N, C)`` regressions (batch dimension already removed).
        anchors: ``(N, 4)`` from :func:`ssd_anchors`.
        num_keypoints: keypoints per box (6 for BlazeFace, 4 for the pose detector).
        scale: ``(x_scale, y_scale, w_scale, h_scale)`` or one number for all four
            (the model input size for these models).
        reverse_output_order: regressions are ``x, y, w, h`` (True, all MediaPipe
            models) instead of ``y, x, h, w``.

    Returns:
        ``boxes`` (N, 4) as x_min, y_min, x_max, y_max and ``keypoints`` (N, K, 2)
        as x, y, all in normalised coordinates of the model input ([0, 1] inside).
    """
    raw = np.asarray(raw, dtype=np.float32)
    anchors = np.asarray(anchors, dtype=np.float32)
    if raw.ndim != 2 or anchors.shape != (raw.shape[0], 4):
        raise ValueError(f"raw {raw.shape} and anchors {anchors.shape} do not match")
    needed = max(box_coord_offset + 4, keypoint_coord_offset + num_keypoints * values_per_keypoint)
    if raw.shape[1] < needed:
        raise ValueError(f"raw has {raw.shape[1]} values per anchor, {needed} needed")
    xs, ys, ws, hs = (scale,) * 4 if np.isscalar(scale) else tuple(scale)
    b = raw[:, box_coord_offset:box_coord_offset + 4]
    if reverse_output_order:
        dx, dy, dw, dh = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    else:
        dy, dx, dh, dw = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    ax, ay, aw, ah = anchors[:, 0], anchors[:, 1], anchors[:, 2], anchors[:, 3]
    cx = dx / xs * aw + ax
    cy = dy / ys * ah + ay
    w = dw / ws * aw
    h = dh / hs * ah
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kp = raw[:, keypoint_coord_offset:keypoint_coord_offset + num_keypoints * values_per_keypoint]
    kp = kp.reshape(-1, num_keypoints, values_per_keypoint)[:, :, :2]
    if not reverse_output_order:
        kp = kp[:, :, ::-1]
    keypoints = np.empty_like(kp)
    keypoints[:, :, 0] = kp[:, :, 0] / xs * aw[:, None] + ax[:, None]
    keypoints[:, :, 1] = kp[:, :, 1] / ys * ah[:, None] + ay[:, None]
    return boxes.astype(np.float32), keypoints.astype(np.float32)


# ------------------------------------------------------------------------------------
# Non-maximum suppression
# ------------------------------------------------------------------------------------


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union of two box sets, ``(len(a), len(b))``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float,
               max_detections: Optional[int] = None) -> np.ndarray:
    """Classic hard NMS: indices of the kept boxes, highest score first.

    A box is dropped when its IoU with an already kept, higher-scoring box is
    strictly greater than ``iou_threshold``.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    order = np.argsort(-scores, kind="stable")
    overlaps = iou_matrix(boxes[order], boxes[order])
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):  # loop over candidates, not pixels
        if suppressed[i]:
            continue
        keep.append(order[i])
        if max_detections is not None and len(keep) >= max_detections:
            break
        suppressed |= overlaps[i] > iou_threshold
    return np.asarray(keep, dtype=np.int64)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: Optional[np.ndarray] = None,
                 iou_threshold: float = 0.3, max_detections: Optional[int] = None
                 ) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """MediaPipe's weighted NMS ("blending").

    Repeatedly take the best remaining candidate; every remaining candidate whose
    IoU with it is greater than ``iou_threshold`` (the best one included) forms
    its cluster and is removed. The output box and keypoints are the
    score-weighted mean of the cluster; the output score is the best one's score.
    This stabilises boxes compared with hard NMS, which keeps only the best one.

    Returns ``(boxes (M, 4), scores (M,), keypoints (M, K, 2) or None)``, best first.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    kps = None if keypoints is None else np.asarray(keypoints, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    remaining = order
    out_boxes, out_scores, out_kps = [], [], []
    while remaining.size:
        best = remaining[0]
        overlap = iou_matrix(boxes[best], boxes[remaining])[0]
        in_cluster = overlap > iou_threshold
        in_cluster[0] = True  # a degenerate (zero-area) box still clusters with itself
        members = remaining[in_cluster]
        weights = scores[members]
        total = weights.sum()
        if total > 0:
            out_boxes.append((boxes[members] * weights[:, None]).sum(0) / total)
            if kps is not None:
                out_kps.append((kps[members] * weights[:, None, None]).sum(0) / total)
        else:
            out_boxes.append(boxes[best])
            if kps is not None:
                out_kps.append(kps[best])
        out_scores.append(scores[best])
        remaining = remaining[~in_cluster]
        if max_detections is not None and len(out_scores) >= max_detections:
            break
    n = len(out_scores)
    out_k = None
    if kps is not None:
        out_k = np.asarray(out_kps, dtype=np.float32).reshape((n,) + kps.shape[1:])
    return (np.asarray(out_boxes, dtype=np.float32).reshape(n, 4),
            np.asarray(out_scores, dtype=np.float32), out_k)


# ------------------------------------------------------------------------------------
# Letterbox
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into a fixed-size model input.

    ``model = original * scale + pad`` per axis (continuous pixel coordinates).
    """

    source_size: tuple[int, int]  # (width, height) of the original image
    target_size: tuple[int, int]  # (width, height) of the model input
    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """Points ``(..., 2)`` in model-input pixels → original image pixels."""
        p = np.asarray(points, dtype=np.float64)
        out = np.empty_like(p)
        out[..., 0] = (p[..., 0] - self.pad_x) / self.scale_x
        out[..., 1] = (p[..., 1] - self.pad_y) / self.scale_y
        return out

    def to_model(self, points: np.ndarray) -> np.ndarray:
        """Points ``(..., 2)`` in original image pixels → model-input pixels."""
        p = np.asarray(points, dtype=np.float64)
        out = np.empty_like(p)
        out[..., 0] = p[..., 0] * self.scale_x + self.pad_x
        out[..., 1] = p[..., 1] * self.scale_y + self.pad_y
        return out

    def boxes_to_original(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes ``(N, 4)`` in model-input pixels → original image pixels."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 2, 2)
        return self.to_original(b).reshape(-1, 4)

    def normalized_to_original(self, points: np.ndarray) -> np.ndarray:
        """Points ``(..., 2)`` normalised to the model input ([0, 1]) → original pixels."""
        p = np.asarray(points, dtype=np.float64) * np.asarray(self.target_size, dtype=np.float64)
        return self.to_original(p)


def letterbox(image: np.ndarray, size: Union[int, tuple[int, int]], border_value: float = 0
              ) -> tuple[np.ndarray, Letterbox]:
    """Fit ``image`` into ``size`` = (width, height) keeping its aspect ratio.

    The image is scaled by one factor so that it fits, centred, and the rest is
    filled with ``border_value`` (MediaPipe: ``BORDER_ZERO``). Downscaling uses
    ``INTER_AREA`` (an average pool, no aliasing), upscaling ``INTER_LINEAR``.
    The exact per-axis scale after rounding to whole pixels is recorded so that
    :meth:`Letterbox.to_original` inverts the mapping exactly.
    """
    if image.ndim < 2 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"cannot letterbox an image of shape {image.shape}")
    tw, th = (size, size) if np.isscalar(size) else (int(size[0]), int(size[1]))
    h, w = image.shape[:2]
    s = min(tw / w, th / h)
    nw = min(tw, max(1, int(round(w * s))))
    nh = min(th, max(1, int(round(h * s))))
    interpolation = cv2.INTER_AREA if s < 1.0 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interpolation) if (nw, nh) != (w, h) else image
    left = (tw - nw) // 2
    top = (th - nh) // 2
    out = cv2.copyMakeBorder(resized, top, th - nh - top, left, tw - nw - left,
                             cv2.BORDER_CONSTANT, value=border_value if image.ndim == 2 else (border_value,) * 3)
    if out.ndim < image.ndim:  # copyMakeBorder drops a trailing 1-channel axis
        out = out[..., None]
    return out, Letterbox((w, h), (tw, th), nw / w, nh / h, float(left), float(top))


def resize_to_height(image: np.ndarray, height: Optional[int]) -> np.ndarray:
    """``image`` resized (up or down) to ``height`` rows keeping the aspect ratio.

    ``None`` or the current height returns ``image`` itself. Shrinking uses
    ``INTER_AREA`` (an average pool), enlarging ``INTER_LINEAR``.
    """
    h, w = image.shape[:2]
    if height is None or h == height:
        return image
    if height < 1:
        raise ValueError(f"height must be positive, got {height}")
    width = max(1, int(round(w * height / h)))
    interpolation = cv2.INTER_AREA if height < h else cv2.INTER_LINEAR
    return cv2.resize(image, (width, int(height)), interpolation=interpolation)


def pad_to_square(image: np.ndarray, border_value: float = 0) -> tuple[np.ndarray, Letterbox]:
    """Pad ``image`` (no resizing) to a centred square of side max(width, height)."""
    h, w = image.shape[:2]
    side = max(h, w)
    return letterbox(image, (side, side), border_value=border_value)


def check_bgr_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Raise a ValueError saying what is wrong unless ``image`` is a non-empty HxWx3 uint8 array."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{what} must be a numpy array (HxWx3 uint8 BGR), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 (HxWx3 BGR), got dtype {image.dtype}")
    if image.ndim != 3:
        raise ValueError(f"{what} must have 3 dimensions (HxWx3 BGR), got shape {image.shape}")
    if image.shape[2] != 3:
        raise ValueError(f"{what} must have 3 channels (BGR), got {image.shape[2]}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{what} is empty: shape {image.shape}")
    return image


def to_model_input(image_bgr: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """BGR uint8 HxWx3 → RGB float32 1xHxWx3 with [0, 255] mapped linearly onto ``value_range``."""
    lo, hi = value_range
    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
    return (rgb * ((hi - lo) / 255.0) + lo)[None]
