r"""The code task behind ``EAPO-Code-v0``: write a Python function, scored by its unit tests in a sandbox.

**Answer rule.** The env hands the scorer the body of the first complete ``<answer>…</answer>``
block (DESIGN §3). The code is the first fenced block in it (a fence opened by three backticks,
with or without a language tag, up to the closing fence); with no fence, the whole body. The
program the sandbox runs is the problem's prefix (HumanEval/EvalPlus: the prompt, with its imports
and helpers) then that code: when the code defines the entry point (``def <entry_point>(``) it is
appended as a whole module, otherwise it is taken as the completion of the prompt's function (a
HumanEval-style indented body). An answer with no code is ``unparseable``.

**Score.** 1.0 only when the sandbox's judge reports that every test passed (status ``"correct"``);
otherwise 0.0 with the sandbox's status kept as the verdict status (``tests_failed``,
``syntax_error``, ``timeout``, ``crash``, ``output_limit``, ``memory_limit``, or
``sandbox_unavailable`` where namespaces do not work: the task never runs code unsandboxed).

Problem specs (``gym.make("EAPO-Code-v0", problems=...)``): ``None`` / ``"generated"`` (the generated
family), ``"generated:<template,...>"``, ``"humaneval:PATH"``, ``"mbpp:PATH"``, ``"evalplus:PATH"``, a
``.jsonl``/``.jsonl.gz`` path (schema from its columns), or a list of code problems / a source.

Example:
    >>> p = CODE.problems(None)[0]
    >>> CODE.score(p.answer, p).score if sandbox_available() else 1.0
    1.0
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from eapo_env import prompts
from eapo_env.problems import Problem, ProblemSource, SequenceSource, load_problems
from eapo_env.problems.code_generated import GeneratedCodeSource
from eapo_env.problems.code_sets import CODE_LOADERS, code_spec, read_code_problems, split_code_spec
from eapo_env.sandbox import STATUSES, SandboxLimits, SandboxResult, run_program, sandbox_available
from eapo_env.tasks.base import TextTask
from eapo_env.verify import Verdict

__all__ = ["CODE", "CODE_VERDICT_STATUSES", "CodeTask", "CodeVerdict", "extract_code", "sandbox_available"]

#: Verdict statuses of a code answer: ``correct`` (all tests passed), ``unparseable`` (no code), and
#: every non-passing sandbox status.
CODE_VERDICT_STATUSES: tuple[str, ...] = ("correct", "unparseable", *(s for s in STATUSES if s != "passed"))
CODE_INSTRUCTION = (
    "Answer with the complete Python function (imports included) inside <answer>...</answer>; a "
    "```python fenced block inside the answer is fine. It is run against hidden unit tests."
)
_FENCE = re.compile(r"```[ \t]*[\w+-]*[ \t]*\n(.*?)```", re.S)


@dataclass(frozen=True, slots=True)
class CodeVerdict(Verdict):
    """A :class:`~eapo_env.verify.Verdict` whose status may be a sandbox status (see the module docs)."""

    def __post_init__(self) -> None:
        if self.status not in CODE_VERDICT_STATUSES:
            raise ValueError(f"unknown code verdict status {self.status!r}")
        if self.score not in (0.0, 1.0) or (self.score == 1.0) != (self.status == "correct"):
            raise ValueError(f"a code verdict scores 1.0 exactly when correct, got {self.status!r} {self.score!r}")


def extract_code(answer: str) -> str:
    """The code of an answer body: its first fenced block, else the whole body (see the module docs).

    >>> extract_code("Here:\\n```python\\ndef f():\\n    return 1\\n```\\ndone")
    'def f():\\n    return 1\\n'
    """
    match = _FENCE.search(answer)
    code = match.group(1) if match else answer
    return code.strip("\n") + "\n" if code.strip() else ""


def build_program(code: str, prefix: str, entry_point: str) -> str:
    """The program the sandbox runs: ``prefix`` then the code (a module, or a completion of the prefix)."""
    if not prefix:
        return code
    if re.search(rf"^[ \t]*(async[ \t]+)?def[ \t]+{re.escape(entry_point)}[ \t]*\(", code, flags=re.M):
        return f"{prefix.rstrip()}\n\n\n{code}"
    return prefix + code


class CodeTask(TextTask):
    """Python functions judged by unit tests in the sandbox; ``problems=None`` means ``"generated"``.

    Args:
        limits: the sandbox's bounds for one answer (default: :class:`~eapo_env.sandbox.SandboxLimits`).
        seed: the generated family's seed.
    """

    name = "code"

    def __init__(self, limits: SandboxLimits | None = None, seed: int = 0) -> None:
        self.limits = limits or SandboxLimits()
        self.seed = seed

    def problems(self, spec: Any) -> ProblemSource:
        if spec is None or (isinstance(spec, str) and spec.strip() in ("generated", "generated:*", "generated:all")):
            return GeneratedCodeSource(seed=self.seed)
        if isinstance(spec, str) and spec.strip().startswith("generated:"):
            names = tuple(n.strip() for n in spec.strip().split(":", 1)[1].split(",") if n.strip())
            return GeneratedCodeSource(seed=self.seed, templates=names)
        dataset = split_code_spec(spec)
        if dataset is not None:
            kind, path = dataset
            return SequenceSource(CODE_LOADERS[kind](path), name=f"{kind}:{path}")
        if isinstance(spec, (str, os.PathLike)) and os.fspath(spec).endswith((".jsonl", ".jsonl.gz")):
            return SequenceSource(read_code_problems(spec), name=os.path.basename(os.fspath(spec)))
        if isinstance(spec, str):
            raise ValueError(
                f"unknown code problem spec {spec!r}; accepted: 'generated', 'generated:<template,...>', "
                f"{', '.join(f'{k!r}:PATH' for k in CODE_LOADERS)}, a .jsonl path, a list of problems"
            )
        return load_problems(spec)

    def prompt(self, problem: Problem, *, eval_mode: bool, max_experts: int, max_turns: int) -> str:
        question = f"{problem.question}\n\n{CODE_INSTRUCTION}"
        return prompts.render_prompt(question, eval_mode=eval_mode, max_experts=max_experts, max_turns=max_turns)

    def run(self, answer: str, problem: Problem) -> SandboxResult | None:
        """The sandbox's record of ``answer`` on ``problem`` (``None``: the answer holds no code)."""
        spec = code_spec(problem)
        code = extract_code(answer)
        if not code:
            return None
        program = build_program(code, spec.prefix, spec.entry_point)
        return run_program(
            program,
            spec.tests,
            entry_point=spec.entry_point,
            setup=spec.setup,
            reference=spec.reference,
            limits=self.limits,
        )

    def score(self, answer: str, problem: Problem) -> Verdict:
        result = self.run(answer, problem)
        if result is None:
            return CodeVerdict("unparseable", 0.0)
        if result.passed:
            return CodeVerdict("correct", 1.0)
        return CodeVerdict(result.status, 0.0)


#: The code task (its sandbox bounds are the defaults).
CODE = CodeTask()
