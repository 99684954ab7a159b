"""A recorded camera stream replayed from a bag through video_activity_recognition, as a user checks a
node: ``opendr-bag make`` (here from a generated moving-shape video), ``opendr-bag play`` into the
running node, ``opendr-bag record`` of its output, and the recorded classifications read back."""
import itertools
import subprocess
import time

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.e2e]

pytest.importorskip("opendr_perception.ros.bridge")
from rclpy.serialization import deserialize_message  # noqa: E402
from vision_msgs.msg import Classification  # noqa: E402

from conftest import executable  # noqa: E402
from opendr_perception.core import moving_shapes as ms  # noqa: E402
from opendr_perception.core import registry  # noqa: E402
from opendr_perception.tools import bag  # noqa: E402

LABEL, FRAMES = "move_left", 50


def test_bag_replay_through_the_video_activity_node(tmp_path, test_node, start_process):
    extra = registry.default_registry().spec("cox3d_xs_moving_shapes").extra
    source = tmp_path / "shapes"
    frames = (rgb[..., ::-1] for rgb in itertools.islice(ms.stream(LABEL, seed=23, size=4 * extra["input_size"]), FRAMES))
    start_ns = 1_700_000_000_000_000_000
    assert bag.make_image_bag(source, frames, fps=ms.FPS, start_ns=start_ns) == FRAMES  # bgr8, /camera/image_raw

    node = start_process("video_activity_recognition", remaps={"image": "/camera/image_raw"},
                         params={"input_reliability": "reliable"})
    recorded = tmp_path / "recorded"
    recorder = start_process("opendr-bag", ["record", str(recorded), "--topics", "/activity", "--duration", "40"])
    deadline = time.monotonic() + 60
    while test_node.count_subscribers("/activity") < 1 or test_node.count_publishers("/activity") < 1:
        assert time.monotonic() < deadline and node.alive(), node.log()[-3000:]
        time.sleep(0.1)
    time.sleep(1.0)
    player = subprocess.run([executable("opendr-bag"), "play", str(source), "--wait-for-subscribers", "30",
                             "--rate", "0.5"],
                            capture_output=True, text=True, timeout=120)
    assert player.returncode == 0 and f"published {FRAMES} messages" in player.stdout, player.stderr
    time.sleep(2.0)
    recorder.stop()

    messages = [deserialize_message(raw, Classification) for _, _, _, raw in bag.read_messages(recorded, ["/activity"])]
    stamps = [m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec for m in messages]
    frame_stamps = [start_ns + int(round(i * 1e9 / ms.FPS)) for i in range(FRAMES)]
    # the camera queue is depth 1 by design: a busy machine drops frames and the stream goes on
    # (played at half speed to leave a 2-core CI machine some room)
    assert len(messages) >= 0.6 * FRAMES, (len(messages), node.log()[-3000:])
    assert set(stamps) <= set(frame_stamps)  # each output carries its frame's stamp from the bag
    delay = extra["receptive_field"] - 1
    assert all(not m.results for m in messages[:delay])  # warm-up: nothing before a full receptive field
    warm = [m for m in messages[delay:] if m.results]
    top1 = [max(m.results, key=lambda r: r.score).class_id for m in warm]
    assert len(top1) >= 10
    assert np.mean([label == LABEL for label in top1]) >= 0.8, top1
