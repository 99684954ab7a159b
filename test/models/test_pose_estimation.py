"""Multi-person BlazePose on real photos, plus the ROI geometry it relies on."""
import math

import numpy as np
import pytest

from opendr_perception.core import samples
from opendr_perception.core.keypoints import BLAZEPOSE33, convert
from opendr_perception.core.types import BoundingBox
from opendr_perception.models.face_detection import FaceDetector
from opendr_perception.models.pose_estimation import (MultiPersonPoseEstimator, PersonDetector, RotatedRoi,
                                                      pose_detection_to_roi, refine_from_heatmap, square_windows,
                                                      warp_roi)

HEAD_AND_SHOULDERS = [BLAZEPOSE33.index(n) for n in (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "mouth_left", "mouth_right",
    "left_shoulder", "right_shoulder")]


@pytest.fixture(scope="module")
def estimator():
    return MultiPersonPoseEstimator()


@pytest.fixture(scope="module")
def faces():
    return FaceDetector("full_range")


@pytest.fixture(scope="module")
def trio():
    astronaut = samples.astronaut()
    return samples.group(512, [astronaut, samples.grace_hopper(), astronaut[:, ::-1]])


def test_astronaut_is_one_person_with_her_nose_in_her_face(estimator, faces):
    photo = samples.astronaut()
    poses = estimator.estimate(photo)
    assert len(poses) == 1
    pose = poses[0]
    assert pose.layout == "blazepose33" and pose.keypoints.shape == (33, 3) and pose.score > 0.5
    face = faces.detect(photo)[0].box
    nose = pose.keypoints[BLAZEPOSE33.index("nose")]
    assert nose[2] > 0.5 and face.contains(nose[0], nose[1])
    person = estimator.detector.detect(photo)[0]
    assert person.class_id == "person" and person.landmarks.shape == (4, 2)
    sure = pose.keypoints[pose.keypoints[:, 2] >= 0.5]
    assert len(sure) >= 10
    inside = [person.box.contains(x, y) for x, y, _ in sure]
    assert np.mean(inside) >= 0.9
    assert all(pose.box.contains(x, y) for x, y, _ in sure)
    # head and shoulders are confident; her left shoulder is on the right of the photo
    assert (pose.keypoints[HEAD_AND_SHOULDERS, 2] > 0.5).all()
    left, right = BLAZEPOSE33.index("left_shoulder"), BLAZEPOSE33.index("right_shoulder")
    assert pose.keypoints[left, 0] > pose.keypoints[right, 0]


def test_mirrored_photo_gives_the_mirrored_pose(estimator):
    photo = samples.astronaut()
    pose = estimator.estimate(photo)[0]
    mirrored = estimator.estimate(np.ascontiguousarray(photo[:, ::-1]))[0]
    names = BLAZEPOSE33.names
    swap = [names.index(n.replace("left", "#").replace("right", "left").replace("#", "right")) for n in names]
    back = mirrored.keypoints[swap]
    back[:, 0] = photo.shape[1] - back[:, 0]
    error = np.linalg.norm(back[HEAD_AND_SHOULDERS, :2] - pose.keypoints[HEAD_AND_SHOULDERS, :2], axis=1)
    assert error.max() < 0.05 * max(pose.box.width, pose.box.height)


