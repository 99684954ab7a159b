"""opendr-bag: bags made from photos and videos, read back exactly, readable by an independent MCAP
reader, played into live topics and recorded from them over real DDS."""
import subprocess

import cv2
import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.ros

bag = pytest.importorskip("opendr_perception.tools.bag")
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from conftest import executable  # noqa: E402
from e2e_support import spin_for  # noqa: E402
from opendr_perception.core import samples  # noqa: E402
from opendr_perception.core.types import BoundingBox, Detection  # noqa: E402
from opendr_perception.ros.bridge import detections_to_msg, image_to_numpy  # noqa: E402


def photos(tmp_path, count=3):
    paths = []
    for i, photo in enumerate([samples.astronaut(), samples.grace_hopper(), samples.cameraman()][:count]):
        path = tmp_path / f"photo{i}.png"
        cv2.imwrite(str(path), photo)
        paths.append(path)
    return paths


def bag_images(path, topic="/camera/image_raw"):
    return [image_to_numpy(deserialize_message(raw, Image), "bgr8")
            for _, _, _, raw in bag.read_messages(path, [topic])]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_make_from_images_reads_back_exactly(tmp_path, storage):
    paths = photos(tmp_path)
    out = tmp_path / "bag"
    assert bag.main(["make", str(out), "--images", *map(str, paths), "--fps", "4", "--storage", storage]) == 0
    frames = bag_images(out)
    assert len(frames) == 3
    for frame, path in zip(frames, paths):
        np.testing.assert_array_equal(frame, cv2.imread(str(path)))
    stamps = [t for _, _, t, _ in bag.read_messages(out)]
    assert np.allclose(np.diff(stamps), 0.25e9)
    metadata = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert metadata["version"] == bag.BAG_VERSION and metadata["storage_identifier"] == storage
    assert all((out / f).is_file() for f in metadata["relative_file_paths"])
    topic = metadata["topics_with_message_count"][0]
    assert topic["message_count"] == 3 and topic["topic_metadata"]["type_description_hash"].startswith("RIHS01_")


def test_mcap_is_self_describing_for_an_independent_reader(tmp_path):
    """ros2 bag reads MCAP through the schemas embedded in the file: decode with them, not with our types."""
    from mcap_ros2.reader import read_ros2_messages
    out = tmp_path / "bag"
    bag.main(["make", str(out), "--images", *map(str, photos(tmp_path, 2))])
    decoded = list(read_ros2_messages(str(next(out.glob("*.mcap")))))
    assert [m.channel.topic for m in decoded] == ["/camera/image_raw"] * 2
    assert decoded[0].schema.name == "sensor_msgs/msg/Image"
    assert (decoded[0].ros_msg.height, decoded[0].ros_msg.width, decoded[0].ros_msg.encoding) == (512, 512, "bgr8")


def test_make_from_video(tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for i in range(12):
        frame = np.zeros((240, 320, 3), np.uint8)
        cv2.circle(frame, (20 + 20 * i, 120), 15, (0, 255, 0), -1)
        writer.write(frame)
    writer.release()
    out = tmp_path / "bag"
    assert bag.main(["make", str(out), "--video", str(video), "--every", "2", "--resize", "160x120"]) == 0
    frames = bag_images(out)
    assert len(frames) == 6 and frames[0].shape == (120, 160, 3)


def test_sample_sequences_are_real_photos(tmp_path):
    out = tmp_path / "bag"
    assert bag.main(["make", str(out), "--sample", "people", "--compressed"]) == 0
    assert "sensor_msgs/msg/CompressedImage" in bag.info(out)


def test_broken_inputs_give_clear_errors(tmp_path, capsys):
    assert bag.main(["info", str(tmp_path / "missing")]) == 1
    assert "no bag at" in capsys.readouterr().err
    broken = tmp_path / "broken"
    bag.main(["make", str(broken), "--images", *map(str, photos(tmp_path, 1))])
    mcap_file = next(broken.glob("*.mcap"))
    mcap_file.write_bytes(mcap_file.read_bytes()[:200])
    assert bag.main(["export", str(broken), "--topic", "/camera/image_raw", "--out", str(tmp_path / "x")]) == 1
    assert "opendr-bag:" in capsys.readouterr().err
    (tmp_path / "notabag").mkdir()
    (tmp_path / "notabag" / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 99}")
    assert bag.main(["info", str(tmp_path / "notabag")]) == 1
    assert bag.main(["make", str(broken), "--sample", "people"]) == 1  # exists already
    assert "exists already" in capsys.readouterr().err


def test_restamp_replaces_only_the_stamp():
    msg = Image(height=2, width=3, encoding="mono8", step=3, data=list(range(6)))
    msg.header.frame_id = "cam"
    patched = deserialize_message(bag.restamp_cdr(serialize_message(msg), 1_700_000_000_123_456_789), Image)
    assert (patched.header.stamp.sec, patched.header.stamp.nanosec) == (1_700_000_000, 123_456_789)
    assert patched.header.frame_id == "cam" and list(patched.data) == list(range(6))


def test_export_writes_pngs(tmp_path):
    out = tmp_path / "bag"
    bag.main(["make", str(out), "--images", *map(str, photos(tmp_path, 2))])
    assert bag.main(["export", str(out), "--topic", "/camera/image_raw", "--out", str(tmp_path / "png")]) == 0
    files = sorted((tmp_path / "png").glob("*.png"))
    assert len(files) == 2 and cv2.imread(str(files[1])).shape == (600, 512, 3)


@pytest.mark.smoke
def test_play_and_record_over_dds(tmp_path, test_node, start_process):
    """Play a bag with a remap while recording the remapped topic and a custom-type topic in another process."""
    source = tmp_path / "source"
    bag.main(["make", str(source), "--sample", "people", "--fps", "20"])
    recorded = tmp_path / "recorded"
    publisher = test_node.create_publisher(Detection2DArray, "/faces", 10)
    recorder = start_process("opendr-bag", ["record", str(recorded), "--topics", "/image", "/faces",
                                            "--duration", "12"])
    spin_for(test_node, 2.0)  # the recorder discovers /faces now; /image appears when the player starts
    player = subprocess.run([executable("opendr-bag"), "play", str(source), "--remap", "/camera/image_raw:=/image",
                             "--wait-for-subscribers", "8", "--restamp"], capture_output=True, text=True, timeout=60)
    assert player.returncode == 0, player.stderr
    assert "published 20 messages" in player.stdout
    det = detections_to_msg([Detection(BoundingBox(1, 2, 3, 4), 0.5, "face")], Image().header)
    for _ in range(3):
        publisher.publish(det)
        spin_for(test_node, 0.1)
    recorder.stop()
    counts = {line.split()[0]: int(line.split()[2]) for line in bag.info(recorded).splitlines()
              if line.startswith("  /")}
    assert counts.get("/faces") == 3
    assert counts.get("/image", 0) >= 18, recorder.log()  # reliable, local: nothing should be lost
    frames = bag_images(recorded, "/image")
    assert frames[0].shape == (480, 640, 3)
