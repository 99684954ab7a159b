"""Train the occlusion-removal demo models (OpenDR D3.3 section 2.3, appendix 8.12) on CPU, in minutes.

  opendr-train-occlusion-removal --output occlusion_removal.safetensors --manifest occlusion_removal.yaml

Data: the only face images here are the project's three sample photos (astronaut = Eileen Collins,
Grace Hopper, cameraman; :mod:`opendr_perception.core.samples`) and the face simulator's renders of
those faces (:mod:`opendr_perception.sim.face_world`) from many viewpoints: pan -40..40 deg around the
person, camera 1.0/1.6/2.4 m away, 0.15 m above/level/below the face. So there are THREE identities;
evaluation holds out IMAGES, not identities: the renders at pan -30/0/+30 deg are never trained on
(training uses the photos and pan -40/-20/-10/10/20/40), and the held-out occluders come from another
photo (simulator panels: other plain colours and the chelsea texture). Every face is cropped
around its BlazeFace box (``core.occlusion.face_crop``, 128 px) and
augmented per sample (lighting: gain 0.6-1.4, gamma 0.7-1.4, colour cast; mirror; blur; noise).

Occluders (no COCO here): ``core.occlusion.random_occluder`` crops of people-free photos cut by a
superellipse, and plain-colour panels; training uses skimage's coffee and rocket photos, held-out
sets its chelsea (cat) photo; both use random plain colours.

Stages (the seed's two-stage recipe):

  1. D_m (:class:`~opendr_perception.models.occlusion_removal.DirectionNet`, 5 classes) on the face
     crop (56 px) through its own small conv trunk to a 32x7x7 map and the seed's two-layer head.
     Deviation: the seed trains only the head on the FROZEN recogniser's 512x7x7 IR-50 map; dlib
     exposes only a pooled, nearly mirror-invariant 128-D descriptor, on which left and right were
     confused, so the trunk is trained with the head here. Data: faces occluded by the 2D generator
     (20-60% of the face box from one side, or none with p=0.2; half of the occluded ones panel-like)
     AND face_sim renders with a real panel between camera and face (:func:`sim_direction_set`,
     labelled from the rendered panel mask), what the node sees; every batch mirrored with p=0.5 and
     left/right swapped; cross-entropy, Adam 1e-3 with cosine decay, batch 64.
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
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from opendr_perception.core import occlusion as occ
from opendr_perception.models import occlusion_removal as orm
from opendr_perception.tools.training import add_output_arguments

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


def augment(image: np.ndarray, rng: np.random.Generator, mirror: bool = True) -> np.ndarray:
    """Lighting (gain, gamma, colour cast), mirror (unless ``mirror=False``: an occluded image, whose
    label would flip), blur and noise on a face crop (the box stays valid under the mirror: crops are
    centred on it)."""
    x = image.astype(np.float32) / 255.0
    x = np.clip(x * rng.uniform(0.6, 1.4) * rng.uniform(0.9, 1.1, 3), 0, 1) ** rng.uniform(0.7, 1.4)
    if mirror and rng.random() < 0.5:
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


def direction_set(views, n: int, seed: int, photos, desc: str, quiet: bool, p_panel: float = 0.0):
    """``n`` occluded face crops (2D generator, p_none 0.2; a :func:`panel_sample` instead with probability
    ``p_panel`` among the occluded ones) -> (crops (n, 128, 128, 3) uint8, labels (n,))."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    x, y = [], []
    for _ in tqdm(range(n), desc=desc, disable=quiet, file=sys.stderr, dynamic_ncols=True):
        view = views[int(rng.integers(len(views)))]
        _, s = occluded_sample(view, rng, photos)
        if s.direction != "none" and rng.random() < p_panel:
            _, s = panel_sample(view, rng, photos)
        x.append(s.image)
        y.append(s.label)
    return np.stack(x), np.asarray(y, np.int64)


MIRROR_LABEL = [occ.DIRECTIONS.index({"left": "right", "right": "left"}.get(d, d)) for d in occ.DIRECTIONS]


def mirror_batch(x, y, gen):
    """Stage-1 augmentation on tensors: each crop mirrored with p 0.5, its label left <-> right swapped
    (labels are image sides, so a mirrored image has the mirrored label)."""
    import torch
    flip = torch.rand(len(y), generator=gen) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    y = torch.where(flip, torch.as_tensor(MIRROR_LABEL)[y], y)
    return x, y


