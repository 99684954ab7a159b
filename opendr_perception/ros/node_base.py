"""The one base of every perception node.

A camera node subclasses :class:`ImageNode` (a node with another input, :class:`PerceptionNode`)
and writes three methods: ``load_model`` (build the ROS-free model from parameters), ``infer``
(input -> result) and ``publish_results`` (result -> messages with the input's header). The base
gives every node the same behaviour:

* parameters declared with descriptions (``self.param``), never argparse;
* the camera input ``image`` (or ``image/compressed`` with ``image_transport:
  compressed``) with SensorDataQoS, depth 1 so a slow model skips stale frames,
  reliability overridable with ``input_reliability``;
* ``device`` (auto/cpu/cuda[:N]) resolved with a logged CPU fallback;
* ``~/annotated_image`` (input header reused) when ``publish_annotated``;
* ``~/performance`` (opendr_interfaces/NodePerformance) when ``publish_performance``,
  and ``/diagnostics`` once a second;
* a bad message or a model error is logged (throttled) and skipped: the node
  keeps running; a model that cannot be loaded (missing weights) is reported
  on the log and on /diagnostics and loading is retried every 10 s.
"""
from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any, Optional

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy, DurabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from opendr_perception.core.device import resolve_device
from opendr_perception.ros.bridge import compressed_to_numpy, image_to_numpy, numpy_to_image

MODEL_RETRY_SECONDS = 10.0
LOG_THROTTLE_SECONDS = 5.0


def bringup_file(*parts: str) -> Optional[Path]:
    """A file of opendr_bringup (e.g. ``"config", "x.yaml"``): from the source tree, else from the installed
    share directory; None when neither has it."""
    source = Path(__file__).resolve().parents[2] / "opendr_bringup" / Path(*parts)
    if source.is_file():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory
        installed = Path(get_package_share_directory("opendr_bringup")) / Path(*parts)
        return installed if installed.is_file() else None
    except Exception:  # noqa: BLE001 - no ament index or no opendr_bringup installed
        return None


def fastdds_profile_path() -> Optional[Path]:
    """The suite's FastDDS large-data profile (None: keep FastDDS's defaults)."""
    return bringup_file("config", "fastdds_large_data.xml")


# Fast DDS 2.x (Jazzy) reads the first name, Fast DDS 3.x (Kilted) the second.
PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def apply_fastdds_profile() -> None:
    """Use the suite's FastDDS profile unless the user chose one; call before rclpy.init()."""
    chosen = next((os.environ[v] for v in PROFILE_VARIABLES if os.environ.get(v)), None)
    if chosen is None:
        profile = fastdds_profile_path()
        if profile is None:
            return
        chosen = str(profile)
    for variable in PROFILE_VARIABLES:
        os.environ.setdefault(variable, chosen)


def camera_qos(reliability: str = "best_effort") -> QoSProfile:
    """SensorDataQoS (keep last, volatile) with depth 1 and the chosen reliability."""
    if reliability not in ("best_effort", "reliable"):
        raise ValueError(f"input_reliability must be best_effort or reliable, not '{reliability}'")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, durability=DurabilityPolicy.VOLATILE,
                      reliability=ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort"
                      else ReliabilityPolicy.RELIABLE)


