"""pose_estimation: multi-person BlazePose on a camera stream.

Subscribes: ``image`` (sensor_msgs/Image; ``image/compressed`` with image_transport:=compressed)
Publishes:  ``poses`` (opendr_interfaces/HumanPose2DArray: every person of the frame, with a track id,
            keypoints in ``keypoint_layout`` order), ``~/annotated_image``, ``~/markers``
            (visualization_msgs/MarkerArray in the image plane) when publish_markers, and with
            rep155:=true ``/humans/bodies/tracked`` and ``/humans/bodies/<id>/{roi,cropped,skeleton2d}``.
"""
from opendr_interfaces.msg import HumanPose2DArray

from opendr_perception.core.drawing import draw_poses
from opendr_perception.core.keypoints import LAYOUTS, convert
from opendr_perception.core.tracking import IouTracker
from opendr_perception.models.pose_estimation import MultiPersonPoseEstimator
from opendr_perception.ros.bridge import poses_to_msg
from opendr_perception.ros.node_base import ImageNode, run_node


class PoseEstimationNode(ImageNode):
    #: recall gate of the person detector; the landmark model's pose probability is the precision gate
    default_detector_threshold = 0.3

    def __init__(self, node_name: str = "pose_estimation"):
        super().__init__(node_name)
        self.layout = self.param("keypoint_layout", "coco18",
                                 f"Keypoint order of the output: {', '.join(LAYOUTS)} (coco18 = OpenPose order)")
        if self.layout not in LAYOUTS:
            raise ValueError(f"keypoint_layout must be one of {sorted(LAYOUTS)}, not '{self.layout}'")
        self.detector_threshold = self.param("detector_threshold", self.default_detector_threshold,
                                             "Minimum person-detector score")
        self.pose_threshold = self.param("pose_threshold", 0.5, "Minimum pose probability of a person")
        self.max_people = self.param("max_people", 6, "At most this many people per frame")
        self.min_confidence = self.param("min_keypoint_confidence", 0.3, "Keypoints drawn from this confidence on")
        self.tracker = IouTracker(iou_threshold=self.param(
            "track_iou", 0.3, "IoU that links a person to the previous frame's person (stable ids)"))
        self.poses_pub = self.create_publisher(HumanPose2DArray, "poses", 10)
        self.markers = None
        if self.param("publish_markers", False, "Publish ~/markers: skeletons as a MarkerArray in the image plane"):
            from opendr_perception.ros.markers import SkeletonMarkers
            self.markers = SkeletonMarkers(self, self.param(
                "marker_meters_per_pixel", 0.002, "Scale of the image-plane markers (metres per pixel)"))
        self.rep155 = None
        if self.param("rep155", False, "Also publish REP-155 (ROS4HRI) /humans/bodies/... topics"):
            from opendr_perception.ros.rep155 import Rep155Publisher
            self.rep155 = Rep155Publisher(self, "bodies")

    def load_model(self):
        return MultiPersonPoseEstimator(self.detector_threshold, self.max_people, self.pose_threshold)

    def infer(self, image):
        return self.model.estimate(image)

    def roi_of_last_frame(self):
        """The region the model looked at (drawn on the annotated image); None for the whole frame."""
        return None

    def publish_results(self, poses, header, image):
        ids = self.tracker.update([pose.box for pose in poses])
        poses = [convert(pose, self.layout) for pose in poses]
        for pose, track_id in zip(poses, ids):
            pose.person_id = int(track_id)
        self.poses_pub.publish(poses_to_msg(poses, header))
        if self.markers is not None:
            self.markers.publish(poses, header)
        if self.rep155 is not None:
            self.rep155.publish(header, image, ids, [p.box for p in poses], [p.score for p in poses],
                                dropped=self.tracker.dropped, poses=poses)
        if self.publish_annotated:
            self.publish_annotated_image(draw_poses(image, poses, self.min_confidence, self.roi_of_last_frame()),
                                         header)


def main(args=None):
    run_node(PoseEstimationNode, args)


if __name__ == "__main__":
    main()
