"""Train the occlusion-removal demo models (OpenDR D3.3 section 2.3, appendix 8.12) on CPU, in minutes.

  opendr-train-occlusion-removal --output occlusion_removal.safetensors --manifest occlusion_removal.yaml

Data: the only face images here are the project's three sample photos (astronaut = Eileen Collins,
Grace Hopper, cameraman; :mod:`opendr_perception.core.samples`) and the face simulator's renders of
those faces (:mod:`opendr_perception.sim.face_world`) from many viewpoints: pan -40..40 deg around the
person, camera 1.0/1.6/2.4 m away, 0.15 m above/level/below the face. So there are THREE identities;
evaluation holds out IMAGES, not identities: the renders at pan -30/0/+30 deg are never trained on
(training uses the photos and pan -40/-20/-10/10/20/40), and the held-out occluders come from another
photo. Every face is cropped around its BlazeFace box (``core.occlusion.face_crop``, 128 px) and
augmented per sample (lighting: gain 0.6-1.4, gamma 0.7-1.4, colour cast; mirror; blur; noise).

Occluders (no COCO here): ``core.occlusion.random_occluder`` crops of people-free photos cut by a
superellipse, and plain-colour panels; training uses skimage's coffee and rocket photos, held-out
sets its chelsea (cat) photo; both use random plain colours.

Stages (the seed's two-stage recipe):

  1. D_m (:class:`~opendr_perception.models.occlusion_removal.DirectionNet`, 5 classes) on the FROZEN
     recogniser's features: the dlib ResNet descriptor (128-D; the seed's IR-50 gives 512x7x7 maps,
     dlib exposes no spatial map) of faces occluded by the 2D generator (20-60% of the face box from
     one side, or none with p=0.2); cross-entropy, Adam 1e-3.
  2. R_m (:class:`~opendr_perception.models.occlusion_removal.RatioRegressor`, 6-channel small CNN, no
     pretrained weights) on the two face crops before/after one emulated step (3D emulator
     ``random_step``: the occluder moves 0.5-1.25x its penetration per step, target = remaining
     move / step in [0, 1]); the acted direction is the true side with p=0.5, else random among the
     4 (the seed's dagger variant); L1 loss, Adam 1e-3. D_m is frozen (not used by R_m's gradient).

Outputs: one ``.safetensors`` (keys ``direction.*`` and ``ratio.*``, options as JSON metadata), a metrics
JSON and, with ``--manifest``, the registry manifest entry ``occlusion_removal_dlib_demo``.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from opendr_perception.core import occlusion as occ
from opendr_perception.models import occlusion_removal as orm

PEOPLE = {"eileen_collins": "astronaut", "grace_hopper": "grace_hopper", "cameraman": "cameraman"}
TRAIN_PAN_DEG = (-40, -20, -10, 10, 20, 40)
HELDOUT_PAN_DEG = (-30, 0, 30)
DISTANCES_M = (1.0, 1.6, 2.4)
HEIGHT_OFFSETS_M = (-0.15, 0.0, 0.15)
TRAIN_OCCLUDER_PHOTOS = ("coffee", "rocket")
HELDOUT_OCCLUDER_PHOTOS = ("chelsea",)
IMPACT_FRACTION = (0.5, 1.25)


@dataclass(frozen=True, eq=False)
class FaceView:
    """One face image: a :func:`~opendr_perception.core.occlusion.face_crop` and its face box in it."""

    identity: str
    source: str
    image: np.ndarray
    box: tuple[int, int, int, int]


def face_views(split: str, detector=None) -> list[FaceView]:
    """The face images of ``split`` (``"train"``: the three photos and renders at TRAIN_PAN_DEG;
    ``"heldout"``: renders at HELDOUT_PAN_DEG), each cropped around its BlazeFace box.
    Views where the detector finds no face are left out."""
    from opendr_perception.core import samples
    from opendr_perception.models.face_detection import FaceDetector
    from opendr_perception.sim.face_world import FaceWorld
    from opendr_perception.sim.scene import Scene

    if split not in ("train", "heldout"):
        raise ValueError("split must be 'train' or 'heldout'")
    detector = detector or FaceDetector("full_range")
    views = []

    def add(identity, source, image):
        faces = detector.detect(image)
        if faces:
            b = max(faces, key=lambda f: f.score).box
            crop, box = occ.face_crop(image, (b.x_min, b.y_min, b.x_max, b.y_max))
            views.append(FaceView(identity, source, crop, box))

    for identity, photo in PEOPLE.items():
        if split == "train":
            add(identity, f"photo:{photo}", samples.PHOTOS[photo]())
        scene = Scene.from_dict({
            "room_size": 8.0, "camera": {"width": 640, "height": 480, "fov_y_deg": 60.0},
            "robot": {"kind": "drone", "x": -1.5, "y": 0.0, "z": 1.57, "yaw_deg": 0.0},
            "people": [{"name": identity, "photo": photo, "x": 0.0, "y": 0.0, "yaw_deg": 180.0, "height": 1.69}]})
        with FaceWorld(scene) as world:
            for pan in (TRAIN_PAN_DEG if split == "train" else HELDOUT_PAN_DEG):
                for distance in DISTANCES_M:
                    for dz in HEIGHT_OFFSETS_M:
                        pose = world.pose_facing(identity, distance, math.radians(pan))
                        world.set_robot_pose(pose.x, pose.y, pose.z + dz, pose.yaw)
                        add(identity, f"render:{photo}:pan{pan}:d{distance}:dz{dz}", world.render())
    return views


def occluder_photos(split: str) -> list[np.ndarray]:
    from opendr_perception.core import samples
    photos = samples.no_people_photos()
    return [photos[n] for n in (TRAIN_OCCLUDER_PHOTOS if split == "train" else HELDOUT_OCCLUDER_PHOTOS)]


def random_occluder(rng: np.random.Generator, photos) -> np.ndarray:
    """A photo occluder (p=0.6) or a plain-colour panel (like the simulator's), RGBA."""
    if rng.random() < 0.6:
        return occ.random_occluder(rng, photos)
    plain = np.full((32, 32, 3), rng.integers(0, 256, 3), np.uint8)
    return occ.random_occluder(rng, [plain])


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lighting (gain, gamma, colour cast), mirror, blur and noise on a face crop (the box stays valid
    under the mirror: crops are centred on it)."""
    x = image.astype(np.float32) / 255.0
    x = np.clip(x * rng.uniform(0.6, 1.4) * rng.uniform(0.9, 1.1, 3), 0, 1) ** rng.uniform(0.7, 1.4)
    if rng.random() < 0.5:
        x = x[:, ::-1]
    if rng.random() < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.2))
    x = x + rng.normal(0, rng.uniform(0, 0.02), x.shape)
    return np.ascontiguousarray(np.clip(np.round(x * 255), 0, 255).astype(np.uint8))


def occluded_sample(view: FaceView, rng: np.random.Generator, photos, p_none: float = 0.2, clean=None,
                    direction=None, coverage=None):
    """(clean augmented crop, 2D-generator sample): random side and coverage 20-60% unless given."""
    clean = augment(view.image, rng) if clean is None else clean
    if direction is None:
        if rng.random() < p_none:
            return clean, occ.occlude(clean, rng, "none", 0.0, box=view.box)
        direction = occ.OCCLUDER_SIDES[int(rng.integers(4))]
    coverage = float(rng.uniform(*occ.COVERAGE_RANGE)) if coverage is None else coverage
    return clean, occ.occlude(clean, rng, direction, coverage, random_occluder(rng, photos), box=view.box)


def panel_sample(view: FaceView, rng: np.random.Generator, photos, clean=None):
    """A panel-like occluder for stage 1: like the 2D generator's, but reaching from the crop's edge on
    its side into the face box and spanning the crop's whole length along that side (a real object is
    rarely cut at the face box, e.g. the simulator's panels); 20-60% of the face box covered. The
    label is the side; the 3D emulator is not used on these (its target assumes the seed's band)."""
    clean = augment(view.image, rng) if clean is None else clean
    side = occ.OCCLUDER_SIDES[int(rng.integers(4))]
    h, w = clean.shape[:2]
    x0, y0, x1, y1 = view.box
    outer = {"left": (0, 0, x1, h), "right": (x0, 0, w, h), "up": (0, 0, w, y1), "bottom": (0, y0, w, h)}[side]
    margin = {"left": x0, "right": w - x1, "up": y0, "bottom": h - y1}[side]
    extent = (x1 - x0) if side in ("left", "right") else (y1 - y0)
    c = float(rng.uniform(*occ.COVERAGE_RANGE))
    s = occ.occlude(clean, rng, side, (margin + c * extent) / (margin + extent), random_occluder(rng, photos),
                    box=outer)
    return clean, occ.OccludedSample(s.image, s.mask, side, occ.box_coverage(s.mask, view.box), view.box,
                                     s.occluder, c)


def direction_set(views, n: int, seed: int, photos, embedder, desc: str, quiet: bool, p_panel: float = 0.0):
    """``n`` occluded faces (2D generator, p_none 0.2; a :func:`panel_sample` instead with probability
    ``p_panel`` among the occluded ones) -> (embeddings (n, 128), labels (n,))."""
    from tqdm import tqdm

    from opendr_perception.core.types import BoundingBox
    rng = np.random.default_rng(seed)
    x, y = [], []
    for _ in tqdm(range(n), desc=desc, disable=quiet, file=sys.stderr, dynamic_ncols=True):
        view = views[int(rng.integers(len(views)))]
        _, s = occluded_sample(view, rng, photos)
        if s.direction != "none" and rng.random() < p_panel:
            _, s = panel_sample(view, rng, photos)
        x.append(embedder.embed(s.image, BoundingBox(*s.box)))
        y.append(s.label)
    return np.asarray(x, np.float32), np.asarray(y, np.int64)


def ratio_batch(views, n: int, rng: np.random.Generator, photos, p_true: float = 0.5):
    """``n`` stage-2 samples: (view1 crops, view2 crops, targets); the acted direction is the true side
    with probability ``p_true``, else one of the 4 at random."""
    v1, v2, t = [], [], []
    for _ in range(n):
        view = views[int(rng.integers(len(views)))]
        clean, s = occluded_sample(view, rng, photos, p_none=0.0)
        acted = s.direction if rng.random() < p_true else orm.stage2_directions(1, rng)[0]
        step = occ.random_step(clean, s, rng, direction=acted, impact_fraction=IMPACT_FRACTION)
        v1.append(step.view1)
        v2.append(step.view2)
        t.append(step.ratio)
    return v1, v2, np.asarray(t, np.float32)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="opendr-train-occlusion-removal", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="occlusion_removal.safetensors", help="weights file (default: %(default)s)")
    p.add_argument("--metrics", default=None, help="metrics JSON (default: the weights path with .json)")
    p.add_argument("--manifest", default=None, help="also write a registry manifest (YAML) for the weights")
    p.add_argument("--manifest-path", default="weights/occlusion_removal.safetensors",
                   help="the entry's 'project:' path, relative to models/ (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default: 0); held-out sets use seed+1000")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--direction-samples", type=int, default=2400, help="stage-1 occluded faces (default: %(default)s)")
    p.add_argument("--direction-epochs", type=int, default=60, help="stage-1 epochs (default: %(default)s)")
    p.add_argument("--panel-fraction", type=float, default=0.5,
                   help="share of stage-1 occluders that are panel-like (default: %(default)s)")
    p.add_argument("--hidden", type=int, default=256, help="D_m hidden units (default: %(default)s)")
    p.add_argument("--ratio-steps", type=int, default=1500, help="stage-2 steps (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32, help="stage-2 batch (default: %(default)s)")
    p.add_argument("--eval-samples", type=int, default=500, help="held-out samples per stage (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, args.threads))
    try:
        with torch.random.fork_rng():
            return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args) -> int:
    import torch
    from tqdm import tqdm

    from opendr_perception.models.face_recognition import DlibResNetEmbedder
    from opendr_perception.tools.train_skeleton_actions import save_weights

    torch.manual_seed(args.seed)
    t0, c0 = time.perf_counter(), time.process_time()
    train_views, heldout_views = face_views("train"), face_views("heldout")
    train_photos, heldout_photos = occluder_photos("train"), occluder_photos("heldout")
    embedder = DlibResNetEmbedder()
    metrics = {"entry": orm.REGISTRY_NAME, "args": vars(args), "torch": torch.__version__,
               "python": platform.python_version(),
               "data": {"identities": len(PEOPLE), "train_images": len(train_views),
                        "heldout_images": len(heldout_views)}}

    # stage 1: D_m on frozen recogniser features
    c1 = time.process_time()
    x, y = direction_set(train_views, args.direction_samples, args.seed, train_photos, embedder,
                         "stage 1 data", args.quiet, args.panel_fraction)
    xe, ye = direction_set(heldout_views, args.eval_samples, args.seed + 1000, heldout_photos, embedder,
                           "stage 1 held-out", args.quiet)
    xp, yp = direction_set(heldout_views, args.eval_samples // 2, args.seed + 2000, heldout_photos, embedder,
                           "stage 1 held-out panels", args.quiet, p_panel=1.0)
    net = orm.DirectionNet(*orm.DLIB_FEATURE_SHAPE, hidden=args.hidden)
    opt = orm.make_optimizer(net)
    xt, yt = torch.from_numpy(x).view(-1, *orm.DLIB_FEATURE_SHAPE), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(args.seed)
    for _ in tqdm(range(args.direction_epochs), desc="stage 1 D_m", disable=args.quiet, file=sys.stderr):
        order = torch.randperm(len(yt), generator=gen)
        for i in range(0, len(order), 64):
            loss = orm.train_direction_step(net, opt, xt[order[i:i + 64]], yt[order[i:i + 64]])
    net.eval()
    with torch.no_grad():
        pred = net(torch.from_numpy(xe).view(-1, *orm.DLIB_FEATURE_SHAPE)).argmax(1).numpy()
        train_acc = float((net(xt).argmax(1) == yt).float().mean())
        panel_acc = float((net(torch.from_numpy(xp).view(-1, *orm.DLIB_FEATURE_SHAPE)).argmax(1).numpy() == yp).mean())
    cm = np.zeros((5, 5), np.int64)
    np.add.at(cm, (ye, pred), 1)
    metrics["stage1"] = {"samples": len(y), "epochs": args.direction_epochs, "final_loss": round(loss, 4),
                         "train_accuracy": round(train_acc, 4),
                         "heldout_accuracy": round(float((pred == ye).mean()), 4), "heldout_samples": len(ye),
                         "heldout_confusion": cm.tolist(), "heldout_panel_accuracy": round(panel_acc, 4),
                         "heldout_panel_samples": len(yp), "cpu_s": round(time.process_time() - c1, 1)}

    # stage 2: R_m on the 6-channel two-view stack, D_m frozen
    c2 = time.process_time()
    orm.freeze(net)
    reg = orm.RatioRegressor()
    opt = orm.make_optimizer(reg)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.ratio_steps)
    rng = np.random.default_rng(args.seed + 1)
    losses = []
    bar = tqdm(range(args.ratio_steps), desc="stage 2 R_m", disable=args.quiet, file=sys.stderr, dynamic_ncols=True)
    for _ in bar:
        v1, v2, t = ratio_batch(train_views, args.batch_size, rng, train_photos)
        losses.append(orm.train_ratio_step(reg, opt, orm.to_tensor(v1, orm.RATIO_INPUT_SIZE),
                                           orm.to_tensor(v2, orm.RATIO_INPUT_SIZE), torch.from_numpy(t)))
        sched.step()
        bar.set_postfix(l1=f"{np.mean(losses[-50:]):.3f}")
    reg.eval()
    remover = orm.OcclusionRemover(net, reg)
    erng = np.random.default_rng(args.seed + 1001)
    v1, v2, t = ratio_batch(heldout_views, args.eval_samples, erng, heldout_photos, p_true=1.0)
    r = remover.ratios(v1, v2)
    metrics["stage2"] = {"steps": args.ratio_steps, "batch_size": args.batch_size,
                         "final_l1": round(float(np.mean(losses[-50:])), 4),
                         "heldout_mae_true_direction": round(float(np.abs(r - t).mean()), 4),
                         "heldout_mae_predict_mean": round(float(np.abs(t.mean() - t).mean()), 4),
                         "heldout_samples": len(t), "cpu_s": round(time.process_time() - c2, 1)}

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = orm.model_meta(net, reg, orm.RATIO_INPUT_SIZE, features=embedder.name,
                          crop={"size": occ.CROP_SIZE, "scale": occ.CROP_SCALE},
                          trained_by="opendr_perception/tools/train_occlusion_removal.py")
    digest = save_weights(remover.state_dict(), out, meta)
    metrics["weights"] = {"file": out.name, "sha256": digest, "bytes": out.stat().st_size}
    metrics["parameters"] = {"direction_net": sum(p.numel() for p in net.parameters()),
                             "ratio_regressor": sum(p.numel() for p in reg.parameters())}
    metrics["total_wall_s"] = round(time.perf_counter() - t0, 1)
    metrics["total_cpu_s"] = round(time.process_time() - c0, 1)
    metrics_path = Path(args.metrics) if args.metrics else out.with_suffix(".json")
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    if args.manifest:
        Path(args.manifest).write_text(manifest_yaml(metrics, args.manifest_path))
    s1, s2 = metrics["stage1"], metrics["stage2"]
    print(f"weights  {out} ({out.stat().st_size} bytes, sha256 {digest})")
    print(f"data     {len(PEOPLE)} identities, {len(train_views)} training and {len(heldout_views)} held-out images")
    print(f"D_m      held-out accuracy {s1['heldout_accuracy']:.3f} on {s1['heldout_samples']} occluded faces "
          f"(train {s1['train_accuracy']:.3f}); panel-like occluders {s1['heldout_panel_accuracy']:.3f} on "
          f"{s1['heldout_panel_samples']}")
    print(f"R_m      held-out MAE {s2['heldout_mae_true_direction']:.3f} (predicting the mean: "
          f"{s2['heldout_mae_predict_mean']:.3f}) on {s2['heldout_samples']} steps")
    print(f"time     {metrics['total_wall_s']} s wall, {metrics['total_cpu_s']} s CPU")
    return 0


def manifest_yaml(metrics: dict, project_path: str) -> str:
    """A registry manifest (YAML) with the one entry for the weights the metrics describe."""
    import yaml

    s1, s2, d = metrics["stage1"], metrics["stage2"], metrics["data"]
    entry = {
        "project": project_path,
        "sha256": metrics["weights"]["sha256"],
        "license": "Apache-2.0",
        "origin": "trained by opendr-ros2 with tools/train_occlusion_removal.py",
        "description": ("Demo occlusion removal (D3.3 sec. 2.3): direction net D_m on the dlib ResNet descriptor "
                        "(5 classes up/bottom/right/left/none) + 6-channel ratio regressor R_m (small CNN, 64 px); "
                        "trained on 3 identities only"),
        "training_data": (
            f"{d['identities']} identities (the sample photos astronaut, grace_hopper, cameraman and face_sim "
            f"renders of them at pan {list(TRAIN_PAN_DEG)} deg, 1.0/1.6/2.4 m, camera -0.15/0/+0.15 m): "
            f"{d['train_images']} training images, augmented (lighting, mirror, blur, noise); occluders = "
            "superellipse crops of skimage coffee/rocket photos and plain colours, 20-60% of the face box "
            f"from one side (p_none 0.2; in stage 1 half of them panel-like: from the crop edge, full length); stage 1: {s1['samples']} occluded faces x {s1['epochs']} epochs; "
            f"stage 2: {s2['steps']} steps x {s2['batch_size']} emulated steps (impact 0.5-1.25x penetration)."),
        "scores": {
            "note": ("held-out IMAGES of the same 3 identities (renders at pan -30/0/30 deg) with unseen "
                     "occluders (skimage chelsea photo, plain colours); not LFW/CPLFW/AgeDB"),
            "direction_accuracy": s1["heldout_accuracy"],
            "direction_samples": s1["heldout_samples"],
            "direction_accuracy_panel_occluders": s1["heldout_panel_accuracy"],
            "direction_panel_samples": s1["heldout_panel_samples"],
            "ratio_mae": s2["heldout_mae_true_direction"],
            "ratio_mae_of_predicting_the_mean": s2["heldout_mae_predict_mean"],
            "ratio_samples": s2["heldout_samples"],
        },
        "features": "dlib_face_descriptor_resnet_v1",
        "labels": list(orm.DIRECTIONS),
        "parameters": metrics["parameters"],
        "card": "cards/occlusion_removal.md",
    }
    header = ("# Demonstration occlusion-removal weights (direction net + ratio regressor) trained here on the\n"
              "# project's 3 sample faces. Written by opendr_perception/tools/train_occlusion_removal.py --manifest;\n"
              "# see the model card.\n")
    return header + yaml.safe_dump({orm.REGISTRY_NAME: entry}, sort_keys=False, width=100, allow_unicode=False)


if __name__ == "__main__":
    sys.exit(main())
