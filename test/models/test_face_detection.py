"""BlazeFace on real photos (scikit-image, matplotlib sample data)."""
import cv2
import numpy as np
import pytest

from opendr_perception.core import samples
from opendr_perception.models.face_detection import FACE_LANDMARK_NAMES, FaceDetector


@pytest.fixture(scope="module")
def short_range():
    return FaceDetector("short_range")


@pytest.fixture(scope="module")
def full_range():
    return FaceDetector("full_range")


def _index(name):
    return FACE_LANDMARK_NAMES.index(name)


def test_astronaut_has_one_face_at_her_face(short_range):
    faces = short_range.detect(samples.astronaut())
    assert len(faces) == 1
    face = faces[0]
    assert face.class_id == "face" and face.score > 0.8
    box = face.box
    # her face spans about x 180-270, y 80-175 of the 512x512 photo (checked by eye)
    assert 150 < box.x_min < 200 and 250 < box.x_max < 300
    assert 50 < box.y_min < 110 and 150 < box.y_max < 200
    assert face.landmarks.shape == (6, 2) and tuple(face.landmark_names) == FACE_LANDMARK_NAMES
    lm = face.landmarks
    eyes_y = lm[[_index("right_eye"), _index("left_eye")], 1]
    assert eyes_y.max() < lm[_index("nose_tip"), 1] < lm[_index("mouth_center"), 1]
    # "right" is the person's own right: on the left of the image when facing the camera
    assert lm[_index("right_eye"), 0] < lm[_index("left_eye"), 0]
    assert all(box.contains(x, y) for x, y in lm[:4])


def test_grace_hopper_has_one_face(short_range, full_range):
    for detector in (short_range, full_range):
        faces = detector.detect(samples.grace_hopper())
        assert len(faces) == 1
        cx, cy = faces[0].box.center
        assert 220 < cx < 310 and 190 < cy < 290  # her face, below the cap


def test_tiling_of_photos_gives_one_face_per_photo(full_range):
    # the short-range model only sees faces that fill a good part of the frame,
    # so the tiling test uses the full-range model
    astronaut = samples.astronaut()
    tiling = samples.group(512, [astronaut, samples.grace_hopper(), astronaut[:, ::-1]])
    faces = full_range.detect(tiling)
    assert len(faces) == 3
    centres = sorted(f.box.center[0] for f in faces)
    width = tiling.shape[1] / 3
    assert [int(c // width) for c in centres] == [0, 1, 2]  # one face in each tile


def test_blank_and_noise_images_have_no_face(short_range, full_range):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for image in (np.zeros((480, 640, 3), np.uint8), np.full((300, 300, 3), 255, np.uint8), noise):
        assert short_range.detect(image) == []
        assert full_range.detect(image) == []
    for photo in samples.no_people_photos().values():
        assert short_range.detect(photo) == []


def test_boxes_scale_with_the_image(short_range):
    photo = samples.astronaut()
    small = short_range.detect(photo)[0]
    big = short_range.detect(cv2.resize(photo, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR))[0]
    tolerance = 0.05 * small.box.width * 2
    for a, b in zip((small.box.x_min, small.box.y_min, small.box.x_max, small.box.y_max),
                    (big.box.x_min, big.box.y_min, big.box.x_max, big.box.y_max)):
        assert abs(2 * a - b) < tolerance
    assert np.abs(2 * small.landmarks - big.landmarks).max() < tolerance


def test_letterbox_keeps_a_wide_image_undistorted(short_range):
    photo = samples.grace_hopper()
    canvas = samples.paste_on_canvas(photo, (900, 600), (300, 0))
    alone, pasted = short_range.detect(photo)[0], short_range.detect(canvas)[0]
    assert abs(pasted.box.center[0] - 300 - alone.box.center[0]) < 0.1 * alone.box.width
    assert abs(pasted.box.width / pasted.box.height - 1.0) < 0.1  # square faces, not stretched


@pytest.mark.parametrize("image, message", [
    (np.zeros((10, 10, 3), np.float32), "uint8"),
    (np.zeros((10, 10), np.uint8), "3 dimensions"),
    (np.zeros((10, 10, 4), np.uint8), "3 channels"),
    (np.zeros((0, 10, 3), np.uint8), "empty"),
    ([[1, 2, 3]], "numpy array"),
])
def test_bad_input_says_what_is_wrong(short_range, image, message):
    with pytest.raises(ValueError, match=message):
        short_range.detect(image)


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="short_range"):
        FaceDetector("long_range")
