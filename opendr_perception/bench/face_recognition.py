"""Face recognition: time per face descriptor and verification distances on real photos.

The sample photos (astronaut, Grace Hopper, cameraman) and deterministic
augmentations of each (flip, brighter, darker, blur, 8° rotation) are run
through the BlazeFace detector and the face embedder. Reported: the time of
one descriptor (alignment + network, detection excluded), the L2 distances
between images of the same person and of different people, and how many of
those pairs the embedder's threshold gets wrong. Three people are a sanity
check of the pipeline, not an accuracy figure (the published one is LFW).
"""
from __future__ import annotations

import itertools
import statistics
import time

import numpy as np

NAME = "face-recognition"
HELP = "face descriptor time per face and same/different-person distances on the sample photos"


def add_arguments(parser) -> None:
    parser.add_argument("--repeats", type=int, default=10, help="timed descriptor calls per photo (default 10)")
    parser.add_argument("--num-jitters", type=int, default=0, help="dlib jitters per descriptor (default 0)")
    parser.add_argument("--detector", choices=("short_range", "full_range"), default="full_range",
                        help="BlazeFace model that finds the faces (default full_range)")


def _augmentations(image):
    import cv2
    h, w = image.shape[:2]
    rotation = cv2.getRotationMatrix2D((w / 2, h / 2), 8.0, 1.0)
    return {
        "original": image,
        "flip": cv2.flip(image, 1),
        "brighter": cv2.convertScaleAbs(image, alpha=1.0, beta=40),
        "darker": cv2.convertScaleAbs(image, alpha=0.6, beta=0),
        "blur": cv2.GaussianBlur(image, (7, 7), 2.0),
        "rotated": cv2.warpAffine(image, rotation, (w, h), borderMode=cv2.BORDER_REFLECT),
    }


def _summary(values):
    values = list(values)
    return {"n": len(values), "min": min(values), "mean": statistics.fmean(values), "max": max(values)}


def run(args) -> dict:
    from opendr_perception.core import samples
    from opendr_perception.models.face_detection import FaceDetector
    from opendr_perception.models.face_recognition import DlibResNetEmbedder

    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    embedder = DlibResNetEmbedder(num_jitters=args.num_jitters)
    detector = FaceDetector(args.detector)

    embeddings, skipped, times_ms = {}, [], []
    for person, make in samples.PHOTOS.items():
        for kind, image in _augmentations(make()).items():
            faces = detector.detect(image)
            if len(faces) != 1:
                skipped.append(f"{person}/{kind}: {len(faces)} faces")
                continue
            box = faces[0].box
            embeddings[(person, kind)] = embedder.embed(image, box)
            if kind == "original":
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    embedder.embed(image, box)
                    times_ms.append(1000.0 * (time.perf_counter() - start))

    same, different = {}, {}
    for (a, b) in itertools.combinations(sorted(embeddings), 2):
        d = float(np.linalg.norm(embeddings[a] - embeddings[b]))
        key = f"{a[0]}/{a[1]} ~ {b[0]}/{b[1]}"
        (same if a[0] == b[0] else different)[key] = d
    threshold = embedder.default_threshold
    figures = {
        "embedder": embedder.name, "threshold": threshold, "num_jitters": args.num_jitters,
        "detector": f"blazeface_{args.detector}",
        "descriptor_ms": {"median": statistics.median(times_ms), "min": min(times_ms),
                          "max": max(times_ms), "n": len(times_ms)},
        "same_person": _summary(same.values()),
        "different_person": _summary(different.values()),
        "false_rejections": sum(d >= threshold for d in same.values()),
        "false_accepts": sum(d < threshold for d in different.values()),
        "skipped": skipped,
        "same_person_pairs": same, "different_person_pairs": different,
    }

    print(f"{embedder.name} (jitters {args.num_jitters}), faces from {figures['detector']}")
    print(f"  descriptor time: median {figures['descriptor_ms']['median']:.1f} ms "
          f"(min {figures['descriptor_ms']['min']:.1f}, {len(times_ms)} calls, detection excluded)")
    for label, key in (("same person", "same_person"), ("different people", "different_person")):
        s = figures[key]
        print(f"  {label:17s} L2: min {s['min']:.3f}  mean {s['mean']:.3f}  max {s['max']:.3f}  ({s['n']} pairs)")
    print(f"  threshold {threshold}: {figures['false_rejections']} same-person pairs rejected, "
          f"{figures['false_accepts']} different-person pairs accepted")
    if skipped:
        print("  skipped (not exactly one face): " + ", ".join(skipped))
    return figures
