"""The §2.1 active face recognition state machine on scripted FRC sequences."""
import pytest

import math

from opendr_perception.core.active_face_recognition import (LEFT, RIGHT, Action, ActiveFaceRecognition,
                                                            ActiveRecognitionConfig, Reason, RealView, ViewScore,
                                                            orbit_deg, run_episode)


def machine(**kwargs) -> ActiveFaceRecognition:
    return ActiveFaceRecognition(ActiveRecognitionConfig(**kwargs))


def test_start_real_view_best_stays_with_the_initial_identity():
    afr = machine(step_deg=15, max_steps=4)
    assert afr.views_to_render(0.2) == (LEFT, RIGHT)
    d = afr.step(RealView(0.2, "ann"), {LEFT: 0.1, RIGHT: 0.15})
    assert d.action is Action.STAY and d.done and d.reason is Reason.REAL_VIEW_BEST
    assert d.move_deg == 0 and d.offset_deg == 0 and d.position == 0
    r = afr.result()
    assert (r.identity, r.frc, r.moves, r.best_position, r.reason) == ("ann", 0.2, 0, 0, Reason.REAL_VIEW_BEST)


def test_start_ties_favour_the_real_view_then_minus_theta():
    afr = machine()
    assert afr.step(RealView(0.3, "ann"), {LEFT: 0.3, RIGHT: 0.3}).action is Action.STAY
    afr = machine()
    d = afr.step(RealView(0.1, "ann"), {LEFT: 0.3, RIGHT: 0.3})
    assert d.action is Action.MOVE_LEFT and d.direction == LEFT


@pytest.mark.parametrize("synth, action, move", [({LEFT: 0.5, RIGHT: 0.2}, Action.MOVE_LEFT, -10.0),
                                                  ({LEFT: 0.2, RIGHT: 0.5}, Action.MOVE_RIGHT, +10.0)])
def test_start_moves_toward_the_best_synthesized_view(synth, action, move):
    afr = machine(step_deg=10)
    d = afr.step(RealView(0.1, "ann"), synth)
    assert d.action is action and not d.done and d.reason is None
    assert d.move_deg == move and d.offset_deg == move and d.position == 0
    assert afr.position == 1 and afr.offset_deg == move


def test_confident_real_view_after_a_move_stops_without_rendering():
    afr = machine(step_deg=15, max_steps=4, confidence_threshold=0.5)
    afr.step(RealView(0.3, "bob"), {LEFT: 0.1, RIGHT: 0.6})
    assert afr.views_to_render(0.55) == ()  # FRC > t: nothing to render
    d = afr.step(RealView(0.55, "ann"))
    assert d.action is Action.STOP and d.reason is Reason.CONFIDENT and d.offset_deg == 15
    r = afr.result()
    assert r.identity == "ann" and r.best_position == 1 and r.best_offset_deg == 15 and r.moves == 1


def test_final_identity_is_the_best_real_view_not_the_last():
    # t is checked only after a move (seed): the start may be the best real view.
    afr = machine(step_deg=15, max_steps=4, confidence_threshold=0.5)
    afr.step(RealView(0.62, "ann"), {LEFT: 0.1, RIGHT: 0.7})
    d = afr.step(RealView(0.55, "bob"))
    assert d.reason is Reason.CONFIDENT
    r = afr.result()
    assert (r.identity, r.frc, r.best_position, r.best_offset_deg) == ("ann", 0.62, 0, 0)
    assert r.best_view.identity == "ann" and [v.identity for v in r.visited] == ["ann", "bob"]


def test_next_view_worse_stays_after_one_move():
    afr = machine(step_deg=15, max_steps=4, confidence_threshold=0.8)
    afr.step(RealView(0.1, "bob"), {LEFT: 0.4, RIGHT: 0.2})
    assert afr.views_to_render(0.45) == (LEFT,)  # one view, in the chosen direction
    d = afr.step(RealView(0.45, "ann"), {LEFT: 0.44})
    assert d.action is Action.STAY and d.reason is Reason.NEXT_VIEW_WORSE and d.offset_deg == -15
    r = afr.result()
    assert r.identity == "ann" and r.moves == 1 and r.best_offset_deg == -15


