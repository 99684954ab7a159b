"""The ROS-free half of the motion layer: goals -> timed velocity commands, with a watchdog.

Active perception nodes ask for discrete moves relative to the person they
look at; this module turns them into open-loop sequences of body-frame
velocity commands (``linear_x`` forward, ``linear_y`` left, ``angular_z``
counter-clockwise seen from above; REP-103) that a ROS node publishes as
``geometry_msgs/Twist`` at a fixed rate.

Goals (the robot is assumed to face the person at the start):

* :class:`Orbit` - move ``angle_rad`` around the person on the circle of
  radius ``radius_m`` (positive = counter-clockwise seen from above) and end
  facing the person again;
* :class:`Forward` - ``distance_m`` along the heading (negative = backward);
* :class:`Sideways` - ``distance_m`` to the left (negative = right), same heading;
* :class:`Turn` - rotate in place by ``angle_rad``.

Platforms:

* ``Platform.HOLONOMIC`` (a drone, an omni base): an orbit is ONE segment of
  sideways velocity plus yaw rate (the person stays straight ahead at the
  same distance all along); sideways moves use ``linear_y``.
* ``Platform.WHEELED`` (differential drive, no lateral motion): an orbit is
  turn 90° -> drive the arc (``v``, ``ω = v/r``) -> turn back 90°; a sideways
  move is turn 90° -> drive -> turn back. During those segments a forward
  camera loses the person: they are marked ``blind``.

Speeds are the limits (:class:`VelocityLimits`): linear ``max_linear``,
angular ``max_angular``, and on arcs ``v = min(max_linear, max_angular * r)``
so both hold. :func:`clamp` also bounds arbitrary commands.

Safety: :class:`Watchdog` (injectable clock) says "publish zero" when no
image arrived for more than ``timeout_s`` (0.5 s by default) or no person is
tracked. :class:`MotionController` starts a goal only while the watchdog is
clear, and cancels it (zero command; it does not resume) as soon as the
watchdog trips. By default the robot never moves while no person is tracked,
which stops a wheeled orbit as soon as the person leaves the camera; with
``allow_blind_segments=True`` the person check is suspended during the
segments marked ``blind`` (the image timeout always applies).
"""
from __future__ import annotations

import enum
import math
import numbers
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence, Union

Clock = Callable[[], float]


