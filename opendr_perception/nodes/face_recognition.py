"""face_recognition: who is in front of the camera (BlazeFace + dlib ResNet descriptor + a gallery).

Subscribes: ``image`` (sensor_msgs/Image; ``image/compressed`` with image_transport:=compressed)
Publishes:  ``faces/recognized`` (vision_msgs/Detection2DArray: per face its box, track id, and one
            hypothesis: the person's name, or ``unknown``, with the face recognition confidence
            FRC = 1 - distance/threshold as score, 0 when unknown), ``~/annotated_image``; with
            rep155:=true also ``/humans/faces/...``, ``/humans/persons/tracked``,
            ``/humans/persons/known`` and ``/humans/persons/<person>/face_id``.
Services:   ``~/enroll`` (opendr_interfaces/EnrollFace), ``~/forget`` (opendr_interfaces/ForgetPerson).
The gallery is an .npz file (``gallery_path``) tied to the embedder that made it.
"""
import os
import re
from pathlib import Path

from opendr_interfaces.srv import EnrollFace, ForgetPerson
from rclpy.qos import DurabilityPolicy, QoSProfile
from std_msgs.msg import String
from vision_msgs.msg import Detection2DArray

from opendr_perception.core.drawing import draw_detections
from opendr_perception.core.tracking import IouTracker
from opendr_perception.core.types import Detection
from opendr_perception.models.face_detection import FaceDetector
from opendr_perception.models.face_recognition import build_recognizer
from opendr_perception.ros.bridge import detections_to_msg, image_to_numpy
from opendr_perception.ros.node_base import ImageNode, run_node

UNKNOWN = "unknown"


def default_gallery_path() -> str:
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "opendr-ros2", "face_gallery.npz")


def person_id(name: str) -> str:
    """A REP-155 person id (a valid ROS name part) for a gallery name."""
    return re.sub(r"[^a-z0-9_]", "_", name.lower()).strip("_") or "person"


class FaceRecognitionNode(ImageNode):
    def __init__(self):
        super().__init__("face_recognition")
        self.detector_model = self.param("detector_model", "full_range", "BlazeFace model: full_range or short_range")
        self.detector_threshold = self.param("detector_threshold", 0.5, "Minimum face probability")
        self.threshold = self.param("threshold", 0.0, "Distance below which a face is a gallery person "
                                    "(0: the embedder's own, 0.6 for the dlib descriptor)")
        self.gallery_path = Path(self.param("gallery_path", "", "Gallery file (.npz), created on the first "
                                            "enrolment ('': $XDG_DATA_HOME/opendr-ros2/face_gallery.npz)")
                                 or default_gallery_path())
        self.enroll_dir = self.param("enroll_dir", "", "Folder tree <person>/<images> enrolled at start ('' none)")
        self.tracker = IouTracker(prefix="face")
        self.latest_image = None
        self.faces_pub = self.create_publisher(Detection2DArray, "faces/recognized", 10)
        self.create_service(EnrollFace, "~/enroll", self.on_enroll)
        self.create_service(ForgetPerson, "~/forget", self.on_forget)
        self.rep155 = None
        if self.param("rep155", False, "Also publish REP-155 /humans/faces/... and /humans/persons/..."):
            from hri_msgs.msg import IdsList
            from opendr_perception.ros.rep155 import Rep155Publisher
            self.rep155 = Rep155Publisher(self, "faces")
            latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.persons_tracked_pub = self.create_publisher(IdsList, "/humans/persons/tracked", 1)
            self.persons_known_pub = self.create_publisher(IdsList, "/humans/persons/known", latched)
            self.face_id_pubs = {}
            self.latched = latched

    def load_model(self):
        self.detector = FaceDetector(self.detector_model, self.detector_threshold)
        return build_recognizer(self.gallery_path, self.threshold, self.enroll_dir, self.detector.detect,
                                log=self.get_logger().info)

    def infer(self, image):
        self.latest_image = image
        faces = self.detector.detect(image)
        recognitions = self.model.recognize_many(image, [f.box for f in faces]) if faces else []
        return [Detection(f.box, r.frc, r.identity or UNKNOWN, f.landmarks, f.landmark_names)
                for f, r in zip(faces, recognitions)]

    def publish_results(self, faces, header, image):
        ids = self.tracker.update([face.box for face in faces])
        for face, track_id in zip(faces, ids):
            face.track_id = track_id
        self.faces_pub.publish(detections_to_msg(faces, header))
        if self.rep155 is not None:
            self.rep155.publish(header, image, ids, [f.box for f in faces], [f.score for f in faces],
                                dropped=self.tracker.dropped)
            self._publish_persons(faces, header)
        if self.publish_annotated:
            self.publish_annotated_image(draw_detections(image, faces), header)

    def _publish_persons(self, faces, header):
        from hri_msgs.msg import IdsList
        seen = {}
        for face in faces:
            if face.class_id != UNKNOWN:
                seen[person_id(face.class_id)] = face.track_id
        self.persons_tracked_pub.publish(IdsList(header=header, ids=sorted(seen)))
        for pid, face_track in seen.items():
            if pid not in self.face_id_pubs:
                self.face_id_pubs[pid] = self.create_publisher(String, f"/humans/persons/{pid}/face_id", self.latched)
            self.face_id_pubs[pid].publish(String(data=face_track))

    def _gallery_changed(self):
        self.model.gallery.save(self.gallery_path)
        if self.rep155 is not None:
            from hri_msgs.msg import IdsList
            self.persons_known_pub.publish(IdsList(ids=sorted(person_id(p) for p in self.model.gallery.people())))

    def on_enroll(self, request, response):
        response.success = False
        if not self.try_load_model():
            response.message = f"model not loaded: {self.model_error}"
            return response
        try:
            if request.image.height and request.image.width:
                image = image_to_numpy(request.image, "bgr8")
                faces = self.detector.detect(image)
                if len(faces) != 1:
                    response.message = f"the image must show exactly one face; {len(faces)} found"
                    return response
            elif self.latest_image is not None:
                image = self.latest_image
                faces = sorted(self.detector.detect(image), key=lambda f: -f.box.area)[:1]
                if not faces:
                    response.message = "no face in the latest camera frame"
                    return response
            else:
                response.message = "no image given and no camera frame received yet"
                return response
            self.model.enroll(request.name, image, faces[0].box, source="service")
            self._gallery_changed()
        except Exception as e:  # noqa: BLE001 - a failed enrolment is answered, never fatal to the node
            response.message = f"{type(e).__name__}: {e}" if not isinstance(e, ValueError) else str(e)
            return response
        response.success = True
        response.faces_enrolled = self.model.gallery.count(request.name)
        response.message = f"enrolled a face of {request.name} ({response.faces_enrolled} in the gallery)"
        self.get_logger().info(response.message)
        return response

    def on_forget(self, request, response):
        if not self.try_load_model():
            response.success, response.message = False, f"model not loaded: {self.model_error}"
            return response
        try:
            removed = self.model.gallery.remove(request.name) if request.name in self.model.gallery.people() else 0
            if removed:
                self._gallery_changed()
        except Exception as e:  # noqa: BLE001 - e.g. the gallery file cannot be written: answered, not fatal
            response.success, response.message = False, f"{type(e).__name__}: {e}"
            return response
        response.success = removed > 0
        response.message = f"removed {removed} faces of {request.name}" if removed else f"{request.name} is not enrolled"
        return response


def main(args=None):
    run_node(FaceRecognitionNode, args)


if __name__ == "__main__":
    main()
