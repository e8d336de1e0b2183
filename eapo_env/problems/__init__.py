"""Problems and problem sources.

A :class:`Problem` is one question with its exact reference answer and a worked solution. A problem
source is any finite, indexable sequence of problems (:class:`ProblemSource`); :func:`load_problems`
turns the ``problems=`` argument of ``gym.make`` into one.

Example:
    >>> from eapo_env.problems import load_problems
    >>> source = load_problems("generated:arithmetic")
    >>> p = source[0]
    >>> p.id.startswith("gen/arithmetic/")
    True
"""

from __future__ import annotations

from eapo_env.problems.base import Problem, ProblemSource, SequenceSource
from eapo_env.problems.loading import load_problems

__all__ = ["Problem", "ProblemSource", "SequenceSource", "load_problems"]
