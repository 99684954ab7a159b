"""FaceMesh (MediaPipe face landmarks via ai-edge-litert) and its mesh topology, on real photos.

Faces come from the project's BlazeFace detector (real detections, eye keypoints
included); the landmark model is mediapipe's face_landmark.tflite from the registry.
"""
import collections
import importlib.util
import math

import cv2
import numpy as np
import pytest

from opendr_perception.core import samples
from opendr_perception.core.types import BoundingBox, Detection
from opendr_perception.models.face_detection import FaceDetector
from opendr_perception.models.face_mesh import (CHIN, FOREHEAD_TOP, LEFT_EYE_OUTER, NOSE_TIP, NUM_LANDMARKS,
                                                RIGHT_EYE_OUTER, FaceMesh, FaceMeshResult, _connections_file,
                                                face_detection_to_roi, landmarks_to_roi, mesh_topology,
                                                signed_areas)
from opendr_perception.models.pose_estimation import RotatedRoi


@pytest.fixture(scope="module")
def detector():
    return FaceDetector("short_range")


@pytest.fixture(scope="module")
def mesh_model():
    return FaceMesh()


@pytest.fixture(scope="module")
def faces(portrait_faces):
    return portrait_faces


@pytest.fixture(scope="module")
def meshes(mesh_model, faces):
    return {name: mesh_model.estimate(image, face) for name, (image, face) in faces.items()}


# ------------------------------------------------------------------------------ topology


def test_topology_is_a_closed_oriented_face_mesh():
    topo = mesh_topology()
    tris = topo.triangles
    assert tris.shape == (898, 3)  # = MediaPipe's canonical face model: 852 tessellation + 46 hole fills
    assert tris.min() == 0 and tris.max() == NUM_LANDMARKS - 1
    assert len(np.unique(tris)) == NUM_LANDMARKS
    assert np.all(tris[:, 0] != tris[:, 1]) and np.all(tris[:, 1] != tris[:, 2]) and np.all(tris[:, 0] != tris[:, 2])
    # Manifold and consistently oriented: every directed edge is used once, and an interior
    # edge appears once in each direction.
    directed = collections.Counter((int(a), int(b)) for t in tris for a, b in ((t[0], t[1]), (t[1], t[2]),
                                                                             (t[2], t[0])))
    assert max(directed.values()) == 1
    boundary = [e for e in directed if (e[1], e[0]) not in directed]
    assert len(boundary) == len(topo.face_oval) == 36  # only the face outline is open
    assert set(v for e in boundary for v in e) == set(topo.face_oval.tolist())
    assert topo.is_hole_fill.sum() == 46  # 2 eyes (14 each) + the mouth (18)


def test_mirror_map_matches_mediapipe_contours():
    topo = mesh_topology()
    mirror = topo.mirror
    assert np.array_equal(mirror[mirror], np.arange(NUM_LANDMARKS))  # an involution
    for right, left in ((RIGHT_EYE_OUTER, LEFT_EYE_OUTER), (133, 362), (61, 291), (234, 454), (70, 300)):
        assert mirror[right] == left
    for midline in (NOSE_TIP, FOREHEAD_TOP, CHIN, 0, 17, 168):
        assert mirror[midline] == midline
    # The named contours of the connections module map onto each other.
    spec = importlib.util.spec_from_file_location("connections_for_test", _connections_file())
    connections = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(connections)

    def vertices(edges):
        return {v for e in edges for v in e}

    assert {int(mirror[v]) for v in vertices(connections.FACEMESH_RIGHT_EYE)} == vertices(connections.FACEMESH_LEFT_EYE)
    assert ({int(mirror[v]) for v in vertices(connections.FACEMESH_RIGHT_EYEBROW)}
            == vertices(connections.FACEMESH_LEFT_EYEBROW))
    assert {int(mirror[v]) for v in vertices(connections.FACEMESH_LIPS)} == vertices(connections.FACEMESH_LIPS)
    assert {int(mirror[v]) for v in vertices(connections.FACEMESH_FACE_OVAL)} == vertices(
        connections.FACEMESH_FACE_OVAL)
    # Most triangles have a mirror triangle (all but some hole fills).
    has = topo.triangle_mirror >= 0
    assert has.sum() >= 860
    assert np.all(topo.triangle_mirror[topo.triangle_mirror[has]] == np.nonzero(has)[0])


# ------------------------------------------------------------------------------ ROI


def test_detection_roi_follows_the_eyes():
    box = BoundingBox(100, 100, 200, 180)
    level = Detection(box, 1.0, "face", landmarks=np.array([[130, 130], [170, 130]], np.float32))
    roi = face_detection_to_roi(level)
    assert (roi.center_x, roi.center_y) == (150, 140)
    assert roi.size == pytest.approx(150.0)  # long side 100 x 1.5
    assert roi.rotation == pytest.approx(0.0)
    # Eyes on a line sloping down to the image right: the face is rolled clockwise on screen.
    tilted = Detection(box, 1.0, "face", landmarks=np.array([[130, 130], [170, 170]], np.float32))
    assert face_detection_to_roi(tilted).rotation == pytest.approx(math.radians(45))
    upright = face_detection_to_roi(Detection(box, 1.0, "face"))
    assert upright.rotation == 0.0


