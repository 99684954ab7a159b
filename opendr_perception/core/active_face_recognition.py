"""Active face recognition through synthesized views (OpenDR D3.3 §2.1), as pure logic.

Kakaletsis & Nikolaidis: the robot renders the face it sees ``±θ`` in pan,
moves ``θ`` around the person toward the render the recogniser likes best,
and repeats in the same direction for at most ``N`` moves. This module is the
decision logic only: no images, no renderer, no ROS. Each call of
:meth:`ActiveFaceRecognition.step` takes

* the FRC (face recognition confidence, D3.3 eq. 1) of the REAL image
  captured at the current position (a :class:`RealView`), and
* the FRCs of the synthesized views it asks for: both ``-θ`` and ``+θ`` at
  the start, one view in the chosen direction after a move, none when the
  episode ends without rendering. :meth:`ActiveFaceRecognition.views_to_render`
  says which, so the caller renders only what is needed.

Rules (seed Algorithm 1, generalised to N moves as its text describes):

1. Start (position 0): of the scores of the CURRENT position, ``I_s-`` and
   ``I_s+`` the largest wins. Current position -> STAY (episode ends).
   Otherwise move ``-θ`` (MOVE_LEFT) or ``+θ`` (MOVE_RIGHT); that sign is kept
   for the whole episode (the direction never reverses). Ties favour the
   current position, then ``-θ``.
2. After move k: if ``FRC(I_r^k) > t`` (the real image) -> STOP (confident).
   Else if k = N -> STOP (step budget spent). Else render one more ``θ`` in
   the same direction: if its score is below the current position's -> STAY
   (the next view would be worse); otherwise (``>=``, as in the seed) move
   again.
3. Final identity: that of the REAL image with the highest FRC among all the
   visited positions (earliest on ties), eqs. (2)-(3); renders only steer. It
   is ``None`` (unknown) when that FRC is 0.

Like with like (``current``). The seed scores the current position by
``FRC(I_r)``, the real image, against renders; its Rotate-and-Render output
passes every view through the same renderer and GAN. A renderer that loses
identity (ours: about +0.1 dlib distance at 15°) then never beats the real
image and the robot never moves, even where moving 15-30° would make the
static recogniser succeed. So :meth:`ActiveFaceRecognition.step` takes an
optional ``current`` score: the caller scores the current position by a view
that went through the same renderer and losses as the candidates (the node
and the benchmark use the round trip ``+-θ`` and back, see
:meth:`~opendr_perception.models.view_synthesis.ViewSynthesizer.round_trip`);
without it the real image's own score is used, as in the seed.

Continuous confidence (our extension). FRC is 0 for every face farther than
the threshold, so from a start where nobody is recognised all three scores
tie at 0 and the seed's rule stays. A score is therefore a :class:`ViewScore`
``(frc, distance)`` ordered by FRC, then by the SMALLER nearest-match
distance. With one threshold FRC = 1 - d/τ is itself decreasing in d, so this
is the order of the distance wherever FRC > 0 and only breaks FRC's ties at 0
(the failing start). Plain floats are FRCs with an unknown (infinite)
distance, so FRC-only callers get the seed's rule unchanged.

``t`` (``confidence_threshold``) is "experimentally evaluated" and not given
in the seed; 0.5 is our default. ``θ`` was the dataset pan step (15° HPID,
10° QMUL/SD) and ``N`` 2 or 4 in the seed's experiments.

Sign convention: MOVE_LEFT is the ``-θ`` view and MOVE_RIGHT the ``+θ`` view
of the renderer's pan axis (positive = the person turned to THEIR left). A
``+θ`` view is what the camera sees after orbiting θ clockwise seen from
above, so the move is :func:`orbit_deg` ``(move_deg)`` counter-clockwise
(:data:`ORBIT_SIGN`); the node and the benchmark both use it, and the
closed-loop test checks it against the simulator's ground truth.
"""
from __future__ import annotations

import enum
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

LEFT = -1  #: the ``-θ`` direction
RIGHT = +1  #: the ``+θ`` direction
ORBIT_SIGN = -1
"""A ``+θ`` view (the person's pan grows by θ, see :mod:`~opendr_perception.models.view_synthesis`)
is what the camera sees after orbiting θ CLOCKWISE (seen from above) around the person, i.e. an
orbit of ``ORBIT_SIGN * θ`` in the counter-clockwise-positive convention of
:class:`~opendr_perception.core.motion.Orbit`; :func:`orbit_deg` applies it."""


