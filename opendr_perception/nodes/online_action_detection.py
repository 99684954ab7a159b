"""online_action_detection: background or which action, for every frame as it arrives, with a continual
transformer over the last frames' feature vectors (seed 3.1: CoOadTR; one token per frame, no window
recomputed).

Subscribes: ``features`` (opendr_interfaces/FeatureVector: one frame's features, e.g. of a video backbone;
            reliable with a queue, every frame is a step of the continual state)
Publishes:  ``actions`` (vision_msgs/Classification: the ``top_k`` labels, background included, with
            probabilities; header = the feature vector's header) for every frame after the warm-up.

A vector whose size is not the model's input size is rejected with a per-message error (logged and
counted on /diagnostics); the state resets when the stamps jump by more than ``max_gap``.
"""
import numpy as np
import torch
from opendr_interfaces.msg import FeatureVector
from rclpy.qos import QoSProfile, ReliabilityPolicy
from vision_msgs.msg import Classification, ObjectHypothesis

from opendr_perception.core import registry
from opendr_perception.models.continual_classifiers import build_from_manifest
from opendr_perception.ros.node_base import PerceptionNode, run_node, stamp_seconds


class OnlineActionDetectionNode(PerceptionNode):
    input_kind = "feature vector"

    def __init__(self):
        super().__init__("online_action_detection")
        self.model_name = self.param("model", "cotrans_oad_synth", "Registered continual online action detector")
        self.top_k = self.param("top_k", 3, "Labels reported per frame, most probable first")
        self.max_gap = self.param("max_gap", 2.0, "Reset the state when the feature stamps jump by more (s)")
        self.last_stamp = None
        self.actions_pub = self.create_publisher(Classification, "actions", 10)
        depth = self.param("queue_size", 100, "Feature vectors queued while the model is busy (a temporal model "
                           "must not skip frames; a full queue drops the oldest)")
        self.create_subscription(FeatureVector, "features", self.process_message,
                                 QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE))

    def load_model(self):
        spec = registry.default_registry().spec(self.model_name)
        model = build_from_manifest(spec.extra)
        model.load_state_dict(registry.load_state_dict(self.model_name))
        self.labels = list(spec.extra["labels"])
        self.get_logger().info(f"{self.model_name}: {len(self.labels)} labels from {model.input_dim}-d features, "
                               f"first prediction after {model.delay + 1} frames")
        return model.eval().to(self.device)

    def convert(self, msg):
        features = np.asarray(msg.data, dtype=np.float32)
        if features.size != self.model.input_dim:
            raise ValueError(f"the feature vector has {features.size} values, model '{self.model_name}' expects "
                             f"{self.model.input_dim}")
        if not np.isfinite(features).all():
            raise ValueError("the feature vector has NaN or infinite values")
        return stamp_seconds(msg.header), features

    def infer(self, data):
        stamp, features = data
        if self.last_stamp is not None and abs(stamp - self.last_stamp) > self.max_gap:
            self.get_logger().info(f"feature stamps jumped by {stamp - self.last_stamp:+.3f} s: state reset")
            self.model.clean_state()
        self.last_stamp = stamp
        logits = self.model.forward_step(torch.from_numpy(features).to(self.device)[None])
        return None if logits is None else torch.softmax(logits[0].float(), 0).cpu().numpy()

    def publish_results(self, probabilities, header, data):
        if probabilities is None:  # warm-up
            return
        out = Classification(header=header)
        for index in np.argsort(-probabilities)[: self.top_k]:
            out.results.append(ObjectHypothesis(class_id=self.labels[index], score=float(probabilities[index])))
        self.actions_pub.publish(out)


def main(args=None):
    run_node(OnlineActionDetectionNode, args)


if __name__ == "__main__":
    main()
