"""MediaPipe Face Mesh (468 3D face landmarks) on a BlazeFace detection, ROS-free.

Pipeline (MediaPipe's ``face_detection_front_detection_to_roi`` and
``face_landmark_cpu`` graphs):

1. :func:`face_detection_to_roi` -- a rotated square around the BlazeFace box:
   centre = box centre, side = the box's long side x 1.5, rotated so that the
   line right eye -> left eye (BlazeFace keypoints 0 and 1) is horizontal in
   the crop (target angle 0).
2. The ROI is warped to 192x192, RGB in [0, 1], and ``face_landmark.tflite``
   (registry name ``face_mesh_landmark``) returns 468 x (x, y, z) in crop
   pixels and a face flag (logit; presence = sigmoid).
3. x, y go back to image pixels through the ROI's affine map; z is scaled by
   the same factor (ROI side / 192), so z is in image pixels too: relative
   depth, smaller = nearer the camera, origin roughly at the head's centre
   (MediaPipe's documentation), "the same scale as x".
4. Optionally (``refine_roi``, on by default) a second pass on the ROI that
   MediaPipe derives from landmarks (``face_landmarks_to_roi``: landmarks 33
   and 263 set the rotation, their bounding box x 1.5 the size), which is what
   MediaPipe's tracking uses from the second frame on. It centres the face
   better in the crop than the detection box does.

Mesh topology (:func:`mesh_topology`): the triangles are derived from
MediaPipe's ``FACEMESH_TESSELATION`` edge list, read from
``mediapipe/python/solutions/face_mesh_connections.py`` BY FILE PATH (a pure
Python module with no imports; the ``mediapipe`` package itself is never
imported): triangles = the 3-cliques of the edge graph, minus the two cliques
whose three edges all border three triangles (spurious cliques at the nostrils,
not faces of the mesh), i.e. 852 triangles. The tessellation leaves the eyes
and the mouth open; those three holes are closed with fans from a corner (eye
outer corners 33/263, mouth corner 78) so that a textured render has no holes.
Triangles are oriented consistently (shared edges traversed in opposite
directions). The left/right mirror map of the vertices (``mirror[i]`` = the
vertex symmetric to ``i``; midline vertices map to themselves) is derived from
the topology too: starting from the forehead-top vertex 10 (midline) and its
two face-oval neighbours 109/338, each mapped triangle fixes the mirror of the
triangles across its edges.

Index facts used (MediaPipe's canonical face model): 1 = nose tip, 10 =
forehead top, 152 = chin, 33 / 263 = outer corners of the person's right /
left eye (the person's right eye is on the IMAGE LEFT of a frontal face).
"""
from __future__ import annotations

import collections
import functools
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..core import registry
from ..core.detection_ops import check_bgr_image, to_model_input
from ..core.tflite import TFLiteModel
from ..core.types import BoundingBox, Detection
from .pose_estimation import RotatedRoi, warp_roi

NUM_LANDMARKS = 468
NOSE_TIP = 1
FOREHEAD_TOP = 10
CHIN = 152
RIGHT_EYE_OUTER = 33  # the person's right eye: image left of a frontal face
LEFT_EYE_OUTER = 263
MOUTH_INNER_CORNER = 78
_MIRROR_SEED = (FOREHEAD_TOP, 109, 338)  # midline vertex and its two face-oval neighbours (mirrors)


# ------------------------------------------------------------------------------------
# Mesh topology
# ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class MeshTopology:
    """Triangles and left/right symmetry of the 468-vertex face mesh.

    Attributes:
        triangles: (F, 3) int32 vertex indices, consistently oriented (all
            front faces have the same winding in a view; which one is decided
            per view by :func:`front_facing_sign`).
        is_hole_fill: (F,) bool, True for the eye/mouth hole fills.
        mirror: (468,) int32, the vertex symmetric to each vertex.
        triangle_mirror: (F,) int32, the triangle made of the mirrored
            vertices, or -1 if the mesh has none (some hole fills).
        face_oval: (K,) int32, the outer boundary loop of the mesh, in order.
        source: how the triangles were obtained (for documentation/logs).
    """

    triangles: np.ndarray
    is_hole_fill: np.ndarray
    mirror: np.ndarray
    triangle_mirror: np.ndarray
    face_oval: np.ndarray
    source: str


def _connections_file() -> Path:
    """MediaPipe's ``face_mesh_connections.py`` inside the installed wheel (not imported as a package)."""
    spec = importlib.util.find_spec("mediapipe")  # finds the package without executing its __init__
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        path = Path(root) / "python" / "solutions" / "face_mesh_connections.py"
        if path.is_file():
            return path
    raise RuntimeError("the face mesh tessellation needs mediapipe's python/solutions/face_mesh_connections.py "
                       "(the mediapipe wheel, installed with --no-deps as scripts/setup.sh does)")