def orbit_deg(move_deg: float) -> float:
    """The counter-clockwise orbit (degrees, seen from above) that realises a pan move of ``move_deg``."""
    return ORBIT_SIGN * move_deg


class Action(enum.Enum):
    """What the robot does after a step."""

    STAY = "stay"  #: do not move; the episode is over (real view best / next view worse)
    MOVE_LEFT = "move_left"  #: orbit by -θ, capture a real image, call step() again
    MOVE_RIGHT = "move_right"  #: orbit by +θ, capture a real image, call step() again
    STOP = "stop"  #: the episode is over (confident enough / step budget spent / aborted)


class Reason(enum.Enum):
    """Why an episode ended."""

    REAL_VIEW_BEST = "the real image scored at least as high as both synthesized views"
    NEXT_VIEW_WORSE = "the synthesized next view scored lower than the current real image"
    CONFIDENT = "the real image's FRC exceeded the confidence threshold"
    MAX_STEPS = "the maximum number of moves was made"
    ABORTED = "the episode was aborted by the caller"


@dataclass(frozen=True)
class ViewScore:
    """How well a view (real or synthesized) is recognised: ``frc`` in [0, 1] and the L2
    ``distance`` to the nearest gallery face (``inf`` = not known). Ordered by :attr:`key`."""

    frc: float
    distance: float = math.inf

    def __post_init__(self):
        _check_frc(self.frc, "view FRC")
        if isinstance(self.distance, bool) or not isinstance(self.distance, numbers.Real) \
                or math.isnan(self.distance) or self.distance < 0:
            raise ValueError(f"view distance must be a number >= 0 (inf = unknown), got {self.distance!r}")

    @property
    def key(self) -> tuple[float, float]:
        """Sort key: the higher FRC, then the smaller distance, is better."""
        return (float(self.frc), -float(self.distance))

    @classmethod
    def of(cls, value) -> "ViewScore":
        """A ViewScore as is, a plain number as an FRC with unknown distance, or an object with
        ``frc`` and ``distance`` attributes (e.g. a ``Recognition``)."""
        if isinstance(value, ViewScore):
            return value
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return cls(float(value))
        if hasattr(value, "frc") and hasattr(value, "distance"):
            return cls(float(value.frc), float(value.distance))
        raise ValueError(f"a view score must be an FRC number or a ViewScore, got {value!r}")


@dataclass(frozen=True)
class RealView:
    """The recognition of a REAL image captured at one position.

    ``frc`` in [0, 1]; ``identity`` the recognised person or ``None``
    (unknown); ``distance`` to the nearest gallery face (``inf`` = not
    given); ``data`` anything the caller wants back with the final result
    (the image, a full recognition record...).
    """

    frc: float
    identity: Optional[str] = None
    data: Any = None
    distance: float = math.inf

    def __post_init__(self):
        _check_frc(self.frc, "real view FRC")
        ViewScore(self.frc, self.distance)  # validates the distance

    @property
    def score(self) -> ViewScore:
        return ViewScore(self.frc, self.distance)

    @classmethod
    def from_recognition(cls, recognition, data: Any = None) -> "RealView":
        """From any object with ``frc`` and ``identity`` (and optionally ``distance``) attributes
        (e.g. a ``Recognition``)."""
        return cls(frc=float(recognition.frc), identity=recognition.identity,
                   data=recognition if data is None else data,
                   distance=float(getattr(recognition, "distance", math.inf)))


@dataclass(frozen=True)
class ActiveRecognitionConfig:
    """Parameters of the algorithm.

    Args:
        step_deg: θ, the pan step between positions (degrees, > 0).
        max_steps: N, the most moves in one episode (0 = static recognition).
        confidence_threshold: t, stop after a move once the real FRC exceeds it.
        check_confidence_at_start: also apply the ``FRC > t`` stop to the
            initial image, saving two renders (not in the seed; off by default).
    """

    step_deg: float = 15.0
    max_steps: int = 2
    confidence_threshold: float = 0.5
    check_confidence_at_start: bool = False

    def __post_init__(self):
        if not (isinstance(self.step_deg, numbers.Real) and math.isfinite(self.step_deg) and 0 < self.step_deg <= 180):
            raise ValueError(f"step_deg must be in (0, 180], got {self.step_deg!r}")
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int) or self.max_steps < 0:
            raise ValueError(f"max_steps must be an integer >= 0, got {self.max_steps!r}")
        _check_frc(self.confidence_threshold, "confidence_threshold")


