"""video_activity_recognition over real DDS: warm-up messages, the class of a generated stream after the
warm-up, headers copied, the clip mode agreeing with the continual mode, a stamp gap resetting the state,
malformed images skipped."""
import itertools

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.e2e]

pytest.importorskip("opendr_perception.ros.bridge")
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from vision_msgs.msg import Classification  # noqa: E402

from e2e_support import Probe, image_message, malformed_images, spin_for, wait_for_subscriber  # noqa: E402
from opendr_perception.core import moving_shapes as ms  # noqa: E402
from opendr_perception.core import registry  # noqa: E402

LABEL = "move_right"
FRAMES = 36


def camera_frames(n, size):
    """A 4:3 camera view of a generated stream: the square video (twice the model's input size) in the
    middle of a grey 4:3 frame, so the node's centre crop gives back exactly the video."""
    out = []
    for frame in itertools.islice(ms.stream(LABEL, seed=11, size=2 * size), n):
        wide = np.full((2 * size, 2 * size * 4 // 3, 3), 128, np.uint8)
        x0 = (wide.shape[1] - 2 * size) // 2
        wide[:, x0:x0 + 2 * size] = frame
        out.append(wide)
    return out


def test_the_node_recognises_a_generated_stream(start_process, test_node):
    extra = registry.default_registry().spec("cox3d_xs_moving_shapes").extra
    rf = extra["receptive_field"]
    co = start_process("video_activity_recognition", params={"max_gap": 1.0, "top_k": 3})
    clip = start_process("video_activity_recognition", params={"mode": "clip", "publish_annotated": False},
                         remaps={"__node": "video_activity_clip", "activity": "clip/activity",
                                 "activity/label": "clip/activity/label"})
    pub = test_node.create_publisher(Image, "image", 10)
    labels, activity = Probe(test_node, String, "activity/label"), Probe(test_node, Classification, "activity")
    clip_activity = Probe(test_node, Classification, "clip/activity")
    annotated = Probe(test_node, Image, "/video_activity_recognition/annotated_image", reliable=False)
    wait_for_subscriber(test_node, pub, 60, [co, clip], count=2)
    spin_for(test_node, 1.0)
    start = test_node.get_clock().now().nanoseconds
    stamps = [start + int(t * 1e9 / ms.FPS) for t in range(FRAMES + 1)]
    frames = camera_frames(FRAMES + 1, extra["input_size"])
    for t in range(FRAMES):  # one image at a time: the test checks the stream's state, not the throughput
        pub.publish(image_message(frames[t], test_node, frame_id="cam_optical", encoding="rgb8", stamp_ns=stamps[t]))
        labels.wait_for(t + 1, 10)
        activity.wait_for(t + 1, 10)
        clip_activity.wait_for(t + 1, 10)
    assert len(labels.messages) == len(activity.messages) == len(clip_activity.messages) == FRAMES, co.log()[-3000:]
    for t, (text, msg) in enumerate(zip(labels.messages, activity.messages)):
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        assert stamp == stamps[t] and msg.header.frame_id == "cam_optical"
        if t < rf - 1:
            assert text.data == f"warming up ({t + 1}/{rf} frames)" and not msg.results
        else:
            assert len(msg.results) == 3 and msg.results[0].score >= msg.results[1].score >= msg.results[2].score
            assert text.data == f"{msg.results[0].class_id} {msg.results[0].score:.2f}"
    top1 = [m.results[0].class_id for m in activity.messages[rf - 1:]]
    assert np.mean([c == LABEL for c in top1]) >= 0.8, top1
    for a, b in zip(activity.messages, clip_activity.messages):  # same weights, same frames: same answer
        assert [r.class_id for r in a.results] == [r.class_id for r in b.results]
        np.testing.assert_allclose([r.score for r in a.results], [r.score for r in b.results], atol=1e-4)
    annotated.wait_for(1, 5)
    assert annotated.messages and annotated.messages[-1].header.frame_id == "cam_optical"
    assert annotated.messages[-1].encoding == "bgr8"

    # malformed images are skipped, the node keeps answering; then a stamp jump resets the state
    for _, bad in malformed_images(frames[0]):
        pub.publish(bad)
        spin_for(test_node, 0.1)
    labels.messages.clear()
    gap = stamps[FRAMES - 1] + int(5e9)
    pub.publish(image_message(frames[FRAMES], test_node, frame_id="cam_optical", encoding="rgb8", stamp_ns=gap))
    labels.wait_for(1, 10)
    assert co.alive() and clip.alive()
    assert [m.data for m in labels.messages] == [f"warming up (1/{rf} frames)"], co.log()[-3000:]
    assert "bad image skipped" in co.log() and "state reset" in co.log()