def test_equal_next_view_moves_on_as_in_the_seed():
    afr = machine(step_deg=15, max_steps=4, confidence_threshold=0.8)
    afr.step(RealView(0.1, "ann"), {LEFT: 0.2, RIGHT: 0.4})
    d = afr.step(RealView(0.3, "ann"), {RIGHT: 0.3})  # FRC(I_s) < FRC(I_r) is false: move
    assert d.action is Action.MOVE_RIGHT and d.offset_deg == 30


def test_step_budget_stops_after_n_moves_and_direction_never_reverses():
    afr = machine(step_deg=10, max_steps=4, confidence_threshold=0.9)
    frcs = [0.05, 0.1, 0.2, 0.3, 0.4]
    d = afr.step(RealView(frcs[0], "ann"), {LEFT: 0.0, RIGHT: 0.2})
    offsets = [d.offset_deg]
    for k in range(1, 4):
        with pytest.raises(ValueError, match="never reverses"):
            afr.step(RealView(frcs[k], "ann"), {LEFT: 0.9})
        assert afr.views_to_render(frcs[k]) == (RIGHT,)
        d = afr.step(RealView(frcs[k], "ann"), {RIGHT: frcs[k] + 0.1})
        assert d.action is Action.MOVE_RIGHT
        offsets.append(d.offset_deg)
    assert offsets == [10, 20, 30, 40]
    assert afr.views_to_render(frcs[4]) == ()  # budget spent: no render
    d = afr.step(RealView(frcs[4], "ann"))
    assert d.action is Action.STOP and d.reason is Reason.MAX_STEPS and d.position == 4
    r = afr.result()
    assert r.moves == 4 and r.best_position == 4 and r.best_offset_deg == 40 and r.frc == 0.4
    assert [x.action for x in r.decisions] == [Action.MOVE_RIGHT] * 4 + [Action.STOP]


def test_two_step_seed_algorithm_ends_after_the_second_move():
    afr = machine(step_deg=15, max_steps=2, confidence_threshold=0.9)
    afr.step(RealView(0.0), {LEFT: 0.3, RIGHT: 0.0})
    afr.step(RealView(0.2, "bob"), {LEFT: 0.35})
    d = afr.step(RealView(0.1, "ann"))  # line 25 of Algorithm 1: argmax over the three real views
    assert d.reason is Reason.MAX_STEPS
    r = afr.result()
    assert r.identity == "bob" and r.best_offset_deg == -15 and r.moves == 2


def test_all_views_unknown_gives_unknown():
    afr = machine(max_steps=1)
    afr.step(RealView(0.0), {LEFT: 0.0, RIGHT: 0.1})
    afr.step(RealView(0.0))
    r = afr.result()
    assert r.identity is None and r.frc == 0.0 and r.best_position == 0 and r.reason is Reason.MAX_STEPS


def test_static_mode_and_confidence_at_start_option():
    afr = machine(max_steps=0)
    assert afr.views_to_render(0.1) == ()
    assert afr.step(RealView(0.1, "ann")).reason is Reason.MAX_STEPS
    afr = machine(confidence_threshold=0.5, check_confidence_at_start=True)
    assert afr.views_to_render(0.7) == () and afr.views_to_render(0.4) == (LEFT, RIGHT)
    d = afr.step(RealView(0.7, "ann"))
    assert d.action is Action.STOP and d.reason is Reason.CONFIDENT and afr.result().identity == "ann"


def test_abort_returns_the_best_view_so_far():
    afr = machine(max_steps=4)
    with pytest.raises(RuntimeError, match="no real view"):
        afr.abort()
    afr.step(RealView(0.2, "ann", data="frame-0"), {LEFT: 0.1, RIGHT: 0.5})
    with pytest.raises(RuntimeError, match="still running"):
        afr.result()
    r = afr.abort()  # e.g. the orbit was cancelled by the motion watchdog
    assert r.reason is Reason.ABORTED and r.identity == "ann" and r.best_view.data == "frame-0"
    assert r.moves == 0


