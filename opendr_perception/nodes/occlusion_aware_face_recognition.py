"""occlusion_aware_face_recognition: move sideways to see past an object hiding part of a face
(OpenDR D3.3 section 2.3, active occlusion removal).

Per episode: detect the largest face and recognise it (BlazeFace + dlib descriptor + gallery). If it is
not recognised, the direction net D_m reads the face crop (``core.occlusion.face_crop`` around the
detected box; a spatial input, since the dlib descriptor hardly tells left from right) and names the
image side the occluder comes from (up, bottom, right, left) or ``none``. The robot makes the
predefined step ``step_m`` away from that side (a near occluder slides the other way relative to the
face: sideways for left/right, down/up for a drone for up/bottom), captures the second view, the ratio regressor R_m turns the two face crops
into the remaining move as a fraction r of the step, the robot moves r * step_m more and recognises
again (up to ``max_rounds`` rounds).

Vertical moves: a wheeled robot cannot move up or down, so for it an occluder above or below the face
ends the episode as unknown with that reason.

Subscribes: ``image`` (sensor_msgs/Image; ``image/compressed`` with image_transport:=compressed)
Publishes:  ``faces`` (vision_msgs/Detection2DArray, every frame: face box, name or ``unknown`` as
            class_id, FRC as score), ``recognized`` (vision_msgs/Classification, latched, once per
            episode: the identity or ``unknown``, score FRC), ``~/status``
            (opendr_interfaces/ActiveRecognitionStatus, every frame: ``position`` = moves made,
            ``action`` = stay / move_left / move_right / moving / settling / waiting / holding,
            ``reason`` when the episode ends), ``cmd_vel`` (Twist, or TwistStamped with
            cmd_vel_stamped: zero within ``image_timeout`` when images stop), ``~/annotated_image``.
"""
import time

from opendr_interfaces.msg import ActiveRecognitionStatus
from rclpy.qos import DurabilityPolicy, QoSProfile
from vision_msgs.msg import Classification, Detection2DArray

from opendr_perception.core import occlusion as occ
from opendr_perception.core.drawing import draw_box
from opendr_perception.core.motion import Sideways, Vertical
from opendr_perception.core.types import Detection
from opendr_perception.models.face_detection import FaceDetector
from opendr_perception.models.face_recognition import build_recognizer
from opendr_perception.models.occlusion_removal import REGISTRY_NAME, OcclusionRemover
from opendr_perception.nodes.face_recognition import UNKNOWN, default_gallery_path
from opendr_perception.ros.bridge import classification_to_msg, detections_to_msg
from opendr_perception.ros.motion import VelocityCommander
from opendr_perception.ros.node_base import ImageNode, run_node

# the camera move that clears an occluder coming from each image side, and its sign: away from that side
# (occluder on the image's left -> move right; at the top -> move down; Sideways + = left, Vertical + = up)
CLEARING_MOVE = {"left": (Sideways, -1.0, "move_right"), "right": (Sideways, 1.0, "move_left"),
                 "up": (Vertical, -1.0, "move_down"), "bottom": (Vertical, 1.0, "move_up")}


