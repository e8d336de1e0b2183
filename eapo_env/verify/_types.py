"""Verdict type, statuses and the internal exceptions of the verifier.

Example:
    >>> v = Verdict("correct", 1.0)
    >>> v.correct, v.status in VERDICT_STATUSES
    (True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

VERDICT_STATUSES: tuple[str, ...] = ("correct", "incorrect", "unparseable", "timeout", "error")

# Bounds that make every path of the verifier finite by construction.
MAX_ANSWER_CHARS = 2000  # an extracted answer longer than this is "unparseable"
MAX_DEPTH = 40  # nesting depth of the parse tree (parens, braces, \frac, powers)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Outcome of one verification.

    ``status`` is one of :data:`VERDICT_STATUSES`; ``score`` is the reward: 1.0 when the
    status is ``"correct"`` and 0.0 otherwise for math answers; for text answers it is the
    token F1 in [0, 1] (the status is ``"correct"`` only on a normalised exact match, which
    implies F1 = 1).

    Example:
        >>> Verdict("timeout", 0.0).correct
        False
    """

    status: str
    score: float

    def __post_init__(self) -> None:
        if self.status not in VERDICT_STATUSES:
            raise ValueError(f"unknown verdict status {self.status!r}")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score out of [0, 1]: {self.score!r}")

    @property
    def correct(self) -> bool:
        """True iff the status is ``"correct"``."""
        return self.status == "correct"


class ParseFailure(Exception):
    """The answer text is outside the supported grammar (maps to ``unparseable``)."""


class Undefined(Exception):
    """The expression has no value at this point (division by zero, log 0, (-1)!)."""


class Overflow(Exception):
    """A value would exceed the evaluator's size bounds (e.g. ``9^{9^{9^9}}``)."""


class VerifyTimeout(Exception):
    """The time budget of one ``verify`` call was spent (maps to ``timeout``)."""


CORRECT = Verdict("correct", 1.0)
INCORRECT = Verdict("incorrect", 0.0)
UNPARSEABLE = Verdict("unparseable", 0.0)
TIMEOUT = Verdict("timeout", 0.0)
ERROR = Verdict("error", 0.0)
