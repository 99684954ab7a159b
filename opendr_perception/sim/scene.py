"""Scene description of the face simulator: dataclasses + YAML loading (no MuJoCo, no ROS).

A scene is a square room (side ``room_size`` metres, centred on the world
origin, walls at ``x, y = ±room_size/2``, floor at ``z = 0``) with people,
occluders and one robot carrying a camera. World frame: REP-103 (x, y on the
floor, z up). Angles are DEGREES here (scene/YAML API) and radians inside the
simulator; a yaw of 0 points along +x, positive is counter-clockwise seen from
above.

YAML layout (every key optional except each person's ``name``/``photo``/``x``/``y``
and each occluder's ``x``/``y``/``z``/``width``/``height``)::

    room_size: 8.0            # m, side of the square room
    wall_height: 2.5          # m
    camera: {width: 640, height: 480, fov_y_deg: 60, pitch_deg: 0}
    robot: {kind: drone, x: -2.0, y: 0.0, z: 1.55, yaw_deg: 0, radius: 0.2}
    people:
      - {name: eileen, photo: astronaut, x: 0, y: 0, yaw_deg: 180, height: 1.7}
    occluders:
      - {x: -1, y: 0.1, z: 1.55, width: 0.2, height: 0.3, yaw_deg: 180, texture: plain, color: [0.2, 0.3, 0.8]}

``photo`` is one of :data:`opendr_perception.core.samples.PHOTOS` (``astronaut``,
``grace_hopper``, ``cameraman``) or an image file (relative paths are relative
to the YAML file). ``texture`` of an occluder is ``plain`` (its ``color``), a
sample name or an image file. Colours are RGB in [0, 1].

Errors: unknown keys and bad values raise ``ValueError`` naming the key, e.g.
``scene.people[1].yaw: unknown key (allowed: height, name, photo, ...)``.
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import MISSING as _MISSING
from dataclasses import dataclass, field, fields
from typing import Any, Optional

ROBOT_KINDS = ("wheeled", "drone")
PLAIN = "plain"


def sample_photo_names() -> tuple[str, ...]:
    from opendr_perception.core.samples import PHOTOS
    return tuple(PHOTOS)


def _number(value, key: str, low: Optional[float] = None, high: Optional[float] = None,
            low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{key}: expected a finite number, got {value!r}")
    value = float(value)
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{key}: must be {'>' if low_open else '>='} {low:g}, got {value:g}")
    if high is not None and value > high:
        raise ValueError(f"{key}: must be <= {high:g}, got {value:g}")
    return value


def _integer(value, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{key}: expected an integer, got {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{key}: must be in [{low}, {high}], got {value}")
    return int(value)


def _string(value, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key}: expected a non-empty string, got {value!r}")
    return value


def _color(value, key: str) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) not in (3, 4):
        raise ValueError(f"{key}: expected an RGB(A) list of 3 or 4 numbers in [0, 1], got {value!r}")
    return tuple(_number(c, f"{key}[{i}]", 0.0, 1.0) for i, c in enumerate(value))


def _image_source(value, key: str, base_dir: Optional[str]) -> str:
    """A sample photo name, or an existing image file (resolved against ``base_dir``)."""
    value = _string(value, key)
    if value in sample_photo_names():
        return value
    path = value if os.path.isabs(value) or base_dir is None else os.path.join(base_dir, value)
    if not os.path.isfile(path):
        raise ValueError(f"{key}: '{value}' is neither a sample photo {sample_photo_names()} nor an existing "
                         f"image file")
    return os.path.abspath(path)


@dataclass
class Person:
    """A standing person whose head's front carries the face of ``photo``.

    ``yaw_deg`` is the direction the person FACES (0 = +x); ``height`` the top
    of the head (m). ``shirt_color`` is RGB in [0, 1] (None: a per-person default).
    """

    name: str
    photo: str
    x: float
    y: float
    yaw_deg: float = 0.0
    height: float = 1.7
    shirt_color: Optional[tuple[float, ...]] = None

    def validate(self, key: str = "person", base_dir: Optional[str] = None) -> "Person":
        self.name = _string(self.name, f"{key}.name")
        self.photo = _image_source(self.photo, f"{key}.photo", base_dir)
        self.x = _number(self.x, f"{key}.x")
        self.y = _number(self.y, f"{key}.y")
        self.yaw_deg = _number(self.yaw_deg, f"{key}.yaw_deg")
        self.height = _number(self.height, f"{key}.height", 0.8, 2.3)
        if self.shirt_color is not None:
            self.shirt_color = _color(self.shirt_color, f"{key}.shirt_color")
        return self


@dataclass
class Occluder:
    """A thin vertical panel centred at (x, y, z), ``width`` x ``height`` metres.

    ``yaw_deg`` is the direction its front face looks at (0 = +x). ``texture``:
    ``"plain"`` (uniform ``color``, RGB in [0, 1]), a sample photo name or an
    image file, shown on both faces. ``name`` defaults to ``occluder<i>``.
    """

    x: float
    y: float
    z: float
    width: float
    height: float
    yaw_deg: float = 0.0
    texture: str = PLAIN
    color: tuple[float, ...] = (0.45, 0.45, 0.5)
    name: str = ""
    thickness: float = 0.02

    def validate(self, key: str = "occluder", base_dir: Optional[str] = None) -> "Occluder":
        self.x = _number(self.x, f"{key}.x")
        self.y = _number(self.y, f"{key}.y")
        self.z = _number(self.z, f"{key}.z", 0.0)
        self.width = _number(self.width, f"{key}.width", 0.0, 20.0, low_open=True)
        self.height = _number(self.height, f"{key}.height", 0.0, 20.0, low_open=True)
        self.yaw_deg = _number(self.yaw_deg, f"{key}.yaw_deg")
        self.texture = PLAIN if self.texture == PLAIN else _image_source(self.texture, f"{key}.texture", base_dir)
        self.color = _color(self.color, f"{key}.color")
        if not isinstance(self.name, str):
            raise ValueError(f"{key}.name: expected a string, got {self.name!r}")
        self.thickness = _number(self.thickness, f"{key}.thickness", 0.001, 1.0)
        return self


@dataclass
class Robot:
    """The robot's start pose. ``z`` is the CAMERA height (fixed for ``wheeled``).

    ``kind``: ``"wheeled"`` (differential drive: forward speed + yaw rate) or
    ``"drone"`` (holonomic in x/y/z + yaw). ``radius``: the robot keeps this
    distance from the walls (and from people's bodies).
    """

    kind: str = "wheeled"
    x: float = 0.0
    y: float = 0.0
    z: float = 1.5
    yaw_deg: float = 0.0
    radius: float = 0.2

    def validate(self, key: str = "robot") -> "Robot":
        if self.kind not in ROBOT_KINDS:
            raise ValueError(f"{key}.kind: must be one of {ROBOT_KINDS}, got {self.kind!r}")
        self.x = _number(self.x, f"{key}.x")
        self.y = _number(self.y, f"{key}.y")
        self.z = _number(self.z, f"{key}.z", 0.0, low_open=True)
        self.yaw_deg = _number(self.yaw_deg, f"{key}.yaw_deg")
        self.radius = _number(self.radius, f"{key}.radius", 0.05, 2.0)
        return self


@dataclass
class Camera:
    """The robot's pinhole camera (square pixels). ``pitch_deg`` > 0 tilts it DOWN
    (REP-103: a positive rotation about the robot's y axis)."""

    width: int = 640
    height: int = 480
    fov_y_deg: float = 60.0
    pitch_deg: float = 0.0

    def validate(self, key: str = "camera") -> "Camera":
        self.width = _integer(self.width, f"{key}.width", 16, 4096)
        self.height = _integer(self.height, f"{key}.height", 16, 4096)
        self.fov_y_deg = _number(self.fov_y_deg, f"{key}.fov_y_deg", 1.0, 170.0)
        self.pitch_deg = _number(self.pitch_deg, f"{key}.pitch_deg", -89.0, 89.0)
        return self


@dataclass
class Scene:
    """A room, its people and occluders, and the robot with its camera."""

    room_size: float = 8.0
    people: list[Person] = field(default_factory=list)
    occluders: list[Occluder] = field(default_factory=list)
    robot: Robot = field(default_factory=Robot)
    camera: Camera = field(default_factory=Camera)
    wall_height: float = 2.5

    def __post_init__(self):
        self.validate()

    def validate(self, base_dir: Optional[str] = None) -> "Scene":
        """Check (and normalise) every field; ``ValueError`` naming the first bad key."""
        self.room_size = _number(self.room_size, "scene.room_size", 1.0, 200.0)
        self.wall_height = _number(self.wall_height, "scene.wall_height", 1.0, 20.0)
        half = self.room_size / 2.0
        for name, kind in (("people", Person), ("occluders", Occluder)):
            items = getattr(self, name)
            if not isinstance(items, list) or not all(isinstance(i, kind) for i in items):
                raise ValueError(f"scene.{name}: expected a list of {kind.__name__}")
        if not isinstance(self.robot, Robot):
            raise ValueError("scene.robot: expected a Robot")
        if not isinstance(self.camera, Camera):
            raise ValueError("scene.camera: expected a Camera")
        names = set()
        for i, person in enumerate(self.people):
            key = f"scene.people[{i}]"
            person.validate(key, base_dir)
            if person.name in names:
                raise ValueError(f"{key}.name: duplicate person name '{person.name}'")
            names.add(person.name)
            for axis in ("x", "y"):
                if abs(getattr(person, axis)) > half - 0.25:
                    raise ValueError(f"{key}.{axis}: {getattr(person, axis):g} m is outside the room "
                                     f"(|{axis}| <= {half - 0.25:g} m)")
            if person.height > self.wall_height:
                raise ValueError(f"{key}.height: {person.height:g} m is above the walls ({self.wall_height:g} m)")
        occluder_names = set()
        for i, occluder in enumerate(self.occluders):
            key = f"scene.occluders[{i}]"
            occluder.validate(key, base_dir)
            if not occluder.name:
                occluder.name = f"occluder{i}"
            if occluder.name in occluder_names or occluder.name in names:
                raise ValueError(f"{key}.name: duplicate name '{occluder.name}'")
            occluder_names.add(occluder.name)
            for axis in ("x", "y"):
                if abs(getattr(occluder, axis)) > half:
                    raise ValueError(f"{key}.{axis}: {getattr(occluder, axis):g} m is outside the room")
        self.robot.validate("scene.robot")
        for axis in ("x", "y"):
            if abs(getattr(self.robot, axis)) > half - self.robot.radius:
                raise ValueError(f"scene.robot.{axis}: {getattr(self.robot, axis):g} m is outside the room "
                                 f"minus the robot radius (|{axis}| <= {half - self.robot.radius:g} m)")
        if self.robot.z >= self.wall_height:
            raise ValueError(f"scene.robot.z: {self.robot.z:g} m is above the walls ({self.wall_height:g} m)")
        self.camera.validate("scene.camera")
        return self

    @classmethod
    def from_dict(cls, data: Any, base_dir: Optional[str] = None) -> "Scene":
        """A scene from plain data (a parsed YAML document); ``base_dir`` resolves relative image paths."""
        if data is None:
            data = {}
        _check_mapping(data, "scene", cls)
        kwargs = {k: v for k, v in data.items() if k not in ("people", "occluders", "robot", "camera")}
        kwargs["people"] = [_build(Person, item, f"scene.people[{i}]")
                            for i, item in enumerate(_list(data.get("people", []), "scene.people"))]
        kwargs["occluders"] = [_build(Occluder, item, f"scene.occluders[{i}]")
                               for i, item in enumerate(_list(data.get("occluders", []), "scene.occluders"))]
        kwargs["robot"] = _build(Robot, data.get("robot", {}) or {}, "scene.robot")
        kwargs["camera"] = _build(Camera, data.get("camera", {}) or {}, "scene.camera")
        scene = object.__new__(cls)  # validate with base_dir before __post_init__ would (without it)
        for f in fields(cls):
            default = f.default_factory() if f.default_factory is not _MISSING else f.default
            setattr(scene, f.name, kwargs.get(f.name, default))
        return scene.validate(base_dir)

    def to_dict(self) -> dict:
        """Plain data (YAML-ready) of this scene."""
        def plain(obj):
            return {f.name: (list(v) if isinstance(v := getattr(obj, f.name), tuple) else v) for f in fields(obj)}
        return {"room_size": self.room_size, "wall_height": self.wall_height, "camera": plain(self.camera),
                "robot": plain(self.robot), "people": [plain(p) for p in self.people],
                "occluders": [plain(o) for o in self.occluders]}



def _list(value, key: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{key}: expected a list, got {type(value).__name__}")
    return value


def _check_mapping(data, key: str, kind) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{key}: expected a mapping of {kind.__name__} fields, got {type(data).__name__}")
    allowed = sorted(f.name for f in fields(kind))
    for k in data:
        if k not in allowed:
            raise ValueError(f"{key}.{k}: unknown key (allowed: {', '.join(allowed)})")


def _build(kind, data, key: str):
    _check_mapping(data, key, kind)
    missing = [f.name for f in fields(kind)
               if f.default is _MISSING and f.default_factory is _MISSING and f.name not in data]
    if missing:
        raise ValueError(f"{key}.{missing[0]}: missing required key")
    return kind(**data)


def load_scene(path) -> Scene:
    """Read and validate a scene YAML file (see the module docstring for the layout)."""
    import yaml

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"scene file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as error:
        raise ValueError(f"scene file {path} is not valid YAML: {error}") from error
    try:
        return Scene.from_dict(data, base_dir=os.path.dirname(os.path.abspath(path)))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
