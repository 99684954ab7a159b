"""The synthesized audio classes (core.audio_synth): deterministic, distinct time-frequency structure, labelled
streams whose segments tile the audio."""
import numpy as np
import pytest

from opendr_perception.core import audio_synth as synth

SR = synth.SAMPLE_RATE


def spectrogram(x, n_fft=512, hop=128):
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
    return np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (frames, bins)


def test_streams_are_deterministic_per_seed():
    a, seg_a = synth.render_stream(np.random.default_rng(5), 6.0)
    b, seg_b = synth.render_stream(np.random.default_rng(5), 6.0)
    c, _ = synth.render_stream(np.random.default_rng(6), 6.0)
    assert np.array_equal(a, b) and seg_a == seg_b
    assert a.shape != c.shape or not np.allclose(a, c)


@pytest.mark.parametrize("name", synth.CLASSES)
def test_every_class_renders_unit_rms_finite_audio(name):
    x = synth.render_segment(name, SR, np.random.default_rng(1))
    assert x.shape == (SR,) and np.isfinite(x).all()
    assert np.sqrt(np.mean(x ** 2)) == pytest.approx(1.0, rel=1e-6)
    with pytest.raises(ValueError, match="unknown audio class"):
        synth.render_segment("whistle", 10, np.random.default_rng(0))


def test_classes_differ_in_time_frequency_structure():
    """What each class is meant to show in a spectrogram, checked on 5 random draws each."""
    for seed in range(5):
        rng = np.random.default_rng(seed)
        seg = {name: synth.render_segment(name, SR, rng) for name in synth.CLASSES}
        peak = {name: spectrogram(x).argmax(1) for name, x in seg.items()}
        # tone: one steady frequency; chirps: the peak moves up (down) between sweep restarts
        assert np.ptp(peak["tone"]) <= 1
        up, down = np.diff(peak["chirp_up"]), np.diff(peak["chirp_down"])
        assert (up > 0).sum() > 3 * (up < 0).sum() and (down < 0).sum() > 3 * (down > 0).sum()
        # tremolo: a deep slow envelope on a steady frequency; tone: a flat envelope
        def envelope(x):
            return np.sqrt(np.convolve(x ** 2, np.ones(320) / 320, "valid"))
        assert np.ptp(peak["tremolo"][envelope(seg["tremolo"])[::128][: len(peak["tremolo"])] > 0.5]) <= 1
        assert envelope(seg["tremolo"]).min() < 0.4 < 1.2 < envelope(seg["tremolo"]).max()
        assert envelope(seg["tone"]).min() > 0.95
        # clicks: short impulses (a high crest factor); chord: at least three strong spectral lines
        assert np.abs(seg["clicks"]).max() > 8 * np.sqrt(np.mean(seg["clicks"] ** 2))
        spectrum = spectrogram(seg["chord"]).mean(0)
        inner = spectrum[1:-1]
        lines = (inner > spectrum[:-2]) & (inner > spectrum[2:]) & (inner > 0.02 * spectrum.max())
        assert lines.sum() >= 3
        # noise bursts: silent gaps between bursts, and band-limited (most bins near zero)
        env = envelope(seg["noise_bursts"])
        assert env.min() < 0.05 * env.max()
        burst = spectrogram(seg["noise_bursts"]).mean(0)
        assert (burst > 0.01 * burst.max()).mean() < 0.6


def test_a_stream_is_labelled_by_consecutive_segments():
    audio, segments = synth.render_stream(np.random.default_rng(3), 30.0, segment_s=(2.0, 5.0))
    assert audio.dtype == np.float32 and len(audio) == 30 * SR and np.abs(audio).max() <= 0.99 + 1e-6
    assert segments[0].start == 0 and segments[-1].end == len(audio)
    for a, b in zip(segments, segments[1:]):
        assert a.end == b.start and a.label != b.label
        assert 2.0 * SR <= a.end - a.start <= 5.0 * SR
    labels = synth.labels_at(segments, np.arange(len(audio)))
    assert (labels >= 0).all() and labels[segments[2].start] == segments[2].label
    ends = SR + 4000 * np.arange(20)
    centre, pure = synth.window_labels(segments, ends, SR)
    assert np.array_equal(centre, labels[ends - SR // 2])
    crossing = [any(e - SR < s.start < e for s in segments) for e in ends]
    assert np.array_equal(pure, ~np.array(crossing))
    fixed, fixed_segments = synth.render_stream(np.random.default_rng(0), 100.0, labels=[0, 4, 0])
    assert [s.name for s in fixed_segments] == ["tone", "clicks", "tone"] and len(fixed) == fixed_segments[-1].end


def test_pcm16_bytes():
    x = np.array([0.0, 0.5, -1.0, 1.5], np.float32)
    pcm = np.frombuffer(synth.to_pcm16(x), "<i2")
    assert pcm.tolist() == [0, 16384, -32767, 32767]
