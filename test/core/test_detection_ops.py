"""Numerical checks of the SSD post-processing and letterbox helpers."""
import warnings

import numpy as np
import pytest

from opendr_perception.core.detection_ops import (
    BLAZEFACE_FULL_RANGE_ANCHORS, BLAZEFACE_SHORT_RANGE_ANCHORS, BLAZEPOSE_DETECTOR_ANCHORS, SsdAnchorOptions,
    check_bgr_image, decode_boxes, greedy_nms, iou_matrix, letterbox, pad_to_square, sigmoid_scores, ssd_anchors,
    weighted_nms)


def test_anchor_counts_match_the_models():
    assert len(ssd_anchors(BLAZEFACE_SHORT_RANGE_ANCHORS)) == 896  # 16*16*2 + 8*8*6
    assert len(ssd_anchors(BLAZEFACE_FULL_RANGE_ANCHORS)) == 2304  # 48*48*1
    pose = ssd_anchors(BLAZEPOSE_DETECTOR_ANCHORS)
    assert len(pose) == 2254 == 1568 + 392 + 294
    # stride 8: 28x28 cells, 2 anchors each; stride 16: 14x14x2; stride 32 (3 layers): 7x7x6
    assert np.allclose(np.unique(pose[:1568, 0]), (np.arange(28) + 0.5) / 28)
    assert np.allclose(np.unique(pose[1568:1960, 0]), (np.arange(14) + 0.5) / 14)
    assert np.allclose(np.unique(pose[1960:, 1]), (np.arange(7) + 0.5) / 7)
    assert np.all(pose[:, 2:] == 1.0)  # fixed anchor size


def test_anchor_order_is_row_major_with_anchors_per_cell_innermost():
    a = ssd_anchors(BLAZEFACE_SHORT_RANGE_ANCHORS)
    assert np.allclose(a[0, :2], [0.5 / 16, 0.5 / 16]) and np.allclose(a[1, :2], a[0, :2])
    assert np.allclose(a[2, :2], [1.5 / 16, 0.5 / 16])  # next cell to the right
    assert np.allclose(a[32, :2], [0.5 / 16, 1.5 / 16])  # next row
    assert np.allclose(a[512:518, :2], [[0.5 / 8, 0.5 / 8]] * 6)


def test_non_fixed_anchor_sizes_follow_the_scales():
    opts = SsdAnchorOptions(64, 64, strides=(32, 32), fixed_anchor_size=False, interpolated_scale_aspect_ratio=0.0,
                            min_scale=0.2, max_scale=0.8)
    a = ssd_anchors(opts)
    assert len(a) == 2 * 2 * 2
    assert np.allclose(a[:2, 2], [0.2, 0.8])


def test_decode_boxes_relative_to_anchors():
    anchors = np.array([[0.5, 0.5, 1, 1], [0.25, 0.75, 1, 1]], np.float32)
    raw = np.zeros((2, 8), np.float32)
    raw[0, :4] = [12.8, -12.8, 25.6, 51.2]  # dx, dy, w, h in input pixels (scale 128)
    raw[0, 4:6] = [6.4, 0.0]                 # keypoint 0 offset
    raw[1, 6:8] = [-12.8, 12.8]              # keypoint 1 offset
    boxes, kps = decode_boxes(raw, anchors, num_keypoints=2, scale=128)
    assert np.allclose(boxes[0], [0.6 - 0.1, 0.4 - 0.2, 0.6 + 0.1, 0.4 + 0.2])
    assert np.allclose(kps[0], [[0.55, 0.5], [0.5, 0.5]])
    assert np.allclose(boxes[1], [0.25, 0.75, 0.25, 0.75])
    assert np.allclose(kps[1, 1], [0.15, 0.85])
    # y-first order (reverse_output_order=False) swaps the pairs
    boxes_yx, kps_yx = decode_boxes(raw[:, [1, 0, 3, 2, 5, 4, 7, 6]], anchors, 2, 128, reverse_output_order=False)
    assert np.allclose(boxes_yx, boxes) and np.allclose(kps_yx, kps)


def test_sigmoid_scores_clip_without_overflow():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = sigmoid_scores(np.array([-1e6, -100, 0, 100, 1e6]))
    assert s[2] == pytest.approx(0.5)
    assert s[0] == s[1] and s[3] == s[4] == pytest.approx(1.0)
    assert 0 < s[0] < 1e-40


