"""Generated QA and multiple-choice families, each item a pure function of ``(seed, index)``.

* ``facts`` (QA): a few synthetic people with a home city, a profession and a birth year, written as
  context paragraphs; one question about them: a single attribute, a yes/no check, or a comparison of
  two birth years (two supporting facts, as HotpotQA's comparison questions). The solution quotes the
  supporting sentences, then gives the answer.
* ``arithmetic_choice`` (multiple choice): a sum, difference or product of two numbers with three
  distractors from typical slips (off by one, off by ten, a neighbouring operand), shown in a seeded
  order (:func:`eapo_env.problems.qa_sets.choice_order`).

As for the math families, a private ``random.Random`` is seeded with ``crc32("<family>:<seed>:<index>")``
and drawn only through ``random()``, so an id names the same problem in every process and Python
version. Ids are ``gen/<family>/<index>`` for seed 0 and ``gen/<family>/<index>@<seed>`` otherwise.
A task's spec ``generated[:<family>][@<seed>]`` names a source (:func:`generated_source`).

Example:
    >>> src = IndexedSource("facts", seed=0, size=10)
    >>> p = src[3]
    >>> p.id, p.meta["answer_type"], p == src.get("gen/facts/3")
    ('gen/facts/3', 'text', True)
    >>> IndexedSource("arithmetic_choice", size=5)[0].answer in "ABCD"
    True
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Callable, Iterator, Sequence

from eapo_env.problems.base import Problem
from eapo_env.problems.qa_sets import choice_problem

__all__ = ["GENERATED_CHOICE", "GENERATED_QA", "IndexedSource", "arithmetic_choice", "facts", "generated_source"]

_FIRST = ("Ar", "Bel", "Cor", "Dan", "El", "Fen", "Gar", "Hal", "Ir", "Jor", "Kal", "Lun", "Mor", "Nel", "Pem", "Ros")
_MIDDLE = ("a", "en", "is", "o", "an", "el", "ir", "u")
_LAST = ("n", "th", "r", "s", "d", "x", "m", "l")
_CITY_HEAD = ("Ash", "Brin", "Cald", "Dun", "Est", "Fair", "Glen", "Hol", "Ivy", "Kess", "Lark", "Mist")
_CITY_TAIL = ("ford", "haven", "mere", "stad", "bury", "wick", "gard", "holm")
_PROFESSIONS = ("painter", "astronomer", "carpenter", "chemist", "poet", "architect", "sailor", "botanist")


def _rng(family: str, seed: int, index: int) -> random.Random:
    return random.Random(zlib.crc32(f"{family}:{seed}:{index}".encode()))


def _pick(rng: random.Random, options: Sequence[str]) -> str:
    return options[int(rng.random() * len(options))]


def _distinct(rng: random.Random, make: Callable[[], str], n: int) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        item = make()
        if item not in out:
            out.append(item)
    return out


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _pid(family: str, seed: int, index: int) -> str:
    return f"gen/{family}/{index}" + (f"@{seed}" if seed else "")


def facts(seed: int, index: int) -> Problem:
    """One ``facts`` QA problem (see the module docs)."""
    rng = _rng("facts", seed, index)
    n = 3 + int(rng.random() * 2)
    names = _distinct(rng, lambda: _pick(rng, _FIRST) + _pick(rng, _MIDDLE) + _pick(rng, _LAST), n)
    cities = [_pick(rng, _CITY_HEAD) + _pick(rng, _CITY_TAIL) for _ in names]
    jobs = [_pick(rng, _PROFESSIONS) for _ in names]
    years = _distinct(rng, lambda: str(1700 + int(rng.random() * 300)), n)
    first = [f"{who} is {_article(job)} {job} from {city}." for who, job, city in zip(names, jobs, cities)]
    second = [f"{who} was born in {year}." for who, year in zip(names, years)]
    context = "\n".join(f"[{k + 1}] {names[k]}: {first[k]} {second[k]}" for k in range(n))
    a, b = int(rng.random() * n), int(rng.random() * (n - 1))
    b = b + 1 if b >= a else b  # a second, different person
    kind = ("city", "profession", "year", "yesno", "comparison")[int(rng.random() * 5)]
    if kind == "city":
        question, answer, cited = f"Which city is {names[a]} from?", cities[a], [first[a]]
    elif kind == "profession":
        question, answer, cited = f"What is {names[a]}'s profession?", jobs[a], [first[a]]
    elif kind == "year":
        question, answer, cited = f"In which year was {names[a]} born?", years[a], [second[a]]
    elif kind == "yesno":
        asked = cities[a] if rng.random() < 0.5 else cities[b]
        question, cited = f"Is {names[a]} from {asked}?", [first[a]]
        answer = "yes" if asked == cities[a] else "no"
    else:
        question, cited = f"Who was born earlier, {names[a]} or {names[b]}?", [second[a], second[b]]
        answer = names[a] if int(years[a]) < int(years[b]) else names[b]
    quoted = " and ".join(f'"{c}"' for c in cited)
    solution = f"The context says {quoted}.\nThe answer is \\boxed{{{answer}}}."
    meta = {"family": "facts", "source": "generated", "answer_type": "text", "gold_answers": (answer,), "type": kind}
    return Problem(_pid("facts", seed, index), f"Context:\n{context}\n\nQuestion: {question}", answer, solution, meta)


def arithmetic_choice(seed: int, index: int) -> Problem:
    """One ``arithmetic_choice`` multiple-choice problem (see the module docs)."""
    rng = _rng("arithmetic_choice", seed, index)
    x, y = 11 + int(rng.random() * 89), 11 + int(rng.random() * 89)
    op = ("+", "-", "*")[int(rng.random() * 3)]
    if op == "-" and y > x:
        x, y = y, x
    value = {"+": x + y, "-": x - y, "*": x * y}[op]
    neighbour = {"+": x + y + 1, "-": x - y + 1, "*": x * (y + 1)}[op]
    slips = [value + 1, value - 1, value + 10, value - 10, neighbour, value + 2]
    wrong = [s for s in dict.fromkeys(slips) if s != value and s >= 0]
    start = int(rng.random() * (len(wrong) - 2))
    distractors = wrong[start : start + 3]
    shown_op = "×" if op == "*" else op
    question = f"What is {x} {shown_op} {y}?"
    choices = [str(value), *map(str, distractors)]
    pid = _pid("arithmetic_choice", seed, index)
    meta = {"family": "arithmetic_choice", "source": "generated"}
    return choice_problem(pid, question, choices, 0, seed=seed, explanation=f"{x} {shown_op} {y} = {value}.", meta=meta)


#: Generated QA families (name -> ``(seed, index) -> Problem``); and the multiple-choice ones.
GENERATED_QA: dict[str, Callable[[int, int], Problem]] = {"facts": facts}
GENERATED_CHOICE: dict[str, Callable[[int, int], Problem]] = {"arithmetic_choice": arithmetic_choice}
_ALL = {**GENERATED_QA, **GENERATED_CHOICE}
_ID_RE = re.compile(r"gen/([a-z_]+)/(\d+)(?:@(\d+))?")


class IndexedSource:
    """A problem source over one generated family: item ``i`` is ``family(seed, i)``, ``size`` items."""

    def __init__(self, family: str, *, seed: int = 0, size: int = 100_000) -> None:
        if family not in _ALL:
            raise ValueError(f"unknown generated family {family!r}; known: {', '.join(_ALL)}")
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.family, self.seed, self.size = family, int(seed), int(size)
        self._make = _ALL[family]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Problem:
        index = int(index)
        if not -self.size <= index < self.size:
            raise IndexError(f"index {index} out of range for {self!r}")
        return self._make(self.seed, index % self.size)

    def __iter__(self) -> Iterator[Problem]:
        return (self[i] for i in range(self.size))

    def get(self, problem_id: str) -> Problem:
        m = _ID_RE.fullmatch(problem_id)
        if not m or m.group(1) != self.family or int(m.group(3) or 0) != self.seed or int(m.group(2)) >= self.size:
            raise KeyError(problem_id)
        return self[int(m.group(2))]

    def __repr__(self) -> str:
        return f"IndexedSource({self.family!r}, seed={self.seed}, size={self.size})"


def generated_source(spec: object, families: dict[str, Callable[[int, int], Problem]]) -> IndexedSource | None:
    """The source a ``None`` / ``"generated[:<family>|*|all][@<seed>]"`` spec names (the first family of
    ``families`` by default, seed 0), or ``None`` for any other spec.

    >>> generated_source("generated:facts@2", GENERATED_QA), generated_source("hotpotqa:x.json", GENERATED_QA)
    (IndexedSource('facts', seed=2, size=100000), None)
    """
    if spec is None:
        return IndexedSource(next(iter(families)))
    if not isinstance(spec, str) or spec.strip().split(":", 1)[0].split("@", 1)[0] != "generated":
        return None
    body, at, seed_text = spec.strip().partition("@")
    try:
        seed = int(seed_text) if at else 0
    except ValueError:
        raise ValueError(
            f"bad seed {seed_text!r} in problem spec {spec!r} (expected 'generated[:family][@seed]')"
        ) from None
    family = body.partition(":")[2].strip()
    if family in ("", "*", "all"):
        family = next(iter(families))
    if family not in families:
        raise ValueError(f"unknown generated family {family!r} in {spec!r}; known: {', '.join(families)}")
    return IndexedSource(family, seed=seed)
