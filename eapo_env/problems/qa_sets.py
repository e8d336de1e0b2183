r"""Loaders for QA and multiple-choice sets in their published schemas, from LOCAL files only.

================  ==================================================================  ===================
spec              columns (published schema)                                          ids
================  ==================================================================  ===================
``hotpotqa:PATH`` ``id``/``_id``, ``question``, ``answer``, ``type``, ``level``,      ``hotpotqa/<id>``
                  ``supporting_facts`` ``{title, sent_id}``, ``context``
                  ``{title, sentences}`` (HF form; the raw JSON's ``[title, ...]``
                  pairs are read too)
``simpleqa:PATH`` ``metadata`` (a dict as a Python/JSON string), ``problem``,          ``simpleqa/<row>``
                  ``answer``
``mmlu:PATH``     ``question``, ``subject``, ``choices`` (list), ``answer`` (0-based)  ``mmlu/<row>``
``gpqa:PATH``     ``Question``, ``Correct Answer``, ``Incorrect Answer 1..3``,         ``gpqa/<Record ID>``
                  ``Explanation``, ``Subdomain``, ``High-level domain``, ``Record ID``
================  ==================================================================  ===================

Files are ``.jsonl``/``.json``/``.parquet``/``.csv`` (read by :func:`eapo_env.problems.datasets.read_rows`).
A malformed row raises ``ValueError`` naming the file and the row.

QA problems carry ``meta["answer_type"] = "text"`` and ``meta["gold_answers"]`` (every accepted
answer; the scorer takes the best). The HotpotQA question shown to the policy holds the context
paragraphs, then the question. Multiple-choice problems show the choices lettered ``A)``, ``B)``, …
in a **seeded order**: :func:`choice_order` of ``(seed, source id)`` (a stable crc32 seed, never
Python's salted ``hash``), so a file loads the same in every process; ``problem.answer`` is the
correct letter and ``meta["choices"]`` the choices in the shown order.

Example:
    >>> order = choice_order(4, seed=0, key="gpqa/rec1")
    >>> sorted(order), order == choice_order(4, seed=0, key="gpqa/rec1")
    ([0, 1, 2, 3], True)
    >>> print(render_choices("2 + 2?", ["3", "4"]))
    2 + 2?
    <BLANKLINE>
    A) 3
    B) 4
"""

from __future__ import annotations

import ast
import json
import os
import random
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from eapo_env.problems.base import Problem
from eapo_env.problems.datasets import read_rows

__all__ = [
    "CHOICE_LOADERS",
    "LETTERS",
    "QA_LOADERS",
    "choice_order",
    "choice_problem",
    "load_gpqa",
    "load_hotpotqa",
    "load_mmlu",
    "load_simpleqa",
    "render_choices",
    "split_dataset_spec",
]

#: Choice labels, in order (MMLU and GPQA use four; MMLU-Pro-style sets up to ten).
LETTERS = "ABCDEFGHIJ"


class RowError(ValueError):
    """One row does not follow its schema (the loader adds the file and the row)."""


# ------------------------------------------------------------------------------ helpers


def split_dataset_spec(spec: Any, kinds: Sequence[str]) -> tuple[str, str] | None:
    """``(kind, path)`` for a ``"<kind>:<path>"`` spec whose kind is in ``kinds``, else ``None``.

    >>> split_dataset_spec("hotpotqa:/data/dev.json", ["hotpotqa", "simpleqa"])
    ('hotpotqa', '/data/dev.json')
    >>> split_dataset_spec("generated", ["hotpotqa"]) is None
    True
    """
    if not isinstance(spec, str):
        return None
    kind, colon, path = spec.partition(":")
    if not colon or kind.strip().lower() not in kinds:
        return None
    if not path.strip():
        raise ValueError(f"problem spec {spec!r} names no file (expected '{kind}:PATH')")
    return kind.strip().lower(), path.strip()