def stamp_seconds(header: Header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


class _RunningStats:
    """Exponential moving averages of the per-frame timings."""

    def __init__(self, alpha: float = 0.1):
        self.alpha, self.values, self.last_time = alpha, {}, None

    def update(self, **values: float) -> None:
        for key, value in values.items():
            if value is None or not np.isfinite(value):
                continue
            old = self.values.get(key)
            self.values[key] = value if old is None else old + self.alpha * (value - old)

    def tick(self, now: float) -> None:
        if self.last_time is not None and now > self.last_time:
            self.update(fps=1.0 / (now - self.last_time))
        self.last_time = now

    def get(self, key: str) -> float:
        return float(self.values.get(key, float("nan")))


class PerceptionNode(Node):
    """Base class of every perception node: parameters, model loading, one message at a time, errors
    isolated, diagnostics and performance. Subclasses subscribe to their input with :meth:`process_message` as the callback."""

    #: what the node's input is, for log messages ("bad image skipped: ...")
    input_kind = "message"

    def __init__(self, node_name: str):
        super().__init__(node_name)
        self.model: Any = None
        self.model_error = ""
        self._next_model_try = 0.0
        self.processed = 0
        self.errors = 0
        self.last_error = ""
        self._stats = _RunningStats()

        requested = self.param("device", "auto", "Compute device: auto, cpu, cuda or cuda:N (CPU fallback is logged)")
        self.device, why = resolve_device(requested)
        if why:
            self.get_logger().warning(why)
        self.publish_performance = self.param(
            "publish_performance", False, "Publish ~/performance (fps, latency, model and bridge time)")
        self.performance_pub = None
        if self.publish_performance:
            from opendr_interfaces.msg import NodePerformance
            self.performance_pub = self.create_publisher(NodePerformance, "~/performance", 10)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0, self._publish_diagnostics)

    # --- for subclasses -----------------------------------------------------------------------

    def param(self, name: str, default: Any, description: str, read_only: bool = True) -> Any:
        """Declare a ROS parameter with a description and return its value."""
        descriptor = ParameterDescriptor(description=description, read_only=read_only)
        return self.declare_parameter(name, default, descriptor).value

    def load_model(self) -> Any:
        """Build and return the model; raise (e.g. registry.ModelError) when it cannot be loaded."""
        raise NotImplementedError

    def convert(self, msg) -> Any:
        """The model's input from a message; raise ValueError (with the reason) for a bad message."""
        return msg

    def infer(self, data: Any) -> Any:
        """Run the model on one converted input."""
        raise NotImplementedError

    def publish_results(self, result: Any, header: Header, data: Any) -> None:
        """Publish ``result`` with ``header`` (the input's)."""
        raise NotImplementedError

    def on_shutdown(self) -> None:
        """Called once when the node stops, while it can still publish (e.g. a zero velocity)."""

    def try_load_model(self) -> bool:
        """Load the model if it is not loaded yet; False (and the reason logged) when it fails."""
        if self.model is not None:
            return True
        now = time.monotonic()
        if now < self._next_model_try:
            return False
        self._next_model_try = now + MODEL_RETRY_SECONDS
        try:
            self.model = self.load_model()
            self.model_error = ""
            self.get_logger().info(f"model ready on {self.device}")
            return True
        except Exception as e:  # noqa: BLE001 - any failure to load is reported, not fatal
            self.model_error = f"{type(e).__name__}: {e}"
            self.get_logger().error(f"cannot load the model (retrying every {MODEL_RETRY_SECONDS:.0f} s): "
                                    f"{self.model_error}")
            return False

    # --- the pipeline ---------------------------------------------------------------------------

    def _reject(self, message: str) -> None:
        self.errors += 1
        self.last_error = message
        self.get_logger().warning(message, throttle_duration_sec=LOG_THROTTLE_SECONDS)

    def process_message(self, msg) -> None:
        """Convert, infer and publish one input message; a failure is logged and counted, never raised."""
        started = time.perf_counter()
        if not self.try_load_model():
            self._reject(f"{self.input_kind} skipped: model not loaded ({self.model_error})")
            return
        try:
            data = self.convert(msg)
        except ValueError as e:  # ImageConversionError is a ValueError: the message says what is wrong
            self._reject(f"bad {self.input_kind} skipped: {e}")
            return
        except Exception as e:  # noqa: BLE001 - any other malformed content (unknown layout, ...)
            self._reject(f"bad {self.input_kind} skipped: {type(e).__name__}: {e}")
            return
        converted = time.perf_counter()
        try:
            result = self.infer(data)
        except Exception as e:  # noqa: BLE001 - one bad input never kills the node
            self._reject(f"model failed on a {self.input_kind} ({type(e).__name__}: {e})")
            self.get_logger().debug(traceback.format_exc())
            return
        inferred = time.perf_counter()
        try:
            self.publish_results(result, msg.header, data)
        except Exception as e:  # noqa: BLE001
            self._reject(f"publishing failed: {type(e).__name__}: {e}")
            self.get_logger().debug(traceback.format_exc())
            return
        done = time.perf_counter()
        self.processed += 1
        latency = self.get_clock().now().nanoseconds * 1e-9 - stamp_seconds(msg.header)
        self._stats.tick(done)
        self._stats.update(model_ms=(inferred - converted) * 1e3,
                           bridge_ms=((converted - started) + (done - inferred)) * 1e3,
                           latency_ms=latency * 1e3 if 0.0 <= latency < 60.0 else None)
        if self.performance_pub is not None:
            self._publish_performance(msg.header)

    def _publish_performance(self, header: Header) -> None:
        from opendr_interfaces.msg import NodePerformance
        s = self._stats
        self.performance_pub.publish(NodePerformance(
            header=header, fps=s.get("fps"), latency_ms=s.get("latency_ms"), model_ms=s.get("model_ms"),
            bridge_ms=s.get("bridge_ms"), errors=self.errors))

    def _publish_diagnostics(self) -> None:
        status = DiagnosticStatus(name=f"{self.get_fully_qualified_name()}", hardware_id=self.device)
        if self.model_error:
            status.level, status.message = DiagnosticStatus.ERROR, f"model not loaded: {self.model_error}"
        elif self.last_error:
            status.level, status.message = DiagnosticStatus.WARN, f"last error: {self.last_error}"
        else:
            status.level = DiagnosticStatus.OK
            status.message = "ok" if self.processed else f"waiting for {self.input_kind}s"
        s = self._stats
        status.values = [KeyValue(key=k, value=v) for k, v in (
            ("processed", str(self.processed)), ("errors", str(self.errors)), ("fps", f"{s.get('fps'):.2f}"),
            ("latency_ms", f"{s.get('latency_ms'):.1f}"), ("model_ms", f"{s.get('model_ms'):.1f}"),
            ("bridge_ms", f"{s.get('bridge_ms'):.2f}"))]
        self.last_error = ""
        array_msg = DiagnosticArray(status=[status])
        array_msg.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array_msg)


