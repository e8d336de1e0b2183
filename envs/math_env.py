"""``EAPOMathEnv``: the math task on the task-agnostic text env (DESIGN §3, §7).

The env itself is :class:`envs.text_env.EAPOTextEnv`; this class makes :data:`eapo_env.tasks.MATH` its
default task (and so ``problems="generated"`` its default problems), so
``env.unwrapped.problem``, ``.acceptance_prob``, ``.max_turns`` and ``.transcript`` read as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eapo_env.experts import Expert
from eapo_env.problems import Problem, ProblemSource
from eapo_env.tasks import MATH
from envs.text_env import EAPOTextEnv, SharedKwargsSpec, Source, eapo_unwrapped

__all__ = ["EAPOMathEnv", "SharedKwargsSpec", "Source", "eapo_unwrapped"]


class EAPOMathEnv(EAPOTextEnv):
    """The text environment behind ``EAPO-Math-v0`` and ``EAPO-Math-Eval-v0``: the math task.

    Takes the arguments of :class:`~envs.text_env.EAPOTextEnv`; ``problems=None`` is the math task's
    ``"generated"``. A ``task`` given here (the registered entry points forward every keyword) puts
    that task on the env instead of math.

    Example:
        >>> env = EAPOMathEnv(problems="generated:arithmetic", expert="reference")
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step("<consult><query>How?</query></consult>")
        >>> info["accepted"], "<experts>" in obs
        (1, True)
    """

    def __init__(
        self,
        problems: str | Sequence[Problem] | ProblemSource | None = None,
        expert: str | Expert = "reference",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("task", MATH)
        super().__init__(problems, expert, **kwargs)
