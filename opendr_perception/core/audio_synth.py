"""Synthesized audio classes at 16 kHz: a deterministic stand-in for an audio dataset.

Seven classes that differ in time-frequency structure (what a log-mel spectrogram of one second
shows), each with a random pitch, rate, level and background noise:

==============  ==============================================================================
``tone``         one pure sinusoid (f0 200-2000 Hz), steady
``chirp_up``     log-frequency sweeps from f0 up by a factor 2-3.5, repeated every 0.25-0.6 s
``chirp_down``   the same sweeps downwards
``tremolo``      a sinusoid amplitude-modulated at 4-12 Hz (depth 0.7-1)
``clicks``       a regular train of 2-5 ms broadband clicks at 4-15 per second
``chord``        a major triad (f0, 1.26 f0, 1.5 f0), each note with 3 decaying harmonics
``noise_bursts`` band-limited noise (centre f0, bandwidth 0.3-1 f0) in 60-200 ms bursts at
                 irregular intervals
==============  ==============================================================================

Every segment has a random level (RMS -30 to -6 dBFS); every stream has its own background noise
(white, or tilted towards low frequencies) at a signal-to-noise ratio of 10-30 dB. Segment
boundaries have 10 ms fades. Everything is drawn from a ``numpy.random.Generator``, so a seed
gives the same audio on every run and machine (up to floating-point rounding).

:func:`render_segment` renders one class; :func:`render_stream` a labelled stream of consecutive
segments (what a microphone would deliver when the sound source changes); :func:`labels_at`
gives the class at any sample position of a stream.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

SAMPLE_RATE = 16000
CLASSES = ("tone", "chirp_up", "chirp_down", "tremolo", "clicks", "chord", "noise_bursts")


@dataclass(frozen=True)
class Segment:
    """One class's span in a stream: samples ``[start, end)``."""

    label: int
    start: int
    end: int

    @property
    def name(self) -> str:
        return CLASSES[self.label]


