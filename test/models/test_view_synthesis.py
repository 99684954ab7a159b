"""ViewSynthesizer: pan estimation and synthesized pan views of real photos.

Faces come from the project's BlazeFace detector, renders are re-detected and
re-fitted with the same models, identities are checked with dlib's ResNet
embedder (L2 threshold 0.6) as the active recogniser will use them.

Tolerances
----------
* Pan of a render: the face mesh model re-fitted on the render must read the
  requested rotation within 40% of θ (the seed itself calls its pose estimate
  "quite far from the ground truth" but good enough to steer). Measured: within
  8% of θ at θ = 15° and 30° on both photos (and within 16% on their mirror
  images, half-scale and rolled copies). ``depth_scale`` was calibrated on
  these photos, so 40% leaves room for other faces, not for this one. What
  matters to the state machine is the order: -2θ < -θ < 0 < θ < 2θ, asserted
  exactly.
* Identity at θ ≤ 15°: the render must stay below the 0.6 verification
  threshold from the source (measured 0.13-0.26) and be nearer the source than
  the other person.
"""
import math

import cv2
import numpy as np
import pytest

from opendr_perception.core import samples
from opendr_perception.core.types import Detection
from opendr_perception.models.face_detection import FaceDetector
from opendr_perception.models.face_mesh import NUM_LANDMARKS, FaceMesh, mesh_topology
from opendr_perception.models.face_recognition import DlibResNetEmbedder
from opendr_perception.models.view_synthesis import (SynthesizedView, ViewSynthesizer, pan_from_landmarks,
                                                     symmetry_axis)

NAMES = ("astronaut", "grace_hopper")


@pytest.fixture(scope="module")
def detector():
    return FaceDetector("short_range")


@pytest.fixture(scope="module")
def synthesizer():
    return ViewSynthesizer(FaceMesh())


@pytest.fixture(scope="module")
def embedder():
    return DlibResNetEmbedder()


@pytest.fixture(scope="module")
def faces(portrait_faces):
    return portrait_faces


@pytest.fixture(scope="module")
def renders(synthesizer, faces):
    """{(name, delta): SynthesizedView} from one mesh fit per photo."""
    out = {}
    for name, (image, face) in faces.items():
        mesh = synthesizer.fit(image, face)
        for delta in (-30, -15, -10, 0, 10, 15, 30, 45):
            out[name, delta] = synthesizer.render_mesh(image, face.box, mesh, delta)
    return out


def only_face(detector, image) -> Detection:
    found = detector.detect(image)
    assert len(found) == 1, f"expected one face in the render, found {len(found)}"
    return found[0]


# ------------------------------------------------------------------------------ pose


def test_pan_geometry_on_a_rotated_mesh(synthesizer, faces):
    """pan_from_landmarks reads an exact 3D rotation of a fitted mesh exactly; roll does not change it."""
    image, face = faces["astronaut"]
    points = synthesizer.points(synthesizer.fit(image, face))
    base = pan_from_landmarks(points)
    for delta in (-40.0, -10.0, 25.0):
        assert pan_from_landmarks(synthesizer.rotate(points, delta)) == pytest.approx(base + delta, abs=0.5)
    roll = math.radians(30)
    rolled = points.copy()
    c, s = math.cos(roll), math.sin(roll)
    rolled[:, 0], rolled[:, 1] = c * points[:, 0] - s * points[:, 1], s * points[:, 0] + c * points[:, 1]
    assert pan_from_landmarks(rolled) == pytest.approx(base, abs=0.5)
    axis = symmetry_axis(points)
    assert axis[0] > 0.9  # frontal: the person's right -> left axis is the image's +x


def test_pan_sign_convention(synthesizer, detector, faces):
    """Frontal portraits are near 0; the cameraman looks to the image right (turned to HIS left): positive."""
    for name in NAMES:
        image, face = faces[name]
        assert abs(synthesizer.estimate_pan(image, face)) < 8
    cameraman = samples.cameraman()
    face = FaceDetector("full_range").detect(cameraman)[0]
    pan = synthesizer.estimate_pan(cameraman, face)
    assert pan > 30
    flipped = cv2.flip(cameraman, 1)
    face_flipped = FaceDetector("full_range").detect(flipped)[0]
    assert synthesizer.estimate_pan(flipped, face_flipped) == pytest.approx(-pan, abs=10)


@pytest.mark.parametrize("name", NAMES)
def test_render_shows_the_requested_pan(name, synthesizer, detector, faces, renders):
    image, face = faces[name]
    alpha = synthesizer.estimate_pan(image, face)
    estimated = {}
    for delta in (-30, -15, 15, 30):
        view = renders[name, delta]
        assert view.pan_deg == pytest.approx(alpha + delta, abs=1e-6)
        estimated[delta] = synthesizer.estimate_pan(view.image, only_face(detector, view.image))
        assert abs(estimated[delta] - (alpha + delta)) <= 0.4 * abs(delta), (delta, estimated[delta], alpha)
    assert estimated[-30] < estimated[-15] < alpha < estimated[15] < estimated[30]


