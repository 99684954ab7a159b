"""A gymnasium environment for DRL active vision in face recognition (OpenDR D3.3 §8.11).

On the MuJoCo face simulator (:class:`~opendr_perception.sim.face_world.FaceWorld`): a square room,
ONE person in the centre whose head carries a real face (a sample photo drawn per episode), facing
a random direction, and a camera drone started at a random distance and angle around them, looking
at the face (:meth:`FaceWorld.pose_facing`).

Observation: the camera frame downscaled to ``obs_size`` (default 400x300, the seed's), RGB uint8,
channel-last ``(300, 400, 3)`` as stable-baselines3's ``CnnPolicy`` expects (it transposes itself).

Actions, ``Discrete(5)`` (constants in :mod:`opendr_perception.models.active_vision_policy`):

* 0 STAY: BlazeFace (full range) + the dlib recogniser on the FULL-resolution render
  (``render_size``, default 640x480); reward = the FRC of the correct identity
  (``1 - d / 0.6``, D3.3 eq. 1), 0 when no face, unknown or the wrong identity. With several faces
  detected, the best FRC among those recognised as the correct person.
* 1 FORWARD / 2 BACKWARD: 0.1 m (``step_m``) along the camera heading.
* 3 LEFT / 4 RIGHT: an arc of ``arc_deg`` (default 10°) on the circle around the person's vertical
  axis through the face centre, at the current radius: the drone translates to its left (right)
  and yaws right (left) by the same angle, so distance and bearing to the face are kept and the
  viewing angle changes by ``arc_deg`` (arc length = radius x 10°, 0.35 m at 2 m). It is executed
  as one constant body-frame twist (lateral + forward + yaw rate, about the person's axis as
  instantaneous centre), so walls stop it like any motion. The pivot is the simulator's ground
  truth (the seed's "predefined arc around the person"); a real robot needs a distance estimate.

Reward is given on STAY only (0 otherwise; the seed leaves when it is computed unspecified). Episodes
are truncated after ``max_steps`` (default 1,000, the seed's); nothing terminates them.

``info``: ``distance`` (m), ``facing_angle_deg``, ``camera_azimuth_deg``, ``bearing_deg``,
``visible``, ``identity`` (the person's photo), ``pose`` (x, y, z, yaw), ``step`` and, after a
STAY, ``frc`` and ``recognised`` (the identity found or None).

The gallery: one frontal crop (BlazeFace box) per identity, from the original sample photos, dlib
ResNet descriptors. Deterministic given the ``reset`` seed (person, yaw, start pose; rendering and
models are deterministic).
"""
from __future__ import annotations

import functools
import math
from typing import Optional, Sequence

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from opendr_perception.models.active_vision_policy import (ACTION_NAMES, BACKWARD, FORWARD, LEFT,
                                                            OBS_HEIGHT, OBS_WIDTH, STAY)
from opendr_perception.sim.face_world import FaceWorld, load_image
from opendr_perception.sim.scene import Camera, Person, Robot, Scene

PERSON = "person"


@functools.lru_cache(maxsize=None)
def perception():
    """``(detector, recognizer)`` shared by every env of the process: BlazeFace full range and a dlib
    recogniser whose gallery holds one frontal crop per sample photo."""
    from opendr_perception.core.face_gallery import FaceGallery
    from opendr_perception.core.samples import PHOTOS
    from opendr_perception.models.face_detection import FaceDetector
    from opendr_perception.models.face_recognition import DlibResNetEmbedder, FaceRecognizer

    detector = FaceDetector("full_range")
    embedder = DlibResNetEmbedder()
    gallery = FaceGallery(embedder.name, embedder.default_threshold, dim=embedder.dim)
    for name in PHOTOS:
        photo = load_image(name)
        faces = detector.detect(photo)
        if faces:
            gallery.enroll(name, embedder.embed(photo, max(faces, key=lambda d: d.score).box), source=name)
    return detector, FaceRecognizer(embedder, gallery)