class OcclusionAwareFaceRecognitionNode(ImageNode):
    def __init__(self):
        super().__init__("occlusion_aware_face_recognition")
        self.gallery_path = self.param("gallery_path", "", "Gallery of face_recognition ('': its default file)") \
            or default_gallery_path()
        self.threshold = self.param("threshold", 0.0, "Recognition distance threshold (0: the embedder's own)")
        self.detector_model = self.param("detector_model", "full_range", "BlazeFace model: full_range or short_range")
        self.detector_threshold = self.param("detector_threshold", 0.3,
                                             "Minimum face probability (occluded faces score low)")
        self.weights = self.param("weights", REGISTRY_NAME, "Registry name of the occlusion-removal weights")
        self.step_m = self.param("step_m", 0.05, "Predefined first step m (metres)")
        self.min_move_m = self.param("min_move_m", 0.01, "Second moves shorter than this are skipped (metres)")
        self.max_rounds = self.param("max_rounds", 2, "Step + regressed move rounds at most per episode")
        self.settle_s = self.param("settle_time", 0.3, "Wait after a move before the next capture (s)")
        self.hold_s = self.param("hold_time", 5.0, "Keep a result this long before a new episode (s)")
        self.lost_timeout_s = self.param("lost_timeout", 2.0, "End an episode as unknown when the face stays "
                                         "lost this long after a move (s)")
        self.platform = self.param("platform", "wheeled", "wheeled (sideways = turn, drive, turn back) or drone "
                                   "(also moves up and down)")
        self.commander = VelocityCommander(
            self, platform=self.platform,
            max_linear=self.param("max_linear", 0.2, "Largest linear speed (m/s)"),
            max_angular=self.param("max_angular", 0.5, "Largest angular speed (rad/s)"),
            stamped=self.param("cmd_vel_stamped", False, "Publish TwistStamped instead of Twist on cmd_vel"),
            image_timeout=self.param("image_timeout", 0.4, "Stop moving when no image came for this long (s)"),
            allow_blind_segments=True)  # a wheeled sideways move turns away from the person
        self.faces_pub = self.create_publisher(Detection2DArray, "faces", 10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.result_pub = self.create_publisher(Classification, "recognized", latched)
        self.status_pub = self.create_publisher(ActiveRecognitionStatus, "~/status", 10)
        self.episode, self.moving, self.wait_until = 0, False, 0.0
        self._new_episode()

    def load_model(self):
        self.detector = FaceDetector(self.detector_model, self.detector_threshold)
        self.remover = OcclusionRemover.from_registry(self.weights)
        return build_recognizer(self.gallery_path, self.threshold, log=self.get_logger().info)

    def on_shutdown(self):
        self.commander.stop()

    def _new_episode(self):
        self.phase, self.moves, self.rounds, self.done = "observe", 0, 0, False
        self.view1, self.direction, self.lost_since = None, None, None

    def _move(self, distance: float, status) -> bool:
        """Move ``distance`` (m) away from the side the occluder comes from."""
        goal, sign, action = CLEARING_MOVE[self.direction]
        # the decision was made on a frame that has just arrived; the models may have taken longer than
        # image_timeout on it (first call, busy CPU): restart the watchdog's clock from now
        self.commander.image_received()
        if not self.commander.request(goal(sign * distance)):
            return False
        self.moving, self.moves = True, self.moves + 1
        status.action, status.position = action, self.moves
        return True

    def infer(self, image):
        now = time.monotonic()
        faces = self.detector.detect(image)
        face = max(faces, key=lambda f: f.box.area) if faces else None
        self.commander.image_received()
        self.commander.set_person_tracked(face is not None)
        status = ActiveRecognitionStatus(episode=self.episode, position=self.moves)
        if self.moving:
            if self.commander.busy:
                status.action = "moving"
                return face, None, status
            self.moving, self.wait_until = False, now + self.settle_s
        if now < self.wait_until:
            status.action = "holding" if self.done else "settling"
            return face, None, status
        if self.done:  # the hold time of the last result is over
            self._new_episode()
            self.episode += 1
            status.episode, status.position = self.episode, 0
        if face is None:
            status.action = "waiting"
            if self.phase != "observe":  # lost during an episode (e.g. a step the wrong way hid the face)
                self.lost_since = self.lost_since or now
                if now - self.lost_since > self.lost_timeout_s:
                    self._finish(status, None, 0.0, f"face lost for {self.lost_timeout_s:.1f} s after a move")
            return None, None, status
        self.lost_since = None
        real = self.model.recognize(image, face.box)
        status.real_identity, status.real_frc = real.identity or "", real.frc
        status.action = "stay"
        if real.is_known:
            self._finish(status, real.identity, real.frc, "recognised")
            return face, real, status
        box = (face.box.x_min, face.box.y_min, face.box.x_max, face.box.y_max)
        if self.phase == "observe":
            crop = occ.face_crop(image, box)[0]
            self.direction, p = self.remover.direction(crop)
            self.get_logger().info(f"not recognised (distance {real.distance:.2f}); occluder side: "
                                   f"{self.direction} (p {p:.2f})")
            if self.direction == "none":
                self._finish(status, None, 0.0, "unknown and not occluded (direction net: none)")
            elif CLEARING_MOVE[self.direction][0] is Vertical and self.platform == "wheeled":
                self._finish(status, None, 0.0, f"occluder at the {self.direction}: a wheeled robot cannot "
                                                "move up or down")
            else:
                self.view1 = crop
                self.phase = "after_step"
                if not self._move(self.step_m, status):
                    self._finish(status, None, 0.0, "motion refused")
        elif self.phase == "after_step":
            ratio = self.remover.ratio(self.view1, occ.face_crop(image, box)[0])
            distance = ratio * self.step_m
            self.get_logger().info(f"after the step: ratio {ratio:.2f} -> move {distance:.3f} m more")
            self.phase = "after_move"  # without a second move (ratio ~0) the next frame is judged as is
            if distance >= self.min_move_m and not self._move(distance, status):
                self._finish(status, None, 0.0, "motion refused")
        else:  # after_move: still not recognised
            self.rounds += 1
            if self.rounds >= self.max_rounds:
                self._finish(status, None, 0.0, f"not recognised after {self.rounds} rounds")
            else:
                self.phase = "observe"
        return face, real, status

    def _finish(self, status, identity, frc, reason):
        status.identity, status.identity_frc, status.reason = identity or UNKNOWN, float(frc), reason
        status.action = "stop" if identity is None else "stay"
        self.done, self.wait_until = True, time.monotonic() + self.hold_s
        self.get_logger().info(f"episode {self.episode}: {status.identity} (FRC {frc:.2f}) after {self.moves} "
                               f"moves: {reason}")

    def publish_results(self, result, header, image):
        face, real, status = result
        status.header = header
        self.status_pub.publish(status)
        detections = []
        if face is not None:
            name = (real.identity or UNKNOWN) if real is not None else UNKNOWN
            detections.append(Detection(face.box, real.frc if real is not None else 0.0, name))
        self.faces_pub.publish(detections_to_msg(detections, header))
        if status.identity:
            self.result_pub.publish(classification_to_msg([status.identity], [status.identity_frc], header))
        if self.publish_annotated:
            annotated = image.copy()
            if face is not None:
                draw_box(annotated, face.box, label=f"{detections[0].class_id} {detections[0].score:.2f} | "
                                                    f"{status.action} {self.direction or ''}")
            self.publish_annotated_image(annotated, header)


def main(args=None):
    run_node(OcclusionAwareFaceRecognitionNode, args)


if __name__ == "__main__":
    main()
