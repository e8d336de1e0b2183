r"""The multiple-choice task behind ``EAPO-Choice-v0``: the chosen letter against the correct one.

The choices are shown lettered ``A)``, ``B)``, … in a seeded order
(:func:`eapo_env.problems.qa_sets.choice_order` of ``(seed, source id)``, seed 0 by default), and
``problem.answer`` is the correct letter.

**Letter extraction** (:func:`extract_choice`) reads the ``<answer>`` body (the env passes only that;
given a whole completion, its first ``<answer>`` body is read). The first of these rules that matches
decides, each taking its first match:

1. the body is just a letter, optionally bracketed or followed by ``.``/``:`` (``B``, ``b``, ``(B)``, ``B.``);
2. a boxed letter, ``\boxed{B}`` (the reference expert's closing line, which a policy may copy);
3. an ``Answer: X`` line (simple-evals' pattern, case-insensitive: ``Answer\s*:\s*\$?\(?([A-J])\b``);
4. ``the answer is X`` / ``the answer is (X)`` (the letter upper-case);
5. a leading choice label: ``(B) text``, ``B) text``, ``B. text``.

Lower-case letters count (``b`` is ``B``) in every rule but 4. **Verdict**: no letter, or a letter
beyond the problem's choices (``E`` of four): ``unparseable``, score 0; the correct letter:
``correct``, 1; another letter: ``incorrect``, 0.

Problem specs: ``None`` or ``"generated"`` / ``"generated:arithmetic_choice"`` / ``"generated@<seed>"``
(seed 0 unless given; :mod:`eapo_env.problems.qa_generated`), ``"mmlu:PATH"``, ``"gpqa:PATH"``, or what
:func:`~eapo_env.problems.load_problems` takes.

Example:
    >>> extract_choice("I think (C) fits.\nAnswer: b"), extract_choice("no idea")
    ('B', None)
    >>> p = CHOICE.problems(None)[0]
    >>> CHOICE.score(p.answer, p).score
    1.0
"""

from __future__ import annotations

import re
from typing import Any

from eapo_env import prompts
from eapo_env.problems import Problem, ProblemSource
from eapo_env.problems.qa_generated import GENERATED_CHOICE
from eapo_env.problems.qa_sets import CHOICE_LOADERS, LETTERS
from eapo_env.tasks.base import TextTask, dataset_task_source
from eapo_env.verify import Verdict

_ANSWER_BODY = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
#: The extraction rules of the module docs, in order.
CHOICE_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"^\s*[\(\[]?([A-Ja-j])[\)\]]?[.:]?\s*$"),
    re.compile(r"\\boxed\{\s*\(?([A-Ja-j])\)?\s*\}"),
    re.compile(r"(?i)answer\s*:\s*\$?\(?([A-J])\b"),
    re.compile(r"(?i:the\s+answer\s+is)\s*:?\s*\(?([A-J])\b(?!')"),
    re.compile(r"^\s*(?:\(([A-Ja-j])\)|([A-Ja-j])[\).])\s"),
)
#: The line added under every multiple-choice question.
CHOICE_INSTRUCTION = "Answer with the letter of the correct choice, e.g. <answer>A</answer>."


def extract_choice(text: str) -> str | None:
    """The chosen letter (upper-case) by the rules of the module docs, ``None`` when none matches."""
    body = _ANSWER_BODY.search(text)
    if body is not None:
        text = body.group(1)
    for pattern in CHOICE_PATTERNS:
        m = pattern.search(text)
        if m is not None:
            return next(g for g in m.groups() if g).upper()
    return None


def num_choices(problem: Problem) -> int:
    """How many choices ``problem`` shows (``meta["num_choices"]``; 4 when the meta does not say)."""
    n = problem.meta.get("num_choices") if problem.meta else None
    return int(n) if n else 4


class ChoiceTask(TextTask):
    """Multiple choice (MMLU, GPQA, generated); ``problems=None`` means ``"generated"``."""

    name = "choice"

    def problems(self, spec: Any) -> ProblemSource:
        return dataset_task_source(spec, GENERATED_CHOICE, CHOICE_LOADERS)

    def prompt(self, problem: Problem, *, eval_mode: bool, max_experts: int, max_turns: int) -> str:
        question = f"{problem.question}\n{CHOICE_INSTRUCTION}"
        return prompts.render_prompt(question, eval_mode=eval_mode, max_experts=max_experts, max_turns=max_turns)

    def score(self, answer: str, problem: Problem) -> Verdict:
        letter = extract_choice(answer)
        if letter is None or letter not in LETTERS[: num_choices(problem)]:
            return Verdict("unparseable", 0.0)
        ok = letter == problem.answer.strip().upper()
        return Verdict("correct" if ok else "incorrect", 1.0 if ok else 0.0)


#: The multiple-choice task (stateless; shared).
CHOICE = ChoiceTask()
