"""The :class:`Problem` record and the :class:`ProblemSource` protocol."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True, eq=True)
class Problem:
    """One problem.

    Attributes:
        id: stable identifier, unique within its source (e.g. ``"gen/arithmetic/L3/17"``).
        question: the problem statement shown to the policy.
        answer: the exact reference answer (LaTeX or plain text) the verifier compares against.
        solution: a worked solution; the ``reference`` expert answers from it. May be empty.
        meta: free-form metadata: ``family``, ``level``, ``source``, ``answer_type``
            (``"math"`` default, or ``"text"`` for QA sets scored by token-F1).
    """

    id: str
    question: str
    answer: str
    solution: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __hash__(self) -> int:
        return hash((self.id, self.question, self.answer))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "solution": self.solution,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Problem:
        return cls(
            id=str(row["id"]),
            question=str(row["question"]),
            answer=str(row["answer"]),
            solution=str(row.get("solution") or ""),
            meta=dict(row.get("meta") or {}),
        )


@runtime_checkable
class ProblemSource(Protocol):
    """A finite, indexable collection of problems, addressable by index and by id."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Problem: ...

    def get(self, problem_id: str) -> Problem:
        """The problem with this id; ``KeyError`` if absent."""
        ...


class SequenceSource:
    """A problem source over an in-memory list of problems (e.g. loaded from a file)."""

    def __init__(self, problems: Sequence[Problem], name: str = "list") -> None:
        if not problems:
            raise ValueError(f"problem source {name!r} is empty")
        self._problems = list(problems)
        self._by_id = {p.id: p for p in self._problems}
        if len(self._by_id) != len(self._problems):
            raise ValueError(f"problem source {name!r} has duplicate problem ids")
        self.name = name

    def __len__(self) -> int:
        return len(self._problems)

    def __getitem__(self, index: int) -> Problem:
        return self._problems[index]

    def __iter__(self) -> Iterator[Problem]:
        return iter(self._problems)

    def get(self, problem_id: str) -> Problem:
        return self._by_id[problem_id]

    def __repr__(self) -> str:
        return f"SequenceSource({self.name!r}, n={len(self)})"
