"""face_detection: BlazeFace on a camera stream.

Subscribes: ``image`` (sensor_msgs/Image; ``image/compressed`` with image_transport:=compressed)
Publishes:  ``faces`` (vision_msgs/Detection2DArray: class ``face``, score, box, track id),
            ``faces/landmarks`` (opendr_interfaces/HumanPose2DArray, layout ``blazeface6``) when
            publish_landmarks, ``~/annotated_image``, and with rep155:=true ``/humans/faces/tracked``
            and ``/humans/faces/<id>/{roi,cropped}``.
"""
import numpy as np
from vision_msgs.msg import Detection2DArray

from opendr_perception.core.drawing import draw_detections
from opendr_perception.core.tracking import IouTracker
from opendr_perception.core.types import PersonPose
from opendr_perception.models.face_detection import FACE_LANDMARK_NAMES, FaceDetector
from opendr_perception.ros.bridge import detections_to_msg, poses_to_msg
from opendr_perception.ros.node_base import ImageNode, run_node


class FaceDetectionNode(ImageNode):
    def __init__(self):
        super().__init__("face_detection")
        self.model_variant = self.param("model", "full_range",
                                        "BlazeFace model: full_range (faces up to ~5 m) or short_range (~2 m)")
        self.score_threshold = self.param("score_threshold", 0.5, "Minimum face probability")
        self.nms_iou = self.param("nms_iou", 0.3, "IoU above which overlapping candidates merge into one face")
        self.max_faces = self.param("max_faces", 0, "Keep at most this many faces, best first (0: all)")
        self.tracker = IouTracker(prefix="face", iou_threshold=self.param(
            "track_iou", 0.3, "IoU that links a face to the previous frame's face (stable ids)"))
        self.faces_pub = self.create_publisher(Detection2DArray, "faces", 10)
        self.landmarks_pub = None
        if self.param("publish_landmarks", False, "Publish the 6 face landmarks on faces/landmarks"):
            from opendr_interfaces.msg import HumanPose2DArray
            self.landmarks_pub = self.create_publisher(HumanPose2DArray, "faces/landmarks", 10)
        self.rep155 = None
        if self.param("rep155", False, "Also publish REP-155 (ROS4HRI) /humans/faces/... topics"):
            from opendr_perception.ros.rep155 import Rep155Publisher
            self.rep155 = Rep155Publisher(self, "faces")

    def load_model(self):
        return FaceDetector(self.model_variant, self.score_threshold, self.nms_iou,
                            max_faces=self.max_faces or None)

    def infer(self, image):
        return self.model.detect(image)

    def publish_results(self, faces, header, image):
        ids = self.tracker.update([face.box for face in faces])
        for face, track_id in zip(faces, ids):
            face.track_id = track_id
        self.faces_pub.publish(detections_to_msg(faces, header))
        if self.landmarks_pub is not None:
            marks = [PersonPose(np.column_stack([f.landmarks, np.full(len(f.landmarks), f.score)]), "blazeface6",
                                f.box, f.score) for f in faces]
            self.landmarks_pub.publish(poses_to_msg(marks, header, names_of=lambda _: FACE_LANDMARK_NAMES))
        if self.rep155 is not None:
            self.rep155.publish(header, image, ids, [f.box for f in faces], [f.score for f in faces],
                                dropped=self.tracker.dropped)
        if self.publish_annotated:
            self.publish_annotated_image(draw_detections(image, faces), header)


def main(args=None):
    run_node(FaceDetectionNode, args)


if __name__ == "__main__":
    main()
