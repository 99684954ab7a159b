"""The ROS half of the motion layer: goals ("orbit 15 degrees", "forward 0.1 m") become velocity commands.

The planning, limits and watchdog are ROS-free (:mod:`opendr_perception.core.motion`); this module
publishes them on ``cmd_vel`` as ``geometry_msgs/Twist`` or ``TwistStamped`` (REP-103: linear.x
forward, linear.y left, linear.z up (drones), angular.z counter-clockwise) at a fixed rate while a goal runs, and a zero
command when it ends, when the camera stops (``image_timeout``), when no person is tracked, or when
the node shuts down. Nothing is published while idle, so it never fights another controller.
"""
from __future__ import annotations

from geometry_msgs.msg import Twist, TwistStamped

from opendr_perception.core.motion import (ZERO, MotionController, Platform, VelocityCommand, VelocityLimits,
                                           Watchdog)

PLATFORMS = {"wheeled": Platform.WHEELED, "drone": Platform.HOLONOMIC, "holonomic": Platform.HOLONOMIC}


class VelocityCommander:
    """Runs one motion goal at a time on ``cmd_vel``; the owning node feeds it images and tracking state."""

    def __init__(self, node, platform: str = "wheeled", max_linear: float = 0.2, max_angular: float = 0.5,
                 stamped: bool = False, frame_id: str = "base_link", rate_hz: float = 20.0,
                 image_timeout: float = 0.4, allow_blind_segments: bool = False):
        if platform not in PLATFORMS:
            raise ValueError(f"platform must be one of {sorted(PLATFORMS)}, not '{platform}'")
        self.node, self.stamped, self.frame_id = node, bool(stamped), frame_id
        self.controller = MotionController(PLATFORMS[platform], VelocityLimits(max_linear, max_angular),
                                           Watchdog(timeout_s=image_timeout),
                                           allow_blind_segments=allow_blind_segments)
        self.publisher = node.create_publisher(TwistStamped if self.stamped else Twist, "cmd_vel", 10)
        self._moving = False
        node.create_timer(1.0 / rate_hz, self._tick)

    @property
    def busy(self) -> bool:
        return self.controller.active

    def image_received(self) -> None:
        self.controller.watchdog.image_received()

    def set_person_tracked(self, tracked: bool) -> None:
        self.controller.watchdog.set_person_tracked(tracked)

    def request(self, goal) -> bool:
        """Start a goal (core.motion Orbit/Forward/Sideways/Turn/Vertical); False with the reason logged if refused."""
        started = self.controller.request(goal)
        if not started:
            self.node.get_logger().warning(f"motion refused: {self.controller.last_stop_reason}",
                                           throttle_duration_sec=2.0)
        return started

    def stop(self) -> None:
        """Cancel any goal and publish a zero command now."""
        self.controller.cancel()
        self._publish(ZERO)
        self._moving = False

    def _tick(self) -> None:
        command = self.controller.command()
        if command.is_zero:
            if self._moving:  # a goal just ended or was stopped by the watchdog
                self._publish(ZERO)
                self._moving = False
                if self.controller.last_stop_reason:
                    self.node.get_logger().warning(f"stopped: {self.controller.last_stop_reason}")
            return
        self._publish(command)
        self._moving = True

    def _publish(self, command: VelocityCommand) -> None:
        twist = Twist()
        twist.linear.x, twist.linear.y, twist.angular.z = command.linear_x, command.linear_y, command.angular_z
        twist.linear.z = command.linear_z
        if self.stamped:
            msg = TwistStamped(twist=twist)
            msg.header.stamp = self.node.get_clock().now().to_msg()
            msg.header.frame_id = self.frame_id
            self.publisher.publish(msg)
        else:
            self.publisher.publish(twist)
