"""The first nodes as separate processes over real DDS: content on real photos, headers, rates, bad input."""
import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.e2e]

pytest.importorskip("opendr_perception.ros.bridge")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from hri_msgs.msg import IdsList, NormalizedRegionOfInterest2D  # noqa: E402
from opendr_interfaces.msg import HumanPose2DArray  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from e2e_support import Probe, image_message, malformed_images, spin_for, wait_for_subscriber  # noqa: E402
from opendr_perception.core import samples  # noqa: E402
from opendr_perception.core.types import BoundingBox  # noqa: E402
from opendr_perception.ros.bridge import detections_from_msg, image_to_numpy, poses_from_msg  # noqa: E402
from opendr_perception.ros.node_base import camera_qos  # noqa: E402

STARTUP_TIMEOUT = 60.0
OUTPUT_TIMEOUT = 30.0
# Where the astronaut's face and body are in skimage's 512x512 photo (checked by eye).
ASTRONAUT_FACE = BoundingBox(150, 30, 290, 200)


def stamp_ns(header):
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def send_and_collect(node, publisher, probe, frames, timeout=OUTPUT_TIMEOUT):
    """Publish frames one at a time, each after the previous one's output arrived; returns (inputs, outputs)."""
    sent = []
    for i, frame in enumerate(frames):
        msg = image_message(frame, node, frame_id=f"camera_{i}")
        sent.append(msg)
        publisher.publish(msg)
        probe.wait_for(len(sent), timeout)
    return sent, probe.messages


def start_node(start_process, test_node, name, params=None, msg_type=Detection2DArray, topic="faces"):
    proc = start_process(name, params={"publish_annotated": True, **(params or {})})
    publisher = test_node.create_publisher(Image, "image", camera_qos())
    probe = Probe(test_node, msg_type, topic)
    wait_for_subscriber(test_node, publisher, STARTUP_TIMEOUT, proc)
    spin_for(test_node, 0.5)  # let the node's publishers match ours
    return proc, publisher, probe


@pytest.mark.smoke
def test_face_detection_finds_the_faces_with_input_headers(start_process, test_node):
    proc, pub, probe = start_node(start_process, test_node, "face_detection", {"rep155": True})
    annotated = Probe(test_node, Image, "/face_detection/annotated_image")
    tracked = Probe(test_node, IdsList, "/humans/faces/tracked")
    frames = [samples.astronaut(), samples.grace_hopper(), next(iter(samples.no_people_photos().values()))]
    sent, outputs = send_and_collect(test_node, pub, probe, frames)
    assert len(outputs) == len(sent), proc.log()
    for msg_in, msg_out in zip(sent, outputs):
        assert msg_out.header.frame_id == msg_in.header.frame_id
        assert stamp_ns(msg_out.header) == stamp_ns(msg_in.header)
    faces = [detections_from_msg(m) for m in outputs]
    assert len(faces[0]) == 1 and faces[0][0].class_id == "face"
    assert ASTRONAUT_FACE.contains(*faces[0][0].box.center)
    assert len(faces[1]) == 1 and len(faces[2]) == 0
    annotated.wait_for(3, OUTPUT_TIMEOUT)
    assert {stamp_ns(m.header) for m in annotated.messages} == {stamp_ns(m.header) for m in sent}
    drawn = image_to_numpy(annotated.messages[0], "bgr8")
    assert drawn.shape == frames[0].shape and not np.array_equal(drawn, frames[0])
    tracked.wait_for(3, OUTPUT_TIMEOUT)
    face_id = tracked.messages[0].ids[0]
    roi = Probe(test_node, NormalizedRegionOfInterest2D, f"/humans/faces/{face_id}/roi")
    pub.publish(image_message(frames[0], test_node))
    roi.wait_for(1, OUTPUT_TIMEOUT)
    assert roi.messages and 0 <= roi.messages[0].xmin < roi.messages[0].xmax <= 1
    assert proc.alive()


