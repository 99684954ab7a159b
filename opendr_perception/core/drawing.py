"""Annotated images: boxes, labels, keypoints and skeletons drawn on a copy of a BGR frame."""
from __future__ import annotations

from typing import Iterable, Optional

import cv2
import numpy as np

from opendr_perception.core.types import BoundingBox, Detection, PersonPose

GREEN, YELLOW, CYAN, MAGENTA = (80, 220, 60), (0, 220, 255), (255, 220, 0), (255, 60, 220)


def _thickness(image: np.ndarray) -> int:
    return max(1, round(max(image.shape[:2]) / 500))


def draw_box(image: np.ndarray, box: BoundingBox, color=GREEN, label: str = "") -> None:
    t = _thickness(image)
    p1, p2 = (int(round(box.x_min)), int(round(box.y_min))), (int(round(box.x_max)), int(round(box.y_max)))
    cv2.rectangle(image, p1, p2, color, t, cv2.LINE_AA)
    if label:
        scale = 0.45 * t
        (w, h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, t)
        y = max(p1[1], h + base + 2)
        cv2.rectangle(image, (p1[0], y - h - base - 2), (p1[0] + w + 2, y), color, -1)
        cv2.putText(image, label, (p1[0] + 1, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), t, cv2.LINE_AA)


def draw_detections(image: np.ndarray, detections: Iterable[Detection], color=GREEN) -> np.ndarray:
    """A copy of ``image`` with each detection's box, class, score and landmarks."""
    out = image.copy()
    t = _thickness(out)
    for det in detections:
        label = f"{det.class_id} {det.score:.2f}" + (f" #{det.track_id}" if det.track_id else "")
        draw_box(out, det.box, color, label)
        if det.landmarks is not None:
            for x, y in np.asarray(det.landmarks).reshape(-1, 2):
                if np.isfinite(x) and np.isfinite(y):
                    cv2.circle(out, (int(round(x)), int(round(y))), 2 * t, YELLOW, -1, cv2.LINE_AA)
    return out


def draw_poses(image: np.ndarray, poses: Iterable[PersonPose], min_confidence: float = 0.3,
               roi: Optional[BoundingBox] = None) -> np.ndarray:
    """A copy of ``image`` with each person's skeleton (keypoints above ``min_confidence``) and box."""
    from opendr_perception.core.keypoints import get_layout

    out = image.copy()
    t = _thickness(out)
    if roi is not None:
        draw_box(out, roi, MAGENTA, "roi")
    for pose in poses:
        kps = np.asarray(pose.keypoints, dtype=np.float64)
        visible = np.isfinite(kps).all(axis=1) & (kps[:, 2] >= min_confidence)
        draw_box(out, pose.box, GREEN, f"person {pose.score:.2f}" + (f" #{pose.person_id}" if pose.person_id >= 0 else ""))
        for a, b in get_layout(pose.layout).edges:
            if visible[a] and visible[b]:
                cv2.line(out, (int(kps[a, 0]), int(kps[a, 1])), (int(kps[b, 0]), int(kps[b, 1])), CYAN, t, cv2.LINE_AA)
        for x, y, _ in kps[visible]:
            cv2.circle(out, (int(x), int(y)), 2 * t, YELLOW, -1, cv2.LINE_AA)
    return out
