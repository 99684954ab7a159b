"""The image/detection bridge: round trips for every encoding and cv_bridge's conversion rules."""
import array
import sys

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.smoke]

bridge = pytest.importorskip("opendr_perception.ros.bridge")
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from opendr_perception.core.types import BoundingBox, Detection, PersonPose  # noqa: E402
from opendr_perception.ros.bridge import ImageConversionError  # noqa: E402

RNG = np.random.default_rng(0)

ENCODINGS = {  # encoding: (dtype, channels)
    "bgr8": (np.uint8, 3), "rgb8": (np.uint8, 3), "bgra8": (np.uint8, 4), "rgba8": (np.uint8, 4),
    "mono8": (np.uint8, 1), "mono16": (np.uint16, 1), "8UC1": (np.uint8, 1), "8UC3": (np.uint8, 3),
    "16UC1": (np.uint16, 1), "32FC1": (np.float32, 1), "64FC1": (np.float64, 1), "16SC1": (np.int16, 1),
    "bgr16": (np.uint16, 3), "8UC4": (np.uint8, 4),
}


def random_image(dtype, channels, height=7, width=5):
    shape = (height, width) if channels == 1 else (height, width, channels)
    if np.issubdtype(dtype, np.floating):
        return RNG.normal(size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def header(stamp_sec=12, frame="camera"):
    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = stamp_sec, 345
    return h


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_round_trip_every_encoding(encoding):
    dtype, channels = ENCODINGS[encoding]
    image = random_image(dtype, channels)
    msg = bridge.numpy_to_image(image, encoding, header())
    assert (msg.height, msg.width, msg.encoding) == (7, 5, encoding)
    assert msg.step == 5 * channels * np.dtype(dtype).itemsize
    assert msg.header.frame_id == "camera" and msg.header.stamp.sec == 12
    back = bridge.image_to_numpy(msg)
    assert back.dtype == dtype and back.shape == image.shape
    np.testing.assert_array_equal(back, image)


def test_passthrough_infers_generic_encoding():
    assert bridge.numpy_to_image(random_image(np.uint8, 3)).encoding == "8UC3"
    assert bridge.numpy_to_image(random_image(np.float32, 1)).encoding == "32FC1"


def test_row_padding_is_skipped():
    image = random_image(np.uint16, 1, height=4, width=3)
    step = 3 * 2 + 5  # 5 bytes of padding per row (odd: rows are not even 2-byte aligned)
    rows = np.full((4, step), 0xAB, dtype=np.uint8)
    rows[:, :6] = image.view(np.uint8).reshape(4, 6)
    msg = Image(height=4, width=3, encoding="16UC1", step=step, is_bigendian=int(sys.byteorder == "big"))
    msg.data = array.array("B", rows.tobytes())
    np.testing.assert_array_equal(bridge.image_to_numpy(msg), image)


def test_big_endian_data_is_swapped():
    image = np.array([[1, 256, 65535]], dtype=np.uint16)
    msg = Image(height=1, width=3, encoding="mono16", step=6, is_bigendian=1)
    msg.data = array.array("B", image.astype(">u2").tobytes())
    np.testing.assert_array_equal(bridge.image_to_numpy(msg), image)


def test_colour_conversions_follow_cv_bridge():
    bgr = random_image(np.uint8, 3)
    msg = bridge.numpy_to_image(bgr, "bgr8")
    np.testing.assert_array_equal(bridge.image_to_numpy(msg, "rgb8"), bgr[:, :, ::-1])
    rgba = bridge.image_to_numpy(msg, "rgba8")
    assert rgba.shape == (7, 5, 4) and (rgba[:, :, 3] == 255).all()
    mono = random_image(np.uint8, 1)
    as_bgr = bridge.image_to_numpy(bridge.numpy_to_image(mono, "mono8"), "bgr8")
    assert all((as_bgr[:, :, c] == mono).all() for c in range(3))
    mono16 = np.array([[0, 257, 65535]], dtype=np.uint16)
    np.testing.assert_array_equal(
        bridge.image_to_numpy(bridge.numpy_to_image(mono16, "mono16"), "mono8"), [[0, 1, 255]])
    # a generic 3-channel 8-bit image is taken as it is
    np.testing.assert_array_equal(bridge.image_to_numpy(bridge.numpy_to_image(bgr, "8UC3"), "bgr8"), bgr)


def test_depth_image_to_colour_is_refused():
    depth = bridge.numpy_to_image(random_image(np.float32, 1), "32FC1")
    with pytest.raises(ImageConversionError, match="not a color format"):
        bridge.image_to_numpy(depth, "bgr8")


@pytest.mark.parametrize("change, message", [
    (dict(encoding="yuv_weird"), "unsupported image encoding 'yuv_weird'"),
    (dict(height=0, width=0, step=0), "zero size"),
    (dict(height=100000), "exceeds"),
    (dict(step=4), "step 4 is smaller"),
])
def test_malformed_headers_raise_clear_errors(change, message):
    msg = bridge.numpy_to_image(random_image(np.uint8, 3), "bgr8")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ImageConversionError, match=message):
        bridge.image_to_numpy(msg, "bgr8")


