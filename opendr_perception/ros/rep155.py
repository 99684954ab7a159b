"""REP-155 (ROS4HRI) outputs: ``/humans/<kind>/tracked`` and per-id topics.

For every tracked id ``<id>`` of a kind (``faces`` or ``bodies``):
``/humans/<kind>/<id>/roi`` (hri_msgs/NormalizedRegionOfInterest2D),
``/humans/<kind>/<id>/cropped`` (sensor_msgs/Image, bgr8) and, for bodies,
``/humans/bodies/<id>/skeleton2d`` (hri_msgs/Skeleton2D, normalised OpenPose
order). Per-id publishers are created when an id appears and destroyed when
its track is dropped.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from opendr_perception.core.types import BoundingBox, PersonPose
from opendr_perception.ros.bridge import numpy_to_image

# hri_msgs/Skeleton2D constants by name (note: its eye and ear constants put LEFT before RIGHT)
_SKELETON2D_ORDER = ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
                     "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
                     "left_eye", "right_eye", "left_ear", "right_ear")


class Rep155Publisher:
    """Publishes one kind of tracked human part (faces or bodies) the REP-155 way."""

    def __init__(self, node, kind: str):
        from hri_msgs.msg import IdsList
        if kind not in ("faces", "bodies"):
            raise ValueError(f"REP-155 kind must be faces or bodies, not '{kind}'")
        self.node, self.kind = node, kind
        self.tracked_pub = node.create_publisher(IdsList, f"/humans/{kind}/tracked", 1)
        self.per_id: dict[str, dict] = {}

    def _publishers(self, track_id: str) -> dict:
        from hri_msgs.msg import NormalizedRegionOfInterest2D, Skeleton2D
        if track_id not in self.per_id:
            base = f"/humans/{self.kind}/{track_id}"
            pubs = {"roi": self.node.create_publisher(NormalizedRegionOfInterest2D, f"{base}/roi", 1),
                    "cropped": self.node.create_publisher(Image, f"{base}/cropped", 1)}
            if self.kind == "bodies":
                pubs["skeleton2d"] = self.node.create_publisher(Skeleton2D, f"{base}/skeleton2d", 1)
            self.per_id[track_id] = pubs
        return self.per_id[track_id]

    def publish(self, header: Header, image: np.ndarray, ids: Sequence[str], boxes: Sequence[BoundingBox],
                scores: Sequence[float], dropped: Sequence[str] = (),
                poses: Optional[Sequence[PersonPose]] = None) -> None:
        from hri_msgs.msg import IdsList, NormalizedRegionOfInterest2D
        height, width = image.shape[:2]
        for track_id in dropped:
            for pub in self.per_id.pop(track_id, {}).values():
                self.node.destroy_publisher(pub)
        self.tracked_pub.publish(IdsList(header=header, ids=list(ids)))
        for i, (track_id, box, score) in enumerate(zip(ids, boxes, scores)):
            pubs = self._publishers(track_id)
            b = box.clipped(width, height)
            pubs["roi"].publish(NormalizedRegionOfInterest2D(
                header=header, xmin=b.x_min / width, ymin=b.y_min / height, xmax=b.x_max / width,
                ymax=b.y_max / height, c=float(score)))
            x0, y0, x1, y1 = int(b.x_min), int(b.y_min), int(np.ceil(b.x_max)), int(np.ceil(b.y_max))
            if x1 > x0 and y1 > y0:
                pubs["cropped"].publish(numpy_to_image(image[y0:y1, x0:x1], "bgr8", header))
            if poses is not None and "skeleton2d" in pubs:
                pubs["skeleton2d"].publish(self._skeleton(poses[i], header, width, height))

    @staticmethod
    def _skeleton(pose: PersonPose, header: Header, width: int, height: int):
        from hri_msgs.msg import NormalizedPointOfInterest2D, Skeleton2D
        from opendr_perception.core.keypoints import convert, get_layout
        coco = convert(pose, "coco18")
        index = {name: i for i, name in enumerate(get_layout("coco18").names)}
        points = []
        for name in _SKELETON2D_ORDER:
            x, y, c = coco.keypoints[index[name]]
            ok = c > 0 and np.isfinite(x) and np.isfinite(y)
            points.append(NormalizedPointOfInterest2D(
                x=float(np.clip(x / width, 0, 1)) if ok else 0.0, y=float(np.clip(y / height, 0, 1)) if ok else 0.0,
                c=float(c) if ok else 0.0))
        return Skeleton2D(header=header, skeleton=points)

