"""opendr-bag: make, play, record, inspect and export rosbag2 bags (MCAP or sqlite3).

Works without the ``ros2`` CLI (built on the ``rosbags`` package and rclpy);
bags it writes are rosbag2 format version 8, which ``ros2 bag info`` and
``ros2 bag play`` of Iron, Jazzy and Kilted read.

  opendr-bag make  OUT --images a.jpg b.png     # a bag from photos
  opendr-bag make  OUT --video clip.mp4 --fps 10
  opendr-bag make  OUT --sample people          # from the real sample photos
  opendr-bag play  BAG --rate 1 --loop --remap /camera/image_raw:=/image
  opendr-bag record OUT --topics /faces /poses --duration 10
  opendr-bag info  BAG
  opendr-bag export BAG --topic /face_detection/annotated_image --out frames/
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np
from tqdm import tqdm

BAG_VERSION = 8
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


class BagError(RuntimeError):
    """A bag cannot be read or written; the message says why."""


# --- types -----------------------------------------------------------------------------------------

def _typestore():
    from rosbags.typesys import Stores, get_typestore
    distro = os.environ.get("ROS_DISTRO", "jazzy").upper()
    return get_typestore(getattr(Stores, f"ROS2_{distro}", Stores.ROS2_JAZZY))


def _msg_file(msgtype: str) -> Optional[Path]:
    """The .msg definition of ``pkg/msg/Name`` from the ament index (AMENT_PREFIX_PATH)."""
    package, _, name = msgtype.split("/")
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        path = Path(prefix) / "share" / package / "msg" / f"{name}.msg"
        if path.is_file():
            return path
    return None


def ensure_type(typestore, msgtype: str) -> None:
    """Register ``msgtype`` (and the types it uses) in ``typestore`` from installed .msg files."""
    if msgtype in typestore.fielddefs:
        return
    from rosbags.interfaces import Nodetype
    from rosbags.typesys import get_types_from_msg
    path = _msg_file(msgtype)
    if path is None:
        raise BagError(f"message type {msgtype} is unknown: its .msg file is not in AMENT_PREFIX_PATH "
                       "(source the workspace that provides it)")
    types = get_types_from_msg(path.read_text(encoding="utf-8"), msgtype)
    for _, fields in types.values():
        for _, (nodetype, spec) in fields:
            if nodetype in (Nodetype.ARRAY, Nodetype.SEQUENCE):  # ((element nodetype, spec), count)
                nodetype, spec = spec[0]
            if nodetype == Nodetype.NAME:
                ensure_type(typestore, spec)
    typestore.register(types)


def message_class(msgtype: str):
    """The Python class of ``pkg/msg/Name`` (the interface package must be importable)."""
    package, kind, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError) as e:
        raise BagError(f"cannot import {msgtype}: {e}; source the workspace that provides {package}") from e


def first_field_is_header(typestore, msgtype: str) -> bool:
    ensure_type(typestore, msgtype)
    fields = typestore.fielddefs[msgtype][1]
    return bool(fields) and fields[0][1][1] == "std_msgs/msg/Header"


def restamp_cdr(raw: bytes, stamp_ns: int) -> bytes:
    """CDR bytes of a message whose first field is a Header, with header.stamp replaced."""
    data = bytearray(raw)
    little = data[1] == 1  # encapsulation kind: 0x0001 CDR_LE
    order = "little" if little else "big"
    data[4:8] = int(stamp_ns // 1_000_000_000).to_bytes(4, order, signed=True)
    data[8:12] = int(stamp_ns % 1_000_000_000).to_bytes(4, order)
    return bytes(data)


# --- reading -----------------------------------------------------------------------------------------

def open_reader(path: Path):
    from rosbags.rosbag2 import Reader
    path = Path(path)
    if not path.exists():
        raise BagError(f"no bag at {path}")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as e:  # noqa: BLE001 - rosbags raises several types for broken bags
        raise BagError(f"{path} is not a readable rosbag2 bag: {e}") from e
    return reader


def read_messages(path: Path, topics: Optional[Iterable[str]] = None) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, msgtype, log time ns, CDR bytes) of every message, in time order."""
    reader = open_reader(path)
    try:
        wanted = set(topics) if topics else None
        connections = [c for c in reader.connections if wanted is None or c.topic in wanted]
        for conn, timestamp, raw in reader.messages(connections=connections):
            yield conn.topic, conn.msgtype, timestamp, bytes(raw)
    except BagError:
        raise
    except Exception as e:  # noqa: BLE001
        raise BagError(f"{path}: reading failed ({type(e).__name__}: {e}); the bag may be truncated") from e
    finally:
        reader.close()


