"""continual_audio_classification over real DDS: a generated audio stream in 100 ms chunks (AudioInfo latched),
one Classification per 250 ms hop after the warm-up, stamped at the end of each window, the same classes as the
ROS-free model on the same samples; S16LE mono at 16 kHz and F32LE stereo at 32 kHz (resampled); malformed
chunks and an unknown format are reported and the node keeps answering."""
import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.e2e]

pytest.importorskip("opendr_perception.ros.bridge")
import torch  # noqa: E402
from audio_common_msgs.msg import AudioDataStamped, AudioInfo  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from vision_msgs.msg import Classification  # noqa: E402

from e2e_support import Probe, spin_for, wait_for_subscriber  # noqa: E402
from opendr_perception.core import audio_synth, registry  # noqa: E402
from opendr_perception.models.continual_classifiers import build_from_manifest  # noqa: E402
from opendr_perception.nodes.continual_audio_classification import AudioWindows, decode_audio, resample  # noqa: E402

NAME = "cotrans_audio_synth"
CHUNK_S = 0.1
NS = 1_000_000_000


@pytest.fixture(scope="module")
def reference():
    spec = registry.default_registry().spec(NAME)
    model = build_from_manifest(spec.extra)
    model.load_state_dict(registry.load_state_dict(NAME))
    return model.eval(), spec.extra


