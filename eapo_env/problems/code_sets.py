"""Code problems: loaders for HumanEval, MBPP and EvalPlus files (their published schemas), and the
``CodeSpec`` every code problem carries in ``meta["code"]`` (what the sandbox needs to judge it).

==========  ===================================================================================
schema      columns (JSONL, or ``.jsonl.gz``)
==========  ===================================================================================
humaneval   ``task_id, prompt, canonical_solution, test, entry_point``
mbpp        ``task_id, text, code, test_list, test_setup_code, challenge_test_list``;
            sanitized: ``task_id, prompt, code, test_list, test_imports``
evalplus    ``task_id, prompt, entry_point, canonical_solution, contract, base_input, plus_input, atol``
==========  ===================================================================================

How each becomes tests (run by the sandbox's judge, never by the program's process): HumanEval's
``test`` (code defining ``check(candidate)``) is one ``check`` test; MBPP's ``test_list`` lines are one
``assert`` test each (``test_setup_code`` / ``test_imports`` run first); EvalPlus's ``base_input`` and
``plus_input`` are one ``io`` test each, compared with the reference's output (floats within ``atol``).
``problem.answer`` is always a full reference program that passes its tests. A row that lacks a
field, or has one of the wrong type, is a ``ValueError`` naming the file and the row.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eapo_env.problems.base import Problem
from eapo_env.sandbox.records import TestCase

__all__ = ["CODE_LOADERS", "CodeSpec", "code_problem", "code_spec", "read_code_problems", "split_code_spec"]


@dataclass(frozen=True, slots=True)
class CodeSpec:
    """What judging one code problem needs (stored as plain JSON in ``problem.meta["code"]``).

    Attributes:
        entry_point: the function under test.
        tests: the tests (see :class:`~eapo_env.sandbox.TestCase`).
        setup: trusted code the judge runs before the tests (HumanEval's prompt, MBPP's setup/imports).
        prefix: code put before the answer in the program (HumanEval's prompt: imports, helpers, the
            signature a completion continues).
        reference: the full reference program (``problem.answer``; ``io`` tests compare with it).
    """

    entry_point: str
    tests: tuple[TestCase, ...]
    setup: str = ""
    prefix: str = ""
    reference: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "entry_point": self.entry_point,
            "tests": [t.to_json() for t in self.tests],
            "setup": self.setup,
            "prefix": self.prefix,
            "reference": self.reference,
        }

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> CodeSpec:
        tests = tuple(TestCase.from_json(t) for t in row["tests"])
        return cls(str(row["entry_point"]), tests, str(row["setup"]), str(row["prefix"]), str(row["reference"]))


def code_spec(problem: Problem) -> CodeSpec:
    """The :class:`CodeSpec` of a code problem (``ValueError`` if it has none)."""
    raw = problem.meta.get("code") if problem.meta else None
    if not isinstance(raw, Mapping):
        raise ValueError(f"problem {problem.id!r} is not a code problem (no meta['code'])")
    return CodeSpec.from_json(raw)


def fenced(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```"


def code_problem(pid: str, question: str, spec: CodeSpec, *, source: str, why: str = "") -> Problem:
    """A code problem; its ``solution`` (the ``reference`` expert's reply) is worked reasoning + the code."""
    reasoning = why or f"Implement `{spec.entry_point}` as the statement asks, then check it against the examples."
    solution = f"{reasoning}\nA reference solution:\n{fenced(spec.reference)}"
    meta = {"source": source, "answer_type": "code", "entry_point": spec.entry_point, "code": spec.to_json()}
    return Problem(pid, question, spec.reference, solution=solution, meta=meta)


class _Row:
    """Typed access to one row, with errors that name the file and the row."""

    def __init__(self, row: Any, where: str) -> None:
        if not isinstance(row, Mapping):
            raise ValueError(f"{where}: not a JSON object")
        self.row, self.where = row, where

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        if key not in self.row or self.row[key] is None:
            if default is not None:
                return default
            raise ValueError(f"{self.where}: missing field {key!r} (has {sorted(self.row)})")
        value = self.row[key]
        if not isinstance(value, kind):
            raise ValueError(f"{self.where}: field {key!r} is a {type(value).__name__}, expected {kind}")
        return value


def _humaneval(r: _Row) -> Problem:
    prompt, entry = r.get("prompt", str), r.get("entry_point", str)
    reference = prompt + r.get("canonical_solution", str)
    spec = CodeSpec(entry, (TestCase("check", r.get("test", str)),), setup=prompt, prefix=prompt, reference=reference)
    question = f"Complete the Python function `{entry}`:\n\n{fenced(prompt)}"
    return code_problem(f"humaneval/{r.get('task_id', (str, int))}", question, spec, source="humaneval")


def _evalplus(r: _Row) -> Problem:
    prompt, entry = r.get("prompt", str), r.get("entry_point", str)
    reference = prompt + r.get("canonical_solution", str)
    atol = float(r.get("atol", (int, float), 0) or 0.0)
    inputs = list(r.get("base_input", list)) + list(r.get("plus_input", list, []))
    for j, args in enumerate(inputs):
        if not isinstance(args, list):
            raise ValueError(f"{r.where}: input {j} is a {type(args).__name__}, not a list of arguments")
    tests = tuple(TestCase("io", args=tuple(args), atol=atol) for args in inputs)
    spec = CodeSpec(entry, tests, setup=prompt, prefix=prompt, reference=reference)
    question = f"Complete the Python function `{entry}`:\n\n{fenced(prompt)}"
    return code_problem(f"evalplus/{r.get('task_id', (str, int))}", question, spec, source="evalplus")


def _mbpp_entry_point(code: str, tests: Sequence[str], where: str) -> str:
    names = re.findall(r"^def\s+([A-Za-z_]\w*)\s*\(", code, flags=re.M)
    called = [n for n in names if any(re.search(rf"\b{re.escape(n)}\s*\(", t) for t in tests)]
    if not called:
        raise ValueError(f"{where}: no function of 'code' ({names}) is called by 'test_list'")
    return called[0]


def _mbpp(r: _Row) -> Problem:
    code = r.get("code", str)
    tests = [str(t) for t in r.get("test_list", list)]
    if not tests:
        raise ValueError(f"{r.where}: empty 'test_list'")
    text = r.get("text", str, "") or r.get("prompt", str)  # original: text; sanitized: prompt
    imports = r.get("test_imports", list, [])
    setup = r.get("test_setup_code", str, "") or "\n".join(str(i) for i in imports)
    entry = _mbpp_entry_point(code, tests, r.where)
    spec = CodeSpec(entry, tuple(TestCase("assert", t) for t in tests), setup=setup, prefix="", reference=code)
    shown = "\n".join(tests)
    question = f"{text}\nYour code should pass these tests:\n\n{fenced(shown)}"
    return code_problem(f"mbpp/{r.get('task_id', (str, int))}", question, spec, source="mbpp")


_PARSERS: dict[str, Callable[[_Row], Problem]] = {"humaneval": _humaneval, "mbpp": _mbpp, "evalplus": _evalplus}


def _rows(path: str) -> list[Any]:
    if not os.path.isfile(path):
        raise ValueError(f"code problem file not found: {path!r}")
    opener: Callable[..., Any] = gzip.open if path.endswith(".gz") else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise ValueError(f"{path}: line {n} is not JSON: {exc}") from None
    if not rows:
        raise ValueError(f"code problem file {path!r} is empty")
    return rows


def detect_code_schema(row: Mapping[str, Any]) -> str | None:
    """``humaneval``, ``mbpp`` or ``evalplus`` from a row's columns (``None``: none of them)."""
    if "base_input" in row and "entry_point" in row:
        return "evalplus"
    if "test" in row and "entry_point" in row:
        return "humaneval"
    if "test_list" in row and "code" in row:
        return "mbpp"
    return None


def read_code_problems(path: str | os.PathLike[str], schema: str | None = None) -> list[Problem]:
    """The problems of a local HumanEval / MBPP / EvalPlus JSONL file (``schema=None``: from the columns)."""
    text = os.fspath(path)
    rows = _rows(text)
    problems = []
    for i, row in enumerate(rows):
        where = f"{text}: row {i}" + (f" ({row.get('task_id')})" if isinstance(row, Mapping) else "")
        kind = schema or (detect_code_schema(row) if isinstance(row, Mapping) else None)
        if kind not in _PARSERS:
            cols = sorted(row) if isinstance(row, Mapping) else type(row).__name__
            raise ValueError(f"{where}: not a HumanEval, MBPP or EvalPlus row (columns {cols})")
        problems.append(_PARSERS[kind](_Row(row, where)))
    return problems


def _read_as(schema: str, path: str) -> list[Problem]:
    return read_code_problems(path, schema)


#: ``"<schema>:PATH"`` prefixes of ``gym.make("EAPO-Code-v0", problems=...)``.
CODE_LOADERS: dict[str, Callable[[str], list[Problem]]] = {kind: functools.partial(_read_as, kind) for kind in _PARSERS}


def split_code_spec(spec: Any) -> tuple[str, str] | None:
    """``(schema, path)`` of a ``"humaneval:PATH"`` / ``"mbpp:PATH"`` / ``"evalplus:PATH"`` spec, else ``None``."""
    if not isinstance(spec, str):
        return None
    kind, sep, path = spec.strip().partition(":")
    return (kind, path) if sep and kind in CODE_LOADERS and path else None
