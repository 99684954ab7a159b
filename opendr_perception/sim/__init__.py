"""ROS-free simulator core for the active face-recognition nodes (MuJoCo, headless EGL).

* :mod:`.scene` - the scene description (room, people with real face photos,
  occluders, robot, camera): dataclasses and YAML loading;
* :mod:`.face_world` - :class:`FaceWorld`, the MuJoCo world: robot kinematics
  (wheeled / drone), camera rendering (BGR), ground truth per person.

``face_world`` imports MuJoCo (and sets ``MUJOCO_GL=egl`` unless already set),
so it is imported lazily here: ``from opendr_perception.sim import Scene`` needs
no MuJoCo.
"""
from opendr_perception.sim.scene import Camera, Occluder, Person, Robot, Scene, load_scene

__all__ = ["Camera", "Occluder", "Person", "Robot", "Scene", "load_scene", "FaceWorld", "RobotPose"]


def __getattr__(name):
    if name in ("FaceWorld", "RobotPose"):
        from opendr_perception.sim import face_world
        return getattr(face_world, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
