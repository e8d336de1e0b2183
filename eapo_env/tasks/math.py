"""The math task behind ``EAPO-Math-v0``: generated or loaded problems, the math prompts, the
math verifier (DESIGN §5) and the ``reference`` backend (worked solutions)."""

from __future__ import annotations

from typing import Any

from eapo_env.experts import Expert, make_expert
from eapo_env.problems import Problem, ProblemSource, load_problems
from eapo_env.tasks.base import TextTask
from eapo_env.verify import Verdict, verify_problem


class MathTask(TextTask):
    """Math problems; ``problems=None`` means ``"generated"``.

    Example:
        >>> MATH.score("1/2", Problem("p", "half?", "0.5")).status
        'correct'
    """

    name = "math"

    def problems(self, spec: Any) -> ProblemSource:
        return load_problems("generated" if spec is None else spec)

    def score(self, answer: str, problem: Problem) -> Verdict:
        return verify_problem(answer, problem)

    def reference_expert(self) -> Expert:
        return make_expert("reference")


#: The math task (stateless; shared).
MATH = MathTask()
