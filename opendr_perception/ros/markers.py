"""Skeletons as a visualization_msgs/MarkerArray for rviz, drawn flat in the image plane.

2D keypoints have no depth, so the skeleton is drawn in the plane z = 0 of the image's frame,
x right and y down scaled by ``meters_per_pixel``; markers live 0.5 s, so a person who leaves
disappears from rviz.
"""
from __future__ import annotations

from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from opendr_perception.core.keypoints import get_layout


class SkeletonMarkers:
    def __init__(self, node, meters_per_pixel: float = 0.002, min_confidence: float = 0.3):
        self.publisher = node.create_publisher(MarkerArray, "~/markers", 10)
        self.scale, self.min_confidence = float(meters_per_pixel), float(min_confidence)

    def publish(self, poses, header: Header) -> None:
        markers = MarkerArray(markers=[Marker(header=header, action=Marker.DELETEALL)])
        for i, pose in enumerate(poses):
            marker = Marker(header=header, ns="skeletons", id=i, type=Marker.LINE_LIST, action=Marker.ADD,
                            lifetime=Duration(sec=0, nanosec=500_000_000),
                            color=ColorRGBA(r=0.1, g=0.9, b=0.9, a=1.0))
            marker.scale.x = 3 * self.scale
            marker.pose.orientation.w = 1.0
            kps = pose.keypoints
            for a, b in get_layout(pose.layout).edges:
                if kps[a, 2] >= self.min_confidence and kps[b, 2] >= self.min_confidence:
                    marker.points += [Point(x=float(kps[a, 0]) * self.scale, y=float(kps[a, 1]) * self.scale),
                                      Point(x=float(kps[b, 0]) * self.scale, y=float(kps[b, 1]) * self.scale)]
            markers.markers.append(marker)
        self.publisher.publish(markers)
