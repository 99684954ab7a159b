"""Motion layer: limits, arc geometry, timed execution and the watchdog (fake clock)."""
import math

import pytest

from opendr_perception.core.motion import (ZERO, Forward, MotionController, Orbit, Platform, Pose2D, Segment,
                                           Sideways, Turn, VelocityCommand, VelocityLimits, Vertical, Watchdog, clamp,
                                           integrate, plan, plan_duration)

LIMITS = VelocityLimits(max_linear=0.3, max_angular=0.6)


class FakeClock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t

    def advance(self, dt):
        self.t += dt


def euler(segments, pose, dt=1e-3, track=None):
    """Independent numerical integration of body-frame commands (midpoint rule)."""
    x, y, yaw = pose.x, pose.y, pose.yaw
    for s in segments:
        n = max(1, int(round(s.duration_s / dt)))
        h = s.duration_s / n
        c = s.command
        for _ in range(n):
            mid = yaw + 0.5 * c.angular_z * h
            x += (math.cos(mid) * c.linear_x - math.sin(mid) * c.linear_y) * h
            y += (math.sin(mid) * c.linear_x + math.cos(mid) * c.linear_y) * h
            yaw += c.angular_z * h
            if track is not None:
                track.append((x, y, yaw, s))
    return Pose2D(x, y, yaw)


def polar(pose):
    """Distance to the person at the origin, bearing of the robot seen from the person,
    and how far the robot's heading is from pointing at the person."""
    r = math.hypot(pose.x, pose.y)
    bearing = math.atan2(pose.y, pose.x)
    to_person = math.atan2(-pose.y, -pose.x)
    facing = math.atan2(math.sin(to_person - pose.yaw), math.cos(to_person - pose.yaw))
    return r, bearing, facing


def angle_diff(a, b):
    return math.atan2(math.sin(a - b), math.cos(a - b))


def assert_pose(actual, expected, abs_tol=1e-6):
    assert (actual.x, actual.y) == pytest.approx((expected.x, expected.y), abs=abs_tol)
    assert angle_diff(actual.yaw, expected.yaw) == pytest.approx(0.0, abs=abs_tol)


def test_clamp_scales_linear_norm_and_clips_angular():
    c = clamp(VelocityCommand(0.6, 0.8, -2.0), LIMITS)
    assert math.hypot(c.linear_x, c.linear_y) == pytest.approx(0.3)
    assert c.linear_x / c.linear_y == pytest.approx(0.6 / 0.8)  # direction kept
    assert c.angular_z == -0.6
    assert clamp(VelocityCommand(0.1, 0.0, 0.2), LIMITS) == VelocityCommand(0.1, 0.0, 0.2)
    assert clamp(ZERO, LIMITS).is_zero
    with pytest.raises(ValueError, match="max_linear"):
        VelocityLimits(max_linear=0.0)
    with pytest.raises(ValueError, match="linear_x"):
        clamp(VelocityCommand(float("nan")), LIMITS)


@pytest.mark.parametrize("platform", list(Platform))
@pytest.mark.parametrize("goal", [Orbit(math.radians(15), 1.5), Orbit(-math.radians(40), 0.3),
                                  Forward(0.5), Forward(-0.2), Sideways(0.4), Sideways(-0.4), Turn(-1.0)])
def test_plans_respect_limits_and_platform(platform, goal):
    segments = plan(goal, platform, LIMITS)
    assert segments and all(s.duration_s > 0 for s in segments)
    for s in segments:
        c = s.command
        assert math.hypot(c.linear_x, c.linear_y) <= LIMITS.max_linear + 1e-12
        assert abs(c.angular_z) <= LIMITS.max_angular + 1e-12
        if platform is Platform.WHEELED:
            assert c.linear_y == 0.0  # no lateral motion
    assert_pose(integrate(segments, Pose2D()), euler(segments, Pose2D()))


@pytest.mark.parametrize("platform", list(Platform))
@pytest.mark.parametrize("theta_deg, radius", [(15, 1.5), (-15, 1.5), (40, 0.8), (-90, 2.0), (10, 0.25)])
def test_orbit_moves_theta_around_the_person_at_the_same_radius(platform, theta_deg, radius):
    theta = math.radians(theta_deg)
    start = Pose2D(-radius, 0.0, 0.0)  # person at the origin, robot facing it
    track = []
    end = euler(plan(Orbit(theta, radius), platform, LIMITS), start, track=track)
    r, bearing, facing = polar(end)
    assert r == pytest.approx(radius, abs=0.005)
    assert math.degrees(angle_diff(bearing, math.pi)) == pytest.approx(theta_deg, abs=0.2)
    assert math.degrees(facing) == pytest.approx(0.0, abs=0.2)  # facing the person again
    # All along, the robot stays on the circle; a drone also keeps the person straight ahead.
    for x, y, yaw, segment in track:
        assert math.hypot(x, y) == pytest.approx(radius, abs=0.005)
        if platform is Platform.HOLONOMIC:
            assert math.degrees(polar(Pose2D(x, y, yaw))[2]) == pytest.approx(0.0, abs=0.2)
        else:
            assert segment.blind  # a forward camera looks away during turn-arc-turn


