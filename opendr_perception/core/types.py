"""Plain data types shared by the ROS-free models and the ROS layer.

Coordinates are image pixels of the frame the model was given: x to the right,
y down, origin at the top-left corner of the top-left pixel.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class BoundingBox:
    """Axis-aligned box in pixels."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float

    @property
    def width(self) -> float:
        return self.x_max - self.x_min

    @property
    def height(self) -> float:
        return self.y_max - self.y_min

    @property
    def center(self) -> tuple[float, float]:
        return (0.5 * (self.x_min + self.x_max), 0.5 * (self.y_min + self.y_max))

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def scaled(self, sx: float, sy: Optional[float] = None) -> "BoundingBox":
        """Box in an image resized by (sx, sy)."""
        sy = sx if sy is None else sy
        return BoundingBox(self.x_min * sx, self.y_min * sy, self.x_max * sx, self.y_max * sy)

    def shifted(self, dx: float, dy: float) -> "BoundingBox":
        return BoundingBox(self.x_min + dx, self.y_min + dy, self.x_max + dx, self.y_max + dy)

    def clipped(self, width: float, height: float) -> "BoundingBox":
        """Box clipped to an image of the given size."""
        return BoundingBox(
            min(max(self.x_min, 0.0), width), min(max(self.y_min, 0.0), height),
            min(max(self.x_max, 0.0), width), min(max(self.y_max, 0.0), height))

    def contains(self, x: float, y: float) -> bool:
        return self.x_min <= x <= self.x_max and self.y_min <= y <= self.y_max

    def iou(self, other: "BoundingBox") -> float:
        ix = max(0.0, min(self.x_max, other.x_max) - max(self.x_min, other.x_min))
        iy = max(0.0, min(self.y_max, other.y_max) - max(self.y_min, other.y_min))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


@dataclass
class Detection:
    """One detected object (a face, a person) in one image."""

    box: BoundingBox
    score: float
    class_id: str
    landmarks: Optional[np.ndarray] = None  # (K, 2) pixel coordinates, or None
    landmark_names: Sequence[str] = ()
    track_id: str = ""

    def with_box(self, box: BoundingBox, landmarks: Optional[np.ndarray] = None) -> "Detection":
        return replace(self, box=box, landmarks=landmarks)


@dataclass
class PersonPose:
    """The 2D keypoints of one person in one image.

    ``keypoints`` is a (K, 3) float array of x, y (pixels) and confidence in
    [0, 1]; its rows follow ``layout`` (see :mod:`opendr_perception.core.keypoints`).
    A keypoint that was not found has confidence 0.
    """

    keypoints: np.ndarray
    layout: str
    box: BoundingBox
    score: float
    person_id: int = -1
    extra: dict = field(default_factory=dict)