def test_misuse_raises_clear_errors():
    afr = machine()
    with pytest.raises(ValueError, match=r"directions \[-1, 1\]"):
        afr.step(RealView(0.2, "ann"))
    with pytest.raises(ValueError, match="synthesized FRC"):
        afr.step(RealView(0.2, "ann"), {LEFT: 1.5, RIGHT: 0.1})
    with pytest.raises(ValueError, match="real view FRC"):
        RealView(-0.1)
    with pytest.raises(ValueError, match="real must be a RealView"):
        afr.step(0.2, {LEFT: 0.1, RIGHT: 0.1})
    afr.step(RealView(0.9, "ann"), {LEFT: 0.1, RIGHT: 0.1})
    with pytest.raises(RuntimeError, match="reset"):
        afr.step(RealView(0.9, "ann"), {LEFT: 0.1, RIGHT: 0.1})
    afr.reset()
    assert not afr.done and afr.position == 0 and afr.direction == 0
    for bad in (dict(step_deg=0), dict(max_steps=-1), dict(max_steps=1.5), dict(confidence_threshold=1.2)):
        with pytest.raises(ValueError):
            ActiveRecognitionConfig(**bad)


def test_from_recognition_duck_types():
    class Rec:
        frc, identity = 0.4, "ann"

    view = RealView.from_recognition(Rec())
    assert view.frc == 0.4 and view.identity == "ann" and isinstance(view.data, Rec)


def frontal_world(frontal_deg, width_deg=60.0, render_bias=0.0):
    """FRC falling linearly with the pan distance from the frontal view; renders
    are the true FRC of the target view plus ``render_bias``."""
    def frc(offset):
        return max(0.0, 0.8 * (1 - abs(offset - frontal_deg) / width_deg))

    def real_at(offset):
        return RealView(frc(offset), "ann" if frc(offset) > 0 else None, data=offset)

    def synthesized(from_offset, to_offset):
        return min(1.0, max(0.0, frc(to_offset) + render_bias))

    return real_at, synthesized


@pytest.mark.parametrize("frontal, steps, expected_offset, reason", [
    (30.0, 4, 30.0, Reason.NEXT_VIEW_WORSE),   # walks to the frontal view, stops when the next is worse
    (-45.0, 4, -45.0, Reason.NEXT_VIEW_WORSE),
    (60.0, 2, 30.0, Reason.MAX_STEPS),         # budget spent before reaching it
    (0.0, 4, 0.0, Reason.REAL_VIEW_BEST),      # already frontal: stay
])
def test_run_episode_in_a_scripted_pan_world(frontal, steps, expected_offset, reason):
    real_at, synthesized = frontal_world(frontal)
    r = run_episode(ActiveRecognitionConfig(step_deg=15, max_steps=steps, confidence_threshold=0.95),
                    real_at, synthesized)
    assert r.reason is reason and r.best_offset_deg == expected_offset and r.identity == "ann"
    assert r.best_view.data == expected_offset


def test_run_episode_confident_stop_and_misleading_renders():
    real_at, synthesized = frontal_world(45.0)
    r = run_episode(ActiveRecognitionConfig(step_deg=15, max_steps=4, confidence_threshold=0.6),
                    real_at, synthesized)
    assert r.reason is Reason.CONFIDENT and r.best_offset_deg == 30.0  # FRC(30°) = 0.6667 > 0.6
    # Optimistic renders make it overshoot the frontal view; the answer is still the best REAL view.
    real_at, synthesized = frontal_world(15.0, render_bias=0.3)
    r = run_episode(ActiveRecognitionConfig(step_deg=15, max_steps=4, confidence_threshold=0.95),
                    real_at, synthesized)
    assert r.moves == 4 and r.reason is Reason.MAX_STEPS and r.best_offset_deg == 15.0


# ------------------------------------------------- like with like, and distance when nobody is recognised


def test_view_scores_order_by_frc_then_by_the_smaller_distance():
    assert ViewScore(0.2, 0.9).key > ViewScore(0.1, 0.1).key  # FRC first
    assert ViewScore(0.0, 0.62).key > ViewScore(0.0, 0.70).key > ViewScore(0.0).key  # then distance; inf last
    assert ViewScore.of(0.3) == ViewScore(0.3, math.inf)

    class Rec:
        frc, distance, identity = 0.0, 0.65, None

    assert ViewScore.of(Rec()) == ViewScore(0.0, 0.65) and RealView.from_recognition(Rec()).distance == 0.65
    for bad in (dict(frc=1.5), dict(frc=0.1, distance=-1.0), dict(frc=0.1, distance=math.nan)):
        with pytest.raises(ValueError):
            ViewScore(**bad)
    with pytest.raises(ValueError, match="view score"):
        ViewScore.of("high")