# simulator occlusions: panels between the camera and the face, rendered by face_sim
SIM_PANEL_COLOURS = {"train": ((0.2, 0.45, 0.3), (0.6, 0.2, 0.2), (0.15, 0.2, 0.5), (0.7, 0.7, 0.65), (0.3, 0.3, 0.3)),
                     "heldout": ((0.25, 0.5, 0.35), (0.5, 0.35, 0.15), (0.45, 0.45, 0.5))}
SIM_PANEL_TEXTURES = {"train": ("coffee", "rocket"), "heldout": ("chelsea",)}
SIM_FAR = {"vertical": (3.6, 3.6), "horizontal": (3.6, -3.6)}  # where a panel waits out of view


def _sim_world(identity: str, photo: str, colour, texture: str):
    """A drone world with one person and two panels (a vertical band for left/right and a horizontal one
    for up/bottom; ``texture`` "plain" uses ``colour``) parked out of view."""
    from opendr_perception.sim.face_world import FaceWorld
    from opendr_perception.sim.scene import Scene
    panel = {"texture": texture, "color": list(colour), "z": 1.0}
    return FaceWorld(Scene.from_dict({
        "room_size": 8.0, "camera": {"width": 640, "height": 480, "fov_y_deg": 60.0},
        "robot": {"kind": "drone", "x": -1.5, "y": 0.0, "z": 1.57, "yaw_deg": 0.0},
        "people": [{"name": identity, "photo": photo, "x": 0.0, "y": 0.0, "yaw_deg": 180.0, "height": 1.69}],
        "occluders": [{**panel, "name": "vertical", "x": SIM_FAR["vertical"][0], "y": SIM_FAR["vertical"][1],
                       "width": 0.12, "height": 0.5},
                      {**panel, "name": "horizontal", "x": SIM_FAR["horizontal"][0], "y": SIM_FAR["horizontal"][1],
                       "width": 0.5, "height": 0.12}]}))


def _sim_pans(split: str, rng: np.random.Generator) -> float:
    """Held-out: exactly HELDOUT_PAN_DEG; training: uniform in [-40, 40] deg at least 5 deg from them."""
    if split == "heldout":
        return float(HELDOUT_PAN_DEG[int(rng.integers(len(HELDOUT_PAN_DEG)))])
    while True:
        pan = float(rng.uniform(-40, 40))
        if min(abs(pan - h) for h in HELDOUT_PAN_DEG) >= 5:
            return pan


class SimPanels:
    """face_sim worlds for the simulator occlusion sets (a context manager: closes its worlds).

    :meth:`view` puts the camera at a random pose facing a random identity (pan: :func:`_sim_pans`,
    1.0-2.6 m, height -0.15..0.15 m) in a world with a random panel colour or texture of ``split``;
    :meth:`place` puts a panel between camera and face; :meth:`render_with` renders with it, then
    parks it; :meth:`face_box` is BlazeFace's box (threshold 0.3, as in the node) overlapping a
    reference box."""

    def __init__(self, split: str, detector=None):
        from opendr_perception.core import samples
        from opendr_perception.models.face_detection import FaceDetector
        self.split, self.detector = split, detector or FaceDetector("full_range", 0.3)
        self.worlds, self.tmp = {}, tempfile.TemporaryDirectory(prefix="occlusion_textures_")
        photos = samples.no_people_photos()
        self.textures = {}
        for name in SIM_PANEL_TEXTURES[split]:   # face_sim textures are image files: write the photos once
            self.textures[name] = str(Path(self.tmp.name) / f"{name}.png")
            cv2.imwrite(self.textures[name], photos[name])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for world in self.worlds.values():
            world.close()
        self.tmp.cleanup()

    def view(self, rng: np.random.Generator):
        """(world, distance, clean render, face box) or None when BlazeFace finds no face."""
        identity = list(PEOPLE)[int(rng.integers(len(PEOPLE)))]
        textures = ("plain",) * 2 + SIM_PANEL_TEXTURES[self.split]
        texture = textures[int(rng.integers(len(textures)))]
        colours = SIM_PANEL_COLOURS[self.split]
        colour = colours[int(rng.integers(len(colours)))] if texture == "plain" else (0.5, 0.5, 0.5)
        key = (identity, texture, colour)
        if key not in self.worlds:
            self.worlds[key] = _sim_world(identity, PEOPLE[identity], colour, self.textures.get(texture, texture))
        world = self.worlds[key]
        distance = float(rng.uniform(1.0, 2.6))
        pose = world.pose_facing(identity, distance, math.radians(_sim_pans(self.split, rng)))
        world.set_robot_pose(pose.x, pose.y, pose.z + float(rng.uniform(-0.15, 0.15)), pose.yaw)
        clean = world.render()
        faces = self.detector.detect(clean)
        if not faces:
            return None
        b = max(faces, key=lambda f: f.score).box
        return world, distance, clean, (b.x_min, b.y_min, b.x_max, b.y_max)

    @staticmethod
    def render_with(world, kind: str) -> np.ndarray:
        try:
            return world.render()
        finally:
            world.set_occluder_pose(kind, *SIM_FAR[kind], 1.0, 0.0)

    def face_box(self, image: np.ndarray, reference):
        """BlazeFace's largest box overlapping ``reference`` by IoU > 0.3 (x0, y0, x1, y1), or None (missed,
        or only a "face" found in the panel's texture)."""
        found = [f.box for f in self.detector.detect(image) if _overlap(f.box, reference) > 0.3]
        if not found:
            return None
        f = max(found, key=lambda b: b.area)
        return f.x_min, f.y_min, f.x_max, f.y_max


