"""Continual transformer classifiers (models.continual_classifiers): continual steps equal the regular model
over sliding windows (float64, random weights), warm-up, the audio frontend's shapes and its stream path."""
import copy

import numpy as np
import pytest
import torch

from opendr_perception.models.continual_classifiers import (
    AudioFrontend, ContinualSequenceClassifier, LogMelSpectrogram, build_from_manifest, mel_filterbank)

pytestmark = pytest.mark.usefixtures("float64_default")


def randomised(model, seed=0, std=0.3):
    """Random weights far from the init (attention far from uniform), eval mode."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name and "bn" not in name:
                p.normal_(0, std)
    return model.eval()


def continual_outputs(model, steps):
    model.clean_state()
    outs = [model.forward_step(steps[:, t]) for t in range(steps.shape[1])]
    return outs


@pytest.mark.parametrize("num_layers", [1, 2])
def test_forward_step_equals_regular_over_sliding_windows(num_layers):
    n, T = 6, 40  # positions recycle (2n - 1 = 11) several times
    model = randomised(ContinualSequenceClassifier(5, 12, d_model=16, nhead=4, sequence_len=n, dim_feedforward=24,
                                                   num_layers=num_layers), seed=num_layers)
    x = torch.randn(3, T, 12)
    outs = continual_outputs(model, x)
    assert all(o is None for o in outs[: n - 1]) and all(o is not None for o in outs[n - 1:])
    continual = torch.stack(outs[n - 1:], 1)
    with torch.no_grad():
        regular = model.forward_steps(x)
        # the definition: each window of the last n steps through the encoder, positions s..s+n-1
        by_window = torch.stack([model.forward_steps(x[:, s:s + n], tau0=s) for s in range(T - n + 1)], 1)[:, :, 0]
        single = model(x[:, :n])
    assert regular.shape == continual.shape == (3, T - n + 1, 5)
    print(f"b{num_layers}: max |continual - regular| = {(continual - regular).abs().max():.1e}, "
          f"logits up to {regular.abs().max():.1f}")
    torch.testing.assert_close(continual, regular, rtol=0, atol=1e-9)
    torch.testing.assert_close(by_window, regular, rtol=0, atol=1e-9)
    torch.testing.assert_close(single, regular[:, 0], rtol=0, atol=1e-9)
    assert model.forward_steps(x[:, : n - 1]) is None


def test_states_are_per_stream_and_reset():
    model = randomised(ContinualSequenceClassifier(4, 8, d_model=8, nhead=2, sequence_len=4, dim_feedforward=16))
    a, b = torch.randn(1, 12, 8), torch.randn(1, 12, 8)
    ref_a = torch.stack(continual_outputs(copy.deepcopy(model), a)[3:], 1)
    states, outs = {}, []
    model.clean_state()
    for t in range(12):
        for key, x in (("a", a), ("b", b)):
            model.set_state(states.get(key))
            y = model.forward_step(x[:, t])
            states[key] = model.get_state()
            if key == "a" and y is not None:
                outs.append(y)
    torch.testing.assert_close(torch.stack(outs, 1), ref_a, rtol=0, atol=0)
    model.set_state(None)
    assert model.get_state() == (0, None) and model.forward_step(a[:, 0]) is None
    with pytest.raises(ValueError, match="size 8"):
        model.forward_step(torch.randn(1, 9))


def test_mel_filterbank_and_spectrogram_shapes():
    fb = mel_filterbank(16000, 400, 32, 50.0, 8000.0)
    assert fb.shape == (32, 201) and fb.max() <= 1.0 + 1e-12 and (fb.sum(0)[3:-1] > 0).all()
    assert (np.argmax(fb, axis=1)[1:] > np.argmax(fb, axis=1)[:-1]).all()  # centres rise
    with pytest.raises(ValueError):
        mel_filterbank(16000, 400, 32, 50.0, 9000.0)
    spec = LogMelSpectrogram()(torch.randn(2, 3, 16000))
    assert spec.shape == (2, 3, 32, 63)  # (16000 - 400) // 250 + 1 frames, not centred
    # a 1 kHz tone lands in the band whose centre is nearest to 1 kHz
    t = torch.arange(16000) / 16000
    tone = LogMelSpectrogram()(torch.sin(2 * np.pi * 1000 * t)[None])[0].mean(-1)
    assert int(tone.argmax()) == int(np.argmax(fb[:, round(1000 / 40)]))


def test_audio_frontend_windows_and_stream_agree():
    frontend = randomised(AudioFrontend(channels=(4, 6, 8), embed_dim=10), std=0.2)
    assert frontend.window_samples == 16000 and frontend.hop_samples == 4000
    assert frontend.frames_per_window == 63 and frontend.frames_per_hop == 16
    wave = torch.randn(2, 16000 + 5 * 4000 + 123)  # 6 windows, a partial hop left over
    assert frontend.num_windows(wave.shape[1]) == 6
    stream = frontend.stream(wave)
    windows = wave[:, :16000 + 5 * 4000].unfold(1, 16000, 4000)  # (2, 6, 16000)
    with torch.no_grad():
        one_by_one = frontend(windows.reshape(-1, 16000)).reshape(2, 6, 10)
    assert stream.shape == (2, 6, 10)
    torch.testing.assert_close(stream, one_by_one, rtol=0, atol=1e-10)
    # level invariance: the spectrogram is referred to its maximum
    torch.testing.assert_close(frontend(windows[0] * 0.01), frontend(windows[0]), rtol=0, atol=1e-8)
    with pytest.raises(ValueError, match="16000 samples"):
        frontend(torch.randn(1, 8000))
    assert frontend.stream(torch.randn(1, 15999)).shape == (1, 0, 10)
    with pytest.raises(ValueError, match="multiple of frame_hop"):
        AudioFrontend(hop_s=0.26)


def test_audio_classifier_steps_on_waveform_windows_equal_regular():
    extra = {"model": dict(num_classes=3, input_dim=10, d_model=8, nhead=2, sequence_len=4, dim_feedforward=16),
             "frontend": dict(channels=[4, 6, 8], embed_dim=10)}
    model = randomised(build_from_manifest(extra), std=0.2)
    assert isinstance(model.frontend, AudioFrontend) and model.delay == 3
    windows = torch.randn(2, 7, 16000)
    outs = continual_outputs(model, windows)
    assert [o is None for o in outs] == [True] * 3 + [False] * 4
    with torch.no_grad():
        regular = model.forward_steps(windows)
        from_stream = model.classify_windows(model.frontend.stream(torch.randn(1, 16000)), tau0=0)
    torch.testing.assert_close(torch.stack(outs[3:], 1), regular, rtol=0, atol=1e-12)
    assert from_stream is None  # one window: still in warm-up
    oad = build_from_manifest({"model": dict(num_classes=6, input_dim=32, sequence_len=16)})
    assert oad.frontend is None and oad.delay == 15