def test_holonomic_orbit_is_one_segment_and_arcs_obey_the_angular_limit():
    (segment,) = plan(Orbit(math.radians(30), 2.0), Platform.HOLONOMIC, LIMITS)
    assert segment.command.linear_x == 0.0 and segment.command.linear_y == -0.3
    assert segment.command.angular_z == pytest.approx(0.3 / 2.0)
    assert segment.duration_s == pytest.approx(math.radians(30) * 2.0 / 0.3)
    # Close to the person the arc speed is limited by max_angular: v = ω_max * r.
    (segment,) = plan(Orbit(math.radians(30), 0.25), Platform.HOLONOMIC, LIMITS)
    assert segment.command.angular_z == pytest.approx(0.6)
    assert abs(segment.command.linear_y) == pytest.approx(0.6 * 0.25)


def test_forward_and_sideways_displacements():
    assert_pose(integrate(plan(Forward(0.5), Platform.WHEELED, LIMITS)), Pose2D(0.5, 0.0, 0.0))
    assert_pose(integrate(plan(Forward(-0.2), Platform.HOLONOMIC, LIMITS)), Pose2D(-0.2, 0.0, 0.0))
    for platform in Platform:
        end = integrate(plan(Sideways(-0.4), platform, LIMITS), Pose2D(1.0, 2.0, math.pi / 2))
        assert_pose(end, Pose2D(1.4, 2.0, math.pi / 2))  # to the right of a robot facing +y
    assert plan(Orbit(0.0, 1.0), Platform.WHEELED, LIMITS) == () and plan(Forward(0.0), Platform.WHEELED, LIMITS) == ()
    assert plan_duration(plan(Forward(0.6), Platform.WHEELED, LIMITS)) == pytest.approx(2.0)


def test_goal_validation():
    with pytest.raises(ValueError, match="radius"):
        Orbit(0.3, 0.0)
    with pytest.raises(ValueError, match="angle"):
        Orbit(7.0, 1.0)
    with pytest.raises(ValueError, match="distance"):
        Forward(float("inf"))
    with pytest.raises(ValueError, match="unknown goal"):
        plan("forward", Platform.WHEELED, LIMITS)
    with pytest.raises(ValueError, match="platform"):
        plan(Forward(1.0), "drone", LIMITS)


def test_watchdog_timeout_and_person_with_a_fake_clock():
    clock = FakeClock()
    dog = Watchdog(timeout_s=0.5, clock=clock)
    assert dog.stop_reason() == "no input image received yet"
    dog.image_received()
    assert dog.stop_reason() == "no person is tracked"
    assert dog.filter(VelocityCommand(0.1)) == ZERO
    dog.set_person_tracked(True)
    assert dog.stop_reason() is None and dog.filter(VelocityCommand(0.1)) == VelocityCommand(0.1)
    clock.advance(0.5)
    assert not dog.must_stop()  # exactly at the timeout: still fresh
    clock.advance(0.01)
    assert dog.must_stop() and "no input image for 0.51 s" in dog.stop_reason()
    assert dog.must_stop(ignore_person=True)  # stale images stop everything
    dog.image_received()
    assert not dog.must_stop()
    dog.set_person_tracked(False)
    assert dog.must_stop() and not dog.must_stop(ignore_person=True)
    with pytest.raises(ValueError, match="timeout"):
        Watchdog(timeout_s=0)


def run_controller(controller, clock, rate_hz, duration_s, feed=lambda t: (True, True)):
    """Publish at ``rate_hz``; ``feed(t)`` -> (image arrives, person tracked). Returns the
    commands as held segments."""
    held = []
    period = 1.0 / rate_hz
    t = 0.0
    while t < duration_s:
        image, person = feed(t)
        if image:
            controller.watchdog.image_received()
        controller.watchdog.set_person_tracked(person)
        held.append(Segment(controller.command(), period))
        clock.advance(period)
        t += period
    return held


