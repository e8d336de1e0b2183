"""Reward wrappers: verified correctness of the final answer, and a consultation penalty."""

from __future__ import annotations

import gymnasium as gym

from eapo_env.progress import set_progress
from eapo_env.schedules import Schedule, as_schedule
from eapo_env.scoring import Verifier, score_answer
from eapo_env.verify import verify_problem
from envs.step import TurnOutcome
from envs.text_env import eapo_unwrapped
from envs.turns import TurnPlan
from wrappers.turn import TurnWrapper

# ``Verifier``: verifier(prediction, problem) -> Verdict; swap in F1, unit tests for code, an LLM judge, ...
__all__ = ["ConsultPenalty", "RewardVerification", "Verifier", "verify_problem"]


class RewardVerification(TurnWrapper):
    """Reward = the verifier's score of the final answer (1.0 correct, 0.0 otherwise by default).

    On the step that ends the episode, ``info`` gains ``verdict`` (a status of
    :data:`eapo_env.verify.VERDICT_STATUSES`, or ``"no_answer"`` when the turn budget ran out) and
    ``correct``. Other steps pass through unchanged (reward 0 from the env).

    Example:
        >>> import gymnasium as gym, eapo_env
        >>> env = gym.make("EAPO-Math-v0", problems="generated:arithmetic")
        >>> _ = env.reset(seed=0)
        >>> answer = env.unwrapped.problem.answer
        >>> env.step(f"<answer>{answer}</answer>")[1]
        1.0
    """

    def __init__(self, env: gym.Env[str, str], verifier: Verifier | None = None) -> None:
        super().__init__(env)
        #: ``verifier(answer, problem) -> Verdict``; ``None``: the env's task scores (math: ``verify_problem``).
        self.verifier: Verifier = eapo_unwrapped(env).task.score if verifier is None else verifier

    def outcome(self, outcome: TurnOutcome, plan: TurnPlan) -> TurnOutcome:
        if not outcome.ended:
            return outcome
        # The same function as eapo_env.score_turn: the env's reward and the public one are one rule.
        scored = score_answer(outcome.answer if outcome.terminated else None, plan.problem, self.verifier)
        return outcome.scored(scored.score, scored.status)


class ConsultPenalty(TurnWrapper):
    """Subtract ``penalty`` from the reward of every turn that consulted (optionally per query).

    The penalty may be a schedule (DESIGN §6), driven by ``set_progress`` like the annealing
    wrappers; it is read at each consult. ``info["consult_penalty"]`` records what was subtracted.

    Example:
        >>> import gymnasium as gym, eapo_env
        >>> env = ConsultPenalty(gym.make("EAPO-Math-v0"), penalty=0.1)
        >>> _ = env.reset(seed=0)
        >>> env.step("<consult><query>hint?</query></consult>")[1]
        -0.1
    """

    def __init__(self, env: gym.Env[str, str], penalty: float | str | Schedule = 0.1, per_query: bool = False) -> None:
        super().__init__(env)
        self.penalty: Schedule = as_schedule(penalty)
        self.per_query = per_query
        self._step = 0

    def set_progress(self, step: int) -> None:
        self._step = int(step)
        set_progress(self.env, step)

    def outcome(self, outcome: TurnOutcome, plan: TurnPlan) -> TurnOutcome:
        if outcome.kind != "consult" or outcome.format_error:
            return outcome
        units = outcome.counts.queries if self.per_query else 1
        return outcome.penalized("consult_penalty", float(self.penalty(self._step)) * units)
