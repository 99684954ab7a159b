"""Synthetic feature streams for online action detection (core.feature_streams) and the per-frame AP metric."""
import numpy as np
import pytest

from opendr_perception.core import feature_streams as fs


def test_streams_are_deterministic_and_labelled():
    x, y = fs.generate_streams(3, 300, seed=4)
    x2, y2 = fs.generate_streams(3, 300, seed=4)
    assert x.shape == (3, 300, fs.FEATURE_DIM) and x.dtype == np.float32 and y.shape == (3, 300)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(fs.generate_streams(3, 300, seed=5)[1], y)
    assert (y[:, :6] == 0).all()  # streams start with background
    assert set(np.unique(y)) <= set(range(len(fs.LABELS)))
    for stream in y:  # actions alternate with background; action runs are 12-40 frames (or cut at the end)
        change = np.flatnonzero(np.diff(stream)) + 1
        runs = np.split(stream, change)
        for run in runs[1:-1]:
            if run[0] > 0:
                assert 12 <= len(run) <= 40
        assert all((a[0] == 0) != (b[0] == 0) for a, b in zip(runs, runs[1:]))


def test_cycling_actions_share_key_states_so_one_frame_is_ambiguous():
    """reach cycles u0<->u1, wave u0<->u2, bend u1<->u2: a frame held in u0 is reach or wave; the states the
    recent frames visited tell which. pulse oscillates along u3, ramp progresses along u4."""
    basis = fs.class_basis()
    assert np.allclose(basis @ basis.T, np.eye(fs.FEATURE_DIM), atol=1e-12)
    rng = np.random.default_rng(0)
    visited = {}
    for name in ("reach", "wave", "bend"):
        f = fs.action_frames(fs.LABELS.index(name), 40, rng, basis) @ basis[:3].T  # (40, 3) in the key states
        held = np.isclose(f.max(1), 1.2) & np.isclose(np.sort(f, 1)[:, 1], 0.0, atol=1e-12)
        assert held.mean() > 0.4  # most frames hold a key state exactly
        visited[name] = set(np.argmax(f[held], 1).tolist())
    assert visited == {"reach": {0, 1}, "wave": {0, 2}, "bend": {1, 2}}
    pulse = fs.action_frames(fs.LABELS.index("pulse"), 40, rng, basis)
    along = pulse @ basis[3]
    assert np.allclose(pulse - np.outer(along, basis[3]), 0) and np.sum(np.diff(np.sign(along)) != 0) >= 6
    ramp = fs.action_frames(fs.LABELS.index("ramp"), 20, rng, basis) @ basis[4]
    assert (np.diff(ramp) > 0).all() and ramp[0] == pytest.approx(-1.2) and ramp[-1] == pytest.approx(1.2)


def test_average_precision():
    assert fs.average_precision([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    assert fs.average_precision([0.9, 0.8, 0.1], [0, 1, 1]) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert np.isnan(fs.average_precision([0.1, 0.2], [0, 0]))
    probabilities = np.eye(len(fs.LABELS))[[0, 1, 2, 3, 4, 5, 1]]
    ap = fs.per_class_ap(probabilities, np.array([0, 1, 2, 3, 4, 5, 1]))
    assert "background" not in ap and ap["mAP"] == 1.0