@dataclass(frozen=True)
class Decision:
    """The outcome of one :meth:`ActiveFaceRecognition.step`.

    ``position`` is the number of moves made before this decision (0 = the
    start); ``move_deg`` the signed pan move to execute now (0 when not
    moving); ``offset_deg`` the pan offset from the start after that move;
    ``reason`` why the episode ended (``None`` while moving).
    """

    action: Action
    position: int
    move_deg: float
    offset_deg: float
    reason: Optional[Reason] = None

    @property
    def done(self) -> bool:
        return self.action in (Action.STAY, Action.STOP)

    @property
    def direction(self) -> int:
        """-1, +1 for a move, 0 otherwise."""
        return {Action.MOVE_LEFT: LEFT, Action.MOVE_RIGHT: RIGHT}.get(self.action, 0)


@dataclass(frozen=True)
class ActiveRecognitionResult:
    """The final answer of an episode.

    ``identity`` comes from the visited real view with the highest FRC
    (``best_position`` moves from the start, at pan ``best_offset_deg``);
    ``None`` means unknown. ``moves`` is how many moves were made.
    """

    identity: Optional[str]
    frc: float
    best_position: int
    best_offset_deg: float
    moves: int
    reason: Reason
    visited: tuple[RealView, ...]
    decisions: tuple[Decision, ...]

    @property
    def best_view(self) -> RealView:
        return self.visited[self.best_position]


def _check_frc(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0.0 <= value <= 1.0):
        raise ValueError(f"{what} must be a number in [0, 1], got {value!r}")
    return float(value)


