"""DlibResNetEmbedder and FaceRecognizer on real photos and deterministic augmentations.

Faces are found by the project's BlazeFace detector (real detection); the
embedder is dlib's ResNet (weights from the face-recognition-models package).
"""
import cv2
import numpy as np
import pytest

from opendr_perception.core import registry, samples
from opendr_perception.core.face_gallery import FaceGallery
from opendr_perception.core.types import BoundingBox
from opendr_perception.models.face_detection import FaceDetector
from opendr_perception.models.face_recognition import (DLIB_DESCRIPTOR_MODEL, DLIB_LANDMARKS_MODEL,
                                                       DlibResNetEmbedder, FaceEmbedder, FaceRecognizer,
                                                       Recognition)


def augmentations(image):
    """Deterministic photometric and geometric changes of one photo."""
    h, w = image.shape[:2]
    rotation = cv2.getRotationMatrix2D((w / 2, h / 2), 8.0, 1.0)
    return {
        "flip": cv2.flip(image, 1),
        "brighter": cv2.convertScaleAbs(image, alpha=1.0, beta=40),
        "darker": cv2.convertScaleAbs(image, alpha=0.6, beta=0),
        "blur": cv2.GaussianBlur(image, (7, 7), 2.0),
        "rotated": cv2.warpAffine(image, rotation, (w, h), borderMode=cv2.BORDER_REFLECT),
    }


@pytest.fixture(scope="module")
def embedder():
    return DlibResNetEmbedder()


@pytest.fixture(scope="module")
def detector():
    return FaceDetector("short_range")


@pytest.fixture(scope="module")
def group_detector():
    """Full range: the faces of a wide group photo are small in the letterboxed input."""
    return FaceDetector("full_range")


@pytest.fixture(scope="module")
def photos():
    return {name: make() for name, make in samples.PHOTOS.items()}


def only_face(detector, image) -> BoundingBox:
    faces = detector.detect(image)
    assert len(faces) == 1, f"expected one face, found {len(faces)}"
    return faces[0].box


@pytest.fixture(scope="module")
def originals(embedder, detector, photos):
    return {name: embedder.embed(image, only_face(detector, image)) for name, image in photos.items()}


def test_registry_names_resolve_to_verified_files():
    for name in (DLIB_DESCRIPTOR_MODEL, DLIB_LANDMARKS_MODEL):
        spec = registry.default_registry().spec(name)
        assert spec.source == "package" and spec.location == "face_recognition_models"
        assert spec.license.startswith("CC0")
        path = registry.resolve(name)  # raises on a checksum mismatch
        assert path.is_file() and path.name == spec.filename


def test_embedder_contract(embedder, detector, photos):
    assert isinstance(embedder, FaceEmbedder)
    assert embedder.name == "dlib_face_descriptor_resnet_v1"
    assert embedder.dim == 128 and embedder.default_threshold == 0.6
    image = photos["astronaut"]
    box = only_face(detector, image)
    a = embedder.embed(image, box)
    assert a.shape == (128,) and a.dtype == np.float64 and np.all(np.isfinite(a))
    assert 1.0 < np.linalg.norm(a) < 2.0  # dlib descriptors are not unit length
    np.testing.assert_array_equal(a, embedder.embed(image, box))  # deterministic
    assert embedder.embed_many(image, []).shape == (0, 128)
    points = embedder.landmarks(image, box)
    assert points.shape == (5, 2)
    assert all(box.contains(x, y) for x, y in points)


def test_embed_many_matches_single_embeds(embedder, group_detector, photos):
    image = samples.group(height=480, photos=[photos["astronaut"], photos["grace_hopper"]])
    boxes = [d.box for d in group_detector.detect(image)]
    assert len(boxes) == 2
    batch = embedder.embed_many(image, boxes)
    single = np.stack([embedder.embed(image, b) for b in boxes])
    np.testing.assert_allclose(batch, single, atol=1e-5)