# --- writing -----------------------------------------------------------------------------------------

class BagWriter:
    """Writes CDR messages into a new rosbag2 bag (MCAP by default)."""

    def __init__(self, path: Path, storage: str = "mcap"):
        from rosbags.rosbag2 import StoragePlugin, Writer
        if storage not in ("mcap", "sqlite3"):
            raise BagError(f"storage must be mcap or sqlite3, not '{storage}'")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path} exists already; choose another output or delete it")
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self.typestore = _typestore()
        self.writer = Writer(self.path, version=BAG_VERSION, storage_plugin=plugin)
        self.writer.open()
        self.connections: dict[str, object] = {}
        self.count = 0

    def write(self, topic: str, msgtype: str, timestamp_ns: int, raw: bytes) -> None:
        conn = self.connections.get(topic)
        if conn is None:
            ensure_type(self.typestore, msgtype)
            conn = self.connections[topic] = self.writer.add_connection(topic, msgtype, typestore=self.typestore)
        self.writer.write(conn, int(timestamp_ns), raw)
        self.count += 1

    def close(self) -> None:
        self.writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def image_frames(images: Iterable[Path] = (), video: Optional[Path] = None, every: int = 1,
                 max_frames: Optional[int] = None, resize: Optional[tuple[int, int]] = None) -> Iterator[np.ndarray]:
    """BGR frames from image files or a video file."""
    import cv2
    count = 0

    def emit(frame):
        return cv2.resize(frame, resize, interpolation=cv2.INTER_AREA) if resize else frame

    if video is not None:
        capture = cv2.VideoCapture(str(video))
        if not capture.isOpened():
            raise BagError(f"cannot open video {video}")
        index = 0
        try:
            while max_frames is None or count < max_frames:
                ok, frame = capture.read()
                if not ok:
                    break
                if index % every == 0:
                    count += 1
                    yield emit(frame)
                index += 1
        finally:
            capture.release()
        return
    for path in images:
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            raise BagError(f"cannot read image {path}")
        if max_frames is not None and count >= max_frames:
            return
        count += 1
        yield emit(frame)


def make_image_bag(output: Path, frames: Iterable[np.ndarray], topic: str = "/camera/image_raw",
                   frame_id: str = "camera", fps: float = 10.0, compressed: bool = False, storage: str = "mcap",
                   start_ns: Optional[int] = None, total: Optional[int] = None) -> int:
    """Write frames as sensor_msgs/Image (or CompressedImage jpeg) at ``fps``; returns the message count."""
    from rclpy.serialization import serialize_message
    from std_msgs.msg import Header

    from opendr_perception.ros.bridge import numpy_to_compressed, numpy_to_image
    if fps <= 0:
        raise BagError(f"fps must be positive, not {fps}")
    start_ns = time.time_ns() if start_ns is None else start_ns
    msgtype = COMPRESSED_TYPE if compressed else IMAGE_TYPE
    with BagWriter(output, storage) as writer:
        for i, frame in enumerate(tqdm(frames, total=total, unit="frame", desc=f"writing {output}",
                                       disable=not sys.stderr.isatty())):
            stamp = start_ns + int(round(i * 1e9 / fps))
            header = Header(frame_id=frame_id)
            header.stamp.sec, header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            msg = numpy_to_compressed(frame, "jpeg", header) if compressed else numpy_to_image(frame, "bgr8", header)
            writer.write(topic, msgtype, stamp, serialize_message(msg))
        count = writer.count
    if count == 0:
        raise BagError("no frames were written")
    return count


