"""Keypoint layouts, skeletons and conversions."""
import numpy as np
import pytest

from opendr_perception.core.keypoints import (INDEX_MAPS, LAYOUTS, MISSING, NECK, convert, convert_keypoints,
                                              get_layout)
from opendr_perception.core.types import BoundingBox, PersonPose


def test_layout_sizes_and_names():
    assert {name: len(layout) for name, layout in LAYOUTS.items()} == {"blazepose33": 33, "coco17": 17,
                                                                        "coco18": 18}
    for layout in LAYOUTS.values():
        assert len(set(layout.names)) == len(layout.names)
    assert LAYOUTS["coco18"].names == (
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
        "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
        "right_eye", "left_eye", "right_ear", "left_ear")
    bp = LAYOUTS["blazepose33"]
    assert bp.names[0] == "nose" and bp.names[11:13] == ("left_shoulder", "right_shoulder")
    assert bp.names[-1] == "right_foot_index"


def test_every_edge_index_is_valid():
    for layout in LAYOUTS.values():
        assert layout.edges
        for i, j in layout.edges:
            assert 0 <= i < len(layout) and 0 <= j < len(layout) and i != j
        assert len(set(map(frozenset, layout.edges))) == len(layout.edges)
        # every keypoint belongs to the drawn skeleton
        assert {i for e in layout.edges for i in e} == set(range(len(layout)))


def test_index_maps_agree_with_the_names():
    for (source, target), table in INDEX_MAPS.items():
        src, dst = LAYOUTS[source], LAYOUTS[target]
        assert len(table) == len(dst)
        for i, j in enumerate(table):
            if j == NECK:
                assert dst.names[i] == "neck"
            elif j == MISSING:
                assert dst.names[i] not in src.names
            else:
                assert src.names[j] == dst.names[i]


def _pose(layout, seed=0):
    rng = np.random.default_rng(seed)
    n = len(LAYOUTS[layout])
    kp = np.column_stack([rng.uniform(0, 640, (n, 2)), rng.uniform(0.1, 1, n)]).astype(np.float32)
    return PersonPose(keypoints=kp, layout=layout, box=BoundingBox(0, 0, 640, 480), score=0.9, person_id=3,
                      extra={"a": 1})


def test_neck_is_the_shoulder_midpoint_with_the_weaker_confidence():
    pose = _pose("blazepose33")
    pose.keypoints[11] = [100, 200, 0.9]  # left shoulder
    pose.keypoints[12] = [200, 220, 0.6]  # right shoulder
    coco18 = convert(pose, "coco18")
    neck = coco18.keypoints[LAYOUTS["coco18"].index("neck")]
    assert np.allclose(neck, [150, 210, 0.6])
    assert coco18.layout == "coco18" and coco18.person_id == 3 and coco18.box == pose.box
    assert np.allclose(coco18.keypoints[0], pose.keypoints[0])  # nose kept
    assert np.allclose(coco18.keypoints[2], pose.keypoints[12])  # right shoulder
    pose.keypoints[12, 2] = 0.0
    assert convert(pose, "coco18").keypoints[1, 2] == 0.0  # no neck without both shoulders


@pytest.mark.parametrize("source, target", [("coco17", "coco18"), ("coco18", "coco17")])
def test_round_trip_by_name(source, target):
    pose = _pose(source)
    if source == "coco18":  # coco17 has no neck: it comes back by the shoulder rule
        pose.keypoints[1] = convert_keypoints(pose.keypoints, "coco18", "coco18")[[2, 5]].mean(0)
        pose.keypoints[1, 2] = pose.keypoints[[2, 5], 2].min()
    back = convert(convert(pose, target), source)
    assert np.array_equal(back.keypoints, pose.keypoints)


def test_blazepose_to_coco_keeps_every_named_point():
    pose = _pose("blazepose33")
    for target in ("coco17", "coco18"):
        out = convert(pose, target)
        for i, name in enumerate(LAYOUTS[target].names):
            if name != "neck":
                assert np.array_equal(out.keypoints[i], pose.keypoints[LAYOUTS["blazepose33"].index(name)])


def test_coco_to_blazepose_marks_missing_points():
    out = convert(_pose("coco17"), "blazepose33")
    assert out.keypoints[LAYOUTS["blazepose33"].index("left_heel"), 2] == 0.0
    assert out.keypoints[LAYOUTS["blazepose33"].index("left_wrist"), 2] > 0.0


def test_errors():
    with pytest.raises(KeyError, match="known"):
        get_layout("openpose25")
    with pytest.raises(ValueError, match="shape"):
        convert_keypoints(np.zeros((17, 3)), "coco18", "coco17")
    with pytest.raises(KeyError):
        LAYOUTS["coco17"].index("neck")
