"""2D occlusion generator and 3D emulator (appendix 8.12) on real photos."""
import numpy as np
import pytest

from opendr_perception.core import occlusion as occ
from opendr_perception.core import samples


@pytest.fixture(scope="module")
def faces():
    from opendr_perception.models.face_detection import FaceDetector
    det = FaceDetector("full_range")
    out = []
    for fn in (samples.astronaut, samples.grace_hopper):
        img = fn()
        b = det.detect(img)[0].box
        out.append((img, (b.x_min, b.y_min, b.x_max, b.y_max)))
    return out


@pytest.mark.parametrize("side", occ.OCCLUDER_SIDES)
@pytest.mark.parametrize("coverage", [0.2, 0.4, 0.6])
def test_coverage_matches_request_and_is_exact(faces, side, coverage):
    img, box = faces[0]
    s = occ.occlude(img, np.random.default_rng(1), side, coverage, box=box)
    assert abs(s.coverage_actual - coverage) < 0.02
    x0, y0, x1, y1 = s.box
    assert s.coverage_actual == pytest.approx(float(s.mask[y0:y1, x0:x1].mean()))
    assert s.mask.min() >= 0 and s.mask.max() <= 1
    # nothing outside the face box, and pixels change only where the occluder is
    outside = s.mask.copy()
    outside[y0:y1, x0:x1] = 0
    assert outside.max() == 0
    assert np.array_equal(s.image[s.mask == 0], img[s.mask == 0])


@pytest.mark.parametrize("side", occ.OCCLUDER_SIDES)
def test_occluder_is_on_its_side(faces, side):
    img, box = faces[1]
    s = occ.occlude(img, np.random.default_rng(7), side, 0.3, box=box)
    x0, y0, x1, y1 = s.box
    ys, xs = np.nonzero(s.mask > 0.5)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    du, dv = occ.SIDE_VECTOR[side]
    # mask centroid lies on the requested side, the whole mask in that half of the box
    if du:
        assert np.sign(xs.mean() - cx) == du and np.all(np.sign(xs - cx) == du)
    else:
        assert np.sign(ys.mean() - cy) == dv and np.all(np.sign(ys - cy) == dv)
    assert s.direction == side and s.label == occ.DIRECTIONS.index(side)
    assert s.move == {"up": "bottom", "bottom": "up", "left": "right", "right": "left"}[side]


def test_none_leaves_image_untouched(faces):
    img, box = faces[0]
    s = occ.occlude(img, np.random.default_rng(0), "none", 0.5, box=box)
    assert s.coverage_actual == 0 and not s.mask.any() and np.array_equal(s.image, img)
    assert s.label == 4 and s.move == "none"


def test_deterministic_per_rng(faces):
    img, box = faces[0]
    a = occ.random_occlusion(img, np.random.default_rng(3), box=box, p_none=0)
    b = occ.random_occlusion(img, np.random.default_rng(3), box=box, p_none=0)
    c = occ.random_occlusion(img, np.random.default_rng(4), box=box, p_none=0)
    assert np.array_equal(a.image, b.image) and a.direction == b.direction and a.coverage_actual == b.coverage_actual
    assert not np.array_equal(a.image, c.image)


def test_user_occluder_opaque_and_whole_image_box():
    face = samples.cameraman()[100:228, 180:308].copy()   # 128x128 crop, box defaults to the image
    cup = samples.no_people_photos()["coffee"]
    s = occ.occlude(face, np.random.default_rng(0), "left", 0.5, occluder=cup)
    assert s.box == (0, 0, 128, 128)
    assert s.coverage_actual == pytest.approx(64 / 128)   # opaque: exact integer depth
    assert np.all(s.mask[:, :64] == 1) and not s.mask[:, 64:].any()


def test_random_occluder_alpha_fill():
    o = occ.random_occluder(np.random.default_rng(0))
    assert o.shape == (128, 128, 4) and o.dtype == np.uint8
    fill = o[..., 3].mean() / 255
    assert 0.7 < fill < 0.99


