"""The README's demo command end to end: sample bag -> bag player -> three node processes -> recorded bag."""
import subprocess

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.e2e]

bag = pytest.importorskip("opendr_perception.tools.bag")
from rclpy.serialization import deserialize_message  # noqa: E402

from conftest import executable  # noqa: E402


def test_demo_writes_results_a_user_can_open(tmp_path):
    out = tmp_path / "demo"
    run = subprocess.run([executable("opendr-demo"), "--output", str(out), "--rate", "2"],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "published 20 frames" in run.stdout
    counts = {line.split()[0]: int(line.split()[2]) for line in bag.info(out / "output_bag").splitlines()
              if line.startswith("  /")}
    assert counts["/faces"] == counts["/poses"] == counts["/high_resolution/poses"] == 20, run.stdout
    faces = [len(deserialize_message(raw, bag.message_class(t)).detections)
             for _, t, _, raw in bag.read_messages(out / "output_bag", ["/faces"])]
    # the sample: 4 frames each of the astronaut, Grace Hopper, the cameraman, both women, an empty scene
    assert faces[:8] == [1] * 8 and faces[12:16] == [2] * 4 and faces[16:] == [0] * 4
    for node in ("face_detection", "pose_estimation", "high_resolution_pose_estimation"):
        assert len(list((out / "annotated" / node).glob("*.png"))) == 20
    assert "frames in; answered" in run.stdout
