"""Helpers for end-to-end tests: collect messages from live topics, publish frames, wait for nodes."""
from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from opendr_perception.ros.bridge import numpy_to_image


class Probe:
    """Collects the messages of one topic."""

    def __init__(self, node, msg_type, topic: str, reliable: bool = True, latched: bool = False):
        self.node, self.messages = node, []
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
        self.subscription = node.create_subscription(msg_type, topic, self.messages.append, qos)

    def wait_for(self, count: int, timeout: float, predicate: Optional[Callable] = None) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len([m for m in self.messages if predicate is None or predicate(m)]) >= count:
                break
            rclpy.spin_once(self.node, timeout_sec=0.05)
        return list(self.messages)


def spin_for(node, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)


def wait_for_subscriber(node, publisher, timeout: float, process=None, count: int = 1) -> None:
    """Wait until ``count`` subscriptions match ``publisher`` (the nodes have started)."""
    deadline = time.monotonic() + timeout
    while publisher.get_subscription_count() < count:
        processes = process if isinstance(process, (list, tuple)) else [process]
        for proc in filter(None, processes):
            if not proc.alive():
                raise AssertionError(f"{proc.name} exited early:\n{proc.log()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no subscriber on {publisher.topic_name} after {timeout} s")
        rclpy.spin_once(node, timeout_sec=0.05)


def image_message(image: np.ndarray, node, frame_id: str = "camera", encoding: str = "bgr8",
                  stamp_ns: Optional[int] = None) -> Image:
    msg = numpy_to_image(image, encoding)
    msg.header.frame_id = frame_id
    stamp_ns = node.get_clock().now().nanoseconds if stamp_ns is None else stamp_ns
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return msg


def malformed_images(good: np.ndarray) -> list[tuple[str, Image]]:
    """Messages a node must survive: each is (what is wrong, message)."""
    out = []
    base = numpy_to_image(good, "bgr8")

    def variant(what, **fields):
        msg = numpy_to_image(good, "bgr8")
        for key, value in fields.items():
            setattr(msg, key, value)
        out.append((what, msg))

    variant("unknown encoding", encoding="not_an_encoding")
    variant("zero size", height=0, width=0, step=0, data=[])
    variant("data shorter than height*step", data=base.data[: len(base.data) // 2])
    variant("huge image header", height=40000, width=40000, step=120000)
    variant("step smaller than a row", step=3)
    nan_image = numpy_to_image(np.full(good.shape[:2], np.nan, np.float32), "32FC1")
    out.append(("NaN float image", nan_image))
    variant("depth encoding for a colour model", encoding="16UC1", step=good.shape[1] * 2)
    return out


def seconds_to_zero_velocity(node, images: Probe, commands: Probe, timeout: float = 3.0) -> Optional[float]:
    """After the camera was stopped: seconds from the last image that still arrived to the first zero
    velocity command (``None`` if none came within ``timeout``). Images still in flight restart the clock."""
    last_image, seen = time.monotonic(), len(images.messages)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spin_for(node, 0.01)
        if len(images.messages) > seen:
            seen, last_image = len(images.messages), time.monotonic()
        latest = commands.messages[-1] if commands.messages else None
        if latest is not None and latest.linear.x == latest.linear.y == latest.angular.z == 0.0:
            return time.monotonic() - last_image
    return None


def write_astronaut_gallery(path):
    """A face gallery at ``path`` with Eileen Collins enrolled from the astronaut photo (the simulator
    textures her head with it); returns the path."""
    from opendr_perception.core import samples
    from opendr_perception.core.face_gallery import FaceGallery
    from opendr_perception.models.face_detection import FaceDetector
    from opendr_perception.models.face_recognition import DlibResNetEmbedder
    photo = samples.astronaut()
    embedder = DlibResNetEmbedder()
    gallery = FaceGallery(embedder.name, embedder.default_threshold, dim=embedder.dim)
    face, = FaceDetector("full_range").detect(photo)
    gallery.enroll("eileen_collins", embedder.embed(photo, face.box))
    gallery.save(path)
    return path
