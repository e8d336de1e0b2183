"""The QA task behind ``EAPO-QA-v0``: short text answers scored by exact match and token-F1.

Scoring (SQuAD v1.1 / HotpotQA's evaluation scripts, :func:`eapo_env.verify.best_qa_match`): both
sides are normalised (lower-case, punctuation and the articles a/an/the dropped, whitespace
collapsed); EM is equality after normalising, F1 the token overlap (multiset; precision over the
prediction's tokens, recall over the gold's); HotpotQA's rule: when either side is ``yes``, ``no`` or
``noanswer`` and they differ, both are 0; EM and F1 each take the best over every gold answer
(``meta["gold_answers"]``, else ``problem.answer``).

**Reward and verdict.** The :class:`~eapo_env.verify.Verdict` has one score, so: ``score`` (the
env's reward) is the **F1**, and ``status`` is ``"correct"`` exactly when **EM** holds, else
``"incorrect"``; an episode's ``info["correct"]`` is EM and its reward F1 (EM implies F1 = 1, so a
correct answer earns 1). :meth:`QATask.match` gives both as a typed :class:`~eapo_env.verify.QAMatch`.

Problem specs (``gym.make("EAPO-QA-v0", problems=...)``): ``None`` or ``"generated"`` /
``"generated:facts"`` / ``"generated:facts@<seed>"`` (the generated ``facts`` family, seed 0 unless
given: :mod:`eapo_env.problems.qa_generated`),
``"hotpotqa:PATH"``, ``"simpleqa:PATH"`` (:mod:`eapo_env.problems.qa_sets`), or whatever
:func:`~eapo_env.problems.load_problems` takes (a list of problems, our ``.jsonl`` schema, a source).

Example:
    >>> p = QA.problems(None)[0]
    >>> QA.score(p.answer, p)
    Verdict(status='correct', score=1.0)
"""

from __future__ import annotations

from typing import Any

from eapo_env import prompts
from eapo_env.problems import Problem, ProblemSource
from eapo_env.problems.qa_generated import GENERATED_QA
from eapo_env.problems.qa_sets import QA_LOADERS
from eapo_env.tasks.base import TextTask, dataset_task_source
from eapo_env.verify import QAMatch, Verdict, best_qa_match, extract_answer

#: The line added under every QA question (why: say the answer is a short span, as the sets expect).
QA_INSTRUCTION = "Answer with a short phrase (a name, a number, yes or no), not a sentence."


def gold_answers(problem: Problem) -> tuple[str, ...]:
    """Every accepted answer of ``problem``: ``meta["gold_answers"]`` when given, else its ``answer``."""
    golds = problem.meta.get("gold_answers") if problem.meta else None
    return tuple(str(g) for g in golds) if golds else (problem.answer,)


class QATask(TextTask):
    """Short-answer QA (HotpotQA, SimpleQA, generated facts); ``problems=None`` means ``"generated"``."""

    name = "qa"

    def problems(self, spec: Any) -> ProblemSource:
        return dataset_task_source(spec, GENERATED_QA, QA_LOADERS)

    def prompt(self, problem: Problem, *, eval_mode: bool, max_experts: int, max_turns: int) -> str:
        question = f"{problem.question}\n{QA_INSTRUCTION}"
        return prompts.render_prompt(question, eval_mode=eval_mode, max_experts=max_experts, max_turns=max_turns)

    def match(self, answer: str, problem: Problem) -> QAMatch:
        """EM and F1 of an answer body, each the best over the problem's gold answers.

        A body that wraps its answer in ``\\boxed{..}`` (the reference expert's closing line, which a
        policy may copy) is scored on the box's content."""
        boxed = extract_answer(answer) if "\\boxed" in answer else None
        return best_qa_match(answer if boxed is None else boxed, gold_answers(problem))

    def score(self, answer: str, problem: Problem) -> Verdict:
        m = self.match(answer, problem)
        return Verdict("correct" if m.exact_match else "incorrect", m.f1)


#: The QA task (stateless; shared).
QA = QATask()