class ActiveFaceRecognition:
    """The §2.1 decision procedure, one episode at a time (see the module docstring).

    Typical loop (renderer and motion are the caller's)::

        afr = ActiveFaceRecognition(ActiveRecognitionConfig(step_deg=15, max_steps=4))
        while True:
            view = RealView.from_recognition(recognizer.recognize(image, box))
            synth = {d: frc_of(render(image, d * afr.config.step_deg))
                     for d in afr.views_to_render(view.frc)}
            decision = afr.step(view, synth)
            if decision.done:
                break
            orbit(decision.move_deg); image, box = capture()
        result = afr.result()
    """

    def __init__(self, config: Optional[ActiveRecognitionConfig] = None):
        if config is None:
            config = ActiveRecognitionConfig()
        if not isinstance(config, ActiveRecognitionConfig):
            raise ValueError(f"config must be an ActiveRecognitionConfig, got {type(config).__name__}")
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Start a new episode at position 0."""
        self._direction = 0
        self._visited: list[RealView] = []
        self._decisions: list[Decision] = []
        self._reason: Optional[Reason] = None

    # --------------------------------------------------------------- state
    @property
    def position(self) -> int:
        """Moves made so far (= index of the next real view to be given)."""
        return sum(1 for d in self._decisions if not d.done)

    @property
    def direction(self) -> int:
        """The episode's direction: 0 before the first move, then -1 or +1 for good."""
        return self._direction

    @property
    def offset_deg(self) -> float:
        """Current pan offset from the start position, degrees."""
        return self._direction * self.position * self.config.step_deg

    @property
    def done(self) -> bool:
        return self._reason is not None

    def views_to_render(self, real_frc: float) -> tuple[int, ...]:
        """Directions (``-1``/``+1``) whose synthesized view :meth:`step` needs, given
        the FRC of the real image at the current position; ``()`` if none."""
        _check_frc(real_frc, "real view FRC")
        self._check_running()
        cfg = self.config
        k = self.position
        if k == 0:
            if cfg.max_steps == 0 or (cfg.check_confidence_at_start and real_frc > cfg.confidence_threshold):
                return ()
            return (LEFT, RIGHT)
        if real_frc > cfg.confidence_threshold or k >= cfg.max_steps:
            return ()
        return (self._direction,)

    # ---------------------------------------------------------------- step
    def step(self, real: RealView, synthesized: Optional[Mapping[int, Any]] = None,
             current: Any = None) -> Decision:
        """Decide at the current position.

        Args:
            real: the recognition of the real image captured here (the final answer and
                the confidence stop use it).
            synthesized: ``{direction: score}`` of the views :meth:`views_to_render`
                asked for (keys ``-1``/``+1``; exactly those keys); a score is an FRC
                number or a :class:`ViewScore`.
            current: the score the current position competes with the renders by
                (a view through the same renderer, see the module docstring);
                default: the real image's own score (the seed).
        """
        if not isinstance(real, RealView):
            raise ValueError(f"real must be a RealView, got {type(real).__name__}")
        needed = self.views_to_render(real.frc)
        synthesized = dict(synthesized or {})
        if set(synthesized) != set(needed):
            raise ValueError(
                f"at position {self.position} this step needs synthesized FRCs for directions "
                f"{list(needed)}, got {sorted(synthesized)}"
                + (" (the direction never reverses)" if self._direction and synthesized else ""))
        scores = {}
        for direction, value in synthesized.items():
            try:
                scores[direction] = ViewScore.of(value)
            except ValueError as e:
                raise ValueError(f"synthesized FRC for direction {direction:+d}: {e}") from None
        here = real.score if current is None else ViewScore.of(current)
        self._visited.append(real)
        k = self.position
        cfg = self.config
        if k == 0:
            if cfg.max_steps == 0:
                return self._finish(Action.STOP, Reason.MAX_STEPS)
            if not needed:
                return self._finish(Action.STOP, Reason.CONFIDENT)
            best = max((here.key, 0), (scores[LEFT].key, LEFT), (scores[RIGHT].key, RIGHT),
                       key=lambda item: item[0])  # max keeps the first of equals: current, then -θ
            if best[1] == 0:
                return self._finish(Action.STAY, Reason.REAL_VIEW_BEST)
            self._direction = best[1]
            return self._move()
        if real.frc > cfg.confidence_threshold:
            return self._finish(Action.STOP, Reason.CONFIDENT)
        if k >= cfg.max_steps:
            return self._finish(Action.STOP, Reason.MAX_STEPS)
        if scores[self._direction].key < here.key:
            return self._finish(Action.STAY, Reason.NEXT_VIEW_WORSE)
        return self._move()

    def _move(self) -> Decision:
        move = self._direction * self.config.step_deg
        decision = Decision(action=Action.MOVE_LEFT if self._direction == LEFT else Action.MOVE_RIGHT,
                            position=self.position, move_deg=move, offset_deg=self.offset_deg + move)
        self._decisions.append(decision)
        return decision

    def _finish(self, action: Action, reason: Reason) -> Decision:
        decision = Decision(action=action, position=self.position, move_deg=0.0,
                            offset_deg=self.offset_deg, reason=reason)
        self._decisions.append(decision)
        self._reason = reason
        return decision

    def _check_running(self) -> None:
        if self.done:
            raise RuntimeError(f"the episode is over ({self._reason.name}); call reset() to start another")

    def abort(self) -> ActiveRecognitionResult:
        """End the episode now (e.g. the move failed) and return the best result so far."""
        if not self._visited:
            raise RuntimeError("cannot abort: no real view was given yet")
        if not self.done:
            self._reason = Reason.ABORTED
        return self.result()

    # -------------------------------------------------------------- result
    def result(self) -> ActiveRecognitionResult:
        """The final identity: the visited real view with the highest FRC."""
        if not self.done:
            raise RuntimeError(f"the episode is still running at position {self.position}; "
                               "call step() until a decision is done, or abort()")
        best = max(range(len(self._visited)), key=lambda i: self._visited[i].frc)  # first of equals
        view = self._visited[best]
        return ActiveRecognitionResult(
            identity=view.identity if view.frc > 0 else None, frc=view.frc, best_position=best,
            best_offset_deg=self._direction * best * self.config.step_deg,
            moves=len(self._visited) - 1, reason=self._reason,
            visited=tuple(self._visited), decisions=tuple(self._decisions))


def run_episode(config: ActiveRecognitionConfig,
                real_at: Callable[[float], RealView],
                synthesized_frc: Callable[[float, float], Any],
                current_score: Optional[Callable[[float, tuple[int, ...]], Any]] = None) -> ActiveRecognitionResult:
    """Run one whole episode against callables (offline evaluation, simulation).

    Args:
        real_at: ``real_at(offset_deg)`` -> the recognition of the real image
            at that pan offset from the start.
        synthesized_frc: ``synthesized_frc(from_offset_deg, to_offset_deg)``
            -> score (FRC or :class:`ViewScore`) of the view rendered from the
            real image at ``from_offset_deg`` for the pan ``to_offset_deg``.
        current_score: ``current_score(offset_deg, directions)`` -> the score
            of the current position against the renders in ``directions``
            (the ``current`` of :meth:`ActiveFaceRecognition.step`); ``None``:
            the real image's own.
    """
    machine = ActiveFaceRecognition(config)
    while True:
        offset = machine.offset_deg
        view = real_at(offset)
        directions = machine.views_to_render(view.frc)
        synth = {d: synthesized_frc(offset, offset + d * config.step_deg) for d in directions}
        current = current_score(offset, directions) if current_score is not None and directions else None
        if machine.step(view, synth, current).done:
            return machine.result()
