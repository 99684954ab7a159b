"""Continual Transformer classifiers of token streams: audio classification and online action detection
(seed 3.1 / 8.3: CoTrans on GTZAN audio, CoOadTR on THUMOS'14 features).

One class, :class:`ContinualSequenceClassifier`, serves both tasks: an input projection, the
recycling positional encoding, the :class:`~opendr_perception.models.continual_transformer.
ContinualTransformerEncoder` over the last ``sequence_len`` tokens and a linear head on the newest
token's output. Tokens are

* audio: one embedding of the last 1 s of audio every 250 ms hop, from :class:`AudioFrontend`
  (log-mel spectrogram -> small CNN), passed as the classifier's ``frontend``;
* online action detection: the given per-frame feature vectors (no frontend).

Two ways to run the same weights, numerically the same (tested in float64):

* continual, ``forward_step(x)``: one token's input (a 1 s waveform window, or a feature vector)
  -> the newest token's logits ``(B, classes)``, or ``None`` during the ``sequence_len - 1``
  warm-up steps; the encoder caches keys and values (single-output attention, seed Eq. 7);
* regular, ``forward_steps(x)`` / :meth:`ContinualSequenceClassifier.classify_windows`: every sliding
  window of ``sequence_len`` tokens through the regular encoder, the newest token's logits per
  window; used for training (all steps of a stream in one batch).

Positional encodings recycle (``tau_t = t mod (2n - 1)`` from a clean state), so the regular
window starting at token ``s`` uses positions ``s, s+1, ...`` modulo ``2n - 1``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from opendr_perception.models.continual_transformer import ContinualTransformerEncoder, RecyclingPositionalEncoding

__all__ = ["mel_filterbank", "LogMelSpectrogram", "AudioFrontend", "ContinualSequenceClassifier",
           "build_from_manifest"]


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular HTK-mel filters ``(n_mels, n_fft // 2 + 1)`` with unit peak (no area normalisation)."""
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate / 2, got fmin={fmin}, fmax={fmax}")
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None] - low) / (centre - low)
    falling = (high - freqs[None]) / (high - centre)
    return np.clip(np.minimum(rising, falling), 0.0, None)


