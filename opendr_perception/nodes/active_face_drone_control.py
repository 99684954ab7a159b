"""active_face_drone_control: a learned policy moves the camera drone to where the face is recognised
(OpenDR D3.3 section 2.2, DRL active vision control).

Each decision: the camera image, resized to the policy's 400x300 RGB input, goes through the seed's
actor-critic network (:class:`~opendr_perception.models.active_vision_policy.ActiveVisionNet`); its
action (argmax of the softmax, or a sample with ``deterministic:=false``) is executed by the motion
layer (:class:`~opendr_perception.ros.motion.VelocityCommander`): FORWARD / BACKWARD ``step_m``
(0.1 m), LEFT / RIGHT an arc of ``arc_deg`` around a person ``arc_radius`` ahead (LEFT: the drone
moves to its left and yaws right, as in the training simulator), STAY no motion. Only on STAY the
face detector and recogniser run (the seed's: no detector in the control loop); the next decision
waits until a move is done and ``settle_time`` has passed.

There is no detector in the loop, so the motion layer's "no person tracked" stop does not apply
here (the policy decides from the raw image); its camera watchdog does: the drone gets a zero
command within ``image_timeout`` (0.4 s) when images stop, and on shutdown.

Subscribes: ``image`` (sensor_msgs/Image, sensor QoS depth 1; ``image/compressed`` with
            image_transport:=compressed)
Publishes:  ``cmd_vel`` (geometry_msgs/Twist, or TwistStamped with cmd_vel_stamped:=true; only while
            moving, then one zero command), ``~/action`` (vision_msgs/Classification, every decision:
            the 5 actions ``stay, forward, backward, left, right`` with the policy's probabilities,
            the chosen one first when deterministic), on STAY ``faces`` (vision_msgs/Detection2DArray:
            every detected face, class_id = the gallery person or ``unknown``, score = FRC) and
            ``recognized`` (vision_msgs/Classification: the face with the highest FRC, name and FRC;
            only when a face was found), ``~/annotated_image``.

The policy: a registry model name (default ``active_vision_policy``, see its card) or a
``.safetensors`` file with its ``.json`` next to it (``opendr-train-active-vision``). The gallery is
the face_recognition node's (``gallery_path``; ``enroll_dir`` adds a folder of photos).
"""
import math
import time

import cv2
import torch
from vision_msgs.msg import Classification, Detection2DArray

from opendr_perception.core.drawing import draw_detections
from opendr_perception.core.motion import Forward, Orbit
from opendr_perception.core.types import Detection
from opendr_perception.models.active_vision_policy import (ACTION_NAMES, BACKWARD, FORWARD, LEFT, RIGHT, STAY,
                                                            load_policy, to_tensor)
from opendr_perception.models.face_detection import FaceDetector
from opendr_perception.models.face_recognition import build_recognizer
from opendr_perception.nodes.face_recognition import UNKNOWN, default_gallery_path
from opendr_perception.ros.bridge import classification_to_msg, detections_to_msg
from opendr_perception.ros.motion import VelocityCommander
from opendr_perception.ros.node_base import ImageNode, run_node


