"""online_action_detection over real DDS: one Classification per feature vector after the warm-up, header copied,
the same labels as the ROS-free model on the same stream; wrong-size and NaN vectors are reported per message
and the node keeps answering; a stamp gap resets the state (a new warm-up)."""
import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.e2e]

pytest.importorskip("opendr_perception.ros.bridge")
import torch  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from opendr_interfaces.msg import FeatureVector  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from vision_msgs.msg import Classification  # noqa: E402

from e2e_support import Probe, spin_for, wait_for_subscriber  # noqa: E402
from opendr_perception.core import feature_streams as fs  # noqa: E402
from opendr_perception.core import registry  # noqa: E402
from opendr_perception.models.continual_classifiers import build_from_manifest  # noqa: E402

NAME = "cotrans_oad_synth"
FRAMES = 160
NS = 1_000_000_000


def vector(values, stamp_ns, frame_id="video"):
    msg = FeatureVector()
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, NS)
    msg.data = [float(v) for v in values]
    return msg


def test_every_frame_gets_its_action(start_process, test_node):
    spec = registry.default_registry().spec(NAME)
    model = build_from_manifest(spec.extra)
    model.load_state_dict(registry.load_state_dict(NAME))
    model.eval()
    delay, labels = model.delay, spec.extra["labels"]

    proc = start_process("online_action_detection")
    pub = test_node.create_publisher(FeatureVector, "features",
                                     QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE))
    probe = Probe(test_node, Classification, "actions")
    diagnostics = Probe(test_node, DiagnosticArray, "/diagnostics")
    wait_for_subscriber(test_node, pub, 60, proc)
    spin_for(test_node, 1.0)

    features, truth = fs.generate_stream(FRAMES, np.random.default_rng(21))
    with torch.no_grad():
        reference = torch.softmax(model.forward_steps(torch.from_numpy(features)[None])[0], -1)
    start = test_node.get_clock().now().nanoseconds
    sent = [vector(f, start + round(t * NS / fs.FPS), frame_id=f"video_{t}") for t, f in enumerate(features)]
    for msg in sent:
        pub.publish(msg)
        spin_for(test_node, 0.003)
    probe.wait_for(FRAMES - delay, 30)
    got = probe.messages
    assert len(got) == FRAMES - delay, proc.log()[-2000:]
    for msg, src, p in zip(got, sent[delay:], reference):
        assert msg.header == src.header  # stamp and frame_id of the frame it labels
        assert len(msg.results) == 3 and msg.results[0].score >= msg.results[1].score >= msg.results[2].score
        assert msg.results[0].class_id == labels[int(p.argmax())]
        assert msg.results[0].score == pytest.approx(float(p.max()), abs=1e-4)
    accuracy = np.mean([m.results[0].class_id == labels[k] for m, k in zip(got, truth[delay:])])
    assert accuracy > 0.6, accuracy

    # bad vectors are reported per message; the node keeps answering
    count = len(got)
    t_next = start + round(FRAMES * NS / fs.FPS)
    pub.publish(vector(np.zeros(7), t_next))
    pub.publish(vector(np.full(fs.FEATURE_DIM, np.nan), t_next))
    spin_for(test_node, 0.5)
    assert len(probe.messages) == count and proc.alive()
    pub.publish(vector(features[0], t_next))
    probe.wait_for(count + 1, 10)
    assert len(probe.messages) == count + 1
    assert "the feature vector has 7 values, model 'cotrans_oad_synth' expects 32" in proc.log()
    # (the NaN vector's warning falls inside the log throttle; /diagnostics counts it below)

    # a stamp gap (a restarted bag): the state resets, a new warm-up of `delay` frames
    later = t_next + 100 * NS
    for t in range(delay + 1):
        pub.publish(vector(features[t], later + round(t * NS / fs.FPS)))
        spin_for(test_node, 0.003)
    probe.wait_for(count + 2, 10)
    spin_for(test_node, 0.5)
    assert len(probe.messages) == count + 2  # only the (delay + 1)-th vector after the gap is answered
    last = probe.messages[-1]
    assert last.header.stamp.sec * NS + last.header.stamp.nanosec == later + round(delay * NS / fs.FPS)
    assert last.results[0].class_id == labels[int(reference[0].argmax())]  # same as from a clean state

    def errors_reported(msg):
        return max([int(kv.value) for st in msg.status if st.name.endswith("online_action_detection")
                    for kv in st.values if kv.key == "errors"], default=0)

    diagnostics.wait_for(1, 5, lambda m: errors_reported(m) >= 2)
    assert max(map(errors_reported, diagnostics.messages)) == 2
