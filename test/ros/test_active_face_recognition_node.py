"""active_face_recognition in closed loop with face_sim over real DDS.

Each episode recognises the real view, renders the face rotated both ways, decides, and reports the
identity of the best real view; the robot is told to stop within 0.5 s when the camera stops.

Measured limit (see the closing note of the issue): with the project's mesh renderer a render loses
more identity (about 0.1 in dlib distance at 15 degrees) than the 15 degree turn gains, so from a
start where the static recogniser fails (55 degrees) the seed's rule stays put, and the episode ends
unknown; these tests assert the loop's mechanics and that it never names the wrong person.
"""
import math
import time

import pytest
import yaml

pytestmark = [pytest.mark.ros, pytest.mark.e2e]

pytest.importorskip("opendr_perception.sim.face_world")
from geometry_msgs.msg import Twist  # noqa: E402
from opendr_interfaces.msg import ActiveRecognitionStatus  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Classification  # noqa: E402

from e2e_support import Probe, spin_for  # noqa: E402
from opendr_perception.core import samples  # noqa: E402
from opendr_perception.core.face_gallery import FaceGallery  # noqa: E402
from opendr_perception.models.face_detection import FaceDetector  # noqa: E402
from opendr_perception.models.face_recognition import DlibResNetEmbedder  # noqa: E402

START_ANGLE_DEG, DISTANCE = 55.0, 1.5


def write_scene(path, angle_deg=START_ANGLE_DEG):
    """The astronaut at the origin looking along -x; the drone DISTANCE away, angle_deg round her, facing her."""
    angle = math.radians(180.0 + angle_deg)
    x, y = DISTANCE * math.cos(angle), DISTANCE * math.sin(angle)
    scene = {"room_size": 8.0, "camera": {"width": 640, "height": 480, "fov_y_deg": 60.0},
             "robot": {"kind": "drone", "x": x, "y": y, "z": 1.57, "yaw_deg": math.degrees(math.atan2(-y, -x))},
             "people": [{"name": "eileen_collins", "photo": "astronaut", "x": 0.0, "y": 0.0, "yaw_deg": 180.0,
                         "height": 1.69}]}
    path.write_text(yaml.safe_dump(scene))
    return path


def write_gallery(path):
    photo = samples.astronaut()
    embedder = DlibResNetEmbedder()
    gallery = FaceGallery(embedder.name, embedder.default_threshold, dim=embedder.dim)
    face, = FaceDetector("full_range").detect(photo)
    gallery.enroll("eileen_collins", embedder.embed(photo, face.box))
    gallery.save(path)
    return path


def start_loop(start_process, test_node, tmp_path, angle_deg=START_ANGLE_DEG, **params):
    """The active node first, then (once its outputs are discovered) the simulator that feeds it.

    Returns the processes and probes of its status, result and velocity commands."""
    node = start_process("active_face_recognition", params={
        "gallery_path": str(write_gallery(tmp_path / "gallery.npz")), "platform": "drone", "step_deg": 15.0,
        "max_steps": 3, "max_linear": 0.4, "max_angular": 0.8, "hold_time": 60.0, **params})
    probes = {"status": Probe(test_node, ActiveRecognitionStatus, "/active_face_recognition/status"),
              "result": Probe(test_node, Classification, "/active_face_recognition/result", latched=True),
              "cmd_vel": Probe(test_node, Twist, "cmd_vel")}
    deadline = time.monotonic() + 60
    while not all(test_node.count_publishers(t) for t in ("/active_face_recognition/status", "/cmd_vel")):
        assert node.alive() and time.monotonic() < deadline, node.log()[-3000:]
        spin_for(test_node, 0.1)
    spin_for(test_node, 0.5)
    sim = start_process("face_sim", params={"scene": str(write_scene(tmp_path / "scene.yaml", angle_deg))})
    return sim, node, probes


def episode(node, probes):
    status, result = probes["status"], probes["result"]
    result.wait_for(1, 120)
    assert result.messages, f"no result\n{node.log()[-3000:]}"
    decisions = [s for s in status.messages if s.action in ("stay", "move_left", "move_right", "stop")]
    return decisions, result.messages[0].results[0]


def test_episode_names_the_person_from_a_recognisable_start(start_process, test_node, tmp_path):
    sim, node, probes = start_loop(start_process, test_node, tmp_path, angle_deg=30.0)
    decisions, final = episode(node, probes)
    first = decisions[0]
    assert first.position == 0 and first.real_identity == "eileen_collins" and first.real_frc > 0
    assert len(first.synthesized_frc) == 2 and sorted(first.synthesized_offsets_deg) == [-15.0, 15.0]
    assert final.class_id == "eileen_collins" and final.score == pytest.approx(max(d.real_frc for d in decisions))
    assert sim.alive() and node.alive()


def test_episode_never_names_the_wrong_person(start_process, test_node, tmp_path):
    sim, node, probes = start_loop(start_process, test_node, tmp_path)  # 55 degrees: the static recogniser fails
    decisions, final = episode(node, probes)
    assert decisions[0].real_identity == "", "the start must be one the static recogniser fails on"
    assert final.class_id in ("eileen_collins", "unknown")
    assert node.alive()


def test_stops_within_half_a_second_when_the_camera_stops(start_process, test_node, tmp_path):
    # A looser recognition threshold makes a render beat the real view at 55 degrees, so the robot moves;
    # slow speeds make the move long enough to cut the camera in the middle of it.
    sim, node, probes = start_loop(start_process, test_node, tmp_path, threshold=0.75, max_linear=0.05,
                                   max_angular=0.1)
    images = Probe(test_node, Image, "image", reliable=False)
    commands = probes["cmd_vel"]
    commands.wait_for(1, 120, lambda m: abs(m.linear.y) > 0 or abs(m.angular.z) > 0)
    assert commands.messages, f"the robot never moved\n{node.log()[-3000:]}"
    sim.stop()  # the camera stops mid-move
    spin_for(test_node, 0.2)
    last_image = time.monotonic()
    seen = len(images.messages)
    deadline = time.monotonic() + 3.0
    zero_at = None
    while time.monotonic() < deadline and zero_at is None:
        spin_for(test_node, 0.01)
        if len(images.messages) > seen:  # frames still in flight: restart the clock
            seen, last_image = len(images.messages), time.monotonic()
        latest = commands.messages[-1]
        if latest.linear.x == latest.linear.y == latest.angular.z == 0.0:
            zero_at = time.monotonic()
    assert zero_at is not None, node.log()[-3000:]
    assert zero_at - last_image <= 0.5 + 0.05  # 0.05 s for spinning this test's executor
    assert node.alive()
