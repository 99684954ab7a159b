"""skeleton_action_recognition over real DDS: per-person continual states keyed by track id, warm-up,
actions of two people at once, state dropped with the track, bad pose messages skipped."""
import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.e2e]

pytest.importorskip("opendr_perception.ros.bridge")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from opendr_interfaces.msg import HumanPose2DArray  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from e2e_support import Probe, spin_for, wait_for_subscriber  # noqa: E402
from opendr_perception.core import registry  # noqa: E402
from opendr_perception.core.skeleton_actions import GeneratorConfig, generate_sequence  # noqa: E402
from opendr_perception.core.types import BoundingBox, PersonPose  # noqa: E402
from opendr_perception.ros.bridge import poses_to_msg  # noqa: E402

FRAMES = 80


def pose_message(node, people, t):
    """One HumanPose2DArray with ``people`` = {track id: (T, 18, 3) keypoints}, frame t, 15 poses/s."""
    poses = []
    for track, sequence in people.items():
        kps = sequence[t].astype(np.float64)
        seen = kps[kps[:, 2] > 0]
        box = BoundingBox(*seen[:, :2].min(0), *seen[:, :2].max(0))
        poses.append(PersonPose(kps, "coco18", box, 0.9, person_id=track))
    msg = poses_to_msg(poses, _header(node, t))
    return msg


def _header(node, t):
    from std_msgs.msg import Header
    header = Header(frame_id="camera")
    start = getattr(node, "_start_ns", None) or node.get_clock().now().nanoseconds
    node._start_ns = start
    header.stamp.sec, header.stamp.nanosec = divmod(start + int(t * 1e9 / 15), 1_000_000_000)
    return header


def test_two_people_get_their_own_actions(start_process, test_node):
    delay = registry.default_registry().spec("costgcn_procedural_coco18").extra["delay"]
    proc = start_process("skeleton_action_recognition")
    pub = test_node.create_publisher(HumanPose2DArray, "poses", 10)
    actions = Probe(test_node, Detection2DArray, "actions")
    wait_for_subscriber(test_node, pub, 60, proc)
    spin_for(test_node, 1.0)
    rng = np.random.default_rng(7)
    config = GeneratorConfig(frames=FRAMES + 10)
    people = {1: generate_sequence("waving", rng, config), 2: generate_sequence("squatting", rng, config)}
    for t in range(FRAMES):  # one pose message at a time: the test checks the states, not the throughput
        pub.publish(pose_message(test_node, people, t))
        actions.wait_for(t + 1, 10)
    assert len(actions.messages) == FRAMES, proc.log()[-3000:]
    for t, msg in enumerate(actions.messages):
        assert len(msg.detections) == (0 if t < delay else 2)  # nothing before the warm-up, then both
    top1 = {"1": [], "2": []}
    for msg in actions.messages[delay:]:
        for d in msg.detections:
            top1[d.id].append(d.results[0].hypothesis.class_id)
            assert len(d.results) == 3 and d.results[0].hypothesis.score >= d.results[1].hypothesis.score
    assert np.mean([a == "waving" for a in top1["1"]]) > 0.8, top1["1"]
    assert np.mean([a == "squatting" for a in top1["2"]]) > 0.8, top1["2"]

    # person 2 leaves; a new person 3 appears: a fresh state, so a fresh warm-up for 3 only
    actions.messages.clear()
    newcomer = {1: people[1], 3: generate_sequence("jumping", rng, config)}
    for t in range(5):
        pub.publish(pose_message(test_node, newcomer, FRAMES + t))
        actions.wait_for(t + 1, 10)
    assert all([d.id for d in m.detections] == ["1"] for m in actions.messages)

    diagnostics = Probe(test_node, DiagnosticArray, "/diagnostics")

    def errors_reported(msg):
        return max([int(kv.value) for st in msg.status if st.name.endswith("skeleton_action_recognition")
                    for kv in st.values if kv.key == "errors"], default=0)

    bad = pose_message(test_node, people, 0)
    bad.poses[0].keypoints[0].x = float("nan")
    unknown_layout = pose_message(test_node, people, 0)
    unknown_layout.poses[0].layout = "no_such_layout"
    for msg in (bad, unknown_layout):
        pub.publish(msg)
        spin_for(test_node, 0.5)
    pub.publish(pose_message(test_node, newcomer, FRAMES + 5))
    actions.wait_for(6, 30)
    assert proc.alive() and len(actions.messages) == 6 and "NaN" in proc.log()
    diagnostics.wait_for(1, 5, lambda m: errors_reported(m) >= 2)
    assert max(map(errors_reported, diagnostics.messages)) == 2  # both bad messages counted, none else


@pytest.mark.parametrize("architecture", ["coagcn*", "costr*"])
def test_another_registered_architecture_is_selected_by_name(architecture, start_process, test_node, tmp_path,
                                                            monkeypatch):
    """A user's checkpoint of another continual architecture, registered in a manifest of theirs, is what
    the node runs when named by ``model``: its labels, its own warm-up, one state per track."""
    import torch
    import yaml
    from safetensors.torch import save_file

    from opendr_perception.core.skeleton_actions import build_model_from_manifest
    extra = {"architecture": architecture, "num_classes": 3, "layout": "coco18", "in_channels": 3, "num_persons": 1,
             "base_channels": 32, "temporal_kernel_size": 3, "clip_len": 24, "labels": ["a", "b", "c"]}
    torch.manual_seed(0)
    model = build_model_from_manifest(extra)
    (tmp_path / "weights").mkdir()
    weights = tmp_path / "weights" / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    (tmp_path / "manifest").mkdir()
    (tmp_path / "manifest" / "mine.yaml").write_text(yaml.safe_dump({"my_actions": {
        "project": "weights/mine.safetensors", "sha256": registry.sha256_of(weights), **extra}}))
    monkeypatch.setenv("OPENDR_MODEL_MANIFESTS", str(tmp_path / "manifest"))

    proc = start_process("skeleton_action_recognition", params={"model": "my_actions", "top_k": 2})
    pub = test_node.create_publisher(HumanPose2DArray, "poses", 10)
    actions = Probe(test_node, Detection2DArray, "actions")
    wait_for_subscriber(test_node, pub, 60, proc)
    spin_for(test_node, 1.0)
    rng = np.random.default_rng(3)
    people = {5: generate_sequence("clapping", rng, GeneratorConfig(frames=model.delay + 4))}
    for t in range(model.delay + 3):
        pub.publish(pose_message(test_node, people, t))
        actions.wait_for(t + 1, 10)
    assert len(actions.messages) == model.delay + 3, proc.log()[-3000:]
    assert all(not m.detections for m in actions.messages[:model.delay])
    for msg in actions.messages[model.delay:]:
        (detection,) = msg.detections
        assert detection.id == "5" and len(detection.results) == 2
        assert {r.hypothesis.class_id for r in detection.results} <= {"a", "b", "c"}
