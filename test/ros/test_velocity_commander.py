"""The ROS half of the motion layer on real topics: a drone's vertical move is published as linear.z for
the planned time and ends with one zero command."""
import time

import pytest

pytestmark = [pytest.mark.ros]

pytest.importorskip("opendr_perception.ros.bridge")
from geometry_msgs.msg import Twist  # noqa: E402

from e2e_support import Probe, spin_for  # noqa: E402
from opendr_perception.core.motion import Vertical  # noqa: E402
from opendr_perception.ros.motion import VelocityCommander  # noqa: E402


def test_a_drone_descends_on_linear_z_then_stops(test_node):
    commander = VelocityCommander(test_node, platform="drone", max_linear=0.2, rate_hz=50.0, image_timeout=5.0)
    commands = Probe(test_node, Twist, "cmd_vel")
    spin_for(test_node, 0.3)
    commander.image_received()
    commander.set_person_tracked(True)
    started = time.monotonic()
    assert commander.request(Vertical(-0.04))  # 0.2 s at 0.2 m/s
    commands.wait_for(1, 5.0, lambda m: m.linear.z == 0.0 and m.linear.x == 0.0)
    moving = [m for m in commands.messages if m.linear.z != 0.0]
    assert moving and all(m.linear.z == pytest.approx(-0.2) and m.linear.x == m.linear.y == m.angular.z == 0.0
                          for m in moving)
    last = commands.messages[-1]
    assert last.linear.z == last.linear.x == last.linear.y == last.angular.z == 0.0
    assert 0.15 <= time.monotonic() - started < 3.0 and not commander.busy
