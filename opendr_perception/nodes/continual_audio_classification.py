"""continual_audio_classification: the class of the sound heard, every 250 ms, with a continual transformer
(seed 3.1: CoTrans; a 1 s window per hop becomes one token, the encoder attends over the last tokens
without recomputing them).

Subscribes: ``audio`` (audio_common_msgs/AudioDataStamped; reliable with a queue: every sample matters, a
            skipped chunk would shift every later window) and ``audio_info`` (audio_common_msgs/AudioInfo,
            transient-local: channels, sample_rate, sample_format; until one arrives the ``channels``,
            ``sample_rate`` and ``sample_format`` parameters describe the stream).
Publishes:  ``audio_class`` (vision_msgs/Classification, the ``top_k`` classes with probabilities) once per
            hop after the warm-up; header: frame_id of the input, stamp = the end of the window's last
            sample, computed from the chunk's stamp and sample counts. A chunk's stamp is the time of its
            first sample (``chunk_stamp: start``, as GStreamer buffers) or of its end (``chunk_stamp:
            end``, a capture node stamping each chunk when it is complete).

Formats: S16LE and F32LE, interleaved channels (mixed to mono); another sample rate is resampled per
window to the model's rate. A chunk in an unsupported format or with a byte count that is not a
whole number of frames is rejected (logged, counted on /diagnostics) and the node keeps going.
The buffer and the continual state reset when a chunk's stamp is more than ``max_gap`` away from
where the previous chunk ended (a dropped chunk, a restarted bag) or the stream's format changes.
"""
from __future__ import annotations

import numpy as np
import torch
from audio_common_msgs.msg import AudioDataStamped, AudioInfo
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header
from vision_msgs.msg import Classification, ObjectHypothesis

from opendr_perception.core import registry
from opendr_perception.models.continual_classifiers import build_from_manifest
from opendr_perception.ros.node_base import PerceptionNode, run_node

#: sample_format -> (numpy dtype, full scale)
SAMPLE_FORMATS = {"S16LE": ("<i2", 32768.0), "F32LE": ("<f4", 1.0)}


def decode_audio(data, sample_format: str, channels: int) -> np.ndarray:
    """Interleaved PCM bytes -> mono float32 samples in [-1, 1]; ValueError (with the reason) when malformed."""
    if sample_format not in SAMPLE_FORMATS:
        raise ValueError(f"unsupported sample_format '{sample_format}' (supported: {', '.join(SAMPLE_FORMATS)})")
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    dtype, scale = SAMPLE_FORMATS[sample_format]
    frame = np.dtype(dtype).itemsize * channels
    raw = bytes(data)
    if len(raw) % frame:
        raise ValueError(f"{len(raw)} bytes is not a whole number of {channels}-channel {sample_format} frames "
                         f"({frame} bytes each)")
    samples = np.frombuffer(raw, dtype).astype(np.float32) / scale
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    if not np.isfinite(samples).all():
        raise ValueError("the chunk has NaN or infinite samples")
    return samples


class AudioWindows:
    """Cuts a chunked stream into windows of ``window_s`` every ``hop_s`` and stamps their ends.

    ``push(stamp_ns, samples)`` -> ``[(end_stamp_ns, window), ...]`` for every window completed by the
    chunk (a window ends inside the chunk that completes it, so its end time is the chunk's stamp
    plus the samples up to the window's end).
    """

    def __init__(self, rate: int, window_s: float, hop_s: float):
        self.rate = int(rate)
        self.window = int(round(window_s * rate))
        self.hop = hop_s * rate
        self.buffer = np.zeros(0, np.float32)
        self.total = 0  # samples received
        self.count = 0  # windows cut

    def next_end(self) -> int:
        return self.window + int(round(self.count * self.hop))

    def push(self, stamp_ns: int, samples: np.ndarray) -> list:
        start = self.total
        self.buffer = np.concatenate([self.buffer, samples])
        self.total += len(samples)
        out = []
        while self.next_end() <= self.total:
            end = self.next_end()
            first = self.total - len(self.buffer)  # stream index of buffer[0]
            window = self.buffer[end - self.window - first:end - first]
            out.append((stamp_ns + round((end - start) * 1e9 / self.rate), window))
            self.count += 1
        keep_from = self.next_end() - self.window
        self.buffer = self.buffer[max(0, keep_from - (self.total - len(self.buffer))):].copy()
        return out