# --- playing -----------------------------------------------------------------------------------------

def parse_remaps(remaps: Iterable[str]) -> dict[str, str]:
    out = {}
    for remap in remaps:
        if ":=" not in remap:
            raise BagError(f"remap '{remap}' is not of the form FROM:=TO")
        source, target = remap.split(":=", 1)
        out[source] = target
    return out


def play(bag: Path, rate: float = 1.0, max_rate: bool = False, loop: bool = False, remap: Optional[dict] = None,
         topics: Optional[list[str]] = None, restamp: bool = False, clock: bool = False, reliable: bool = True,
         wait_for_subscribers: float = 0.0, node=None, progress: bool = True) -> int:
    """Publish the bag's messages on live topics; returns the number published."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    if rate <= 0:
        raise BagError(f"rate must be positive, not {rate}")
    remap = remap or {}
    reader = open_reader(bag)
    connections = [c for c in reader.connections if not topics or c.topic in topics]
    total = sum(c.msgcount for c in connections)
    reader.close()
    if not connections:
        raise BagError(f"{bag} has none of the topics {topics}" if topics else f"{bag} has no messages")
    own_node = node is None
    if own_node:
        node = rclpy.create_node("opendr_bag_player")
    typestore = _typestore()
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)
    publishers, headered = {}, {}
    for c in connections:
        if c.topic not in publishers:
            publishers[c.topic] = node.create_publisher(message_class(c.msgtype), remap.get(c.topic, c.topic), qos)
            headered[c.topic] = restamp and first_field_is_header(typestore, c.msgtype)
    clock_pub = None
    if clock:
        from rosgraph_msgs.msg import Clock
        clock_pub = node.create_publisher(Clock, "/clock", 10)
    deadline = time.monotonic() + wait_for_subscribers
    while time.monotonic() < deadline and not all(p.get_subscription_count() for p in publishers.values()):
        time.sleep(0.05)
    published = 0
    try:
        with tqdm(total=total * (1 if not loop else 0) or None, unit="msg", desc=f"playing {Path(bag).name}",
                  disable=not (progress and sys.stderr.isatty())) as bar:
            while True:
                start_wall, first_ns = time.monotonic(), None
                for topic, _, timestamp, raw in read_messages(bag, [c.topic for c in connections]):
                    if first_ns is None:
                        first_ns = timestamp
                    if not max_rate:
                        delay = start_wall + (timestamp - first_ns) * 1e-9 / rate - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                    if headered[topic]:
                        raw = restamp_cdr(raw, node.get_clock().now().nanoseconds)
                    if clock_pub is not None:
                        from rosgraph_msgs.msg import Clock
                        msg = Clock()
                        msg.clock.sec, msg.clock.nanosec = divmod(timestamp, 1_000_000_000)
                        clock_pub.publish(msg)
                    publishers[topic].publish(raw)
                    published += 1
                    bar.update(1)
                if not loop or not rclpy.ok():
                    break
    finally:
        if own_node:
            node.destroy_node()
    return published


# --- recording -----------------------------------------------------------------------------------------

def record(output: Path, topics: list[str], duration: Optional[float] = None, max_messages: Optional[int] = None,
           storage: str = "mcap", node=None) -> int:
    """Record ``topics`` (raw CDR, receive time) into a new bag until duration, max_messages or Ctrl-C.

    Topics are subscribed as their publishers appear, with the publishers' reliability and durability
    (reliable only when every publisher is, transient local when any is).
    """
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    own_node = node is None
    if own_node:
        node = rclpy.create_node("opendr_bag_recorder")
    writer = BagWriter(output, storage)
    bar = tqdm(unit="msg", desc=f"recording {output}", disable=not sys.stderr.isatty())
    subscribed: set[str] = set()
    failed: set[str] = set()
    done = {"stop": False}

    def on_message(topic, msgtype):
        def callback(raw):
            if done["stop"] or topic in failed:
                return
            try:
                writer.write(topic, msgtype, node.get_clock().now().nanoseconds, raw)
            except Exception as e:  # noqa: BLE001 - one topic that cannot be written must not stop the rest
                failed.add(topic)
                node.get_logger().error(f"cannot record {topic}: {e}")
                return
            bar.update(1)
            done["stop"] = bool(max_messages) and writer.count >= max_messages
        return callback

    def discover():
        for topic, types in node.get_topic_names_and_types():
            if topic not in topics or topic in subscribed:
                continue
            infos = node.get_publishers_info_by_topic(topic)
            if not infos:
                continue
            reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
            latched = any(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
            qos = QoSProfile(depth=100,
                             reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
            node.create_subscription(message_class(types[0]), topic, on_message(topic, types[0]), qos, raw=True)
            subscribed.add(topic)
            node.get_logger().info(f"recording {topic} ({types[0]})")

    end = None if duration is None else time.monotonic() + duration
    next_discovery = 0.0
    try:
        while rclpy.ok() and not done["stop"] and (end is None or time.monotonic() < end):
            if time.monotonic() >= next_discovery and len(subscribed) < len(topics):
                discover()
                next_discovery = time.monotonic() + 0.2
            rclpy.spin_once(node, timeout_sec=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        bar.close()
        writer.close()
        missing = sorted(set(topics) - subscribed)
        if missing:
            node.get_logger().warning(f"never published, not recorded: {', '.join(missing)}")
        if own_node:
            node.destroy_node()
    return writer.count


# --- command line -------------------------------------------------------------------------------------

def _storage_of(bag: Path) -> str:
    import yaml
    metadata = yaml.safe_load((Path(bag) / "metadata.yaml").read_text(encoding="utf-8"))
    return metadata["rosbag2_bagfile_information"]["storage_identifier"]


def info(bag: Path) -> str:
    reader = open_reader(bag)
    try:
        lines = [f"path:      {bag}",
                 f"storage:   {_storage_of(bag)}",
                 f"duration:  {reader.duration * 1e-9:.3f} s",
                 f"messages:  {reader.message_count}",
                 "topics:"]
        for c in sorted(reader.connections, key=lambda c: c.topic):
            lines.append(f"  {c.topic}  {c.msgtype}  {c.msgcount} msgs")
        return "\n".join(lines)
    finally:
        reader.close()


def export_images(bag: Path, topic: str, out_dir: Path, every: int = 1) -> int:
    """Write the images of ``topic`` as PNG files named by their index and header stamp."""
    import cv2
    from rclpy.serialization import deserialize_message

    from opendr_perception.ros.bridge import compressed_to_numpy, image_to_numpy
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for i, (_, msgtype, _, raw) in enumerate(read_messages(bag, [topic])):
        if i % every:
            continue
        if msgtype not in (IMAGE_TYPE, COMPRESSED_TYPE):
            raise BagError(f"{topic} holds {msgtype}, not images")
        msg = deserialize_message(raw, message_class(msgtype))
        frame = compressed_to_numpy(msg) if msgtype == COMPRESSED_TYPE else image_to_numpy(msg, "bgr8")
        stamp = f"{msg.header.stamp.sec}.{msg.header.stamp.nanosec:09d}"
        cv2.imwrite(str(out_dir / f"{written:05d}_{stamp}.png"), frame)
        written += 1
    return written


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, not '{text}'")
    return int(match.group(1)), int(match.group(2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opendr-bag", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("make", help="make an image bag from photos, a video or the sample data")
    p.add_argument("output", type=Path, help="new bag directory")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", nargs="+", type=Path, help="image files (or directories of them), in order")
    source.add_argument("--video", type=Path, help="a video file OpenCV can read")
    source.add_argument("--sample", help="a sample sequence built from real photos (see --list-samples)")
    source.add_argument("--list-samples", action="store_true", help="list the sample sequences and exit")
    p.add_argument("--topic", default="/camera/image_raw", help="image topic (default %(default)s)")
    p.add_argument("--frame-id", default="camera", help="header frame_id (default %(default)s)")
    p.add_argument("--fps", type=float, default=10.0, help="frame rate of the stamps (default %(default)s)")
    p.add_argument("--every", type=int, default=1, help="keep every N-th video frame")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--repeat", type=int, default=1, help="write the image list this many times")
    p.add_argument("--resize", type=_size, help="resize frames to WxH")
    p.add_argument("--compressed", action="store_true", help="write sensor_msgs/CompressedImage (jpeg)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")

    p = sub.add_parser("play", help="publish a bag's messages on live topics")
    p.add_argument("bag", type=Path)
    p.add_argument("--rate", type=float, default=1.0, help="speed factor of the recorded timing")
    p.add_argument("--max-rate", action="store_true", help="publish as fast as possible")
    p.add_argument("--loop", action="store_true", help="start again at the end, until Ctrl-C")
    p.add_argument("--remap", nargs="*", default=[], metavar="FROM:=TO", help="publish a topic under another name")
    p.add_argument("--topics", nargs="*", help="play only these topics")
    p.add_argument("--restamp", action="store_true", help="set header.stamp to the publication time")
    p.add_argument("--clock", action="store_true", help="publish /clock from the bag's times (use_sim_time)")
    p.add_argument("--best-effort", action="store_true", help="publish best effort instead of reliable")
    p.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to this long for a subscriber on every topic before playing")

    p = sub.add_parser("record", help="record live topics into a new bag")
    p.add_argument("output", type=Path)
    p.add_argument("--topics", nargs="+", required=True)
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--max-messages", type=int, help="stop after this many messages")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")

    p = sub.add_parser("info", help="print a bag's topics, types, counts and duration")
    p.add_argument("bag", type=Path)

    p = sub.add_parser("export", help="write a bag's images as PNG files")
    p.add_argument("bag", type=Path)
    p.add_argument("--topic", required=True)
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--every", type=int, default=1, help="keep every N-th image")
    return parser


def _expand_images(paths: list[Path]) -> list[Path]:
    files = []
    for path in paths:
        files.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() else [path])
    return files


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "info":
            print(info(args.bag))
            return 0
        if args.command == "export":
            print(f"wrote {export_images(args.bag, args.topic, args.out, args.every)} images to {args.out}")
            return 0
        if args.command == "make":
            from opendr_perception.tools import sample_data
            if args.list_samples:
                print("\n".join(f"{name}: {doc}" for name, doc in sample_data.describe().items()))
                return 0
            if args.sample:
                frames = sample_data.frames(args.sample)
            else:
                images = _expand_images(args.images or [])
                frames = image_frames(images * args.repeat, args.video, args.every, args.max_frames, args.resize)
            count = make_image_bag(args.output, frames, args.topic, args.frame_id, args.fps, args.compressed,
                                   args.storage)
            print(f"wrote {count} frames on {args.topic} to {args.output}")
            return 0
        import rclpy

        from opendr_perception.ros.node_base import apply_fastdds_profile
        apply_fastdds_profile()
        rclpy.init()
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        try:
            if args.command == "play":
                n = play(args.bag, args.rate, args.max_rate, args.loop, parse_remaps(args.remap), args.topics,
                         args.restamp, args.clock, not args.best_effort, args.wait_for_subscribers)
                print(f"published {n} messages")
            else:
                n = record(args.output, args.topics, args.duration, args.max_messages, storage=args.storage)
                print(f"recorded {n} messages to {args.output}")
        except KeyboardInterrupt:
            pass
        finally:
            rclpy.try_shutdown()
        return 0
    except BagError as e:
        print(f"opendr-bag: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
