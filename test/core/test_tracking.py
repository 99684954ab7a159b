"""Ids stay with moving objects, new objects get new ids, lost tracks are dropped and never reused."""
import pytest

from opendr_perception.core.tracking import IouTracker
from opendr_perception.core.types import BoundingBox


def box(x, y, size=10):
    return BoundingBox(x, y, x + size, y + size)


def test_ids_follow_moving_boxes_in_any_order():
    tracker = IouTracker(prefix="face", max_missed=1)
    first = tracker.update([box(0, 0), box(100, 0)])
    assert first == ["face1", "face2"]
    assert tracker.update([box(102, 1), box(1, 1)]) == ["face2", "face1"]


def test_new_object_gets_new_id_and_lost_ones_are_dropped():
    tracker = IouTracker(max_missed=1)
    a, = tracker.update([box(0, 0)])
    tracker.update([])  # missed once: kept
    assert tracker.active_ids == [a] and tracker.dropped == []
    tracker.update([box(50, 50)])  # missed twice: dropped
    assert a in tracker.dropped and a not in tracker.active_ids
    again, = tracker.update([box(0, 0)])
    assert again not in (a,)  # ids are never reused


def test_one_box_never_takes_two_tracks():
    tracker = IouTracker()
    tracker.update([box(0, 0), box(4, 0)])
    ids = tracker.update([box(2, 0)])
    assert len(ids) == 1 and len(set(tracker.active_ids)) == 2


def test_threshold_is_checked():
    with pytest.raises(ValueError):
        IouTracker(iou_threshold=0)
