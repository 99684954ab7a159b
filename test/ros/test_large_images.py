"""Camera-sized images cross processes without loss with the suite's FastDDS profile.

FastDDS's default 512 KB shared-memory segment loses most best-effort 640x480 frames and nearly all
1080p frames between processes; the profile in opendr_bringup/config fixes that (measured without
it on this project's machines: 5-18 of 30 frames arrived). Here a publisher process sends 1080p
bgr8 frames at 30 Hz, best effort like a camera driver, and every frame must arrive.
"""
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.smoke]

pytest.importorskip("opendr_perception.ros.node_base")
from sensor_msgs.msg import Image  # noqa: E402

from e2e_support import Probe  # noqa: E402

PUBLISHER = textwrap.dedent("""
    import sys, time
    import numpy as np, rclpy
    from sensor_msgs.msg import Image
    from opendr_perception.ros.bridge import numpy_to_image
    from opendr_perception.ros.node_base import apply_fastdds_profile, camera_qos
    width, height, count, rate = map(int, sys.argv[1:5])
    apply_fastdds_profile()
    rclpy.init()
    node = rclpy.create_node("camera_1080p")
    pub = node.create_publisher(Image, "camera_1080p", camera_qos())
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    frame = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    start = time.monotonic()
    for i in range(count):
        msg = numpy_to_image(frame, "bgr8")
        msg.header.frame_id = str(i)
        pub.publish(msg)
        time.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
    time.sleep(1.0)
""")


@pytest.mark.parametrize("width, height", [(1920, 1080), (640, 480)])
def test_frames_cross_processes_without_loss(test_node, width, height):
    count = 60
    probe = Probe(test_node, Image, "camera_1080p", reliable=False)
    publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(width), str(height), str(count), "30"])
    try:
        probe.wait_for(count, timeout=60)
    finally:
        publisher.wait(timeout=60)
    received = sorted(int(m.header.frame_id) for m in probe.messages)
    assert received == list(range(count)), f"lost frames: {sorted(set(range(count)) - set(received))}"
    assert (probe.messages[0].width, probe.messages[0].height) == (width, height)
