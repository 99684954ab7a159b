"""Full-frame pose estimation vs the active high-resolution ROI pipeline, side by side.

Protocol (the seed's, with real photos instead of COCO val): each sample photo
with a person (astronaut, Grace Hopper, cameraman) and each photo without people
(coffee, cat, rocket: COCO val has 46% such images) is pasted WITHOUT upscaling
onto empty (black) 720p / 1080p / 1440p canvases at three positions. On every
canvas, in one run and interleaved, we time

* ``full``: the backend (multi-person BlazePose) on the whole canvas, with its
  square-window tiling of wide frames (its default);
* ``full-1pass``: the same backend letterboxing the whole canvas once (no tiling:
  what a plain single-input estimator does with a large frame);
* ``roi-<source>``: :class:`HighResolutionPoseEstimator` around the same backend,
  for each ROI source asked for;

and score each against the reference = the backend run on the photo alone,
shifted to canvas coordinates: PCK@0.05 = fraction of the reference's confident
keypoints (confidence >= 0.5) predicted within 0.05 x the person size (the
larger side of the reference's keypoint box). A missed person scores 0 on all
its keypoints. fps = frames / total seconds; ratio = fps / fps of ``full``.
The reference's own stability (the photo with a small border) bounds the PCK
any method can reach against it.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Optional, Sequence

import numpy as np

from ..core import samples
from ..core.types import PersonPose

NAME = "high-resolution-pose"
HELP = "full-frame pose estimation vs the active ROI pipeline on photos pasted onto 720p-1440p canvases"

CANVASES = {"720p": (1280, 720), "1080p": (1920, 1080), "1440p": (2560, 1440), "2160p": (3840, 2160)}
POSITIONS = ("top-left", "center", "bottom-right")


def _height(text: str) -> Optional[int]:
    return None if text.lower() in ("none", "0", "no") else int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--canvases", default="720p,1080p,1440p",
                        help=f"comma-separated canvas sizes among {', '.join(CANVASES)} (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per canvas and method (default: 3)")
    parser.add_argument("--base-height-1", type=_height, default=360,
                        help="rows of the pooled frame for the ROI stage (default: 360)")
    parser.add_argument("--base-height-2", type=_height, default=540,
                        help="rows the crop is resized to, or 'none' (default: 540)")
    parser.add_argument("--roi-source", choices=("segmentation", "detector", "both"), default="both",
                        help="cheap stage of the ROI pipeline (default: both, measured side by side)")
    parser.add_argument("--heatmap-threshold", type=float, default=0.5, help="heatmap threshold (default: 0.5)")
    parser.add_argument("--margin", type=float, default=0.1,
                        help="crop margin, fraction of the ROI's size per side (default: 0.1)")
    parser.add_argument("--photos", default=",".join(samples.PHOTOS),
                        help="comma-separated photos with people (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default: 1)")


# ------------------------------------------------------------------------------------
# Agreement with the reference
# ------------------------------------------------------------------------------------


def shift_pose(pose: PersonPose, dx: float, dy: float) -> PersonPose:
    """``pose`` moved by (dx, dy) pixels (a photo's pose in the canvas it was pasted on)."""
    from ..models.high_resolution_pose import project_pose
    return project_pose(pose, 1.0, 1.0, dx, dy)


def pck_counts(predicted: Sequence[PersonPose], reference: Sequence[PersonPose], alpha: float = 0.05,
               min_confidence: float = 0.5) -> tuple[int, int]:
    """(correct, total) reference keypoints for one image.

    Each reference person is matched to the predicted pose that gets most of its
    keypoints right (each prediction used once, reference people in score order).
    """
    correct, total = 0, 0
    used: set[int] = set()
    for ref in reference:
        sure = ref.keypoints[:, 2] >= min_confidence
        if sure.sum() < 2:
            continue
        pts = ref.keypoints[sure, :2]
        size = float(max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]), 1.0))
        best, best_i = 0, None
        for i, pred in enumerate(predicted):
            if i in used or pred.keypoints.shape != ref.keypoints.shape:
                continue
            hits = int((np.linalg.norm(pred.keypoints[sure, :2] - pts, axis=1) <= alpha * size).sum())
            if hits > best:
                best, best_i = hits, i
        if best_i is not None:
            used.add(best_i)
        correct += best
        total += int(sure.sum())
    return correct, total


def pck(predicted: Sequence[PersonPose], reference: Sequence[PersonPose], alpha: float = 0.05,
        min_confidence: float = 0.5) -> float:
    """PCK@alpha of ``predicted`` against ``reference`` for one image (1.0 when nothing to find)."""
    correct, total = pck_counts(predicted, reference, alpha, min_confidence)
    return correct / total if total else 1.0