def panel_mask(image: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Where a render with the panel differs from the same view without it: the panel's mask."""
    return np.abs(image.astype(np.int16) - clean.astype(np.int16)).max(axis=2) > 12


def sim_direction_set(split: str, n: int, seed: int, desc: str = "sim occlusions", quiet: bool = True,
                      p_none: float = 0.15, detector=None):
    """``n`` face crops from simulator renders with a panel between camera and face, and their labels.

    Per sample (:class:`SimPanels`): a random identity, panel colour/texture and camera pose, and a
    panel (vertical band moved sideways for left/right, horizontal band moved up/down for up/bottom) at
    25-70% of the way from the face to the camera, placed so that it would cover 15-65% of the face
    seen from the camera (pinhole geometry), yaw jittered +-20 deg. The label comes from the render:
    the panel's mask (occluded render vs the same view with the panel out of sight) inside the CLEAN
    view's face box: under 8% covered = "none", over 85% = dropped, else the side (along the band's
    axis) of the mask's centroid. The crop is ``core.occlusion.face_crop`` around the box BlazeFace
    finds on the OCCLUDED render (what the node sees; see :meth:`SimPanels.face_box`; none = dropped).
    ``split`` "heldout" uses the held-out pans, colours and texture. Returns (crops (n, 128, 128, 3)
    uint8, labels (n,) int64)."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    crops, labels = [], []
    with SimPanels(split, detector) as sim, tqdm(total=n, desc=desc, disable=quiet, file=sys.stderr,
                                                  dynamic_ncols=True) as bar:
        while len(labels) < n:
            v = sim.view(rng)
            if v is None:
                continue
            world, distance, clean, box = v
            image = clean
            if rng.random() >= p_none:
                image = sim.render_with(world, _place_panel(world, distance, box, rng))
            label = _mask_label(panel_mask(image, clean), box, image is clean)
            found = None if label is None else sim.face_box(image, box)
            if found is None:
                continue
            crops.append(occ.face_crop(image, found)[0])
            labels.append(label)
            bar.update(1)
    return np.stack(crops), np.asarray(labels, np.int64)


def sim_ratio_set(split: str, n: int, seed: int, desc: str = "sim steps", quiet: bool = True,
                  step_range=(0.03, 0.08), detector=None):
    """``n`` stage-2 pairs from the simulator: a vertical panel covering the face from the image's left or
    right (as in :func:`sim_direction_set`), the camera then moves a step m (``step_range`` metres) to
    the opposite side (``core.occlusion.CAMERA_MOVE``). Target, like the 3D emulator's: with the panel's
    penetration into the face box D0 before and D1 after the step (rendered masks, each view's own
    clean face box), the step's impact is s = D0 - D1 and the remaining move is r = D1 / s steps,
    clipped to [0, 1] (pairs where the step moved the panel less than a pixel are dropped). Views:
    face crops around the boxes BlazeFace finds on the occluded renders (what the node sees).
    Returns (view1 crops, view2 crops, targets)."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    v1, v2, t = [], [], []
    with SimPanels(split, detector) as sim, tqdm(total=n, desc=desc, disable=quiet, file=sys.stderr,
                                                  dynamic_ncols=True) as bar:
        while len(t) < n:
            v = sim.view(rng)
            if v is None:
                continue
            world, distance, clean1, box1 = v
            kind = _place_panel(world, distance, box1, rng, kind="vertical")
            image1 = world.render()
            label = _mask_label(panel_mask(image1, clean1), box1, False)
            side = None if label is None else occ.DIRECTIONS[label]
            if side not in ("left", "right"):
                world.set_occluder_pose(kind, *SIM_FAR[kind], 1.0, 0.0)
                continue
            position, R = world.camera_pose()
            pose = world.robot_pose
            move = float(rng.uniform(*step_range)) * (1.0 if side == "left" else -1.0) * R[:, 0]
            world.set_robot_pose(pose.x + move[0], pose.y + move[1], pose.z, pose.yaw)
            image2 = sim.render_with(world, kind)
            clean2 = world.render()
            faces2 = sim.detector.detect(clean2)
            if not faces2:
                continue
            b = max(faces2, key=lambda f: f.score).box
            box2 = (b.x_min, b.y_min, b.x_max, b.y_max)
            d0 = occ.penetration(panel_mask(image1, clean1), _int_box(box1), side)
            d1 = occ.penetration(panel_mask(image2, clean2), _int_box(box2), side)
            crop1, crop2 = sim.face_box(image1, box1), sim.face_box(image2, box2)
            if d0 - d1 < 1 or crop1 is None or crop2 is None:
                continue
            v1.append(occ.face_crop(image1, crop1)[0])
            v2.append(occ.face_crop(image2, crop2)[0])
            t.append(min(1.0, d1 / (d0 - d1)))
            bar.update(1)
    return v1, v2, np.asarray(t, np.float32)


def _place_panel(world, depth: float, box, rng: np.random.Generator, kind: Optional[str] = None) -> str:
    """Put one of the world's two panels (``kind``, default: vertical with p 0.6, else horizontal) between
    the camera and the face ``depth`` m ahead of it (level camera facing the face: ``pose_facing``);
    returns the panel's name (:meth:`SimPanels.render_with` renders and parks it)."""
    kind = kind or ("vertical" if rng.random() < 0.6 else "horizontal")
    position, R = world.camera_pose()          # R: world <- optical (x right, y down, z forward)
    K = world.camera_matrix()
    t = float(rng.uniform(0.25, 0.7))          # fraction of the way from the face to the camera
    d_panel = depth * (1 - t)
    # face box edges in the optical frame at the face depth, then seen at the panel's depth
    x0, y0, x1, y1 = box
    axis, lo, hi, f, c = (0, x0, x1, K[0, 0], K[0, 2]) if kind == "vertical" else (1, y0, y1, K[1, 1], K[1, 2])
    lo_m, hi_m = (lo - c) / f * d_panel, (hi - c) / f * d_panel
    half = 0.12 / 2                            # the band's narrow side
    cover = float(rng.uniform(0.15, 0.65))
    if rng.random() < 0.5:     # from the low side (image left / top)
        edge = lo_m + cover * (hi_m - lo_m)
        offset = edge - half
    else:
        edge = hi_m - cover * (hi_m - lo_m)
        offset = edge + half
    other = float(rng.uniform(-0.05, 0.05))   # jitter along the band
    local = np.zeros(3)
    local[axis], local[1 - axis], local[2] = offset, other, d_panel
    centre = position + R @ local
    yaw = math.atan2(-R[1, 2], -R[0, 2]) + math.radians(float(rng.uniform(-20, 20)))  # front faces the camera
    world.set_occluder_pose(kind, float(centre[0]), float(centre[1]), float(centre[2]), yaw)
    return kind


def _int_box(box) -> tuple[int, int, int, int]:
    return tuple(int(round(v)) for v in box)


def _overlap(b, box) -> float:
    """Intersection over union of a BoundingBox and an (x0, y0, x1, y1) box."""
    w = max(0.0, min(b.x_max, box[2]) - max(b.x_min, box[0]))
    h = max(0.0, min(b.y_max, box[3]) - max(b.y_min, box[1]))
    union = b.area + (box[2] - box[0]) * (box[3] - box[1]) - w * h
    return w * h / union if union > 0 else 0.0


def _mask_label(mask: np.ndarray, box, clean: bool):
    """Label of a sim sample from the panel's mask inside the clean face box (see :func:`sim_direction_set`)."""
    h, w = mask.shape
    x0, y0 = max(0, int(round(box[0]))), max(0, int(round(box[1])))
    x1, y1 = min(w, int(round(box[2]))), min(h, int(round(box[3])))
    sub = mask[y0:y1, x0:x1]
    if sub.size == 0:
        return None
    coverage = float(sub.mean())
    if clean or coverage < 0.08:
        return occ.DIRECTIONS.index("none")
    if coverage > 0.85:
        return None
    ys, xs = np.nonzero(sub)
    dx, dy = xs.mean() / sub.shape[1] - 0.5, ys.mean() / sub.shape[0] - 0.5
    if abs(dx) >= abs(dy):
        side = "left" if dx < 0 else "right"
    else:
        side = "up" if dy < 0 else "bottom"
    return occ.DIRECTIONS.index(side)


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
    add_output_arguments(p, "occlusion_removal")
    p.add_argument("--seed", type=int, default=0, help="training seed (default: 0); held-out sets use seed+1000")
    p.add_argument("--direction-samples", type=int, default=3000, help="stage-1 occluded faces (default: %(default)s)")
    p.add_argument("--direction-epochs", type=int, default=15, help="stage-1 epochs (default: %(default)s)")
    p.add_argument("--sim-samples", type=int, default=1200,
                   help="stage-1 simulator renders with a panel occluder (default: %(default)s)")
    p.add_argument("--panel-fraction", type=float, default=0.5,
                   help="share of stage-1 occluders that are panel-like (default: %(default)s)")
    p.add_argument("--hidden", type=int, default=128, help="D_m hidden units (default: %(default)s)")
    p.add_argument("--ratio-steps", type=int, default=800, help="stage-2 steps (default: %(default)s)")
    p.add_argument("--sim-ratio-samples", type=int, default=800,
                   help="stage-2 simulator step pairs (default: %(default)s)")
    p.add_argument("--sim-ratio-fraction", type=float, default=0.25,
                   help="share of each stage-2 batch drawn from the simulator pairs (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32, help="stage-2 batch (default: %(default)s)")
    p.add_argument("--eval-samples", type=int, default=400, help="held-out samples per stage (default: %(default)s)")
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

    from opendr_perception.tools.training import save_weights

    torch.manual_seed(args.seed)
    t0, c0 = time.perf_counter(), time.process_time()
    train_views, heldout_views = face_views("train"), face_views("heldout")
    train_photos, heldout_photos = occluder_photos("train"), occluder_photos("heldout")
    metrics = {"entry": orm.REGISTRY_NAME, "args": vars(args), "torch": torch.__version__,
               "python": platform.python_version(),
               "data": {"identities": len(PEOPLE), "train_images": len(train_views),
                        "heldout_images": len(heldout_views)}}

    # stage 1: D_m (conv trunk + the seed's head) on face crops: 2D generator + simulator panels
    c1 = time.process_time()
    x, y = direction_set(train_views, args.direction_samples, args.seed, train_photos, "stage 1 data (2D)",
                         args.quiet, args.panel_fraction)
    xs, ys = sim_direction_set("train", args.sim_samples, args.seed + 3, "stage 1 data (simulator)", args.quiet)
    arng = np.random.default_rng(args.seed + 4)
    xs = np.stack([augment(im, arng, mirror=False) for im in xs])
    xe, ye = direction_set(heldout_views, args.eval_samples, args.seed + 1000, heldout_photos,
                           "stage 1 held-out", args.quiet)
    xp, yp = direction_set(heldout_views, args.eval_samples // 2, args.seed + 2000, heldout_photos,
                           "stage 1 held-out panels", args.quiet, p_panel=1.0)
    xse, yse = sim_direction_set("heldout", args.eval_samples // 2, args.seed + 3000, "stage 1 held-out simulator",
                                 args.quiet)
    size = orm.DIRECTION_INPUT_SIZE
    net = orm.DirectionNet(input_size=size, hidden=args.hidden)
    opt = orm.make_optimizer(net)
    xt = orm.to_tensor(np.concatenate([x, xs]), size)
    yt = torch.from_numpy(np.concatenate([y, ys]))
    gen = torch.Generator().manual_seed(args.seed)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.direction_epochs)
    bar = tqdm(range(args.direction_epochs), desc="stage 1 D_m", disable=args.quiet, file=sys.stderr)
    for _ in bar:
        order = torch.randperm(len(yt), generator=gen)
        for i in range(0, len(order), 64):
            loss = orm.train_direction_step(net, opt, *mirror_batch(xt[order[i:i + 64]], yt[order[i:i + 64]], gen))
        sched.step()
        bar.set_postfix(loss=f"{loss:.3f}")
    net.eval()

    def predict(images):
        with torch.no_grad():
            return torch.cat([net(orm.to_tensor(images[i:i + 256], size)).argmax(1)
                              for i in range(0, len(images), 256)]).numpy()

    with torch.no_grad():
        train_acc = float(torch.cat([(net(xt[i:i + 256]).argmax(1) == yt[i:i + 256])
                                     for i in range(0, len(yt), 256)]).float().mean())
    pred, pred_sim = predict(xe), predict(xse)
    panel_acc = float((predict(xp) == yp).mean())
    cm, cm_sim = np.zeros((5, 5), np.int64), np.zeros((5, 5), np.int64)
    np.add.at(cm, (ye, pred), 1)
    np.add.at(cm_sim, (yse, pred_sim), 1)
    metrics["stage1"] = {"samples": len(y), "sim_samples": len(ys), "epochs": args.direction_epochs,
                         "final_loss": round(loss, 4), "train_accuracy": round(train_acc, 4),
                         "heldout_accuracy": round(float((pred == ye).mean()), 4), "heldout_samples": len(ye),
                         "heldout_confusion": cm.tolist(), "heldout_panel_accuracy": round(panel_acc, 4),
                         "heldout_panel_samples": len(yp),
                         "heldout_sim_accuracy": round(float((pred_sim == yse).mean()), 4),
                         "heldout_sim_samples": len(yse), "heldout_sim_confusion": cm_sim.tolist(),
                         "cpu_s": round(time.process_time() - c1, 1)}

    # stage 2: R_m on the 6-channel two-view stack, D_m frozen
    c2 = time.process_time()
    orm.freeze(net)
    reg = orm.RatioRegressor()
    opt = orm.make_optimizer(reg)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.ratio_steps)
    rng = np.random.default_rng(args.seed + 1)
    s1, s2, st = sim_ratio_set("train", args.sim_ratio_samples, args.seed + 5, "stage 2 data (simulator)", args.quiet)
    s1, s2 = [augment(im, rng, mirror=False) for im in s1], [augment(im, rng, mirror=False) for im in s2]
    n_sim = int(round(args.batch_size * args.sim_ratio_fraction)) if len(st) else 0
    losses = []
    bar = tqdm(range(args.ratio_steps), desc="stage 2 R_m", disable=args.quiet, file=sys.stderr, dynamic_ncols=True)
    for _ in bar:
        v1, v2, t = ratio_batch(train_views, args.batch_size - n_sim, rng, train_photos)
        pick = rng.integers(len(st), size=n_sim) if n_sim else []
        v1, v2 = v1 + [s1[i] for i in pick], v2 + [s2[i] for i in pick]
        t = np.concatenate([t, st[pick]]) if n_sim else t
        losses.append(orm.train_ratio_step(reg, opt, orm.to_tensor(v1, orm.RATIO_INPUT_SIZE),
                                           orm.to_tensor(v2, orm.RATIO_INPUT_SIZE), torch.from_numpy(t)))
        sched.step()
        bar.set_postfix(l1=f"{np.mean(losses[-50:]):.3f}")
    reg.eval()
    remover = orm.OcclusionRemover(net, reg)
    erng = np.random.default_rng(args.seed + 1001)
    v1, v2, t = ratio_batch(heldout_views, args.eval_samples, erng, heldout_photos, p_true=1.0)
    r = remover.ratios(v1, v2)
    sv1, sv2, sts = sim_ratio_set("heldout", args.eval_samples // 4, args.seed + 3001, "stage 2 held-out simulator",
                                  args.quiet)
    rs = remover.ratios(sv1, sv2)
    metrics["stage2"] = {"steps": args.ratio_steps, "batch_size": args.batch_size, "sim_samples": len(st),
                         "sim_per_batch": n_sim,
                         "heldout_sim_mae": round(float(np.abs(rs - sts).mean()), 4),
                         "heldout_sim_mae_predict_mean": round(float(np.abs(sts.mean() - sts).mean()), 4),
                         "heldout_sim_samples": len(sts),
                         "final_l1": round(float(np.mean(losses[-50:])), 4),
                         "heldout_mae_true_direction": round(float(np.abs(r - t).mean()), 4),
                         "heldout_mae_predict_mean": round(float(np.abs(t.mean() - t).mean()), 4),
                         "heldout_samples": len(t), "cpu_s": round(time.process_time() - c2, 1)}

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = orm.model_meta(net, reg, orm.RATIO_INPUT_SIZE, features="face_crop",
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
    print(f"         simulator panels {s1['heldout_sim_accuracy']:.3f} on {s1['heldout_sim_samples']}")
    print(f"R_m      held-out MAE {s2['heldout_mae_true_direction']:.3f} (predicting the mean: "
          f"{s2['heldout_mae_predict_mean']:.3f}) on {s2['heldout_samples']} steps; simulator steps "
          f"{s2['heldout_sim_mae']:.3f} (mean: {s2['heldout_sim_mae_predict_mean']:.3f}) on "
          f"{s2['heldout_sim_samples']}")
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
        "description": ("Demo occlusion removal (D3.3 sec. 2.3): direction net D_m (conv trunk to a 7x7 map + "
                        "the seed's two-layer head, on the 56 px face crop; 5 classes up/bottom/right/left/none) + "
                        "6-channel ratio regressor R_m (small CNN, 64 px); trained on 3 identities only"),
        "training_data": (
            f"{d['identities']} identities (the sample photos astronaut, grace_hopper, cameraman and face_sim "
            f"renders of them at pan {list(TRAIN_PAN_DEG)} deg, 1.0/1.6/2.4 m, camera -0.15/0/+0.15 m): "
            f"{d['train_images']} training images, augmented (lighting, mirror, blur, noise); occluders = "
            "superellipse crops of skimage coffee/rocket photos and plain colours, 20-60% of the face box "
            f"from one side (p_none 0.2; in stage 1 half of them panel-like: from the crop edge, full length); "
            f"stage 1: {s1['samples']} 2D-generator faces + {s1['sim_samples']} face_sim renders with a panel "
            "between camera and face (pan uniform -40..40 deg at least 5 deg from the held-out pans, 1.0-2.6 m; "
            "vertical/horizontal band, plain colours or coffee/rocket texture, 25-70% of "
            "the way to the camera, labelled from the rendered panel mask; p_none 0.15), mirrored with "
            f"left/right swapped, {s1['epochs']} epochs; "
            f"stage 2 batches: {s2['sim_per_batch']} of {s2['batch_size']} from {s2['sim_samples']} face_sim step "
            "pairs (vertical panel, camera step 0.03-0.08 m away from it, target from the rendered masks), "
            "the rest from the 3D emulator; "
            f"{s2['steps']} steps (emulator impact 0.5-1.25x penetration)."),
        "scores": {
            "note": ("held-out IMAGES of the same 3 identities (renders at pan -30/0/30 deg) with unseen "
                     "occluders (skimage chelsea photo, plain colours; simulator panels in held-out colours or "
                     "the chelsea texture); not LFW/CPLFW/AgeDB"),
            "direction_accuracy": s1["heldout_accuracy"],
            "direction_samples": s1["heldout_samples"],
            "direction_accuracy_panel_occluders": s1["heldout_panel_accuracy"],
            "direction_panel_samples": s1["heldout_panel_samples"],
            "direction_accuracy_simulator_panels": s1["heldout_sim_accuracy"],
            "direction_simulator_samples": s1["heldout_sim_samples"],
            "direction_simulator_confusion": json.dumps(s1["heldout_sim_confusion"]),  # rows true, cols predicted
            "ratio_mae": s2["heldout_mae_true_direction"],
            "ratio_mae_of_predicting_the_mean": s2["heldout_mae_predict_mean"],
            "ratio_samples": s2["heldout_samples"],
            "ratio_mae_simulator_steps": s2["heldout_sim_mae"],
            "ratio_mae_simulator_of_predicting_the_mean": s2["heldout_sim_mae_predict_mean"],
            "ratio_simulator_samples": s2["heldout_sim_samples"],
        },
        "features": "face_crop (D_m input: core.occlusion.face_crop resized to 56 px)",
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
