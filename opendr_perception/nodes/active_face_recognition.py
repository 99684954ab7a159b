"""active_face_recognition: move around a person to a view where the face is recognised better
(OpenDR D3.3 section 2.1, active recognition through synthesized views).

At each position the node recognises the real face, renders it rotated by -θ/+θ in pan (a textured
3D face mesh fitted to the image), and orbits θ towards the view the recogniser prefers, for at most
``max_steps`` moves in one direction; the identity is that of the REAL image with the highest
confidence among the visited positions. The current position competes with the renders by the
same renderer's round trip (out to ±θ and back) and views are ranked by FRC, then by the nearest
gallery distance (so a start where nobody is recognised still moves), see
``opendr_perception.core.active_face_recognition``; ``compare_round_trip:=false`` restores the
seed's comparison with the real image.

Subscribes: ``image``, ``camera_info`` (sensor_msgs/CameraInfo, optional: focal length for the distance
            to the person; else ``default_distance``)
Publishes:  ``cmd_vel`` (Twist, or TwistStamped with cmd_vel_stamped), ``~/status``
            (opendr_interfaces/ActiveRecognitionStatus, every decision), ``recognized``
            (vision_msgs/Classification: identity or ``unknown``, score = FRC; once per episode, latched),
            ``~/annotated_image``.
"""
import math
import time

from opendr_interfaces.msg import ActiveRecognitionStatus
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import CameraInfo
from vision_msgs.msg import Classification

from opendr_perception.core.active_face_recognition import (ActiveFaceRecognition, ActiveRecognitionConfig,
                                                            RealView, orbit_deg)
from opendr_perception.core.drawing import draw_box
from opendr_perception.core.motion import Orbit
from opendr_perception.models.face_detection import FaceDetector
from opendr_perception.models.face_recognition import build_recognizer
from opendr_perception.models.view_synthesis import ViewSynthesizer, score_candidates
from opendr_perception.nodes.face_recognition import UNKNOWN, default_gallery_path
from opendr_perception.ros.bridge import classification_to_msg
from opendr_perception.ros.motion import VelocityCommander
from opendr_perception.ros.node_base import ImageNode, camera_qos, run_node


