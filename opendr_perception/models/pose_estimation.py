"""Multi-person 2D pose estimation with MediaPipe BlazePose, ROS-free.

BlazePose is a top-down, single-person pipeline: a person detector finds people
and 4 alignment keypoints each, and a landmark model estimates 33 keypoints
inside a rotated square region aligned with the body. MediaPipe runs the
landmark model on the first detection only and then tracks; here every
detection (or every caller-given region) gets its own landmark pass, which makes
the pair multi-person, and duplicates are suppressed afterwards.

Stages (numbers from MediaPipe's ``pose_detection_cpu``, ``pose_detection_to_roi``
and ``pose_landmark_by_roi_cpu`` graphs):

* :class:`PersonDetector` -- ``pose_detection.tflite``: the image letterboxed to
  224x224, RGB in [-1, 1]; 2254 SSD anchors; per anchor a box (the FACE box, as
  MediaPipe documents) and 4 alignment keypoints: hip centre, a point whose
  distance to the hip centre is the radius of the full-body circle and whose
  direction is "up", shoulder centre, the same for the upper body. Weighted NMS
  at IoU 0.3.
* :func:`pose_detection_to_roi` -- centre = hip centre, side = 2 x full-body
  radius x 1.25, rotated so that hip centre → keypoint 1 points up (target 90°).
* :class:`PoseLandmarker` -- ``pose_landmark_full.tflite``: the ROI warped to
  256x256 RGB in [0, 1]; outputs 39 x (x, y, z, visibility logit, presence logit)
  in crop pixels (33 body landmarks + 6 auxiliary), a pose-presence probability
  (the "pose flag"), a segmentation and a 64x64x39 heatmap used to refine the
  coordinates (MediaPipe's ``RefineLandmarksFromHeatmapCalculator``, kernel 7).
  Keypoints go back to image pixels through the inverse of the ROI affine map.
  Where the ROI leaves the image the crop is black (MediaPipe's landmark graph
  sets no border mode): a photo and the same photo on a black canvas then look
  alike to the model, which the high-resolution pipeline's evaluation relies on.

Keypoint confidence = sigmoid(visibility) x sigmoid(presence): the probability
that the landmark is inside the image AND not occluded, so a keypoint the model
merely extrapolates (e.g. knees below the bottom of a portrait) gets a low
confidence, as the ``PersonPose`` contract (0 = not found) expects.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from ..core import registry
from ..core.detection_ops import (BLAZEPOSE_DETECTOR_ANCHORS, check_bgr_image, decode_boxes, letterbox,
                                  sigmoid_scores, ssd_anchors, to_model_input, weighted_nms)
from ..core.keypoints import BLAZEPOSE33
from ..core.tflite import TFLiteModel
from ..core.types import BoundingBox, Detection, PersonPose

ALIGNMENT_KEYPOINT_NAMES = ("hip_center", "full_body_size_rotation", "shoulder_center", "upper_body_size_rotation")


# ------------------------------------------------------------------------------------
# Person detector
# ------------------------------------------------------------------------------------


@dataclass
class PersonCandidates:
    """Decoded detector output before NMS, in image pixels."""

    face_boxes: np.ndarray  # (N, 4) x_min, y_min, x_max, y_max: the model's box is the face
    scores: np.ndarray      # (N,)
    keypoints: np.ndarray   # (N, 4, 2) alignment keypoints (ALIGNMENT_KEYPOINT_NAMES)

    def body_boxes(self) -> np.ndarray:
        """(N, 4) axis-aligned squares around the full-body circles (hip centre ± radius)."""
        return body_boxes(self.keypoints)


def body_boxes(alignment_keypoints: np.ndarray) -> np.ndarray:
    """Squares ``hip centre ± |kp1 - kp0|`` for ``(N, 4, 2)`` alignment keypoints, as ``(N, 4)`` boxes."""
    kp = np.asarray(alignment_keypoints, dtype=np.float64).reshape(-1, 4, 2)
    radius = np.linalg.norm(kp[:, 1] - kp[:, 0], axis=1)
    c = kp[:, 0]
    return np.stack([c[:, 0] - radius, c[:, 1] - radius, c[:, 0] + radius, c[:, 1] + radius], axis=1)


def square_windows(width: int, height: int, max_aspect: float = 1.5) -> list[tuple[int, int, int, int]]:
    """Windows to run a square-input model on: the whole image first, plus, when
    the image is more than ``max_aspect`` times wider than high, ceil(width /
    height) evenly overlapping height x height squares across it.

    Letterboxing a 3:1 frame into a square input wastes two thirds of it and
    shrinks people threefold; the square windows see them at the frame's scale.
    Tall frames are left whole: people standing in them are tall too, and a
    square cut would halve them.
    """
    if width < 1 or height < 1:
        raise ValueError(f"no windows in a {width}x{height} image")
    windows = [(0, 0, int(width), int(height))]
    if width <= max_aspect * height:
        return windows
    n = int(math.ceil(width / height))
    for start in np.linspace(0, width - height, n).round().astype(int):
        windows.append((int(start), 0, int(start) + int(height), int(height)))
    return windows


class PersonDetector:
    """BlazePose person detector (near range: people filling a good part of the frame).

    :meth:`detect` returns ``Detection(class_id="person")`` whose box is the
    full-body square (hip centre ± body radius) clipped to the image, whose
    landmarks are the 4 alignment keypoints, and whose score is the detector's.
    :meth:`candidates` gives the raw per-anchor output before NMS.
    """

    def __init__(self, score_threshold: float = 0.5, nms_iou: float = 0.3, num_threads: int = 1,
                 max_detections: Optional[int] = None):
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.max_detections = max_detections
        self.model = TFLiteModel(registry.resolve("blazepose_detector"), num_threads=num_threads)
        self.anchors = ssd_anchors(BLAZEPOSE_DETECTOR_ANCHORS)
        self.input_size = self.model.input_size
        if self.model.output_shapes[0][1:] != (len(self.anchors), 12):
            raise RuntimeError(f"pose detector: unexpected output shape {self.model.output_shapes[0]}")

    def candidates(self, image_bgr: np.ndarray, score_threshold: Optional[float] = None,
                   windows: Optional[Sequence[tuple[int, int, int, int]]] = None) -> PersonCandidates:
        """All anchors scoring at least ``score_threshold`` (default: the detector's), before NMS.

        ``windows`` are integer ``(x0, y0, x1, y1)`` crops of the image to run the
        model on (default: the whole image); the candidates of all windows are
        returned together, in image pixels.
        """
        check_bgr_image(image_bgr, "image_bgr")
        threshold = self.score_threshold if score_threshold is None else float(score_threshold)
        h, w = image_bgr.shape[:2]
        parts = []
        for x0, y0, x1, y1 in ([(0, 0, w, h)] if windows is None else windows):
            x0, y0, x1, y1 = max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            tensor_image, lb = letterbox(image_bgr[y0:y1, x0:x1], self.input_size)
            regressors, classificators = self.model.run(to_model_input(tensor_image, (-1.0, 1.0)))
            scores = sigmoid_scores(classificators[0, :, 0])
            keep = scores >= threshold
            boxes, keypoints = decode_boxes(regressors[0][keep], self.anchors[keep], num_keypoints=4,
                                            scale=float(self.input_size[0]))
            offset = np.array([x0, y0], dtype=np.float64)
            parts.append((lb.normalized_to_original(boxes.reshape(-1, 2, 2)) + offset,
                          scores[keep].astype(np.float64),
                          lb.normalized_to_original(keypoints) + offset))
        if not parts:
            return PersonCandidates(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 4, 2)))
        return PersonCandidates(face_boxes=np.concatenate([p[0] for p in parts]).reshape(-1, 4),
                                scores=np.concatenate([p[1] for p in parts]),
                                keypoints=np.concatenate([p[2] for p in parts]).reshape(-1, 4, 2))

    def detect(self, image_bgr: np.ndarray,
               windows: Optional[Sequence[tuple[int, int, int, int]]] = None) -> list[Detection]:
        """People in ``image_bgr``, best first.

        The candidates of all ``windows`` (default: the whole image) go through
        one weighted NMS on their face boxes (as MediaPipe), so a person seen in
        two overlapping windows becomes one detection.
        """
        c = self.candidates(image_bgr, windows=windows)
        if len(c.scores) == 0:
            return []
        face_boxes, scores, keypoints = weighted_nms(c.face_boxes, c.scores, c.keypoints, self.nms_iou,
                                                     self.max_detections)
        h, w = image_bgr.shape[:2]
        return [Detection(box=BoundingBox(*map(float, box)).clipped(w, h), score=float(s), class_id="person",
                          landmarks=k.astype(np.float32), landmark_names=ALIGNMENT_KEYPOINT_NAMES)
                for box, s, k in zip(body_boxes(keypoints), scores, keypoints)]

    __call__ = detect


# ------------------------------------------------------------------------------------
# Rotated region of interest
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RotatedRoi:
    """A rotated square in image pixels.

    ``rotation`` uses MediaPipe's convention (radians, clockwise on screen since y
    points down): the crop's x axis is ``(cos r, sin r)`` in the image and its
    y axis ``(-sin r, cos r)``; r = 0 is an upright, axis-aligned square.
    """

    center_x: float
    center_y: float
    size: float
    rotation: float = 0.0

    def crop_to_image(self, crop_size: int) -> np.ndarray:
        """2x3 affine map from continuous crop pixels (side ``crop_size``) to image pixels."""
        s = self.size / crop_size
        c, si = math.cos(self.rotation), math.sin(self.rotation)
        linear = np.array([[c * s, -si * s], [si * s, c * s]])
        offset = np.array([self.center_x, self.center_y]) - linear @ np.array([crop_size / 2, crop_size / 2])
        return np.hstack([linear, offset[:, None]])

    def corners(self) -> np.ndarray:
        """(4, 2) corners: top-left, top-right, bottom-right, bottom-left of the crop."""
        m = self.crop_to_image(1)
        unit = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)
        return unit @ m[:, :2].T + m[:, 2]

    def bounding_box(self) -> BoundingBox:
        c = self.corners()
        return BoundingBox(float(c[:, 0].min()), float(c[:, 1].min()), float(c[:, 0].max()), float(c[:, 1].max()))


def pose_detection_to_roi(alignment_keypoints: np.ndarray, scale: float = 1.25,
                          target_angle: float = math.pi / 2) -> RotatedRoi:
    """MediaPipe's ``pose_detection_to_roi`` for one detection's ``(4, 2)`` keypoints (pixels).

    centre = keypoint 0 (hip centre); side = 2 |kp1 - kp0| x ``scale``;
    rotation = target_angle - atan2(-(y1 - y0), x1 - x0), so that kp0 → kp1
    points up in the crop.
    """
    kp = np.asarray(alignment_keypoints, dtype=np.float64)
    (x0, y0), (x1, y1) = kp[0], kp[1]
    size = 2.0 * math.hypot(x1 - x0, y1 - y0) * scale
    rotation = target_angle - math.atan2(-(y1 - y0), x1 - x0)
    rotation = (rotation + math.pi) % (2 * math.pi) - math.pi
    return RotatedRoi(float(x0), float(y0), float(size), float(rotation))


def warp_roi(image: np.ndarray, roi: RotatedRoi, crop_size: int, border_value: int = 0) -> np.ndarray:
    """Sample the rotated ROI of ``image`` into a ``crop_size`` square (bilinear)."""
    m = roi.crop_to_image(crop_size)
    # cv2 works on pixel indices (pixel centres at integers): index = continuous - 0.5.
    m_idx = m.copy()
    m_idx[:, 2] = m[:, :2] @ np.array([0.5, 0.5]) + m[:, 2] - 0.5
    return cv2.warpAffine(image, m_idx, (crop_size, crop_size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(border_value,) * 3)


# ------------------------------------------------------------------------------------
# Landmarks
# ------------------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, dtype=np.float64), -80, 80)))


def refine_from_heatmap(xy_norm: np.ndarray, heatmap: np.ndarray, kernel_size: int = 7,
                        min_confidence: float = 0.5) -> np.ndarray:
    """MediaPipe's ``RefineLandmarksFromHeatmapCalculator``, vectorised over landmarks.

    For landmark i at normalised (x, y), take the ``kernel_size`` window of
    heatmap channel i around cell (int(x W), int(y H)); if its highest
    sigmoid value reaches ``min_confidence``, replace (x, y) by the
    sigmoid-weighted mean cell position / (W, H). Landmarks outside the heatmap
    are left as they are.
    """
    hm_h, hm_w, channels = heatmap.shape
    n = min(len(xy_norm), channels)
    out = np.array(xy_norm, dtype=np.float64, copy=True)
    cols = np.trunc(out[:n, 0] * hm_w).astype(np.int64)
    rows = np.trunc(out[:n, 1] * hm_h).astype(np.int64)
    inside = (cols >= 0) & (cols < hm_w) & (rows >= 0) & (rows < hm_h)
    if not inside.any():
        return out
    r = (kernel_size - 1) // 2
    offsets = np.arange(-r, r + 1)
    win_rows = rows[:, None, None] + offsets[None, :, None]  # (n, k, 1)
    win_cols = cols[:, None, None] + offsets[None, None, :]  # (n, 1, k)
    valid = (win_rows >= 0) & (win_rows < hm_h) & (win_cols >= 0) & (win_cols < hm_w)
    conf = _sigmoid(heatmap[np.clip(win_rows, 0, hm_h - 1), np.clip(win_cols, 0, hm_w - 1),
                            np.arange(n)[:, None, None]])
    conf = np.where(valid, conf, 0.0)
    total = conf.sum(axis=(1, 2))
    refine = inside & (conf.max(axis=(1, 2)) >= min_confidence) & (total > 0)
    safe = np.where(total > 0, total, 1.0)
    x_ref = (conf * win_cols).sum(axis=(1, 2)) / safe / hm_w
    y_ref = (conf * win_rows).sum(axis=(1, 2)) / safe / hm_h
    out[:n, 0] = np.where(refine, x_ref, out[:n, 0])
    out[:n, 1] = np.where(refine, y_ref, out[:n, 1])
    return out


class PoseLandmarker:
    """BlazePose GHUM 3D (full) landmark model on a rotated ROI.

    Args:
        num_threads: CPU threads for the interpreter.
        refine: refine the coordinates with the model's heatmap (as MediaPipe).
    """

    NUM_LANDMARKS = 33

    def __init__(self, num_threads: int = 1, refine: bool = True):
        self.model = TFLiteModel(registry.resolve("blazepose_landmark_full"), num_threads=num_threads)
        self.crop_size = self.model.input_size[0]
        self.refine = refine
        if self.model.output_shapes[0] != (1, 195) or self.model.output_shapes[1] != (1, 1):
            raise RuntimeError(f"pose landmark model: unexpected outputs {self.model.output_shapes}")

    def estimate(self, image_bgr: np.ndarray, roi: RotatedRoi) -> tuple[np.ndarray, float]:
        """Keypoints ``(33, 3)`` (x, y in image pixels, confidence) and the pose flag in [0, 1]."""
        check_bgr_image(image_bgr, "image_bgr")
        if not roi.size > 0:
            raise ValueError(f"the ROI has no area: {roi}")
        crop = warp_roi(image_bgr, roi, self.crop_size)
        outputs = self.model.run(to_model_input(crop, (0.0, 1.0)))
        raw = outputs[0].reshape(39, 5).astype(np.float64)
        flag = float(outputs[1].reshape(()))
        xy = raw[:, :2] / self.crop_size
        if self.refine:
            xy = refine_from_heatmap(xy, outputs[3][0])
        xy_crop = xy[:self.NUM_LANDMARKS] * self.crop_size
        m = roi.crop_to_image(self.crop_size)
        xy_image = xy_crop @ m[:, :2].T + m[:, 2]
        confidence = _sigmoid(raw[:self.NUM_LANDMARKS, 3]) * _sigmoid(raw[:self.NUM_LANDMARKS, 4])
        keypoints = np.column_stack([xy_image, confidence]).astype(np.float32)
        return keypoints, flag


# ------------------------------------------------------------------------------------
# Multi-person estimator
# ------------------------------------------------------------------------------------


def keypoint_box(keypoints: np.ndarray, min_confidence: float = 0.5) -> Optional[BoundingBox]:
    """Extent of the keypoints with confidence >= ``min_confidence`` (None if fewer than 2)."""
    kp = np.asarray(keypoints)
    sure = kp[kp[:, 2] >= min_confidence]
    if len(sure) < 2:
        return None
    return BoundingBox(float(sure[:, 0].min()), float(sure[:, 1].min()),
                       float(sure[:, 0].max()), float(sure[:, 1].max()))


def same_person(a: PersonPose, b: PersonPose, min_confidence: float = 0.5, tolerance: float = 0.1) -> bool:
    """True when the keypoints confident in both poses lie, on median, within
    ``tolerance`` x the larger side of the bigger of the two boxes."""
    both = (a.keypoints[:, 2] >= min_confidence) & (b.keypoints[:, 2] >= min_confidence)
    if both.sum() < 3:
        return a.box.iou(b.box) > 0.7
    distance = np.linalg.norm(a.keypoints[both, :2] - b.keypoints[both, :2], axis=1)
    size = max(a.box.width, a.box.height, b.box.width, b.box.height, 1.0)
    return float(np.median(distance)) < tolerance * size


class MultiPersonPoseEstimator:
    """Multi-person BlazePose: detector (or caller-given regions) + one landmark pass per person.

    Args:
        detector_threshold: minimum person-detector score.
        max_people: at most this many poses per image (highest pose flags, after duplicates are removed).
        pose_threshold: minimum pose-flag probability of the landmark model.
        num_threads: CPU threads of each interpreter.
        refine: heatmap refinement of the landmark coordinates.
        tile_wide_images: without ``regions``, also run the detector on square
            windows of frames wider than 1.5:1 (see :func:`square_windows`).
    """

    layout = BLAZEPOSE33.name

    def __init__(self, detector_threshold: float = 0.5, max_people: int = 6, pose_threshold: float = 0.5,
                 num_threads: int = 1, refine: bool = True, tile_wide_images: bool = True):
        if max_people < 1:
            raise ValueError(f"max_people must be >= 1, got {max_people}")
        if not 0.0 <= pose_threshold <= 1.0:
            raise ValueError(f"pose_threshold must be in [0, 1], got {pose_threshold}")
        self.detector = PersonDetector(score_threshold=detector_threshold, num_threads=num_threads)
        self.landmarker = PoseLandmarker(num_threads=num_threads, refine=refine)
        self.max_people = int(max_people)
        self.pose_threshold = float(pose_threshold)
        self.tile_wide_images = bool(tile_wide_images)

    def detect_people(self, image_bgr: np.ndarray, regions: Optional[Sequence[BoundingBox]] = None,
                      limit: Optional[int] = None) -> list[Detection]:
        """Person detections, best first: inside each of ``regions`` when given,
        otherwise on the whole image (plus :func:`square_windows` for wide frames
        when ``tile_wide_images``), merged by one weighted NMS; at most ``limit``
        (default ``max_people``)."""
        check_bgr_image(image_bgr, "image_bgr")
        h, w = image_bgr.shape[:2]
        if regions is not None:
            windows = []
            for region in regions:
                r = region.clipped(w, h)
                windows.append((int(math.floor(r.x_min)), int(math.floor(r.y_min)),
                                int(math.ceil(r.x_max)), int(math.ceil(r.y_max))))
            if not windows:
                return []
        elif self.tile_wide_images:
            windows = square_windows(w, h)
        else:
            windows = None
        return self.detector.detect(image_bgr, windows=windows)[:self.max_people if limit is None else limit]

    def estimate(self, image_bgr: np.ndarray, regions: Optional[Sequence[BoundingBox]] = None) -> list[PersonPose]:
        """Poses (layout ``blazepose33``) of the people in ``image_bgr``, best pose flag first.

        Args:
            image_bgr: HxWx3 uint8 BGR image.
            regions: optional person regions (e.g. from another detector) in image
                pixels; people are then detected inside each region's crop only.

        Each pose's ``box`` is the extent of its confident keypoints (clipped to
        the image; the ROI's bounding box when fewer than 2 are confident), its
        ``score`` the landmark model's pose flag; ``extra`` holds the ``roi``
        (:class:`RotatedRoi`) and the ``detection_score``.
        """
        check_bgr_image(image_bgr, "image_bgr")
        h, w = image_bgr.shape[:2]
        poses: list[PersonPose] = []
        # twice as many detections as wanted people: one person seen in two windows
        # can give two detections, merged only after the landmarks (below)
        for detection in self.detect_people(image_bgr, regions, limit=2 * self.max_people):
            roi = pose_detection_to_roi(detection.landmarks)
            if roi.size < 4:
                continue
            keypoints, flag = self.landmarker.estimate(image_bgr, roi)
            if flag < self.pose_threshold:
                continue
            box = keypoint_box(keypoints) or roi.bounding_box()
            poses.append(PersonPose(keypoints=keypoints, layout=self.layout, box=box.clipped(w, h), score=flag,
                                    extra={"roi": roi, "detection_score": detection.score}))
        poses.sort(key=lambda p: -p.score)
        kept: list[PersonPose] = []
        for pose in poses:
            if not any(same_person(pose, other) for other in kept):
                kept.append(pose)
        return kept[:self.max_people]

    __call__ = estimate