def test_greedy_nms_on_hand_made_boxes():
    boxes = np.array([
        [0, 0, 10, 10],      # 0: best of the left cluster
        [1, 0, 11, 10],      # 1: IoU 0.82 with 0 -> dropped
        [20, 20, 30, 30],    # 2: alone
        [5, 0, 15, 10],      # 3: IoU 0.33 with 0, 0.43 with 1 -> kept at 0.5
        [20, 21, 30, 31],    # 4: IoU 0.82 with 2 -> dropped
    ], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.95])
    assert greedy_nms(boxes, scores, 0.5).tolist() == [4, 0, 3]
    assert greedy_nms(boxes, scores, 0.3).tolist() == [4, 0]
    assert greedy_nms(boxes, scores, 0.5, max_detections=2).tolist() == [4, 0]
    assert greedy_nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_iou_matrix():
    a = np.array([[0, 0, 2, 2]], float)
    b = np.array([[1, 1, 3, 3], [2, 2, 4, 4], [0, 0, 2, 2]], float)
    assert np.allclose(iou_matrix(a, b), [[1 / 7, 0, 1]])


def test_weighted_nms_blends_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [50, 50, 60, 60]], float)
    scores = np.array([0.75, 0.25, 0.5])
    kps = np.array([[[1, 1]], [[3, 1]], [[55, 55]]], float)
    out_boxes, out_scores, out_kps = weighted_nms(boxes, scores, kps, iou_threshold=0.3)
    assert out_scores.tolist() == [0.75, 0.5]  # the best score of each cluster
    assert np.allclose(out_boxes[0], [0.5, 0, 10.5, 10])  # 0.75*box0 + 0.25*box1
    assert np.allclose(out_kps[0], [[1.5, 1]])
    assert np.allclose(out_boxes[1], boxes[2])
    b, s, k = weighted_nms(boxes, scores, None, iou_threshold=0.9)
    assert len(b) == 3 and k is None


@pytest.mark.parametrize("shape, size", [((300, 500, 3), 128), ((500, 300, 3), 224), ((40, 60, 3), (256, 256)),
                                         ((100, 100, 3), (192, 192))])
def test_letterbox_round_trip(shape, size):
    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    out, lb = letterbox(image, size)
    tw, th = (size, size) if np.isscalar(size) else size
    assert out.shape == (th, tw, 3)
    points = np.random.default_rng(2).uniform(0, 1, (50, 2)) * [shape[1], shape[0]]
    assert np.allclose(lb.to_original(lb.to_model(points)), points)
    # the image's corners land on the content's corners, which fill the input along one axis
    corners = lb.to_model(np.array([[0, 0], [shape[1], shape[0]]], float))
    assert np.allclose(corners[0], [lb.pad_x, lb.pad_y])
    assert np.isclose(corners[1][0] - corners[0][0], tw) or np.isclose(corners[1][1] - corners[0][1], th)
    assert np.allclose(corners[1] + corners[0], [tw, th], atol=1.0)  # centred
    x0, y0 = int(lb.pad_x), int(lb.pad_y)
    assert not out[:y0].any() and not out[:, :x0].any()
    # normalised model coordinates map like pixels
    assert np.allclose(lb.normalized_to_original(np.array([0.5, 0.5])), lb.to_original(np.array([tw / 2, th / 2])))


def test_letterbox_puts_a_marked_pixel_in_the_right_place():
    image = np.zeros((200, 400, 3), np.uint8)
    image[150:170, 300:320] = 255  # a white square centred at (310, 160)
    out, lb = letterbox(image, 100)
    ys, xs = np.nonzero(out[:, :, 0] > 127)
    centre = lb.to_original(np.array([xs.mean() + 0.5, ys.mean() + 0.5]))
    assert np.allclose(centre, [310, 160], atol=2)


def test_pad_to_square_does_not_resize():
    image = np.ones((30, 50, 3), np.uint8)
    out, lb = pad_to_square(image)
    assert out.shape == (50, 50, 3) and lb.scale_x == lb.scale_y == 1.0 and lb.pad_y == 10


def test_check_bgr_image():
    check_bgr_image(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        check_bgr_image(np.zeros((2, 2, 3), np.float64))