def test_pinhole_parallax_and_ratio_match_projection():
    """K[R|t] projection of an occluder edge (depth Zo) and a face edge (depth Zf): the camera
    position that lines them up equals m + r*m with r from the pixel shifts of the first step."""
    fx, cx = 600.0, 320.0
    zo, zf, m = 1.2, 3.0, 0.05
    xo, xf = 0.10, -0.05     # occluder's inner edge is to the right of the face's far edge

    def u(x, z, t):          # camera at lateral position t, looking along +z
        return fx * (x - t) / z + cx

    s = occ.relative_shift(m, zo, zf, fx)
    assert (u(xo, zo, 0) - u(xo, zo, m)) - (u(xf, zf, 0) - u(xf, zf, m)) == pytest.approx(s)
    assert occ.pixel_shift(m, zo, fx) == pytest.approx(fx * m / zo)
    d = u(xo, zo, 0) - u(xf, zf, 0)          # pixels the occluder still covers past the face edge
    r = occ.remaining_ratio(d, s)
    t_clear = m + r * m
    assert u(xo, zo, t_clear) == pytest.approx(u(xf, zf, t_clear))
    # ratio is independent of f_x (same geometry, other focal length)
    s2 = occ.relative_shift(m, zo, zf, 2 * fx)
    assert occ.remaining_ratio(2 * d, s2) == pytest.approx(r)
    assert occ.remaining_ratio(10, 20) == 0.0
    with pytest.raises(ValueError):
        occ.remaining_ratio(10, 0)


@pytest.mark.parametrize("side", occ.OCCLUDER_SIDES)
def test_emulator_step_and_clearing(faces, side):
    img, box = faces[0]
    s = occ.occlude(img, np.random.default_rng(2), side, 0.45, box=box)
    d = occ.penetration(s.mask, s.box, side)
    assert d > 0
    st = occ.emulate_step(img, s, impact_px=d / 2)
    assert st.ratio == pytest.approx(1.0) and st.penetration_px == d
    cov2 = occ.box_coverage(st.mask2, s.box)
    assert 0 < cov2 < s.coverage_actual                  # moved out, partly
    # moving (1 + r) steps clears the face exactly
    clear = occ.emulate_step(img, s, impact_px=d)
    assert clear.ratio == 0.0 and occ.box_coverage(clear.mask2, s.box) == 0
    x0, y0, x1, y1 = s.box
    assert np.array_equal(clear.view2[y0:y1, x0:x1], img[y0:y1, x0:x1])
    rs = occ.random_step(img, s, np.random.default_rng(5))
    assert 0.0 <= rs.ratio <= 1.0
    assert rs.ratio == pytest.approx(max(0, d / rs.impact_px - 1))


def test_emulate_depths_nearer_occluder_moves_more(faces):
    img, box = faces[1]
    s = occ.occlude(img, np.random.default_rng(9), "right", 0.5, box=box)
    near = occ.emulate_depths(img, s, 0.05, 0.5, 2.0, 600.0)
    far = occ.emulate_depths(img, s, 0.05, 1.5, 2.0, 600.0)
    assert near.impact_px == pytest.approx(600 * 0.05 * (1 / 0.5 - 1 / 2.0))
    assert near.impact_px > far.impact_px and near.ratio <= far.ratio
    assert occ.box_coverage(near.mask2, s.box) < occ.box_coverage(far.mask2, s.box)
    with pytest.raises(ValueError):
        occ.emulate_depths(img, s, 0.05, 2.5, 2.0, 600.0)


def test_face_crop_centres_and_scales_the_box(faces):
    img, box = faces[0]
    crop, inner = occ.face_crop(img, box, size=128, scale=2.0)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
    x0, y0, x1, y1 = inner
    assert abs((x0 + x1) / 2 - 64) <= 1 and abs((y0 + y1) / 2 - 64) <= 1
    assert max(x1 - x0, y1 - y0) == pytest.approx(64, abs=1)
    with pytest.raises(ValueError):
        occ.face_crop(img, (10, 10, 10, 10))


def test_shifted_view_matches_emulate_step_and_composes(faces):
    img, box = faces[0]
    crop, inner = occ.face_crop(img, box)
    s = occ.occlude(crop, np.random.default_rng(3), "left", 0.4, box=inner)
    step = occ.emulate_step(crop, s, 10.0)
    du, dv = occ.SIDE_VECTOR["left"]
    assert np.array_equal(occ.shifted_view(crop, s, (10.0 * du, 10.0 * dv)), step.view2)
    assert np.array_equal(occ.shifted_view(crop, s, (0.0, 0.0)), s.image)
    # far enough along its side, the occluder leaves the face box: the face is clean again
    d = occ.penetration(s.mask, s.box, "left")
    cleared = occ.shifted_view(crop, s, (-(d + 2.0), 0.0))
    x0, y0, x1, y1 = inner
    assert np.array_equal(cleared[y0:y1, x0:x1], crop[y0:y1, x0:x1])
    none = occ.occlude(crop, np.random.default_rng(3), "none", 0.0, box=inner)
    assert np.array_equal(occ.shifted_view(crop, none, (5.0, 5.0)), crop)
