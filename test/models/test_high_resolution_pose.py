"""The active high-resolution pose pipeline (seed D3.3 section 2.4) on real photos."""
import cv2
import numpy as np
import pytest

from opendr_perception.bench.high_resolution_pose import pck, roi_contains, shift_pose
from opendr_perception.core import samples
from opendr_perception.core.keypoints import BLAZEPOSE33
from opendr_perception.core.types import BoundingBox, PersonPose
from opendr_perception.models.high_resolution_pose import (HighResolutionPoseEstimator, average_pool_to_height,
                                                           heatmap_box, resize_to_height)
from opendr_perception.models.pose_estimation import MultiPersonPoseEstimator

CANVAS = (1920, 1080)
HEAD = [BLAZEPOSE33.index(n) for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "mouth_left",
                                       "mouth_right")]


@pytest.fixture(scope="module")
def backend():
    return MultiPersonPoseEstimator()


@pytest.fixture(scope="module")
def pipeline(backend):
    return HighResolutionPoseEstimator(backend)  # seed defaults: 360 / 540, segmentation ROI


class RecordingBackend:
    """Synthetic backend for the coordinate algebra ONLY: it reports keypoints at
    known places of the image it is given (its corners and centre)."""

    def __init__(self):
        self.seen = None

    def estimate(self, image_bgr):
        self.seen = image_bgr.copy()
        h, w = image_bgr.shape[:2]
        kp = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1], [w / 2, h / 2, 0.5]], np.float32)
        return [PersonPose(keypoints=kp, layout="test", box=BoundingBox(0, 0, w, h), score=1.0)]


def _photo_box(photo, position):
    x, y = samples.paste_position(photo.shape, CANVAS, position)
    return x, y, BoundingBox(x, y, x + photo.shape[1], y + photo.shape[0])


@pytest.mark.parametrize("base_height_2", [540, 300, None])
def test_keypoints_are_projected_back_exactly(base_height_2):
    backend = RecordingBackend()
    pipeline = HighResolutionPoseEstimator(backend, base_height_2=base_height_2)
    photo = samples.grace_hopper()
    canvas = samples.paste_on_canvas(photo, CANVAS, (300, 200))
    poses = pipeline.estimate(canvas)
    roi = pipeline.last_roi
    assert roi is not None and len(poses) == 1
    # the backend saw the ORIGINAL frame's crop, resized to base_height_2
    crop = canvas[int(roi.y_min):int(roi.y_max), int(roi.x_min):int(roi.x_max)]
    assert np.array_equal(backend.seen, resize_to_height(crop, base_height_2))
    if base_height_2 is not None:
        assert backend.seen.shape[0] == base_height_2
    # image corners of the crop come back as the ROI's corners, the centre as its centre
    expected = np.array([[roi.x_min, roi.y_min], [roi.x_max, roi.y_min], [roi.x_max, roi.y_max],
                         [roi.x_min, roi.y_max], list(roi.center)])
    assert np.allclose(poses[0].keypoints[:, :2], expected, atol=1e-3)
    assert np.allclose(poses[0].keypoints[:, 2], [1, 1, 1, 1, 0.5])
    box = poses[0].box
    assert np.allclose([box.x_min, box.y_min, box.x_max, box.y_max], [roi.x_min, roi.y_min, roi.x_max, roi.y_max],
                       atol=1e-3)


def test_person_on_a_large_canvas_agrees_with_the_photo_alone(backend, pipeline):
    photo = samples.grace_hopper()
    reference = backend.estimate(photo)
    assert len(reference) == 1
    for position in [(300, 200), (1300, 400), "center"]:
        x, y, photo_box = _photo_box(photo, position)
        canvas = samples.paste_on_canvas(photo, CANVAS, position)
        poses = pipeline.estimate(canvas)
        assert len(poses) == 1
        roi = pipeline.last_roi
        assert roi.x_min <= photo_box.x_min and roi.y_min <= photo_box.y_min
        assert roi.x_max >= photo_box.x_max and roi.y_max >= photo_box.y_max
        assert roi.area < 0.35 * CANVAS[0] * CANVAS[1]  # it did look closely: a fraction of the frame
        assert pck(poses, [shift_pose(p, x, y) for p in reference]) >= 0.9


