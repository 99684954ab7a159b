"""FaceGallery: FRC, nearest-neighbour matching, storage and folder enrolment.

Embeddings are real: dlib ResNet descriptors of faces found by the project's
BlazeFace detector in the sample photos.
"""
import json
import os

import cv2
import numpy as np
import pytest

from opendr_perception.core import samples
from opendr_perception.core.face_gallery import (FaceGallery, Match, enroll_folder, frc_from_distance,
                                                 read_gallery_info)
from opendr_perception.models.face_detection import FaceDetector
from opendr_perception.models.face_recognition import DlibResNetEmbedder

THRESHOLD = 0.6


@pytest.fixture(scope="module")
def embedder():
    return DlibResNetEmbedder()


@pytest.fixture(scope="module")
def detector():
    """Full range: finds the single faces of the photos and both faces of a two-photo strip."""
    return FaceDetector("full_range")


@pytest.fixture(scope="module")
def photos():
    astronaut, hopper = samples.astronaut(), samples.grace_hopper()
    return {
        "astronaut": astronaut,
        "astronaut_flip": cv2.flip(astronaut, 1),
        "grace_hopper": hopper,
        "grace_hopper_bright": cv2.convertScaleAbs(hopper, alpha=1.0, beta=40),
        "cameraman": samples.cameraman(),
    }


@pytest.fixture(scope="module")
def emb(embedder, detector, photos):
    out = {}
    for name, image in photos.items():
        faces = detector.detect(image)
        assert len(faces) == 1, name
        out[name] = embedder.embed(image, faces[0].box)
    return out


def new_gallery(embedder):
    return FaceGallery(embedder.name, THRESHOLD)


def test_frc_is_the_seed_formula():
    assert frc_from_distance(0.0, 0.6) == 1.0
    assert frc_from_distance(0.3, 0.6) == pytest.approx(0.5)
    assert frc_from_distance(0.59, 0.6) == pytest.approx(1 - 0.59 / 0.6)
    assert frc_from_distance(0.6, 0.6) == 0.0  # at the threshold: unknown
    assert frc_from_distance(1.3, 0.6) == 0.0
    with pytest.raises(ValueError, match="threshold"):
        frc_from_distance(0.1, 0.0)
    with pytest.raises(ValueError, match="distance"):
        frc_from_distance(-0.1, 0.6)


def test_match_nearest_neighbour_identity_and_frc(embedder, emb):
    gallery = new_gallery(embedder)
    assert gallery.match(emb["astronaut"]) == Match(None, None, float("inf"), 0.0)  # empty gallery
    gallery.enroll("astronaut", emb["astronaut"], source="astronaut.png")
    gallery.enroll("grace_hopper", emb["grace_hopper"])
    assert gallery.people() == ["astronaut", "grace_hopper"] and len(gallery) == 2

    m = gallery.match(emb["astronaut_flip"])
    d = np.linalg.norm(emb["astronaut_flip"] - emb["astronaut"])
    assert m.identity == "astronaut" and m.nearest == "astronaut" and m.is_known
    assert m.distance == pytest.approx(d) and m.frc == pytest.approx(1 - d / THRESHOLD)
    np.testing.assert_allclose(gallery.distances(emb["astronaut_flip"]),
                               [d, np.linalg.norm(emb["astronaut_flip"] - emb["grace_hopper"])])

    assert gallery.match(emb["grace_hopper_bright"]).identity == "grace_hopper"
    stranger = gallery.match(emb["cameraman"])
    assert stranger.identity is None and stranger.frc == 0.0 and stranger.distance >= THRESHOLD
    assert stranger.nearest in ("astronaut", "grace_hopper")


def test_several_embeddings_per_person_use_the_nearest(embedder, emb):
    gallery = new_gallery(embedder)
    gallery.enroll("astronaut", emb["astronaut"])
    before = gallery.match(emb["astronaut_flip"]).distance
    gallery.enroll("astronaut", emb["astronaut_flip"])
    assert gallery.count("astronaut") == 2 and gallery.people() == ["astronaut"]
    after = gallery.match(emb["astronaut_flip"])
    assert after.distance == 0.0 < before and after.frc == 1.0
    assert gallery.embeddings_of("astronaut").shape == (2, 128)


def test_remove_and_enrol_errors(embedder, emb):
    gallery = new_gallery(embedder)
    gallery.enroll("astronaut", emb["astronaut"])
    gallery.enroll("astronaut", emb["astronaut_flip"])
    gallery.enroll("grace_hopper", emb["grace_hopper"])
    assert gallery.remove("astronaut") == 2
    assert gallery.people() == ["grace_hopper"]
    assert gallery.match(emb["astronaut"]).identity is None
    with pytest.raises(ValueError, match="astronaut"):
        gallery.remove("astronaut")
    with pytest.raises(ValueError, match="128"):
        gallery.enroll("x", np.ones(64))
    with pytest.raises(ValueError, match="NaN"):
        gallery.enroll("x", np.full(128, np.nan))
    with pytest.raises(ValueError, match="name"):
        gallery.enroll("", emb["astronaut"])
    with pytest.raises(ValueError, match="threshold"):
        FaceGallery(embedder.name, -1)


