"""The one bridge between ROS messages and the ROS-free core.

Images: ``sensor_msgs/Image`` and ``CompressedImage`` <-> numpy, with cv_bridge's
semantics (``imgmsg_to_cv2``/``cv2_to_imgmsg``: ``desired_encoding`` with
``"passthrough"``, generic ``8UC3``-style encodings, row padding through
``step``, ``is_bigendian``) in vectorised numpy, and errors that say what is
wrong with the message. Detections and poses: core dataclasses <->
``vision_msgs`` and ``opendr_interfaces`` messages.
"""
from __future__ import annotations

import array
import re
import sys
from typing import Iterable, Optional, Sequence

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from opendr_perception.core.types import BoundingBox, Detection, PersonPose


class ImageConversionError(ValueError):
    """An image message cannot be converted; the message says why."""


# Named encodings (sensor_msgs/image_encodings.hpp): dtype, channels.
_NAMED = {
    "rgb8": (np.uint8, 3), "rgba8": (np.uint8, 4), "rgb16": (np.uint16, 3), "rgba16": (np.uint16, 4),
    "bgr8": (np.uint8, 3), "bgra8": (np.uint8, 4), "bgr16": (np.uint16, 3), "bgra16": (np.uint16, 4),
    "mono8": (np.uint8, 1), "mono16": (np.uint16, 1),
}
_COLOR_ORDER = {"rgb": "RGB", "rgba": "RGBA", "bgr": "BGR", "bgra": "BGRA", "mono": "GRAY"}
_DEPTHS = {"8U": np.uint8, "8S": np.int8, "16U": np.uint16, "16S": np.int16,
           "32S": np.int32, "32F": np.float32, "64F": np.float64}
_GENERIC = re.compile(r"^(8U|8S|16U|16S|32S|32F|64F)C([1-4])$")
_DTYPE_TO_DEPTH = {np.dtype(v): k for k, v in _DEPTHS.items()}
_MAX_DIMENSION = 1 << 15  # 32768 px: larger is a corrupt header, not a camera


def encoding_format(encoding: str) -> tuple[np.dtype, int]:
    """(dtype, channels) of an image encoding; raises ImageConversionError if unknown."""
    if encoding in _NAMED:
        dtype, channels = _NAMED[encoding]
        return np.dtype(dtype), channels
    match = _GENERIC.match(encoding)
    if match:
        return np.dtype(_DEPTHS[match.group(1)]), int(match.group(2))
    raise ImageConversionError(
        f"unsupported image encoding '{encoding}'; supported: {', '.join(_NAMED)} and "
        "generic [8U|8S|16U|16S|32S|32F|64F]C[1-4] (e.g. 8UC3, 16UC1, 32FC1)")


def _color_of(encoding: str) -> Optional[str]:
    """'RGB', 'BGR', 'GRAY', ... for a colour encoding, None for a generic one."""
    if encoding not in _NAMED:
        return None
    return _COLOR_ORDER[encoding.rstrip("0123456789")]


def _image_array(msg: Image) -> np.ndarray:
    """The message's pixels as an (H, W) or (H, W, C) array, without conversion (a view when possible)."""
    dtype, channels = encoding_format(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"image has zero size ({width}x{height})")
    if height > _MAX_DIMENSION or width > _MAX_DIMENSION:
        raise ImageConversionError(f"image size {width}x{height} exceeds {_MAX_DIMENSION} px per side")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageConversionError(
            f"step {step} is smaller than width*channels*bytes = {width}*{channels}*{dtype.itemsize} = {row_bytes} "
            f"for encoding '{msg.encoding}'")
    buffer = np.frombuffer(msg.data, dtype=np.uint8)
    if buffer.size < height * step:
        raise ImageConversionError(
            f"image data has {buffer.size} bytes, expected height*step = {height}*{step} = {height * step}")
    rows = buffer[: height * step].reshape(height, step)[:, :row_bytes]
    # Rows keep their padding out of the view; the last axis stays contiguous, so it can be re-typed.
    if dtype.itemsize > 1 and bool(msg.is_bigendian) != (sys.byteorder == "big"):
        image = rows.view(dtype.newbyteorder()).astype(dtype)
    else:
        image = rows.view(dtype)
    image = image.reshape(height, width, channels)
    return image[:, :, 0] if channels == 1 else image


