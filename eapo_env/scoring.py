"""The env's reward of a final turn as one call: :func:`score_turn` (for TRL, verl, or a loop of your own).

Scoring a turn is two steps that the env runs inside ``step``: read the action exactly as the env
reads it (cut to ``max_action_chars``, then :func:`~eapo_env.protocol.parse_action`: the first
*complete* ``<answer>…</answer>`` body decides), then verify that body against the problem
(:func:`~eapo_env.verify.verify_problem` by default). ``verify`` alone is not the env's reward: it
would also find a ``\\boxed{}`` or a "The final answer is" sentence in text the env scores 0.

The env itself is built on these functions (``envs.turns.plan_turn`` reads every action with
:func:`read_action`; ``wrappers.RewardVerification`` scores the answer with :func:`score_answer`),
so ``score_turn(action, problem)`` and the env's reward cannot drift apart. The consult penalty and
any other shaping stay with their wrappers (``wrappers.ConsultPenalty``): this is the unshaped reward.

Example:
    >>> from eapo_env import Problem, score_turn
    >>> p = Problem("p/1", "What is 2 + 3?", "5")
    >>> s = score_turn("2 + 3 = 5, so <answer>5</answer>", p)
    >>> s.score, s.status, s.answer
    (1.0, 'correct', '5')
    >>> score_turn("The answer is \\\\boxed{5}.", p).status   # no <answer> block: the env scores it 0
    'no_answer'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from eapo_env.problems.base import Problem
from eapo_env.protocol import ParsedAction, parse_action
from eapo_env.verify import Verdict, verify_problem

#: The env's default cut of one action (``EAPOMathEnv(max_action_chars=...)``).
MAX_ACTION_CHARS = 16_384
#: The env's default K; an answer's meaning does not depend on it (only a consult's queries do).
MAX_QUERIES = 3
#: ``status`` of a turn that holds no complete ``<answer>`` block (the env's ``info["verdict"]``
#: when an episode ends without an answer).
NO_ANSWER = "no_answer"

#: verifier(prediction, problem) -> Verdict (the env's ``RewardVerification(verifier=...)``).
Verifier = Callable[[str, Problem], Verdict]


class ReadAction(NamedTuple):
    """One action as the env reads it.

    Attributes:
        text: the action cut to ``max_action_chars`` (what the transcript records).
        truncated: whether it was cut (``info["action_truncated"]``).
        parsed: the parsed turn (kind, answer body, queries).
    """

    text: str
    truncated: bool
    parsed: ParsedAction


class TurnScore(NamedTuple):
    """The env's reward of an action taken as the episode's final turn (no shaping).

    Attributes:
        score: the reward: the verifier's score of the answer; 0.0 without an answer.
        status: a verdict status (``correct``, ``incorrect``, ``unparseable``, ``timeout``,
            ``error``) or ``"no_answer"``: the env's ``info["verdict"]``.
        answer: the extracted ``<answer>`` body (stripped), ``None`` without one: ``info["answer"]``.
        kind: the turn's kind, ``"answer"``, ``"consult"`` or ``"reason"``.
        action_truncated: the action was longer than ``max_action_chars`` and scored cut.
    """

    score: float
    status: str
    answer: str | None
    kind: str
    action_truncated: bool = False

    @property
    def correct(self) -> bool:
        """The env's ``info["correct"]``."""
        return self.status == "correct"


def read_action(action: Any, max_queries: int = MAX_QUERIES, max_chars: int = MAX_ACTION_CHARS) -> ReadAction:
    """Type-check an action, cut it to ``max_chars`` (DESIGN §3.7: cut and flagged, never an error) and parse it.

    Raises:
        TypeError: ``action`` is not a ``str``.

    Example:
        >>> r = read_action("abc <answer>7</answer>", max_chars=12)
        >>> r.text, r.truncated, r.parsed.kind
        ('abc <answer>', True, 'reason')
    """
    if not isinstance(action, str):
        raise TypeError(f"action must be str, got {type(action).__name__}")
    truncated = len(action) > max_chars
    text = action[:max_chars] if truncated else action
    return ReadAction(text, truncated, parse_action(text, max_queries))


def score_answer(answer: str | None, problem: Problem, verifier: Verifier = verify_problem) -> TurnScore:
    """Score an extracted answer body (``None``: the turn gave none) against ``problem``.

    Example:
        >>> score_answer("5", Problem("p", "2+3?", "5")).score, score_answer(None, Problem("p", "2+3?", "5")).status
        (1.0, 'no_answer')
    """
    if answer is None:
        return TurnScore(0.0, NO_ANSWER, None, "reason")
    verdict = verifier(answer, problem)
    return TurnScore(float(verdict.score), verdict.status, answer, "answer")


def score_turn(
    action: str,
    problem: Problem,
    *,
    verifier: Verifier = verify_problem,
    max_action_chars: int = MAX_ACTION_CHARS,
) -> TurnScore:
    """The reward ``EAPO-Math-v0`` gives ``action`` as an episode's final turn, for ``problem``.

    Equal to the ``reward``, ``info["verdict"]``, ``info["correct"]`` and ``info["answer"]`` of the
    env's step (registered ids, no consult penalty) when ``action`` ends the episode; pass the env's
    ``max_action_chars`` and verifier if you changed them. A consult or reasoning turn scores 0
    (``status`` ``"no_answer"``), as the env's last turn of a spent budget does.

    Args:
        action: one policy turn (the completion text; generation may stop at ``</answer>``).
        problem: the problem (its ``answer`` is the reference; ``meta["answer_type"]`` is honoured).
        verifier: ``verifier(answer, problem) -> Verdict``.
        max_action_chars: the env's cut of one action.

    Example (a reward function for another trainer)::

        from eapo_env import score_turn
        def reward(completions, problems):
            return [score_turn(c, p).score for c, p in zip(completions, problems)]
    """
    read = read_action(action, MAX_QUERIES, max_action_chars)
    parsed = read.parsed
    if parsed.kind != "answer" or parsed.answer is None:
        return TurnScore(0.0, NO_ANSWER, None, parsed.kind, read.truncated)
    return score_answer(parsed.answer, problem, verifier)._replace(action_truncated=read.truncated)
