"""The face simulator's world: a MuJoCo room with people whose heads carry real faces.

:class:`FaceWorld` builds a MuJoCo model from a :class:`~opendr_perception.sim.scene.Scene`
(no ROS) and closes the loop for active-perception nodes: ``render()`` is the
robot camera's BGR image, ``step(linear, angular_z, dt)`` moves the robot with
the kinematics of its kind, ``person_in_view(name)`` is the ground truth
(distance, bearing, facing angle, projected face box, occlusion).

World and robot frames follow REP-103 (x forward, y left, z up); the room is
centred on the origin, floor at z = 0. Internally everything is metres and
radians (degrees only in the scene/YAML API and in the ``*_deg`` keys of
:meth:`FaceWorld.person_in_view`).

People
------
A person is a mocap body (legs, torso, arms, neck: simple capsules and boxes)
with an ELLIPSOID head (hair coloured) whose front carries a curved FACE PLATE:
a mesh on the front of an ellipsoid slightly larger than the head, bounded by
an ellipse (``PLATE_HALF_WIDTH`` x ``PLATE_HALF_HEIGHT``), textured with the
crop of the person's photo around the face that BlazeFace (full range) finds
in it. The texture is mapped by orthographic projection along the facing
direction, so a camera straight in front sees the photo undistorted; from the
side the plate's curvature foreshortens it. Scale: the detector's face box is
``FACE_BOX_M`` (0.16 m) wide on the head, so a face is as large in the image
as a real one at the same distance. Seen from behind only the head's back
(hair colour) is visible.

Occluders are thin vertical panels (box geoms), plain or with a photo on both
faces (the largest centred crop of the photo with the panel's aspect ratio).
A photo on a panel is a picture like any other: a detector finds the face in
it (that is not a person).

Camera: a pinhole with square pixels, principal point at the image centre
(``(W - 1) / 2, (H - 1) / 2``, pixel centres at integer coordinates), no
distortion; :meth:`FaceWorld.camera_matrix` is K and matches the render to
within about a pixel. :meth:`FaceWorld.camera_pose` gives the optical frame
(x right, y down, z forward) for TF.

Robot
-----
A mocap body carrying the camera at its origin: the pose ``(x, y, z, yaw)`` is
the camera position (``z`` = camera height, fixed for a wheeled robot) and the
robot's heading. Kinematics (exact integration of a constant body-frame twist
over ``dt``): ``wheeled`` = unicycle (``vx``, ``wz``; ``vy``, ``vz`` ignored);
``drone`` = holonomic ``vx``, ``vy``, ``vz`` + ``wz``. After each step the
position is clamped to the room minus the robot radius (walls stop it, it
slides along them), pushed out of a disc around each person's body, and a
drone's height is kept within ``[Z_MIN, wall_height - Z_CEILING_MARGIN]``.
Steps are sub-divided so that the robot moves at most ``MAX_SUBSTEP_M`` between
collision checks (it cannot jump over a person). Occluders are not obstacles;
teleports (:meth:`FaceWorld.set_robot_pose`, :meth:`FaceWorld.reset`) are
clamped to the room but not checked against people.

Rendering is headless: this module sets ``MUJOCO_GL=egl`` unless it is set
(Mesa's llvmpipe renders 640x480 in 13-25 ms on one CPU core here). If MuJoCo
was imported before with no ``MUJOCO_GL``, the first render switches its
offscreen context to EGL.

Known limits: BlazeFace (full range, threshold 0.5) fires at 0.5-0.7 on the
BACK of the simulated head at 2-3.5 m (a dark oval on a neck); the dlib
descriptor of such a box is far from every real face (~0.75-0.8).
"""
from __future__ import annotations

import functools
import math
import os
import threading
from dataclasses import dataclass
from typing import Optional, Sequence, Union

os.environ.setdefault("MUJOCO_GL", "egl")

import cv2  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from opendr_perception.core.types import BoundingBox  # noqa: E402
from opendr_perception.sim.scene import PLAIN, Occluder, Person, Scene  # noqa: E402

# --- geometry of a person (m) -------------------------------------------------
FACE_BOX_M = 0.16            # width of the BlazeFace box on the head
HEAD_SEMI_AXES = (0.10, 0.085, 0.12)   # head ellipsoid: depth (x), half width (y), half height (z)
HEAD_TOP_GAP = 0.12          # head centre = person height - this
PLATE_SURFACE = (0.103, 0.11, 0.14)    # the face plate lies on this ellipsoid (x, y, z semi-axes)
PLATE_HALF_WIDTH = 0.6 * FACE_BOX_M    # elliptic outline of the plate (y)
PLATE_HALF_HEIGHT = 0.75 * FACE_BOX_M  # (z)
PLATE_CENTER_ABOVE_BOX = 0.08 * FACE_BOX_M  # plate centre (= head centre) above the face-box centre
PERSON_RADIUS = 0.25         # keep-out disc of a person's body (plus the robot radius)
FACE_TEXTURE_PX = 384        # face texture side
PLATE_RINGS, PLATE_SEGMENTS = 12, 48

# --- robot --------------------------------------------------------------------
MAX_SUBSTEP_M = 0.05          # collision checks at least this often along a step
MAX_SUBSTEPS = 10000
Z_MIN = 0.2                  # lowest drone camera height
Z_CEILING_MARGIN = 0.15      # highest = wall_height - this
NEAR_CLIP_M = 0.02
OCCLUSION_GRID = 20          # face-box samples per side for the occlusion rays

