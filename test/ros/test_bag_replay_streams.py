"""The continual nodes that read message streams, each checked the way a user checks them on a recording:
a bag of their input (pose arrays, audio chunks, feature vectors) is played with ``opendr-bag play`` into
the running node while ``opendr-bag record`` records its output, and the recorded results are read back.

Audio: a bag player offers volatile QoS, so the node's latched ``audio_info`` subscription does not match
it and the node uses its format parameters (16 kHz S16LE mono by default), as with ``ros2 bag play``."""
import subprocess
import time

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.e2e]

pytest.importorskip("opendr_perception.ros.bridge")
from audio_common_msgs.msg import AudioDataStamped  # noqa: E402
from opendr_interfaces.msg import FeatureVector  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from vision_msgs.msg import Classification, Detection2DArray  # noqa: E402

from conftest import executable  # noqa: E402
from opendr_perception.core import audio_synth, feature_streams, registry  # noqa: E402
from opendr_perception.core.skeleton_actions import GeneratorConfig, generate_sequence  # noqa: E402
from opendr_perception.core.types import BoundingBox, PersonPose  # noqa: E402
from opendr_perception.ros.bridge import poses_to_msg  # noqa: E402
from opendr_perception.tools import bag  # noqa: E402

NS = 1_000_000_000
START = 1_700_000_000 * NS


def header(msg, stamp_ns, frame_id):
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, NS)
    return msg


def write_bag(path, topic, msgtype, messages):
    with bag.BagWriter(path) as writer:
        for msg in messages:
            writer.write(topic, msgtype, msg.header.stamp.sec * NS + msg.header.stamp.nanosec, serialize_message(msg))


def replay(start_process, test_node, tmp_path, node_name, source, output_topic, output_type, rate=1.0):
    """Start the node and a recorder, play ``source`` into the node (``rate`` x its recorded speed), return
    the recorded output messages."""
    node = start_process(node_name)
    recorded = tmp_path / "recorded"
    recorder = start_process("opendr-bag", ["record", str(recorded), "--topics", output_topic, "--duration", "60"])
    deadline = time.monotonic() + 60
    while test_node.count_subscribers(output_topic) < 1 or test_node.count_publishers(output_topic) < 1:
        assert time.monotonic() < deadline and node.alive(), node.log()[-3000:]
        time.sleep(0.1)
    time.sleep(1.0)
    player = subprocess.run([executable("opendr-bag"), "play", str(source), "--wait-for-subscribers", "30",
                             "--rate", str(rate)], capture_output=True, text=True, timeout=120)
    assert player.returncode == 0, player.stderr
    time.sleep(2.0)
    recorder.stop()
    assert node.alive(), node.log()[-3000:]
    return [deserialize_message(raw, output_type) for _, _, _, raw in bag.read_messages(recorded, [output_topic])]


def test_skeleton_action_bag(start_process, test_node, tmp_path):
    delay = registry.default_registry().spec("costgcn_procedural_coco18").extra["delay"]
    frames = delay + 20
    sequence = generate_sequence("jumping", np.random.default_rng(4), GeneratorConfig(frames=frames))
    messages = []
    for t in range(frames):
        kps = sequence[t].astype(np.float64)
        seen = kps[kps[:, 2] > 0]
        pose = PersonPose(kps, "coco18", BoundingBox(*seen[:, :2].min(0), *seen[:, :2].max(0)), 0.9, person_id=7)
        messages.append(poses_to_msg([pose], header(Detection2DArray(), START + t * NS // 15, "camera").header))
    source = tmp_path / "poses"
    write_bag(source, "/poses", "opendr_interfaces/msg/HumanPose2DArray", messages)
    out = replay(start_process, test_node, tmp_path, "skeleton_action_recognition", source, "/actions", Detection2DArray)
    stamps = [m.header.stamp for m in messages]
    # a reliable, queued input: every pose the node receives is a step (the player may start a
    # moment before the match completes, so the first pose can be missed)
    assert len(out) >= frames - 2 and [m.header.stamp for m in out] == stamps[len(stamps) - len(out):]
    assert all(not m.detections for m in out[:delay - (frames - len(out))])
    warm = [m for m in out if m.detections]
    top1 = [m.detections[0].results[0].hypothesis.class_id for m in warm]
    assert len(warm) >= 15 and all(m.detections[0].id == "7" for m in warm) and np.mean([a == "jumping" for a in top1]) >= 0.8, top1


def test_online_action_detection_bag(start_process, test_node, tmp_path):
    extra = registry.default_registry().spec("cotrans_oad_synth").extra
    features, truth = feature_streams.generate_stream(150, np.random.default_rng(31))
    messages = [header(FeatureVector(data=[float(v) for v in f]), START + round(t * NS / feature_streams.FPS), "video")
                for t, f in enumerate(features)]
    source = tmp_path / "features"
    write_bag(source, "/features", "opendr_interfaces/msg/FeatureVector", messages)
    out = replay(start_process, test_node, tmp_path, "online_action_detection", source, "/actions", Classification,
                 rate=5.0)  # 4 frames/s recorded: faster, the queued input keeps every frame
    stamps = [m.header.stamp for m in messages]
    assert len(out) >= len(messages) - 20 and all(m.header.stamp in stamps for m in out)
    labels = extra["labels"]
    index = {(s.sec, s.nanosec): t for t, s in enumerate(stamps)}
    accuracy = np.mean([m.results[0].class_id == labels[truth[index[(m.header.stamp.sec, m.header.stamp.nanosec)]]]
                        for m in out])
    assert accuracy >= 0.6, accuracy


def test_audio_classification_bag(start_process, test_node, tmp_path):
    rate, chunk = audio_synth.SAMPLE_RATE, audio_synth.SAMPLE_RATE // 10
    rng = np.random.default_rng(8)
    audio, segments = audio_synth.render_stream(rng, 12.0, segment_s=(6.0, 6.0), labels=[1, 4])
    pcm = np.frombuffer(audio_synth.to_pcm16(audio), np.int16)
    messages = []
    for i in range(0, len(pcm), chunk):
        msg = header(AudioDataStamped(), START + i * NS // rate, "mic")
        msg.audio.data = pcm[i:i + chunk].tobytes()
        messages.append(msg)
    source = tmp_path / "audio"
    write_bag(source, "/audio", "audio_common_msgs/msg/AudioDataStamped", messages)
    out = replay(start_process, test_node, tmp_path, "continual_audio_classification", source, "/audio_class",
                 Classification, rate=2.0)
    assert len(out) >= 20, len(out)  # one result per 250 ms hop after the warm-up
    ends = [(m.header.stamp.sec * NS + m.header.stamp.nanosec - START) / NS for m in out]
    assert all(b - a == pytest.approx(0.25, abs=1e-6) for a, b in zip(ends, ends[1:]))  # stamped on the audio clock
    steady = [(m.results[0].class_id, audio_synth.CLASSES[audio_synth.labels_at(segments, [int(end * rate) - 1])[0]])
              for m, end in zip(out, ends) if not any(end - 2.75 < s.start / rate < end for s in segments[1:])]
    assert len(steady) >= 10 and np.mean([got == want for got, want in steady]) >= 0.8, steady
