"""skeleton_action_recognition: the action of every tracked person, from the pose stream, with a continual
skeleton model (CoST-GCN*: one prediction per pose, no 300-frame buffer refilled per prediction).

Subscribes: ``poses`` (opendr_interfaces/HumanPose2DArray, from pose_estimation; any keypoint layout
            convertible to COCO-18; every pose matters, so the input is reliable with a queue)
Publishes:  ``actions`` (vision_msgs/Detection2DArray: per person past the model's warm-up, its box, its
            track id and the ``top_k`` actions with their probabilities; header = the poses' header).

One continual state per track id: created when an id appears, dropped after ``track_timeout`` without
it, reset when the stream jumps (a stamp gap above ``max_gap``, e.g. a bag restarting).
"""
import numpy as np
import torch
from opendr_interfaces.msg import HumanPose2DArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from vision_msgs.msg import Detection2DArray, ObjectHypothesisWithPose

from opendr_perception.core import registry
from opendr_perception.core.keypoints import convert
from opendr_perception.core.skeleton_actions import build_model_from_manifest, normalize_keypoints, to_step_tensor
from opendr_perception.core.types import Detection
from opendr_perception.ros.bridge import detections_to_msg, poses_from_msg
from opendr_perception.ros.node_base import PerceptionNode, run_node, stamp_seconds


class SkeletonActionNode(PerceptionNode):
    input_kind = "pose message"

    def __init__(self):
        super().__init__("skeleton_action_recognition")
        self.model_name = self.param("model", "costgcn_procedural_coco18", "Registered skeleton action model")
        self.top_k = self.param("top_k", 3, "Actions reported per person, most probable first")
        self.track_timeout = self.param("track_timeout", 2.0, "Forget a person's state after this long unseen (s)")
        self.max_gap = self.param("max_gap", 1.0, "Reset every state when the pose stamps jump by more (s)")
        self.states: dict[str, tuple] = {}  # track id -> (model state, last stamp)
        self.last_stamp = None
        self.actions_pub = self.create_publisher(Detection2DArray, "actions", 10)
        depth = self.param("queue_size", 100, "Pose messages queued while the model is busy (a temporal model "
                           "must not skip poses; a full queue drops the oldest)")
        self.create_subscription(HumanPose2DArray, "poses", self.process_message,
                                 QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE))

    def load_model(self):
        spec = registry.default_registry().spec(self.model_name)
        model = build_model_from_manifest(spec.extra)
        model.load_state_dict(registry.load_state_dict(self.model_name))
        self.labels = list(spec.extra["labels"])
        self.min_confidence = float(spec.extra.get("min_confidence", 0.3))
        self.get_logger().info(f"{self.model_name}: {len(self.labels)} actions, first prediction after "
                               f"{model.delay + 1} poses of a person")
        return model.eval().to(self.device)

    def convert(self, msg):
        poses = poses_from_msg(msg)
        for pose in poses:
            if not np.isfinite(pose.keypoints).all():
                raise ValueError(f"person '{pose.person_id}' has NaN or infinite keypoints")
        return stamp_seconds(msg.header), [convert(p, "coco18") for p in poses]

    def infer(self, data):
        stamp, poses = data
        if self.last_stamp is not None and abs(stamp - self.last_stamp) > self.max_gap:
            self.states.clear()  # the stream jumped: the temporal context is gone
        self.last_stamp = stamp
        self.states = {k: v for k, v in self.states.items() if stamp - v[1] <= self.track_timeout}
        results = []
        with torch.no_grad():
            for pose in poses:
                track = str(pose.person_id)
                state = self.states.get(track, (None, stamp))[0]
                if state is None:
                    self.model.clean_state()
                else:
                    self.model.set_state(state)
                step = to_step_tensor(normalize_keypoints(pose.keypoints, self.min_confidence)).to(self.device)
                logits = self.model.forward_step(step)
                self.states[track] = (self.model.get_state(), stamp)
                if logits is not None:
                    probabilities = torch.softmax(logits[0].float(), dim=0).cpu().numpy()
                    results.append((pose, track, probabilities))
        return results

    def publish_results(self, results, header, data):
        out = detections_to_msg([Detection(pose.box, 0.0, "", track_id=track) for pose, track, _ in results], header)
        for detection, (_, _, probabilities) in zip(out.detections, results):
            detection.results = []
            for index in np.argsort(-probabilities)[: self.top_k]:
                hypothesis = ObjectHypothesisWithPose()
                hypothesis.hypothesis.class_id = self.labels[index]
                hypothesis.hypothesis.score = float(probabilities[index])
                detection.results.append(hypothesis)
        self.actions_pub.publish(out)


def main(args=None):
    run_node(SkeletonActionNode, args)


if __name__ == "__main__":
    main()
