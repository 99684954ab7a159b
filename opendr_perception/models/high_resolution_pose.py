"""Active high-resolution pose estimation (OpenDR D3.3 section 2.4), backend-agnostic.

A pose estimator either shrinks a large frame to its input size (fast, but small
people vanish) or looks at every pixel (accurate, slow). The seed's method looks
first, cheaply, at a small copy of the frame, then closely only where people are:

1. average-pool the frame to ``base_height_1`` rows, keeping the aspect ratio
   (``cv2.resize`` with ``INTER_AREA`` *is* an average pool with a kernel that
   follows from the size ratio -- fractional at the borders of each cell);
2. a rough "where are people" heatmap of that small image (the cheap stage):
   ``roi_source="segmentation"`` -- MediaPipe's selfie-segmentation person mask;
   ``roi_source="detector"`` -- the BlazePose person detector's raw candidate
   body boxes, rasterised with their scores (max over candidates);
   (the seed used Lightweight OpenPose's own low-resolution heatmaps, which a
   generic backend does not expose);
3. threshold the heatmap, find the contours (OpenCV), take ONE box from the
   top-left and bottom-right corners of all contours together (as the seed),
   add a margin, map it to full resolution and crop the ORIGINAL frame; if no
   pixel passes the threshold nobody is there and the frame is skipped
   (:meth:`HighResolutionPoseEstimator.estimate` returns ``[]``);
4. resize the crop to ``base_height_2`` rows (``None``: no resize) and run the
   backend on it;
5. project the keypoints back: undo the resize, add the crop offset.

The backend is any object with ``estimate(image_bgr) -> list[PersonPose]``.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Optional, Protocol

import cv2
import numpy as np

from ..core import registry
from ..core.detection_ops import check_bgr_image, letterbox, resize_to_height, to_model_input
from ..core.tflite import TFLiteModel
from ..core.types import BoundingBox, PersonPose
from .pose_estimation import PersonDetector, RotatedRoi, square_windows

ROI_SOURCES = ("segmentation", "detector")


class PoseBackend(Protocol):
    def estimate(self, image_bgr: np.ndarray) -> list[PersonPose]: ...


def average_pool_to_height(image: np.ndarray, height: Optional[int]) -> np.ndarray:
    """``image`` shrunk to ``height`` rows by area averaging (never enlarged; None: unchanged).

    ``cv2.resize(..., INTER_AREA)`` averages every source pixel that falls in a
    destination pixel, weighted by the overlap: an average pool whose kernel is
    the size ratio (e.g. 3x3 from 1080 to 360 rows), also for fractional ratios.
    """
    if height is None or image.shape[0] <= height:
        return image
    return resize_to_height(image, height)


def heatmap_box(heatmap: np.ndarray, threshold: float) -> Optional[BoundingBox]:
    """One box over the corners of all contours of ``heatmap >= threshold`` (None if empty).

    Pixel (i, j) covers [j, j + 1] x [i, i + 1], so the box is in the same
    continuous coordinates as the heatmap's image.
    """
    mask = (np.asarray(heatmap) >= threshold).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    rects = np.array([cv2.boundingRect(c) for c in contours])  # x, y, w, h per contour
    return BoundingBox(float(rects[:, 0].min()), float(rects[:, 1].min()),
                       float((rects[:, 0] + rects[:, 2]).max()), float((rects[:, 1] + rects[:, 3]).max()))


def project_pose(pose: PersonPose, scale_x: float, scale_y: float, dx: float, dy: float) -> PersonPose:
    """``pose`` from a resized crop back to the frame: scale, then add the crop offset."""
    keypoints = np.array(pose.keypoints, dtype=np.float32, copy=True)
    keypoints[:, 0] = keypoints[:, 0] * scale_x + dx
    keypoints[:, 1] = keypoints[:, 1] * scale_y + dy
    extra = dict(pose.extra)
    roi = extra.get("roi")
    if isinstance(roi, RotatedRoi):  # the BlazePose backend's landmark ROI (crops keep the aspect ratio)
        extra["roi"] = RotatedRoi(roi.center_x * scale_x + dx, roi.center_y * scale_y + dy,
                                  roi.size * math.sqrt(scale_x * scale_y), roi.rotation)
    return replace(pose, keypoints=keypoints, box=pose.box.scaled(scale_x, scale_y).shifted(dx, dy), extra=extra)


class SegmentationHeatmap:
    """Person probability per pixel from MediaPipe's selfie segmentation (256x256, RGB in [0, 1]).

    The image is letterboxed (not stretched) into the model input and the mask
    cropped and resized back to the image size.
    """

    def __init__(self, num_threads: int = 1):
        self.model = TFLiteModel(registry.resolve("selfie_segmentation"), num_threads=num_threads)
        self.input_size = self.model.input_size

    def mask(self, image_bgr: np.ndarray) -> np.ndarray:
        """Person probability of every pixel of ``image_bgr`` (one model run)."""
        check_bgr_image(image_bgr, "image_bgr")
        h, w = image_bgr.shape[:2]
        tensor_image, lb = letterbox(image_bgr, self.input_size)
        mask = self.model.run(to_model_input(tensor_image, (0.0, 1.0)))[0][0, :, :, 0]
        x0, y0 = int(lb.pad_x), int(lb.pad_y)
        x1, y1 = x0 + int(round(w * lb.scale_x)), y0 + int(round(h * lb.scale_y))
        return cv2.resize(np.ascontiguousarray(mask[y0:y1, x0:x1]), (w, h), interpolation=cv2.INTER_LINEAR)

    def __call__(self, image_bgr: np.ndarray) -> np.ndarray:
        """The mask of the whole image or, for wide frames, the maximum of the
        masks of its square windows (a 16:9 frame letterboxed whole would shrink
        people by a further ~1.8x, below what this selfie model sees)."""
        h, w = image_bgr.shape[:2]
        windows = square_windows(w, h)
        if len(windows) == 1:
            return self.mask(image_bgr)
        heatmap = np.zeros((h, w), dtype=np.float32)
        for x0, y0, x1, y1 in windows[1:]:  # the squares cover the frame
            np.maximum(heatmap[y0:y1, x0:x1], self.mask(image_bgr[y0:y1, x0:x1]), out=heatmap[y0:y1, x0:x1])
        return heatmap


class DetectorHeatmap:
    """Person detector candidates rasterised into a map: each pixel holds the best
    score of the raw (pre-NMS) candidates whose full-body box covers it.

    Wide frames are also scanned in square windows (see
    :func:`~opendr_perception.models.pose_estimation.square_windows`).
    """

    def __init__(self, detector: Optional[PersonDetector] = None, score_floor: float = 0.1, num_threads: int = 1):
        self.detector = detector or PersonDetector(num_threads=num_threads)
        self.score_floor = float(score_floor)

    def __call__(self, image_bgr: np.ndarray) -> np.ndarray:
        h, w = image_bgr.shape[:2]
        candidates = self.detector.candidates(image_bgr, self.score_floor, windows=square_windows(w, h))
        heatmap = np.zeros((h, w), dtype=np.float32)
        for (x0, y0, x1, y1), score in zip(candidates.body_boxes(), candidates.scores):  # per box, not per pixel
            c0, r0 = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
            c1, r1 = min(w, int(math.ceil(x1))), min(h, int(math.ceil(y1)))
            if c1 > c0 and r1 > r0:
                np.maximum(heatmap[r0:r1, c0:c1], score, out=heatmap[r0:r1, c0:c1])
        return heatmap


class HighResolutionPoseEstimator:
    """The seed's active pipeline around any pose backend.

    Args:
        backend: object with ``estimate(image_bgr) -> list[PersonPose]``.
        base_height_1: rows of the pooled frame the cheap stage looks at.
        base_height_2: rows the crop is resized to for the backend (None: no resize).
        heatmap_threshold: heatmap value from which a pixel counts as "person".
        roi_source: ``"segmentation"`` or ``"detector"`` (see the module docstring).
        margin: fraction of the box's width/height added on every side before cropping.
        num_threads: CPU threads of the cheap stage's interpreter.
        heatmap: a custom cheap stage (callable: BGR image -> HxW map); overrides ``roi_source``.

    After each :meth:`estimate`, ``last_roi`` is the crop in frame pixels (None when
    the frame was skipped), ``last_heatmap`` the cheap stage's map (pooled size)
    and ``last_timings`` the seconds spent per step.
    """

    def __init__(self, backend: PoseBackend, base_height_1: int = 360, base_height_2: Optional[int] = 540,
                 heatmap_threshold: float = 0.5, roi_source: str = "segmentation", margin: float = 0.1,
                 num_threads: int = 1, heatmap=None):
        if not hasattr(backend, "estimate"):
            raise TypeError("backend must have estimate(image_bgr) -> list[PersonPose]")
        if base_height_1 is not None and base_height_1 < 16:
            raise ValueError(f"base_height_1 must be >= 16 (or None), got {base_height_1}")
        if base_height_2 is not None and base_height_2 < 16:
            raise ValueError(f"base_height_2 must be >= 16 (or None), got {base_height_2}")
        if not 0.0 <= heatmap_threshold <= 1.0:
            raise ValueError(f"heatmap_threshold must be in [0, 1], got {heatmap_threshold}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.backend = backend
        self.base_height_1 = base_height_1
        self.base_height_2 = base_height_2
        self.heatmap_threshold = float(heatmap_threshold)
        self.margin = float(margin)
        if heatmap is not None:
            self.roi_source = "custom"
            self.heatmap = heatmap
        elif roi_source == "segmentation":
            self.roi_source = roi_source
            self.heatmap = SegmentationHeatmap(num_threads=num_threads)
        elif roi_source == "detector":
            self.roi_source = roi_source
            detector = getattr(backend, "detector", None)  # share the backend's interpreter when it has one
            self.heatmap = DetectorHeatmap(detector if isinstance(detector, PersonDetector) else None,
                                           num_threads=num_threads)
        else:
            raise ValueError(f"unknown roi_source '{roi_source}'; use one of {ROI_SOURCES}")
        self.last_roi: Optional[BoundingBox] = None
        self.last_heatmap: Optional[np.ndarray] = None
        self.last_timings: dict[str, float] = {}

    def find_roi(self, image_bgr: np.ndarray) -> Optional[BoundingBox]:
        """Steps 1-3: the crop box in frame pixels, or None when nobody was found."""
        check_bgr_image(image_bgr, "image_bgr")
        h, w = image_bgr.shape[:2]
        t0 = time.perf_counter()
        pooled = average_pool_to_height(image_bgr, self.base_height_1)
        t1 = time.perf_counter()
        heatmap = np.asarray(self.heatmap(pooled), dtype=np.float32)
        t2 = time.perf_counter()
        self.last_heatmap = heatmap
        box = heatmap_box(heatmap, self.heatmap_threshold)
        self.last_timings.update(pool=t1 - t0, heatmap=t2 - t1, contours=time.perf_counter() - t2)
        if box is None:
            return None
        ph, pw = pooled.shape[:2]
        mx, my = self.margin * box.width, self.margin * box.height
        box = BoundingBox(box.x_min - mx, box.y_min - my, box.x_max + mx, box.y_max + my)
        box = box.scaled(w / pw, h / ph).clipped(w, h)
        return BoundingBox(float(math.floor(box.x_min)), float(math.floor(box.y_min)),
                           float(math.ceil(box.x_max)), float(math.ceil(box.y_max)))

    def estimate(self, image_bgr: np.ndarray) -> list[PersonPose]:
        """Poses in frame pixels; ``[]`` (frame skipped) when the cheap stage sees nobody."""
        self.last_timings = {}
        roi = self.find_roi(image_bgr)
        self.last_roi = roi
        if roi is None or roi.width < 2 or roi.height < 2:
            self.last_roi = None
            return []
        x0, y0, x1, y1 = int(roi.x_min), int(roi.y_min), int(roi.x_max), int(roi.y_max)
        t0 = time.perf_counter()
        crop = image_bgr[y0:y1, x0:x1]
        resized = np.ascontiguousarray(resize_to_height(crop, self.base_height_2))
        t1 = time.perf_counter()
        poses = self.backend.estimate(resized)
        t2 = time.perf_counter()
        sx, sy = crop.shape[1] / resized.shape[1], crop.shape[0] / resized.shape[0]
        projected = [project_pose(p, sx, sy, float(x0), float(y0)) for p in poses]
        self.last_timings.update(crop=t1 - t0, backend=t2 - t1)
        return projected

    __call__ = estimate