# --- geom groups ----------------------------------------------------------------
GROUP_ROOM, GROUP_BODY, GROUP_FACE, GROUP_OCCLUDER, GROUP_OCCLUDER_SKIN, GROUP_ROBOT = range(6)

_PERSON, _OCCLUDER = "person:", "occluder:"
_SHIRTS = ((0.20, 0.35, 0.65), (0.65, 0.25, 0.20), (0.25, 0.55, 0.30), (0.55, 0.50, 0.20), (0.45, 0.30, 0.55))
_WALLS = ((0.80, 0.78, 0.72), (0.72, 0.78, 0.80), (0.78, 0.80, 0.72), (0.80, 0.74, 0.76))


@dataclass(frozen=True)
class RobotPose:
    """The robot's pose in the world: camera position (m) and heading ``yaw`` (rad, 0 = +x)."""

    x: float
    y: float
    z: float
    yaw: float


@dataclass(frozen=True, eq=False)
class FaceTexture:
    """The face crop of one photo, ready to map on a face plate.

    ``image_rgb``: square crop (RGB, as MuJoCo wants it) centred on the plate
    centre, side ``2 * half_m`` metres on the head; ``box_m``: the detector's face
    box on the plate, ``(y_min, z_min, y_max, z_max)`` in metres relative to the
    plate centre (y = the person's left = image right, z up); ``score``: the
    detector's confidence on the photo.
    """

    image_rgb: np.ndarray
    half_m: float
    box_m: tuple[float, float, float, float]
    score: float


# ------------------------------------------------------------------ photos
def load_image(source: str) -> np.ndarray:
    """A sample photo by name or an image file, BGR uint8."""
    from opendr_perception.core.samples import PHOTOS

    if source in PHOTOS:
        return PHOTOS[source]()
    image = cv2.imread(source, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image '{source}'")
    return image


@functools.lru_cache(maxsize=None)
def _face_detector():
    from opendr_perception.models.face_detection import FaceDetector
    return FaceDetector("full_range")


@functools.lru_cache(maxsize=32)
def face_texture(photo: str) -> FaceTexture:
    """The face crop of ``photo`` (sample name or file) for a face plate; ``ValueError`` if no face."""
    image = load_image(photo)
    faces = _face_detector().detect(image)
    if not faces:
        raise ValueError(f"no face found in photo '{photo}' (BlazeFace full range): a person needs a photo "
                         "with a visible face")
    face = max(faces, key=lambda d: d.score)
    box = face.box
    m_per_px = FACE_BOX_M / box.width
    cx, cy = box.center
    cy -= PLATE_CENTER_ABOVE_BOX / m_per_px  # plate centre, above the box centre
    half_m = max(PLATE_HALF_WIDTH, PLATE_HALF_HEIGHT)
    half_px = half_m / m_per_px
    x0, y0 = int(round(cx - half_px)), int(round(cy - half_px))
    side = max(2, int(round(2 * half_px)))
    h, w = image.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - w, y0 + side - h)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = image[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side]
    interpolation = cv2.INTER_AREA if side > FACE_TEXTURE_PX else cv2.INTER_CUBIC
    crop = cv2.resize(crop, (FACE_TEXTURE_PX, FACE_TEXTURE_PX), interpolation=interpolation)
    # face box relative to the plate centre: y = image right (the person's left), z = up
    box_m = ((box.x_min - cx) * m_per_px, (cy - box.y_max) * m_per_px,
             (box.x_max - cx) * m_per_px, (cy - box.y_min) * m_per_px)
    return FaceTexture(np.ascontiguousarray(crop[:, :, ::-1]), half_m, box_m, float(face.score))