def test_failing_start_moves_towards_the_nearer_render():
    # Nobody recognised anywhere (all FRCs 0): the seed's comparison ties and stays ...
    afr = machine()
    assert afr.step(RealView(0.0, distance=0.70), {LEFT: 0.0, RIGHT: 0.0}).action is Action.STAY
    # ... the match distance ranks them: the +θ render is nearer the gallery than the current view.
    afr = machine()
    d = afr.step(RealView(0.0, distance=0.70), {LEFT: ViewScore(0.0, 0.75), RIGHT: ViewScore(0.0, 0.66)},
                 current=ViewScore(0.0, 0.68))
    assert d.action is Action.MOVE_RIGHT and d.offset_deg == 15
    # the current view still wins when it is the nearest
    afr = machine()
    d = afr.step(RealView(0.0, distance=0.70), {LEFT: ViewScore(0.0, 0.75), RIGHT: ViewScore(0.0, 0.69)},
                 current=ViewScore(0.0, 0.68))
    assert d.action is Action.STAY and d.reason is Reason.REAL_VIEW_BEST and afr.result().identity is None


def test_current_position_is_scored_like_the_renders_when_given():
    # The real image beats both renders (renders lose identity), but the round trip of the current
    # view through the same renderer does not: move towards the better render.
    synth = {LEFT: ViewScore(0.05, 0.57), RIGHT: ViewScore(0.2, 0.48)}
    assert machine().step(RealView(0.3, "ann", distance=0.42), synth).action is Action.STAY  # the seed
    d = machine().step(RealView(0.3, "ann", distance=0.42), synth, current=ViewScore(0.1, 0.54))
    assert d.action is Action.MOVE_RIGHT


def test_after_a_move_the_next_render_competes_with_the_current_round_trip():
    afr = machine(step_deg=15, max_steps=4, confidence_threshold=0.8)
    afr.step(RealView(0.0, distance=0.7), {LEFT: ViewScore(0.0, 0.75), RIGHT: ViewScore(0.0, 0.65)},
             current=ViewScore(0.0, 0.68))
    d = afr.step(RealView(0.15, "ann", distance=0.51), {RIGHT: ViewScore(0.1, 0.54)}, current=ViewScore(0.05, 0.57))
    assert d.action is Action.MOVE_RIGHT and d.offset_deg == 30  # worse than the real view, better than its round trip
    d = afr.step(RealView(0.3, "ann", distance=0.42), {RIGHT: ViewScore(0.1, 0.54)}, current=ViewScore(0.15, 0.51))
    assert d.action is Action.STAY and d.reason is Reason.NEXT_VIEW_WORSE
    r = afr.result()  # the identity is still the best REAL view
    assert (r.identity, r.frc, r.best_offset_deg, r.moves) == ("ann", 0.3, 30, 2)


def pan_distance_world(frontal_deg, loss=0.1, threshold=0.6):
    """Real distance growing with the pan from the frontal view (FRC 0 beyond 0.6); every render, the
    round trip included, adds ``loss`` to the distance of the view it shows."""
    def distance(offset):
        return 0.35 + 0.006 * abs(offset - frontal_deg)

    def score(d):
        return ViewScore(max(0.0, 1 - d / threshold), d)

    def real_at(offset):
        s = score(distance(offset))
        return RealView(s.frc, "ann" if s.frc > 0 else None, data=offset, distance=s.distance)

    def synthesized(from_offset, to_offset):
        return score(distance(to_offset) + loss)

    def current(offset, directions):
        return score(distance(offset) + loss)

    return real_at, synthesized, current


def test_lossy_renders_walk_to_the_front_only_when_compared_like_with_like():
    real_at, synthesized, current = pan_distance_world(frontal_deg=-55.0)  # start 55° off: distance 0.68, unknown
    config = ActiveRecognitionConfig(step_deg=15, max_steps=4, confidence_threshold=0.5)
    seed = run_episode(config, real_at, lambda a, b: synthesized(a, b).frc)
    assert seed.moves == 0 and seed.identity is None  # the seed's rule stays and fails
    ours = run_episode(config, real_at, synthesized, current)
    assert ours.identity == "ann" and ours.moves == 4 and ours.best_offset_deg == -60.0
    assert [d.action for d in ours.decisions] == [Action.MOVE_LEFT] * 4 + [Action.STOP]


def test_orbit_sign_maps_a_plus_theta_view_to_a_clockwise_orbit():
    assert orbit_deg(15.0) == -15.0 and orbit_deg(-15.0) == 15.0
