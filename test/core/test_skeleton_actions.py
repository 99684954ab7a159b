"""The procedural COCO-18 stick-figure actions and the pose normalisation of the demo skeleton model."""
import dataclasses

import numpy as np
import pytest

from opendr_perception.core import skeleton_actions as sa
from opendr_perception.core.keypoints import COCO18

W, H = sa.FRAME_SIZE


def test_layout_is_the_pose_nodes_coco18():
    from opendr_perception.models.skeleton_gcn import COCO18 as GCN_COCO18

    assert GCN_COCO18.joints == COCO18.names and sa.NUM_KEYPOINTS == 18
    names = COCO18.names
    for i, j in enumerate(sa.MIRROR_PERMUTATION):
        assert names[j] == names[i].replace("left", "#").replace("right", "left").replace("#", "right")


def test_the_generator_is_deterministic_per_seed_and_order_free():
    a, la = sa.generate_dataset(2, seed=5)
    b, lb = sa.generate_dataset(2, seed=5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    c, _ = sa.generate_dataset(2, seed=6)
    assert not np.allclose(a, c)
    d, _ = sa.generate_dataset(2, seed=5, stream=1)
    assert not np.allclose(a, d)
    # one class alone gives the same sequences as within the full set
    e, le = sa.generate_dataset(2, seed=5, actions=[3])
    np.testing.assert_array_equal(e, a[la == 3])
    assert (le == 3).all()
    one = sa.generate_sequence("raising_arms", np.random.default_rng([5, 0, 3, 1]))
    np.testing.assert_array_equal(one, a[la == 3][1])


@pytest.mark.parametrize("preset", sorted(sa.PRESETS))
def test_sequences_are_valid_coco18_pixel_keypoints(preset):
    kp, labels = sa.generate_dataset(6, seed=1, config=sa.PRESETS[preset])
    assert kp.shape == (6 * len(sa.ACTIONS), 48, 18, 3) and kp.dtype == np.float32
    assert labels.tolist() == [c for c in range(len(sa.ACTIONS)) for _ in range(6)]
    conf = kp[..., 2]
    assert np.isfinite(kp).all() and conf.min() >= 0.0 and conf.max() <= 1.0
    lost = conf == 0
    assert (kp[lost][:, :2] == 0).all(), "a lost keypoint has x = y = 0, as the pose node publishes it"
    seen = kp[~lost]
    assert (seen[:, 0] >= 0).all() and (seen[:, 0] < W).all() and (seen[:, 1] >= 0).all() and (seen[:, 1] < H).all()
    assert (seen[:, 2] >= 0.05).all()
    assert 0.0 < lost.mean() < 0.4, "some keypoints are dropped, most are seen"
    frame = kp[0, 0]
    assert frame.shape == (len(COCO18.names), 3)


def test_mirror_swaps_sides_and_flips_x():
    base = dataclasses.replace(sa.PRESETS["train"], mirror_prob=0.0)
    mirrored = dataclasses.replace(base, mirror_prob=1.0)
    a = sa.generate_sequence("waving", np.random.default_rng(7), base)
    b = sa.generate_sequence("waving", np.random.default_rng(7), mirrored)
    expected = a[:, sa.MIRROR_PERMUTATION].copy()
    seen = expected[..., 2] > 0
    expected[..., 0] = np.where(seen, W - expected[..., 0], 0.0)
    np.testing.assert_allclose(b, expected, atol=1e-4)


def test_unseen_proportions_lie_outside_the_training_ranges():
    rng = np.random.default_rng(0)
    for _ in range(50):
        train = sa.sample_proportions(rng, "train")
        unseen = sa.sample_proportions(rng, "unseen")
        for name, (lo, hi) in sa.PROPORTION_RANGES.items():
            assert lo <= getattr(train, name) <= hi
            assert not lo < getattr(unseen, name) < hi
    with pytest.raises(ValueError):
        sa.sample_proportions(rng, "giant")
    with pytest.raises(ValueError):
        sa.generate_sequence("moonwalk", rng)


def _features(kp):
    n = sa.normalize_keypoints(kp)
    xy = n[..., :2]
    motion = np.abs(np.diff(xy, axis=1)).mean(1)
    return np.concatenate([xy.mean(1), xy.std(1), motion], -1).reshape(len(n), -1)


def test_classes_are_distinguishable_in_simple_statistics():
    """Sanity, not a benchmark: nearest class centroid of per-joint mean / std / mean speed of the
    normalised coordinates, fitted on one seed and tested on another, is far above chance (1/8);
    wrists go above the nose while waving or raising the arms only; hands meet while clapping."""
    xa, ya = sa.generate_dataset(10, seed=11)
    xb, yb = sa.generate_dataset(10, seed=12)
    fa, fb = _features(xa), _features(xb)
    mu, sd = fa.mean(0), fa.std(0) + 1e-6
    fa, fb = (fa - mu) / sd, (fb - mu) / sd
    centroids = np.stack([fa[ya == c].mean(0) for c in range(len(sa.ACTIONS))])
    pred = ((fb[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert (pred == yb).mean() > 0.4  # measured 0.61 with 20 clips per class

    n = sa.normalize_keypoints(xb)
    seen = n[..., 2] > 0
    wrist_y = np.minimum(np.where(seen[..., sa.R_WRI], n[..., sa.R_WRI, 1], 9),
                         np.where(seen[..., sa.L_WRI], n[..., sa.L_WRI, 1], 9))
    nose_y = np.where(seen[..., sa.NOSE], n[..., sa.NOSE, 1], -9)
    hands_up = (wrist_y < nose_y).mean(1)
    idx = {a: yb == i for i, a in enumerate(sa.ACTIONS)}
    for action in ("waving", "raising_arms"):
        assert hands_up[idx[action]].mean() > 0.3, action
    for action in ("standing", "walking", "squatting", "clapping", "kicking"):
        assert hands_up[idx[action]].mean() < 0.05, action
    both = seen[..., sa.R_WRI] & seen[..., sa.L_WRI]
    gap = np.where(both, np.linalg.norm(n[..., sa.R_WRI, :2] - n[..., sa.L_WRI, :2], axis=-1), np.inf).min(1)
    assert np.median(gap[idx["clapping"]]) < 0.2
    for action in ("standing", "waving", "raising_arms"):
        assert np.median(gap[idx[action]]) > 0.4, action


def _pose():
    kp = np.zeros((18, 3), np.float32)
    kp[:, 2] = 0.9
    rng = np.random.default_rng(3)
    kp[:, :2] = rng.uniform(100, 400, (18, 2))
    kp[sa.NECK, :2] = (300, 100)
    kp[sa.R_SHO, :2], kp[sa.L_SHO, :2] = (270, 100), (330, 100)  # their midpoint is the neck
    kp[sa.R_HIP, :2], kp[sa.L_HIP, :2] = (285, 180), (315, 180)  # torso length 80 px
    return kp


def test_normalisation_centres_on_the_neck_and_scales_by_the_torso():
    kp = _pose()
    n = sa.normalize_keypoints(kp)
    assert n.shape == (18, 3) and n.dtype == np.float32
    np.testing.assert_allclose(n[sa.NECK], [0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(n[sa.R_HIP, :2], [-15 / 80, 1.0], atol=1e-6)
    np.testing.assert_allclose(n[:, :2], np.clip((kp[:, :2] - [300, 100]) / 80, -6, 6), atol=1e-5)
    # invariant to where the person stands and how large they appear
    moved = kp.copy()
    moved[:, :2] = kp[:, :2] * 1.7 + [40, -25]
    np.testing.assert_allclose(sa.normalize_keypoints(moved), n, atol=1e-5)
    # a batch of clips gives the same as single poses
    clip = np.stack([kp, moved])[None]
    np.testing.assert_allclose(sa.normalize_keypoints(clip)[0, 1], n, atol=1e-5)


def test_normalisation_of_unseen_keypoints_and_fallbacks():
    kp = _pose()
    kp[sa.R_WRI] = (0, 0, 0)
    kp[sa.L_WRI, 2] = 0.2  # below min_confidence: unseen
    n = sa.normalize_keypoints(kp)
    assert (n[[sa.R_WRI, sa.L_WRI]] == 0).all()
    # no neck: the shoulder midpoint (= the neck here), same scale
    no_neck = kp.copy()
    no_neck[sa.NECK, 2] = 0
    np.testing.assert_allclose(np.delete(sa.normalize_keypoints(no_neck), sa.NECK, 0), np.delete(n, sa.NECK, 0),
                               atol=1e-5)
    # no hips: scale = shoulder width / 0.82
    no_hips = kp.copy()
    no_hips[[sa.R_HIP, sa.L_HIP], 2] = 0
    nh = sa.normalize_keypoints(no_hips)
    np.testing.assert_allclose(nh[sa.L_SHO, 0], 30 / (60 / sa.SHOULDER_WIDTH_PER_TORSO), atol=1e-5)
    # nothing seen: all zeros, no warnings or NaN
    empty = kp.copy()
    empty[:, 2] = 0
    assert (sa.normalize_keypoints(empty) == 0).all()
    with pytest.raises(ValueError):
        sa.normalize_keypoints(np.zeros((17, 3)))


def test_tensor_layouts_for_clips_and_steps():
    kp, _ = sa.generate_dataset(1, seed=2, actions=[0, 1])
    n = sa.normalize_keypoints(kp)
    clips = sa.to_clip_tensor(n)
    assert tuple(clips.shape) == (2, 3, 48, 18, 1)
    step = sa.to_step_tensor(n[:, 10])
    assert tuple(step.shape) == (2, 3, 18, 1)
    np.testing.assert_array_equal(step.numpy(), clips[:, :, 10].numpy())
    assert tuple(sa.to_step_tensor(n[0, 0]).shape) == (1, 3, 18, 1)
    assert tuple(sa.to_clip_tensor(n[0]).shape) == (1, 3, 48, 18, 1)