def test_astronaut_on_a_canvas_is_found_with_her_head_in_place(backend, pipeline):
    # BlazePose's body keypoints on this upper-body photo move with the framing (its
    # detector extrapolates the hips), so only the head is compared here.
    photo = samples.astronaut()
    reference = backend.estimate(photo)[0]
    x, y, photo_box = _photo_box(photo, (1300, 400))
    poses = pipeline.estimate(samples.paste_on_canvas(photo, CANVAS, (1300, 400)))
    assert len(poses) == 1
    assert roi_contains(pipeline.last_roi, [shift_pose(reference, x, y)])
    error = np.linalg.norm(poses[0].keypoints[HEAD, :2] - reference.keypoints[HEAD, :2] - [x, y], axis=1)
    assert error.max() < 0.05 * max(reference.box.width, reference.box.height)


def test_detector_roi_source_finds_the_person_too(backend):
    pipeline = HighResolutionPoseEstimator(backend, roi_source="detector")
    photo = samples.grace_hopper()
    x, y, photo_box = _photo_box(photo, (1300, 400))
    poses = pipeline.estimate(samples.paste_on_canvas(photo, CANVAS, (1300, 400)))
    assert len(poses) == 1
    assert pipeline.last_roi.contains(*photo_box.center)
    assert pck(poses, [shift_pose(p, x, y) for p in backend.estimate(photo)]) >= 0.9


def test_frames_without_people_are_skipped(pipeline):
    assert pipeline.estimate(np.zeros((CANVAS[1], CANVAS[0], 3), np.uint8)) == []
    assert pipeline.last_roi is None
    cat = samples.paste_on_canvas(samples.no_people_photos()["chelsea"], CANVAS, "center")
    assert pipeline.estimate(cat) == []
    assert pipeline.last_roi is None


def test_average_pooling_is_a_block_mean():
    image = np.random.default_rng(0).uniform(0, 255, (1080, 1920, 3)).astype(np.float32)
    pooled = average_pool_to_height(image, 360)
    assert pooled.shape == (360, 640, 3)
    block_mean = image.reshape(360, 3, 640, 3, 3).mean(axis=(1, 3))
    assert np.allclose(pooled, block_mean, atol=1e-3)
    small = np.zeros((200, 300, 3), np.uint8)
    assert average_pool_to_height(small, 360) is small  # never enlarged


def test_one_box_over_all_contours():
    heatmap = np.zeros((100, 200), np.float32)
    heatmap[10:20, 30:40] = 0.9
    heatmap[60:80, 150:170] = 0.7
    heatmap[90:95, 5:10] = 0.3  # below the threshold
    box = heatmap_box(heatmap, 0.5)
    assert (box.x_min, box.y_min, box.x_max, box.y_max) == (30, 10, 170, 80)
    assert heatmap_box(np.zeros((10, 10)), 0.5) is None


def test_bad_arguments(backend):
    with pytest.raises(ValueError, match="roi_source"):
        HighResolutionPoseEstimator(backend, roi_source="openpose")
    with pytest.raises(TypeError, match="estimate"):
        HighResolutionPoseEstimator(object())
    with pytest.raises(ValueError, match="heatmap_threshold"):
        HighResolutionPoseEstimator(backend, heatmap_threshold=2)


def test_pck_metric():
    kp = np.array([[0, 0, 1], [100, 0, 1], [100, 200, 1], [0, 200, 0.1]], np.float32)
    ref = PersonPose(keypoints=kp, layout="test", box=BoundingBox(0, 0, 100, 200), score=1)
    assert pck([ref], [ref]) == 1.0
    moved = kp.copy()
    moved[0, :2] += 11  # 15.6 px > 0.05 x 200
    moved[1, :2] += 6   # 8.5 px <= 10
    assert pck([PersonPose(moved, "test", ref.box, 1)], [ref]) == pytest.approx(2 / 3)
    assert pck([], [ref]) == 0.0


def test_samples_are_deterministic_and_never_upscaled():
    assert np.array_equal(samples.group(240), samples.group(240))
    assert samples.group(240).shape[0] == 240
    canvas = samples.paste_on_canvas(samples.astronaut(), (1280, 720), "bottom-right", background=(10, 20, 30))
    assert canvas.shape == (720, 1280, 3) and tuple(canvas[0, 0]) == (10, 20, 30)
    assert np.array_equal(canvas[208:, 768:], samples.astronaut())
    assert samples.cameraman().shape == (512, 512, 3)
    with pytest.raises(ValueError, match="does not fit"):
        samples.paste_on_canvas(samples.grace_hopper(), (640, 480))
    # BGR order: the astronaut's orange suit is red-dominant
    suit = samples.astronaut()[350:400, 50:100].reshape(-1, 3).mean(0)
    assert suit[2] > suit[0]
    assert cv2.cvtColor(samples.cameraman(), cv2.COLOR_BGR2GRAY).std() > 10
