"""The :class:`Task` protocol, and :class:`TextTask`, the base a new task type subclasses.

The env (``envs.text_env.EAPOTextEnv``) owns the turn semantics (DESIGN §3: parse the action,
consult, budget); everything that differs between math, QA, multiple choice or code is asked of
the task: which problems, which prompt, how an answer scores, and what the ``reference`` expert
replies. A new task type is then one file and its registration, with no edit to ``envs/``,
``wrappers/`` or ``agents/``::

    class Reverse(TextTask):
        name = "reverse"
        def problems(self, spec):  # spec as given to gym.make(problems=...), None for the default
            return load_problems([Problem(f"w{i}", w, w[::-1]) for i, w in enumerate(WORDS)])
        def score(self, answer, problem):
            return Verdict("correct" if answer == problem.answer else "incorrect", float(answer == problem.answer))

    gym.register("EAPO-Reverse-v0", entry_point="wrappers.factory:make_math_env",
                 vector_entry_point=..., kwargs={"task": Reverse()})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from eapo_env import prompts
from eapo_env.experts.base import Expert, ExpertReply, ExpertRequest, SyncExpert
from eapo_env.problems import Problem, ProblemSource, SequenceSource, load_problems
from eapo_env.problems.qa_generated import generated_source
from eapo_env.problems.qa_sets import split_dataset_spec
from eapo_env.verify import Verdict


@runtime_checkable
class Task(Protocol):
    """One task type, as the env asks it (no torch, no env state)."""

    name: str

    def problems(self, spec: Any) -> ProblemSource:
        """The problem source for ``spec`` (``gym.make(problems=...)``; ``None``: the task's default).
        An already loaded :class:`ProblemSource` is returned as it is (a vector env shares one)."""
        ...

    def prompt(self, problem: Problem, *, eval_mode: bool, max_experts: int, max_turns: int) -> str:
        """The episode's first observation (training prompt, or the evaluation prompt)."""
        ...

    def score(self, answer: str, problem: Problem) -> Verdict:
        """The verdict of an answer body (``Verdict(status, score)``; the reward is ``score``)."""
        ...

    def reference_expert(self) -> Expert:
        """The expert ``expert="reference"`` means for this task."""
        ...


class TextTask:
    """Defaults for a task: the protocol's prompts, equality scoring, the answer as reference reply.

    Subclass and override what differs (at least :meth:`problems`).
    """

    name = "text"

    def problems(self, spec: Any) -> ProblemSource:
        return load_problems(spec)

    def prompt(self, problem: Problem, *, eval_mode: bool, max_experts: int, max_turns: int) -> str:
        return prompts.render_prompt(
            problem.question, eval_mode=eval_mode, max_experts=max_experts, max_turns=max_turns
        )

    def score(self, answer: str, problem: Problem) -> Verdict:
        ok = answer.strip() == problem.answer.strip()
        return Verdict("correct" if ok else "incorrect", 1.0 if ok else 0.0)

    def reference_reply(self, request: ExpertRequest) -> str:
        """What the reference expert replies to ``request`` (default: the worked solution, else the answer)."""
        return request.problem.solution or f"The answer is {request.problem.answer}."

    def reference_expert(self) -> Expert:
        return TaskReferenceExpert(self)


def dataset_task_source(
    spec: Any,
    generated: dict[str, Callable[[int, int], Problem]],
    loaders: Mapping[str, Callable[[str], Sequence[Problem]]],
) -> ProblemSource:
    """The source a dataset task's spec names, in one order for every such task (QA, multiple choice):
    ``None`` / ``"generated[:<family>][@<seed>]"`` a family of ``generated``, ``"<kind>:PATH"`` a
    published file read by ``loaders[kind]``, anything else :func:`~eapo_env.problems.load_problems`.

    Example:
        >>> from eapo_env.problems.qa_generated import GENERATED_QA
        >>> type(dataset_task_source("generated:facts@1", GENERATED_QA, {})).__name__
        'IndexedSource'
        >>> read = {"hotpotqa": lambda path: [Problem("q0", "Capital of France?", "Paris")]}
        >>> dataset_task_source("hotpotqa:/data/dev.json", GENERATED_QA, read).name
        'hotpotqa:/data/dev.json'
    """
    source = generated_source(spec, generated)
    if source is not None:
        return source
    dataset = split_dataset_spec(spec, tuple(loaders))
    if dataset is not None:
        kind, path = dataset
        return SequenceSource(list(loaders[kind](path)), name=f"{kind}:{path}")
    return load_problems(spec)


class TaskReferenceExpert(SyncExpert):
    """The ``reference`` expert of a :class:`TextTask`: replies with ``task.reference_reply``."""

    def __init__(self, task: TextTask) -> None:
        self.task = task
        self.name = f"{task.name}-reference"

    def consult_sync(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        return [ExpertReply(self.task.reference_reply(r), "ok", 0.0, 0, self.name) for r in requests]