class ImageNode(PerceptionNode):
    """Base class of the camera nodes: the ``image`` input and the ``~/annotated_image`` output."""

    input_kind = "image"
    #: encoding the model wants its images in
    input_encoding = "bgr8"

    def __init__(self, node_name: str):
        super().__init__(node_name)
        self.publish_annotated = self.param(
            "publish_annotated", True, "Publish ~/annotated_image: the input with the results drawn on it")
        transport = self.param("image_transport", "raw", "Input transport: raw (image) or compressed (image/compressed)")
        reliability = self.param("input_reliability", "best_effort",
                                 "QoS reliability of the camera input: best_effort (SensorDataQoS) or reliable")
        self.annotated_pub = self.create_publisher(Image, "~/annotated_image", 1) if self.publish_annotated else None
        if transport not in ("raw", "compressed"):
            raise ValueError(f"image_transport must be raw or compressed, not '{transport}'")
        msg_type, topic = (Image, "image") if transport == "raw" else (CompressedImage, "image/compressed")
        self.image_sub = self.create_subscription(msg_type, topic, self.process_message, camera_qos(reliability))

    def convert(self, msg) -> np.ndarray:
        if isinstance(msg, CompressedImage):
            return compressed_to_numpy(msg, self.input_encoding)
        return image_to_numpy(msg, self.input_encoding)

    def infer(self, image: np.ndarray) -> Any:
        """Run the model on one image in ``input_encoding``."""
        raise NotImplementedError

    def publish_results(self, result: Any, header: Header, image: np.ndarray) -> None:
        """Publish ``result`` with ``header`` (the input's); draw on ``image`` for the annotated output."""
        raise NotImplementedError

    def publish_annotated_image(self, annotated: np.ndarray, header: Header) -> None:
        if self.annotated_pub is not None:
            self.annotated_pub.publish(numpy_to_image(annotated, "bgr8", header))


def keep_image_buffers_in_heap() -> None:
    """Stop glibc from mmap-ing and unmapping every image-sized buffer (each received frame).

    By default glibc serves allocations above a (dynamic) threshold with fresh mmap pages, so every
    incoming frame page-faults its buffer anew; measured here, that doubled the receive time of a
    640x480 frame (1.9 ms vs 1.0 ms). Raising the mmap and trim thresholds to 32 MB / 128 MB keeps
    frame buffers in the heap for reuse. No-op where glibc is not the C library.
    """
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
    libc.mallopt(m_trim_threshold, 128 * 1024 * 1024)


def _interrupt(*_):
    raise KeyboardInterrupt


def run_node(node_class, args=None) -> None:
    """Entry point of a node executable: FastDDS profile, rclpy init, spin, clean shutdown.

    SIGINT and SIGTERM end the spin while the ROS context is still valid, so a node can publish its
    last messages (a zero velocity command) in :meth:`ImageNode.on_shutdown`.
    """
    import signal

    from rclpy.executors import ExternalShutdownException
    from rclpy.signals import SignalHandlerOptions

    keep_image_buffers_in_heap()
    apply_fastdds_profile()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    node = None
    try:
        node = node_class()
        if isinstance(node, PerceptionNode):
            node.try_load_model()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            try:
                if isinstance(node, PerceptionNode):
                    node.on_shutdown()
            finally:
                node.destroy_node()
        rclpy.try_shutdown()