def test_windows_and_stamps_from_chunks_of_any_size():
    """Windows cut from chunks of random sizes are the stream's windows; each is stamped at its end."""
    rng = np.random.default_rng(0)
    rate, start = 8000, 5 * NS
    stream = rng.standard_normal(rate * 6).astype(np.float32)
    cutter, got, pos = AudioWindows(rate, 1.0, 0.25), [], 0
    while pos < len(stream):
        n = int(rng.integers(1, 5000))
        got += cutter.push(start + pos * NS // rate, stream[pos:pos + n])
        pos += n
    ends = range(rate, len(stream) + 1, rate // 4)
    assert len(got) == len(ends) == 21
    for (stamp, window), end in zip(got, ends):
        assert abs(stamp - (start + end * NS // rate)) <= 1
        np.testing.assert_array_equal(window, stream[end - rate:end])
    assert len(cutter.buffer) < rate  # only what the next window needs is kept


def test_decode_audio_formats_and_errors():
    x = np.array([[0.5, -0.5], [0.25, 0.25]], np.float32)
    np.testing.assert_allclose(decode_audio(x.astype("<f4").tobytes(), "F32LE", 2), [0.0, 0.25])
    pcm = (x * 32768).astype("<i2")
    np.testing.assert_allclose(decode_audio(pcm.tobytes(), "S16LE", 1), x.ravel())
    with pytest.raises(ValueError, match="not a whole number of 2-channel S16LE frames"):
        decode_audio(pcm.tobytes()[:6], "S16LE", 2)
    with pytest.raises(ValueError, match="unsupported sample_format 'S24LE'"):
        decode_audio(b"", "S24LE", 1)
    with pytest.raises(ValueError, match="NaN"):
        decode_audio(np.array([np.nan], "<f4").tobytes(), "F32LE", 1)
    tone = np.sin(2 * np.pi * 440 * np.arange(48000) / 48000).astype(np.float32)
    down = resample(tone, 48000, 16000)
    assert down.shape == (16000,)
    np.testing.assert_allclose(down[100:-100], np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)[100:-100], atol=2e-3)


def expected_outputs(model, extra, mono, rate):
    """(end time in s from the stream start, top-1 label, top-1 probability) per hop after the warm-up, from the
    ROS-free model on the samples the node sees."""
    f = extra["frontend"]
    window, hop = int(f["window_s"] * rate), int(f["hop_s"] * rate)
    model.clean_state()
    out = []
    for k, end in enumerate(range(window, len(mono) + 1, hop)):
        w = mono[end - window:end]
        if rate != f["sample_rate"]:
            w = resample(w, rate, f["sample_rate"])
        logits = model.forward_step(torch.from_numpy(np.ascontiguousarray(w))[None])
        if logits is not None:
            p = torch.softmax(logits[0], 0)
            out.append((end / rate, extra["labels"][int(p.argmax())], float(p.max())))
    return out


def chunk_message(payload: bytes, start_ns: int, frame_id="mic"):
    msg = AudioDataStamped()
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(start_ns, NS)
    msg.audio.data = payload
    return msg


def publish_stream(node, pub, frames: np.ndarray, rate: int, dtype: str, start_ns: int):
    """Interleaved ``frames (N, channels)`` in 100 ms chunks, each stamped with its first sample's time."""
    per_chunk = int(rate * CHUNK_S)
    for i in range(0, len(frames), per_chunk):
        pub.publish(chunk_message(frames[i:i + per_chunk].astype(dtype).tobytes(), start_ns + i * NS // rate))
        spin_for(node, 0.003)


def check(probe, start, expected, segments, rate, first_index=0):
    got = probe.messages[first_index:]
    assert len(got) == len(expected), (len(got), len(expected))
    for msg, (end_s, label, score) in zip(got, expected):
        stamp = msg.header.stamp.sec * NS + msg.header.stamp.nanosec
        assert abs(stamp - (start + round(end_s * NS))) <= 1, (stamp - start) / NS
        assert msg.header.frame_id == "mic" and len(msg.results) == 3
        assert msg.results[0].class_id == label and msg.results[0].score == pytest.approx(score, abs=1e-4)
    # the classes follow the segments: steps whose whole receptive field (the last 2.75 s) is one segment
    steady = [(msg, audio_synth.labels_at(segments, [int(end_s * rate) - 1])[0])
              for msg, (end_s, _, _) in zip(got, expected)
              if all(not (end_s - 2.75 < s.start / rate < end_s) for s in segments[1:])]
    names = [audio_synth.CLASSES[k] for _, k in steady]
    correct = np.mean([m.results[0].class_id == n for (m, _), n in zip(steady, names)])
    assert len(steady) >= 8 and correct >= 0.8, [(m.results[0].class_id, n) for (m, _), n in zip(steady, names)]


def test_audio_stream_is_classified_every_hop(start_process, test_node, reference):
    model, extra = reference
    proc = start_process("continual_audio_classification")
    pub = test_node.create_publisher(AudioDataStamped, "audio",
                                     QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE))
    info_pub = test_node.create_publisher(AudioInfo, "audio_info", QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    probe = Probe(test_node, Classification, "audio_class")
    diagnostics = Probe(test_node, DiagnosticArray, "/diagnostics")
    wait_for_subscriber(test_node, pub, 60, proc)
    info_pub.publish(AudioInfo(channels=1, sample_rate=16000, sample_format="S16LE"))
    spin_for(test_node, 1.0)

    # S16LE mono at 16 kHz: tone, clicks, chirp_down, 3.5 s each
    rng = np.random.default_rng(11)
    audio, segments = audio_synth.render_stream(rng, 20.0, segment_s=(3.5, 3.5), labels=[0, 4, 2])
    pcm = np.frombuffer(audio_synth.to_pcm16(audio), "<i2")
    expected = expected_outputs(model, extra, pcm.astype(np.float32) / 32768.0, 16000)
    assert len(expected) == (len(audio) - 16000) // 4000 + 1 - 7
    start = test_node.get_clock().now().nanoseconds
    publish_stream(test_node, pub, pcm[:, None], 16000, "<i2", start)
    probe.wait_for(len(expected), 30)
    check(probe, start, expected, segments, 16000)

    # malformed: an odd byte count, then an unknown format announced on audio_info; the node keeps answering
    count = len(probe.messages)
    pub.publish(chunk_message(b"\x01\x02\x03", start + 20 * NS))
    spin_for(test_node, 0.5)
    info_pub.publish(AudioInfo(channels=1, sample_rate=16000, sample_format="MP3"))
    spin_for(test_node, 0.5)
    pub.publish(chunk_message(pcm[:1600].tobytes(), start + 20 * NS))
    spin_for(test_node, 0.5)
    assert proc.alive() and len(probe.messages) == count
    log = proc.log()
    assert "not a whole number of 1-channel S16LE frames" in log and "unsupported sample_format 'MP3'" in log

    # F32LE stereo at 32 kHz, a new stream (the format changed: buffer and state reset)
    info_pub.publish(AudioInfo(channels=2, sample_rate=32000, sample_format="F32LE"))
    spin_for(test_node, 0.5)
    audio2, segments2 = audio_synth.render_stream(rng, 20.0, segment_s=(3.5, 3.5), labels=[1, 5],
                                                  sample_rate=32000)
    stereo = np.stack([audio2, 0.5 * audio2], 1)
    expected2 = expected_outputs(model, extra, stereo.mean(1).astype(np.float32), 32000)
    start2 = start + 60 * NS
    publish_stream(test_node, pub, stereo, 32000, "<f4", start2)
    probe.wait_for(count + len(expected2), 30)
    check(probe, start2, expected2, segments2, 32000, first_index=count)

    def errors_reported(msg):
        return max([int(kv.value) for st in msg.status if st.name.endswith("continual_audio_classification")
                    for kv in st.values if kv.key == "errors"], default=0)

    diagnostics.wait_for(1, 5, lambda m: errors_reported(m) >= 2)
    assert max(map(errors_reported, diagnostics.messages)) == 2  # the two bad chunks, nothing else
