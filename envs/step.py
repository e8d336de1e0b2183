"""The typed step record between an EAPO env and its caller (DESIGN §3 ``info``, §7).

``StepInfo`` names every documented ``info`` key with its type; ``StepResult`` is one env's
``(observation, reward, terminated, truncated, info)``, what :meth:`envs.vector_env.EAPOVectorEnv.collect`
returns per env. The trainer reads fields (``result.info["correct"]``) and never guesses them.

Example:
    >>> r = StepResult("", 1.0, True, False, {"problem_id": "p1", "correct": True})
    >>> r.reward, r.info["correct"]
    (1.0, True)
"""

from __future__ import annotations

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