class ActiveFaceRecognitionNode(ImageNode):
    def __init__(self):
        super().__init__("active_face_recognition")
        self.config = ActiveRecognitionConfig(
            step_deg=self.param("step_deg", 15.0, "Pan step θ of a move and of the synthesized views (degrees)"),
            max_steps=self.param("max_steps", 2, "Moves at most per episode (N)"),
            confidence_threshold=self.param("confidence_threshold", 0.5, "FRC above which the robot stops early"))
        self.gallery_path = self.param("gallery_path", "", "Gallery of face_recognition ('': its default file)") \
            or default_gallery_path()
        self.threshold = self.param("threshold", 0.0, "Recognition distance threshold (0: the embedder's own)")
        self.compare_round_trip = self.param(
            "compare_round_trip", True, "Score the current position by the renderer's round trip (like with like); "
            "false: by the real image, as the seed")
        self.face_width_m = self.param("face_width_m", 0.16, "Typical face width, for the distance to the person")
        self.default_distance = self.param("default_distance", 1.5, "Distance to the person without camera_info (m)")
        self.settle_s = self.param("settle_time", 0.3, "Wait after a move before the next capture (s)")
        self.hold_s = self.param("hold_time", 5.0, "Keep a result this long before a new episode (s)")
        self.commander = VelocityCommander(
            self, platform=self.param("platform", "wheeled", "wheeled (orbit = turn, arc, turn) or drone"),
            max_linear=self.param("max_linear", 0.2, "Largest linear speed (m/s)"),
            max_angular=self.param("max_angular", 0.5, "Largest angular speed (rad/s)"),
            stamped=self.param("cmd_vel_stamped", False, "Publish TwistStamped instead of Twist on cmd_vel"),
            image_timeout=self.param("image_timeout", 0.4, "Stop moving when no image came for this long (s)"),
            allow_blind_segments=True)  # a wheeled orbit turns away from the person by design
        self.status_pub = self.create_publisher(ActiveRecognitionStatus, "~/status", 10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)  # late joiners get the last result
        self.result_pub = self.create_publisher(Classification, "recognized", latched)
        self.fx = None
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, camera_qos())
        self.machine = ActiveFaceRecognition(self.config)
        self.episode = 0
        self.moving = False
        self.pending = None  # the move decided on the last frame
        self.wait_until = 0.0

    def load_model(self):
        self.detector = FaceDetector("full_range")
        self.synthesizer = ViewSynthesizer()
        return build_recognizer(self.gallery_path, self.threshold, log=self.get_logger().info)

    def _on_camera_info(self, msg):
        self.fx = float(msg.k[0]) if msg.k[0] > 0 else None

    def on_shutdown(self):
        self.commander.stop()

    def distance_to(self, face) -> float:
        if self.fx is None or face.box.width <= 1:
            return self.default_distance
        return self.fx * self.face_width_m / face.box.width

    def infer(self, image):
        now = time.monotonic()
        faces = self.detector.detect(image)
        face = max(faces, key=lambda f: f.box.area) if faces else None
        self.commander.image_received()
        self.commander.set_person_tracked(face is not None)
        status = ActiveRecognitionStatus(episode=self.episode, position=self.machine.position)
        if self.pending is not None:  # start the move decided on the last frame now, on a fresh one
            goal, self.pending = self.pending, None
            if self.commander.request(goal):
                self.moving = True
                status.action = "moving"
            else:
                self._finish(status, None, abort=True)
            return face, status
        if self.moving:
            if self.commander.busy:
                status.action = "moving"
                return face, status
            self.moving, self.wait_until = False, now + self.settle_s
        if now < self.wait_until:
            status.action = "settling" if not self.machine.done else "holding"
            return face, status
        if self.machine.done:  # the hold time of the last result is over: a new episode
            self.machine.reset()
            self.episode += 1
            status.episode, status.position = self.episode, 0
        if face is None:
            status.action = "waiting"
            return None, status
        real = RealView.from_recognition(self.model.recognize(image, face.box))
        status.real_identity, status.real_frc = real.identity or "", real.frc
        step = self.config.step_deg
        scores = score_candidates(self.synthesizer, self.model.recognize, image, face,
                                  self.machine.views_to_render(real.frc), step, round_trip=self.compare_round_trip)
        for direction, error in scores.errors.items():  # no usable mesh (profile, blur): counts as unrecognised
            self.get_logger().debug(f"no {direction * step:+.0f} deg view: {error}")
        for direction, score in scores.synthesized.items():
            status.synthesized_offsets_deg.append(float(direction * step))
            status.synthesized_frc.append(float(score.frc))
        decision = self.machine.step(real, scores.synthesized, scores.current)
        self.get_logger().info(
            f"position {decision.position}: real d={real.distance:.3f}, round trip "
            f"{'-' if scores.current is None else f'{scores.current.distance:.3f}'}, renders "
            + ", ".join(f"{d * step:+.0f}: {s.distance:.3f}" for d, s in scores.synthesized.items())
            + f" -> {decision.action.value}")
        status.position, status.offset_deg, status.action = decision.position, decision.offset_deg, decision.action.value
        if decision.done:
            self._finish(status, decision.reason)
        else:  # requested on the next frame: deciding takes longer than image_timeout (renders, embeddings),
            # and the watchdog must judge the camera by a frame that came after it
            self.pending = Orbit(math.radians(orbit_deg(decision.move_deg)), self.distance_to(face))
        return face, status

    def _finish(self, status, reason, abort=False):
        result = self.machine.abort() if abort else self.machine.result()
        status.reason = (result.reason.value if result.reason else "") if reason is None else reason.value
        status.identity, status.identity_frc = result.identity or UNKNOWN, result.frc
        self.wait_until = time.monotonic() + self.hold_s
        self.get_logger().info(f"episode {self.episode}: {status.identity} (FRC {result.frc:.2f}) after "
                               f"{result.moves} moves, {status.reason}")

    def publish_results(self, result, header, image):
        face, status = result
        status.header = header
        self.status_pub.publish(status)
        if status.identity:
            self.result_pub.publish(classification_to_msg([status.identity], [status.identity_frc], header))
        if self.publish_annotated:
            annotated = image.copy()
            if face is not None:
                label = f"{status.real_identity or UNKNOWN} {status.real_frc:.2f} | {status.action}"
                draw_box(annotated, face.box, label=label)
            self.publish_annotated_image(annotated, header)


def main(args=None):
    run_node(ActiveFaceRecognitionNode, args)


if __name__ == "__main__":
    main()
