"""The default verifier of an EAPO env: a :class:`Problem`'s reference answer checked by :func:`verify`.

``RewardVerification`` (single env) calls :func:`verify_problem` once per episode;
the vector env calls :func:`verify_problems` once per step for all of its answers.
"""

from __future__ import annotations

from collections.abc import Sequence

from eapo_env.problems.base import Problem

from ._types import Verdict
from .core import verify, verify_many


def verify_problem(prediction: str, problem: Problem) -> Verdict:
    """The default verifier: :func:`eapo_env.verify` against the problem's reference answer."""
    answer_type = problem.meta.get("answer_type") if problem.meta else None
    if answer_type is None:
        return verify(prediction, problem.answer)
    return verify(prediction, problem.answer, answer_type=str(answer_type))


def math_gold(problem: Problem) -> str | None:
    """The reference answer when the problem is verified as math (the default), else None.

    Example:
        >>> math_gold(Problem("p", "2+2?", "4")), math_gold(Problem("q", "Who?", "Ada", meta={"answer_type": "text"}))
        ('4', None)
    """
    meta = problem.meta
    return problem.answer if not meta or meta.get("answer_type", "math") == "math" else None


def verify_problems(predictions: Sequence[str], problems: Sequence[Problem]) -> list[Verdict]:
    """:func:`verify_problem` of each pair, batched (:func:`eapo_env.verify.verify_many`): what a
    vector env with the default verifier calls once per step for all of its answers."""
    golds = [math_gold(p) for p in problems]
    if None not in golds:
        return verify_many(predictions, golds)  # type: ignore[arg-type]
    return [verify_problem(a, p) for a, p in zip(predictions, problems)]  # a mix of answer types