def _finite(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


# ------------------------------------------------------------------ data types
@dataclass(frozen=True)
class VelocityCommand:
    """Body-frame velocity: m/s forward, m/s left, rad/s counter-clockwise, and m/s up (drones only;
    last so that the planar commands keep their positional form)."""

    linear_x: float = 0.0
    linear_y: float = 0.0
    angular_z: float = 0.0
    linear_z: float = 0.0

    @property
    def is_zero(self) -> bool:
        return self.linear_x == 0.0 and self.linear_y == 0.0 and self.angular_z == 0.0 and self.linear_z == 0.0


ZERO = VelocityCommand()


@dataclass(frozen=True)
class Segment:
    """One constant command held for ``duration_s``; ``blind`` when a forward
    camera is expected to lose the person during it."""

    command: VelocityCommand
    duration_s: float
    blind: bool = False


@dataclass(frozen=True)
class VelocityLimits:
    """Largest speeds: ``max_linear`` (m/s, norm of x, y and z) and ``max_angular`` (rad/s)."""

    max_linear: float = 0.2
    max_angular: float = 0.5

    def __post_init__(self):
        for name in ("max_linear", "max_angular"):
            value = _finite(getattr(self, name), name)
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")


class Platform(enum.Enum):
    WHEELED = "wheeled"  #: differential drive: linear_x and angular_z only
    HOLONOMIC = "holonomic"  #: drone / omni base: linear_x, linear_y and angular_z (and linear_z: drone)


@dataclass(frozen=True)
class Orbit:
    """Move ``angle_rad`` (CCW > 0) around a person ``radius_m`` ahead, ending facing them."""

    angle_rad: float
    radius_m: float

    def __post_init__(self):
        if abs(_finite(self.angle_rad, "orbit angle_rad")) > 2 * math.pi:
            raise ValueError(f"orbit angle_rad must be within ±2π, got {self.angle_rad}")
        if _finite(self.radius_m, "orbit radius_m") <= 0:
            raise ValueError(f"orbit radius_m (distance to the person) must be > 0, got {self.radius_m}")


@dataclass(frozen=True)
class Forward:
    """Move ``distance_m`` along the heading (negative: backward)."""

    distance_m: float

    def __post_init__(self):
        _finite(self.distance_m, "forward distance_m")


@dataclass(frozen=True)
class Sideways:
    """Move ``distance_m`` to the left (negative: right), keeping the heading."""

    distance_m: float

    def __post_init__(self):
        _finite(self.distance_m, "sideways distance_m")


@dataclass(frozen=True)
class Turn:
    """Rotate in place by ``angle_rad`` (CCW > 0)."""

    angle_rad: float

    def __post_init__(self):
        _finite(self.angle_rad, "turn angle_rad")


@dataclass(frozen=True)
class Vertical:
    """Climb ``distance_m`` (negative: descend), keeping position and heading; drones only."""

    distance_m: float

    def __post_init__(self):
        _finite(self.distance_m, "vertical distance_m")


Goal = Union[Orbit, Forward, Sideways, Turn, Vertical]


# -------------------------------------------------------------------- planning
def clamp(command: VelocityCommand, limits: VelocityLimits) -> VelocityCommand:
    """``command`` within ``limits``: the linear (x, y, z) vector is scaled down to
    ``max_linear`` keeping its direction; ``angular_z`` is clipped to ±``max_angular``."""
    vx = _finite(command.linear_x, "linear_x")
    vy = _finite(command.linear_y, "linear_y")
    vz = _finite(command.linear_z, "linear_z")
    wz = _finite(command.angular_z, "angular_z")
    speed = math.hypot(vx, vy, vz)
    if speed > limits.max_linear:
        vx, vy, vz = (v * limits.max_linear / speed for v in (vx, vy, vz))
    wz = max(-limits.max_angular, min(limits.max_angular, wz))
    return VelocityCommand(vx, vy, wz, vz)


def _turn(angle: float, limits: VelocityLimits, blind: bool = False) -> list[Segment]:
    if angle == 0:
        return []
    w = math.copysign(limits.max_angular, angle)
    return [Segment(VelocityCommand(0.0, 0.0, w), abs(angle) / limits.max_angular, blind)]


def _straight(distance: float, limits: VelocityLimits, lateral: bool = False, blind: bool = False) -> list[Segment]:
    if distance == 0:
        return []
    v = math.copysign(limits.max_linear, distance)
    command = VelocityCommand(0.0, v, 0.0) if lateral else VelocityCommand(v, 0.0, 0.0)
    return [Segment(command, abs(distance) / limits.max_linear, blind)]


def plan(goal: Goal, platform: Platform, limits: VelocityLimits) -> tuple[Segment, ...]:
    """The timed command sequence that performs ``goal`` on ``platform`` within ``limits``."""
    if not isinstance(platform, Platform):
        raise ValueError(f"platform must be a Platform, got {platform!r}")
    if isinstance(goal, Turn):
        return tuple(_turn(goal.angle_rad, limits))
    if isinstance(goal, Forward):
        return tuple(_straight(goal.distance_m, limits))
    if isinstance(goal, Vertical):
        if platform is not Platform.HOLONOMIC:
            raise ValueError("a wheeled robot cannot move vertically")
        if goal.distance_m == 0:
            return ()
        v = math.copysign(limits.max_linear, goal.distance_m)
        return (Segment(VelocityCommand(linear_z=v), abs(goal.distance_m) / limits.max_linear),)
    if isinstance(goal, Sideways):
        if platform is Platform.HOLONOMIC:
            return tuple(_straight(goal.distance_m, limits, lateral=True))
        if goal.distance_m == 0:
            return ()
        quarter = math.copysign(math.pi / 2, goal.distance_m)  # face the side to go to
        return tuple(_turn(quarter, limits, blind=True) + _straight(abs(goal.distance_m), limits, blind=True)
                     + _turn(-quarter, limits, blind=True))
    if isinstance(goal, Orbit):
        theta, r = goal.angle_rad, goal.radius_m
        if theta == 0:
            return ()
        v = min(limits.max_linear, limits.max_angular * r)
        w = math.copysign(v / r, theta)
        duration = abs(theta) * r / v
        if platform is Platform.HOLONOMIC:
            # CCW around the person = to the robot's right while yawing left: the
            # instantaneous centre of rotation is the point r straight ahead.
            return (Segment(VelocityCommand(0.0, -math.copysign(v, theta), w), duration),)
        quarter = math.copysign(math.pi / 2, theta)  # CCW: the tangent is on the robot's right
        return tuple(_turn(-quarter, limits, blind=True)
                     + [Segment(VelocityCommand(v, 0.0, w), duration, blind=True)]
                     + _turn(quarter, limits, blind=True))
    raise ValueError(f"unknown goal {goal!r}; expected Orbit, Forward, Sideways, Turn or Vertical")


def plan_duration(segments: Iterable[Segment]) -> float:
    return float(sum(s.duration_s for s in segments))


@dataclass(frozen=True)
class Pose2D:
    """Planar pose in a fixed frame: metres and radians (yaw CCW from x)."""

    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0


def integrate(segments: Sequence[Segment], pose: Pose2D = Pose2D()) -> Pose2D:
    """Where the robot ends after executing ``segments`` perfectly from ``pose``
    (closed-form integration of each constant body twist)."""
    x, y, yaw = pose.x, pose.y, pose.yaw
    for s in segments:
        c, t = s.command, s.duration_s
        if abs(c.angular_z) < 1e-12:
            dx_b, dy_b = c.linear_x * t, c.linear_y * t
            x += math.cos(yaw) * dx_b - math.sin(yaw) * dy_b
            y += math.sin(yaw) * dx_b + math.cos(yaw) * dy_b
        else:
            w = c.angular_z
            y0, y1 = yaw, yaw + w * t
            ds, dc = math.sin(y1) - math.sin(y0), math.cos(y1) - math.cos(y0)
            x += (ds * c.linear_x + dc * c.linear_y) / w
            y += (-dc * c.linear_x + ds * c.linear_y) / w
            yaw = y1
    return Pose2D(x, y, math.atan2(math.sin(yaw), math.cos(yaw)))


# -------------------------------------------------------------------- watchdog
class Watchdog:
    """Says when the robot must stand still.

    Call :meth:`image_received` for every input image and
    :meth:`set_person_tracked` with the tracker's verdict. :meth:`stop_reason`
    is ``None`` when moving is allowed, else why not: no image yet, the last
    image older than ``timeout_s``, or no person tracked.
    """

    def __init__(self, timeout_s: float = 0.5, clock: Clock = time.monotonic):
        if _finite(timeout_s, "timeout_s") <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.timeout_s = float(timeout_s)
        self.clock = clock
        self._last_image: Optional[float] = None
        self._person = False

    def image_received(self) -> None:
        self._last_image = self.clock()

    def set_person_tracked(self, tracked: bool) -> None:
        self._person = bool(tracked)

    @property
    def person_tracked(self) -> bool:
        return self._person

    def stop_reason(self, ignore_person: bool = False) -> Optional[str]:
        """``None`` if the robot may move, otherwise the reason to publish zero."""
        if self._last_image is None:
            return "no input image received yet"
        age = self.clock() - self._last_image
        if age > self.timeout_s:
            return f"no input image for {age:.2f} s (timeout {self.timeout_s:.2f} s)"
        if not self._person and not ignore_person:
            return "no person is tracked"
        return None

    def must_stop(self, ignore_person: bool = False) -> bool:
        return self.stop_reason(ignore_person) is not None

    def filter(self, command: VelocityCommand, ignore_person: bool = False) -> VelocityCommand:
        """``command``, or zero if the robot must stop."""
        return ZERO if self.must_stop(ignore_person) else command


# ------------------------------------------------------------------ controller
class MotionController:
    """Executes one goal at a time as timed commands, guarded by a watchdog.

    A node calls :meth:`request` with a goal and publishes :meth:`command` at
    a fixed rate; each command holds until the next call, so segment ends are
    quantised to the publishing period. The plan is cancelled (and zero
    returned) when the watchdog trips; it never resumes by itself.
    """

    def __init__(self, platform: Platform, limits: VelocityLimits = VelocityLimits(),
                 watchdog: Optional[Watchdog] = None, clock: Optional[Clock] = None,
                 allow_blind_segments: bool = False):
        if not isinstance(platform, Platform):
            raise ValueError(f"platform must be a Platform, got {platform!r}")
        self.platform = platform
        self.limits = limits
        self.clock = clock or (watchdog.clock if watchdog is not None else time.monotonic)
        self.watchdog = watchdog if watchdog is not None else Watchdog(clock=self.clock)
        self.allow_blind_segments = bool(allow_blind_segments)
        self._segments: tuple[Segment, ...] = ()
        self._start = 0.0
        self.last_stop_reason: Optional[str] = None

    @property
    def active(self) -> bool:
        """A plan is running (its end is detected at the next :meth:`command`)."""
        return bool(self._segments)

    def request(self, goal: Goal) -> bool:
        """Start ``goal`` (replacing any running one); False, and nothing
        started, while the watchdog forbids moving (see ``last_stop_reason``)."""
        segments = plan(goal, self.platform, self.limits)
        reason = self.watchdog.stop_reason()
        if reason is not None:
            self.last_stop_reason = reason
            self.cancel()
            return False
        self._segments = segments
        self._start = self.clock()
        self.last_stop_reason = None
        return True

    def cancel(self) -> None:
        self._segments = ()

    def command(self) -> VelocityCommand:
        """The command to publish now."""
        if not self._segments:
            return ZERO
        elapsed = self.clock() - self._start
        for segment in self._segments:
            if elapsed < segment.duration_s:
                break
            elapsed -= segment.duration_s
        else:
            self.cancel()  # finished
            return ZERO
        reason = self.watchdog.stop_reason(ignore_person=self.allow_blind_segments and segment.blind)
        if reason is not None:
            self.last_stop_reason = reason
            self.cancel()
            return ZERO
        return clamp(segment.command, self.limits)
