"""The default verifier of an EAPO env: a :class:`Problem`'s reference answer checked by :func:`verify`.

``RewardVerification`` (single env) calls :func:`verify_problem` once per episode; the vector env
keeps each env's :func:`math_gold` from its reset and verifies a step's answers with
:func:`eapo_env.verify.verify_many` (falling back to :func:`verify_problem` for other answer types).
"""

from __future__ import annotations

from eapo_env.problems.base import Problem

from ._types import Verdict
from .core import verify


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
