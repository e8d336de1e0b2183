"""The generated code family: small functions with unit tests, deterministic from ``(seed, index)``.

Each template draws its constants and test inputs from ``random.Random(f"{seed}/{index}")`` (a
string seed hashes the same in every process, whatever ``PYTHONHASHSEED``). The reference is the
template's source with those constants filled in; the expected outputs are that reference's own
outputs (our trusted template code, run here, never policy code), written into ``assert`` tests.

Example:
    >>> src = GeneratedCodeSource(seed=0, size=16)
    >>> p = src[0]
    >>> p.id, p.meta["entry_point"]
    ('code/gen/scaled_sum/0@0', 'scaled_sum')
    >>> src.get(p.id) == p
    True
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eapo_env.problems.base import Problem
from eapo_env.problems.code_sets import CodeSpec, code_problem
from eapo_env.sandbox.records import TestCase

__all__ = ["CODE_TEMPLATES", "GeneratedCodeSource", "generated_code_problem"]


@dataclass(frozen=True, slots=True)
class Template:
    """One kind of generated function: ``draw(rng) -> (constants, list of argument tuples)``."""

    name: str
    signature: str
    statement: str  # str.format-ed with the constants
    source: str  # the reference, str.format-ed with the constants
    draw: Callable[[random.Random], tuple[dict[str, Any], list[tuple[Any, ...]]]]


def _ints(rng: random.Random, n: int, lo: int = -20, hi: int = 20) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(n)]


def _word(rng: random.Random, n: int, letters: str = "abcde") -> str:
    return "".join(rng.choice(letters) for _ in range(n))


CODE_TEMPLATES: tuple[Template, ...] = (
    Template(
        "scaled_sum",
        "scaled_sum(xs: list[int]) -> int",
        "Return the sum of the integers in `xs`, each multiplied by {k}.",
        "def scaled_sum(xs):\n    return sum(x * {k} for x in xs)\n",
        lambda r: ({"k": r.randint(2, 9)}, [([],)] + [(_ints(r, r.randint(1, 6)),) for _ in range(4)]),
    ),
    Template(
        "count_char",
        "count_char(s: str) -> int",
        "Return how many times the character {c!r} occurs in the string `s`.",
        "def count_char(s):\n    return sum(1 for ch in s if ch == {c!r})\n",
        lambda r: ({"c": r.choice("abcde")}, [("",)] + [(_word(r, r.randint(1, 9)),) for _ in range(4)]),
    ),
    Template(
        "running_max",
        "running_max(xs: list[int]) -> list[int]",
        "Return the list whose i-th element is the largest of `xs[0..i]` (an empty list for an empty input).",
        "def running_max(xs):\n    out = []\n    for x in xs:\n        out.append(x if not out else max(out[-1], x))\n"
        "    return out\n",
        lambda r: ({}, [([],)] + [(_ints(r, r.randint(1, 7)),) for _ in range(4)]),
    ),
    Template(
        "digit_sum_mod",
        "digit_sum_mod(n: int) -> int",
        "Return the sum of the decimal digits of the non-negative integer `n`, modulo {m}.",
        "def digit_sum_mod(n):\n    return sum(int(d) for d in str(n)) % {m}\n",
        lambda r: ({"m": r.randint(3, 11)}, [(0,)] + [(r.randint(1, 10**6),) for _ in range(4)]),
    ),
    Template(
        "rotate_left",
        "rotate_left(xs: list[int]) -> list[int]",
        "Return `xs` rotated left by {k} positions (the first {k} elements move to the end, wrapping "
        "around for short lists; an empty list stays empty).",
        "def rotate_left(xs):\n    if not xs:\n        return []\n    k = {k} % len(xs)\n    return xs[k:] + xs[:k]\n",
        lambda r: ({"k": r.randint(1, 5)}, [([],)] + [(_ints(r, r.randint(1, 7)),) for _ in range(4)]),
    ),
    Template(
        "fizz_words",
        "fizz_words(n: int) -> list[str]",
        "Return a list for the numbers 1..n: 'Fizz' for multiples of {a}, 'Buzz' for multiples of {b}, "
        "'FizzBuzz' for multiples of both, else the number as a string.",
        "def fizz_words(n):\n    out = []\n    for i in range(1, n + 1):\n        word = ('Fizz' if i % {a} == 0 else '')"
        " + ('Buzz' if i % {b} == 0 else '')\n        out.append(word or str(i))\n    return out\n",
        lambda r: ({"a": r.randint(2, 4), "b": r.randint(5, 7)}, [(0,)] + [(r.randint(1, 30),) for _ in range(3)]),
    ),
    Template(
        "dedupe",
        "dedupe(xs: list[int]) -> list[int]",
        "Return `xs` without repeated values, keeping the first occurrence of each, in order.",
        "def dedupe(xs):\n    seen = set()\n    out = []\n    for x in xs:\n        if x not in seen:\n"
        "            seen.add(x)\n            out.append(x)\n    return out\n",
        lambda r: ({}, [([],)] + [(_ints(r, r.randint(2, 9), 0, 5),) for _ in range(4)]),
    ),
    Template(
        "clip_all",
        "clip_all(xs: list[int]) -> list[int]",
        "Return `xs` with every value below {lo} replaced by {lo} and every value above {hi} by {hi}.",
        "def clip_all(xs):\n    return [min(max(x, {lo}), {hi}) for x in xs]\n",
        lambda r: ({"lo": r.randint(-8, -1), "hi": r.randint(1, 8)}, [([],)] + [(_ints(r, 6),) for _ in range(4)]),
    ),
)
_BY_NAME = {t.name: t for t in CODE_TEMPLATES}
_ID = re.compile(r"^code/gen/(\w+)/(\d+)@(-?\d+)$")


def _call(name: str, args: tuple[Any, ...]) -> str:
    return f"{name}({', '.join(repr(a) for a in args)})"


def generated_code_problem(seed: int, index: int, templates: tuple[str, ...] | None = None) -> Problem:
    """Problem ``index`` of the family for ``seed`` (template ``index mod len(templates)``)."""
    names = templates or tuple(_BY_NAME)
    template = _BY_NAME[names[index % len(names)]]
    rng = random.Random(f"{seed}/{index}")
    constants, inputs = template.draw(rng)
    reference = template.source.format(**constants)
    namespace: dict[str, Any] = {}
    exec(compile(reference, f"<template {template.name}>", "exec"), namespace)  # our template, not policy code
    function = namespace[template.name]
    tests = tuple(TestCase("assert", f"assert {_call(template.name, args)} == {function(*args)!r}") for args in inputs)
    example = inputs[-1]
    statement = template.statement.format(**constants)
    question = (
        f"Write a Python function `{template.signature}`.\n{statement}\n"
        f"Example: `{_call(template.name, example)}` returns `{function(*example)!r}`."
    )
    why = f"{statement} Loop over the input once and build the result; the empty input is the edge case."
    spec = CodeSpec(template.name, tests, reference=reference)
    return code_problem(f"code/gen/{template.name}/{index}@{seed}", question, spec, source="generated", why=why)


class GeneratedCodeSource:
    """``size`` generated code problems for ``seed`` (built on access; addressable by id)."""

    def __init__(self, seed: int = 0, size: int = 100_000, templates: tuple[str, ...] | None = None) -> None:
        unknown = [t for t in templates or () if t not in _BY_NAME]
        if unknown:
            raise ValueError(f"unknown code templates {unknown}; known: {', '.join(_BY_NAME)}")
        self.seed, self.size, self.templates = int(seed), int(size), tuple(templates or _BY_NAME)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Problem:
        if not -self.size <= index < self.size:
            raise IndexError(index)
        return generated_code_problem(self.seed, index % self.size, self.templates)

    def get(self, problem_id: str) -> Problem:
        m = _ID.match(problem_id)
        if not m or int(m.group(3)) != self.seed or int(m.group(2)) >= self.size:
            raise KeyError(problem_id)
        problem = self[int(m.group(2))]
        if problem.id != problem_id:
            raise KeyError(problem_id)
        return problem

    def __repr__(self) -> str:
        return f"GeneratedCodeSource(seed={self.seed}, size={self.size}, templates={self.templates})"