def _center_crop(image: np.ndarray, aspect: float) -> np.ndarray:
    """The largest centred crop of ``image`` with width / height = ``aspect``."""
    h, w = image.shape[:2]
    if w / h > aspect:
        cw = max(1, int(round(h * aspect)))
        return image[:, (w - cw) // 2:(w - cw) // 2 + cw]
    ch = max(1, int(round(w / aspect)))
    return image[(h - ch) // 2:(h - ch) // 2 + ch]


def _plate_depth(y, z):
    """x of the face plate surface at (y, z) (head-centre frame)."""
    a, b, c = PLATE_SURFACE[1], PLATE_SURFACE[2], PLATE_SURFACE[0]
    return c * np.sqrt(np.clip(1.0 - (np.asarray(y) / a) ** 2 - (np.asarray(z) / b) ** 2, 0.0, None))


def _plate_mesh(half_m: float):
    """Vertices, triangles and texture coordinates of the curved elliptic face plate."""
    vertices, uvs = [], []
    for ring in range(PLATE_RINGS + 1):
        r = ring / PLATE_RINGS
        count = 1 if ring == 0 else PLATE_SEGMENTS
        for k in range(count):
            t = 2 * math.pi * k / PLATE_SEGMENTS
            y, z = r * PLATE_HALF_WIDTH * math.cos(t), r * PLATE_HALF_HEIGHT * math.sin(t)
            vertices.append((float(_plate_depth(y, z)), y, z))
            uvs.append(((y + half_m) / (2 * half_m), (half_m - z) / (2 * half_m)))  # v = 0: image top
    faces = []

    def index(ring, k):
        return 0 if ring == 0 else 1 + (ring - 1) * PLATE_SEGMENTS + k % PLATE_SEGMENTS

    for ring in range(PLATE_RINGS):
        for k in range(PLATE_SEGMENTS):
            # counter-clockwise in (y, z), i.e. seen from the front (+x)
            if ring == 0:
                faces.append((0, index(1, k), index(1, k + 1)))
            else:
                a, b = index(ring, k), index(ring, k + 1)
                c, d = index(ring + 1, k), index(ring + 1, k + 1)
                faces += [(a, c, d), (a, d, b)]
    return np.array(vertices), np.array(faces), np.array(uvs)


def _yaw_quat(yaw: float) -> list[float]:
    return [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]


def _rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _wrap(angle: float) -> float:
    return math.atan2(math.sin(angle), math.cos(angle))


def integrate_twist(pose: RobotPose, vx: float, vy: float, vz: float, wz: float, dt: float) -> RobotPose:
    """Exact pose after a constant body-frame twist for ``dt`` (SE(2) exponential + vertical)."""
    theta = wz * dt
    if abs(theta) < 1e-6:  # series of sin(theta)/wz and (1 - cos(theta))/wz
        s = dt * (1.0 - theta * theta / 6.0)
        c = dt * (theta / 2.0 - theta ** 3 / 24.0)
    else:
        s = math.sin(theta) / wz
        c = (1.0 - math.cos(theta)) / wz
    dx, dy = s * vx - c * vy, c * vx + s * vy
    cos_y, sin_y = math.cos(pose.yaw), math.sin(pose.yaw)
    return RobotPose(pose.x + cos_y * dx - sin_y * dy, pose.y + sin_y * dx + cos_y * dy,
                     pose.z + vz * dt, _wrap(pose.yaw + theta))


def _use_egl_if_requested() -> None:
    """MuJoCo picks its GL backend when it is first imported. If something imported it before this
    module set ``MUJOCO_GL=egl`` (it then chose GLFW, which needs a display), switch its offscreen
    context class to EGL so rendering stays headless."""
    from mujoco.rendering.classic import gl_context

    current = getattr(gl_context, "GLContext", None)
    if os.environ.get("MUJOCO_GL", "").strip().lower() == "egl" and current is not None \
            and not current.__module__.startswith("mujoco.egl"):
        from mujoco.egl import GLContext
        gl_context.GLContext = GLContext


def _locked(method):
    """Run ``method`` holding the world's lock (a ROS node may step and render from two threads)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return wrapper


def _release_egl_context() -> None:
    """Un-bind MuJoCo's EGL context from the calling thread (an EGL context is current in at most one
    thread; MuJoCo's renderer binds it on every render but never lets it go)."""
    from mujoco.rendering.classic import gl_context

    if not getattr(gl_context, "GLContext", type).__module__.startswith("mujoco.egl"):
        return
    import mujoco.egl as egl

    if egl.EGL_DISPLAY is not None:
        egl.EGL.eglMakeCurrent(egl.EGL_DISPLAY, egl.EGL.EGL_NO_SURFACE, egl.EGL.EGL_NO_SURFACE,
                               egl.EGL.EGL_NO_CONTEXT)


# ------------------------------------------------------------------ the world
class FaceWorld:
    """A simulated room with people (real faces), occluders and a camera robot.

    Args:
        scene: the :class:`~opendr_perception.sim.scene.Scene` (validated again here).

    The renderer (an EGL context) is created on the first :meth:`render`; call
    :meth:`close` (or use ``with``) to free it. Methods that change or read the
    state hold a lock, so one world can be stepped and rendered from different threads.
    """

    def __init__(self, scene: Scene):
        if not isinstance(scene, Scene):
            raise ValueError(f"scene must be a Scene, got {type(scene).__name__}")
        self.scene = scene.validate()
        self.kind = scene.robot.kind
        self._half = scene.room_size / 2.0
        self._textures = {p.name: face_texture(p.photo) for p in scene.people}
        self._lock = threading.RLock()
        self._renderer = None
        self._dirty = True
        self._time = 0.0
        self._twist = (0.0, 0.0, 0.0, 0.0)
        self.model = self._build().compile()
        self.data = mujoco.MjData(self.model)
        self._mocap = {}
        body_id = functools.partial(mujoco.mj_name2id, self.model, mujoco.mjtObj.mjOBJ_BODY)
        self._person_body = {p.name: body_id(_PERSON + p.name) for p in scene.people}
        self._occluder_body = {o.name: body_id(_OCCLUDER + o.name) for o in scene.occluders}
        self._body_of = {body: name for name, body in self._occluder_body.items()}
        for name, body in {**self._person_body, **self._occluder_body}.items():
            self._mocap[name] = int(self.model.body_mocapid[body])
        self._robot_mocap = int(self.model.body_mocapid[body_id("robot")])
        self._camera_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, "robot_camera")
        self._option = mujoco.MjvOption()
        self._option.geomgroup[:] = 1
        self._option.geomgroup[GROUP_ROBOT] = 0
        self._people = {}
        self._occluders = {}
        self.reset()

    # ------------------------------------------------------------ model
    def _build(self) -> mujoco.MjSpec:
        scene = self.scene
        spec = mujoco.MjSpec()
        spec.modelname = "face_world"
        spec.visual.global_.offwidth = scene.camera.width
        spec.visual.global_.offheight = scene.camera.height
        spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
        spec.visual.headlight.diffuse = [0.35, 0.35, 0.35]
        spec.visual.headlight.specular = [0.0, 0.0, 0.0]
        extent = max(scene.room_size, scene.wall_height)
        spec.stat.extent = extent
        spec.stat.center = [0.0, 0.0, scene.wall_height / 2]
        spec.visual.map.znear = NEAR_CLIP_M / extent
        spec.visual.map.zfar = 3.0
        spec.visual.quality.shadowsize = 0
        self._add_room(spec)
        for i, person in enumerate(scene.people):
            self._add_person(spec, i, person)
        for occluder in scene.occluders:
            self._add_occluder(spec, occluder)
        self._add_robot(spec)
        return spec

    @staticmethod
    def _material(spec, name, texture=None, rgba=(1, 1, 1, 1), emission=0.0, **kwargs):
        material = spec.add_material()
        material.name = name
        material.rgba = list(rgba) + [1.0] * (4 - len(rgba))
        material.emission = emission
        material.specular = 0.0
        material.shininess = 0.0
        if texture is not None:
            textures = [""] * int(mujoco.mjtTextureRole.mjNTEXROLE)
            textures[int(mujoco.mjtTextureRole.mjTEXROLE_RGB)] = texture
            material.textures = textures
        for key, value in kwargs.items():
            setattr(material, key, value)
        return name

    @staticmethod
    def _image_texture(spec, name, rgb: np.ndarray):
        texture = spec.add_texture()
        texture.name = name
        texture.type = mujoco.mjtTexture.mjTEXTURE_2D
        texture.height, texture.width = rgb.shape[:2]
        texture.nchannel = 3
        texture.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
        return name

    def _add_room(self, spec):
        half, height = self._half, self.scene.wall_height
        floor_texture = spec.add_texture()
        floor_texture.name = "floor"
        floor_texture.type = mujoco.mjtTexture.mjTEXTURE_2D
        floor_texture.builtin = mujoco.mjtBuiltin.mjBUILTIN_CHECKER
        floor_texture.rgb1 = [0.55, 0.5, 0.45]
        floor_texture.rgb2 = [0.42, 0.38, 0.34]
        floor_texture.width = floor_texture.height = 256
        self._material(spec, "floor", "floor", texrepeat=[1.0, 1.0], texuniform=True)
        world = spec.worldbody
        floor = world.add_geom()
        floor.name, floor.type, floor.size = "floor", mujoco.mjtGeom.mjGEOM_PLANE, [half, half, 0.1]
        floor.material, floor.group = "floor", GROUP_ROOM
        t = 0.05
        for i, (x, y, sx, sy) in enumerate(((half + t, 0, t, half + 2 * t), (-half - t, 0, t, half + 2 * t),
                                            (0, half + t, half + 2 * t, t), (0, -half - t, half + 2 * t, t))):
            wall = world.add_geom()
            wall.name, wall.type = f"wall{i}", mujoco.mjtGeom.mjGEOM_BOX
            wall.pos, wall.size = [x, y, height / 2], [sx, sy, height / 2]
            wall.rgba, wall.group = list(_WALLS[i]) + [1.0], GROUP_ROOM
        ceiling = world.add_geom()
        ceiling.name, ceiling.type = "ceiling", mujoco.mjtGeom.mjGEOM_BOX
        ceiling.pos, ceiling.size = [0, 0, height + t], [half + 2 * t, half + 2 * t, t]
        ceiling.material = self._material(spec, "ceiling", rgba=(0.9, 0.9, 0.88), emission=0.25)
        ceiling.group = GROUP_ROOM
        light = world.add_light()
        light.name = "ceiling_light"
        light.type = mujoco.mjtLightType.mjLIGHT_DIRECTIONAL
        light.pos, light.dir = [0, 0, height], [0.3, 0.2, -1.0]
        light.diffuse, light.ambient, light.specular = [0.45] * 3, [0.1] * 3, [0.0] * 3
        light.castshadow = False

    @staticmethod
    def _geom(body, name, kind, size, rgba=None, group=GROUP_BODY, pos=None, fromto=None, material=None):
        geom = body.add_geom()
        geom.name, geom.type, geom.group = name, kind, group
        geom.size = (list(size) + [0.0, 0.0, 0.0])[:3]
        geom.contype = geom.conaffinity = 0
        if pos is not None:
            geom.pos = list(pos)
        if fromto is not None:
            geom.fromto = list(fromto)
        if rgba is not None:
            geom.rgba = list(rgba) + [1.0] * (4 - len(rgba))
        if material is not None:
            geom.material = material
        return geom

    def _add_person(self, spec, index: int, person: Person):
        texture = self._textures[person.name]
        n = _PERSON + person.name  # MuJoCo names: prefixed, so that no user name collides with ours
        tex = self._image_texture(spec, f"{n}_face", texture.image_rgb)
        material = self._material(spec, f"{n}_face", tex, emission=0.35)
        vertices, faces, uvs = _plate_mesh(texture.half_m)
        mesh = spec.add_mesh()
        mesh.name = f"{n}_face"
        mesh.uservert = vertices.ravel().tolist()
        mesh.userface = faces.ravel().tolist()
        mesh.usertexcoord = uvs.ravel().tolist()
        mesh.inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL

        body = spec.worldbody.add_body()
        body.name, body.mocap = n, True
        h = person.height
        head_z, shoulder, hip = h - HEAD_TOP_GAP, h - 0.27, 0.5 * h
        shirt = person.shirt_color or _SHIRTS[index % len(_SHIRTS)]
        trousers, skin, hair = (0.18, 0.2, 0.28), (0.85, 0.68, 0.56), (0.22, 0.16, 0.11)
        G = mujoco.mjtGeom
        for side, sign in (("l", 1), ("r", -1)):
            self._geom(body, f"{n}_leg_{side}", G.mjGEOM_CAPSULE, [0.06], trousers,
                       fromto=[0, sign * 0.09, 0.06, 0, sign * 0.09, hip])
            self._geom(body, f"{n}_arm_{side}", G.mjGEOM_CAPSULE, [0.045], shirt,
                       fromto=[0, sign * 0.235, shoulder - 0.03, 0.02, sign * 0.25, hip + 0.02])
        self._geom(body, f"{n}_torso", G.mjGEOM_BOX, [0.1, 0.19, (shoulder - hip) / 2], shirt,
                   pos=[0, 0, (shoulder + hip) / 2])
        self._geom(body, f"{n}_neck", G.mjGEOM_CAPSULE, [0.05], skin,
                   fromto=[0, 0, shoulder - 0.02, 0, 0, head_z - 0.08])
        self._geom(body, f"{n}_head", G.mjGEOM_ELLIPSOID, HEAD_SEMI_AXES, hair, pos=[0, 0, head_z])
        self._geom(body, f"{n}_face", G.mjGEOM_MESH, [0, 0, 0], group=GROUP_FACE, pos=[0, 0, head_z],
                   material=material).meshname = mesh.name

    def _add_occluder(self, spec, occluder: Occluder):
        body = spec.worldbody.add_body()
        n = _OCCLUDER + occluder.name
        body.name, body.mocap = n, True
        t, w, h = occluder.thickness / 2, occluder.width / 2, occluder.height / 2
        self._geom(body, f"{n}_panel", mujoco.mjtGeom.mjGEOM_BOX, [t, w, h], occluder.color,
                   group=GROUP_OCCLUDER)
        if occluder.texture == PLAIN:
            return
        photo = _center_crop(load_image(occluder.texture), occluder.width / occluder.height)
        rgb = np.ascontiguousarray(photo[:, :, ::-1])
        tex = self._image_texture(spec, f"{n}_texture", rgb)
        material = self._material(spec, f"{n}_texture", tex, emission=0.2)
        e = t + 0.001
        # front (+x) and back (-x) quads; each reads the photo unmirrored from its own side
        vertices = [(e, -w, -h), (e, w, -h), (e, w, h), (e, -w, h),
                    (-e, w, -h), (-e, -w, -h), (-e, -w, h), (-e, w, h)]
        uvs = [(0, 1), (1, 1), (1, 0), (0, 0)] * 2
        faces = [(0, 1, 2), (0, 2, 3), (4, 5, 6), (4, 6, 7)]
        mesh = spec.add_mesh()
        mesh.name = f"{n}_skin"
        mesh.uservert = np.ravel(vertices).tolist()
        mesh.userface = np.ravel(faces).tolist()
        mesh.usertexcoord = np.ravel(uvs).astype(float).tolist()
        mesh.inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL
        self._geom(body, f"{n}_skin", mujoco.mjtGeom.mjGEOM_MESH, [0, 0, 0],
                   group=GROUP_OCCLUDER_SKIN, material=material).meshname = mesh.name

    def _add_robot(self, spec):
        body = spec.worldbody.add_body()
        body.name, body.mocap = "robot", True
        G = mujoco.mjtGeom
        grey, dark = (0.3, 0.3, 0.32), (0.1, 0.1, 0.1)
        if self.kind == "drone":
            self._geom(body, "robot_frame", G.mjGEOM_BOX, [0.12, 0.12, 0.025], grey, GROUP_ROBOT, pos=[-0.1, 0, -0.04])
            for i, (x, y) in enumerate(((0.05, 0.15), (0.05, -0.15), (-0.25, 0.15), (-0.25, -0.15))):
                self._geom(body, f"robot_rotor{i}", G.mjGEOM_CYLINDER, [0.07, 0.005], dark, GROUP_ROBOT,
                           pos=[x, y, -0.01])
        else:
            z = self.scene.robot.z
            self._geom(body, "robot_base", G.mjGEOM_CYLINDER, [0.2, 0.08], grey, GROUP_ROBOT, pos=[-0.15, 0, -z + 0.1])
            self._geom(body, "robot_mast", G.mjGEOM_CAPSULE, [0.025], dark, GROUP_ROBOT,
                       fromto=[-0.15, 0, -z + 0.18, -0.15, 0, -0.05])
        self._geom(body, "robot_camera_housing", G.mjGEOM_BOX, [0.04, 0.05, 0.03], dark, GROUP_ROBOT,
                   pos=[-0.05, 0, 0])
        camera = body.add_camera()
        camera.name = "robot_camera"
        camera.fovy = self.scene.camera.fov_y_deg
        pitch = math.radians(self.scene.camera.pitch_deg)
        camera.alt.type = mujoco.mjtOrientation.mjORIENTATION_XYAXES
        camera.alt.xyaxes = [0, -1, 0, math.sin(pitch), 0, math.cos(pitch)]  # MuJoCo camera: looks along -z

    # ------------------------------------------------------------ state
    @property
    def time(self) -> float:
        """Simulated seconds since the last :meth:`reset` (the sum of the ``dt`` of :meth:`step`)."""
        return self._time

    @property
    def robot_pose(self) -> RobotPose:
        return self._pose

    @property
    def twist(self) -> tuple[float, float, float, float]:
        """``(vx, vy, vz, wz)`` the robot actually moved with in the last step (body frame of its start
        pose; less than commanded where a wall or a person stopped it)."""
        return self._twist

    @property
    def person_names(self) -> list[str]:
        return [p.name for p in self.scene.people]

    @property
    def occluder_names(self) -> list[str]:
        return [o.name for o in self.scene.occluders]

    def _scene_pose(self) -> RobotPose:
        r = self.scene.robot
        return RobotPose(r.x, r.y, r.z, _wrap(math.radians(r.yaw_deg)))

    @_locked
    def reset(self, robot_pose: Optional[RobotPose] = None) -> RobotPose:
        """Time 0; people and occluders back where the scene puts them; the robot at ``robot_pose``
        (default: the scene's start pose). Returns the robot pose."""
        self._time = 0.0
        self._twist = (0.0, 0.0, 0.0, 0.0)
        for person in self.scene.people:
            self.set_person_pose(person.name, person.x, person.y, math.radians(person.yaw_deg))
        for occluder in self.scene.occluders:
            self.set_occluder_pose(occluder.name, occluder.x, occluder.y, occluder.z, math.radians(occluder.yaw_deg))
        return self.set_robot_pose(self._scene_pose() if robot_pose is None else robot_pose)

    @_locked
    def set_robot_pose(self, x: Union[RobotPose, float], y: Optional[float] = None, z: Optional[float] = None,
                       yaw: Optional[float] = None) -> RobotPose:
        """Teleport the robot: ``set_robot_pose(RobotPose(...))`` or ``set_robot_pose(x, y, z, yaw)``
        (``yaw`` in radians; None keeps the current value). The position is clamped to the room
        (people are not checked); a wheeled robot keeps its fixed camera height. Returns the pose set."""
        if isinstance(x, RobotPose):
            pose = x
        else:
            current = getattr(self, "_pose", self._scene_pose())
            if y is None:
                raise ValueError("set_robot_pose needs a RobotPose or x and y")
            pose = RobotPose(float(x), float(y), current.z if z is None else float(z),
                             current.yaw if yaw is None else float(yaw))
        values = (pose.x, pose.y, pose.z, pose.yaw)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"robot pose must be finite, got {pose}")
        x, y, z, yaw = (float(v) for v in values)
        self._pose = self._clamp_room(RobotPose(x, y, z, _wrap(yaw)))
        self._apply_robot()
        return self._pose

    @_locked
    def set_person_pose(self, name: str, x: Optional[float] = None, y: Optional[float] = None,
                        yaw: Optional[float] = None) -> None:
        """Move person ``name`` (``yaw`` in radians = the direction they face; None keeps a value)."""
        if name not in self._person_body:
            self._missing("person", name)
        old = self._people.get(name, (0.0, 0.0, 0.0))
        pose = (old[0] if x is None else float(x), old[1] if y is None else float(y),
                old[2] if yaw is None else _wrap(float(yaw)))
        if max(abs(pose[0]), abs(pose[1])) > self._half:
            raise ValueError(f"person '{name}' at ({pose[0]:g}, {pose[1]:g}) is outside the room")
        self._people[name] = pose
        mocap = self._mocap[name]
        self.data.mocap_pos[mocap] = [pose[0], pose[1], 0.0]
        self.data.mocap_quat[mocap] = _yaw_quat(pose[2])
        self._dirty = True

    @_locked
    def set_occluder_pose(self, name: str, x: float, y: float, z: float, yaw: float = 0.0) -> None:
        """Move occluder ``name`` (centre at (x, y, z), front facing ``yaw`` radians)."""
        if name not in self._occluder_body:
            self._missing("occluder", name)
        pose = (float(x), float(y), float(z), _wrap(float(yaw)))
        if not all(math.isfinite(v) for v in pose):
            raise ValueError(f"occluder pose must be finite, got {pose}")
        self._occluders[name] = pose
        mocap = self._mocap[name]
        self.data.mocap_pos[mocap] = pose[:3]
        self.data.mocap_quat[mocap] = _yaw_quat(pose[3])
        self._dirty = True

    def _missing(self, what: str, name: str):
        names = self.person_names if what == "person" else self.occluder_names
        raise ValueError(f"no {what} named '{name}' (have: {', '.join(names) or 'none'})")

    def person_pose(self, name: str) -> tuple[float, float, float]:
        """``(x, y, yaw)`` of person ``name`` (yaw in radians)."""
        if name not in self._people:
            self._missing("person", name)
        return self._people[name]

    def occluder_pose(self, name: str) -> tuple[float, float, float, float]:
        """``(x, y, z, yaw)`` of occluder ``name`` (yaw in radians)."""
        if name not in self._occluders:
            self._missing("occluder", name)
        return self._occluders[name]

    def _apply_robot(self):
        mocap = self._robot_mocap
        self.data.mocap_pos[mocap] = [self._pose.x, self._pose.y, self._pose.z]
        self.data.mocap_quat[mocap] = _yaw_quat(self._pose.yaw)
        self._dirty = True

    def _sync(self):
        if self._dirty:
            mujoco.mj_forward(self.model, self.data)
            self._dirty = False

    # ------------------------------------------------------------ kinematics
    def _clamp_room(self, pose: RobotPose) -> RobotPose:
        limit = self._half - self.scene.robot.radius
        x, y = min(max(pose.x, -limit), limit), min(max(pose.y, -limit), limit)
        if self.kind == "wheeled":
            z = self.scene.robot.z
        else:
            z = min(max(pose.z, Z_MIN), self.scene.wall_height - Z_CEILING_MARGIN)
        return RobotPose(x, y, z, pose.yaw)

    def _push_out_of_people(self, pose: RobotPose, previous: RobotPose) -> RobotPose:
        x, y = pose.x, pose.y
        keep = PERSON_RADIUS + self.scene.robot.radius
        for px, py, _ in self._people.values():
            dx, dy = x - px, y - py
            d = math.hypot(dx, dy)
            if d >= keep:
                continue
            if d < 1e-9:  # exactly on the person: back towards where the robot came from
                dx, dy = previous.x - px, previous.y - py
                d = math.hypot(dx, dy)
                if d < 1e-9:
                    dx, dy, d = 1.0, 0.0, 1.0
            x, y = px + dx / d * keep, py + dy / d * keep
        return RobotPose(x, y, pose.z, pose.yaw)

    @_locked
    def step(self, linear: Sequence[float] = (0.0, 0.0, 0.0), angular_z: float = 0.0, dt: float = 0.1) -> RobotPose:
        """Move the robot with body-frame velocity ``linear`` = (vx, vy, vz) m/s and yaw rate
        ``angular_z`` rad/s for ``dt`` s (REP-103: x forward, y left, z up). A wheeled robot ignores
        vy and vz. Walls (minus the robot radius) and people's bodies stop it. Returns the new pose."""
        linear = tuple(linear)
        if len(linear) != 3:
            raise ValueError(f"linear must be (vx, vy, vz), got {linear!r}")
        values = [*linear, angular_z, dt]
        if not all(isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) for v in values):
            raise ValueError(f"step needs finite numbers, got linear={linear!r} angular_z={angular_z!r} dt={dt!r}")
        if dt <= 0:
            raise ValueError(f"dt must be > 0, got {dt}")
        vx, vy, vz = (float(v) for v in linear)
        if self.kind == "wheeled":
            vy = vz = 0.0
        start = self._pose
        wz, dt = float(angular_z), float(dt)
        # sub-steps of at most MAX_SUBSTEP_M so that the robot cannot jump over a person; sub-steps of
        # one constant twist compose exactly (they differ from one step by rounding only)
        travel = math.hypot(vx, vy, vz) * dt
        n = min(MAX_SUBSTEPS, max(1, math.ceil(travel / MAX_SUBSTEP_M)))
        pose, blocked = start, False
        for _ in range(n):
            moved = integrate_twist(pose, vx, vy, vz, wz, dt / n)
            free = self._clamp_room(self._push_out_of_people(self._clamp_room(moved), pose))
            blocked = blocked or free != moved
            pose = free
        if blocked:  # report the motion actually made, in the start pose's frame
            dx, dy = pose.x - start.x, pose.y - start.y
            c, s = math.cos(start.yaw), math.sin(start.yaw)
            self._twist = ((c * dx + s * dy) / dt, (-s * dx + c * dy) / dt, (pose.z - start.z) / dt, wz)
        else:
            self._twist = (vx, vy, vz, wz)
        self._pose = pose
        self._time += dt
        self._apply_robot()
        return pose

    def pose_facing(self, name: str, distance: float, angle: float = 0.0, z: Optional[float] = None) -> RobotPose:
        """The pose ``distance`` m (horizontal) from person ``name``'s face centre, at ``angle`` radians
        from the direction they face (0 = straight in front, positive = on their left), looking at the
        face. ``z``: camera height (default: the face's height for a drone, the fixed one for a wheeled
        robot). Not clamped: pass it to :meth:`set_robot_pose` or :meth:`reset`."""
        yaw = self.person_pose(name)[2]
        face = self._face_point(name, 0.0, 0.0)
        direction = yaw + angle
        x, y = face[0] + distance * math.cos(direction), face[1] + distance * math.sin(direction)
        if z is None:
            z = self.scene.robot.z if self.kind == "wheeled" else float(face[2])
        return RobotPose(float(x), float(y), float(z), _wrap(math.atan2(face[1] - y, face[0] - x)))

    # ------------------------------------------------------------ camera
    def camera_matrix(self) -> np.ndarray:
        """Pinhole K (3x3) of the rendered image, pixel centres at integer coordinates (OpenCV, CameraInfo)."""
        cam = self.scene.camera
        f = (cam.height / 2.0) / math.tan(math.radians(cam.fov_y_deg) / 2.0)
        return np.array([[f, 0.0, (cam.width - 1) / 2.0], [0.0, f, (cam.height - 1) / 2.0], [0.0, 0.0, 1.0]])

    def camera_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """``(position, R)``: the camera centre in the world and the rotation world <- OPTICAL frame
        (x right, y down, z forward), for TF and projections."""
        p = self._pose
        pitch = math.radians(self.scene.camera.pitch_deg)
        forward = np.array([math.cos(pitch), 0.0, -math.sin(pitch)])
        up = np.array([math.sin(pitch), 0.0, math.cos(pitch)])
        robot_from_optical = np.column_stack([[0.0, -1.0, 0.0], -up, forward])
        return np.array([p.x, p.y, p.z]), _rot_z(p.yaw) @ robot_from_optical

    def project(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (N, 2) and optical depth (N,) of world points (N, 3)."""
        position, rotation = self.camera_pose()
        camera = (np.asarray(points_world, dtype=float).reshape(-1, 3) - position) @ rotation
        depth = camera[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            pixels = (camera / depth[:, None]) @ self.camera_matrix().T
        return pixels[:, :2], depth

    @_locked
    def render(self) -> np.ndarray:
        """The robot camera's image, (H, W, 3) uint8 BGR."""
        if self._renderer is None:
            _use_egl_if_requested()
            self._renderer = mujoco.Renderer(self.model, self.scene.camera.height, self.scene.camera.width)
        self._sync()
        self._renderer.update_scene(self.data, camera=self._camera_id, scene_option=self._option)
        try:
            rgb = self._renderer.render()
        finally:
            _release_egl_context()  # so that the next render may come from another thread
        return np.ascontiguousarray(rgb[:, :, ::-1])

    @_locked
    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> "FaceWorld":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ ground truth
    def _face_point(self, name: str, y, z) -> np.ndarray:
        """World points of the face plate surface at plate coordinates (y, z) (m, relative to the
        face-box centre: y = the person's left, z up)."""
        px, py, yaw = self.person_pose(name)
        height = next(p.height for p in self.scene.people if p.name == name)
        y = np.atleast_1d(np.asarray(y, dtype=float))
        z = np.atleast_1d(np.asarray(z, dtype=float)) - PLATE_CENTER_ABOVE_BOX
        local = np.stack([_plate_depth(y, z), y, z], axis=-1)
        points = local @ _rot_z(yaw).T + np.array([px, py, height - HEAD_TOP_GAP])
        return points[0] if points.shape[0] == 1 else points

    def _face_box_points(self, name: str, n: int) -> np.ndarray:
        y0, z0, y1, z1 = self._textures[name].box_m
        shift = PLATE_CENTER_ABOVE_BOX  # box_m is relative to the plate centre; _face_point to the box centre
        yy, zz = np.meshgrid(np.linspace(y0, y1, n), np.linspace(z0, z1, n) + shift)
        return self._face_point(name, yy.ravel(), zz.ravel())

    @_locked
    def person_in_view(self, name: str) -> dict:
        """Ground truth about person ``name`` seen from the robot camera.

        Keys: ``distance`` (m, camera to face centre), ``bearing_deg`` (horizontal angle of the face
        from the robot's heading, + = left), ``elevation_deg`` (+ = up), ``facing_angle_deg`` (in
        [0, 180]: between the direction the person faces and the horizontal direction from their face
        centre to the camera; 0 = looking straight at the camera), ``camera_azimuth_deg`` (the same, signed: + = the
        camera is on the person's left), ``face_box`` (the detector-style face box projected into the
        image, a :class:`BoundingBox` not clipped to the image, or None when part of the face is behind
        the camera), ``face_center_px`` ((u, v) or None), ``in_image`` (the whole face box is inside the
        image), ``visible`` (``in_image`` and facing_angle_deg < 90), ``occluded_fraction`` (share of
        the face box, sampled on the face surface, hidden by occluders), ``occluders`` (that share per
        occluder name, only those > 0) and ``occluded_by_people`` (share hidden by other people).
        """
        if name not in self._people:
            self._missing("person", name)
        self._sync()
        position, _ = self.camera_pose()
        center = self._face_point(name, 0.0, 0.0)
        yaw = self._people[name][2]
        rel = center - position
        c, s = math.cos(self._pose.yaw), math.sin(self._pose.yaw)
        forward, left = c * rel[0] + s * rel[1], -s * rel[0] + c * rel[1]
        to_camera = math.atan2(position[1] - center[1], position[0] - center[0])
        azimuth = _wrap(to_camera - yaw)
        points = self._face_box_points(name, OCCLUSION_GRID)
        pixels, depth = self.project(points)
        center_px, center_depth = self.project(center[None])
        face_box = None
        in_image = False
        if (depth > NEAR_CLIP_M).all():
            face_box = BoundingBox(*map(float, (*pixels.min(axis=0), *pixels.max(axis=0))))
            cam = self.scene.camera
            in_image = (face_box.x_min >= 0 and face_box.y_min >= 0 and face_box.x_max <= cam.width - 1
                        and face_box.y_max <= cam.height - 1)
        occluded, per_occluder, by_people = self._occlusion(name, position, points)
        return {
            "name": name,
            "distance": float(np.linalg.norm(rel)),
            "bearing_deg": math.degrees(math.atan2(left, forward)),
            "elevation_deg": math.degrees(math.atan2(rel[2], math.hypot(forward, left))),
            "facing_angle_deg": abs(math.degrees(azimuth)),
            "camera_azimuth_deg": math.degrees(azimuth),
            "face_box": face_box,
            "face_center_px": tuple(map(float, center_px[0])) if center_depth[0] > NEAR_CLIP_M else None,
            "in_image": bool(in_image),
            "visible": bool(in_image and abs(azimuth) < math.pi / 2),
            "occluded_fraction": occluded,
            "occluders": per_occluder,
            "occluded_by_people": by_people,
        }

    def _occlusion(self, name: str, position: np.ndarray, points: np.ndarray):
        """Shares of the rays camera -> face sample points blocked by occluders / by other people."""
        occluder_groups = np.zeros(6, dtype=np.uint8)
        occluder_groups[GROUP_OCCLUDER] = 1
        people_groups = np.zeros(6, dtype=np.uint8)
        people_groups[[GROUP_BODY, GROUP_FACE]] = 1
        geom = np.zeros(1, dtype=np.int32)
        hits: dict[str, int] = {}
        blocked = by_people = 0
        origin = np.asarray(position, dtype=np.float64)
        for point in points:
            vec = np.asarray(point - origin, dtype=np.float64)
            distance = mujoco.mj_ray(self.model, self.data, origin, vec, occluder_groups, 1, -1, geom)
            if 0.0 <= distance < 1.0:
                blocked += 1
                owner = self._body_of.get(int(self.model.geom_bodyid[geom[0]]), "?")
                hits[owner] = hits.get(owner, 0) + 1
            if len(self._people) > 1:
                distance = mujoco.mj_ray(self.model, self.data, origin, vec, people_groups, 1,
                                         self._person_body[name], geom)
                by_people += 0.0 <= distance < 1.0
        n = float(len(points))
        return blocked / n, {k: v / n for k, v in sorted(hits.items())}, by_people / n
