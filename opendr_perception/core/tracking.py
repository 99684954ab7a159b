"""Stable ids for objects seen in consecutive frames: greedy IoU matching.

REP-155 publishes per-face and per-body topics under their id, and per-person
model states (skeleton action recognition) are keyed by it, so ids must stay
the same while an object stays in view and must never be reused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from opendr_perception.core.types import BoundingBox


@dataclass
class Track:
    id: str
    box: BoundingBox
    missed: int = 0


class IouTracker:
    """Greedy IoU tracker: each box takes the free track it overlaps most (IoU >= ``iou_threshold``).

    A track not matched for more than ``max_missed`` consecutive frames is dropped;
    ``dropped`` lists the ids dropped by the last ``update``.
    """

    def __init__(self, prefix: str = "", iou_threshold: float = 0.3, max_missed: int = 5):
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        self.prefix, self.iou_threshold, self.max_missed = prefix, iou_threshold, max_missed
        self.tracks: list[Track] = []
        self.dropped: list[str] = []
        self._next = 1

    def update(self, boxes: Sequence[BoundingBox]) -> list[str]:
        """Ids of ``boxes`` (same order), creating tracks for new objects."""
        ious = np.array([[t.box.iou(b) for b in boxes] for t in self.tracks]).reshape(len(self.tracks), len(boxes))
        ids: list[str] = [""] * len(boxes)
        matched_tracks = set()
        for flat in np.argsort(-ious, axis=None):
            ti, bi = divmod(int(flat), len(boxes))
            if ious[ti, bi] < self.iou_threshold:
                break
            if ti in matched_tracks or ids[bi]:
                continue
            matched_tracks.add(ti)
            track = self.tracks[ti]
            track.box, track.missed, ids[bi] = boxes[bi], 0, track.id
        self.dropped = []
        kept = []
        for ti, track in enumerate(self.tracks):
            if ti not in matched_tracks:
                track.missed += 1
                if track.missed > self.max_missed:
                    self.dropped.append(track.id)
                    continue
            kept.append(track)
        self.tracks = kept
        for bi, box in enumerate(boxes):
            if not ids[bi]:
                ids[bi] = f"{self.prefix}{self._next}"
                self._next += 1
                self.tracks.append(Track(ids[bi], box))
        return ids

    @property
    def active_ids(self) -> list[str]:
        return [t.id for t in self.tracks]
