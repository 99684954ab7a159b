"""face_recognition over real DDS: enrol through the service, recognise, report strangers as unknown,
keep the gallery across restarts, forget on request, publish REP-155 person ids."""
import time

import cv2
import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.e2e]

pytest.importorskip("opendr_perception.ros.bridge")
from hri_msgs.msg import IdsList  # noqa: E402
from opendr_interfaces.srv import EnrollFace, ForgetPerson  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from e2e_support import Probe, image_message, spin_for, wait_for_subscriber  # noqa: E402
from opendr_perception.core import samples  # noqa: E402
from opendr_perception.ros.bridge import numpy_to_image  # noqa: E402
from opendr_perception.ros.node_base import camera_qos  # noqa: E402


def call(node, client, request, timeout=30.0):
    assert client.wait_for_service(timeout_sec=timeout), f"{client.srv_name} is not offered"
    future = client.call_async(request)
    deadline = time.monotonic() + timeout
    while not future.done() and time.monotonic() < deadline:
        spin_for(node, 0.05)
    assert future.done(), f"{client.srv_name} did not answer"
    return future.result()


def recognise(node, publisher, probe, image, frame_id):
    publisher.publish(image_message(image, node, frame_id=frame_id))
    messages = probe.wait_for(1, 30, lambda m: m.header.frame_id == frame_id)
    msg = next(m for m in messages if m.header.frame_id == frame_id)
    return [(d.results[0].hypothesis.class_id, d.results[0].hypothesis.score) for d in msg.detections]


def start(start_process, test_node, gallery):
    proc = start_process("face_recognition", params={"gallery_path": str(gallery), "rep155": True})
    pub = test_node.create_publisher(Image, "image", camera_qos())
    wait_for_subscriber(test_node, pub, 60, proc)
    spin_for(test_node, 0.5)
    return proc, pub


def test_enrol_recognise_forget_and_persist(start_process, test_node, tmp_path):
    gallery = tmp_path / "gallery.npz"
    proc, pub = start(start_process, test_node, gallery)
    probe = Probe(test_node, Detection2DArray, "faces/recognized")
    enroll = test_node.create_client(EnrollFace, "/face_recognition/enroll")
    forget = test_node.create_client(ForgetPerson, "/face_recognition/forget")
    astronaut, hopper = samples.astronaut(), samples.grace_hopper()

    assert recognise(test_node, pub, probe, astronaut, "before") == [("unknown", 0.0)]
    response = call(test_node, enroll, EnrollFace.Request(name="Eileen Collins", image=numpy_to_image(astronaut, "bgr8")))
    assert response.success and response.faces_enrolled == 1, response.message
    refused = call(test_node, enroll, EnrollFace.Request(name="nobody", image=numpy_to_image(np.zeros((64, 64, 3), np.uint8), "bgr8")))
    assert not refused.success and "exactly one face" in refused.message
    # the live frame route: the largest face of the latest camera frame
    recognise(test_node, pub, probe, hopper, "hopper_frame")
    assert call(test_node, enroll, EnrollFace.Request(name="Grace Hopper")).success
    assert gallery.is_file()

    other_view = cv2.flip(cv2.GaussianBlur(astronaut, (3, 3), 0), 1)  # a different picture of her
    (name, frc), = recognise(test_node, pub, probe, other_view, "flipped")
    assert name == "Eileen Collins" and 0.0 < frc <= 1.0
    (name, _), = recognise(test_node, pub, probe, hopper, "hopper")
    assert name == "Grace Hopper"
    (name, frc), = recognise(test_node, pub, probe, samples.cameraman(), "stranger")
    assert (name, frc) == ("unknown", 0.0)

    tracked = Probe(test_node, IdsList, "/humans/persons/tracked")
    face_id = Probe(test_node, String, "/humans/persons/eileen_collins/face_id")
    recognise(test_node, pub, probe, astronaut, "rep155")
    tracked.wait_for(1, 10, lambda m: "eileen_collins" in m.ids)
    face_id.wait_for(1, 10)
    assert any("eileen_collins" in m.ids for m in tracked.messages) and face_id.messages[0].data.startswith("face")

    proc.stop()  # a new process reads the saved gallery
    proc, pub = start(start_process, test_node, gallery)
    known = Probe(test_node, IdsList, "/humans/persons/known")
    (name, _), = recognise(test_node, pub, probe, other_view, "after_restart")
    assert name == "Eileen Collins"
    forget = test_node.create_client(ForgetPerson, "/face_recognition/forget")
    assert call(test_node, forget, ForgetPerson.Request(name="Eileen Collins")).success
    assert not call(test_node, forget, ForgetPerson.Request(name="Eileen Collins")).success
    (name, _), = recognise(test_node, pub, probe, other_view, "forgotten")
    assert name == "unknown"
    known.wait_for(1, 10)
    assert known.messages[-1].ids == ["grace_hopper"]


def test_gallery_of_another_embedder_is_reported_not_fatal(start_process, test_node, tmp_path):
    from opendr_perception.core.face_gallery import FaceGallery
    gallery = tmp_path / "other.npz"
    foreign = FaceGallery("some_other_network", 0.5, dim=4)
    foreign.enroll("x", np.ones(4))
    foreign.save(gallery)
    proc = start_process("face_recognition", params={"gallery_path": str(gallery)})
    deadline = time.monotonic() + 30
    while "cannot load the model" not in proc.log() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.alive() and "some_other_network" in proc.log()