@pytest.mark.parametrize("name", NAMES)
def test_render_moves_the_face_like_the_convention_says(name, faces, renders):
    """+θ turns the person to their left: the nose tip moves to the image right, the face box follows."""
    _, face = faces[name]
    nose_0 = renders[name, 0].landmarks[1, 0]
    assert renders[name, 15].landmarks[1, 0] > nose_0 > renders[name, -15].landmarks[1, 0]
    assert renders[name, 30].face_box.center[0] > face.box.center[0] > renders[name, -30].face_box.center[0]


# ------------------------------------------------------------------------------ identity


def test_identity_is_kept_at_small_angles(embedder, faces, renders):
    source = {name: embedder.embed(image, face.box) for name, (image, face) in faces.items()}
    distances = {}
    for name in NAMES:
        other = source[NAMES[1 - NAMES.index(name)]]
        for delta in (-15, -10, 10, 15, 30, 45):
            view = renders[name, delta]
            embedding = embedder.embed(view.image, view.face_box)
            distances[name, delta] = float(np.linalg.norm(embedding - source[name]))
            if abs(delta) <= 15:
                assert distances[name, delta] < embedder.default_threshold, (name, delta, distances[name, delta])
                assert distances[name, delta] < np.linalg.norm(embedding - other)
    for name in NAMES:  # identity fades with the angle, it does not jump
        assert distances[name, 10] < distances[name, 45]
        assert max(distances[name, 15], distances[name, -15]) < distances[name, 45] + 0.1


# ------------------------------------------------------------------------------ rendering


@pytest.mark.parametrize("name", NAMES)
def test_delta_zero_returns_the_input(name, synthesizer, faces, renders):
    image, face = faces[name]
    view = renders[name, 0]
    assert isinstance(view, SynthesizedView)
    assert view.image.shape == image.shape and view.image.dtype == np.uint8
    b = face.box.clipped(image.shape[1], image.shape[0])
    inside = np.abs(view.image.astype(np.int16) - image)[int(b.y_min):int(b.y_max), int(b.x_min):int(b.x_max)]
    assert inside.mean() < 1.0 and np.percentile(inside, 99) <= 3
    assert view.mirrored_fraction == pytest.approx(0.0, abs=1e-3)
    assert view.face_box.iou(face.box) > 0.98
    again = synthesizer.render(image, face, 0.0)
    assert np.array_equal(again.image, view.image)


@pytest.mark.parametrize("name", NAMES)
def test_render_changes_only_the_head_region(name, faces, renders):
    image, face = faces[name]
    view = renders[name, 30]
    changed = np.any(view.image != image, axis=2)
    assert changed.any()
    rows, cols = np.nonzero(changed)
    cx, cy = face.box.center
    reach = 2.5 * max(face.box.width, face.box.height)
    assert np.all(np.abs(cols - cx) < reach) and np.all(np.abs(rows - cy) < reach)
    b = face.box
    face_change = np.abs(view.image.astype(np.int16) - image)[int(b.y_min):int(b.y_max), int(b.x_min):int(b.x_max)]
    assert face_change.mean() > 5  # the face itself did change


def test_input_is_not_modified(synthesizer, faces):
    image, face = faces["astronaut"]
    before = image.copy()
    synthesizer.render(image, face, 20)
    assert np.array_equal(image, before)


def test_mirror_fills_what_the_source_did_not_see(synthesizer, detector, faces, embedder):
    """Turning a turned face back towards the camera reveals its far side: the mirror fills it."""
    image, face = faces["astronaut"]
    turned = synthesizer.render(image, face, -30)
    turned_face = only_face(detector, turned.image)
    back = synthesizer.render(turned.image, turned_face, 30)
    assert back.mirrored_fraction > 0.15
    plain = ViewSynthesizer(synthesizer.face_mesh, mirror_fill=False).render(turned.image, turned_face, 30)
    assert plain.mirrored_fraction == 0.0
    assert not np.array_equal(plain.image, back.image)
    back_face = only_face(detector, back.image)
    assert abs(synthesizer.estimate_pan(back.image, back_face) - synthesizer.estimate_pan(image, face)) < 10
    source = embedder.embed(image, face.box)
    assert np.linalg.norm(embedder.embed(back.image, back.face_box) - source) < embedder.default_threshold


def test_rendered_landmarks_are_the_rotated_mesh(synthesizer, faces, renders):
    image, face = faces["grace_hopper"]
    points = synthesizer.points(synthesizer.fit(image, face))
    view = renders["grace_hopper", 15]
    assert view.landmarks.shape == (NUM_LANDMARKS, 3)
    np.testing.assert_allclose(view.landmarks, synthesizer.rotate(points, 15), atol=1e-6)
    np.testing.assert_allclose(view.landmarks[:, 1], points[:, 1])  # a pan keeps rows
    assert mesh_topology().triangles.shape == (898, 3)