class ContinualAudioNode(PerceptionNode):
    input_kind = "audio chunk"

    def __init__(self):
        super().__init__("continual_audio_classification")
        self.model_name = self.param("model", "cotrans_audio_synth", "Registered continual audio classifier")
        self.top_k = self.param("top_k", 3, "Classes reported per prediction, most probable first")
        self.max_gap = self.param("max_gap", 0.5, "Reset buffer and state when a chunk's stamp is off by more than "
                                  "this from the end of the previous chunk (s)")
        self.default_info = AudioInfo(
            channels=self.param("channels", 1, "Channels of the input until an AudioInfo arrives"),
            sample_rate=self.param("sample_rate", 16000, "Sample rate (Hz) of the input until an AudioInfo arrives"),
            sample_format=self.param("sample_format", "S16LE", "S16LE or F32LE, until an AudioInfo arrives"))
        self.info = self.default_info
        self.chunk_stamp = self.param("chunk_stamp", "start", "What a chunk's stamp marks: start (its first "
                                      "sample) or end (the end of its last sample)")
        if self.chunk_stamp not in ("start", "end"):
            raise ValueError(f"chunk_stamp must be start or end, not '{self.chunk_stamp}'")
        self.windows, self.stream = None, None  # AudioWindows of the current stream, its (rate, channels, format)
        self.expected_ns = None  # where the previous chunk ended
        self.class_pub = self.create_publisher(Classification, "audio_class", 10)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(AudioInfo, "audio_info", self.on_info, latched)
        depth = self.param("queue_size", 100, "Audio chunks queued while the model is busy (a full queue drops the "
                           "oldest, which resets the stream at the gap)")
        self.create_subscription(AudioDataStamped, "audio", self.process_message,
                                 QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE))

    def on_info(self, info: AudioInfo) -> None:
        if info.sample_format not in SAMPLE_FORMATS:
            self.get_logger().error(f"audio_info: unsupported sample_format '{info.sample_format}' (supported: "
                                    f"{', '.join(SAMPLE_FORMATS)}); chunks are rejected until a supported one arrives")
        self.info = info

    def load_model(self):
        spec = registry.default_registry().spec(self.model_name)
        model = build_from_manifest(spec.extra)
        model.load_state_dict(registry.load_state_dict(self.model_name))
        self.labels = list(spec.extra["labels"])
        self.frontend_options = dict(spec.extra["frontend"])
        f = self.frontend_options
        self.get_logger().info(f"{self.model_name}: {len(self.labels)} classes, a prediction every {f['hop_s']} s "
                               f"after {f['window_s'] + model.delay * f['hop_s']:.2f} s of audio")
        return model.eval().to(self.device)

    def convert(self, msg):
        info = self.info
        samples = decode_audio(msg.audio.data, info.sample_format, int(info.channels))
        if info.sample_rate < 1:
            raise ValueError(f"sample_rate must be positive, got {info.sample_rate}")
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if self.chunk_stamp == "end":
            stamp_ns -= round(len(samples) * 1e9 / info.sample_rate)
        return stamp_ns, samples, (int(info.sample_rate), int(info.channels), info.sample_format)

    def _reset(self, stream) -> None:
        f = self.frontend_options
        self.windows, self.stream = AudioWindows(stream[0], f["window_s"], f["hop_s"]), stream
        self.model.clean_state()

    def infer(self, data):
        stamp_ns, samples, stream = data  # stream: (rate, channels, format)
        rate = stream[0]
        if self.windows is None or self.stream != stream:
            self._reset(stream)
        elif self.expected_ns is not None and abs(stamp_ns - self.expected_ns) > self.max_gap * 1e9:
            self.get_logger().info(f"audio stamps jumped by {(stamp_ns - self.expected_ns) * 1e-9:+.3f} s: state reset")
            self._reset(stream)
        self.expected_ns = stamp_ns + round(len(samples) * 1e9 / rate)
        results = []
        model_rate = int(self.frontend_options["sample_rate"])
        for end_ns, window in self.windows.push(stamp_ns, samples):
            if rate != model_rate:
                window = resample(window, rate, model_rate)
            logits = self.model.forward_step(torch.from_numpy(window).to(self.device)[None])
            if logits is not None:
                results.append((end_ns, torch.softmax(logits[0].float(), 0).cpu().numpy()))
        return results

    def publish_results(self, results, header, data):
        for end_ns, probabilities in results:
            out = Classification(header=Header(frame_id=header.frame_id))
            out.header.stamp.sec, out.header.stamp.nanosec = divmod(end_ns, 1_000_000_000)
            for index in np.argsort(-probabilities)[: self.top_k]:
                out.results.append(ObjectHypothesis(class_id=self.labels[index], score=float(probabilities[index])))
            self.class_pub.publish(out)


def resample(window: np.ndarray, rate: int, target: int) -> np.ndarray:
    """A window at ``rate`` -> ``round(len * target / rate)`` samples at ``target`` (polyphase, anti-aliased)."""
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(rate, target)
    out = resample_poly(window.astype(np.float64), target // g, rate // g)
    n = int(round(len(window) * target / rate))
    return np.pad(out, (0, max(0, n - len(out))))[:n].astype(np.float32)


def main(args=None):
    run_node(ContinualAudioNode, args)


if __name__ == "__main__":
    main()