def roi_contains(roi, poses: Sequence[PersonPose], min_confidence: float = 0.5) -> bool:
    """Whether ``roi`` (BoundingBox or None) contains every confident keypoint of ``poses``."""
    if roi is None:
        return False
    return all(roi.contains(float(x), float(y)) for p in poses for x, y, c in p.keypoints if c >= min_confidence)


# ------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------


def _time_methods(methods: dict, canvases: list, repeats: int) -> tuple[dict, dict]:
    """Seconds and frames per method over ``canvases``, interleaved per canvas."""
    seconds = {m: 0.0 for m in methods}
    frames = {m: 0 for m in methods}
    for canvas in canvases:
        for estimate in methods.values():
            estimate(canvas)  # warm-up (first-touch allocations), not timed
        for _ in range(repeats):
            for m, estimate in methods.items():  # interleaved: same machine state for all
                t0 = time.perf_counter()
                estimate(canvas)
                seconds[m] += time.perf_counter() - t0
                frames[m] += 1
    return seconds, frames


def run(args) -> dict:
    from ..models.high_resolution_pose import HighResolutionPoseEstimator
    from ..models.pose_estimation import MultiPersonPoseEstimator

    canvas_names = [c.strip() for c in args.canvases.split(",") if c.strip()]
    unknown = [c for c in canvas_names if c not in CANVASES]
    if unknown:
        raise SystemExit(f"unknown canvas size(s) {unknown}; choose among {', '.join(CANVASES)}")
    if args.repeats < 1:
        raise SystemExit("--repeats must be >= 1")
    sources = ("segmentation", "detector") if args.roi_source == "both" else (args.roi_source,)

    backend = MultiPersonPoseEstimator(num_threads=args.threads)
    one_pass = MultiPersonPoseEstimator(num_threads=args.threads, tile_wide_images=False)
    pipelines = {f"roi-{s}": HighResolutionPoseEstimator(
        backend, base_height_1=args.base_height_1, base_height_2=args.base_height_2,
        heatmap_threshold=args.heatmap_threshold, roi_source=s, margin=args.margin, num_threads=args.threads)
        for s in sources}
    methods = {"full": backend.estimate, "full-1pass": one_pass.estimate}
    methods.update({name: p.estimate for name, p in pipelines.items()})

    photo_names = [p.strip() for p in args.photos.split(",") if p.strip()]
    if not photo_names or any(p not in samples.PHOTOS for p in photo_names):
        raise SystemExit(f"--photos: choose among {', '.join(samples.PHOTOS)}")
    photos = {name: samples.PHOTOS[name]() for name in photo_names}
    empty_photos = samples.no_people_photos()
    references = {name: backend.estimate(photo) for name, photo in photos.items()}
    # How much the backend itself moves when the framing changes a little: the photo
    # with a 32-pixel black border against the photo alone. An upper bound for any PCK below.
    stability = {}
    for name, photo in photos.items():
        bordered = samples.paste_on_canvas(photo, (photo.shape[1] + 64, photo.shape[0] + 64), "center")
        stability[name] = pck([shift_pose(p, -32, -32) for p in backend.estimate(bordered)], references[name])

    results: dict = {}
    for canvas_name in canvas_names:
        size = CANVASES[canvas_name]
        people, empty = [], []
        for photo_name, photo in photos.items():
            for position in POSITIONS:
                x, y = samples.paste_position(photo.shape, size, position)
                people.append((photo_name, samples.paste_on_canvas(photo, size, position),
                               [shift_pose(p, x, y) for p in references[photo_name]]))
        for photo in empty_photos.values():
            for position in POSITIONS:
                empty.append(samples.paste_on_canvas(photo, size, position))

        sec_people, frames_people = _time_methods(methods, [c for _, c, _ in people], args.repeats)
        sec_empty, frames_empty = _time_methods(methods, empty, args.repeats)

        figures = {}
        for m, estimate in methods.items():
            correct, total, per_photo, contained, crop, skipped = 0, 0, {}, 0, [], 0
            for photo_name, canvas, reference in people:
                poses = estimate(canvas)
                c, t = pck_counts(poses, reference)
                correct, total = correct + c, total + t
                per_photo.setdefault(photo_name, []).append(c / t if t else 1.0)
                if m in pipelines:
                    roi = pipelines[m].last_roi
                    skipped += roi is None
                    contained += roi_contains(roi, reference)
                    crop.append(0.0 if roi is None else roi.area / (size[0] * size[1]))
            false_people, empty_skipped = 0, 0
            for canvas in empty:
                false_people += len(estimate(canvas))
                if m in pipelines:
                    empty_skipped += pipelines[m].last_roi is None
            entry = {
                "fps_people": frames_people[m] / sec_people[m],
                "fps_empty": frames_empty[m] / sec_empty[m],
                "fps_all": (frames_people[m] + frames_empty[m]) / (sec_people[m] + sec_empty[m]),
                "pck@0.05": correct / total if total else float("nan"),
                "pck_per_photo": {k: statistics.mean(v) for k, v in per_photo.items()},
                "false_people_on_empty": false_people,
            }
            if m in pipelines:
                entry.update(people_frames_skipped=skipped, empty_frames_skipped=empty_skipped,
                             roi_contains_person=contained / len(people), mean_crop_fraction=statistics.mean(crop))
            figures[m] = entry
        for m, entry in figures.items():
            for key in ("fps_people", "fps_empty", "fps_all"):
                entry[key.replace("fps", "ratio")] = entry[key] / figures["full"][key]
        results[canvas_name] = {"canvas": list(size), "people_canvases": len(people), "empty_canvases": len(empty),
                                "timed_frames_per_method": frames_people["full"] + frames_empty["full"],
                                "methods": figures}

    report = {
        "benchmark": NAME,
        "settings": {"base_height_1": args.base_height_1, "base_height_2": args.base_height_2,
                     "roi_sources": list(sources), "heatmap_threshold": args.heatmap_threshold,
                     "margin": args.margin,
                     "repeats": args.repeats, "threads": args.threads, "photos": list(photos),
                     "empty_photos": list(empty_photos), "positions": list(POSITIONS),
                     "backend": "MultiPersonPoseEstimator (BlazePose detector + landmark full, tflite, CPU)",
                     "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                     "python": platform.python_version()},
        "reference_people": {k: len(v) for k, v in references.items()},
        "reference_stability_pck@0.05": stability,
        "results": results,
    }
    _print_table(report)
    return report


def _print_table(report: dict) -> None:
    s = report["settings"]
    print(f"high-resolution pose: base heights {s['base_height_1']}/{s['base_height_2']}, margin {s['margin']}, "
          f"{s['repeats']} timed runs per canvas, {s['threads']} thread(s)")
    print(f"people canvases: {', '.join(s['photos'])}; empty canvases: {', '.join(s['empty_photos'])}; "
          f"each at {', '.join(s['positions'])}; reference = backend on the photo alone")
    stab = ", ".join(f"{k} {v:.2f}" for k, v in report["reference_stability_pck@0.05"].items())
    print(f"reference stability (photo + 32 px border vs photo alone, PCK@0.05): {stab}")
    short = [name.split("_")[0][:6] for name in s["photos"]]
    header = (f"{'canvas':>6} {'method':<17} {'fps ppl':>7} {'ratio':>5} {'fps all':>7} {'ratio':>5} "
              f"{'PCK@.05':>7} " + " ".join(f"{n:>6}" for n in short) +
              f" {'ROI ok':>6} {'crop':>5} {'skip e':>6} {'false':>5}")
    print(header)
    print("-" * len(header))
    for canvas_name, r in report["results"].items():
        for m, f in r["methods"].items():
            roi_ok = f"{f['roi_contains_person']:.2f}" if "roi_contains_person" in f else "-"
            crop = f"{f['mean_crop_fraction']:.2f}" if "mean_crop_fraction" in f else "-"
            skip = f"{f['empty_frames_skipped']}/{r['empty_canvases']}" if "empty_frames_skipped" in f else "-"
            per_photo = " ".join(f"{f['pck_per_photo'][name]:6.2f}" for name in s["photos"])
            print(f"{canvas_name:>6} {m:<17} {f['fps_people']:7.1f} {f['ratio_people']:5.2f} {f['fps_all']:7.1f} "
                  f"{f['ratio_all']:5.2f} {f['pck@0.05']:7.3f} {per_photo} {roi_ok:>6} {crop:>5} {skip:>6} "
                  f"{f['false_people_on_empty']:>5}")
    print("fps ppl: canvases with a person; fps all: with the empty canvases too (as COCO val, 46% without "
          "people); ratio: fps / fps of 'full'; PCK per photo follows the total; ROI ok: share of people "
          "canvases whose crop holds all the reference's confident keypoints; crop: mean crop area / canvas; "
          "skip e: empty canvases skipped by the ROI stage; false: people reported on empty canvases")
