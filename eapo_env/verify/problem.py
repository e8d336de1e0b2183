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


def verify_problems(predictions: Sequence[str], problems: Sequence[Problem]) -> list[Verdict]:
    """:func:`verify_problem` of each pair, batched (:func:`eapo_env.verify.verify_many`): what a
    vector env with the default verifier calls once per step for all of its answers."""
    if all(not p.meta or p.meta.get("answer_type", "math") == "math" for p in problems):
        return verify_many(predictions, [p.answer for p in problems])
    return [verify_problem(a, p) for a, p in zip(predictions, problems)]  # a mix of answer types