def _load_tessellation_edges() -> list[tuple[int, int]]:
    path = _connections_file()
    spec = importlib.util.spec_from_file_location("_opendr_face_mesh_connections", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # a plain module of frozensets of index pairs, no imports
    return sorted({(min(a, b), max(a, b)) for a, b in module.FACEMESH_TESSELATION if a != b})


def _cliques(edges: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    adjacency = collections.defaultdict(set)
    for a, b in edges:
        adjacency[a].add(b)
        adjacency[b].add(a)
    triangles = {tuple(sorted((a, b, c))) for a, b in edges for c in adjacency[a] & adjacency[b]}
    # A clique all of whose edges border 3 cliques is not a face of the surface (it closes a
    # "tetrahedron" of real faces); drop those.
    count = collections.Counter(e for t in triangles for e in ((t[0], t[1]), (t[0], t[2]), (t[1], t[2])))
    faces = [t for t in triangles if not all(count[e] >= 3 for e in ((t[0], t[1]), (t[0], t[2]), (t[1], t[2])))]
    return sorted(faces)


def _edges_of(t) -> tuple[tuple[int, int], ...]:
    return ((t[0], t[1]), (t[1], t[2]), (t[2], t[0]))


def _edge_map(triangles) -> dict[tuple[int, int], list[int]]:
    edge_to_tri = collections.defaultdict(list)
    for i, t in enumerate(triangles):
        for a, b in _edges_of(t):
            edge_to_tri[(min(a, b), max(a, b))].append(i)
    return edge_to_tri


def _orient(triangles: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Orient the triangles of a manifold mesh consistently (BFS over shared edges)."""
    edge_to_tri = _edge_map(triangles)
    oriented: list[Optional[tuple[int, int, int]]] = [None] * len(triangles)
    for start in range(len(triangles)):
        if oriented[start] is not None:
            continue
        oriented[start] = tuple(triangles[start])
        queue = collections.deque([start])
        while queue:
            i = queue.popleft()
            for a, b in _edges_of(oriented[i]):
                for j in edge_to_tri[(min(a, b), max(a, b))]:
                    if oriented[j] is not None:
                        continue
                    t = triangles[j]
                    c = next(v for v in t if v != a and v != b)
                    oriented[j] = (b, a, c)  # the neighbour runs the shared edge the other way
                    queue.append(j)
    return [tuple(int(v) for v in t) for t in oriented]


def _boundary_loops(triangles) -> list[list[int]]:
    """Boundary loops (edges used by one triangle), each as an ordered vertex list."""
    edge_to_tri = _edge_map(triangles)
    neighbours = collections.defaultdict(list)
    for (a, b), tris in edge_to_tri.items():
        if len(tris) == 1:
            neighbours[a].append(b)
            neighbours[b].append(a)
    loops, seen = [], set()
    for start in sorted(neighbours):
        if start in seen:
            continue
        loop, previous, current = [start], None, start
        seen.add(start)
        while True:
            nxt = [n for n in neighbours[current] if n != previous and n not in seen]
            if not nxt:
                break
            previous, current = current, nxt[0]
            seen.add(current)
            loop.append(current)
        loops.append(loop)
    return loops


def _mirror_map(triangles: list[tuple[int, int, int]]) -> np.ndarray:
    """The left/right vertex symmetry, propagated over the mesh from a seed triangle pair."""
    edge_to_tri = _edge_map(triangles)
    mirror = -np.ones(NUM_LANDMARKS, dtype=np.int64)
    mid, left, right = _MIRROR_SEED
    mirror[mid], mirror[left], mirror[right] = mid, right, left
    seed = edge_to_tri[(min(mid, left), max(mid, left))]
    seed_mirror = edge_to_tri[(min(mid, right), max(mid, right))]
    if len(seed) != 1 or len(seed_mirror) != 1:
        raise RuntimeError("face mesh tessellation: the forehead seed edges are not on the boundary")
    third = next(v for v in triangles[seed[0]] if v not in (mid, left))
    third_mirror = next(v for v in triangles[seed_mirror[0]] if v not in (mid, right))
    mirror[third], mirror[third_mirror] = third_mirror, third
    pairs = collections.deque([(seed[0], seed_mirror[0])])
    done = {seed[0]}
    while pairs:
        i, j = pairs.popleft()
        for a, b in _edges_of(triangles[i]):
            ma, mb = int(mirror[a]), int(mirror[b])
            across = [k for k in edge_to_tri[(min(a, b), max(a, b))] if k != i]
            across_mirror = [k for k in edge_to_tri[(min(ma, mb), max(ma, mb))] if k != j]
            if len(across) != 1 or len(across_mirror) != 1:
                continue  # a boundary edge (or its mirror) ends the propagation there
            k, km = across[0], across_mirror[0]
            x = next(v for v in triangles[k] if v not in (a, b))
            y = next(v for v in triangles[km] if v not in (ma, mb))
            if mirror[x] == -1 and mirror[y] in (-1, x):
                mirror[x], mirror[y] = y, x
            if k not in done:
                done.add(k)
                pairs.append((k, km))
    if (mirror < 0).any() or not np.array_equal(mirror[mirror], np.arange(NUM_LANDMARKS)):
        raise RuntimeError("face mesh tessellation: the left/right symmetry could not be derived")
    return mirror.astype(np.int32)


def _fan(loop: list[int], apex: int) -> list[tuple[int, int, int]]:
    k = loop.index(apex)
    ring = loop[k:] + loop[:k]
    return [(ring[0], ring[i], ring[i + 1]) for i in range(1, len(ring) - 1)]


@functools.lru_cache(maxsize=1)
def mesh_topology() -> MeshTopology:
    """The face mesh's triangles and symmetry (derived once, cached; see the module docstring)."""
    base = _cliques(_load_tessellation_edges())
    mirror = _mirror_map(base)
    loops = _boundary_loops(base)
    oval = max(loops, key=len)
    fills = []
    for loop in loops:
        if loop is oval:
            continue
        apex = next((v for v in (RIGHT_EYE_OUTER, LEFT_EYE_OUTER, MOUTH_INNER_CORNER) if v in loop), loop[0])
        fills.extend(_fan(loop, apex))
    oriented = _orient(base + fills)
    triangles = np.array(oriented, dtype=np.int32)
    is_fill = np.zeros(len(triangles), dtype=bool)
    is_fill[len(base):] = True
    index = {tuple(sorted(t)): i for i, t in enumerate(oriented)}
    triangle_mirror = np.array([index.get(tuple(sorted(mirror[list(t)])), -1) for t in oriented], dtype=np.int32)
    return MeshTopology(triangles=triangles, is_hole_fill=is_fill, mirror=mirror,
                        triangle_mirror=triangle_mirror, face_oval=np.array(oval, dtype=np.int32),
                        source="3-cliques of mediapipe FACEMESH_TESSELATION (+ eye/mouth hole fans)")


def front_facing_sign(xy: np.ndarray, triangles: np.ndarray) -> float:
    """+1 or -1: the sign of the 2D signed area (y down) that front faces have in this view.

    Most of a detected face's surface faces the camera, so the total signed
    area of the projected mesh has the sign of the front faces.
    """
    return 1.0 if signed_areas(xy, triangles).sum() >= 0 else -1.0


def signed_areas(xy: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(F,) signed areas of the projected triangles (pixels^2)."""
    a, b, c = xy[triangles[:, 0]], xy[triangles[:, 1]], xy[triangles[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


# ------------------------------------------------------------------------------------
# Regions of interest
# ------------------------------------------------------------------------------------


def _normalize_angle(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def face_detection_to_roi(face: Detection, scale: float = 1.5) -> RotatedRoi:
    """MediaPipe's ``face_detection_front_detection_to_roi`` for one BlazeFace detection.

    Centre = box centre; side = long side of the box x ``scale``; rotation =
    ``-atan2(-(y1 - y0), x1 - x0)`` for the right eye (keypoint 0) and left eye
    (keypoint 1), so that the eyes are level in the crop. A detection without
    landmarks gets an upright ROI.
    """
    if not isinstance(face, Detection):
        raise ValueError(f"face must be a Detection, got {type(face).__name__}")
    box = face.box
    values = np.array([box.x_min, box.y_min, box.x_max, box.y_max], dtype=np.float64)
    if not np.isfinite(values).all() or box.width <= 0 or box.height <= 0:
        raise ValueError(f"face box must be finite with a positive size, got {box}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    rotation = 0.0
    if face.landmarks is not None:
        kp = np.asarray(face.landmarks, dtype=np.float64)
        if kp.ndim != 2 or kp.shape[0] < 2 or kp.shape[1] != 2 or not np.isfinite(kp[:2]).all():
            raise ValueError(f"face landmarks must be (K>=2, 2) finite pixels with the eyes first, got {kp.shape}")
        (x0, y0), (x1, y1) = kp[0], kp[1]
        rotation = _normalize_angle(-math.atan2(-(y1 - y0), x1 - x0))
    cx, cy = box.center
    return RotatedRoi(float(cx), float(cy), float(max(box.width, box.height) * scale), float(rotation))


def landmarks_to_roi(landmarks: np.ndarray, scale: float = 1.5) -> RotatedRoi:
    """MediaPipe's ``face_landmarks_to_roi``: rotation from landmarks 33 -> 263 (eye corners),
    the landmarks' bounding box in that rotated frame, square long side x ``scale``."""
    xy = np.asarray(landmarks, dtype=np.float64)[:, :2]
    (x0, y0), (x1, y1) = xy[RIGHT_EYE_OUTER], xy[LEFT_EYE_OUTER]
    rotation = _normalize_angle(-math.atan2(-(y1 - y0), x1 - x0))
    c, s = math.cos(rotation), math.sin(rotation)
    # coordinates in the rotated frame (crop x axis = (c, s), y axis = (-s, c))
    u = xy[:, 0] * c + xy[:, 1] * s
    v = -xy[:, 0] * s + xy[:, 1] * c
    uc, vc = 0.5 * (u.min() + u.max()), 0.5 * (v.min() + v.max())
    side = max(u.max() - u.min(), v.max() - v.min()) * scale
    return RotatedRoi(float(uc * c - vc * s), float(uc * s + vc * c), float(side), float(rotation))


# ------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # eq=False: it holds arrays
class FaceMeshResult:
    """The fitted mesh of one face.

    ``landmarks`` (468, 3) float64: x, y in image pixels and z, the relative
    depth in the same pixel scale (smaller = nearer the camera). ``presence``
    the face probability of the landmark model (sigmoid of its face flag).
    ``roi`` the crop the landmarks were read from.
    """

    landmarks: np.ndarray
    presence: float
    roi: RotatedRoi

    @property
    def xy(self) -> np.ndarray:
        return self.landmarks[:, :2]

    @property
    def box(self) -> BoundingBox:
        """Bounding box of the 468 landmarks (pixels)."""
        lo, hi = self.xy.min(axis=0), self.xy.max(axis=0)
        return BoundingBox(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-80.0, min(80.0, float(x)))))


class FaceMesh:
    """MediaPipe's face landmark model (468 3D points) on a face detection.

    Args:
        num_threads: CPU threads for the interpreter.
        roi_scale: ROI side / face size (MediaPipe: 1.5).
        refine_roi: run a second pass on the ROI derived from the first pass's
            landmarks (MediaPipe's tracking ROI); costs one more inference.
    """

    def __init__(self, num_threads: int = 1, roi_scale: float = 1.5, refine_roi: bool = True):
        if not roi_scale > 0:
            raise ValueError(f"roi_scale must be > 0, got {roi_scale}")
        self.model = TFLiteModel(registry.resolve("face_mesh_landmark"), num_threads=num_threads)
        if self.model.output_shapes != [(1, 1, 1, NUM_LANDMARKS * 3), (1, 1, 1, 1)]:
            raise RuntimeError(f"face landmark model: unexpected outputs {self.model.output_shapes}")
        self.crop_size = self.model.input_size[0]
        self.roi_scale = float(roi_scale)
        self.refine_roi = bool(refine_roi)

    @property
    def topology(self) -> MeshTopology:
        return mesh_topology()

    @property
    def triangles(self) -> np.ndarray:
        """(F, 3) triangles of the mesh (see :func:`mesh_topology`)."""
        return mesh_topology().triangles

    def estimate_roi(self, image_bgr: np.ndarray, roi: RotatedRoi) -> FaceMeshResult:
        """Landmarks of the face inside a rotated ROI (MediaPipe's ``face_landmark_cpu``)."""
        check_bgr_image(image_bgr, "image_bgr")
        if not isinstance(roi, RotatedRoi):
            raise ValueError(f"roi must be a RotatedRoi, got {type(roi).__name__}")
        if not (math.isfinite(roi.size) and roi.size > 1.0):
            raise ValueError(f"the ROI must be finite and larger than 1 px, got {roi}")
        crop = warp_roi(image_bgr, roi, self.crop_size)
        raw, flag = self.model.run(to_model_input(crop, (0.0, 1.0)))
        points = raw.reshape(NUM_LANDMARKS, 3).astype(np.float64)
        m = roi.crop_to_image(self.crop_size)
        xy = points[:, :2] @ m[:, :2].T + m[:, 2]
        z = points[:, 2] * (roi.size / self.crop_size)
        return FaceMeshResult(landmarks=np.column_stack([xy, z]), presence=_sigmoid(flag.reshape(())), roi=roi)

    def estimate(self, image_bgr: np.ndarray, face: Detection) -> FaceMeshResult:
        """Landmarks of the face of a BlazeFace detection (box + eye keypoints)."""
        check_bgr_image(image_bgr, "image_bgr")
        result = self.estimate_roi(image_bgr, face_detection_to_roi(face, self.roi_scale))
        if self.refine_roi:
            refined = self.estimate_roi(image_bgr, landmarks_to_roi(result.landmarks, self.roi_scale))
            if refined.presence >= 0.5 * result.presence:
                result = refined
        return result

    __call__ = estimate
