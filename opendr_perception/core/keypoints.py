"""Named 2D keypoint layouts, their skeletons, and explicit conversions between them.

Layouts
-------
``blazepose33``  MediaPipe BlazePose's 33 landmarks (pose_landmark_topology).
``coco17``       COCO keypoints (nose, eyes, ears, shoulders, ... ankles).
``coco18``       OpenPose / Lightweight OpenPose order: COCO plus a ``neck``. This is
                 the order skeleton action models (ST-GCN) and REP-155's
                 ``hri_msgs/Skeleton2D`` use.

Names are lower-case, subject-centred: ``left_*`` is the person's left side,
which appears on the right of a photo of someone facing the camera.

Conversions (:func:`convert`) are explicit index tables: every target keypoint
names its source row, or is derived (``neck`` = midpoint of the shoulders with
confidence = min of the two, so a neck is only as sure as its weaker shoulder),
or is missing (coordinates 0, confidence 0).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .types import PersonPose


@dataclass(frozen=True)
class Layout:
    """A keypoint layout: ordered names and skeleton edges (index pairs) for drawing."""

    name: str
    names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.names)

    def index(self, keypoint_name: str) -> int:
        try:
            return self.names.index(keypoint_name)
        except ValueError:
            raise KeyError(f"layout '{self.name}' has no keypoint '{keypoint_name}'") from None


BLAZEPOSE33 = Layout(
    "blazepose33",
    ("nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
     "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
     "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
     "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
     "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
     "left_foot_index", "right_foot_index"),
    # MediaPipe's POSE_CONNECTIONS
    ((0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12), (11, 13),
     (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18), (16, 20),
     (16, 22), (18, 20), (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28),
     (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32)),
)

COCO17 = Layout(
    "coco17",
    ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
     "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
     "right_knee", "left_ankle", "right_ankle"),
    # the COCO dataset's skeleton, 0-based
    ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
     (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)),
)

COCO18 = Layout(
    "coco18",
    ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
     "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
     "right_eye", "left_eye", "right_ear", "left_ear"),
    # OpenPose's drawn limbs
    ((1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
     (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17)),
)

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (BLAZEPOSE33, COCO17, COCO18)}

# Special source codes in the index tables.
MISSING = -1  # the source layout has no such keypoint
NECK = -2     # midpoint of the source's shoulders, confidence = min of the two

# INDEX_MAPS[(source, target)][i] = the source row of target keypoint i (or MISSING / NECK).
INDEX_MAPS: dict[tuple[str, str], tuple[int, ...]] = {
    ("blazepose33", "coco17"): (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28),
    ("blazepose33", "coco18"): (0, NECK, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7),
    ("coco17", "coco18"): (0, NECK, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3),
    ("coco18", "coco17"): (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10),
    ("coco17", "blazepose33"): (0, MISSING, 1, MISSING, MISSING, 2, MISSING, 3, 4, MISSING, MISSING,
                                5, 6, 7, 8, 9, 10, MISSING, MISSING, MISSING, MISSING, MISSING,
                                MISSING, 11, 12, 13, 14, 15, 16, MISSING, MISSING, MISSING, MISSING),
    ("coco18", "blazepose33"): (0, MISSING, 15, MISSING, MISSING, 14, MISSING, 17, 16, MISSING, MISSING,
                                5, 2, 6, 3, 7, 4, MISSING, MISSING, MISSING, MISSING, MISSING,
                                MISSING, 11, 8, 12, 9, 13, 10, MISSING, MISSING, MISSING, MISSING),
}


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown keypoint layout '{name}'; known: {', '.join(LAYOUTS)}") from None


def convert_keypoints(keypoints: np.ndarray, source: str, target: str) -> np.ndarray:
    """``(K, 3)`` keypoints (x, y, confidence) in layout ``source`` → ``(K', 3)`` in ``target``."""
    src_layout, dst_layout = get_layout(source), get_layout(target)
    kp = np.asarray(keypoints, dtype=np.float32)
    if kp.shape != (len(src_layout), 3):
        raise ValueError(f"{source} keypoints must have shape ({len(src_layout)}, 3), got {kp.shape}")
    if source == target:
        return kp.copy()
    try:
        table = np.asarray(INDEX_MAPS[(source, target)])
    except KeyError:
        raise ValueError(f"no conversion from '{source}' to '{target}'") from None
    out = np.zeros((len(dst_layout), 3), dtype=np.float32)
    direct = table >= 0
    out[direct] = kp[table[direct]]
    if (table == NECK).any():
        left = kp[src_layout.index("left_shoulder")]
        right = kp[src_layout.index("right_shoulder")]
        neck = np.array([(left[0] + right[0]) / 2, (left[1] + right[1]) / 2, min(left[2], right[2])],
                        dtype=np.float32)
        out[table == NECK] = neck
    return out


def convert(pose: PersonPose, layout: str) -> PersonPose:
    """The same person in another keypoint layout (box, score, id and extras kept)."""
    keypoints = convert_keypoints(pose.keypoints, pose.layout, layout)
    return replace(pose, keypoints=keypoints, layout=layout, extra=dict(pose.extra))