# ------------------------------------------------------------------------------ bad input


def test_bad_inputs_raise(synthesizer, faces):
    image, face = faces["astronaut"]
    for bad_delta in (float("nan"), float("inf"), 91.0, -61.0, "15", True, None):
        with pytest.raises(ValueError):
            synthesizer.render(image, face, bad_delta)
    with pytest.raises(ValueError):
        synthesizer.render(image.astype(np.float32), face, 15)
    with pytest.raises(ValueError):
        synthesizer.render(image[:, :, 0], face, 15)
    with pytest.raises(ValueError):
        synthesizer.render(image, face.box, 15)
    with pytest.raises(ValueError):
        synthesizer.estimate_pan(image, "face")
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, image.shape, dtype=np.uint8)
    with pytest.raises(ValueError, match="no face"):
        synthesizer.render(noise, face, 15)  # the box holds no face any more
    with pytest.raises(ValueError, match="no face"):
        synthesizer.estimate_pan(noise, face)
    with pytest.raises(ValueError):
        pan_from_landmarks(np.zeros((10, 3)))
    with pytest.raises(ValueError):
        synthesizer.render_mesh(image, face.box, "mesh", 15)
    for kwargs in ({"depth_scale": 0}, {"context_scale": 1.0}, {"min_presence": 2}, {"max_delta_deg": 0},
                   {"head_depth": -1}, {"face_mesh": "mesh"}):
        with pytest.raises(ValueError):
            ViewSynthesizer(**kwargs)


# ------------------------------------------------------------------------------ like-with-like scores


def test_round_trip_is_the_current_view_through_the_renderer_twice(synthesizer, faces, embedder, renders):
    """A 0° render is the input itself (no loss); the round trip ±θ and back shows the same pan and
    places the face where it was, but carries the renderer's losses like a ±θ render does."""
    image, face = faces["astronaut"]
    mesh = synthesizer.fit(image, face)
    source = embedder.embed(image, face.box)
    for delta in (-15.0, 15.0):
        out, back = synthesizer.round_trip(image, face.box, mesh, delta)
        assert out.delta_deg == delta and back.delta_deg == 0.0
        assert back.image.shape == image.shape
        assert back.pan_deg == pytest.approx(renders["astronaut", 0].pan_deg, abs=1.0)
        assert np.abs(back.landmarks[:, :2] - synthesizer.points(mesh)[:, :2]).max() < 0.5  # exact geometry
        for box in (back.face_box.x_min - face.box.x_min, back.face_box.x_max - face.box.x_max):
            assert abs(box) < 0.05 * face.box.width
        lost = np.linalg.norm(embedder.embed(back.image, back.face_box) - source)
        zero = np.linalg.norm(embedder.embed(renders["astronaut", 0].image, renders["astronaut", 0].face_box) - source)
        assert zero < 0.02 < lost < 0.45  # the 0° render loses nothing; the round trip loses (measured up to 0.31)


def test_score_candidates_scores_renders_and_the_round_trip(synthesizer, faces, embedder):
    from opendr_perception.core.active_face_recognition import ViewScore
    from opendr_perception.core.face_gallery import FaceGallery
    from opendr_perception.models.face_recognition import FaceRecognizer
    from opendr_perception.models.view_synthesis import score_candidates

    image, face = faces["astronaut"]
    gallery = FaceGallery(embedder.name, embedder.default_threshold, dim=embedder.dim)
    gallery.enroll("astronaut", embedder.embed(image, face.box))
    recognizer = FaceRecognizer(embedder, gallery)
    scores = score_candidates(synthesizer, recognizer.recognize, image, face, (-1, 1), 15.0)
    assert set(scores.synthesized) == {-1, 1} and not scores.errors
    assert all(isinstance(s, ViewScore) and 0 < s.frc < 1 and s.distance < 0.6 for s in scores.synthesized.values())
    backs = [recognizer.recognize(b.image, b.face_box).distance for _, b in scores.views.values()]
    assert scores.current.distance == pytest.approx(min(backs))  # the better round trip
    assert score_candidates(synthesizer, recognizer.recognize, image, face, (), 15.0).synthesized == {}
    seed = score_candidates(synthesizer, recognizer.recognize, image, face, (-1, 1), 15.0, round_trip=False)
    assert seed.current is None and seed.synthesized == scores.synthesized  # the same renders, no round trip
    blank = np.zeros_like(image)
    failed = score_candidates(synthesizer, recognizer.recognize, blank, face, (1,), 15.0)
    assert failed.synthesized == {1: ViewScore(0.0)} and failed.current is None and 1 in failed.errors
