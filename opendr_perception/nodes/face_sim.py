"""face_sim: a simulated room with people whose faces are real photos, seen by a robot's camera.

The robot (wheeled or a drone) follows ``cmd_vel``; the active face recognition nodes close the loop
through it, and tests use it as ground truth.

Subscribes: ``cmd_vel`` (geometry_msgs/Twist, or TwistStamped with cmd_vel_stamped:=true; a command older
            than ``cmd_timeout`` counts as zero)
Publishes:  ``image`` (sensor_msgs/Image bgr8) and ``camera_info`` (same header), ``odom``
            (nav_msgs/Odometry, odom -> base_link), ``/tf`` (odom -> base_link -> camera optical frame),
            ``~/ground_truth`` (std_msgs/String, JSON: each person's distance, bearing, facing angle and
            face box in the image) — for tests and evaluation only.
"""
import json
import math
from pathlib import Path

from geometry_msgs.msg import TransformStamped, Twist, TwistStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from opendr_perception.ros.bridge import numpy_to_image
from opendr_perception.ros.node_base import bringup_file, camera_qos, run_node

def scene_path(scene: str) -> Path:
    """A scene file: a path, or the name of a scene shipped in opendr_bringup/config/scenes."""
    path = Path(scene)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    shipped = bringup_file("config", "scenes", f"{scene}.yaml")
    if shipped is None:
        raise ValueError(f"scene '{scene}' is neither a YAML file nor a shipped scene")
    return shipped


def yaw_quaternion(yaw: float):
    return 0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)


class FaceSimNode(Node):
    def __init__(self):
        super().__init__("face_sim")
        from opendr_perception.sim.face_world import FaceWorld
        from opendr_perception.sim.scene import load_scene

        def param(name, default, description):
            return self.declare_parameter(name, default, ParameterDescriptor(
                description=description, read_only=True)).value

        scene = param("scene", "one_person", "Scene YAML file, or the name of a shipped scene")
        self.rate = param("rate_hz", 10.0, "Simulation and camera rate (Hz)")
        self.cmd_timeout = param("cmd_timeout", 0.5, "A velocity command older than this counts as zero (s)")
        self.odom_frame = param("odom_frame", "odom", "Fixed frame of the odometry")
        self.base_frame = param("base_frame", "base_link", "Robot frame")
        self.camera_frame = param("camera_frame", "camera_optical_frame", "Frame of the image (optical: z forward)")
        stamped = param("cmd_vel_stamped", False, "Subscribe to TwistStamped instead of Twist")
        self.world = FaceWorld(load_scene(scene_path(scene)))
        self.command = ((0.0, 0.0, 0.0), 0.0)
        self.command_time = None
        self.image_pub = self.create_publisher(Image, "image", camera_qos())
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", camera_qos())
        self.odom_pub = self.create_publisher(Odometry, "odom", 10)
        self.truth_pub = self.create_publisher(String, "~/ground_truth", 10)
        self.tf_pub = None
        try:
            from tf2_msgs.msg import TFMessage
            self.tf_pub = self.create_publisher(TFMessage, "/tf", 10)
        except ImportError:
            self.get_logger().warning("tf2_msgs is not available: no /tf")
        self.create_subscription(TwistStamped if stamped else Twist, "cmd_vel", self._on_cmd_vel, 10)
        self.create_timer(1.0 / self.rate, self._tick)
        self.get_logger().info(f"scene {scene}: {', '.join(p.name for p in self.world.scene.people)}")

    def _on_cmd_vel(self, msg):
        twist = msg.twist if isinstance(msg, TwistStamped) else msg
        values = (twist.linear.x, twist.linear.y, twist.linear.z, twist.angular.z)
        if not all(math.isfinite(v) for v in values):
            self.get_logger().warning("cmd_vel with NaN or infinity ignored", throttle_duration_sec=5.0)
            return
        self.command = ((twist.linear.x, twist.linear.y, twist.linear.z), twist.angular.z)
        self.command_time = self.get_clock().now()

    def _tick(self):
        try:
            self._simulate_and_publish()
        except Exception as e:  # noqa: BLE001 - one failed frame is logged; the simulation goes on
            self.get_logger().error(f"simulation step failed: {type(e).__name__}: {e}", throttle_duration_sec=5.0)

    def _simulate_and_publish(self):
        now = self.get_clock().now()
        fresh = self.command_time is not None and (now - self.command_time).nanoseconds * 1e-9 <= self.cmd_timeout
        linear, angular = self.command if fresh else ((0.0, 0.0, 0.0), 0.0)
        pose = self.world.step(linear=linear, angular_z=angular, dt=1.0 / self.rate)
        stamp = now.to_msg()
        image = numpy_to_image(self.world.render(), "bgr8")
        image.header.stamp, image.header.frame_id = stamp, self.camera_frame
        self.image_pub.publish(image)
        self.info_pub.publish(self._camera_info(image))
        self._publish_odometry(stamp, pose)
        truth = {p.name: self.world.person_in_view(p.name) for p in self.world.scene.people}
        self.truth_pub.publish(String(data=json.dumps(truth, default=_jsonable)))

    def _camera_info(self, image) -> CameraInfo:
        k = self.world.camera_matrix()
        info = CameraInfo(header=image.header, height=image.height, width=image.width,
                          distortion_model="plumb_bob", d=[0.0] * 5)
        info.k = [float(v) for v in k.ravel()]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [k[0, 0], 0.0, k[0, 2], 0.0, 0.0, k[1, 1], k[1, 2], 0.0, 0.0, 0.0, 1.0, 0.0]
        info.p = [float(v) for v in info.p]
        return info

    def _publish_odometry(self, stamp, pose):
        qx, qy, qz, qw = yaw_quaternion(pose.yaw)
        odom = Odometry()
        odom.header.stamp, odom.header.frame_id, odom.child_frame_id = stamp, self.odom_frame, self.base_frame
        p = odom.pose.pose
        p.position.x, p.position.y, p.position.z = pose.x, pose.y, pose.z
        p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = qx, qy, qz, qw
        vx, vy, vz, wz = self.world.twist  # what the robot achieved (walls and people stop it)
        odom.twist.twist.linear.x, odom.twist.twist.linear.y, odom.twist.twist.linear.z = vx, vy, vz
        odom.twist.twist.angular.z = wz
        self.odom_pub.publish(odom)
        if self.tf_pub is None:
            return
        from tf2_msgs.msg import TFMessage
        base = TransformStamped()
        base.header.stamp, base.header.frame_id, base.child_frame_id = stamp, self.odom_frame, self.base_frame
        t = base.transform
        t.translation.x, t.translation.y, t.translation.z = pose.x, pose.y, 0.0
        t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w = qx, qy, qz, qw
        camera = TransformStamped()  # base_link -> optical frame (z forward, x right, y down), camera pitch included
        camera.header.stamp, camera.header.frame_id, camera.child_frame_id = stamp, self.base_frame, self.camera_frame
        camera.transform.translation.z = pose.z
        _, world_from_optical = self.world.camera_pose()
        base_from_optical = Rotation.from_euler("z", -pose.yaw) * Rotation.from_matrix(world_from_optical)
        c = camera.transform.rotation
        c.x, c.y, c.z, c.w = (float(v) for v in base_from_optical.as_quat())
        self.tf_pub.publish(TFMessage(transforms=[base, camera]))


def _jsonable(value):
    if hasattr(value, "x_min"):
        return [value.x_min, value.y_min, value.x_max, value.y_max]
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def main(args=None):
    run_node(FaceSimNode, args)


if __name__ == "__main__":
    main()