def _text(row: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = row.get(key)
    text = "" if value is None else str(value).strip()
    if required and not text:
        raise RowError(f"has no {key!r}")
    return text


def _load(path: str | os.PathLike[str], convert: Callable[[Mapping[str, Any], int], Problem]) -> list[Problem]:
    rows, _ = read_rows(path)
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        try:
            if not isinstance(row, Mapping):
                raise RowError(f"is a {type(row).__name__}, not a row")
            problem = convert(row, i)
        except (ValueError, TypeError) as exc:  # RowError, or a bad value (an int("x") sent_id)
            raise ValueError(f"{os.fspath(path)!r} row {i}: {exc}") from None
        if problem.id in seen:
            raise ValueError(f"{os.fspath(path)!r} row {i}: duplicate id {problem.id!r}")
        seen.add(problem.id)
        problems.append(problem)
    return problems


# ------------------------------------------------------------------------------ QA


def _pairs(value: Any, keys: tuple[str, str], what: str) -> list[tuple[Any, Any]]:
    """``[(a, b), ...]`` from HF's ``{keys[0]: [...], keys[1]: [...]}`` or the raw JSON's ``[[a, b], ...]``."""
    if isinstance(value, Mapping):
        first, second = value.get(keys[0]), value.get(keys[1])
        if not isinstance(first, Sequence) or not isinstance(second, Sequence) or len(first) != len(second):
            raise RowError(f"{what} needs equal-length lists {keys[0]!r} and {keys[1]!r}")
        return list(zip(first, second))
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not all(isinstance(p, Sequence) and not isinstance(p, str) and len(p) == 2 for p in value):
            raise RowError(f"{what} must be [title, ...] pairs")
        return [(p[0], p[1]) for p in value]
    raise RowError(f"{what} is a {type(value).__name__}, expected {{{keys[0]}, {keys[1]}}}")


def _hotpot_row(row: Mapping[str, Any], i: int) -> Problem:
    ident = _text(row, "id", required=False) or _text(row, "_id", required=False) or str(i)
    question, answer = _text(row, "question"), _text(row, "answer")
    context = _pairs(row.get("context"), ("title", "sentences"), "context")
    paragraphs: dict[str, list[str]] = {}
    for title, sentences in context:
        if isinstance(sentences, str) or not isinstance(sentences, Sequence):
            raise RowError(f"context paragraph {title!r} has no sentence list")
        paragraphs[str(title)] = [str(s) for s in sentences]
    facts = [(str(t), int(s)) for t, s in _pairs(row.get("supporting_facts") or [], ("title", "sent_id"), "facts")]
    shown = "\n".join(f"[{k}] {t}: {' '.join(x.strip() for x in s)}" for k, (t, s) in enumerate(paragraphs.items(), 1))
    cited = [f'{t}: "{paragraphs[t][s].strip()}"' for t, s in facts if t in paragraphs and 0 <= s < len(paragraphs[t])]
    quoted = f"The supporting facts: {'; '.join(cited)}\n" if cited else ""
    solution = f"{quoted}The answer is \\boxed{{{answer}}}."
    meta = {
        "source": "hotpotqa",
        "schema": "hotpotqa",
        "answer_type": "text",
        "gold_answers": (answer,),
        "type": _text(row, "type", required=False),
        "level": _text(row, "level", required=False),
        "supporting_facts": tuple(facts),
        "row": i,
    }
    return Problem(f"hotpotqa/{ident}", f"Context:\n{shown}\n\nQuestion: {question}", answer, solution, meta)


def load_hotpotqa(path: str | os.PathLike[str]) -> list[Problem]:
    """HotpotQA (distractor setting) rows as QA problems (see the module docs)."""
    return _load(path, _hotpot_row)


def _simpleqa_row(row: Mapping[str, Any], i: int) -> Problem:
    question, answer = _text(row, "problem"), _text(row, "answer")
    raw = row.get("metadata")
    metadata: Any = raw
    if isinstance(raw, str):
        try:  # the published CSV writes a Python dict repr; literal_eval evaluates literals only
            metadata = ast.literal_eval(raw) if raw.strip() else {}
        except (ValueError, SyntaxError):
            try:
                metadata = json.loads(raw)
            except json.JSONDecodeError:
                raise RowError(f"metadata {raw[:60]!r} is not a dict literal") from None
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        raise RowError(f"metadata is a {type(metadata).__name__}, not a dict")
    meta = {
        "source": "simpleqa",
        "schema": "simpleqa",
        "answer_type": "text",
        "gold_answers": (answer,),
        "topic": str(metadata.get("topic", "")),
        "metadata": dict(metadata),
        "row": i,
    }
    return Problem(f"simpleqa/{i}", question, answer, f"The answer is \\boxed{{{answer}}}.", meta)


def load_simpleqa(path: str | os.PathLike[str]) -> list[Problem]:
    """SimpleQA's CSV (``metadata``, ``problem``, ``answer``) as QA problems."""
    return _load(path, _simpleqa_row)


#: QA spec kinds -> loader.
QA_LOADERS: dict[str, Callable[[str], list[Problem]]] = {"hotpotqa": load_hotpotqa, "simpleqa": load_simpleqa}


# ------------------------------------------------------------------------------ multiple choice


def choice_order(n: int, *, seed: int, key: str) -> list[int]:
    """A permutation of ``range(n)``, a pure function of ``(seed, key)``.

    Fisher-Yates drawing only through ``random.Random.random()`` (the stream Python keeps stable
    across versions), seeded with ``crc32(f"{seed}:{key}")``.
    """
    rng = random.Random(zlib.crc32(f"{seed}:{key}".encode()))
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = int(rng.random() * (i + 1))
        order[i], order[j] = order[j], order[i]
    return order


def render_choices(question: str, choices: Sequence[str]) -> str:
    """The question followed by its lettered choices (``A) ...``), as the policy sees it."""
    lines = "\n".join(f"{LETTERS[k]}) {c}" for k, c in enumerate(choices))
    return f"{question.strip()}\n\n{lines}"


def choice_problem(
    pid: str,
    question: str,
    choices: Sequence[str],
    correct: int,
    *,
    seed: int,
    explanation: str = "",
    meta: Mapping[str, Any] | None = None,
) -> Problem:
    """A multiple-choice :class:`Problem`: ``choices`` shown in :func:`choice_order` of ``(seed, pid)``,
    ``choices[correct]`` the right one; ``answer`` its letter; the solution names it (and explains)."""
    if not 2 <= len(choices) <= len(LETTERS):
        raise RowError(f"has {len(choices)} choices (need 2 to {len(LETTERS)})")
    if not 0 <= correct < len(choices):
        raise RowError(f"answer index {correct} is outside the {len(choices)} choices")
    if any(not str(c).strip() for c in choices):
        raise RowError("has an empty choice")
    order = choice_order(len(choices), seed=seed, key=pid)
    shown = [str(choices[k]).strip() for k in order]
    position = order.index(correct)
    letter = LETTERS[position]
    because = f" {explanation.strip()}" if explanation.strip() else ""
    solution = f"The correct choice is {letter}) {shown[position]}.{because}\nThe answer is \\boxed{{{letter}}}."
    full_meta = {**(meta or {}), "choices": tuple(shown), "num_choices": len(shown), "correct_text": shown[position]}
    return Problem(pid, render_choices(question, shown), letter, solution, full_meta)


def _mmlu_row(row: Mapping[str, Any], i: int, seed: int) -> Problem:
    question = _text(row, "question")
    choices = row.get("choices")
    if isinstance(choices, str):  # a CSV cell may hold the list as JSON text
        try:
            choices = json.loads(choices)
        except json.JSONDecodeError:
            raise RowError(f"choices {choices[:60]!r} is not a list") from None
    if isinstance(choices, str) or not isinstance(choices, Sequence):
        raise RowError(f"choices is a {type(choices).__name__}, not a list")
    answer = row.get("answer")
    try:
        index = int(str(answer).strip())
    except ValueError:
        index = LETTERS.find(str(answer).strip().upper()) if str(answer).strip() else -1
        if index < 0:
            raise RowError(f"answer {answer!r} is not a choice index") from None
    subject = _text(row, "subject", required=False)
    meta = {"source": "mmlu", "schema": "mmlu", "subject": subject, "row": i}
    return choice_problem(f"mmlu/{i}", question, [str(c) for c in choices], index, seed=seed, meta=meta)


def load_mmlu(path: str | os.PathLike[str], seed: int = 0) -> list[Problem]:
    """``cais/mmlu`` rows (``answer`` 0-based; a letter is accepted too) as multiple-choice problems."""
    return _load(path, lambda row, i: _mmlu_row(row, i, seed))


def _gpqa_row(row: Mapping[str, Any], i: int, seed: int) -> Problem:
    question, correct = _text(row, "Question"), _text(row, "Correct Answer")
    wrong = [_text(row, f"Incorrect Answer {k}") for k in (1, 2, 3)]
    ident = _text(row, "Record ID", required=False) or str(i)
    meta = {
        "source": "gpqa",
        "schema": "gpqa",
        "subdomain": _text(row, "Subdomain", required=False),
        "domain": _text(row, "High-level domain", required=False),
        "row": i,
    }
    explanation = _text(row, "Explanation", required=False)
    return choice_problem(
        f"gpqa/{ident}", question, [correct, *wrong], 0, seed=seed, explanation=explanation, meta=meta
    )


def load_gpqa(path: str | os.PathLike[str], seed: int = 0) -> list[Problem]:
    """GPQA's CSV as multiple-choice problems (the correct answer, column 1 in the file, lands at a seeded letter)."""
    return _load(path, lambda row, i: _gpqa_row(row, i, seed))


#: Choice spec kinds -> loader ``(path)``; each also takes a ``seed`` (where GPQA's correct option
#: lands), 0 when a task spec reads the file.
CHOICE_LOADERS: dict[str, Callable[[str], list[Problem]]] = {"mmlu": load_mmlu, "gpqa": load_gpqa}