@pytest.mark.parametrize("person", ["astronaut", "grace_hopper"])
def test_same_person_stays_within_threshold_under_augmentations(embedder, detector, photos, originals, person):
    for kind, image in augmentations(photos[person]).items():
        d = np.linalg.norm(embedder.embed(image, only_face(detector, image)) - originals[person])
        assert d < 0.45, f"{person} {kind}: distance {d:.3f}"


def test_different_people_are_beyond_threshold(originals):
    names = sorted(originals)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            d = np.linalg.norm(originals[a] - originals[b])
            assert d > 0.6, f"{a} vs {b}: distance {d:.3f}"


def test_recognizer_identifies_augmented_photos_and_rejects_strangers(embedder, detector, photos, originals):
    gallery = FaceGallery(embedder.name, embedder.default_threshold)
    gallery.enroll("astronaut", originals["astronaut"])
    gallery.enroll("grace_hopper", originals["grace_hopper"])
    recognizer = FaceRecognizer(embedder, gallery)
    for person in ("astronaut", "grace_hopper"):
        for kind in ("flip", "blur"):
            image = augmentations(photos[person])[kind]
            r = recognizer.recognize(image, only_face(detector, image))
            assert isinstance(r, Recognition)
            assert r.identity == person and r.is_known, (person, kind, r.distance)
            assert r.frc == pytest.approx(1 - r.distance / 0.6) and 0 < r.frc <= 1
            assert r.embedding.shape == (128,)
    stranger = photos["cameraman"]
    r = recognizer.recognize(stranger, only_face(detector, stranger))
    assert r.identity is None and not r.is_known and r.frc == 0.0
    assert r.distance >= 0.6 and r.nearest in ("astronaut", "grace_hopper")


def test_recognize_many_on_a_group_photo(embedder, detector, group_detector, photos, originals):
    gallery = FaceGallery(embedder.name, 0.6)
    recognizer = FaceRecognizer(embedder, gallery)
    image = samples.group(height=480, photos=[photos["astronaut"], photos["grace_hopper"]])
    boxes = sorted((d.box for d in group_detector.detect(image)), key=lambda b: b.x_min)
    assert len(boxes) == 2
    empty = recognizer.recognize_many(image, boxes)
    assert all(r.identity is None and r.distance == float("inf") and r.nearest is None for r in empty)
    gallery.enroll("astronaut", originals["astronaut"])  # enrolled from the full-size photo
    assert [r.identity for r in recognizer.recognize_many(image, boxes)] == ["astronaut", None]
    recognizer.enroll("grace_hopper", photos["grace_hopper"], only_face(detector, photos["grace_hopper"]))
    assert [r.identity for r in recognizer.recognize_many(image, boxes)] == ["astronaut", "grace_hopper"]


def test_recognizer_refuses_a_gallery_of_another_embedder(embedder):
    with pytest.raises(ValueError, match="arcface_ir50"):
        FaceRecognizer(embedder, FaceGallery("arcface_ir50", 1.2))
    wrong_dim = FaceGallery(embedder.name, 0.6)
    wrong_dim.enroll("someone", np.ones(512))
    with pytest.raises(ValueError, match="512"):
        FaceRecognizer(embedder, wrong_dim)


def test_input_validation(embedder, photos):
    image = photos["astronaut"]
    box = BoundingBox(175, 76, 265, 166)
    with pytest.raises(ValueError, match="shape"):
        embedder.embed(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), box)
    with pytest.raises(ValueError, match="uint8"):
        embedder.embed(image.astype(np.float32), box)
    with pytest.raises(ValueError, match="outside"):
        embedder.embed(image, BoundingBox(600, 600, 700, 700))
    with pytest.raises(ValueError, match="smaller"):
        embedder.embed(image, BoundingBox(10, 10, 12, 12))
    with pytest.raises(ValueError, match="num_jitters"):
        DlibResNetEmbedder(num_jitters=-1)