class ActiveVisionEnv(gym.Env):
    """See the module doc.

    Args:
        identities: sample photos drawn from per episode (default: all of ``samples.PHOTOS``).
        start_distance: ``(low, high)`` m of the start distance (uniform), or one number.
        start_angle_deg: ``(low, high)`` of the start angle from the direction the person faces
            (0 = in front, + = on their left), or one number.
        person_yaw_deg: ``(low, high)`` of the person's facing direction, or one number.
        room_size: side of the square room (m); default ``2 * max start distance + 2``, at least 6.
        max_steps: episode length. obs_size / render_size: ``(width, height)``.
        step_m, arc_deg: motion per action. fov_y_deg: camera field of view.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, identities: Optional[Sequence[str]] = None, start_distance=(1.0, 5.0),
                 start_angle_deg=(-180.0, 180.0), person_yaw_deg=(-180.0, 180.0), room_size: Optional[float] = None,
                 max_steps: int = 1000, obs_size=(OBS_WIDTH, OBS_HEIGHT), render_size=(640, 480),
                 step_m: float = 0.1, arc_deg: float = 10.0, fov_y_deg: float = 60.0,
                 render_mode: Optional[str] = None):
        from opendr_perception.core.samples import PHOTOS

        self.identities = tuple(identities or PHOTOS)
        for name in self.identities:
            if name not in PHOTOS:
                raise ValueError(f"unknown identity '{name}' (sample photos: {', '.join(PHOTOS)})")
        self.start_distance = self._range(start_distance, "start_distance")
        self.start_angle_deg = self._range(start_angle_deg, "start_angle_deg")
        self.person_yaw_deg = self._range(person_yaw_deg, "person_yaw_deg")
        if self.start_distance[0] <= 0.3:
            raise ValueError("start_distance must be > 0.3 m (the person's body keeps the drone away)")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.max_steps = int(max_steps)
        self.obs_size = (int(obs_size[0]), int(obs_size[1]))
        self.render_size = (int(render_size[0]), int(render_size[1]))
        self.step_m, self.arc_deg = float(step_m), float(arc_deg)
        self.room_size = float(room_size or max(6.0, 2.0 * self.start_distance[1] + 2.0))
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(len(ACTION_NAMES))
        self.observation_space = spaces.Box(0, 255, (self.obs_size[1], self.obs_size[0], 3), dtype=np.uint8)
        camera = Camera(width=self.render_size[0], height=self.render_size[1], fov_y_deg=fov_y_deg)
        # one world per identity (the face texture is baked into the model); built lazily
        self._camera = camera
        self._worlds: dict[str, FaceWorld] = {}
        self.world: Optional[FaceWorld] = None
        self.identity: Optional[str] = None
        self._frame_bgr: Optional[np.ndarray] = None
        self._steps = 0

    @staticmethod
    def _range(value, key):
        if isinstance(value, (int, float)):
            return (float(value), float(value))
        low, high = (float(v) for v in value)
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise ValueError(f"{key}: expected a number or (low, high), got {value!r}")
        return (low, high)

    def _world(self, identity: str) -> FaceWorld:
        if identity not in self._worlds:
            scene = Scene(room_size=self.room_size, people=[Person(PERSON, identity, 0.0, 0.0)],
                          robot=Robot(kind="drone", x=-1.5, y=0.0, z=1.55), camera=self._camera)
            self._worlds[identity] = FaceWorld(scene)
        return self._worlds[identity]

    # ------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        """``options`` may fix ``identity``, ``distance`` (m), ``angle_deg`` and ``person_yaw_deg``."""
        super().reset(seed=seed)
        options = options or {}
        rng = self.np_random
        identity = options.get("identity") or self.identities[int(rng.integers(len(self.identities)))]
        yaw = rng.uniform(*self.person_yaw_deg)
        distance = rng.uniform(*self.start_distance)
        angle = rng.uniform(*self.start_angle_deg)
        yaw = float(options.get("person_yaw_deg", yaw))
        distance = float(options.get("distance", distance))
        angle = float(options.get("angle_deg", angle))
        self.identity = identity
        self.world = self._world(identity)
        self.world.reset()
        self.world.set_person_pose(PERSON, 0.0, 0.0, yaw=math.radians(yaw))
        self.world.set_robot_pose(self.world.pose_facing(PERSON, distance, math.radians(angle)))
        self._steps = 0
        return self._observe(), self._info()

    def step(self, action):
        if self.world is None:
            raise RuntimeError("call reset() before step()")
        action = int(action)
        if not self.action_space.contains(action):
            raise ValueError(f"invalid action {action!r} (0-{self.action_space.n - 1}: {', '.join(ACTION_NAMES)})")
        extra = {}
        reward = 0.0
        if action == STAY:
            frc, recognised = self.recognise(self._frame_bgr)
            reward = frc
            extra = {"frc": frc, "recognised": recognised}
        elif action in (FORWARD, BACKWARD):
            self.world.step(linear=(self.step_m if action == FORWARD else -self.step_m, 0.0, 0.0), angular_z=0.0, dt=1.0)
        else:
            self._arc(-1.0 if action == LEFT else 1.0)
        self._steps += 1
        obs = self._observe()
        return obs, float(reward), False, self._steps >= self.max_steps, {**self._info(), **extra}

    def _arc(self, sign: float) -> None:
        """Rotate the drone by ``sign * arc_deg`` about the person's vertical face axis (LEFT = -1:
        the drone moves to its left and yaws right)."""
        px, py, _ = self.world.person_pose(PERSON)
        face = self.world.pose_facing(PERSON, 1.0, 0.0)  # only for the face centre's x, y
        yaw_person = self.world.person_pose(PERSON)[2]
        cx, cy = face.x - math.cos(yaw_person), face.y - math.sin(yaw_person)
        pose = self.world.robot_pose
        c, s = math.cos(pose.yaw), math.sin(pose.yaw)
        # the pivot in the body frame
        bx, by = c * (cx - pose.x) + s * (cy - pose.y), -s * (cx - pose.x) + c * (cy - pose.y)
        omega = sign * math.radians(self.arc_deg)  # over dt = 1 s
        self.world.step(linear=(omega * by, -omega * bx, 0.0), angular_z=omega, dt=1.0)

    def recognise(self, frame_bgr: np.ndarray) -> tuple[float, Optional[str]]:
        """``(FRC of the correct identity or 0, identity recognised or None)`` on a full-resolution frame."""
        detector, recognizer = perception()
        faces = detector.detect(frame_bgr)
        if not faces:
            return 0.0, None
        results = recognizer.recognize_many(frame_bgr, [f.box for f in faces])
        correct = [r.frc for r in results if r.identity == self.identity]
        if correct:
            return float(max(correct)), self.identity
        known = [r.identity for r in results if r.identity is not None]
        return 0.0, (known[0] if known else None)

    def _observe(self) -> np.ndarray:
        self._frame_bgr = self.world.render()
        if self._frame_bgr.shape[1::-1] != self.obs_size:
            small = cv2.resize(self._frame_bgr, self.obs_size, interpolation=cv2.INTER_AREA)
        else:
            small = self._frame_bgr
        return np.ascontiguousarray(small[:, :, ::-1])

    def _info(self) -> dict:
        truth = self.world.person_in_view(PERSON)
        pose = self.world.robot_pose
        return {"distance": truth["distance"], "facing_angle_deg": truth["facing_angle_deg"],
                "camera_azimuth_deg": truth["camera_azimuth_deg"], "bearing_deg": truth["bearing_deg"],
                "visible": truth["visible"], "identity": self.identity,
                "pose": (pose.x, pose.y, pose.z, pose.yaw), "step": self._steps}

    @property
    def frame_bgr(self) -> Optional[np.ndarray]:
        """The last full-resolution camera frame (BGR), the one the observation was made from."""
        return self._frame_bgr

    def render(self):
        if self._frame_bgr is None:
            return None
        return np.ascontiguousarray(self._frame_bgr[:, :, ::-1])

    def close(self):
        for world in self._worlds.values():
            world.close()
        self._worlds.clear()
        self.world = None