def test_pose_estimation_keypoints_and_face_agree(start_process, test_node):
    """Two nodes on the same frames: the pose's nose lies in the face node's box, keypoints in the person box."""
    face_proc = start_process("face_detection")
    pose_proc = start_process("pose_estimation")
    pub = test_node.create_publisher(Image, "image", camera_qos())
    faces = Probe(test_node, Detection2DArray, "faces")
    poses = Probe(test_node, HumanPose2DArray, "poses")
    wait_for_subscriber(test_node, pub, STARTUP_TIMEOUT, [face_proc, pose_proc], count=2)
    spin_for(test_node, 0.5)
    frames = [samples.astronaut(), samples.grace_hopper()]
    sent, outputs = send_and_collect(test_node, pub, poses, frames)
    faces.wait_for(len(sent), OUTPUT_TIMEOUT)
    assert len(outputs) == len(sent), pose_proc.log()
    faces_by_stamp = {stamp_ns(m.header): detections_from_msg(m) for m in faces.messages}
    for msg_in, msg_out in zip(sent, outputs):
        assert (stamp_ns(msg_out.header), msg_out.header.frame_id) == (stamp_ns(msg_in.header), msg_in.header.frame_id)
        people = poses_from_msg(msg_out)
        assert len(people) == 1
        person = people[0]
        assert person.layout == "coco18" and person.keypoints.shape == (18, 3) and person.person_id >= 0
        assert msg_out.poses[0].keypoints[0].name == "nose"
        confident = person.keypoints[person.keypoints[:, 2] > 0.5]
        assert len(confident) >= 5
        grown = BoundingBox(person.box.x_min - 2, person.box.y_min - 2, person.box.x_max + 2, person.box.y_max + 2)
        assert all(grown.contains(x, y) for x, y, _ in confident)
        face, = faces_by_stamp[stamp_ns(msg_in.header)]
        nose = person.keypoints[0]
        assert nose[2] > 0.5 and face.box.contains(nose[0], nose[1])


def test_high_resolution_pose_finds_a_small_person_in_a_1080p_frame(start_process, test_node):
    proc, pub, probe = start_node(start_process, test_node, "high_resolution_pose_estimation",
                                  msg_type=HumanPose2DArray, topic="poses")
    photo = samples.astronaut()
    frame = samples.paste_on_canvas(photo, (1920, 1080), position="bottom-right")
    x0, y0 = 1920 - photo.shape[1], 1080 - photo.shape[0]
    sent, outputs = send_and_collect(test_node, pub, probe, [frame, frame])
    assert len(outputs) == 2, proc.log()
    for msg_in, msg_out in zip(sent, outputs):
        assert stamp_ns(msg_out.header) == stamp_ns(msg_in.header)
        people = poses_from_msg(msg_out)
        assert len(people) == 1
        confident = people[0].keypoints[people[0].keypoints[:, 2] > 0.5]
        assert len(confident) >= 5
        assert (confident[:, 0] >= x0 - 5).all() and (confident[:, 1] >= y0 - 5).all()
        assert ASTRONAUT_FACE.shifted(x0, y0).contains(*people[0].keypoints[0, :2])


@pytest.mark.parametrize("name, msg_type, topic", [
    ("face_detection", Detection2DArray, "faces"),
    ("pose_estimation", HumanPose2DArray, "poses"),
    ("high_resolution_pose_estimation", HumanPose2DArray, "poses"),
    ("face_recognition", Detection2DArray, "faces/recognized"),
])
def test_nodes_survive_malformed_messages(start_process, test_node, tmp_path, name, msg_type, topic):
    params = {"gallery_path": str(tmp_path / "gallery.npz")} if name == "face_recognition" else {}
    proc, pub, probe = start_node(start_process, test_node, name, params, msg_type=msg_type, topic=topic)
    diagnostics = Probe(test_node, DiagnosticArray, "/diagnostics")
    good = samples.astronaut()
    bad = malformed_images(good)
    for _, msg in bad:
        pub.publish(msg)
        spin_for(test_node, 0.3)  # one by one: a depth-1 input would otherwise keep only the last
    final = image_message(good, test_node, frame_id="after_bad_input")
    pub.publish(final)
    probe.wait_for(1, OUTPUT_TIMEOUT, lambda m: m.header.frame_id == "after_bad_input")
    assert proc.alive(), proc.log()
    assert any(m.header.frame_id == "after_bad_input" for m in probe.messages), proc.log()
    assert not any(m.header.frame_id == "" and stamp_ns(m.header) == 0 for m in probe.messages)
    log = proc.log()
    assert "bad image skipped" in log and "unsupported image encoding 'not_an_encoding'" in log

    def errors_reported(msg):
        return max([int(kv.value) for s in msg.status if s.name.endswith(name)
                    for kv in s.values if kv.key == "errors"], default=0)

    diagnostics.wait_for(1, 5.0, lambda m: errors_reported(m) >= len(bad))
    assert max(map(errors_reported, diagnostics.messages), default=0) == len(bad), log


def test_reliable_input_parameter_accepts_a_reliable_camera(start_process, test_node):
    proc = start_process("face_detection", params={"input_reliability": "reliable", "publish_annotated": False})
    pub = test_node.create_publisher(Image, "image", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
    probe = Probe(test_node, Detection2DArray, "faces")
    wait_for_subscriber(test_node, pub, STARTUP_TIMEOUT, proc)
    spin_for(test_node, 0.5)
    pub.publish(image_message(samples.astronaut(), test_node))
    assert probe.wait_for(1, OUTPUT_TIMEOUT), proc.log()