def _convert_depth(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if image.dtype == dtype:
        return image
    if image.dtype == np.uint16 and dtype == np.uint8:
        return (image >> 8).astype(np.uint8)
    if image.dtype == np.uint8 and dtype == np.uint16:
        return image.astype(np.uint16) * 257
    raise ImageConversionError(f"cannot convert pixel type {image.dtype} to {dtype}")


def convert_encoding(image: np.ndarray, source: str, target: str) -> np.ndarray:
    """Convert pixels between two encodings with cv_bridge's rules."""
    if target == source:
        return image
    src_dtype, src_channels = encoding_format(source)
    dst_dtype, dst_channels = encoding_format(target)
    src_color, dst_color = _color_of(source), _color_of(target)
    if src_color is None or dst_color is None:
        # A generic encoding converts only by reinterpretation: same channels and depth.
        if src_channels == dst_channels and src_dtype == dst_dtype:
            return image
        color = source if src_color else target
        other = target if src_color else source
        raise ImageConversionError(
            f"[{other}] is not a color format. but [{color}] is. The conversion does not make sense")
    if src_color != dst_color:
        code = getattr(cv2, f"COLOR_{src_color}2{dst_color}", None)
        if code is None:
            raise ImageConversionError(f"no conversion from {source} to {target}")
        image = cv2.cvtColor(np.ascontiguousarray(image), code)
    return _convert_depth(image, dst_dtype)


def image_to_numpy(msg: Image, desired_encoding: str = "passthrough") -> np.ndarray:
    """Pixels of ``msg`` as a numpy array in ``desired_encoding`` (like cv_bridge's imgmsg_to_cv2).

    With ``"passthrough"`` the result may be a read-only view of the message's buffer.
    Raises :class:`ImageConversionError` for malformed messages or impossible conversions.
    """
    image = _image_array(msg)
    if desired_encoding == "passthrough":
        return image
    return convert_encoding(image, msg.encoding, desired_encoding)


def _encoding_for(image: np.ndarray) -> str:
    channels = 1 if image.ndim == 2 else image.shape[2]
    depth = _DTYPE_TO_DEPTH.get(image.dtype)
    if depth is None:
        raise ImageConversionError(f"numpy dtype {image.dtype} has no image encoding")
    return f"{depth}C{channels}"


def numpy_to_image(image: np.ndarray, encoding: str = "passthrough",
                   header: Optional[Header] = None) -> Image:
    """An Image message holding ``image`` (like cv_bridge's cv2_to_imgmsg)."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        raise ImageConversionError("expected a non-empty (H, W) or (H, W, C) numpy array")
    if encoding == "passthrough":
        encoding = _encoding_for(image)
    dtype, channels = encoding_format(encoding)
    actual_channels = 1 if image.ndim == 2 else image.shape[2]
    if actual_channels != channels or image.dtype != dtype:
        raise ImageConversionError(
            f"encoding '{encoding}' needs {channels} channel(s) of {dtype}, the array has "
            f"{actual_channels} of {image.dtype}")
    image = np.ascontiguousarray(image)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == "big" and image.dtype.itemsize > 1)
    msg.step = int(image.shape[1] * channels * image.dtype.itemsize)
    msg.data = array.array("B", image.tobytes())
    return msg


def compressed_to_numpy(msg: CompressedImage, desired_encoding: str = "bgr8") -> np.ndarray:
    """Decode a CompressedImage (jpeg or png) into ``desired_encoding`` (bgr8, rgb8, mono8 or passthrough)."""
    buffer = np.frombuffer(msg.data, dtype=np.uint8)
    if buffer.size == 0:
        raise ImageConversionError("compressed image has no data")
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageConversionError(f"compressed image (format '{msg.format}') could not be decoded")
    if image.ndim == 2:
        source = "mono16" if image.dtype == np.uint16 else "mono8"
    else:
        source = {3: "bgr", 4: "bgra"}[image.shape[2]] + ("16" if image.dtype == np.uint16 else "8")
    if desired_encoding == "passthrough":
        return image
    return convert_encoding(image, source, desired_encoding)


def numpy_to_compressed(image: np.ndarray, image_format: str = "jpeg",
                        header: Optional[Header] = None, quality: int = 90) -> CompressedImage:
    """Encode a bgr8/mono8 array as jpeg or png (image_transport's format string)."""
    if image_format not in ("jpeg", "jpg", "png"):
        raise ImageConversionError(f"unsupported compression format '{image_format}' (jpeg or png)")
    extension = ".png" if image_format == "png" else ".jpg"
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if extension == ".jpg" else []
    ok, encoded = cv2.imencode(extension, np.ascontiguousarray(image), params)
    if not ok:
        raise ImageConversionError(f"could not encode a {image.dtype} {image.shape} array as {image_format}")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    encoding = "mono8" if image.ndim == 2 else "bgr8"
    msg.format = f"{encoding}; {'png' if extension == '.png' else 'jpeg'} compressed {encoding}"
    msg.data = array.array("B", encoded.tobytes())
    return msg


# --- detections and poses ---------------------------------------------------------------------

def _bbox_msg(box: BoundingBox):
    from vision_msgs.msg import BoundingBox2D
    msg = BoundingBox2D()
    msg.center.position.x, msg.center.position.y = (float(v) for v in box.center)
    msg.size_x, msg.size_y = float(box.width), float(box.height)
    return msg


def _bbox_from_msg(msg) -> BoundingBox:
    cx, cy = msg.center.position.x, msg.center.position.y
    return BoundingBox(cx - msg.size_x / 2, cy - msg.size_y / 2, cx + msg.size_x / 2, cy + msg.size_y / 2)


def detections_to_msg(detections: Iterable[Detection], header: Header):
    """A vision_msgs/Detection2DArray (one hypothesis per detection) with the given header."""
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose
    out = Detection2DArray(header=header)
    for det in detections:
        d = Detection2D(header=header, bbox=_bbox_msg(det.box), id=str(det.track_id))
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = str(det.class_id)
        hypothesis.hypothesis.score = float(det.score)
        d.results.append(hypothesis)
        out.detections.append(d)
    return out


def detections_from_msg(msg) -> list[Detection]:
    """Core detections from a Detection2DArray (the best hypothesis of each)."""
    out = []
    for d in msg.detections:
        best = max(d.results, key=lambda r: r.hypothesis.score, default=None)
        out.append(Detection(box=_bbox_from_msg(d.bbox), score=best.hypothesis.score if best else 0.0,
                             class_id=best.hypothesis.class_id if best else "", track_id=d.id))
    return out


def classification_to_msg(labels: Sequence[str], scores: Sequence[float], header: Header):
    """A vision_msgs/Classification with hypotheses sorted by decreasing score."""
    from vision_msgs.msg import Classification, ObjectHypothesis
    out = Classification(header=header)
    for label, score in sorted(zip(labels, scores), key=lambda p: -float(p[1])):
        out.results.append(ObjectHypothesis(class_id=str(label), score=float(score)))
    return out


def poses_to_msg(poses: Iterable[PersonPose], header: Header, names_of=None):
    """An opendr_interfaces/HumanPose2DArray; ``names_of(layout)`` gives keypoint names."""
    from opendr_interfaces.msg import HumanPose2D, HumanPose2DArray, Keypoint2D
    if names_of is None:
        from opendr_perception.core.keypoints import get_layout

        def names_of(layout):
            return get_layout(layout).names
    out = HumanPose2DArray(header=header)
    for pose in poses:
        names = names_of(pose.layout)
        kps = np.nan_to_num(np.asarray(pose.keypoints, dtype=np.float64), nan=0.0)
        msg = HumanPose2D(id="" if pose.person_id < 0 else str(pose.person_id), score=float(pose.score),
                          bbox=_bbox_msg(pose.box), layout=pose.layout)
        msg.keypoints = [Keypoint2D(name=names[i], x=float(x), y=float(y), confidence=float(c))
                         for i, (x, y, c) in enumerate(kps)]
        out.poses.append(msg)
    return out


def poses_from_msg(msg) -> list[PersonPose]:
    """Core poses from a HumanPose2DArray."""
    poses = []
    for p in msg.poses:
        keypoints = np.array([[k.x, k.y, k.confidence] for k in p.keypoints], dtype=np.float64).reshape(-1, 3)
        poses.append(PersonPose(keypoints=keypoints, layout=p.layout, box=_bbox_from_msg(p.bbox),
                                score=p.score, person_id=int(p.id) if p.id.lstrip("-").isdigit() else -1))
    return poses
