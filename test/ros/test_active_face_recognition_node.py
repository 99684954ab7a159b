"""active_face_recognition in closed loop with face_sim over real DDS.

From a start where the static recogniser fails (55 degrees round the person at 1.5 m: dlib distance
about 0.63-0.73 > 0.6), the node must move towards the frontal view and name the person: the current
position is scored by the renderer's round trip (like with like) and unrecognised views are ranked by
their nearest-match distance (see opendr_perception.core.active_face_recognition). The robot is told
to stop within 0.5 s when the camera stops, and malformed images are skipped.
"""
import json
import math
import time

import pytest
import yaml

pytestmark = [pytest.mark.ros, pytest.mark.e2e]

pytest.importorskip("opendr_perception.sim.face_world")
from geometry_msgs.msg import Twist  # noqa: E402
from opendr_interfaces.msg import ActiveRecognitionStatus  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from vision_msgs.msg import Classification  # noqa: E402

from e2e_support import (Probe, image_message, malformed_images, seconds_to_zero_velocity, spin_for,  # noqa: E402
                         wait_for_subscriber, write_astronaut_gallery)
from opendr_perception.core import samples  # noqa: E402
from opendr_perception.ros.node_base import camera_qos  # noqa: E402

START_ANGLE_DEG, DISTANCE = 55.0, 1.5


def write_scene(path, angle_deg=START_ANGLE_DEG):
    """The astronaut at the origin looking along -x; the drone DISTANCE from her face centre, angle_deg
    round it (on her left), at face height and facing her (the simulator's own geometry: pose_facing)."""
    from opendr_perception.sim.face_world import FaceWorld
    from opendr_perception.sim.scene import Scene

    scene = {"room_size": 8.0, "camera": {"width": 640, "height": 480, "fov_y_deg": 60.0},
             "robot": {"kind": "drone", "x": -DISTANCE, "y": 0.0, "z": 1.57, "yaw_deg": 0.0},
             "people": [{"name": "eileen_collins", "photo": "astronaut", "x": 0.0, "y": 0.0, "yaw_deg": 180.0,
                         "height": 1.69}]}
    with FaceWorld(Scene.from_dict(scene)) as world:
        pose = world.pose_facing("eileen_collins", DISTANCE, math.radians(angle_deg))
    scene["robot"].update(x=pose.x, y=pose.y, z=pose.z, yaw_deg=math.degrees(pose.yaw))
    path.write_text(yaml.safe_dump(scene))
    return path


def start_loop(start_process, test_node, tmp_path, angle_deg=START_ANGLE_DEG, **params):
    """The active node first, then (once its outputs are discovered) the simulator that feeds it.

    Returns the processes and probes of its status, result and velocity commands."""
    node = start_process("active_face_recognition", params={
        "gallery_path": str(write_astronaut_gallery(tmp_path / "gallery.npz")), "platform": "drone", "step_deg": 15.0,
        "max_steps": 3, "max_linear": 0.4, "max_angular": 0.8, "hold_time": 60.0, **params})
    probes = {"status": Probe(test_node, ActiveRecognitionStatus, "/active_face_recognition/status"),
              "result": Probe(test_node, Classification, "recognized", latched=True),
              "cmd_vel": Probe(test_node, Twist, "cmd_vel"),
              "truth": Probe(test_node, String, "/face_sim/ground_truth")}
    deadline = time.monotonic() + 60
    while not all(test_node.count_publishers(t) for t in ("/active_face_recognition/status", "/cmd_vel")):
        assert node.alive() and time.monotonic() < deadline, node.log()[-3000:]
        spin_for(test_node, 0.1)
    spin_for(test_node, 0.5)
    sim = start_process("face_sim", params={"scene": str(write_scene(tmp_path / "scene.yaml", angle_deg))})
    return sim, node, probes


def episode(node, probes, timeout=60.0):
    status, result = probes["status"], probes["result"]
    result.wait_for(1, timeout)
    assert result.messages, f"no result within {timeout} s\n{node.log()[-3000:]}"
    decisions = [s for s in status.messages if s.action in ("stay", "move_left", "move_right", "stop")]
    return decisions, result.messages[0].results[0]


