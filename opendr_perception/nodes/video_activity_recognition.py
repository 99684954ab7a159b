"""video_activity_recognition: the activity in a camera stream, with a continual X3D (CoX3D: one step per
frame, no clip re-processed per prediction) or, for comparison, the regular X3D over a sliding window.

Subscribes: ``image`` (sensor_msgs/Image; ``image/compressed`` with image_transport:=compressed)
Publishes:  ``activity`` (vision_msgs/Classification: the ``top_k`` classes with their probabilities,
            most probable first; empty ``results`` during the warm-up; header = the image's header),
            ``activity/label`` (std_msgs/String: ``"<class> 0.93"``, or ``"warming up (k/N frames)"``),
            ``~/annotated_image`` (the image with the label drawn on it).

Parameters: ``model`` (registry name; the manifest gives architecture, labels, input size,
normalisation and the frame rate it was trained at), ``mode`` (``continual``: CoX3D, a prediction
per used frame after a warm-up of one receptive field; ``clip``: the regular X3D without temporal
padding run over the last receptive-field frames at every used frame; same weights, same outputs,
many times the cost), ``frame_skip`` (use every n-th image: X3D-style models are trained at a
few frames per second, e.g. a 30 Hz camera with frame_skip 3 gives the 10 frames/s of the demo
model), ``max_gap`` (reset the temporal state when image stamps jump forward or backwards by more
than this many seconds, e.g. a dropped camera or a bag restarting), ``top_k``.

Images are cropped to their centre square and resized to the model's input size. An image left out by
``frame_skip`` publishes nothing; every used image publishes on both topics.
"""
from collections import deque

import cv2
import numpy as np
import torch
from std_msgs.msg import String
from vision_msgs.msg import Classification, ObjectHypothesis

from opendr_perception.core import registry
from opendr_perception.core.drawing import draw_box
from opendr_perception.core.moving_shapes import to_frame_tensor
from opendr_perception.core.types import BoundingBox
from opendr_perception.models.x3d import build_x3d
from opendr_perception.ros.node_base import ImageNode, run_node, stamp_seconds

MODES = ("continual", "clip")


def square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """The centre square of ``image`` resized to ``size`` x ``size`` (area interpolation)."""
    h, w = image.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    crop = image[y0:y0 + side, x0:x0 + side]
    return crop if side == size else cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


class VideoActivityNode(ImageNode):
    input_encoding = "rgb8"

    def __init__(self):
        super().__init__("video_activity_recognition")
        self.model_name = self.param("model", "cox3d_xs_moving_shapes", "Registered video activity model")
        self.mode = self.param("mode", "continual", "continual (CoX3D, one step per frame) or clip (regular X3D "
                               "over the last receptive-field frames, for comparison)")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not '{self.mode}'")
        self.frame_skip = max(1, int(self.param("frame_skip", 1, "Use every n-th image (the model's frame rate is "
                                                "in its manifest: fps)")))
        self.max_gap = float(self.param("max_gap", 1.0, "Reset the temporal state when image stamps jump forward "
                                        "or backwards by more than this (s)"))
        self.top_k = int(self.param("top_k", 3, "Classes reported, most probable first"))
        self.activity_pub = self.create_publisher(Classification, "activity", 10)
        self.label_pub = self.create_publisher(String, "activity/label", 10)
        self.last_stamp = None
        self.received = 0  # images since the last reset (frame_skip counts these)
        self.window = deque()  # clip mode: the last receptive-field frames

    def load_model(self):
        spec = registry.default_registry().spec(self.model_name)
        extra = spec.extra
        if self.mode == "continual":
            model = build_x3d(extra["architecture"], extra["num_classes"], **extra["model_options"])
        else:
            model = build_x3d(extra["regular_architecture"], extra["num_classes"], **extra["regular_options"])
        model.load_state_dict(registry.load_state_dict(self.model_name))
        self.labels = list(extra["labels"])
        self.size = int(extra["input_size"])
        norm = extra.get("normalization", {})
        self.mean, self.std = float(norm.get("mean", 0.45)), float(norm.get("std", 0.225))
        self.receptive_field = int(extra["receptive_field"])
        self.window = deque(maxlen=self.receptive_field)
        self.get_logger().info(
            f"{self.model_name} ({self.mode}): {len(self.labels)} classes, trained at {extra.get('fps', '?')} "
            f"frames/s; using every {self.frame_skip}. image, first prediction after {self.receptive_field} "
            "used images")
        return model.eval().to(self.device)

    def convert(self, msg):
        image = super().convert(msg)
        if image.ndim != 3 or min(image.shape[:2]) < 1:
            raise ValueError(f"expected a colour image, got shape {image.shape}")
        return stamp_seconds(msg.header), image

    def reset(self) -> None:
        """Forget the stream: the next receptive field of used images is a warm-up again."""
        if self.mode == "continual":
            self.model.clean_state()
        self.window.clear()
        self.received = 0

    def infer(self, data):
        """-> None (image skipped by frame_skip), ("warming", k, N) or ("result", probabilities)."""
        stamp, image = data
        if self.last_stamp is not None and abs(stamp - self.last_stamp) > self.max_gap:
            self.get_logger().info(f"image stamps jumped by {stamp - self.last_stamp:+.2f} s: state reset")
            self.reset()
        self.last_stamp = stamp
        self.received += 1
        if (self.received - 1) % self.frame_skip:
            return None
        frame = to_frame_tensor(square_resize(image, self.size), self.mean, self.std).to(self.device)
        with torch.no_grad():
            if self.mode == "continual":
                logits = self.model.forward_step(frame)
                seen = self.model.get_state()["steps"]
            else:
                self.window.append(frame)
                seen = len(self.window)
                logits = self.model(torch.stack(list(self.window), 2)) if seen == self.receptive_field else None
        if logits is None:
            return ("warming", seen, self.receptive_field)
        return ("result", torch.softmax(logits[0].float(), 0).cpu().numpy())

    def publish_results(self, result, header, data):
        if result is None:
            return
        out = Classification(header=header)
        if result[0] == "warming":
            label = f"warming up ({result[1]}/{result[2]} frames)"
        else:
            probabilities = result[1]
            for index in np.argsort(-probabilities)[: self.top_k]:
                out.results.append(ObjectHypothesis(class_id=self.labels[index], score=float(probabilities[index])))
            label = f"{out.results[0].class_id} {out.results[0].score:.2f}"
        self.activity_pub.publish(out)
        self.label_pub.publish(String(data=label))
        if self.publish_annotated:
            image = np.ascontiguousarray(data[1][..., ::-1])  # RGB -> BGR
            h, w = image.shape[:2]
            draw_box(image, BoundingBox(0, 0, w - 1, h - 1), label=label)
            self.publish_annotated_image(image, header)


def main(args=None):
    run_node(VideoActivityNode, args)


if __name__ == "__main__":
    main()
