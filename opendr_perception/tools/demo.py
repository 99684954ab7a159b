"""opendr-demo: the first nodes on a bag of real photos, end to end over real DDS.

1. makes the sample bag (real photos composed into 640x480 camera frames), or takes ``--bag``;
2. starts face_detection, pose_estimation and high_resolution_pose_estimation as separate processes,
   and a recorder;
3. plays the bag into the camera topic;
4. writes everything the nodes published to an MCAP bag (``output_bag``), the annotated images
   as PNG files (``annotated/<node>/``), and prints a per-frame summary.

Discovery stays on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) unless you set it.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

CAMERA = "/camera/image_raw"
NODES = {  # executable: (remappings, parameters)
    "face_detection": ({}, {"rep155": "true"}),
    "pose_estimation": ({}, {"publish_markers": "true"}),
    "high_resolution_pose_estimation": ({"poses": "/high_resolution/poses"}, {}),
}
RESULT_TOPICS = ["/faces", "/poses", "/high_resolution/poses", "/face_detection/annotated_image",
                 "/pose_estimation/annotated_image", "/high_resolution_pose_estimation/annotated_image",
                 "/humans/faces/tracked", "/pose_estimation/markers"]


def _start(command: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=os.environ.copy())


def _stop(process: subprocess.Popen, timeout: float = 15.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _executable(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).parent / name)


def _stamp(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def summarize(input_bag: Path, output_bag: Path) -> str:
    from rclpy.serialization import deserialize_message

    from opendr_perception.tools.bag import message_class, read_messages
    inputs = [deserialize_message(raw, message_class(t)).header for _, t, _, raw in read_messages(input_bag)]
    found: dict[str, dict[int, int]] = {"/faces": {}, "/poses": {}, "/high_resolution/poses": {}}
    for topic, msgtype, _, raw in read_messages(output_bag, list(found)):
        msg = deserialize_message(raw, message_class(msgtype))
        found[topic][_stamp(msg.header)] = len(msg.detections if topic == "/faces" else msg.poses)
    lines = [f"{'frame':>5}  {'faces':>5}  {'people':>6}  {'people (high-res)':>17}"]
    for i, header in enumerate(inputs):
        cells = [found[t].get(_stamp(header), "-") for t in found]
        lines.append(f"{i:5d}  {cells[0]!s:>5}  {cells[1]!s:>6}  {cells[2]!s:>17}")
    answered = {t: len(v) for t, v in found.items()}
    lines.append(f"{len(inputs)} frames in; answered: " + ", ".join(f"{t} {n}" for t, n in answered.items()))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="opendr-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("opendr_demo_output"),
                        help="directory for the bags and images (default %(default)s)")
    parser.add_argument("--bag", type=Path, help="play this image bag instead of the sample (camera topic: --topic)")
    parser.add_argument("--topic", default=CAMERA, help="image topic in the bag (default %(default)s)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default %(default)s)")
    parser.add_argument("--startup-timeout", type=float, default=90.0, help="seconds to wait for the nodes")
    args = parser.parse_args(argv)

    import rclpy

    from opendr_perception.ros.node_base import apply_fastdds_profile
    from opendr_perception.tools import bag, sample_data

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    apply_fastdds_profile()
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for made_by_demo in ("input_bag", "output_bag", "annotated", "logs"):
        shutil.rmtree(out / made_by_demo, ignore_errors=True)
    (out / "logs").mkdir()
    input_bag = args.bag
    if input_bag is None:
        input_bag = out / "input_bag"
        count = bag.make_image_bag(input_bag, sample_data.frames("people"), args.topic, fps=5.0)
        print(f"[demo] sample bag: {count} frames of real photos -> {input_bag}")

    processes = {}
    try:
        for name, (remaps, params) in NODES.items():
            cmd = [_executable(name), "--ros-args", "-r", f"image:={args.topic}"]
            cmd += [a for k, v in remaps.items() for a in ("-r", f"{k}:={v}")]
            cmd += [a for k, v in params.items() for a in ("-p", f"{k}:={v}")]
            processes[name] = _start(cmd, out / "logs" / f"{name}.log")
        processes["recorder"] = _start([_executable("opendr-bag"), "record", str(out / "output_bag"),
                                        "--topics", *RESULT_TOPICS], out / "logs" / "recorder.log")
        rclpy.init()
        node = rclpy.create_node("opendr_demo")
        print(f"[demo] waiting for {', '.join(NODES)} to start (models load on the first run)...")
        deadline = time.monotonic() + args.startup_timeout
        while node.count_subscribers(args.topic) < len(NODES):
            for name, process in processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited; see {out / 'logs' / (name + '.log')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the nodes did not subscribe to {args.topic} within {args.startup_timeout} s")
            rclpy.spin_once(node, timeout_sec=0.1)
        time.sleep(2.0)  # the recorder subscribes to the outputs as their publishers appear
        print(f"[demo] playing {input_bag} at {args.rate}x")
        published = bag.play(input_bag, rate=args.rate, topics=[args.topic], node=node)
        time.sleep(3.0)  # the last frames are still being processed
        node.destroy_node()
    finally:
        for process in processes.values():
            _stop(process)
        rclpy.try_shutdown()
    print(f"[demo] published {published} frames; results -> {out / 'output_bag'}")
    for topic in RESULT_TOPICS:
        if topic.endswith("annotated_image"):
            folder = out / "annotated" / topic.strip("/").split("/")[0]
            try:
                written = bag.export_images(out / "output_bag", topic, folder)
                print(f"[demo] {written} annotated images -> {folder}")
            except bag.BagError as e:
                print(f"[demo] no images from {topic}: {e}")
    print(bag.info(out / "output_bag"))
    print(summarize(input_bag, out / "output_bag"))
    print(f"[demo] open the results: ros2 bag info {out / 'output_bag'}, or the PNG files in {out / 'annotated'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