class LogMelSpectrogram(nn.Module):
    """Mel power spectrogram in dB of waveforms ``(..., L)`` -> ``(..., n_mels, frames)``.

    Frames are not centred (``center=False``): frame ``i`` covers samples ``[i * hop, i * hop + n_fft)``,
    so the frames of a window that starts at a multiple of ``hop`` are exactly the stream's frames.
    """

    def __init__(self, sample_rate: int = 16000, n_fft: int = 400, hop: int = 250, n_mels: int = 32,
                 fmin: float = 50.0, fmax: Optional[float] = None):
        super().__init__()
        self.n_fft, self.hop = int(n_fft), int(hop)
        fb = mel_filterbank(sample_rate, n_fft, n_mels, fmin, sample_rate / 2 if fmax is None else fmax)
        self.register_buffer("filters", torch.tensor(fb, dtype=torch.get_default_dtype()), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)

    def forward(self, wave: Tensor) -> Tensor:
        lead = wave.shape[:-1]
        spec = torch.stft(wave.reshape(-1, wave.shape[-1]), self.n_fft, self.hop, window=self.window.to(wave.dtype),
                          center=False, return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2  # (N, n_fft/2+1, frames)
        mel = torch.matmul(self.filters.to(wave.dtype), power)
        return (10.0 * torch.log10(mel + 1e-10)).reshape(*lead, *mel.shape[-2:])


class AudioFrontend(nn.Module):
    """1 s audio window -> embedding: log-mel spectrogram, level normalisation, small CNN.

    The window's dB spectrogram is referred to its own maximum and floored 80 dB below it (level
    invariance, like ``top_db``), scaled to about [-1, 1], then 3 conv blocks (3x3, BatchNorm, ReLU,
    2x2 max-pool after the first two), global average pooling and a linear layer.

    ``forward(windows (B, window_samples))`` -> ``(B, embed_dim)``;
    :meth:`stream` embeds every window of a long waveform (one per hop) from one spectrogram.
    """

    def __init__(self, sample_rate: int = 16000, window_s: float = 1.0, hop_s: float = 0.25, n_fft: int = 400,
                 frame_hop: int = 250, n_mels: int = 32, fmin: float = 50.0, fmax: Optional[float] = None,
                 channels: Sequence[int] = (16, 32, 48), embed_dim: int = 32):
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.window_samples = int(round(window_s * sample_rate))
        self.hop_samples = int(round(hop_s * sample_rate))
        if self.hop_samples % frame_hop or self.window_samples < n_fft:
            raise ValueError(f"the hop ({self.hop_samples} samples) must be a multiple of frame_hop ({frame_hop}) "
                             f"and the window at least n_fft ({n_fft}) samples")
        self.frames_per_window = (self.window_samples - n_fft) // frame_hop + 1
        self.frames_per_hop = self.hop_samples // frame_hop
        self.embed_dim = int(embed_dim)
        self.spectrogram = LogMelSpectrogram(sample_rate, n_fft, frame_hop, n_mels, fmin, fmax)
        layers, c_in = [], 1
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
            c_in = c
        self.cnn = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, embed_dim))

    def embed_spectrograms(self, spec: Tensor) -> Tensor:
        """dB spectrograms of windows ``(N, n_mels, frames_per_window)`` -> embeddings ``(N, embed_dim)``."""
        ref = spec.amax(dim=(-2, -1), keepdim=True)
        x = (torch.clamp(spec - ref, min=-80.0) + 40.0) / 40.0
        return self.cnn(x.unsqueeze(1))

    def forward(self, windows: Tensor) -> Tensor:
        if windows.shape[-1] != self.window_samples:
            raise ValueError(f"expected windows of {self.window_samples} samples, got shape {tuple(windows.shape)}")
        return self.embed_spectrograms(self.spectrogram(windows))

    def num_windows(self, num_samples: int) -> int:
        return max(0, (num_samples - self.window_samples) // self.hop_samples + 1)

    def stream(self, wave: Tensor) -> Tensor:
        """Embeddings ``(B, T, embed_dim)`` of the windows ending at samples ``W + k * hop`` of ``wave (B, L)``
        (``W`` = window), the same as ``forward`` on each window, from one spectrogram of the stream."""
        T = self.num_windows(wave.shape[-1])
        if T == 0:
            return wave.new_zeros(wave.shape[0], 0, self.embed_dim)
        spec = self.spectrogram(wave[:, : self.window_samples + (T - 1) * self.hop_samples])
        windows = self.window_spectrograms(spec)
        return self.embed_spectrograms(windows.flatten(0, 1)).reshape(wave.shape[0], T, -1)

    def window_spectrograms(self, spec: Tensor) -> Tensor:
        """A stream's dB spectrogram ``(B, n_mels, frames)`` -> its windows ``(B, T, n_mels, frames_per_window)``,
        one per hop (the spectrograms ``forward`` computes for each window)."""
        return spec.unfold(-1, self.frames_per_window, self.frames_per_hop).permute(0, 2, 1, 3)


class ContinualSequenceClassifier(nn.Module):
    """A continual transformer classifier of token streams (one prediction per token after warm-up).

    Args:
        num_classes: outputs of the head.
        input_dim: size of a token's input vector (the frontend's ``embed_dim`` when there is one).
        d_model, nhead, dim_feedforward, num_layers, dropout: the encoder (post-norm); ``num_layers``
            1 is the seed's single-output CoTrans-b1 / CoOadTR-b1, 2 adds a retroactive block.
        sequence_len: tokens in the attention window ``n``; warm-up ``n - 1`` steps.
        frontend: optional module mapping a step's raw input to a token (:class:`AudioFrontend`).
    """

    def __init__(self, num_classes: int, input_dim: int, d_model: int = 32, nhead: int = 4, sequence_len: int = 8,
                 dim_feedforward: int = 64, num_layers: int = 1, dropout: float = 0.0,
                 frontend: Optional[nn.Module] = None):
        super().__init__()
        self.frontend = frontend
        self.input_dim, self.num_classes, self.sequence_len = int(input_dim), int(num_classes), int(sequence_len)
        self.input_proj = nn.Linear(input_dim, d_model)
        self.pe = RecyclingPositionalEncoding(d_model, 2 * sequence_len - 1)
        self.encoder = ContinualTransformerEncoder(d_model, nhead, sequence_len, num_layers, dim_feedforward, dropout)
        self.head = nn.Linear(d_model, num_classes)

    @property
    def delay(self) -> int:
        return self.sequence_len - 1

    def tokens(self, x: Tensor) -> Tensor:
        """Step inputs ``(..., raw)`` -> token inputs ``(..., input_dim)`` (through the frontend, if any)."""
        if self.frontend is None:
            if x.shape[-1] != self.input_dim:
                raise ValueError(f"expected inputs of size {self.input_dim}, got shape {tuple(x.shape)}")
            return x
        lead = x.shape[:-1]
        return self.frontend(x.reshape(-1, x.shape[-1])).reshape(*lead, -1)

    # -- regular ---------------------------------------------------------------------------------
    def classify_windows(self, tokens: Tensor, tau0: Optional[int] = 0) -> Optional[Tensor]:
        """Regular: token inputs ``(B, T, input_dim)`` -> logits ``(B, T - n + 1, classes)`` of the newest token of
        every window of ``n`` tokens (None if ``T < n``). ``tau0``: position of token 0 (None: random in
        training mode, 0 in eval mode)."""
        B, T = tokens.shape[:2]
        n, P = self.sequence_len, self.pe.num_embeds
        if T < n:
            return None
        if tau0 is None:
            tau0 = int(torch.randint(P, ())) if self.training else 0
        # a token's position depends on its index only: (tau0 + i) mod P, in every window it is in
        z = self.input_proj(tokens) + self.pe.pe[(torch.arange(T, device=tokens.device) + tau0) % P].to(tokens.dtype)
        if self.encoder.num_layers == 1:
            # one block: the newest token's output of a window needs only its own query over the window's
            # keys, so the whole stream goes through once with a banded causal mask (n times less work)
            i = torch.arange(T, device=z.device)
            blocked = (i[None, :] > i[:, None]) | (i[None, :] <= i[:, None] - n)
            out = self.encoder.layers[0](z, src_mask=blocked)[:, n - 1:]
            if self.encoder.norm is not None:
                out = self.encoder.norm(out)
            return self.head(out)
        windows = z.unfold(1, n, 1).permute(0, 1, 3, 2)  # (B, T', n, d)
        out = self.encoder(windows.reshape(-1, n, z.shape[-1]))[:, -1]
        return self.head(out).reshape(B, T - n + 1, -1)

    def forward_steps(self, x: Tensor, tau0: int = 0) -> Optional[Tensor]:
        """Regular over a stream of step inputs ``(B, T, raw)`` -> ``(B, T - n + 1, classes)`` or None;
        equals ``forward_step`` on each step from a clean state (``tau0=0``)."""
        return self.classify_windows(self.tokens(x), tau0)

    def forward(self, x: Tensor) -> Tensor:
        """Regular over one window of step inputs ``(B, n, raw)`` -> the newest token's logits ``(B, classes)``."""
        if x.shape[1] != self.sequence_len:
            raise ValueError(f"expected a window of {self.sequence_len} steps, got shape {tuple(x.shape)}")
        return self.forward_steps(x)[:, 0]

    # -- continual -------------------------------------------------------------------------------
    @torch.no_grad()
    def forward_step(self, x: Tensor) -> Optional[Tensor]:
        """Continual: one step's input ``(B, raw)`` -> the newest token's logits ``(B, classes)`` or None (warm-up)."""
        token = self.pe.forward_step(self.input_proj(self.tokens(x)))
        out = self.encoder.forward_step(token)
        return None if out is None else self.head(out)

    def clean_state(self) -> None:
        self.pe.clean_state()
        self.encoder.clean_state()

    def get_state(self):
        """The live state (position, encoder caches); deep-copy to snapshot."""
        return self.pe.get_state(), self.encoder.get_state()

    def set_state(self, state) -> None:
        if state is None:
            self.clean_state()
            return
        self.pe.set_state(state[0])
        self.encoder.set_state(state[1])


def build_from_manifest(extra: dict) -> ContinualSequenceClassifier:
    """The classifier a registry entry describes (its ``model`` options and, for audio, ``frontend`` options)."""
    options = dict(extra["model"])
    frontend = AudioFrontend(**extra["frontend"]) if extra.get("frontend") else None
    return ContinualSequenceClassifier(frontend=frontend, **options)


def receptive_field_s(extra: dict) -> float:
    """Seconds of input the newest prediction depends on (audio: the window plus n - 1 hops)."""
    n = extra["model"]["sequence_len"]
    if extra.get("frontend"):
        f = extra["frontend"]
        return f.get("window_s", 1.0) + (n - 1) * f.get("hop_s", 0.25)
    return n / float(extra.get("fps", 1.0))

