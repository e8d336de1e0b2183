"""Tasks: what the task-agnostic env needs to know about one kind of problem (DESIGN §7, §11).

A task is one object (:class:`Task`): the problems, the prompt texts, the scorer and the reference
expert's replies. ``EAPO-Math-v0`` is :data:`MATH` on the env; a new task type is one file with a
:class:`TextTask` subclass plus its ``gym.register`` (see :mod:`eapo_env.tasks.base`).
"""

from importlib import import_module

from eapo_env.tasks.base import Task, TaskReferenceExpert, TextTask
from eapo_env.tasks.math import MATH, MathTask

#: Task names a config or ``gym.make(task=...)`` may give, each a lazy ``"module:ATTR"`` reference
#: (why lazy: a task's module may be heavy, e.g. the code task's sandbox, and most runs use one task).
TASKS: dict[str, str] = {
    "math": "eapo_env.tasks.math:MATH",
    "qa": "eapo_env.tasks.qa:QA",
    "choice": "eapo_env.tasks.choice:CHOICE",
    "code": "eapo_env.tasks.code:CODE",
}


def register_task(name: str, reference: str) -> None:
    """Make ``task=name`` resolve to the object at ``reference`` (``"module:ATTR"``)."""
    TASKS[name] = reference


def resolve_task(task: Task | str | None) -> Task:
    """The task object for ``task``: a :class:`Task` as it is, a name from :data:`TASKS`, ``None``: math.

    Example:
        >>> resolve_task("math").name
        'math'
    """
    if task is None:
        return MATH
    if not isinstance(task, str):
        return task
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {sorted(TASKS)} (or pass a Task object)")
    module, _, attr = TASKS[task].partition(":")
    resolved = getattr(import_module(module), attr)
    if not isinstance(resolved, Task):
        raise TypeError(f"task {task!r} resolved to a {type(resolved).__name__}, not a Task")
    return resolved


__all__ = ["MATH", "TASKS", "MathTask", "Task", "TaskReferenceExpert", "TextTask", "register_task", "resolve_task"]