def test_three_people_side_by_side(estimator, faces, trio):
    poses = estimator.estimate(trio)
    assert len(poses) == 3
    face_boxes = [f.box for f in faces.detect(trio)]
    assert len(face_boxes) == 3
    tile = trio.shape[1] / 3
    noses = sorted((p.keypoints[0] for p in poses), key=lambda n: n[0])
    assert [int(n[0] // tile) for n in noses] == [0, 1, 2]
    for nose in noses:  # each nose inside exactly one face
        assert sum(box.contains(nose[0], nose[1]) for box in face_boxes) == 1


def test_regions_find_the_people_inside_them(estimator, trio):
    w = trio.shape[1]
    regions = [BoundingBox(0, 0, 512, 512), BoundingBox(512, 0, 949, 512), BoundingBox(949, 0, w, 512)]
    poses = estimator.estimate(trio, regions)
    assert len(poses) == 3
    for region in regions:
        assert sum(region.contains(p.keypoints[0, 0], p.keypoints[0, 1]) for p in poses) == 1
    # one region only: one person, found inside it
    only = estimator.estimate(trio, regions[1:2])
    assert len(only) == 1 and regions[1].contains(*only[0].keypoints[0, :2])
    assert estimator.estimate(trio, []) == []


def test_without_tiling_a_wide_frame_loses_people(trio):
    single_pass = MultiPersonPoseEstimator(tile_wide_images=False)
    assert len(single_pass.estimate(trio)) < 3  # letterboxed once, the astronauts are too small


def test_convert_to_coco18_keeps_the_nose(estimator):
    pose = estimator.estimate(samples.grace_hopper())[0]
    coco = convert(pose, "coco18")
    assert coco.keypoints.shape == (18, 3)
    assert np.array_equal(coco.keypoints[0], pose.keypoints[0])
    neck = coco.keypoints[1]
    shoulders = pose.keypoints[[BLAZEPOSE33.index("left_shoulder"), BLAZEPOSE33.index("right_shoulder")]]
    assert np.allclose(neck[:2], shoulders[:, :2].mean(0))


def test_nobody_in_empty_scenes(estimator):
    assert estimator.estimate(np.zeros((480, 640, 3), np.uint8)) == []
    photos = samples.no_people_photos()
    assert estimator.estimate(photos["chelsea"]) == []
    assert estimator.estimate(photos["coffee"]) == []


def test_bad_input(estimator):
    with pytest.raises(ValueError, match="3 channels"):
        estimator.estimate(np.zeros((10, 10, 1), np.uint8))
    with pytest.raises(ValueError, match="max_people"):
        MultiPersonPoseEstimator(max_people=0)


def test_detector_candidates_cover_the_windows():
    detector = PersonDetector()
    photo = samples.grace_hopper()
    canvas = samples.paste_on_canvas(photo, (1200, 600), (600, 0))
    c = detector.candidates(canvas, windows=[(600, 0, 1112, 600)])
    assert len(c.scores) > 0 and (c.scores >= 0.5).all()
    assert (c.keypoints[:, 2, 0] > 600).all()  # shoulder centres inside the window, in canvas pixels
    alone = detector.detect(photo)[0]
    windowed = detector.detect(canvas, windows=[(600, 0, 1112, 600)])[0]
    assert np.allclose(windowed.landmarks - [600, 0], alone.landmarks, atol=1.0)


# ------------------------------------------------------------------------------------
# geometry
# ------------------------------------------------------------------------------------


def test_square_windows():
    assert square_windows(640, 480) == [(0, 0, 640, 480)]  # 4:3 is not tiled
    assert square_windows(480, 1000) == [(0, 0, 480, 1000)]  # tall frames stay whole
    windows = square_windows(1461, 512)
    assert windows[0] == (0, 0, 1461, 512) and len(windows) == 4
    assert windows[1][0] == 0 and windows[-1][2] == 1461
    assert all(x1 - x0 == 512 for x0, _, x1, _ in windows[1:])


def test_roi_from_upright_and_lying_people():
    upright = pose_detection_to_roi(np.array([[100, 300], [100, 200], [0, 0], [0, 0]], float))
    assert upright.rotation == pytest.approx(0.0)
    assert upright.size == pytest.approx(2 * 100 * 1.25)
    assert (upright.center_x, upright.center_y) == (100, 300)
    lying = pose_detection_to_roi(np.array([[100, 300], [200, 300], [0, 0], [0, 0]], float))
    assert lying.rotation == pytest.approx(math.pi / 2)
    # in the crop, "up" (towards keypoint 1) is always the top: crop (128, 0) maps onto the head side
    for roi, head in ((upright, (100, 300 - 125)), (lying, (100 + 125, 300))):
        m = roi.crop_to_image(256)
        assert np.allclose(m[:, :2] @ [128, 0] + m[:, 2], head)
        assert np.allclose(m[:, :2] @ [128, 128] + m[:, 2], [100, 300])


def test_warp_roi_samples_the_right_pixels():
    image = np.zeros((400, 400, 3), np.uint8)
    image[140:160, 240:260] = 255  # a white square centred at (250, 150)
    roi = RotatedRoi(200, 200, 200, math.pi / 2)  # crop x axis points down the image
    crop = warp_roi(image, roi, 100)
    ys, xs = np.nonzero(crop[:, :, 0] > 127)
    m = roi.crop_to_image(100)
    centre = m[:, :2] @ [xs.mean() + 0.5, ys.mean() + 0.5] + m[:, 2]
    assert np.allclose(centre, [250, 150], atol=0.5)
    assert np.allclose(roi.bounding_box().width, 200)


def test_refine_from_heatmap_moves_to_the_peak():
    heatmap = np.full((64, 64, 2), -10.0)
    heatmap[20, 30, 0] = 10.0  # a sharp peak at column 30, row 20 for landmark 0
    xy = np.array([[31.5 / 64, 21.5 / 64], [10 / 64, 10 / 64], [2.0, 2.0]])
    out = refine_from_heatmap(xy, heatmap)
    assert np.allclose(out[0], [30 / 64, 20 / 64], atol=1e-4)
    assert np.allclose(out[1], xy[1])  # no confident cell: unchanged
    assert np.allclose(out[2], xy[2])  # outside the heatmap / beyond its channels: unchanged


def test_max_people_caps_the_poses(trio):
    assert len(MultiPersonPoseEstimator(max_people=1).estimate(trio)) == 1
