"""Tasks: what the task-agnostic env needs to know about one kind of problem (DESIGN §7, §11).

A task is one object (:class:`Task`): the problems, the prompt texts, the scorer and the reference
expert's replies. ``EAPO-Math-v0`` is :data:`MATH` on the env; a new task type is one file with a
:class:`TextTask` subclass plus its ``gym.register`` (see :mod:`eapo_env.tasks.base`).
"""

from eapo_env.tasks.base import Task, TaskReferenceExpert, TextTask
from eapo_env.tasks.math import MATH, MathTask

__all__ = ["MATH", "MathTask", "Task", "TaskReferenceExpert", "TextTask"]