def test_rolled_photo_gives_the_rolled_landmarks(mesh_model, detector, faces, meshes):
    """Rotating the photo by 25° rotates the fitted landmarks with it (the ROI follows the eyes)."""
    image, _ = faces["astronaut"]
    h, w = image.shape[:2]
    angle = 25.0
    m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angle, 1.0)  # cv2: pixel centres at integers
    rolled = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    faces_rolled = detector.detect(rolled)
    assert faces_rolled
    result = mesh_model.estimate(rolled, faces_rolled[0])
    assert result.presence > 0.9
    assert abs(math.degrees(result.roi.rotation) + angle) < 8  # cv2 angle is counter-clockwise
    expected = meshes["astronaut"].xy @ m[:, :2].T + m[:, 2]
    error = np.linalg.norm(result.xy - expected, axis=1)
    eye_distance = np.linalg.norm(expected[LEFT_EYE_OUTER] - expected[RIGHT_EYE_OUTER])
    assert np.median(error) < 0.08 * eye_distance


def test_landmarks_roi_is_square_around_the_landmarks(meshes):
    mesh = meshes["astronaut"]
    roi = landmarks_to_roi(mesh.landmarks)
    box = mesh.box
    assert roi.size == pytest.approx(1.5 * max(box.width, box.height), rel=0.1)
    assert box.contains(roi.center_x, roi.center_y)


# ------------------------------------------------------------------------------ model


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_real_face_mesh(name, faces, meshes):
    _, face = faces[name]
    mesh = meshes[name]
    assert isinstance(mesh, FaceMeshResult)
    assert mesh.landmarks.shape == (NUM_LANDMARKS, 3)
    assert np.isfinite(mesh.landmarks).all()
    assert mesh.presence > 0.9
    box = face.box
    inside = (mesh.xy[:, 0] >= box.x_min) & (mesh.xy[:, 0] <= box.x_max) & \
             (mesh.xy[:, 1] >= box.y_min) & (mesh.xy[:, 1] <= box.y_max)
    assert inside.mean() > 0.8  # BlazeFace's box stops below the hairline; the mesh reaches it
    cx, cy = box.center
    grown = BoundingBox(cx - 0.75 * box.width, cy - 0.75 * box.height, cx + 0.75 * box.width, cy + 0.75 * box.height)
    assert all(grown.contains(x, y) for x, y in mesh.xy)
    nose = mesh.landmarks[NOSE_TIP]
    right_eye, left_eye = mesh.landmarks[RIGHT_EYE_OUTER], mesh.landmarks[LEFT_EYE_OUTER]
    # Frontal photos: the person's right eye is on the image left; the nose tip lies between the
    # eyes horizontally, below them, and nearer the camera than the face's mean depth.
    assert right_eye[0] < nose[0] < left_eye[0]
    assert nose[1] > max(right_eye[1], left_eye[1])
    assert nose[2] < mesh.landmarks[:, 2].mean()
    assert mesh.landmarks[FOREHEAD_TOP, 1] < nose[1] < mesh.landmarks[CHIN, 1]
    # The mesh's eyes agree with BlazeFace's eye keypoints (right eye = keypoint 0).
    eye_centres = mesh.xy[[RIGHT_EYE_OUTER, 133]].mean(axis=0), mesh.xy[[LEFT_EYE_OUTER, 362]].mean(axis=0)
    for centre, keypoint in zip(eye_centres, face.landmarks[:2]):
        assert np.linalg.norm(centre - keypoint) < 0.1 * box.width
    # Almost every triangle faces the camera: one winding dominates.
    areas = signed_areas(mesh.xy, mesh_topology().triangles)
    assert max((areas > 0).mean(), (areas < 0).mean()) > 0.9


def test_z_has_the_scale_of_x(mesh_model, faces, meshes):
    """z scales with the face like x and y: the same face at half size has half the depth range."""
    image, face = faces["grace_hopper"]
    small = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    half = Detection(face.box.scaled(0.5), face.score, "face", landmarks=face.landmarks * 0.5)
    result = mesh_model.estimate(small, half)
    full = meshes["grace_hopper"].landmarks
    assert np.ptp(result.landmarks[:, 2]) / np.ptp(full[:, 2]) == pytest.approx(0.5, rel=0.15)
    assert np.median(np.linalg.norm(result.xy * 2 - full[:, :2], axis=1)) < 0.03 * face.box.width


def test_noise_and_non_faces_have_low_presence(mesh_model):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    fake = Detection(BoundingBox(100, 100, 200, 200), 1.0, "face",
                     landmarks=np.array([[130, 130], [170, 130]], np.float32))
    assert mesh_model.estimate(noise, fake).presence < 0.1
    photos = samples.no_people_photos()
    for name in ("coffee", "rocket"):  # (the cat of "chelsea" is somewhat face-like: 0.2)
        assert mesh_model.estimate(photos[name], fake).presence < 0.1, name


def test_bad_input_raises(mesh_model, faces):
    image, face = faces["astronaut"]
    with pytest.raises(ValueError):
        mesh_model.estimate(image.astype(np.float32), face)
    with pytest.raises(ValueError):
        mesh_model.estimate(image[:, :, 0], face)
    with pytest.raises(ValueError):
        mesh_model.estimate(image, face.box)  # a box is not a Detection
    with pytest.raises(ValueError):
        mesh_model.estimate(image, Detection(BoundingBox(10, 10, 10, 50), 1.0, "face"))  # no width
    with pytest.raises(ValueError):
        mesh_model.estimate(image, Detection(BoundingBox(0, 0, float("nan"), 50), 1.0, "face"))
    with pytest.raises(ValueError):
        mesh_model.estimate(image, Detection(face.box, 1.0, "face", landmarks=np.zeros((1, 2))))
    with pytest.raises(ValueError):
        mesh_model.estimate_roi(image, RotatedRoi(10, 10, 0.0))
    with pytest.raises(ValueError):
        FaceMesh(roi_scale=0)