def test_short_data_raises():
    msg = bridge.numpy_to_image(random_image(np.uint8, 3), "bgr8")
    msg.data = msg.data[:-1]
    with pytest.raises(ImageConversionError, match="expected height\\*step"):
        bridge.image_to_numpy(msg)


def test_numpy_to_image_checks_the_encoding():
    with pytest.raises(ImageConversionError, match="needs 3 channel"):
        bridge.numpy_to_image(random_image(np.uint8, 1), "bgr8")
    with pytest.raises(ImageConversionError, match="non-empty"):
        bridge.numpy_to_image(np.zeros((0, 3, 3), np.uint8), "bgr8")


def test_compressed_round_trip():
    image = np.zeros((32, 48, 3), np.uint8)
    image[8:24, 10:30] = (10, 200, 90)
    png = bridge.numpy_to_compressed(image, "png", header())
    assert png.format.endswith("png compressed bgr8") and png.header.frame_id == "camera"
    np.testing.assert_array_equal(bridge.compressed_to_numpy(png), image)
    jpeg = bridge.compressed_to_numpy(bridge.numpy_to_compressed(image, "jpeg"), "rgb8")
    assert np.abs(jpeg.astype(int) - image[:, :, ::-1]).mean() < 3
    broken = bridge.numpy_to_compressed(image, "jpeg")
    broken.data = broken.data[:20]
    with pytest.raises(ImageConversionError, match="could not be decoded"):
        bridge.compressed_to_numpy(broken)


def test_detections_round_trip_with_header():
    dets = [Detection(BoundingBox(10, 20, 50, 80), 0.9, "face", track_id="3"),
            Detection(BoundingBox(0, 0, 4, 2), 0.4, "face")]
    msg = bridge.detections_to_msg(dets, header())
    assert msg.header.frame_id == "camera" and msg.detections[0].header.stamp.sec == 12
    d0 = msg.detections[0]
    assert (d0.bbox.center.position.x, d0.bbox.center.position.y, d0.bbox.size_x, d0.bbox.size_y) == (30, 50, 40, 60)
    assert d0.results[0].hypothesis.class_id == "face" and d0.id == "3"
    back = bridge.detections_from_msg(msg)
    assert back[0].box == dets[0].box and back[1].score == pytest.approx(0.4) and back[0].track_id == "3"


def test_poses_round_trip():
    kps = np.array([[1.0, 2.0, 0.9], [3.0, 4.0, 0.0], [np.nan, 5.0, 0.5]])
    pose = PersonPose(kps, "toy3", BoundingBox(0, 0, 10, 10), 0.8, person_id=7)
    msg = bridge.poses_to_msg([pose], header(), names_of=lambda layout: ["a", "b", "c"])
    assert msg.poses[0].keypoints[1].name == "b" and msg.poses[0].id == "7" and msg.header.stamp.sec == 12
    back = bridge.poses_from_msg(msg)[0]
    assert back.person_id == 7 and back.layout == "toy3"
    np.testing.assert_allclose(back.keypoints, np.nan_to_num(kps), rtol=1e-6)


def test_classification_is_sorted():
    msg = bridge.classification_to_msg(["walk", "run", "sit"], [0.2, 0.7, 0.1], header())
    assert [r.class_id for r in msg.results] == ["run", "walk", "sit"]
