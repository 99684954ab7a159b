"""The procedural moving-shape videos: deterministic per seed, and each class does what its name says,
measured from the rendered pixels (shape area, torus-aware centroid, visibility per frame)."""
import itertools

import numpy as np
import pytest

from opendr_perception.core import moving_shapes as ms

SIZE = 64


def test_the_same_seed_gives_the_same_videos_and_another_seed_others():
    a, la = ms.generate_dataset(2, 5, 12, 32)
    b, lb = ms.generate_dataset(2, 5, 12, 32)
    c, _ = ms.generate_dataset(2, 6, 12, 32)
    assert a.shape == (2 * len(ms.CLASSES), 12, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and np.array_equal(la, lb) and not np.array_equal(a, c)
    assert la.tolist() == [k for k in range(len(ms.CLASSES)) for _ in range(2)]
    seq = ms.generate_dataset(1, (5, 3), 12, 32)[0]  # a sequence seed: fresh batches per step
    assert not np.array_equal(seq, ms.generate_dataset(1, (5, 4), 12, 32)[0])


def test_a_stream_is_a_continuation_of_its_clips():
    frames = np.stack(list(itertools.islice(ms.stream("blink", seed=3, size=SIZE), 20)))
    again = np.stack(list(itertools.islice(ms.stream("blink", seed=3, size=SIZE), 20)))
    scene = ms.sample_scene("blink", np.random.default_rng(3))
    assert np.array_equal(frames, again)
    assert np.array_equal(frames[7:15], ms.render_clip(scene, 7, 8, SIZE))
    with pytest.raises(ValueError, match="unknown class"):
        ms.sample_scene("dancing", np.random.default_rng(0))


def measure(label, seed, frames=30, size=SIZE):
    """Per frame: shape area (px), centroid x, y (circular mean on the torus, px) from the pixels of a
    clutter- and noise-free stream (a pixel is the shape's when its colour is within 40 of the shape's)."""
    scene = ms.sample_scene(label, np.random.default_rng(seed), clutter=False, noise=False)
    clip = ms.render_clip(scene, 0, frames, size).astype(np.float64)
    mask = np.abs(clip - np.asarray(scene.color)).sum(-1) < 40  # (T, H, W)
    area = mask.sum((1, 2)).astype(np.float64)
    angle = 2 * np.pi * (np.arange(size) + 0.5) / size

    def circular(weights):  # (T, size) -> centroid in px
        z = (weights * np.exp(1j * angle)).sum(1)
        return (np.angle(z) % (2 * np.pi)) * size / (2 * np.pi)

    return area, circular(mask.sum(1)), circular(mask.sum(2))


def _steps(c):
    """Frame-to-frame displacement on the torus."""
    return (np.diff(c) + SIZE / 2) % SIZE - SIZE / 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_class_moves_as_named(seed):
    for label, (ux, uy) in ms.MOVING.items():
        area, x, y = measure(label, seed)
        assert (area > 10).all(), label
        vx, vy = _steps(x).mean(), _steps(y).mean()
        along, across = ux * vx + uy * vy, abs(uy * vx + ux * vy)
        assert along > 0.8 * ms.SPEED[0] * SIZE, (label, vx, vy)  # the slowest speed, minus jitter
        assert across < 0.35 * along  # drift up to 25 % of the speed, (label, vx, vy)
    area, x, y = measure("static", seed)
    assert np.hypot(_steps(x).mean(), _steps(y).mean()) < 0.1
    assert np.abs(_steps(x)).max() < 2.0 and area.std() / area.mean() < 0.1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grow_shrink_and_blink_change_size_and_visibility(seed):
    grow, _, _ = measure("grow", seed, frames=40)
    shrink, _, _ = measure("shrink", seed, frames=40)
    assert (grow > 0).all() and (shrink > 0).all()
    for area, sign in ((grow, 1), (shrink, -1)):
        # a ramp of 8-16 frames: 2-5 restarts in 40 frames (the area jumps by a quarter of its range) ...
        restarts = np.flatnonzero(sign * np.diff(area) < -0.25 * area.max()) + 1
        assert 40 // ms.SCALE_PERIOD[1] <= len(restarts) <= -(-40 // ms.SCALE_PERIOD[0]), area
        # ... and between them the area goes the named way over any 3 frames (whole pixels, jittered)
        later = [sign * (area[t + 3] - area[t]) > 0 for t in range(len(area) - 3)
                 if not any(t < r <= t + 3 for r in restarts)]
        assert np.mean(later) > 0.9, area
    assert grow.max() > 4 * grow.min() and shrink.max() > 4 * shrink.min()
    blink, _, _ = measure("blink", seed, frames=40)
    visible = blink > 10
    assert 0.2 < visible.mean() < 0.8 and (blink[~visible] == 0).all()
    assert np.abs(np.diff(visible.astype(int))).sum() >= 40 / 10 * 2 - 2  # switches every 2-5 frames
    for label in ("static", "move_left", "grow"):  # the others are always visible
        assert (measure(label, seed, frames=40)[0] > 0).all()


def test_geometry_is_relative_to_the_image_side():
    small = measure("move_down", 4, frames=10, size=32)
    large = measure("move_down", 4, frames=10, size=64)
    np.testing.assert_allclose(2 * small[2], large[2], atol=1.0)
    np.testing.assert_allclose(4 * small[0], large[0], rtol=0.3)


def test_model_inputs_are_normalised_channels_first():
    clips, _ = ms.generate_dataset(1, 0, 5, 16, classes=("grow",))
    x = ms.to_clip_tensor(clips)
    assert tuple(x.shape) == (1, 3, 5, 16, 16)
    expected = (clips[0, 2, 3, 4, 1] / 255.0 - ms.MEAN) / ms.STD
    assert abs(float(x[0, 1, 2, 3, 4]) - expected) < 1e-6
    assert np.array_equal(ms.to_frame_tensor(clips[0, 2]).numpy(), x[:, :, 2].numpy())