def camera_azimuth(truth_msg) -> float:
    """Where the camera is round the person (degrees, + = on her left), from face_sim's ground truth."""
    return json.loads(truth_msg.data)["eileen_collins"]["camera_azimuth_deg"]


def test_episode_from_a_failing_start_moves_towards_the_front_and_names_the_person(
        start_process, test_node, tmp_path):
    sim, node, probes = start_loop(start_process, test_node, tmp_path)  # 55 degrees on her left
    started = time.monotonic()
    decisions, final = episode(node, probes)
    elapsed = time.monotonic() - started
    for d in decisions:  # shown with pytest -rP
        print(f"position {d.position}: real {d.real_identity or 'unknown'} FRC {d.real_frc:.2f}, renders "
              f"{dict(zip(d.synthesized_offsets_deg, (round(f, 2) for f in d.synthesized_frc)))} -> {d.action}")
    print(f"result {final.class_id} FRC {final.score:.2f} after {elapsed:.1f} s")
    first = decisions[0]
    assert first.position == 0 and first.real_identity == "" and first.real_frc == 0.0, \
        "the start must be one the static recogniser fails on"
    assert sorted(first.synthesized_offsets_deg) == [-15.0, 15.0]
    # The camera is on her left, so she is seen turned to her right (pan < 0): the +θ render is the
    # more frontal one, and realising it is a clockwise orbit that brings the camera round to her front.
    assert first.action == "move_right", node.log()[-3000:]
    assert final.class_id == "eileen_collins", node.log()[-3000:]
    assert final.score == pytest.approx(max(d.real_frc for d in decisions)) and final.score > 0
    truth = probes["truth"]
    truth.wait_for(1, 5.0)
    assert camera_azimuth(truth.messages[0]) == pytest.approx(START_ANGLE_DEG, abs=2.0)
    assert camera_azimuth(truth.messages[-1]) <= START_ANGLE_DEG - 10.0  # it orbited towards her front
    assert elapsed < 60.0 and sim.alive() and node.alive()


def test_stops_within_half_a_second_when_the_camera_stops(start_process, test_node, tmp_path):
    # From 55 degrees the robot moves (test above); slow speeds make the move long enough to cut the
    # camera in the middle of it.
    sim, node, probes = start_loop(start_process, test_node, tmp_path, max_linear=0.05, max_angular=0.1)
    images = Probe(test_node, Image, "image", reliable=False)
    commands = probes["cmd_vel"]
    commands.wait_for(1, 120, lambda m: abs(m.linear.y) > 0 or abs(m.angular.z) > 0)
    assert commands.messages, f"the robot never moved\n{node.log()[-3000:]}"
    first = next(m for m in commands.messages if abs(m.linear.y) > 0 or abs(m.angular.z) > 0)
    assert first.angular.z < 0 < first.linear.y  # the +θ move: clockwise round her = to its left, yawing right
    sim.stop()  # the camera stops mid-move
    spin_for(test_node, 0.2)
    stopped_after = seconds_to_zero_velocity(test_node, images, commands)
    assert stopped_after is not None, node.log()[-3000:]
    assert stopped_after <= 0.5 + 0.05  # 0.05 s for spinning this test's executor
    assert node.alive()


def test_malformed_images_are_skipped(start_process, test_node, tmp_path):
    node = start_process("active_face_recognition", params={
        "gallery_path": str(write_astronaut_gallery(tmp_path / "gallery.npz")), "platform": "drone"})
    publisher = test_node.create_publisher(Image, "image", camera_qos())
    status = Probe(test_node, ActiveRecognitionStatus, "/active_face_recognition/status")
    wait_for_subscriber(test_node, publisher, 60.0, node)
    spin_for(test_node, 0.5)
    good = samples.astronaut()
    for _, msg in malformed_images(good):
        publisher.publish(msg)
        spin_for(test_node, 0.3)  # one by one: a depth-1 input would otherwise keep only the last
    publisher.publish(image_message(good, test_node, frame_id="after_bad_input"))
    status.wait_for(1, 30.0, lambda m: m.header.frame_id == "after_bad_input")
    assert any(m.header.frame_id == "after_bad_input" for m in status.messages), node.log()[-3000:]
    assert all(m.header.frame_id == "after_bad_input" for m in status.messages)
    assert node.alive() and "bad image skipped" in node.log()