class ActiveFaceDroneControlNode(ImageNode):
    def __init__(self):
        super().__init__("active_face_drone_control")
        self.policy_ref = self.param("policy", "active_vision_policy",
                                     "Policy: a registered model name or a .safetensors file (its .json next to it)")
        self.deterministic = self.param("deterministic", True, "Take the most probable action (false: sample)")
        self.gallery_path = self.param("gallery_path", "", "Gallery of face_recognition ('': its default file)") \
            or default_gallery_path()
        self.enroll_dir = self.param("enroll_dir", "", "Folder tree <person>/<images> enrolled at start ('' none)")
        self.threshold = self.param("threshold", 0.0, "Recognition distance threshold (0: the embedder's own)")
        self.step_m = self.param("step_m", 0.1, "Distance of a forward/backward action (m; seed 0.1)")
        self.arc_deg = self.param("arc_deg", 10.0, "Angle of a left/right arc around the person (degrees)")
        self.arc_radius = self.param("arc_radius", 1.5, "Radius of the arcs: the assumed distance to the person (m)")
        self.settle_s = self.param("settle_time", 0.2, "Wait after a move before the next decision (s)")
        self.commander = VelocityCommander(
            self, platform=self.param("platform", "drone", "drone/holonomic (arc = one lateral + yaw motion) "
                                      "or wheeled (arc = turn, drive, turn back)"),
            max_linear=self.param("max_linear", 0.2, "Largest linear speed (m/s)"),
            max_angular=self.param("max_angular", 0.5, "Largest angular speed (rad/s)"),
            stamped=self.param("cmd_vel_stamped", False, "Publish TwistStamped instead of Twist on cmd_vel"),
            image_timeout=self.param("image_timeout", 0.4, "Stop moving when no image came for this long (s)"),
            allow_blind_segments=True)
        self.action_pub = self.create_publisher(Classification, "~/action", 10)
        self.faces_pub = self.create_publisher(Detection2DArray, "faces", 10)
        self.recognized_pub = self.create_publisher(Classification, "recognized", 10)
        self.generator = torch.Generator().manual_seed(0)
        self.moving = False
        self.wait_until = 0.0

    def load_model(self):
        net, info = load_policy(self.policy_ref)
        self.get_logger().info(f"policy {self.policy_ref}: {info.get('metadata', {}).get('note', '')}, "
                               f"input {net.width}x{net.height}")
        self.detector = FaceDetector("full_range")
        self.recognizer = build_recognizer(self.gallery_path, self.threshold, self.enroll_dir, self.detector.detect,
                                           log=self.get_logger().info)
        return net.to(self.device)

    def on_shutdown(self):
        self.commander.stop()

    def infer(self, image):
        """``(action, probabilities, faces)``, or None while a move runs or settles (no decision)."""
        self.commander.image_received()
        self.commander.set_person_tracked(True)  # the policy, not a detector, decides (see the module doc)
        now = time.monotonic()
        if self.moving:
            if self.commander.busy:
                return None
            self.moving, self.wait_until = False, now + self.settle_s
        if now < self.wait_until:
            return None
        net = self.model
        rgb = cv2.resize(image, (net.width, net.height), interpolation=cv2.INTER_AREA)[:, :, ::-1]
        with torch.no_grad():
            probs = net(to_tensor(rgb.copy(), self.device))[0][0].float().cpu()
        action = int(probs.argmax()) if self.deterministic else int(torch.multinomial(probs, 1, generator=self.generator))
        faces = None
        if action == STAY:
            found = self.detector.detect(image)
            recognitions = self.recognizer.recognize_many(image, [f.box for f in found]) if found else []
            faces = [Detection(f.box, r.frc, r.identity or UNKNOWN, f.landmarks, f.landmark_names)
                     for f, r in zip(found, recognitions)]
        else:
            goal = {FORWARD: Forward(self.step_m), BACKWARD: Forward(-self.step_m),
                    LEFT: Orbit(-math.radians(self.arc_deg), self.arc_radius),
                    RIGHT: Orbit(math.radians(self.arc_deg), self.arc_radius)}[action]
            self.moving = self.commander.request(goal)
        return action, probs.tolist(), faces

    def publish_results(self, result, header, image):
        if result is None:
            return
        action, probs, faces = result
        msg = classification_to_msg(ACTION_NAMES, probs, header)
        if msg.results[0].class_id != ACTION_NAMES[action]:  # a sampled action: put the chosen one first
            chosen = [r for r in msg.results if r.class_id == ACTION_NAMES[action]]
            msg.results = chosen + [r for r in msg.results if r.class_id != ACTION_NAMES[action]]
        self.action_pub.publish(msg)
        if faces is not None:
            self.faces_pub.publish(detections_to_msg(faces, header))
            if faces:
                best = max(faces, key=lambda f: f.score)
                self.recognized_pub.publish(classification_to_msg([best.class_id], [best.score], header))
        if self.publish_annotated:
            annotated = draw_detections(image, faces or [])
            cv2.putText(annotated, f"{ACTION_NAMES[action]} {probs[action]:.2f}", (10, 30), cv2.FONT_HERSHEY_SIMPLEX,
                        0.9, (0, 255, 0), 2)
            self.publish_annotated_image(annotated, header)


def main(args=None):
    run_node(ActiveFaceDroneControlNode, args)


if __name__ == "__main__":
    main()