@pytest.mark.parametrize("platform", list(Platform))
def test_controller_executes_an_orbit_at_a_publishing_rate(platform):
    clock = FakeClock()
    controller = MotionController(platform, LIMITS, Watchdog(clock=clock), allow_blind_segments=True)
    controller.watchdog.image_received()
    controller.watchdog.set_person_tracked(True)
    theta, radius = math.radians(15), 1.2
    assert controller.request(Orbit(theta, radius))
    total = plan_duration(plan(Orbit(theta, radius), platform, LIMITS))
    held = run_controller(controller, clock, 50, total + 0.5)
    assert not controller.active and held[-1].command == ZERO
    r, bearing, facing = polar(integrate(held, Pose2D(-radius, 0.0, 0.0)))
    assert r == pytest.approx(radius, abs=0.02)  # segment ends are quantised to 20 ms
    assert math.degrees(angle_diff(bearing, math.pi)) == pytest.approx(15, abs=1.0)
    assert math.degrees(facing) == pytest.approx(0, abs=1.5)


def test_controller_never_starts_without_a_person_or_images():
    clock = FakeClock()
    controller = MotionController(Platform.HOLONOMIC, LIMITS, Watchdog(clock=clock))
    assert not controller.request(Forward(0.5))
    assert controller.last_stop_reason == "no input image received yet" and controller.command() == ZERO
    controller.watchdog.image_received()
    assert not controller.request(Forward(0.5)) and controller.last_stop_reason == "no person is tracked"
    controller.watchdog.set_person_tracked(True)
    assert controller.request(Forward(0.5)) and controller.command() == VelocityCommand(0.3, 0.0, 0.0)


@pytest.mark.parametrize("feed, reason", [
    (lambda t: (t < 0.3, True), "no input image"),  # camera stream stops
    (lambda t: (True, t < 0.3), "no person is tracked"),  # person lost
])
def test_controller_stops_and_cancels_when_the_watchdog_trips(feed, reason):
    clock = FakeClock()
    controller = MotionController(Platform.HOLONOMIC, LIMITS, Watchdog(timeout_s=0.5, clock=clock))
    controller.watchdog.image_received()
    controller.watchdog.set_person_tracked(True)
    assert controller.request(Orbit(math.radians(60), 1.0))  # 3.5 s long
    held = run_controller(controller, clock, 20, 2.0, feed)
    moving = [not s.command.is_zero for s in held]
    first_zero = moving.index(False)
    assert all(moving[:first_zero]) and not any(moving[first_zero:])  # stops, never resumes
    assert reason in controller.last_stop_reason and not controller.active
    limit = 0.3 + 0.5 + 0.1 if reason == "no input image" else 0.3 + 0.1
    assert first_zero * 0.05 <= limit


def test_blind_segments_only_with_the_option():
    def lose_person_after_first_tick(t):
        return True, t < 0.01

    for allow, expect_finished in ((False, False), (True, True)):
        clock = FakeClock()
        controller = MotionController(Platform.WHEELED, LIMITS, Watchdog(clock=clock),
                                      allow_blind_segments=allow)
        controller.watchdog.image_received()
        controller.watchdog.set_person_tracked(True)
        assert controller.request(Orbit(math.radians(15), 1.0))
        held = run_controller(controller, clock, 20, 8.0, lose_person_after_first_tick)
        moved = sum(s.duration_s for s in held if not s.command.is_zero)
        total = plan_duration(plan(Orbit(math.radians(15), 1.0), Platform.WHEELED, LIMITS))
        assert (moved >= total - 0.05) == expect_finished, (allow, moved, total)
        if not allow:
            assert moved <= 0.05 and controller.last_stop_reason == "no person is tracked"


def test_vertical_moves_are_for_drones_and_count_in_the_linear_limit():
    (segment,) = plan(Vertical(-0.15), Platform.HOLONOMIC, LIMITS)
    assert segment.command == VelocityCommand(linear_z=-0.3) and not segment.command.is_zero
    assert segment.command.linear_z * segment.duration_s == pytest.approx(-0.15)  # descends 0.15 m
    assert plan(Vertical(0.0), Platform.HOLONOMIC, LIMITS) == ()
    with pytest.raises(ValueError, match="wheeled robot cannot move vertically"):
        plan(Vertical(0.1), Platform.WHEELED, LIMITS)
    c = clamp(VelocityCommand(0.3, 0.0, 0.0, 0.4), LIMITS)  # (x, z) = (0.3, 0.4): norm 0.5 -> 0.3
    assert math.hypot(c.linear_x, c.linear_y, c.linear_z) == pytest.approx(0.3)
    assert c.linear_z / c.linear_x == pytest.approx(0.4 / 0.3)
    with pytest.raises(ValueError, match="vertical distance_m"):
        Vertical(float("inf"))
