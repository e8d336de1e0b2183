"""The typed turn record between an EAPO env and its caller (DESIGN §3 ``info``, §7).

``TurnOutcome`` is phase 2 of a turn (``complete(plan, replies)``): a frozen record of the verdict,
the reward terms (``score`` and :class:`Penalty` terms), the expert counts, the flags and the episode
totals; ``TurnOutcome.info`` renders the documented ``info`` (typed as ``StepInfo``) from it, the one
place ``info`` is written. ``StepResult`` is one env's ``(observation, reward, terminated, truncated,
info)``, what :meth:`envs.vector_env.EAPOVectorEnv.collect` returns per env.

Example:
    >>> r = StepResult("", 1.0, True, False, {"problem_id": "p1", "correct": True})
    >>> r.reward, r.info["correct"]
    (1.0, True)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple, TypedDict


class StepInfo(TypedDict, total=False):
    """The ``info`` of one step (keys documented in DESIGN §3; wrappers add the last group).

    Always present: ``problem_id``, ``action`` (``"reason"``, ``"consult"`` or ``"answer"``), this
    step's ``queries`` (kept), ``accepted``, ``unavailable``, ``dropped_queries``, ``blank_queries``,
    ``format_error``, ``action_truncated``, ``expert_timeouts``, ``expert_errors``, and the episode
    totals ``turn``, ``turns_left``, ``consults``. Sometimes present: ``expert_slots`` (who answered),
    ``replies_cut``, ``consult_disabled`` (evaluation mode), ``answer`` (at the episode's end; ``None``
    when the budget ran out). From wrappers: ``verdict`` and ``correct`` (``RewardVerification``, at
    the episode's end), ``consult_penalty`` (``ConsultPenalty``).
    """

    problem_id: str
    action: str
    queries: int
    accepted: int
    unavailable: int
    dropped_queries: int
    blank_queries: int
    format_error: bool
    action_truncated: bool
    expert_timeouts: int
    expert_errors: int
    turn: int
    turns_left: int
    consults: int
    expert_slots: tuple[str, ...]
    replies_cut: int
    consult_disabled: bool
    answer: str | None
    verdict: str
    correct: bool
    consult_penalty: float


class ResetInfo(TypedDict):
    """The ``info`` returned by ``reset``."""

    problem_id: str
    turn: int
    turns_left: int
    consults: int
    acceptance_prob: float
    max_turns: int


@dataclass(frozen=True, slots=True)
class Penalty:
    """One shaping term of a turn's reward: ``cost`` is subtracted, and shown as ``info[name]``.

    (A bonus is a negative cost.) Wrappers add them (``ConsultPenalty``: ``"consult_penalty"``).
    """

    name: str
    cost: float


class TurnCounts(NamedTuple):
    """What one turn sent to and got back from the experts (``info``'s per-step counters; immutable).

    ``queries``: kept queries; ``accepted``: sent to an expert (after the p draw); ``unavailable``:
    entries without a reply (rejected, timed out, failed); ``replies_cut``: ok replies cut to
    ``max_reply_chars``; ``expert_slots``: the experts that answered (``None``: no request was sent).
    """

    queries: int = 0
    accepted: int = 0
    unavailable: int = 0
    dropped_queries: int = 0
    blank_queries: int = 0
    expert_timeouts: int = 0
    expert_errors: int = 0
    replies_cut: int = 0
    expert_slots: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """Phase 2 of a turn (DESIGN §7): the whole result, as a frozen record every layer may refine.

    The env builds it in ``complete(plan, replies)``; wrappers return a ``dataclasses.replace`` of it
    (``RewardVerification`` sets ``score`` and ``verdict``, ``ConsultPenalty`` adds a :class:`Penalty`).
    ``step`` returns :meth:`as_step`; :meth:`info` renders ``info`` from it, in this one place.

    Attributes:
        observation: the next observation ("" when the episode ended by an answer).
        problem_id: the episode's problem.
        kind: ``"reason"``, ``"consult"`` or ``"answer"``.
        terminated, truncated: Gymnasium's flags (an answer; the turn budget spent).
        answer: the answer body on the episode's last step (``None`` when the budget ran out).
        counts: the turn's expert counters.
        format_error, action_truncated, consult_disabled: the turn's flags.
        turn, turns_left, consults: episode totals after this turn (computed by the env alone).
        score: the verified score of the answer (0.0 until a verifier scored it).
        verdict: the verifier's status at the episode's end (``None``: not scored).
        penalties: shaping terms, innermost wrapper first.
        latency_s: the experts' latency summed (kept off ``info`` so that info stays deterministic).
    """

    observation: str
    problem_id: str
    kind: str
    terminated: bool
    truncated: bool
    answer: str | None
    counts: TurnCounts
    format_error: bool
    action_truncated: bool
    consult_disabled: bool
    turn: int
    turns_left: int
    consults: int
    score: float = 0.0
    verdict: str | None = None
    penalties: tuple[Penalty, ...] = ()
    latency_s: float = 0.0

    @property
    def ended(self) -> bool:
        return self.terminated or self.truncated

    @property
    def correct(self) -> bool:
        """The verifier said ``correct`` (False until scored)."""
        return self.verdict == "correct"

    @property
    def reward(self) -> float:
        """``score`` minus every penalty, subtracted in the order the wrappers added them."""
        reward = 0.0 + self.score
        for penalty in self.penalties:
            reward -= penalty.cost
        return reward

    def penalized(self, name: str, cost: float) -> TurnOutcome:
        """This outcome with one more :class:`Penalty`."""
        return self.evolve(penalties=(*self.penalties, Penalty(name, float(cost))))

    def scored(self, score: float, verdict: str) -> TurnOutcome:
        """This outcome with the verifier's ``score`` added and its ``verdict``."""
        return self.evolve(score=self.score + score, verdict=verdict)

    def evolve(self, **changes: Any) -> TurnOutcome:
        """A copy with ``changes`` (``dataclasses.replace``, without its per-call field introspection:
        it runs on every penalised or final turn)."""
        values = {name: getattr(self, name) for name in _OUTCOME_FIELDS}
        values.update(changes)
        return TurnOutcome(**values)

    def info(self) -> StepInfo:
        """The step's ``info`` (DESIGN §3), a fresh dict each call: the one place ``info`` is rendered."""
        c = self.counts
        info: StepInfo = {
            "problem_id": self.problem_id,
            "action": self.kind,
            "queries": c.queries,
            "accepted": c.accepted,
            "unavailable": c.unavailable,
            "dropped_queries": c.dropped_queries,
            "blank_queries": c.blank_queries,
            "format_error": self.format_error,
            "action_truncated": self.action_truncated,
            "expert_timeouts": c.expert_timeouts,
            "expert_errors": c.expert_errors,
        }
        if c.expert_slots is not None:
            info["expert_slots"] = c.expert_slots
        if c.replies_cut:
            info["replies_cut"] = c.replies_cut
        if self.consult_disabled:
            info["consult_disabled"] = True
        if self.ended:
            info["answer"] = self.answer
        info["turn"], info["turns_left"], info["consults"] = self.turn, self.turns_left, self.consults
        if self.verdict is not None:
            info["verdict"], info["correct"] = self.verdict, self.correct
        for penalty in self.penalties:
            info[penalty.name] = penalty.cost  # type: ignore[literal-required]
        return info

    def as_step(self) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Gymnasium's ``(observation, reward, terminated, truncated, info)``."""
        return self.observation, self.reward, self.terminated, self.truncated, self.info()  # type: ignore[return-value]


_OUTCOME_FIELDS = tuple(f.name for f in dataclasses.fields(TurnOutcome))


class StepResult(NamedTuple):
    """One env's step: what ``env.step`` returns, with named fields."""

    observation: str
    reward: float
    terminated: bool
    truncated: bool
    info: StepInfo

    @classmethod
    def of(cls, step: tuple[Any, Any, Any, Any, Any]) -> StepResult:
        """A ``StepResult`` from ``env.step``'s 5-tuple (reward as float, flags as bool)."""
        obs, reward, terminated, truncated, info = step
        return cls(obs, float(reward), bool(terminated), bool(truncated), info)