def _t(n: int, sr: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / sr


def _f0(rng: np.random.Generator, low: float = 200.0, high: float = 2000.0) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _sweeps(n: int, sr: int, rng: np.random.Generator, up: bool) -> np.ndarray:
    """Repeated log-frequency sweeps with a continuous phase."""
    ratio = rng.uniform(2.0, 3.5)
    f_low = _f0(rng, 200.0, 7000.0 / ratio)
    period = rng.uniform(0.25, 0.6)
    frac = ((_t(n, sr) + rng.uniform(0, period)) / period) % 1.0  # position inside each sweep
    if not up:
        frac = 1.0 - frac
    freq = f_low * ratio ** frac
    return np.sin(2 * np.pi * np.cumsum(freq) / sr + rng.uniform(0, 2 * np.pi))


def _band_noise(n: int, sr: int, rng: np.random.Generator, centre: float, width: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    spectrum[np.abs(freqs - centre) > width / 2] = 0.0
    out = np.fft.irfft(spectrum, n)
    return out / (np.std(out) + 1e-12)


def render_segment(label: int | str, num_samples: int, rng: np.random.Generator,
                   sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """One class's sound, ``num_samples`` long, unit RMS (the caller sets the level); float64."""
    name = CLASSES[label] if isinstance(label, (int, np.integer)) else str(label)
    n, sr = int(num_samples), int(sample_rate)
    t = _t(n, sr)
    if name == "tone":
        x = np.sin(2 * np.pi * _f0(rng) * t + rng.uniform(0, 2 * np.pi))
    elif name in ("chirp_up", "chirp_down"):
        x = _sweeps(n, sr, rng, up=name == "chirp_up")
    elif name == "tremolo":
        depth, rate = rng.uniform(0.7, 1.0), rng.uniform(4.0, 12.0)
        envelope = 1.0 - depth * 0.5 * (1.0 + np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
        x = envelope * np.sin(2 * np.pi * _f0(rng) * t + rng.uniform(0, 2 * np.pi))
    elif name == "clicks":
        rate = rng.uniform(4.0, 15.0)
        click_len = max(8, int(rng.uniform(0.002, 0.005) * sr))
        x = np.zeros(n)
        decay = np.exp(-np.arange(click_len) / (click_len / 4))
        for start in np.arange(rng.uniform(0, 1.0 / rate), n / sr, 1.0 / rate):
            i = int(start * sr)
            m = min(click_len, n - i)
            x[i:i + m] += rng.standard_normal(m) * decay[:m]
    elif name == "chord":
        f0 = _f0(rng, 150.0, 1000.0)
        x = np.zeros(n)
        for note in (1.0, 2 ** (4 / 12), 2 ** (7 / 12)):
            for harmonic, amplitude in ((1, 1.0), (2, 0.5), (3, 0.25)):
                x += amplitude * np.sin(2 * np.pi * f0 * note * harmonic * t + rng.uniform(0, 2 * np.pi))
    elif name == "noise_bursts":
        centre = _f0(rng, 300.0, 5000.0)
        noise = _band_noise(n, sr, rng, centre, rng.uniform(0.3, 1.0) * centre)
        gate = np.zeros(n)
        pos = rng.uniform(0.0, 0.2)
        while pos < n / sr:
            length = rng.uniform(0.06, 0.2)
            i, j = int(pos * sr), min(n, int((pos + length) * sr))
            ramp = min(80, (j - i) // 2)
            g = np.ones(max(j - i, 0))
            if ramp > 0:
                g[:ramp] = np.linspace(0, 1, ramp)
                g[-ramp:] = np.linspace(1, 0, ramp)
            gate[i:j] = g
            pos += length + rng.uniform(0.05, 0.3)
        x = noise * gate
    else:
        raise ValueError(f"unknown audio class {label!r}; classes: {', '.join(CLASSES)}")
    rms = np.sqrt(np.mean(x ** 2)) if n else 1.0
    return x / (rms + 1e-12)


def _background(n: int, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(n)
    if rng.random() < 0.5:  # tilted towards low frequencies (one-pole low-pass, mixed with white)
        a = rng.uniform(0.8, 0.98)
        spectrum = np.fft.rfft(noise)
        freqs = np.arange(len(spectrum)) / max(n, 1)
        spectrum = spectrum / np.abs(1 - a * np.exp(-2j * np.pi * freqs))
        low = np.fft.irfft(spectrum, n)
        noise = 0.3 * noise + low / (np.std(low) + 1e-12)
    return noise / (np.std(noise) + 1e-12)


def render_stream(rng: np.random.Generator, duration_s: float, segment_s: tuple[float, float] = (2.0, 5.0),
                  labels: Optional[Sequence[int]] = None, sample_rate: int = SAMPLE_RATE,
                  snr_db: tuple[float, float] = (10.0, 30.0)) -> tuple[np.ndarray, list[Segment]]:
    """A labelled stream: consecutive segments of random classes (no class twice in a row).

    Args:
        duration_s: stream length; the last segment is cut at the end.
        segment_s: range of segment durations (uniform).
        labels: the classes of the segments in order (default: random); when given, the stream
            ends after the last one (``duration_s`` is then an upper bound).
    Returns:
        ``(audio, segments)``: float32 samples in [-1, 1] and the :class:`Segment` list.
    """
    sr = int(sample_rate)
    total = int(round(duration_s * sr))
    segments: list[Segment] = []
    pos, previous, k = 0, -1, 0
    while pos < total and (labels is None or k < len(labels)):
        if labels is None:
            label = int(rng.choice([c for c in range(len(CLASSES)) if c != previous]))
        else:
            label = int(labels[k])
        length = min(int(rng.uniform(*segment_s) * sr), total - pos)
        segments.append(Segment(label, pos, pos + length))
        pos, previous, k = pos + length, label, k + 1
    audio = np.zeros(pos)
    fade = int(0.01 * sr)
    for seg in segments:
        n = seg.end - seg.start
        x = render_segment(seg.label, n, rng, sr) * 10 ** (rng.uniform(-30.0, -6.0) / 20)
        if n > 2 * fade:
            x[:fade] *= np.linspace(0, 1, fade)
            x[-fade:] *= np.linspace(1, 0, fade)
        audio[seg.start:seg.end] = x
    signal_rms = np.sqrt(np.mean(audio ** 2)) if pos else 0.0
    audio += _background(pos, rng) * signal_rms * 10 ** (-rng.uniform(*snr_db) / 20)
    peak = np.max(np.abs(audio)) if pos else 0.0
    if peak > 0.99:
        audio *= 0.99 / peak
    return audio.astype(np.float32), segments


def labels_at(segments: Sequence[Segment], positions) -> np.ndarray:
    """The class index at each sample position (``-1`` outside every segment)."""
    positions = np.asarray(positions)
    out = np.full(positions.shape, -1, np.int64)
    for seg in segments:
        out[(positions >= seg.start) & (positions < seg.end)] = seg.label
    return out


def window_labels(segments: Sequence[Segment], window_ends, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Per analysis window ending (exclusively) at ``window_ends``: the class at its centre, and whether
    the whole window lies inside one segment (``pure``)."""
    ends = np.asarray(window_ends)
    centre = labels_at(segments, ends - window // 2)
    pure = (ends - window >= 0) & (centre >= 0)
    for seg in segments[1:]:  # a boundary inside the window
        pure &= ~((ends - window < seg.start) & (seg.start < ends))
    return centre, pure


def to_pcm16(audio: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as S16LE bytes (what a ROS audio capture node publishes)."""
    return (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()