def test_save_load_roundtrip(embedder, emb, tmp_path):
    gallery = new_gallery(embedder)
    gallery.enroll("astronaut", emb["astronaut"], source="astronaut/a.png")
    gallery.enroll("astronaut", emb["astronaut_flip"], source="astronaut/b.png")
    gallery.enroll("grace_hopper", emb["grace_hopper"], source="grace_hopper/a.jpg")
    path = gallery.save(tmp_path / "people" / "gallery.npz")
    assert sorted(os.listdir(path.parent)) == ["gallery.npz"]  # no temporary file left

    info = read_gallery_info(path)
    assert info["embedder"] == embedder.name and info["dim"] == 128
    assert info["threshold"] == THRESHOLD and info["people"] == ["astronaut", "grace_hopper"]

    loaded = FaceGallery.load(path, embedder.name)
    assert loaded.people() == gallery.people() and len(loaded) == 3 and loaded.threshold == THRESHOLD
    np.testing.assert_array_equal(loaded.embeddings_of("astronaut"), gallery.embeddings_of("astronaut"))
    for name in ("astronaut_flip", "grace_hopper_bright", "cameraman"):
        assert loaded.match(emb[name]) == gallery.match(emb[name])
    assert FaceGallery.load(path, embedder.name, threshold=0.5).threshold == 0.5

    gallery.remove("grace_hopper")
    gallery.save(path)  # overwrite in place
    assert FaceGallery.load(path, embedder.name).people() == ["astronaut"]

    empty = FaceGallery(embedder.name, THRESHOLD).save(tmp_path / "empty.npz")
    assert len(FaceGallery.load(empty, embedder.name)) == 0


def test_load_refuses_another_embedders_gallery(embedder, tmp_path):
    other = FaceGallery("arcface_ir50_ms1m", 1.2)
    other.enroll("someone", np.linspace(-1, 1, 512))
    path = other.save(tmp_path / "arcface.npz")
    with pytest.raises(ValueError, match="arcface_ir50_ms1m.*dlib_face_descriptor_resnet_v1"):
        FaceGallery.load(path, embedder.name)


def test_storage_errors(embedder, tmp_path):
    gallery = new_gallery(embedder)
    with pytest.raises(ValueError, match=".npz"):
        gallery.save(tmp_path / "gallery.json")
    with pytest.raises(ValueError, match="does not exist"):
        FaceGallery.load(tmp_path / "missing.npz", embedder.name)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable"):
        FaceGallery.load(broken, embedder.name)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, embeddings=np.zeros((1, 128)), labels=np.array(["a"]), sources=np.array([""]),
             metadata=np.array(json.dumps({"format": "something-else"})))
    with pytest.raises(ValueError, match="not a face gallery"):
        FaceGallery.load(foreign, embedder.name)


def test_enroll_folder_skips_images_without_exactly_one_face(embedder, detector, photos, emb, tmp_path):
    root = tmp_path / "people"
    (root / "astronaut").mkdir(parents=True)
    (root / "grace_hopper").mkdir()
    (root / "crowd").mkdir()
    (root / "nobody").mkdir()
    cv2.imwrite(str(root / "astronaut" / "front.png"), photos["astronaut"])
    cv2.imwrite(str(root / "astronaut" / "mirrored.jpg"), photos["astronaut_flip"])
    (root / "astronaut" / "notes.txt").write_text("not an image")
    (root / "astronaut" / "truncated.jpg").write_bytes(b"\xff\xd8\xff garbage")
    cv2.imwrite(str(root / "grace_hopper" / "portrait.jpg"), photos["grace_hopper"])
    two_faces = samples.group(height=480, photos=[photos["astronaut"], photos["grace_hopper"]])
    cv2.imwrite(str(root / "crowd" / "two.png"), two_faces)
    cv2.imwrite(str(root / "nobody" / "wall.png"), np.full((300, 300, 3), 128, np.uint8))
    cv2.imwrite(str(root / "stray.png"), photos["cameraman"])

    assert len(detector.detect(two_faces)) == 2
    gallery = new_gallery(embedder)
    report = enroll_folder(gallery, root, detector.detect, embedder)

    assert report.enrolled == [("astronaut", "astronaut/front.png"), ("astronaut", "astronaut/mirrored.jpg"),
                               ("grace_hopper", "grace_hopper/portrait.jpg")]
    reasons = dict(report.skipped)
    assert set(reasons) == {"astronaut/notes.txt", "astronaut/truncated.jpg", "crowd/two.png",
                            "nobody/wall.png", "stray.png"}
    assert "not an image" in reasons["astronaut/notes.txt"]
    assert "unreadable" in reasons["astronaut/truncated.jpg"]
    assert reasons["crowd/two.png"].startswith("2 faces")
    assert reasons["nobody/wall.png"] == "no face found"
    assert "person folder" in reasons["stray.png"]
    assert gallery.people() == report.people == ["astronaut", "grace_hopper"]
    assert gallery.count("astronaut") == 2
    assert gallery.match(emb["grace_hopper_bright"]).identity == "grace_hopper"
    assert gallery.match(emb["cameraman"]).identity is None

    with pytest.raises(ValueError, match="cannot enrol"):
        enroll_folder(FaceGallery("arcface_ir50_ms1m", 1.2), root, detector.detect, embedder)
    with pytest.raises(ValueError, match="not a directory"):
        enroll_folder(gallery, root / "stray.png", detector.detect, embedder)
